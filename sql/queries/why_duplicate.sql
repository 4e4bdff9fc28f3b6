-- Why articles were marked duplicates: the verified match, its similarity, method and threshold.
SELECT d.article_id, d.source, left(d.title, 45) AS title,
       d.matched_article_id AS matched, d.method, round(d.similarity::numeric, 3) AS similarity,
       round(d.jaccard::numeric, 3) AS jaccard, round(d.containment::numeric, 3) AS containment,
       d.threshold, d.params_version
FROM article_duplicates d
ORDER BY d.cluster_id, d.article_id;
