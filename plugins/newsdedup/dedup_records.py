"""The records deduplication works with: an article's fingerprint, the stored article, its story, the
decision and the evidence it rests on, and the order that picks a story's canonical article."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import xxhash

from newsdedup.minhash import BandKey, DedupParams, shingle_hashes, signer_for, token_hash_array, tokens_of_normalized
from newsdedup.normalize import normalize_for_compare

Method = Literal["new", "exact", "jaccard", "containment", "rewrite_jaccard", "rewrite_containment"]
# Later is better: a rewrite's evidence is weaker than a copy's.
METHOD_ORDER: tuple[Method, ...] = ("rewrite_containment", "rewrite_jaccard", "containment", "jaccard", "exact")

EMPTY = np.empty(0, dtype=np.uint32)
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
    hashed = token_hash_array(tokens_of_normalized(norm))  # once for the three shingle sets below
    signature = signer.signature(shingle_hashes(hashed, params.shingle_k))
    shingles = shingle_hashes(hashed, params.verify_k)
    keys = []
    if len(shingles):
        keys = signer.band_keys(signature)
        if params.lead_bands and len(hashed) > params.lead_words:
            keys += signer.lead_keys(signer.signature(shingle_hashes(hashed[: params.lead_words], params.shingle_k)))
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


@dataclass(frozen=True, eq=False)
class Prepared(Fingerprint):
    """A new article with its fingerprint."""

    doc: Doc


@dataclass(eq=False)
class Check:
    """One verified candidate and the evidence its decision rests on."""

    stored: StoredDoc
    jaccard: float
    containment: float
    shared: int
    method: Method | None
    overlap: np.ndarray = field(default_factory=lambda: EMPTY, repr=False)
    same_source: bool = False
    hours_apart: float | None = None
    informative: tuple[int, int] = (0, 0)
    threshold: float = 1.0
    unsupported_by: int | None = None  # the story's canonical article, which did not support this match

    @property
    def rank(self) -> tuple[int, float, int, int]:
        """Sort key, larger is better."""
        score = self.containment if self.method in ("containment", "rewrite_containment") else self.jaccard
        order = METHOD_ORDER.index(self.method) if self.method else -1
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


def tokens_of(doc: Doc) -> list[str]:
    """Comparison tokens of an article (of its title when the text is empty), in order."""
    return tokens_of_normalized(normalize_for_compare(doc.text if doc.text.strip() else doc.title))


def as_utc(value: datetime | None) -> datetime:
    """Comparable instant; missing dates sort last."""
    if value is None:
        return _LATEST
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def canonical_key(published_at: datetime | None, length: int, doc_id: int) -> tuple:
    """Smaller is more canonical: earliest published, then longest text, then smallest id."""
    return (published_at is None, as_utc(published_at), -length, doc_id)


def _signed64(value: int) -> int:
    """Unsigned 64-bit value as PostgreSQL bigint."""
    return value - (1 << 64) if value >= 1 << 63 else value
