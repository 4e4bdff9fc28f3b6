-- newsdedup 003: per-source options, JSON Feed sources, sitemap child validators, robots.txt requests
-- in crawl_log. Idempotent: every statement can run twice. Documented in docs/schema.md.

-- Minimum seconds between two requests to the source's hosts (NULL: NEWSDEDUP_MIN_HOST_DELAY).
ALTER TABLE sources ADD COLUMN IF NOT EXISTS rate_limit real CHECK (rate_limit >= 0);
-- Article pages fetched per run at most (NULL: the default, 1000).
ALTER TABLE sources ADD COLUMN IF NOT EXISTS max_articles integer CHECK (max_articles >= 1);
-- Conditional-GET validators of the children of a sitemap index: {"<url>": [etag, last_modified]}.
ALTER TABLE sources ADD COLUMN IF NOT EXISTS child_validators jsonb NOT NULL DEFAULT '{}'::jsonb;

ALTER TABLE sources DROP CONSTRAINT IF EXISTS sources_kind_check;
ALTER TABLE sources ADD CONSTRAINT sources_kind_check
    CHECK (kind IN ('rss', 'atom', 'jsonfeed', 'sitemap', 'auto'));

ALTER TABLE crawl_log DROP CONSTRAINT IF EXISTS crawl_log_request_kind_check;
ALTER TABLE crawl_log ADD CONSTRAINT crawl_log_request_kind_check
    CHECK (request_kind IN ('feed', 'article', 'extract', 'robots'));

-- robots.txt copies shared by every crawl process (each Airflow task is one): used until they expire
-- (NEWSDEDUP_ROBOTS_TTL), then revalidated with a conditional GET.
CREATE TABLE IF NOT EXISTS robots_txt (
    origin         text PRIMARY KEY,
    verdict        text NOT NULL CHECK (verdict IN ('parsed', 'allow_all')),
    reason         text NOT NULL,
    body           text,
    etag           text,
    last_modified  text,
    fetched_at     timestamptz NOT NULL
);
