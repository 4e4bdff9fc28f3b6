-- newsdedup schema v1: sources, pipeline runs, crawl log, raw pages, articles.
-- Idempotent: every statement can run twice. Documented in docs/schema.md.

CREATE TABLE IF NOT EXISTS sources (
    source_id        serial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    url              text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('rss', 'atom', 'sitemap', 'auto')),
    language         text,
    enabled          boolean NOT NULL DEFAULT true,
    etag             text,
    last_modified    text,
    last_crawled_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pipeline_runs (
    run_id              bigserial PRIMARY KEY,
    run_key             text NOT NULL UNIQUE,
    trigger             text NOT NULL,
    status              text NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'success', 'partial', 'failed')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    sources_total       integer NOT NULL DEFAULT 0,
    sources_failed      integer NOT NULL DEFAULT 0,
    feeds_not_modified  integer NOT NULL DEFAULT 0,
    urls_discovered     integer NOT NULL DEFAULT 0,
    urls_skipped_known  integer NOT NULL DEFAULT 0,
    pages_fetched       integer NOT NULL DEFAULT 0,
    pages_failed        integer NOT NULL DEFAULT 0,
    extract_failed      integer NOT NULL DEFAULT 0,
    articles_new        integer NOT NULL DEFAULT 0,
    articles_updated    integer NOT NULL DEFAULT 0,
    articles_unchanged  integer NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS crawl_log (
    crawl_id       bigserial PRIMARY KEY,
    run_id         bigint REFERENCES pipeline_runs (run_id) ON DELETE SET NULL,
    source_id      integer REFERENCES sources (source_id) ON DELETE SET NULL,
    url            text NOT NULL,
    final_url      text,
    request_kind   text NOT NULL CHECK (request_kind IN ('feed', 'article', 'extract')),
    outcome        text NOT NULL,
    http_status    integer,
    bytes          integer NOT NULL DEFAULT 0,
    elapsed_ms     integer NOT NULL DEFAULT 0,
    error_class    text,
    error_message  text,
    attempted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS crawl_log_run_idx ON crawl_log (run_id);
CREATE INDEX IF NOT EXISTS crawl_log_url_idx ON crawl_log (url);
CREATE INDEX IF NOT EXISTS crawl_log_attempted_idx ON crawl_log (attempted_at);

-- Pages fetched but not yet processed: the hand-over between the fetch and the process step.
CREATE TABLE IF NOT EXISTS raw_pages (
    raw_page_id    bigserial PRIMARY KEY,
    run_id         bigint REFERENCES pipeline_runs (run_id) ON DELETE CASCADE,
    source_id      integer REFERENCES sources (source_id) ON DELETE CASCADE,
    url            text NOT NULL,
    final_url      text NOT NULL,
    http_status    integer,
    content_type   text,
    encoding       text,
    html           text NOT NULL,
    feed_title     text,
    feed_published timestamptz,
    fetched_at     timestamptz NOT NULL DEFAULT now(),
    processed_at   timestamptz,
    UNIQUE (run_id, url)
);
CREATE INDEX IF NOT EXISTS raw_pages_unprocessed_idx ON raw_pages (run_id) WHERE processed_at IS NULL;

CREATE TABLE IF NOT EXISTS articles (
    article_id     bigserial PRIMARY KEY,
    source_id      integer REFERENCES sources (source_id) ON DELETE SET NULL,
    url            text NOT NULL,
    canonical_url  text NOT NULL UNIQUE,
    title          text NOT NULL,
    text           text NOT NULL,
    author         text,
    published_at   timestamptz,
    language       text,
    word_count     integer NOT NULL DEFAULT 0,
    content_hash   text NOT NULL,
    fetched_at     timestamptz NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS articles_url_idx ON articles (url);
CREATE INDEX IF NOT EXISTS articles_published_idx ON articles (published_at DESC);
CREATE INDEX IF NOT EXISTS articles_source_idx ON articles (source_id);
CREATE INDEX IF NOT EXISTS articles_content_hash_idx ON articles (content_hash);
