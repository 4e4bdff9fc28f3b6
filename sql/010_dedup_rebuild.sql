-- Progress of `newsdedup dedup rebuild`: one row per target params_version. Each batch commits its
-- recomputed dedup state together with this row, so a killed rebuild resumes after the last batch.
-- Documented in docs/schema.md.
CREATE TABLE IF NOT EXISTS dedup_rebuilds (
    params_version   text PRIMARY KEY,
    params           jsonb NOT NULL,
    last_article_id  bigint NOT NULL DEFAULT 0,
    articles_done    integer NOT NULL DEFAULT 0,
    batches_done     integer NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
-- Analysts may read rebuild progress (roles: sql/009_roles.sql, docs/schema.md).
GRANT SELECT ON dedup_rebuilds TO newsdedup_reader;
