-- newsdedup monitoring: per-source results of each run, and an index for run-scoped data-quality checks.
-- Idempotent. Documented in docs/schema.md.

-- One row per source and run: what the crawl did, what processing made of it, and the failure streak.
CREATE TABLE IF NOT EXISTS source_runs (
    run_id              bigint NOT NULL REFERENCES pipeline_runs (run_id) ON DELETE CASCADE,
    source_id           integer NOT NULL REFERENCES sources (source_id) ON DELETE CASCADE,
    status              text NOT NULL CHECK (status IN ('ok', 'not_modified', 'failed')),
    error               text,
    failure_streak      integer NOT NULL DEFAULT 0,
    urls_discovered     integer NOT NULL DEFAULT 0,
    urls_skipped_known  integer NOT NULL DEFAULT 0,
    pages_fetched       integer NOT NULL DEFAULT 0,
    pages_failed        integer NOT NULL DEFAULT 0,
    robots_disallowed   integer NOT NULL DEFAULT 0,
    feeds_not_modified  integer NOT NULL DEFAULT 0,
    extract_failed      integer NOT NULL DEFAULT 0,
    articles_new        integer NOT NULL DEFAULT 0,
    articles_revised    integer NOT NULL DEFAULT 0,
    duplicates          integer NOT NULL DEFAULT 0,
    crawled_at          timestamptz NOT NULL DEFAULT now(),
    summarised_at       timestamptz,
    PRIMARY KEY (run_id, source_id)
);
CREATE INDEX IF NOT EXISTS source_runs_source_idx ON source_runs (source_id, run_id DESC);

-- The data-quality checks of a run look at the articles it fetched.
CREATE INDEX IF NOT EXISTS articles_fetched_idx ON articles (fetched_at);
