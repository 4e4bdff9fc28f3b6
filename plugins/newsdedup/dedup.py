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

Where it lives: `dedup_records` (the records and the canonical order), `dedup_rules` (verifying one
candidate, picking the deciding match), `dedup_boilerplate` (what is not evidence, and learning it),
`signature_store` (the persistence seam and its in-memory reference; `dedup_store` is PostgreSQL's),
this module (assignment, batch by batch, against a store) and `dedup_jsonl` (clustering a JSONL file).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields, replace

from newsdedup.dedup_boilerplate import Boilerplate
from newsdedup.dedup_records import (
    EMPTY,
    Check,
    ClusterInfo,
    Decision,
    Doc,
    Fingerprint,
    Prepared,
    StoredDoc,
    canonical_key,
    fingerprint_text,
)
from newsdedup.dedup_rules import decide, needs_support, verify_all
from newsdedup.minhash import BandKey, DedupParams
from newsdedup.signature_store import SignatureStore


class Deduplicator:
    """Assigns articles to story clusters against a `SignatureStore` (see the module docstring)."""

    def __init__(self, params: DedupParams, store: SignatureStore) -> None:
        """Use `params` for signatures and decisions, `store` for state."""
        self.params = params
        self.store = store
        self.moved: list[Decision] = []  # stored articles the last batch moved into a story (see _gather)

    def fingerprint(self, doc: Doc) -> Prepared:
        """Shingle hashes, signature, band keys and exact-text hash of an article (its own, if it brings one)."""
        found = doc.fingerprint
        if found is None or found.params_version != self.params.version:
            found = fingerprint_text(doc.text, doc.title, self.params)
        return Prepared(**{f.name: getattr(found, f.name) for f in fields(Fingerprint)}, doc=doc)

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
        boiler = Boilerplate(p, self.store)
        prepared = [self.fingerprint(d) for d in docs]
        boiler.load([], [(x.doc.source, x.shingles) for x in prepared])
        prepared = [boiler.rekey(x) for x in prepared]
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
            own_marked = EMPTY
            if not any(c.method for c in checks):
                # A page of a source whose block is not learnt yet (its second brief): what it shares with
                # the source's other stories is that block; learnt first, the article is checked again.
                own_marked, promoted = boiler.learn_own_source(item, checks, new_source_marks)
                if promoted:
                    item, remote[i] = self._requery(item, remote[i], known, clusters, boiler)
                    checks = self._check(item, remote[i], local_bands, known, boiler)
            prepared[i] = item
            self._corroborate(item, checks, known, clusters, boiler)
            decision, cluster = decide(self.params, item, checks, clusters)
            decisions.append(decision)
            clusters[cluster.cluster_id] = changed[cluster.cluster_id] = cluster
            for late in self._gather(item, decision, checks, clusters):
                moved[late.doc_id] = late
                changed.pop(late.doc_id, None)  # its own one-article cluster is gone
                changed[late.cluster_id] = clusters[late.cluster_id]
                known[late.doc_id] = replace(known[late.doc_id], cluster_id=late.cluster_id)
            boiler.learn(item, decision, checks, new_marks, new_source_marks, own_marked)

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
        items: Sequence[Prepared],
        known: dict[int, StoredDoc],
        clusters: dict[int, ClusterInfo],
        boiler: Boilerplate,
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
        item: Prepared,
        remote: Mapping[int, int],
        local_bands: Mapping[BandKey, list[int]],
        known: Mapping[int, StoredDoc],
        boiler: Boilerplate,
    ) -> list[Check]:
        """Verify the article against its stored and in-batch candidates, most shared bands first."""
        hits = dict(remote)
        for key in item.keys:
            for other in local_bands.get(key, ()):
                hits[other] = hits.get(other, 0) + 1
        hits.pop(item.doc.id, None)
        ranked = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))[: self.params.max_candidates]
        return verify_all(self.params, item, [known[j] for j, _ in ranked if j in known], boiler)

    def _requery(
        self,
        item: Prepared,
        remote: dict[int, int],
        known: dict[int, StoredDoc],
        clusters: dict[int, ClusterInfo],
        boiler: Boilerplate,
    ) -> tuple[Prepared, dict[int, int]]:
        """Lead bands again past its source's boilerplate learnt in this batch; stored hits of new keys added."""
        rekeyed = boiler.rekey(item)
        added = [key for key in rekeyed.keys if key not in set(item.keys)]
        if not added:
            return rekeyed, remote
        found = self.store.candidates([added], self.params.max_candidates)[0]
        self._fetch(found.keys(), [item], known, clusters, boiler)
        merged = dict(remote)
        for j, n in found.items():
            merged[j] = merged.get(j, 0) + n
        return rekeyed, merged

    def _corroborate(
        self,
        item: Prepared,
        checks: list[Check],
        known: dict[int, StoredDoc],
        clusters: dict[int, ClusterInfo],
        boiler: Boilerplate,
    ) -> None:
        """Drop containment matches with a small member of a story that the story's canonical does not support."""
        for c in list(checks):
            info = clusters.get(c.stored.cluster_id)
            if info is None or not needs_support(self.params, c, info, checks):
                continue
            self._fetch([info.canonical_id], [], known, clusters, boiler)
            canonical = known.get(info.canonical_id)
            support = verify_all(self.params, item, [canonical], boiler)[0] if canonical is not None else None
            if support is not None and support.method is not None and support.stored.cluster_id == info.cluster_id:
                checks.append(support)
            else:
                c.method, c.unsupported_by = None, info.canonical_id

    def _gather(
        self, item: Prepared, decision: Decision, checks: list[Check], clusters: dict[int, ClusterInfo]
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
