"""Boilerplate learning: which shingle hashes are not evidence, common to many stories or one source's own.

Marks given within a batch count at once, so later articles of the batch see what earlier ones taught;
the `newsdedup.dedup` docstring says when an article marks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from newsdedup.dedup_records import EMPTY, Check, Decision, Prepared, tokens_of
from newsdedup.minhash import DedupParams, shingle_hash_sequence, shingle_hashes, signer_for
from newsdedup.signature_store import SignatureStore


class Boilerplate:
    """Hashes that are not evidence: common to many stories, or learnt per source; grows within a batch.

    Stored mark counts are loaded on demand (`load`), once per hash; marks given within the batch add to them.
    """

    def __init__(self, params: DedupParams, store: SignatureStore) -> None:
        """Start with nothing loaded."""
        self.params = params
        self.store = store
        self.counts: dict[int, int] = {}
        self.common = EMPTY
        self.source_counts: dict[str, dict[int, int]] = {}
        self.by_source: dict[str, np.ndarray] = {}
        self.grown: set[str] = set()  # sources that learnt boilerplate within this batch
        self._loaded = EMPTY
        self._source_loaded: dict[str, np.ndarray] = {}

    def load(self, common: Sequence[np.ndarray], per_source: Sequence[tuple[str | None, np.ndarray]]) -> None:
        """Add the stored marks of hashes not loaded yet: common marks of `common`, source marks per source."""
        p = self.params
        wanted = without(np.unique(np.concatenate(common)), self._loaded) if common else EMPTY
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
            known = self._source_loaded.get(source, EMPTY)
            fresh = without(np.unique(np.concatenate(arrays)), known)
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
        return self.by_source.get(source, EMPTY) if source is not None else EMPTY

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
            known = self.by_source.get(source, EMPTY)
            self.by_source[source] = np.union1d(known, np.array(promoted, dtype=np.uint32))
            self.grown.add(source)
        return bool(promoted)

    def rekey(self, x: Prepared) -> Prepared:
        """Lead bands from the first tokens that are not the source's learnt boilerplate, where it has some.

        A brief's raw lead may be its outlet's navigation block; once that block is learnt, its lead
        bands come from the first `lead_words` tokens that do not start a boilerplate 2-gram.
        """
        p = self.params
        learned = self.of_source(x.doc.source)
        if len(x.keys) <= p.bands or np.count_nonzero(np.isin(x.shingles, learned, assume_unique=True)) < p.min_shared:
            return x
        toks = tokens_of(x.doc)
        flags = np.isin(shingle_hash_sequence(toks, p.verify_k), learned)
        informative = [t for t, flag in zip(toks, flags.tolist(), strict=False) if not flag]
        signer = signer_for(p)
        lead = signer.signature(shingle_hashes(informative[: p.lead_words], p.shingle_k))
        return replace(x, keys=x.keys[: p.bands] + signer.lead_keys(lead))

    def learn_own_source(
        self, item: Prepared, checks: list[Check], new_source_marks: dict[str, dict[int, int]]
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
            return EMPTY, False
        seq = shingle_hash_sequence(tokens_of(item.doc), p.verify_k)
        flags = np.isin(seq, np.unique(np.concatenate(own)))
        # Start and end of every run of shared shingles, then the long ones.
        edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.view(np.int8), [0]))))
        runs = [seq[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= 2 * p.min_shared]
        if not runs:
            return EMPTY, False
        hashes = np.unique(np.concatenate(runs))
        for h in hashes.tolist():
            new_source_marks[source][h] += 1
        return hashes, self.mark_source(source, hashes.tolist())

    def learn(
        self,
        item: Prepared,
        decision: Decision,
        checks: list[Check],
        new_marks: dict[int, int],
        new_source_marks: dict[str, dict[int, int]],
        own_marked: np.ndarray = EMPTY,
    ) -> None:
        """Mark what the article shares with candidates of other stories (per source, too, for its own).

        `own_marked`: source marks it gave before the decision (`learn_own_source`), not given twice.
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
            self.mark(shared)
        source = item.doc.source
        own = [c.overlap for c in misses if c.same_source]
        if source is not None and own:
            hashes = without(np.unique(np.concatenate(own)), own_marked).tolist()
            for h in hashes:
                new_source_marks[source][h] += 1
            self.mark_source(source, hashes)


def without(values: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """Sorted unique `values` not in sorted unique `excluded`."""
    return values[~np.isin(values, excluded, assume_unique=True)] if len(excluded) else values
