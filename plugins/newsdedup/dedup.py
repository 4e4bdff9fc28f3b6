"""Near-duplicate story clustering: MinHash LSH finds candidates, stored shingle hashes verify them.

How a new article is assigned (`Deduplicator.assign` / `assign_batch`):

1. Its normalised word 4-gram shingles give a MinHash signature (datasketch 2.0, affine32) and
   LSH band keys; its word 2-gram shingle hashes (a sorted uint32 set) are what is stored and
   verified (see `minhash`; scripts without spaces use characters as words).
2. Stored articles sharing a band key are candidates (at most `max_candidates`, most shared
   bands first). Each candidate is verified on the exact 2-gram hash sets after boilerplate is
   taken out of each side: "common" hashes (ones that at least `min_marks` articles have shared
   with an article of another cluster: stock phrases, quoted background paragraphs) and the
   hashes learnt as boilerplate of that side's own source (below). If the new article is almost
   entirely boilerplate (fewer than `min_shared` informative hashes), the full sets are compared.
3. A candidate matches when the normalised texts are identical ('exact'), or the informative
   Jaccard >= `threshold` ('jaccard'), or the containment of the smaller informative set in the
   larger >= `containment_threshold` ('containment'; `same_source_containment_threshold` between two
   articles of one source, whose pages share its template), or, for a candidate of another (known) source
   published within `rewrite_window_hours`, the Jaccard >= `rewrite_threshold` ('rewrite_jaccard')
   or the containment >= `rewrite_containment_threshold` with Jaccard >= `rewrite_min_jaccard`
   ('rewrite_containment', e.g. a rewrite against an excerpt of its story): an outlet's
   rewrite of a wire story. All but 'exact' and 'jaccard' also need `min_shared` shared hashes.
   A containment match with a smaller, non-canonical member of a story that makes up less than
   `support_share` of the article (a follow-up that repeats the one paragraph a brief consists of)
   stands only if another member or the story's canonical article matches too ('unsupported_by').
   The article joins the cluster of the best match (in that order, then the higher score); with
   no match it starts a cluster whose id is its own id. Clusters never merge: an article
   bridging two clusters joins the better match, and only a one-article cluster it also matched
   joins it too (when that article does not become the canonical one), so a variant that came
   before any copy it matches is not stranded. Every decision carries its evidence.
4. Whenever an article starts a new story, the hashes it shares with verified, non-matching
   candidates get one mark each (once per article): the cross-story document frequency. Two
   marks are required by default because one near miss between two variants of the same story
   (arriving before their original) would otherwise mark that story's own text; copies joining
   a story do not mark, or every copy would mark again what a stranded variant shares with it.
   When such a candidate comes from the article's own source, the shared hashes also get one
   source mark for that source: a source's navigation block, teaser list or byline is learnt as
   soon as two different stories of it have shown it (`min_source_marks`), incrementally, and
   stops counting as evidence for that source's articles only. A story carried by many sources
   is never one source's boilerplate: its copies are one cluster, and each source carries it once.
   An article that matches nothing first learns the long verbatim runs (at least `2 * min_shared`
   shingles) it shares with its own source's other stories, then is checked again, with lead bands
   past that block: a source's second page is already told apart from its block. Lead bands are
   recomputed within a batch as its sources learn.

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
from dataclasses import dataclass, field, fields, replace
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
    shingle_hash_sequence,
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

Method = Literal["new", "exact", "jaccard", "containment", "rewrite_jaccard", "rewrite_containment"]
# Later is better: a rewrite's evidence is weaker than a copy's.
_METHOD_ORDER: tuple[Method, ...] = ("rewrite_containment", "rewrite_jaccard", "containment", "jaccard", "exact")

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
    toks = tokens_of_normalized(norm)
    signature = signer.signature(shingle_hashes(toks, params.shingle_k))
    shingles = shingle_hashes(toks, params.verify_k)
    keys = []
    if len(shingles):
        keys = signer.band_keys(signature)
        if params.lead_bands and len(toks) > params.lead_words:
            keys += signer.lead_keys(signer.signature(shingle_hashes(toks[: params.lead_words], params.shingle_k)))
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
    source: str | None = None


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
    evidence: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def similarity(self) -> float:
        """The deciding score (1.0 for 'new' and 'exact')."""
        if self.method in ("jaccard", "rewrite_jaccard"):
            return float(self.jaccard or 0.0)
        if self.method in ("containment", "rewrite_containment"):
            return float(self.containment or 0.0)
        return 1.0


class SignatureStore(Protocol):
    """Persistence seam; every method works on batches. `MemoryStore` is the reference.

    Suggested PostgreSQL tables: `lsh_bands(band_no smallint, band_hash bigint, article_id
    bigint)` indexed on (band_hash, band_no); `dedup_docs(article_id bigint primary key,
    cluster_id bigint, params_version text, signature bytea, shingles bytea, text_hash bigint,
    length int, published_at timestamptz)`; `dedup_clusters(cluster_id bigint primary key,
    canonical_id bigint, canonical_published_at timestamptz, canonical_length int, size int)`;
    `shingle_marks(hash integer primary key, marks int)`; `source_marks(source, hash, marks)`. uint32 arrays travel as
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


