"""Offline clustering of a JSONL file of articles (`newsdedup cluster`), in memory by default."""

from __future__ import annotations

import json
import logging
import tempfile
from collections import defaultdict
from datetime import datetime
from os import PathLike

from newsdedup.dedup import Deduplicator
from newsdedup.dedup_records import Decision, Doc
from newsdedup.minhash import DedupParams
from newsdedup.signature_store import MemoryStore, SignatureStore
from newsdedup.timeparse import parse_datetime

log = logging.getLogger(__name__)


def _published_at(value: object, lineno: int) -> datetime | None:
    """A record's published_at (see `parse_datetime`); anything unparsable is dropped with a warning."""
    if value in (None, ""):
        return None
    parsed = parse_datetime(str(value))
    if parsed is None:
        log.warning("line %d: ignoring unparsable published_at %r", lineno, value)
    return parsed


def cluster_jsonl(
    input_path: str | PathLike[str],
    output_path: str | PathLike[str],
    params: DedupParams | None = None,
    *,
    store: SignatureStore | None = None,
    batch_size: int = 256,
) -> dict[str, int]:
    """Cluster a JSONL file of articles; write one `{id, cluster, canonical, similarity}` line each.

    Input lines: `{"id", "title", "text"}` plus optional `url`, `published_at`, `source`;
    blank lines are skipped and a repeated id keeps its first occurrence. Texts are read one
    batch at a time; decisions go to a temporary file and are rewritten at the end so that
    `canonical` is each cluster's final canonical article. `cluster` is the id of the
    cluster's first article and `similarity` the deciding score (1.0 for a new cluster).
    """
    params = params or DedupParams()
    store = store if store is not None else MemoryStore()
    dedup = Deduplicator(params, store)
    original_ids: list[object] = []
    index: dict[object, int] = {}
    counts: dict[str, int] = defaultdict(int)

    with (
        open(input_path, encoding="utf-8") as fin,
        tempfile.TemporaryFile("w+", encoding="utf-8") as tmp,
    ):

        late: dict[int, Decision] = {}

        def flush(batch: list[Doc]) -> None:
            for decision in dedup.assign_batch(batch):
                counts[decision.method] += 1
                tmp.write(f"{decision.doc_id}\t{decision.cluster_id}\t{decision.similarity:.4f}\n")
            ids = {d.id for d in batch}
            for d in dedup.moved:
                late[d.doc_id] = d
                if d.doc_id not in ids:  # counted as a new story in an earlier batch
                    counts["new"] -= 1
                    counts[d.method] += 1
            batch.clear()

        batch: list[Doc] = []
        for lineno, line in enumerate(fin, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                raw_id = record["id"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{input_path}:{lineno}: not an article object with an id") from exc
            if isinstance(raw_id, list | dict) or raw_id in index:
                counts["skipped"] += 1
                log.warning("line %d: skipping repeated or unusable id %r", lineno, raw_id)
                continue
            index[raw_id] = len(original_ids)
            original_ids.append(raw_id)
            batch.append(
                Doc(
                    id=index[raw_id],
                    text=str(record.get("text") or ""),
                    title=str(record.get("title") or ""),
                    published_at=_published_at(record.get("published_at"), lineno),
                    source=record.get("source"),
                    url=record.get("url"),
                )
            )
            if len(batch) >= batch_size:
                flush(batch)
        flush(batch)
        del index

        def final(line: str) -> tuple[int, int, float]:
            doc_id, cluster_id, similarity = line.rstrip("\n").split("\t")
            moved = late.get(int(doc_id))
            if moved is not None:
                return moved.doc_id, moved.cluster_id, moved.similarity
            return int(doc_id), int(cluster_id), float(similarity)

        tmp.seek(0)
        cluster_ids = {final(line)[1] for line in tmp}
        infos = store.clusters(cluster_ids)
        tmp.seek(0)
        with open(output_path, "w", encoding="utf-8") as fout:
            for line in tmp:
                doc_id, cluster, similarity = final(line)
                out = {
                    "id": original_ids[doc_id],
                    "cluster": original_ids[cluster],
                    "canonical": original_ids[infos[cluster].canonical_id],
                    "similarity": similarity,
                }
                fout.write(json.dumps(out, ensure_ascii=False) + "\n")
    counts["docs"] = len(original_ids)
    counts["clusters"] = len(cluster_ids)
    return dict(counts)
