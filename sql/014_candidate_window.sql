-- newsdedup 014: a retention window for dedup candidates. Maintenance deletes the `lsh_bands` rows of
-- articles older than NEWSDEDUP_CANDIDATE_DAYS (by published_at, else fetched_at) and stamps their
-- signature row here, so the index holds the window's articles only and each maintenance looks at the
-- articles still indexed, not at every old one again. Signatures, stories and decisions stay.
-- Idempotent. Documented in docs/schema.md.

ALTER TABLE article_signatures ADD COLUMN IF NOT EXISTS unindexed_at timestamptz;
CREATE INDEX IF NOT EXISTS article_signatures_indexed_idx ON article_signatures (article_id)
    WHERE unindexed_at IS NULL;
