"""Near-duplicate story clustering: MinHash LSH finds candidates, stored shingle hashes verify them.

How a new article is assigned (`Deduplicator.assign` / `assign_batch`):

1. Its normalised word 4-gram shingles are hashed to a sorted set of uint32 values; a MinHash
   signature of that set (datasketch 2.0, affine32) gives LSH band keys (see `minhash`).
2. Stored articles sharing a band key are candidates (at most `max_candidates`, most shared
   bands first). Each candidate is verified on the exact shingle-hash sets, with "common"
   shingle hashes removed from both sides: hashes that at least `min_marks` articles have
   shared with an article of another cluster (outlet templates, quoted background paragraphs,
   stock phrases). If the new article
   is almost entirely common shingles (fewer than `min_shared` informative ones), the full sets
   are compared instead.
3. A candidate matches when the normalised texts are identical ('exact'), or the informative
   Jaccard >= `threshold` ('minhash'), or the informative containment of the smaller set in the
   larger >= `containment_threshold` with at least `min_shared` shared shingles ('containment').
   The article joins the cluster of the best match (exact, then Jaccard, then containment,
   then the higher score); with no match it starts a cluster whose id is its own id.
   Clusters never merge: an article bridging two clusters joins the better match.
4. Whenever verified candidates from other clusters do not match, the shingle hashes the new
   article shares with them get one mark each (once per article). This is the incremental
   document-frequency state: it grows only by cross-story overlaps (one counter per hash), so
   it lives in one indexed table. Two marks are required by default because one near miss
   between two variants of the same story (arriving before their original) would otherwise
   mark that story's own text as boilerplate.

Canonical article of a cluster: the earliest `published_at` (missing dates sort last; naive
datetimes are taken as UTC), then the longest text, then the smallest id. A decision reports
when the new article displaced the previous canonical.

Stored state belongs to one `DedupParams.version`; candidates of another version are ignored
(band hashes are salted with the version, so they do not even collide in practice).
`assign_batch` reads the store, decides, then writes everything in one `add` call: callers
must not run two batches against the same store at the same time (e.g. hold an advisory lock).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from os import PathLike
from typing import Literal, Protocol

import numpy as np
import xxhash

from newsdedup.minhash import (
    BandKey,
    DedupParams,
    band_keys,
    estimate_jaccard,
    shingle_hashes,
    signer_for,
    tokens_of_normalized,
)
from newsdedup.normalize import normalize_for_compare

__all__ = [
    "BandKey", "ClusterInfo", "Decision", "DedupParams", "Deduplicator", "Doc", "Fingerprint", "MemoryStore",
    "Method", "SignatureStore", "StoredDoc", "band_keys", "canonical_key", "cluster_jsonl",
    "fingerprint_text", "signature_jaccard",
]

log = logging.getLogger(__name__)

Method = Literal["new", "minhash", "containment", "exact"]

_EMPTY = np.empty(0, dtype=np.uint32)
_LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """What an article is compared by, under one `DedupParams.version`: computed once, where the CPU is."""

    params_version: str
    shingles: np.ndarray = field(repr=False)
    signature: np.ndarray = field(repr=False)
    keys: list[BandKey] = field(repr=False)
    text_hash: int
    length: int


def fingerprint_text(text: str, title: str, params: DedupParams, norm: str | None = None) -> Fingerprint:
    """Shingle hashes, signature, band keys and exact-text hash of `text` (of `title` when the text is empty).

    `norm`, when given, must be normalize_for_compare(text) (clean_article folds the text on the way).
    """
    if not (text and text.strip()):
        text, norm = title or "", None
    norm = normalize_for_compare(text) if norm is None else norm
    signer = signer_for(params)
    shingles = shingle_hashes(tokens_of_normalized(norm), params.shingle_k)
    signature = signer.signature(shingles)
    keys = signer.band_keys(signature) if len(shingles) else []
    text_hash = _signed64(xxhash.xxh64_intdigest(norm.encode("utf-8")))
    return Fingerprint(params.version, shingles, signature, keys, text_hash, len(text))


@dataclass(frozen=True)
class Doc:
    """An article to assign; only `text` (or `title` when the text is empty) is compared."""

    id: int
    text: str
    title: str = ""
    published_at: datetime | None = None
    source: str | None = None
    url: str | None = None
    fingerprint: Fingerprint | None = field(default=None, repr=False, compare=False)  # used if its version fits


@dataclass(frozen=True, eq=False)
class StoredDoc:
    """What the store keeps per article: signature and shingle hashes are uint32 arrays."""

    id: int
    cluster_id: int
    params_version: str
    signature: np.ndarray = field(repr=False)
    shingles: np.ndarray = field(repr=False)
    text_hash: int
    length: int
    published_at: datetime | None = None


@dataclass(frozen=True)
class ClusterInfo:
    """A cluster's canonical article and the facts needed to compare a newcomer with it."""

    cluster_id: int
    canonical_id: int
    canonical_published_at: datetime | None
    canonical_length: int
    size: int


