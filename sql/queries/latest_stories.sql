-- Latest stories: one row per story (copies collapsed), newest first, with the sources that carried it.
SELECT cluster_id, published_at, language, copies, left(title, 70) AS title, sources
FROM articles_dedup
ORDER BY published_at DESC NULLS LAST, cluster_id
LIMIT 10;
