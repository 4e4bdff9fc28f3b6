-- All copies of one article (here: the story with the most copies; put an article_id in `picked`).
WITH picked AS (
    SELECT canonical_article_id AS article_id FROM story_clusters ORDER BY size DESC, cluster_id LIMIT 1
)
SELECT a.article_id, s.name AS source, a.published_at, a.word_count,
       (a.article_id = c.canonical_article_id) AS canonical, left(a.title, 60) AS title, a.url
FROM picked
JOIN articles p ON p.article_id = picked.article_id
JOIN story_clusters c ON c.cluster_id = p.cluster_id
JOIN articles a ON a.cluster_id = c.cluster_id
LEFT JOIN sources s ON s.source_id = a.source_id
ORDER BY canonical DESC, a.published_at;
