-- newsdedup 013: adaptive polling. Each source has a poll interval learned from how often it really
-- changes (newsdedup.polling) and the time it is next due; a run crawls the due ones. The sources file
-- can fix the interval (`poll_every`) or bound it (`poll_min`, `poll_max`). Idempotent: every statement
-- can run twice. Documented in docs/schema.md.

-- Overrides from the sources file, in seconds (NULL: learned, between the NEWSDEDUP_POLL_* bounds).
ALTER TABLE sources ADD COLUMN IF NOT EXISTS poll_every_seconds integer CHECK (poll_every_seconds > 0);
ALTER TABLE sources ADD COLUMN IF NOT EXISTS poll_min_seconds integer CHECK (poll_min_seconds > 0);
ALTER TABLE sources ADD COLUMN IF NOT EXISTS poll_max_seconds integer CHECK (poll_max_seconds > 0);
-- The schedule: written after each crawl of the source (newsdedup.polling.record_poll).
ALTER TABLE sources ADD COLUMN IF NOT EXISTS poll_interval_seconds integer CHECK (poll_interval_seconds > 0);
ALTER TABLE sources ADD COLUMN IF NOT EXISTS next_due_at timestamptz;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS last_polled_at timestamptz;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS last_new_items integer CHECK (last_new_items >= 0);
ALTER TABLE sources ADD COLUMN IF NOT EXISTS poll_reason text
    CHECK (poll_reason IN ('learned', 'fixed', 'feed_declared', 'backlog'));

-- Due sources: `enabled AND (next_due_at IS NULL OR next_due_at <= now)`.
CREATE INDEX IF NOT EXISTS sources_next_due_idx ON sources (next_due_at) WHERE enabled;

CREATE OR REPLACE VIEW source_schedule AS
SELECT s.name AS source,
       s.enabled,
       make_interval(secs => s.poll_interval_seconds) AS poll_interval,
       s.next_due_at,
       s.last_polled_at,
       s.last_new_items,
       CASE WHEN s.last_polled_at IS NULL THEN 'never_polled' ELSE s.poll_reason END AS why,
       s.enabled AND (s.next_due_at IS NULL OR s.next_due_at <= now()) AS due
FROM sources s;

GRANT SELECT ON source_schedule TO newsdedup_reader;
