"""Per-host politeness: gaps between requests to one host, origins left alone, connections in flight."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from newsdedup.outcomes import FetchResult, Outcome


class _HostSlot:
    """Per-host politeness state."""

    __slots__ = ("lock", "next_at", "delay")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_at = 0.0
        self.delay = 0.0


class HostThrottle:
    """Enforce a minimum gap between request starts to the same host, across threads."""

    def __init__(
        self,
        min_delay: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.min_delay = min_delay
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, _HostSlot] = {}

    def _slot(self, host: str) -> _HostSlot:
        with self._lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = _HostSlot()
            return slot

    def set_delay(self, host: str, delay: float) -> None:
        """Raise this host's gap (e.g. robots.txt Crawl-delay); never below min_delay."""
        slot = self._slot(host)
        with slot.lock:
            slot.delay = max(slot.delay, delay)

    def delay_for(self, host: str) -> float:
        """Current gap enforced for host."""
        slot = self._slot(host)
        with slot.lock:
            return max(self.min_delay, slot.delay)

    def defer(self, host: str, seconds: float) -> None:
        """Make the next request to host wait at least `seconds` from now (Retry-After)."""
        slot = self._slot(host)
        with slot.lock:
            slot.next_at = max(slot.next_at, self._clock() + seconds)

    def wait(self, host: str) -> float:
        """Block until host may be contacted again; return the seconds slept."""
        slot = self._slot(host)
        with slot.lock:
            now = self._clock()
            start = max(now, slot.next_at)
            # Reserve the slot now and sleep outside the lock so other threads queue up in order.
            slot.next_at = start + max(self.min_delay, slot.delay)
        pause = start - now
        if pause > 0:
            self._sleep(pause)
        return max(pause, 0.0)


class HostHealth:
    """Origins (scheme://host:port) to leave alone for a while: they asked for a long back-off, or keep failing."""

    def __init__(self, max_failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._closed: dict[str, tuple[float, str]] = {}

    def closed(self, origin: str) -> str | None:
        """Why origin must not be contacted now, or None."""
        with self._lock:
            until, reason = self._closed.get(origin, (0.0, ""))
            if until <= self._clock():
                return None
            if until == math.inf:
                return f"{reason}; not contacted again in this run"
            return f"{reason}; not contacted for another {until - self._clock():.0f} s"

    def close(self, origin: str, seconds: float, reason: str) -> None:
        """Leave origin alone for `seconds`."""
        with self._lock:
            self._closed[origin] = (self._clock() + seconds, reason)

    def record(self, origin: str, result: FetchResult) -> None:
        """Count consecutive transport failures of origin; a response of any kind resets the count."""
        with self._lock:
            if result.status is not None:
                self._failures[origin] = 0
                return
            if result.outcome not in (Outcome.TIMEOUT, Outcome.CONNECTION_ERROR):
                return
            failures = self._failures[origin] = self._failures.get(origin, 0) + 1
            if failures >= self.max_failures:
                self._failures[origin] = 0
                reason = f"{failures} timeouts or connection errors in a row (last: {result.error_class})"
                self._closed[origin] = (self._clock() + self.cooldown, reason)


_SLOTS_LOCK = threading.Lock()
_SLOTS: dict[int, threading.BoundedSemaphore] = {}


def connection_slots(limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore shared by every Fetcher whose policy allows `limit` connections."""
    with _SLOTS_LOCK:
        slots = _SLOTS.get(limit)
        if slots is None:
            slots = _SLOTS[limit] = threading.BoundedSemaphore(limit)
        return slots
