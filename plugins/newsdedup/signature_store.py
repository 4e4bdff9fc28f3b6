"""The persistence seam of deduplication (`SignatureStore`) and its in-memory reference (`MemoryStore`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from newsdedup.dedup_records import ClusterInfo, Decision, StoredDoc
from newsdedup.minhash import BandKey


class SignatureStore(Protocol):
    """Persistence seam; every method works on batches. `MemoryStore` is the reference.

    `newsdedup.dedup_store.PgSignatureStore` keeps the same state in PostgreSQL (docs/schema.md):
    `article_signatures` (signature and shingle hashes per article), `lsh_bands` (band hash ->
    article), `articles.cluster_id` and `story_clusters` (each story's canonical article),
    `common_shingles` (cross-story marks) and `source_boilerplate` (marks per source). uint32 arrays
    travel as little-endian bytes (`arr.astype('<u4').tobytes()`); a uint32 hash fits `integer` as
    `np.int32` (`arr.view(np.int32)`), converted back with `.view(np.uint32)`.
    """

    def candidates(self, key_lists: Sequence[Sequence[BandKey]], limit: int) -> list[dict[int, int]]:
        """Per key list: ids sharing a key -> number of shared keys, the `limit` most first."""
        ...

    def get(self, ids: Collection[int]) -> dict[int, StoredDoc]:
        """Stored articles by id (unknown ids are left out)."""
        ...

    def clusters(self, cluster_ids: Collection[int]) -> dict[int, ClusterInfo]:
        """Cluster rows by id (unknown ids are left out)."""
        ...

    def marks(self, hashes: np.ndarray) -> dict[int, int]:
        """Mark counts of those `hashes` (uint32) that have any."""
        ...

    def source_marks(self, hashes: Mapping[str, np.ndarray]) -> dict[str, dict[int, int]]:
        """Per source: source-mark counts of those of its `hashes` (uint32) that have any."""
        ...

    def add(
        self,
        docs: Sequence[StoredDoc],
        band_keys: Sequence[Sequence[BandKey]],
        clusters: Sequence[ClusterInfo],
        marks: Mapping[int, int],
        source_marks: Mapping[str, Mapping[int, int]],
        moved: Sequence[Decision] = (),
    ) -> None:
        """In one transaction: insert docs with band keys, upsert clusters, add to mark counts,
        move stored one-article stories into the cluster of their new decision (and drop their cluster)."""
        ...


class MemoryStore:
    """In-memory `SignatureStore` (offline clustering and tests)."""

    def __init__(self) -> None:
        """Start empty."""
        self._docs: dict[int, StoredDoc] = {}
        self._bands: dict[BandKey, list[int]] = defaultdict(list)
        self._clusters: dict[int, ClusterInfo] = {}
        self._marks: dict[int, int] = {}
        self._source_marks: dict[str, dict[int, int]] = defaultdict(dict)

    def candidates(self, key_lists: Sequence[Sequence[BandKey]], limit: int) -> list[dict[int, int]]:
        """Per key list: ids sharing a key -> number of shared keys, the `limit` most first."""
        out = []
        for keys in key_lists:
            hits: dict[int, int] = defaultdict(int)
            for key in keys:
                for doc_id in self._bands.get(key, ()):
                    hits[doc_id] += 1
            ranked = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            out.append(dict(ranked))
        return out

    def get(self, ids: Collection[int]) -> dict[int, StoredDoc]:
        """Stored articles by id."""
        return {i: self._docs[i] for i in ids if i in self._docs}

    def clusters(self, cluster_ids: Collection[int]) -> dict[int, ClusterInfo]:
        """Cluster rows by id."""
        return {i: self._clusters[i] for i in cluster_ids if i in self._clusters}

    def marks(self, hashes: np.ndarray) -> dict[int, int]:
        """Mark counts of those `hashes` that have any."""
        marked = self._marks
        return {h: marked[h] for h in np.unique(hashes).tolist() if h in marked}

    def source_marks(self, hashes: Mapping[str, np.ndarray]) -> dict[str, dict[int, int]]:
        """Per source: source-mark counts of those of its `hashes` that have any."""
        out = {}
        for source, values in hashes.items():
            marked = self._source_marks.get(source, {})
            out[source] = {h: marked[h] for h in np.unique(values).tolist() if h in marked}
        return out

    def add(
        self,
        docs: Sequence[StoredDoc],
        band_keys: Sequence[Sequence[BandKey]],
        clusters: Sequence[ClusterInfo],
        marks: Mapping[int, int],
        source_marks: Mapping[str, Mapping[int, int]],
        moved: Sequence[Decision] = (),
    ) -> None:
        """Insert docs and band keys, upsert clusters, add to mark counts, move late joiners."""
        if len(docs) != len(band_keys):
            raise ValueError("one band-key list per doc is required")
        for doc in docs:
            if doc.id in self._docs:
                raise ValueError(f"article {doc.id} is already stored")
        for doc, keys in zip(docs, band_keys, strict=True):
            self._docs[doc.id] = doc
            for key in keys:
                self._bands[key].append(doc.id)
        for late in moved:
            self._docs[late.doc_id] = replace(self._docs[late.doc_id], cluster_id=late.cluster_id)
            self._clusters.pop(late.doc_id, None)
        for info in clusters:
            self._clusters[info.cluster_id] = info
        for h, n in marks.items():
            self._marks[h] = self._marks.get(h, 0) + n
        for source, counts in source_marks.items():
            mine = self._source_marks[source]
            for h, n in counts.items():
                mine[h] = mine.get(h, 0) + n

    def marked(self, min_marks: int = 1) -> int:
        """How many shingle hashes have at least `min_marks` marks."""
        return sum(1 for n in self._marks.values() if n >= min_marks)