@dataclass(frozen=True)
class Decision:
    """Where an article went and why; `threshold` is the one its deciding score was held to."""

    doc_id: int
    cluster_id: int
    canonical_id: int
    matched_id: int | None
    jaccard: float | None
    containment: float | None
    method: Method
    threshold: float
    params_version: str
    is_canonical: bool
    replaced_canonical_id: int | None = None
    shared: int = 0
    candidates: int = 0

    @property
    def similarity(self) -> float:
        """The deciding score (1.0 for 'new' and 'exact')."""
        if self.method == "minhash":
            return float(self.jaccard or 0.0)
        if self.method == "containment":
            return float(self.containment or 0.0)
        return 1.0


class SignatureStore(Protocol):
    """Persistence seam; every method works on batches. `MemoryStore` is the reference.

    Suggested PostgreSQL tables: `lsh_bands(band_no smallint, band_hash bigint, article_id
    bigint)` indexed on (band_hash, band_no); `dedup_docs(article_id bigint primary key,
    cluster_id bigint, params_version text, signature bytea, shingles bytea, text_hash bigint,
    length int, published_at timestamptz)`; `dedup_clusters(cluster_id bigint primary key,
    canonical_id bigint, canonical_published_at timestamptz, canonical_length int, size int)`;
    `shingle_marks(hash integer primary key, marks int)`. uint32 arrays travel as
    little-endian bytes (`arr.astype('<u4').tobytes()`); a uint32 hash fits `integer` as
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

    def add(
        self,
        docs: Sequence[StoredDoc],
        band_keys: Sequence[Sequence[BandKey]],
        clusters: Sequence[ClusterInfo],
        marks: Mapping[int, int],
    ) -> None:
        """In one transaction: insert docs with band keys, upsert clusters, add to mark counts."""
        ...


class MemoryStore:
    """In-memory `SignatureStore` (offline clustering and tests)."""

    def __init__(self) -> None:
        """Start empty."""
        self._docs: dict[int, StoredDoc] = {}
        self._bands: dict[BandKey, list[int]] = defaultdict(list)
        self._clusters: dict[int, ClusterInfo] = {}
        self._marks: dict[int, int] = {}

    def __len__(self) -> int:
        """Number of stored articles."""
        return len(self._docs)

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

    def add(
        self,
        docs: Sequence[StoredDoc],
        band_keys: Sequence[Sequence[BandKey]],
        clusters: Sequence[ClusterInfo],
        marks: Mapping[int, int],
    ) -> None:
        """Insert docs and band keys, upsert clusters, add to mark counts."""
        if len(docs) != len(band_keys):
            raise ValueError("one band-key list per doc is required")
        for doc in docs:
            if doc.id in self._docs:
                raise ValueError(f"article {doc.id} is already stored")
        for doc, keys in zip(docs, band_keys, strict=True):
            self._docs[doc.id] = doc
            for key in keys:
                self._bands[key].append(doc.id)
        for info in clusters:
            self._clusters[info.cluster_id] = info
        for h, n in marks.items():
            self._marks[h] = self._marks.get(h, 0) + n

    def marked(self, min_marks: int = 1) -> int:
        """How many shingle hashes have at least `min_marks` marks."""
        return sum(1 for n in self._marks.values() if n >= min_marks)


@dataclass(frozen=True, eq=False)
class _Prepared(Fingerprint):
    """A new article with its fingerprint."""

    doc: Doc


@dataclass(eq=False)
class _Check:
    """One verified candidate."""

    stored: StoredDoc
    jaccard: float
    containment: float
    shared: int
    method: Method | None
    overlap: np.ndarray = field(default_factory=lambda: _EMPTY, repr=False)

    @property
    def rank(self) -> tuple[bool, bool, float, int, int]:
        """Sort key, larger is better."""
        score = self.jaccard if self.method == "minhash" else self.containment
        return (self.method == "exact", self.method == "minhash", score, self.shared, -self.stored.id)


def _as_utc(value: datetime | None) -> datetime:
    """Comparable instant; missing dates sort last."""
    if value is None:
        return _LATEST
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def canonical_key(published_at: datetime | None, length: int, doc_id: int) -> tuple:
    """Smaller is more canonical: earliest published, then longest text, then smallest id."""
    return (published_at is None, _as_utc(published_at), -length, doc_id)


def _signed64(value: int) -> int:
    """Unsigned 64-bit value as PostgreSQL bigint."""
    return value - (1 << 64) if value >= 1 << 63 else value


class Deduplicator:
    """Assigns articles to story clusters against a `SignatureStore` (see the module docstring)."""

    def __init__(self, params: DedupParams, store: SignatureStore) -> None:
        """Use `params` for signatures and decisions, `store` for state."""
        self.params = params
        self.store = store

    def fingerprint(self, doc: Doc) -> _Prepared:
        """Shingle hashes, signature, band keys and exact-text hash of an article (its own, if it brings one)."""
        found = doc.fingerprint
        if found is None or found.params_version != self.params.version:
            found = fingerprint_text(doc.text, doc.title, self.params)
        return _Prepared(**{f.name: getattr(found, f.name) for f in fields(Fingerprint)}, doc=doc)

    def assign(self, doc: Doc) -> Decision:
        """Assign one article and store it."""
        return self.assign_batch([doc])[0]

    def assign_batch(self, docs: Sequence[Doc]) -> list[Decision]:
        """Assign articles in order (later ones see earlier ones of the batch) and store them."""
        if not docs:
            return []
        if len({d.id for d in docs}) != len(docs):
            raise ValueError("article ids must be unique within a batch")
        p = self.params
        prepared = [self.fingerprint(d) for d in docs]
        remote = self.store.candidates([x.keys for x in prepared], p.max_candidates)
        wanted = set().union(*remote)
        known = {
            i: s for i, s in self.store.get(wanted).items() if s.params_version == p.version
        }
        # Marks matter only where a candidate is verified: articles with a stored candidate or a band key
        # shared within the batch (most new articles have neither), and the stored candidates themselves.
        batch_keys = Counter(key for x in prepared for key in set(x.keys))
        arrays = [
            x.shingles for i, x in enumerate(prepared) if remote[i] or any(batch_keys[key] > 1 for key in x.keys)
        ] + [s.shingles for s in known.values()]
        counts = self.store.marks(np.unique(np.concatenate(arrays))) if arrays else {}
        common = np.array(
            sorted(h for h, n in counts.items() if n >= p.min_marks), dtype=np.uint32
        )
        clusters = self.store.clusters({s.cluster_id for s in known.values()})

        local_bands: dict[BandKey, list[int]] = defaultdict(list)
        new_docs: list[StoredDoc] = []
        changed: dict[int, ClusterInfo] = {}
        new_marks: dict[int, int] = defaultdict(int)
        decisions = []
        for i, item in enumerate(prepared):
            hits = dict(remote[i])
            for key in item.keys:
                for other in local_bands.get(key, ()):
                    hits[other] = hits.get(other, 0) + 1
            hits.pop(item.doc.id, None)
            ranked = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[: p.max_candidates]
            checks = [self._verify(item, known[j], common) for j, _ in ranked if j in known]
            decision, cluster = self._decide(item, checks, clusters)
            decisions.append(decision)
            clusters[cluster.cluster_id] = changed[cluster.cluster_id] = cluster

            overlaps = [
                c.overlap
                for c in checks
                if c.method is None and c.stored.cluster_id != decision.cluster_id and len(c.overlap)
            ]
            if overlaps:
                promoted = []
                for h in np.unique(np.concatenate(overlaps)).tolist():
                    new_marks[h] += 1
                    counts[h] = counts.get(h, 0) + 1
                    if counts[h] == p.min_marks:
                        promoted.append(h)
                if promoted:
                    common = np.union1d(common, np.array(promoted, dtype=np.uint32))

            stored = StoredDoc(
                id=item.doc.id,
                cluster_id=decision.cluster_id,
                params_version=p.version,
                signature=item.signature,
                shingles=item.shingles,
                text_hash=item.text_hash,
                length=item.length,
                published_at=item.doc.published_at,
            )
            new_docs.append(stored)
            known[stored.id] = stored
            for key in item.keys:
                local_bands[key].append(stored.id)

        self.store.add(new_docs, [x.keys for x in prepared], list(changed.values()), new_marks)
        return decisions

    def _verify(self, item: _Prepared, stored: StoredDoc, common: np.ndarray) -> _Check:
        """Compare an article with one candidate on informative shingle hashes."""
        p = self.params
        a_all, b_all = item.shingles, stored.shingles
        overlap = np.intersect1d(a_all, b_all, assume_unique=True)
        if item.text_hash == stored.text_hash:
            return _Check(stored, 1.0, 1.0, len(overlap), "exact", overlap)
        a, b = a_all, b_all
        if len(common):
            a_inf = a_all[~np.isin(a_all, common, assume_unique=True)]
            if len(a_inf) >= p.min_shared:
                a, b = a_inf, b_all[~np.isin(b_all, common, assume_unique=True)]
        shared = (
            len(overlap) if a is a_all else len(np.intersect1d(a, b, assume_unique=True))
        )
        union = len(a) + len(b) - shared
        jaccard = shared / union if union else 0.0
        smaller = min(len(a), len(b))
        containment = shared / smaller if smaller else 0.0
        method: Method | None = None
        if jaccard >= p.threshold:
            method = "minhash"
        elif containment >= p.containment_threshold and shared >= p.min_shared:
            method = "containment"
        return _Check(stored, jaccard, containment, shared, method, overlap)

    def _decide(
        self, item: _Prepared, checks: list[_Check], clusters: dict[int, ClusterInfo]
    ) -> tuple[Decision, ClusterInfo]:
        """Pick the best verified match (or none) and update the cluster's canonical."""
        p, doc = self.params, item.doc
        passing = [c for c in checks if c.method is not None]
        mine = canonical_key(doc.published_at, item.length, doc.id)
        if not passing:
            cluster = ClusterInfo(doc.id, doc.id, doc.published_at, item.length, 1)
            decision = Decision(
                doc_id=doc.id, cluster_id=doc.id, canonical_id=doc.id, matched_id=None,
                jaccard=None, containment=None, method="new", threshold=p.threshold,
                params_version=p.version, is_canonical=True, candidates=len(checks),
            )
            return decision, cluster
        best = max(passing, key=lambda c: c.rank)
        method = best.method or "new"
        old = clusters.get(best.stored.cluster_id) or ClusterInfo(
            best.stored.cluster_id, best.stored.id, best.stored.published_at, best.stored.length, 1
        )
        theirs = canonical_key(old.canonical_published_at, old.canonical_length, old.canonical_id)
        wins = mine < theirs
        cluster = ClusterInfo(
            cluster_id=old.cluster_id,
            canonical_id=doc.id if wins else old.canonical_id,
            canonical_published_at=doc.published_at if wins else old.canonical_published_at,
            canonical_length=item.length if wins else old.canonical_length,
            size=old.size + 1,
        )
        decision = Decision(
            doc_id=doc.id,
            cluster_id=cluster.cluster_id,
            canonical_id=cluster.canonical_id,
            matched_id=best.stored.id,
            jaccard=round(best.jaccard, 6),
            containment=round(best.containment, 6),
            method=method,
            threshold=p.containment_threshold if method == "containment" else p.threshold,
            params_version=p.version,
            is_canonical=wins,
            replaced_canonical_id=old.canonical_id if wins else None,
            shared=best.shared,
            candidates=len(checks),
        )
        return decision, cluster


