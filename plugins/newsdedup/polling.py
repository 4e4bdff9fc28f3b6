"""Adaptive polling: when each source is next due, learned from how often it really changes.

After every crawl of a source, `record_poll` turns what the crawl saw (a `PollObservation`) into the
source's next poll interval and stores `next_due_at = now + interval` on its `sources` row:

- no interval yet (first poll): how often the feed's own dated entries say it publishes (its entries
  over the time from the oldest of them to now: `publishing_interval`), or START_SECONDS (today's hourly
  run) when fewer than two entries carry a date;
- the feed listed new links (URLs neither stored nor given up): the interval shrinks, to the mean
  time between new links since the last poll (elapsed / new links) but at most by half (SHRINK);
- the feed answered 304, or listed nothing new: the interval grows by GROW;
- the feed failed: the interval is kept (the host back-off of newsdedup.politeness deals with errors);
- never faster than the feed asks: its RSS `<ttl>`, `sy:updatePeriod`/`sy:updateFrequency` or the
  response's `Cache-Control: max-age`, the longest of them, is a lower bound (`why`: feed_declared);
- then clamped between the floor and the ceiling: `NEWSDEDUP_POLL_FLOOR_MINUTES` (15) and
  `NEWSDEDUP_POLL_CEILING_HOURS` (24), or the source's own `poll_min` / `poll_max` from the sources file;
- a source with `poll_every` in the sources file is polled at that fixed interval, whatever it does;
- a crawl that left links behind (time budget, `max_articles`, pages worth a retry) makes the source due
  again at once (`due_again`, `why`: backlog): its links wait for the next run, not for the interval.

`due_sources` lists the enabled sources due at a time (never polled, or `next_due_at` passed), with one
indexed query. The view `source_schedule` shows every source's schedule (docs/schema.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import psycopg2.extras

from newsdedup import settings
from newsdedup.config import ConfigError
from newsdedup.store import Connection

if TYPE_CHECKING:
    from newsdedup.feeds import FeedEntry
    from newsdedup.sources import Discovery, Source

FeedStatus = Literal["ok", "not_modified", "failed"]
START_SECONDS = 3600
SHRINK = 0.5
GROW = 1.5
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?([0-9]{1,9})\"?", re.IGNORECASE)


@dataclass(frozen=True)
class PollObservation:
    """What one crawl of a source tells about how often it changes."""

    new_items: int  # links the feed listed that were not seen before
    feed_status: FeedStatus
    declared_seconds: int | None = None  # the feed's <ttl> or sy:updatePeriod / sy:updateFrequency
    max_age_seconds: int | None = None  # the feed response's Cache-Control max-age
    published_every_seconds: float | None = None  # what its entries' dates say (publishing_interval)


@dataclass(frozen=True)
class Bounds:
    """The shortest and longest interval of one source, in seconds."""

    floor: int
    ceiling: int

    def clamp(self, seconds: float) -> int:
        """seconds within the bounds, whole."""
        return round(min(max(seconds, self.floor), self.ceiling))


def default_bounds() -> Bounds:
    """NEWSDEDUP_POLL_FLOOR_MINUTES and NEWSDEDUP_POLL_CEILING_HOURS in seconds; ConfigError when floor > ceiling."""
    env = settings.load()
    floor, ceiling = env.poll_floor_minutes * 60, env.poll_ceiling_hours * 3600
    if floor > ceiling:
        raise ConfigError(
            f"NEWSDEDUP_POLL_FLOOR_MINUTES ({env.poll_floor_minutes}) is longer than NEWSDEDUP_POLL_CEILING_HOURS "
            f"({env.poll_ceiling_hours}): the floor must not be above the ceiling"
        )
    return Bounds(floor, ceiling)


def source_bounds(defaults: Bounds, poll_min: int | None, poll_max: int | None) -> Bounds:
    """The bounds of a source: its own poll_min / poll_max where given (they win over the defaults)."""
    floor, ceiling = poll_min or defaults.floor, poll_max or defaults.ceiling
    if poll_min is not None and poll_max is None:
        ceiling = max(ceiling, floor)
    return Bounds(min(floor, ceiling), ceiling)


def next_interval(
    previous: int | None, elapsed: float | None, observation: PollObservation, bounds: Bounds
) -> tuple[int, str]:
    """The learned interval after one poll (seconds) and why: 'learned' or 'feed_declared'."""
    interval = float(previous or observation.published_every_seconds or START_SECONDS)
    if previous is not None and observation.feed_status == "ok" and observation.new_items > 0:
        between = (elapsed if elapsed and elapsed > 0 else interval) / observation.new_items
        interval = max(interval * SHRINK, min(interval, between))
    elif previous is not None and observation.feed_status != "failed":
        interval *= GROW
    declared = max(observation.declared_seconds or 0, observation.max_age_seconds or 0)
    if declared > interval:
        return bounds.clamp(declared), "feed_declared"
    return bounds.clamp(interval), "learned"


def max_age(cache_control: str | None) -> int | None:
    """The max-age of a Cache-Control header in seconds; None when absent or zero."""
    match = _MAX_AGE.search(cache_control or "")
    return (int(match[1]) or None) if match else None


def publishing_interval(entries: Sequence[FeedEntry], now: datetime) -> float | None:
    """Seconds per entry over the time the dated entries cover, up to now; None with fewer than two dates.

    A feed whose ten entries span three weeks publishes about every two days, and one whose newest entry
    is a month old less often still: dates in the future (a broken feed clock) are left out.
    """
    dates = [d for e in entries if (d := e.published_at or e.updated_at) is not None and d <= now]
    if len(dates) < 2:
        return None
    return max((now - min(dates)).total_seconds(), 1.0) / len(dates)


def observe(found: Discovery, new_items: int, now: datetime | None = None) -> PollObservation:
    """The observation of one discovery of a source, with the count of links not seen before."""
    status: FeedStatus = "failed" if found.error else "not_modified" if found.not_modified else "ok"
    feed = found.fetches[0] if found.fetches else None
    return PollObservation(
        new_items,
        status,
        found.declared_seconds,
        max_age(feed and feed.cache_control),
        publishing_interval(found.entries, now or datetime.now(UTC)),
    )


def record_poll(conn: Connection, source_id: int, observation: PollObservation, now: datetime) -> datetime:
    """Learn from one crawl of a source: store its interval and next due time, and return that time."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT poll_interval_seconds, last_polled_at, poll_every_seconds, poll_min_seconds, poll_max_seconds "
            "FROM sources WHERE source_id = %s FOR UPDATE",
            (source_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise ValueError(f"no source with id {source_id}")
        previous, last_polled, every, poll_min, poll_max = row
        if every is not None:
            interval, why = every, "fixed"
        else:
            elapsed = (now - last_polled).total_seconds() if last_polled else None
            bounds = source_bounds(default_bounds(), poll_min, poll_max)
            interval, why = next_interval(previous, elapsed, observation, bounds)
        due = now + timedelta(seconds=interval)
        cur.execute(
            "UPDATE sources SET poll_interval_seconds = %s, next_due_at = %s, last_polled_at = %s, "
            "last_new_items = %s, poll_reason = %s WHERE source_id = %s",
            (interval, due, now, observation.new_items, why, source_id),
        )
    return due


def due_again(conn: Connection, source_id: int) -> None:
    """A crawl left links behind (time budget, per-run limit, pages worth a retry): due at the next run."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE sources SET next_due_at = last_polled_at, poll_reason = 'backlog' WHERE source_id = %s",
            (source_id,),
        )


def due_now(conn: Connection, names: Sequence[str] | None = None) -> int:
    """Make the named sources (default: all) due at once, their learned interval kept; how many were changed."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE sources SET next_due_at = NULL WHERE next_due_at IS NOT NULL AND (%s OR name = ANY(%s))",
            (names is None, list(names or [])),
        )
        return cur.rowcount


def due_sources(conn: Connection, now: datetime | None = None) -> list[str]:
    """Names of the enabled sources due at `now` (default: this moment): never polled, or next_due_at passed."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT name FROM sources WHERE enabled AND (next_due_at IS NULL OR next_due_at <= %s) ORDER BY name",
            (now or datetime.now(UTC),),
        )
        return [name for (name,) in cur.fetchall()]


def save_overrides(conn: Connection, sources: Sequence[Source]) -> None:
    """Store each source's poll_every / poll_min / poll_max; a shorter fixed or longest interval applies at once."""
    if not sources:
        return
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "UPDATE sources s SET poll_every_seconds = v.every, poll_min_seconds = v.lo, poll_max_seconds = v.hi, "
            "next_due_at = LEAST(s.next_due_at, s.last_polled_at + make_interval(secs => COALESCE(v.every, v.hi))) "
            "FROM (VALUES %s) AS v (name, every, lo, hi) WHERE s.name = v.name",
            [(s.name, s.poll_every, s.poll_min, s.poll_max) for s in sources],
            template="(%s, %s::integer, %s::integer, %s::integer)",
        )
