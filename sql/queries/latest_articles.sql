-- The ten most recently published articles, with their source and language.
SELECT a.published_at, s.name AS source, a.language, left(a.title, 70) AS title
FROM articles a
JOIN sources s USING (source_id)
ORDER BY a.published_at DESC NULLS LAST
LIMIT 10;
