-- newsdedup 007: article pages that yield no text (they need JavaScript, say). Each URL's failure streak,
-- and the URLs given up after NEWSDEDUP_GIVE_UP_AFTER runs without text: those are not fetched again,
-- do not make a run partial and do not make their feed be read in full. Idempotent. Documented in docs/schema.md.

CREATE TABLE IF NOT EXISTS page_failures (
    url              text PRIMARY KEY,
    source_id        integer REFERENCES sources (source_id) ON DELETE SET NULL,
    failures         integer NOT NULL DEFAULT 1 CHECK (failures >= 1),
    first_failed_at  timestamptz NOT NULL DEFAULT now(),
    last_failed_at   timestamptz NOT NULL DEFAULT now(),
    last_run_id      bigint REFERENCES pipeline_runs (run_id) ON DELETE SET NULL,
    error_class      text,
    error_message    text,
    given_up_at      timestamptz,
    retry_at         timestamptz
);
CREATE INDEX IF NOT EXISTS page_failures_source_idx ON page_failures (source_id);

-- Deleting a given-up URL (the reset) makes its source read the feed in full next run: an unchanged
-- feed answering 304 would otherwise never announce the URL again.
CREATE OR REPLACE FUNCTION newsdedup_reset_given_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sources SET etag = NULL, last_modified = NULL, child_validators = '{}'::jsonb
    WHERE source_id = OLD.source_id;
    RETURN OLD;
END $$;

DROP TRIGGER IF EXISTS page_failures_reset ON page_failures;
CREATE TRIGGER page_failures_reset
    AFTER DELETE ON page_failures
    FOR EACH ROW WHEN (OLD.given_up_at IS NOT NULL)
    EXECUTE FUNCTION newsdedup_reset_given_up();
