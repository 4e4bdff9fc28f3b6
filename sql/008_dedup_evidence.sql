-- newsdedup 008: explainable dedup decisions and per-source boilerplate. Method names say what was
-- measured ('minhash' was exact Jaccard on stored shingle hashes: now 'jaccard'); each decision keeps
-- its evidence; shingle hashes a source repeats across its own different stories (navigation blocks,
-- teaser lists, bylines) are learnt per source. Idempotent. Documented in docs/schema.md.

ALTER TABLE duplicate_decisions DROP CONSTRAINT IF EXISTS duplicate_decisions_method_check;
UPDATE duplicate_decisions SET method = 'jaccard' WHERE method = 'minhash';
ALTER TABLE duplicate_decisions ADD CONSTRAINT duplicate_decisions_method_check CHECK (
    method IN ('new', 'exact', 'jaccard', 'containment', 'rewrite_jaccard', 'rewrite_containment')
);
ALTER TABLE duplicate_decisions ADD COLUMN IF NOT EXISTS evidence jsonb;

CREATE TABLE IF NOT EXISTS source_boilerplate (
    source_id       integer NOT NULL REFERENCES sources (source_id) ON DELETE CASCADE,
    shingle_hash    integer NOT NULL,  -- uint32 word-shingle hash stored as signed
    marks           integer NOT NULL DEFAULT 1,  -- articles of the source that shared it with another of its stories
    first_marked_at timestamptz NOT NULL DEFAULT now(),
    last_marked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, shingle_hash)
);

-- Per source: what is learnt as its boilerplate, and from how many of its articles.
CREATE OR REPLACE VIEW source_boilerplate_summary AS
SELECT s.source_id,
       s.name AS source,
       count(b.shingle_hash) AS shingles,
       coalesce(max(b.marks), 0) AS max_marks,
       (SELECT count(*) FROM articles a WHERE a.source_id = s.source_id) AS articles,
       min(b.first_marked_at) AS first_marked_at,
       max(b.last_marked_at) AS last_marked_at
FROM sources s
LEFT JOIN source_boilerplate b USING (source_id)
GROUP BY s.source_id, s.name;
