"""The decision rules: how a new article is verified against one candidate, and which match decides.

Scores are measured on word `verify_k`-gram hashes after boilerplate is taken out (`Boilerplate.of`);
every decision carries the evidence it rests on. See the `newsdedup.dedup` docstring for the rules in words.
"""

from __future__ import annotations

import numpy as np

from newsdedup.dedup_boilerplate import Boilerplate, without
from newsdedup.dedup_records import (
    Check,
    ClusterInfo,
    Decision,
    Method,
    Prepared,
    StoredDoc,
    as_utc,
    canonical_key,
    tokens_of,
)
from newsdedup.minhash import DedupParams, shingle_hash_sequence


def verify_all(p: DedupParams, item: Prepared, stored: list[StoredDoc], boiler: Boilerplate) -> list[Check]:
    """Verify an article against its candidates; its own boilerplate is looked up once."""
    mine = without(item.shingles, boiler.of(item.doc.source))
    whole = len(mine) < p.min_shared  # (almost) nothing but boilerplate: compare what there is
    return [verify(p, item, item.shingles if whole else mine, s, boiler, whole) for s in stored]


def verify(
    p: DedupParams, item: Prepared, a: np.ndarray, stored: StoredDoc, boiler: Boilerplate, whole: bool = False
) -> Check:
    """Compare an article (its informative hashes `a`; all of them if `whole`) with one candidate."""
    overlap = np.intersect1d(item.shingles, stored.shingles, assume_unique=True)
    source = item.doc.source
    same_source = source is not None and source == stored.source
    # A rewrite comes from another outlet: with a source unknown, a shared template could pass for one.
    other_source = source is not None and stored.source is not None and not same_source
    hours = None
    if item.doc.published_at is not None and stored.published_at is not None:
        hours = abs((as_utc(item.doc.published_at) - as_utc(stored.published_at)).total_seconds()) / 3600
    if item.text_hash == stored.text_hash:
        n = len(overlap)
        return Check(stored, 1.0, 1.0, n, "exact", overlap, same_source, hours, (n, n))
    b = stored.shingles if whole else without(stored.shingles, boiler.of(stored.source))
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
        if method is not None and _one_run(p, item, np.intersect1d(a, b, assume_unique=True)):
            method = None  # a block two outlets share verbatim (one publisher's pages), not a rewrite
    return Check(
        stored, jaccard, containment, shared, method, overlap, same_source, hours, (len(a), len(b)), threshold
    )


def needs_support(p: DedupParams, c: Check, info: ClusterInfo, checks: list[Check]) -> bool:
    """Whether a match stands only if the story's canonical article matches too (no other member did).

    An article that contains a short member of a story (a brief's opening) but is mostly other text
    may be a follow-up repeating one of the story's paragraphs: it must also match another member,
    or the canonical article (which holds that paragraph and the rest of the story).
    """
    if (
        c.method not in ("containment", "rewrite_containment")
        or c.informative[1] >= c.informative[0]
        or c.shared >= p.support_share * c.informative[0]
        or info.size < 2
        or info.canonical_id == c.stored.id
    ):
        return False
    return not any(o.method and o is not c and o.stored.cluster_id == info.cluster_id for o in checks)


def _one_run(p: DedupParams, item: Prepared, shared: np.ndarray) -> bool:
    """Whether most of the `shared` hashes lie in one long verbatim run of the article's text.

    A rewrite shares many short runs (a replaced word every few words, clauses moved); a
    navigation block or template that two outlets of one publisher print, or a quoted paragraph,
    is one long run (at least `2 * min_shared` shingles) with little else shared.
    """
    flags = np.isin(shingle_hash_sequence(tokens_of(item.doc), p.verify_k), shared)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.view(np.int8), [0]))))
    longest = int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
    return longest >= max(2 * p.min_shared, 0.5 * len(shared))


def decide(
    p: DedupParams, item: Prepared, checks: list[Check], clusters: dict[int, ClusterInfo]
) -> tuple[Decision, ClusterInfo]:
    """Pick the best verified match (or none) and update the cluster's canonical."""
    doc = item.doc
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
