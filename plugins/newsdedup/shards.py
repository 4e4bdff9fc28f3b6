"""Crawl shards: which Airflow crawl task reads which source, and the plan of a run (due sources per shard).

A source's shard is a hash of its host (`urls.host_key`, the unit of per-host politeness): all sources of
one host are crawled by one task, so one Fetcher spaces their requests, and a source keeps its shard
however many sources are added (only a new shard count moves sources).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from newsdedup.polling import due_sources
from newsdedup.store import Connection
from newsdedup.urls import host_key


@dataclass(frozen=True)
class ShardPlan:
    """The due sources of one crawl shard, by name."""

    shard: int
    shards: int
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """XCom-ready form (the DAG maps its crawl tasks over these)."""
        return {"shard": self.shard, "shards": self.shards, "sources": self.sources}


def shard_of(url: str, shards: int) -> int:
    """The shard of a source's URL: a stable hash of its host (never Python's salted hash())."""
    digest = hashlib.blake2b(host_key(url).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def plan(conn: Connection, shards: int, now: datetime | None = None) -> list[ShardPlan]:
    """Every shard (empty ones too) with its due sources (`polling.due_sources`), by name: two queries, no loop."""
    due = set(due_sources(conn, now))
    with conn.cursor() as cur:
        cur.execute("SELECT name, url FROM sources WHERE enabled ORDER BY name")
        rows = cur.fetchall()
    plans = [ShardPlan(i, shards) for i in range(shards)]
    for name, url in rows:
        if name in due:
            plans[shard_of(url, shards)].sources.append(name)
    return plans
