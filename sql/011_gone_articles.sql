-- newsdedup 011: articles whose page was removed by its publisher. A stored article whose URL answers
-- 404 or 410 when it is fetched again is marked gone (when, and which status); it is not fetched again
-- unless its feed announces a change after that, and it does not make a run partial. Gone articles stay
-- stored and visible (in articles_dedup too): a removed page does not unmake the story it was part of.
-- A later successful fetch of the page clears the mark. Idempotent. Documented in docs/schema.md.

ALTER TABLE articles ADD COLUMN IF NOT EXISTS gone_at timestamptz;
ALTER TABLE articles ADD COLUMN IF NOT EXISTS gone_status smallint;
ALTER TABLE articles DROP CONSTRAINT IF EXISTS articles_gone_status_check;
ALTER TABLE articles ADD CONSTRAINT articles_gone_status_check
    CHECK (gone_status IN (404, 410) AND gone_at IS NOT NULL OR gone_status IS NULL AND gone_at IS NULL);

-- The view of 002 with one column added at the end: when the story's canonical article went away.
CREATE OR REPLACE VIEW articles_dedup AS
SELECT c.cluster_id,
       c.canonical_article_id AS article_id,
       a.title,
       a.text,
       a.url,
       a.canonical_url,
       a.language,
       a.published_at,
       s.name AS source,
       c.size AS copies,
       c.first_seen_at,
       c.last_seen_at,
       (SELECT array_agg(DISTINCT cs.name ORDER BY cs.name)
          FROM articles ca JOIN sources cs ON cs.source_id = ca.source_id
         WHERE ca.cluster_id = c.cluster_id) AS sources,
       a.gone_at
FROM story_clusters c
JOIN articles a ON a.article_id = c.canonical_article_id
LEFT JOIN sources s ON s.source_id = a.source_id;
