-- Segments removed from articles' text (repeated headlines, repeated leads), and why.
SELECT r.article_id, left(a.title, 40) AS title, r.position, r.kind, r.reason,
       round(r.similarity::numeric, 2) AS similarity, left(r.segment, 60) AS segment
FROM removed_segments r
JOIN articles a USING (article_id)
ORDER BY r.article_id, r.position, r.sentence NULLS FIRST;
