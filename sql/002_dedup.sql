-- newsdedup schema v2: removed segments, revisions, story clusters, duplicate decisions,
-- the persistent MinHash LSH index, and full-text search. Idempotent. Documented in docs/schema.md.

-- Segments removed from an article's text by the repeated-segment cleaner, and why.
CREATE TABLE IF NOT EXISTS removed_segments (
    article_id   bigint NOT NULL REFERENCES articles (article_id) ON DELETE CASCADE,
    position     integer NOT NULL,
    sentence     integer,
    kind         text NOT NULL CHECK (kind IN ('paragraph', 'sentence')),
    reason       text NOT NULL,
    measure      text NOT NULL,
    similarity   real NOT NULL,
    segment      text NOT NULL,
    matched      text NOT NULL
);
CREATE INDEX IF NOT EXISTS removed_segments_article_idx ON removed_segments (article_id);

-- Earlier versions of an article whose page changed (same canonical URL, new text).
CREATE TABLE IF NOT EXISTS article_versions (
    version_id    bigserial PRIMARY KEY,
    article_id    bigint NOT NULL REFERENCES articles (article_id) ON DELETE CASCADE,
    title         text NOT NULL,
    text          text NOT NULL,
    content_hash  text NOT NULL,
    fetched_at    timestamptz NOT NULL,
    replaced_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS article_versions_article_idx ON article_versions (article_id);

CREATE OR REPLACE FUNCTION newsdedup_keep_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO article_versions (article_id, title, text, content_hash, fetched_at)
    VALUES (OLD.article_id, OLD.title, OLD.text, OLD.content_hash, OLD.fetched_at);
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS articles_keep_version ON articles;
CREATE TRIGGER articles_keep_version
    BEFORE UPDATE OF content_hash ON articles
    FOR EACH ROW WHEN (OLD.content_hash IS DISTINCT FROM NEW.content_hash)
    EXECUTE FUNCTION newsdedup_keep_version();

-- One row per story: the articles that are copies of one another.
CREATE TABLE IF NOT EXISTS story_clusters (
    cluster_id              bigint PRIMARY KEY,
    canonical_article_id    bigint NOT NULL REFERENCES articles (article_id),
    size                    integer NOT NULL,
    first_seen_at           timestamptz NOT NULL DEFAULT now(),
    last_seen_at            timestamptz NOT NULL DEFAULT now(),
    first_source_id         integer REFERENCES sources (source_id) ON DELETE SET NULL,
    canonical_published_at  timestamptz,
    canonical_length        integer NOT NULL
);
CREATE INDEX IF NOT EXISTS story_clusters_last_seen_idx ON story_clusters (last_seen_at DESC);

ALTER TABLE articles ADD COLUMN IF NOT EXISTS cluster_id bigint REFERENCES story_clusters (cluster_id);
CREATE INDEX IF NOT EXISTS articles_cluster_idx ON articles (cluster_id);

-- Why each article is where it is: the verified match that decided it (or 'new').
CREATE TABLE IF NOT EXISTS duplicate_decisions (
    article_id          bigint PRIMARY KEY REFERENCES articles (article_id) ON DELETE CASCADE,
    cluster_id          bigint NOT NULL REFERENCES story_clusters (cluster_id),
    matched_article_id  bigint REFERENCES articles (article_id) ON DELETE SET NULL,
    method              text NOT NULL CHECK (method IN ('new', 'exact', 'minhash', 'containment')),
    similarity          real NOT NULL,
    jaccard             real,
    containment         real,
    threshold           real NOT NULL,
    shared_shingles     integer NOT NULL DEFAULT 0,
    candidates          integer NOT NULL DEFAULT 0,
    params_version      text NOT NULL,
    decided_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS duplicate_decisions_cluster_idx ON duplicate_decisions (cluster_id);

-- The persistent MinHash LSH index: signatures and shingle hashes (uint32, little-endian bytes)
-- per article, band hashes in an indexed table, and shingle hashes seen shared across stories.
CREATE TABLE IF NOT EXISTS article_signatures (
    article_id      bigint PRIMARY KEY REFERENCES articles (article_id) ON DELETE CASCADE,
    params_version  text NOT NULL,
    signature       bytea NOT NULL,
    shingles        bytea NOT NULL,
    text_hash       bigint NOT NULL,
    length          integer NOT NULL,
    published_at    timestamptz
);

CREATE TABLE IF NOT EXISTS lsh_bands (
    band_hash   bigint NOT NULL,
    band_no     smallint NOT NULL,
    article_id  bigint NOT NULL REFERENCES article_signatures (article_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS lsh_bands_lookup_idx ON lsh_bands (band_hash, band_no);
CREATE INDEX IF NOT EXISTS lsh_bands_article_idx ON lsh_bands (article_id);

CREATE TABLE IF NOT EXISTS common_shingles (
    shingle_hash  integer PRIMARY KEY,
    marks         integer NOT NULL DEFAULT 1  -- times seen shared between different stories
);

-- Full-text search with the article's language configuration ('simple' where none fits).
CREATE OR REPLACE FUNCTION newsdedup_ts_config(lang text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE lower(lang)
        WHEN 'tr' THEN 'turkish' WHEN 'en' THEN 'english' WHEN 'de' THEN 'german'
        WHEN 'fr' THEN 'french' WHEN 'es' THEN 'spanish' WHEN 'it' THEN 'italian'
        WHEN 'pt' THEN 'portuguese' WHEN 'nl' THEN 'dutch' WHEN 'ru' THEN 'russian'
        WHEN 'sv' THEN 'swedish' WHEN 'da' THEN 'danish' WHEN 'no' THEN 'norwegian'
        WHEN 'fi' THEN 'finnish' WHEN 'hu' THEN 'hungarian' WHEN 'ro' THEN 'romanian'
        WHEN 'ar' THEN 'arabic' WHEN 'el' THEN 'greek' WHEN 'id' THEN 'indonesian'
        ELSE 'simple' END::regconfig
$$;

ALTER TABLE articles ADD COLUMN IF NOT EXISTS search_vector tsvector
    GENERATED ALWAYS AS (
        setweight(to_tsvector(newsdedup_ts_config(language), coalesce(title, '')), 'A')
        || setweight(to_tsvector(newsdedup_ts_config(language), coalesce(text, '')), 'B')
    ) STORED;
CREATE INDEX IF NOT EXISTS articles_search_idx ON articles USING gin (search_vector);

-- One row per story: its canonical article and the sources that carried copies.
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
         WHERE ca.cluster_id = c.cluster_id) AS sources
FROM story_clusters c
JOIN articles a ON a.article_id = c.canonical_article_id
LEFT JOIN sources s ON s.source_id = a.source_id;

-- Each duplicate with its story's canonical article and how similar it is to what it matched.
CREATE OR REPLACE VIEW article_duplicates AS
SELECT d.article_id,
       a.title,
       a.url,
       s.name AS source,
       c.cluster_id,
       c.canonical_article_id,
       ca.title AS canonical_title,
       ca.url AS canonical_url,
       d.matched_article_id,
       d.method,
       d.similarity,
       d.jaccard,
       d.containment,
       d.threshold,
       d.params_version
FROM duplicate_decisions d
JOIN articles a ON a.article_id = d.article_id
JOIN story_clusters c ON c.cluster_id = a.cluster_id
JOIN articles ca ON ca.article_id = c.canonical_article_id
LEFT JOIN sources s ON s.source_id = a.source_id
WHERE d.article_id <> c.canonical_article_id;

-- Run counts for deduplication.
ALTER TABLE pipeline_runs ADD COLUMN IF NOT EXISTS stories_created integer NOT NULL DEFAULT 0;
ALTER TABLE pipeline_runs ADD COLUMN IF NOT EXISTS duplicates_found integer NOT NULL DEFAULT 0;
ALTER TABLE pipeline_runs ADD COLUMN IF NOT EXISTS segments_removed integer NOT NULL DEFAULT 0;
