"""bench/polling_scale.py at a small size: the second hour fetches only the due feeds, counted at the servers."""

import pytest

from bench.polling_scale import kind, two_hours

pytestmark = pytest.mark.integration


def test_the_second_hour_fetches_only_the_busy_feeds(db_url: str) -> None:
    first, second = two_hours(db_url, sources=60, hosts=3, shards=2)
    busy = sum(kind(n) == "busy" for n in range(60))
    assert (first["due"], first["feeds_fetched"], first["pages"], first["robots"]) == (60, 60, 120, 3)
    # Rare feeds told their pace (sy:updatePeriod, ttl, max-age) or their dates did: not due an hour later.
    assert (second["due"], second["feeds_fetched"], second["busy_fetched"]) == (busy, busy, busy)
    assert first["not_due_fetched"] == second["not_due_fetched"] == 0
    assert second["pages"] == 2 * busy and second["feed_requests"] == busy
    assert sum(first["per_shard"]) == 60 and len(first["per_shard"]) == 2
