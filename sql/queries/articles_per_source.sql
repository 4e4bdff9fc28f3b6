-- Articles stored per source and language, with the source's last crawl (its latest row of source_runs,
-- from a DAG run or `newsdedup ingest`): its status and what failed in it (feed, article fetches, pages
-- without text), not the failures of all time.
WITH last_crawl AS (
    SELECT DISTINCT ON (source_id) source_id, status,
           (status = 'failed')::int + pages_failed + extract_failed AS failed
    FROM source_runs
    ORDER BY source_id, run_id DESC
)
SELECT s.name AS source,
       a.language,
       count(*) AS articles,
       l.status AS last_crawl,
       l.failed AS last_crawl_failed
FROM articles a
JOIN sources s USING (source_id)
LEFT JOIN last_crawl l USING (source_id)
GROUP BY s.source_id, s.name, a.language, l.status, l.failed
ORDER BY articles DESC, source;