@dataclass(frozen=True, eq=False)
class _Prepared(Fingerprint):
    """A new article with its fingerprint."""

    doc: Doc


@dataclass(eq=False)
class _Check:
    """One verified candidate and the evidence its decision rests on."""

    stored: StoredDoc
    jaccard: float
    containment: float
    shared: int
    method: Method | None
    overlap: np.ndarray = field(default_factory=lambda: _EMPTY, repr=False)
    same_source: bool = False
    hours_apart: float | None = None
    informative: tuple[int, int] = (0, 0)
    threshold: float = 1.0
    unsupported_by: int | None = None  # the story's canonical article, which did not support this match

    @property
    def rank(self) -> tuple[int, float, int, int]:
        """Sort key, larger is better."""
        score = self.containment if self.method in ("containment", "rewrite_containment") else self.jaccard
        order = _METHOD_ORDER.index(self.method) if self.method else -1
        return (order, score, self.shared, -self.stored.id)

    def evidence(self, shingles: str) -> dict[str, object]:
        """What was measured, for `duplicate_decisions.evidence`."""
        return {
            "shingles": shingles,
            "candidate": self.stored.id,
            "jaccard": round(self.jaccard, 4),
            "containment": round(self.containment, 4),
            "shared": self.shared,
            "informative": list(self.informative),
            "same_source": self.same_source,
            "hours_apart": None if self.hours_apart is None else round(self.hours_apart, 1),
        } | ({"unsupported_by": self.unsupported_by} if self.unsupported_by is not None else {})


