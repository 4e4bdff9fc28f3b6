-- Each enabled source's polling schedule (adaptive polling, see `sources` in docs/schema.md): the due ones
-- first, then by next due time, with the interval, why it is that long, and what the last poll found.
SELECT source,
       due,
       next_due_at,
       poll_interval,
       why,
       last_polled_at,
       last_new_items
FROM source_schedule
WHERE enabled
ORDER BY due DESC, next_due_at NULLS FIRST, source;
