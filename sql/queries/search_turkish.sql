-- Full-text search in Turkish (stemmed: "müzakere" also finds "müzakereler"), one row per story.
SELECT d.cluster_id, round(ts_rank(a.search_vector, q)::numeric, 3) AS rank, left(d.title, 70) AS title
FROM articles_dedup d
JOIN articles a ON a.article_id = d.article_id,
     websearch_to_tsquery('turkish', 'müzakere') AS q
WHERE a.search_vector @@ q
ORDER BY rank DESC, d.cluster_id;