def signature_jaccard(a: StoredDoc, b: StoredDoc) -> float:
    """MinHash Jaccard estimate of two stored articles; refuses different params versions."""
    if a.params_version != b.params_version:
        raise ValueError(f"params versions differ: {a.params_version} vs {b.params_version}")
    return estimate_jaccard(a.signature, b.signature)


def _parse_time(value: object, lineno: int) -> datetime | None:
    """ISO 8601 text to datetime; anything unparsable is dropped with a warning."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        log.warning("line %d: ignoring unparsable published_at %r", lineno, value)
        return None


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

        def flush(batch: list[Doc]) -> None:
            for decision in dedup.assign_batch(batch):
                counts[decision.method] += 1
                tmp.write(f"{decision.doc_id}\t{decision.cluster_id}\t{decision.similarity:.4f}\n")
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
                    published_at=_parse_time(record.get("published_at"), lineno),
                    source=record.get("source"),
                    url=record.get("url"),
                )
            )
            if len(batch) >= batch_size:
                flush(batch)
        flush(batch)
        del index

        tmp.seek(0)
        cluster_ids = {int(line.split("\t", 2)[1]) for line in tmp}
        infos = store.clusters(cluster_ids)
        tmp.seek(0)
        with open(output_path, "w", encoding="utf-8") as fout:
            for line in tmp:
                doc_id, cluster_id, similarity = line.rstrip("\n").split("\t")
                cluster = int(cluster_id)
                out = {
                    "id": original_ids[int(doc_id)],
                    "cluster": original_ids[cluster],
                    "canonical": original_ids[infos[cluster].canonical_id],
                    "similarity": float(similarity),
                }
                fout.write(json.dumps(out, ensure_ascii=False) + "\n")
    counts["docs"] = len(original_ids)
    counts["clusters"] = len(cluster_ids)
    return dict(counts)
