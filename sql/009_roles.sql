-- newsdedup 009: least privilege. `newsdedup_reader` is a NOLOGIN role for analysts: SELECT on the
-- records (sources, runs, crawl log, articles, stories, decisions) and the views, nothing else.
-- The crawler's working state stays private: raw_pages (bodies as fetched, pages that never became
-- articles included; a pruned buffer), robots_txt (a cache of third-party files), and the hashed dedup
-- state (article_signatures, lsh_bands, common_shingles, source_boilerplate). Logins are granted the
-- role by an administrator (scripts/pg.sh reader-url does it for the private cluster), never here.
-- Roles belong to the whole cluster: the role is created only when missing (an owner without CREATEROLE
-- can migrate once it exists), and an existing one is left as it is. Documented in docs/schema.md.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'newsdedup_reader') THEN
        CREATE ROLE newsdedup_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created meanwhile by the migration of another database of the same cluster
END $$;

GRANT USAGE ON SCHEMA public TO newsdedup_reader;
GRANT SELECT ON
    schema_migrations, sources, pipeline_runs, source_runs, crawl_log, page_failures,
    articles, removed_segments, article_versions, story_clusters, duplicate_decisions, dedup_params,
    articles_dedup, article_duplicates, source_boilerplate_summary
TO newsdedup_reader;