class _Boilerplate:
    """Hashes that are not evidence: common to many stories, or learnt per source; grows within a batch.

    Stored mark counts are loaded on demand (`load`), once per hash; marks given within the batch add to them.
    """

    def __init__(self, params: DedupParams, store: SignatureStore) -> None:
        """Start with nothing loaded."""
        self.params = params
        self.store = store
        self.counts: dict[int, int] = {}
        self.common = _EMPTY
        self.source_counts: dict[str, dict[int, int]] = {}
        self.by_source: dict[str, np.ndarray] = {}
        self.grown: set[str] = set()  # sources that learnt boilerplate within this batch
        self._loaded = _EMPTY
        self._source_loaded: dict[str, np.ndarray] = {}

    def load(self, common: Sequence[np.ndarray], per_source: Sequence[tuple[str | None, np.ndarray]]) -> None:
        """Add the stored marks of hashes not loaded yet: common marks of `common`, source marks per source."""
        p = self.params
        wanted = _without(np.unique(np.concatenate(common)), self._loaded) if common else _EMPTY
        if len(wanted):
            self._loaded = np.union1d(self._loaded, wanted)
            for h, n in self.store.marks(wanted).items():
                self.counts[h] = self.counts.get(h, 0) + n
            self.common = np.array(sorted(h for h, n in self.counts.items() if n >= p.min_marks), dtype=np.uint32)
        grouped: dict[str, list[np.ndarray]] = defaultdict(list)
        for source, hashes in per_source:
            if source is not None:
                grouped[source].append(hashes)
        asked = {}
        for source, arrays in grouped.items():
            known = self._source_loaded.get(source, _EMPTY)
            fresh = _without(np.unique(np.concatenate(arrays)), known)
            if len(fresh):
                asked[source] = fresh
                self._source_loaded[source] = np.union1d(known, fresh)
        for source, found in (self.store.source_marks(asked) if asked else {}).items():
            counts = self.source_counts.setdefault(source, {})
            for h, n in found.items():
                counts[h] = counts.get(h, 0) + n
            learned = [h for h, n in counts.items() if n >= p.min_source_marks]
            self.by_source[source] = np.array(sorted(learned), dtype=np.uint32)

    def of(self, source: str | None) -> np.ndarray:
        """Sorted hashes that are not evidence for an article of `source`."""
        learned = self.of_source(source)
        return self.common if not len(learned) else np.union1d(self.common, learned)

    def of_source(self, source: str | None) -> np.ndarray:
        """Sorted hashes learnt as `source`'s own boilerplate."""
        return self.by_source.get(source, _EMPTY) if source is not None else _EMPTY

    def mark(self, hashes: list[int]) -> None:
        """One more cross-story mark each."""
        promoted = []
        for h in hashes:
            self.counts[h] = self.counts.get(h, 0) + 1
            if self.counts[h] == self.params.min_marks:
                promoted.append(h)
        if promoted:
            self.common = np.union1d(self.common, np.array(promoted, dtype=np.uint32))

    def mark_source(self, source: str, hashes: list[int]) -> bool:
        """One more same-source, cross-story mark each; whether any hash became the source's boilerplate."""
        counts = self.source_counts.setdefault(source, {})
        promoted = []
        for h in hashes:
            counts[h] = counts.get(h, 0) + 1
            if counts[h] == self.params.min_source_marks:
                promoted.append(h)
        if promoted:
            known = self.by_source.get(source, _EMPTY)
            self.by_source[source] = np.union1d(known, np.array(promoted, dtype=np.uint32))
            self.grown.add(source)
        return bool(promoted)


