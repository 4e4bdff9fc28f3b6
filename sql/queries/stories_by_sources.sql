-- Stories carried by the most sources.
SELECT cluster_id, cardinality(sources) AS n_sources, copies, left(title, 70) AS title, sources
FROM articles_dedup
WHERE copies > 1
ORDER BY n_sources DESC, copies DESC, published_at DESC
LIMIT 10;
