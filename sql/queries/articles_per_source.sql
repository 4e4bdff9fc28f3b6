-- Articles stored per source and language, with the last crawl's failures.
SELECT s.name AS source,
       a.language,
       count(*) AS articles,
       (SELECT count(*) FROM crawl_log c
         WHERE c.source_id = s.source_id AND c.outcome NOT IN ('ok', 'not_modified')) AS failed_requests
FROM articles a
JOIN sources s USING (source_id)
GROUP BY s.source_id, s.name, a.language
ORDER BY articles DESC, source;