def _without(values: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Sorted unique `values` not in sorted unique `excluded`."""
    return values[~np.isin(values, excluded, assume_unique=True)] if len(excluded) else values


def _tokens(doc: Doc) -> list[str]:
    """Comparison tokens of an article (of its title when the text is empty), in order."""
    return tokens_of_normalized(normalize_for_compare(doc.text if doc.text.strip() else doc.title))


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
        self.moved: list[Decision] = []  # stored articles the last batch moved into a story (see _gather)

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
        boiler = _Boilerplate(p, self.store)
        prepared = [self.fingerprint(d) for d in docs]
        boiler.load([], [(x.doc.source, x.shingles) for x in prepared])
        prepared = [self._rekey(x, boiler) for x in prepared]
        remote = self.store.candidates([x.keys for x in prepared], p.max_candidates)
        # Marks matter only where a candidate is verified: articles with a stored candidate or a band key
        # shared within the batch (most new articles have neither), and the stored candidates themselves.
        batch_keys = Counter(key for x in prepared for key in set(x.keys))
        involved = [x for i, x in enumerate(prepared) if remote[i] or any(batch_keys[k] > 1 for k in x.keys)]
        known: dict[int, StoredDoc] = {}
        clusters: dict[int, ClusterInfo] = {}
        self._fetch(set().union(*remote), involved, known, clusters, boiler)

        local_bands: dict[BandKey, list[int]] = defaultdict(list)
        new_docs: list[StoredDoc] = []
        changed: dict[int, ClusterInfo] = {}
        new_marks: dict[int, int] = defaultdict(int)
        new_source_marks: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        moved: dict[int, Decision] = {}
        decisions = []
        for i, item in enumerate(prepared):
            if item.doc.source in boiler.grown:
                item, remote[i] = self._requery(item, remote[i], known, clusters, boiler)
            checks = self._check(item, remote[i], local_bands, known, boiler)
            own_marked = _EMPTY
            if not any(c.method for c in checks):
                # A page of a source whose block is not learnt yet (its second brief): what it shares with
                # the source's other stories is that block; learnt first, the article is checked again.
                own_marked, promoted = self._learn_own_source(item, checks, boiler, new_source_marks)
                if promoted:
                    item, remote[i] = self._requery(item, remote[i], known, clusters, boiler)
                    checks = self._check(item, remote[i], local_bands, known, boiler)
            prepared[i] = item
            self._corroborate(item, checks, known, clusters, boiler)
            decision, cluster = self._decide(item, checks, clusters)
            decisions.append(decision)
            clusters[cluster.cluster_id] = changed[cluster.cluster_id] = cluster
            for late in self._gather(item, decision, checks, clusters):
                moved[late.doc_id] = late
                changed.pop(late.doc_id, None)  # its own one-article cluster is gone
                changed[late.cluster_id] = clusters[late.cluster_id]
                known[late.doc_id] = replace(known[late.doc_id], cluster_id=late.cluster_id)
            self._learn(item, decision, checks, boiler, new_marks, new_source_marks, own_marked)

            stored = StoredDoc(
                id=item.doc.id,
                cluster_id=decision.cluster_id,
                params_version=p.version,
                signature=item.signature,
                shingles=item.shingles,
                text_hash=item.text_hash,
                length=item.length,
                published_at=item.doc.published_at,
                source=item.doc.source,
            )
            new_docs.append(stored)
            known[stored.id] = stored
            for key in item.keys:
                local_bands[key].append(stored.id)

        in_batch = {d.id for d in new_docs}
        new_docs = [replace(d, cluster_id=moved[d.id].cluster_id) if d.id in moved else d for d in new_docs]
        self.store.add(
            new_docs, [x.keys for x in prepared], list(changed.values()), new_marks,
            {s: dict(c) for s, c in new_source_marks.items()},
            [d for i, d in moved.items() if i not in in_batch],
        )
        self.moved = list(moved.values())
        return [moved.get(d.doc_id, d) for d in decisions]

    def _fetch(
        self,
        ids: Collection[int],
        items: Sequence[_Prepared],
        known: dict[int, StoredDoc],
        clusters: dict[int, ClusterInfo],
        boiler: _Boilerplate,
    ) -> None:
        """Load stored articles not known yet, their clusters, and the marks of their and `items`' hashes."""
        p = self.params
        fresh = {i: s for i, s in self.store.get(set(ids) - known.keys()).items() if s.params_version == p.version}
        known.update(fresh)
        clusters.update(self.store.clusters({s.cluster_id for s in fresh.values()} - clusters.keys()))
        docs = [(s.source, s.shingles) for s in fresh.values()] + [(x.doc.source, x.shingles) for x in items]
        boiler.load([h for _, h in docs], docs)

    def _check(
        self,
        item: _Prepared,
        remote: Mapping[int, int],
        local_bands: Mapping[BandKey, list[int]],
        known: Mapping[int, StoredDoc],
        boiler: _Boilerplate,
    ) -> list[_Check]:
        """Verify the article against its stored and in-batch candidates, most shared bands first."""
        hits = dict(remote)
        for key in item.keys:
            for other in local_bands.get(key, ()):
                hits[other] = hits.get(other, 0) + 1
        hits.pop(item.doc.id, None)
        ranked = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[: self.params.max_candidates]
        return self._verify_all(item, [known[j] for j, _ in ranked if j in known], boiler)

    def _requery(
        self,
        item: _Prepared,
        remote: dict[int, int],
        known: dict[int, StoredDoc],
        clusters: dict[int, ClusterInfo],
        boiler: _Boilerplate,
    ) -> tuple[_Prepared, dict[int, int]]:
        """Lead bands again past its source's boilerplate learnt in this batch; stored hits of new keys added."""
        rekeyed = self._rekey(item, boiler)
        added = [key for key in rekeyed.keys if key not in set(item.keys)]
        if not added:
            return rekeyed, remote
        found = self.store.candidates([added], self.params.max_candidates)[0]
        self._fetch(found.keys(), [item], known, clusters, boiler)
        merged = dict(remote)
        for j, n in found.items():
            merged[j] = merged.get(j, 0) + n
        return rekeyed, merged

    def _rekey(self, x: _Prepared, boiler: _Boilerplate) -> _Prepared:
        """Lead bands from the first tokens that are not the source's learnt boilerplate, where it has some.

        A brief's raw lead may be its outlet's navigation block; once that block is learnt, its lead
        bands come from the first `lead_words` tokens that do not start a boilerplate 2-gram.
        """
        p = self.params
        learned = boiler.of_source(x.doc.source)
        if len(x.keys) <= p.bands or np.count_nonzero(np.isin(x.shingles, learned, assume_unique=True)) < p.min_shared:
            return x
        toks = _tokens(x.doc)
        flags = np.isin(shingle_hash_sequence(toks, p.verify_k), learned)
        informative = [t for t, flag in zip(toks, flags.tolist(), strict=False) if not flag]
        signer = signer_for(p)
        lead = signer.signature(shingle_hashes(informative[: p.lead_words], p.shingle_k))
        return replace(x, keys=x.keys[: p.bands] + signer.lead_keys(lead))

    def _learn_own_source(
        self, item: _Prepared, checks: list[_Check], boiler: _Boilerplate, new_source_marks: dict[str, dict[int, int]]
    ) -> tuple[np.ndarray, bool]:
        """Source-mark the verbatim runs an unmatched article shares with its source's other stories.

        A navigation block or template is one long run of shared shingles; a rewrite of one of the
        source's stories shares scattered ones (those are marked after the decision, as usual).
        Returns the hashes marked, and whether one became the source's boilerplate.
        """
        source = item.doc.source
        p = self.params
        own = [c.overlap for c in checks if c.method is None and c.same_source and len(c.overlap) >= p.min_shared]
        if source is None or not own:
            return _EMPTY, False
        seq = shingle_hash_sequence(_tokens(item.doc), p.verify_k)
        flags = np.isin(seq, np.unique(np.concatenate(own)))
        # Start and end of every run of shared shingles, then the long ones.
        edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.view(np.int8), [0]))))
        runs = [seq[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= 2 * p.min_shared]
        if not runs:
            return _EMPTY, False
        hashes = np.unique(np.concatenate(runs))
        for h in hashes.tolist():
            new_source_marks[source][h] += 1
        return hashes, boiler.mark_source(source, hashes.tolist())

    def _corroborate(
        self,
        item: _Prepared,
        checks: list[_Check],
        known: dict[int, StoredDoc],
        clusters: dict[int, ClusterInfo],
        boiler: _Boilerplate,
    ) -> None:
        """Drop containment matches with a small member of a story that the story's canonical does not support.

        An article that contains a short member of a story (a brief's opening) but is mostly other text
        may be a follow-up repeating one of the story's paragraphs: it must also match another member,
        or the canonical article (which holds that paragraph and the rest of the story).
        """
        p = self.params
        for c in list(checks):
            info = clusters.get(c.stored.cluster_id)
            if (
                c.method not in ("containment", "rewrite_containment")
                or c.informative[1] >= c.informative[0]
                or c.shared >= p.support_share * c.informative[0]
                or info is None
                or info.size < 2
                or info.canonical_id == c.stored.id
            ):
                continue
            if any(o.method and o is not c and o.stored.cluster_id == info.cluster_id for o in checks):
                continue
            self._fetch([info.canonical_id], [], known, clusters, boiler)
            canonical = known.get(info.canonical_id)
            support = self._verify_all(item, [canonical], boiler)[0] if canonical is not None else None
            if support is not None and support.method is not None and support.stored.cluster_id == info.cluster_id:
                checks.append(support)
            else:
                c.method, c.unsupported_by = None, info.canonical_id

    def _gather(
        self, item: _Prepared, decision: Decision, checks: list[_Check], clusters: dict[int, ClusterInfo]
    ) -> list[Decision]:
        """One-article clusters the article also matched join its story (a variant that came before any copy).

        Only where the late joiner does not become the story's canonical article, so every other
        article's decision stays true as recorded.
        """
        if decision.method == "new":
            return []
        shingles = f"word-{self.params.verify_k}"
        out = []
        for c in sorted((c for c in checks if c.method is not None), key=lambda c: c.rank, reverse=True):
            alone = clusters.get(c.stored.cluster_id)
            target = clusters[decision.cluster_id]
            if alone is None or alone.size != 1 or alone.cluster_id == target.cluster_id:
                continue
            theirs = canonical_key(target.canonical_published_at, target.canonical_length, target.canonical_id)
            if canonical_key(c.stored.published_at, c.stored.length, c.stored.id) < theirs:
                continue
            clusters[target.cluster_id] = replace(target, size=target.size + 1)
            del clusters[alone.cluster_id]
            out.append(
                Decision(
                    doc_id=c.stored.id, cluster_id=target.cluster_id, canonical_id=target.canonical_id,
                    matched_id=item.doc.id, jaccard=round(c.jaccard, 6), containment=round(c.containment, 6),
                    method=c.method or "new", threshold=c.threshold, params_version=self.params.version,
                    is_canonical=False, shared=c.shared, candidates=1,
                    evidence=c.evidence(shingles) | {"candidate": item.doc.id, "joined_late": True},
                )
            )
        return out

    def _learn(
        self,
        item: _Prepared,
        decision: Decision,
        checks: list[_Check],
        boiler: _Boilerplate,
        new_marks: dict[int, int],
        new_source_marks: dict[str, dict[int, int]],
        own_marked: np.ndarray = _EMPTY,
    ) -> None:
        """Mark what the article shares with candidates of other stories (per source, too, for its own).

        `own_marked`: source marks it gave before the decision (`_learn_own_source`), not given twice.
        """
        misses = [
            c for c in checks if c.method is None and c.stored.cluster_id != decision.cluster_id and len(c.overlap)
        ]
        if not misses:
            return
        if decision.method == "new":
            # Only a new story marks: copies of a story that an earlier copy stranded in another cluster
            # (a brief before its outlet's block is learnt) would otherwise mark their own lead as common.
            shared = np.unique(np.concatenate([c.overlap for c in misses])).tolist()
            for h in shared:
                new_marks[h] += 1
            boiler.mark(shared)
        source = item.doc.source
        own = [c.overlap for c in misses if c.same_source]
        if source is not None and own:
            hashes = _without(np.unique(np.concatenate(own)), own_marked).tolist()
            for h in hashes:
                new_source_marks[source][h] += 1
            boiler.mark_source(source, hashes)

    def _verify_all(self, item: _Prepared, stored: list[StoredDoc], boiler: _Boilerplate) -> list[_Check]:
        """Verify an article against its candidates; its own boilerplate is looked up once."""
        p = self.params
        mine = _without(item.shingles, boiler.of(item.doc.source))
        whole = len(mine) < p.min_shared  # (almost) nothing but boilerplate: compare what there is
        return [self._verify(item, item.shingles if whole else mine, s, boiler, whole) for s in stored]

    def _verify(
        self, item: _Prepared, a: np.ndarray, stored: StoredDoc, boiler: _Boilerplate, whole: bool = False
    ) -> _Check:
        """Compare an article (its informative hashes `a`; all of them if `whole`) with one candidate."""
        p = self.params
        overlap = np.intersect1d(item.shingles, stored.shingles, assume_unique=True)
        source = item.doc.source
        same_source = source is not None and source == stored.source
        # A rewrite comes from another outlet: with a source unknown, a shared template could pass for one.
        other_source = source is not None and stored.source is not None and not same_source
        hours = None
        if item.doc.published_at is not None and stored.published_at is not None:
            hours = abs((_as_utc(item.doc.published_at) - _as_utc(stored.published_at)).total_seconds()) / 3600
        if item.text_hash == stored.text_hash:
            n = len(overlap)
            return _Check(stored, 1.0, 1.0, n, "exact", overlap, same_source, hours, (n, n))
        b = stored.shingles if whole else _without(stored.shingles, boiler.of(stored.source))
        shared = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - shared
        jaccard = shared / union if union else 0.0
        smaller = min(len(a), len(b))
        containment = shared / smaller if smaller else 0.0
        # Pages of one source share its template: containment within a source must be near-total.
        contained = p.same_source_containment_threshold if same_source else p.containment_threshold
        method: Method | None = None
        # Two pages of one source that are (almost) all boilerplate: only a near-identical page is a copy.
        threshold = contained if whole and same_source else p.threshold
        if jaccard >= threshold:
            method = "jaccard"
        elif shared < p.min_shared:
            method = None
        elif containment >= contained:
            method, threshold = "containment", contained
        elif other_source and (hours is None or hours <= p.rewrite_window_hours):
            if jaccard >= p.rewrite_threshold:
                method, threshold = "rewrite_jaccard", p.rewrite_threshold
            elif containment >= p.rewrite_containment_threshold and jaccard >= p.rewrite_min_jaccard:
                method, threshold = "rewrite_containment", p.rewrite_containment_threshold
            if method is not None and self._one_run(item, np.intersect1d(a, b, assume_unique=True)):
                method = None  # a block two outlets share verbatim (one publisher's pages), not a rewrite
        return _Check(
            stored, jaccard, containment, shared, method, overlap, same_source, hours, (len(a), len(b)), threshold
        )

    def _one_run(self, item: _Prepared, shared: np.ndarray) -> bool:
        """Whether most of the `shared` hashes lie in one long verbatim run of the article's text.

        A rewrite shares many short runs (a replaced word every few words, clauses moved); a
        navigation block or template that two outlets of one publisher print, or a quoted paragraph,
        is one long run (at least `2 * min_shared` shingles) with little else shared.
        """
        flags = np.isin(shingle_hash_sequence(_tokens(item.doc), self.params.verify_k), shared)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.view(np.int8), [0]))))
        longest = int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
        return longest >= max(2 * self.params.min_shared, 0.5 * len(shared))

    def _decide(
        self, item: _Prepared, checks: list[_Check], clusters: dict[int, ClusterInfo]
    ) -> tuple[Decision, ClusterInfo]:
        """Pick the best verified match (or none) and update the cluster's canonical."""
        p, doc = self.params, item.doc
        shingles = f"word-{p.verify_k}"
        passing = [c for c in checks if c.method is not None]
        mine = canonical_key(doc.published_at, item.length, doc.id)
        if not passing:
            nearest = max(checks, key=lambda c: (c.jaccard, c.containment, -c.stored.id), default=None)
            cluster = ClusterInfo(doc.id, doc.id, doc.published_at, item.length, 1)
            decision = Decision(
                doc_id=doc.id, cluster_id=doc.id, canonical_id=doc.id, matched_id=None,
                jaccard=None, containment=None, method="new", threshold=p.threshold,
                params_version=p.version, is_canonical=True, candidates=len(checks),
                evidence={"shingles": shingles, "nearest": nearest.evidence(shingles) if nearest else None},
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
            threshold=best.threshold,
            params_version=p.version,
            is_canonical=wins,
            replaced_canonical_id=old.canonical_id if wins else None,
            shared=best.shared,
            candidates=len(checks),
            evidence=best.evidence(shingles),
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
                    published_at=_parse_time(record.get("published_at"), lineno),
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
