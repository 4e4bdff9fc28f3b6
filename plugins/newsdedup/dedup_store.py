"""The dedup engine's state in PostgreSQL: signatures, the LSH band index, clusters, learnt boilerplate.

A source key here is `str(articles.source_id)`: per-source boilerplate lives in `source_boilerplate`.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import psycopg2.extras
from psycopg2.extensions import connection as Connection

from newsdedup.dedup import Deduplicator
from newsdedup.dedup_records import ClusterInfo, Decision, Doc, StoredDoc
from newsdedup.minhash import BandKey, DedupParams

DEDUP_LOCK = 4_172_002  # pg_advisory_xact_lock key: one cluster assignment at a time


def _bytes(arr: np.ndarray) -> bytes:
    """uint32 array as little-endian bytes."""
    return np.asarray(arr, dtype="<u4").tobytes()


def _array(data: memoryview | bytes) -> np.ndarray:
    """Little-endian bytes back to a uint32 array."""
    return np.frombuffer(bytes(data), dtype="<u4").astype(np.uint32)


def _int32(arr: np.ndarray) -> str:
    """uint32 hashes as signed ints for an `integer` column, as an array literal (see _array_literal)."""
    return _array_literal(np.asarray(arr, dtype=np.uint32).view(np.int32).tolist())


def _array_literal(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers, for a `%s::int[]` / `%s::bigint[]` parameter.

    psycopg2 adapts a Python list item by item (about 1 us each): batches pass tens of thousands of
    hashes and band keys, which this builds four times faster.
    """
    return "{" + ",".join(map(str, values)) + "}"


class PgSignatureStore:
    """`SignatureStore` on one open connection; writes join the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        """Work inside `conn`'s current transaction."""
        self.conn = conn

    def candidates(self, key_lists: Sequence[Sequence[BandKey]], limit: int) -> list[dict[int, int]]:
        """Per key list: stored ids sharing a band -> shared bands, from the index in one query.

        Only the band hash is stored and looked up: it is salted by the band's number (see `Signer._keys`).
        """
        idx, band_hash = [], []
        for i, keys in enumerate(key_lists):
            for _, value in keys:
                idx.append(i)
                band_hash.append(value)
        out: list[dict[int, int]] = [{} for _ in key_lists]
        if not idx:
            return out
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT q.idx, b.article_id, count(*) "
                "FROM unnest(%s::int[], %s::bigint[]) AS q(idx, band_hash) "
                "JOIN lsh_bands b USING (band_hash) "
                "GROUP BY q.idx, b.article_id",
                (_array_literal(idx), _array_literal(band_hash)),
            )
            hits: dict[int, list[tuple[int, int]]] = defaultdict(list)
            for i, article_id, shared in cur.fetchall():
                hits[i].append((article_id, shared))
        for i, found in hits.items():
            ranked = sorted(found, key=lambda kv: (-kv[1], kv[0]))[:limit]
            out[i] = dict(ranked)
        return out

    def get(self, ids: Collection[int]) -> dict[int, StoredDoc]:
        """Stored signatures by article id."""
        if not ids:
            return {}
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT s.article_id, a.cluster_id, s.params_version, s.signature, s.shingles, "
                "s.text_hash, s.length, s.published_at, a.source_id::text "
                "FROM article_signatures s JOIN articles a USING (article_id) "
                "WHERE s.article_id = ANY(%s) AND a.cluster_id IS NOT NULL",
                (list(ids),),
            )
            return {
                row[0]: StoredDoc(row[0], row[1], row[2], _array(row[3]), _array(row[4]), *row[5:])
                for row in cur.fetchall()
            }

    def clusters(self, cluster_ids: Collection[int]) -> dict[int, ClusterInfo]:
        """Cluster rows by id."""
        if not cluster_ids:
            return {}
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT cluster_id, canonical_article_id, canonical_published_at, canonical_length, size "
                "FROM story_clusters WHERE cluster_id = ANY(%s)",
                (list(cluster_ids),),
            )
            return {row[0]: ClusterInfo(*row) for row in cur.fetchall()}

    def marks(self, hashes: np.ndarray) -> dict[int, int]:
        """Mark counts of those shingle hashes (uint32) that have any."""
        if not len(hashes):
            return {}
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT shingle_hash, marks FROM common_shingles WHERE shingle_hash = ANY(%s::int[])",
                (_int32(hashes),),
            )
            return {h & 0xFFFFFFFF: marks for h, marks in cur.fetchall()}

    def source_marks(self, hashes: Mapping[str, np.ndarray]) -> dict[str, dict[int, int]]:
        """Per source: `source_boilerplate` marks of those of its hashes that have any, in one query."""
        sources, values = [], []
        for source, found in hashes.items():
            sources.extend([int(source)] * len(found))
            values.append(np.asarray(found, dtype=np.uint32))
        out: dict[str, dict[int, int]] = {source: {} for source in hashes}
        if not sources:
            return out
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT b.source_id, b.shingle_hash, b.marks "
                "FROM unnest(%s::int[], %s::int[]) AS q(source_id, shingle_hash) "
                "JOIN source_boilerplate b USING (source_id, shingle_hash)",
                (_array_literal(sources), _int32(np.concatenate(values))),
            )
            for source_id, h, marks in cur.fetchall():
                out[str(source_id)][h & 0xFFFFFFFF] = marks
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
        """Insert signatures and band keys, upsert clusters, add shingle marks; cluster_id on articles.

        `moved` stored articles leave their one-article story for another: their article row and
        decision row follow, and the emptied story row goes.
        """
        with self.conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO article_signatures (article_id, params_version, signature, shingles, "
                "text_hash, length, published_at) VALUES %s",
                [
                    (
                        d.id,
                        d.params_version,
                        _bytes(d.signature),
                        _bytes(d.shingles),
                        d.text_hash,
                        d.length,
                        d.published_at,
                    )
                    for d in docs
                ],
                page_size=500,
            )
            # Up to 72 band rows per article: COPY, not INSERT.
            bands = "".join(
                f"{value}\t{d.id}\n" for d, keys in zip(docs, band_keys, strict=True) for _, value in keys
            )
            cur.copy_expert("COPY lsh_bands (band_hash, article_id) FROM STDIN", io.StringIO(bands))
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO story_clusters (cluster_id, canonical_article_id, canonical_published_at, "
                "canonical_length, size, first_source_id) "
                "SELECT v.cluster_id, v.canonical, v.published::timestamptz, v.length, v.size, a.source_id "
                "FROM (VALUES %s) AS v(cluster_id, canonical, published, length, size) "
                "JOIN articles a ON a.article_id = v.canonical "
                "ON CONFLICT (cluster_id) DO UPDATE SET canonical_article_id = EXCLUDED.canonical_article_id, "
                "canonical_published_at = EXCLUDED.canonical_published_at, "
                "canonical_length = EXCLUDED.canonical_length, size = EXCLUDED.size, last_seen_at = now()",
                [
                    (c.cluster_id, c.canonical_id, c.canonical_published_at, c.canonical_length, c.size)
                    for c in clusters
                ],
            )
            cur.execute(
                "UPDATE articles a SET cluster_id = v.cluster_id "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(article_id, cluster_id) "
                "WHERE a.article_id = v.article_id",
                ([d.id for d in docs], [d.cluster_id for d in docs]),
            )
            if moved:
                self._move(cur, moved)
            if marks:
                hashes = np.fromiter(marks.keys(), dtype=np.uint32, count=len(marks))
                cur.execute(
                    "INSERT INTO common_shingles (shingle_hash, marks) "
                    "SELECT * FROM unnest(%s::int[], %s::int[]) "
                    "ON CONFLICT (shingle_hash) DO UPDATE SET marks = common_shingles.marks + EXCLUDED.marks",
                    (_int32(hashes), list(marks.values())),
                )
            rows = [(int(source), h, n) for source, counts in source_marks.items() for h, n in counts.items()]
            if rows:
                cur.execute(
                    "INSERT INTO source_boilerplate (source_id, shingle_hash, marks) "
                    "SELECT * FROM unnest(%s::int[], %s::int[], %s::int[]) "
                    "ON CONFLICT (source_id, shingle_hash) DO UPDATE "
                    "SET marks = source_boilerplate.marks + EXCLUDED.marks, last_marked_at = now()",
                    (
                        _array_literal(r[0] for r in rows),
                        _int32(np.array([r[1] for r in rows], dtype=np.uint32)),
                        _array_literal(r[2] for r in rows),
                    ),
                )


    @staticmethod
    def _move(cur: psycopg2.extensions.cursor, moved: Sequence[Decision]) -> None:
        """Re-point late joiners' article and decision rows, then drop their emptied story rows."""
        cur.execute(
            "UPDATE articles a SET cluster_id = v.cluster_id "
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(article_id, cluster_id) WHERE a.article_id = v.article_id",
            ([d.doc_id for d in moved], [d.cluster_id for d in moved]),
        )
        psycopg2.extras.execute_values(
            cur,
            "UPDATE duplicate_decisions d SET cluster_id = v.cluster_id, matched_article_id = v.matched, "
            "method = v.method, similarity = v.similarity, jaccard = v.jaccard, containment = v.containment, "
            "threshold = v.threshold, shared_shingles = v.shared, evidence = v.evidence, decided_at = now() "
            "FROM (VALUES %s) AS v(article_id, cluster_id, matched, method, similarity, jaccard, containment, "
            "threshold, shared, evidence) WHERE d.article_id = v.article_id",
            [
                (
                    d.doc_id, d.cluster_id, d.matched_id, d.method, d.similarity, d.jaccard, d.containment,
                    d.threshold, d.shared, json.dumps(d.evidence),
                )
                for d in moved
            ],
            template="(%s::bigint, %s::bigint, %s::bigint, %s, %s::real, %s::real, %s::real, %s::real, %s::int, "
            "%s::jsonb)",
        )
        # A one-article story's id is its article's id.
        cur.execute("DELETE FROM story_clusters WHERE cluster_id = ANY(%s)", ([d.doc_id for d in moved],))


def assign_clusters(conn: Connection, docs: Sequence[Doc], params: DedupParams | None = None) -> list[Decision]:
    """Cluster new articles against everything stored, under a lock, and record each decision."""
    if not docs:
        return []
    params = params or DedupParams()
    with conn.cursor() as cur:
        # Two runs at once must not both start a cluster for one story: serialise assignment.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (DEDUP_LOCK,))
        cur.execute(
            "INSERT INTO dedup_params (params_version, params) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (params.version, json.dumps(params.to_dict())),
        )
        cur.execute(
            "SELECT article_id, source_id::text FROM articles WHERE article_id = ANY(%s)", ([d.id for d in docs],)
        )
        sources = dict(cur.fetchall())
    # Boilerplate is learnt per stored source row, whatever name the caller gave the source.
    docs = [replace(d, source=sources.get(d.id)) for d in docs]
    decisions = Deduplicator(params, PgSignatureStore(conn)).assign_batch(docs)
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO duplicate_decisions (article_id, cluster_id, matched_article_id, method, similarity, "
            "jaccard, containment, threshold, shared_shingles, candidates, params_version, evidence) VALUES %s "
            "ON CONFLICT (article_id) DO NOTHING",
            [
                (
                    d.doc_id,
                    d.cluster_id,
                    d.matched_id,
                    d.method,
                    d.similarity,
                    d.jaccard,
                    d.containment,
                    d.threshold,
                    d.shared,
                    d.candidates,
                    d.params_version,
                    json.dumps(d.evidence),
                )
                for d in decisions
            ],
        )
        # A copy published earlier displaces its story's canonical article: the displaced one is now
        # a duplicate of it, with the same verified similarity.
        displaced = [d for d in decisions if d.replaced_canonical_id is not None]
        if displaced:
            psycopg2.extras.execute_values(
                cur,
                "UPDATE duplicate_decisions d SET matched_article_id = v.matched, method = v.method, "
                "similarity = v.similarity, jaccard = v.jaccard, containment = v.containment, "
                "threshold = v.threshold, evidence = v.evidence, decided_at = now() "
                "FROM (VALUES %s) AS v(article_id, matched, method, similarity, jaccard, containment, threshold, "
                "evidence) WHERE d.article_id = v.article_id AND d.method = 'new'",
                [
                    (
                        d.replaced_canonical_id, d.doc_id, d.method, d.similarity, d.jaccard, d.containment,
                        d.threshold, json.dumps(d.evidence | {"displaced_by": d.doc_id}),
                    )
                    for d in displaced
                ],
                template="(%s::bigint, %s::bigint, %s, %s::real, %s::real, %s::real, %s::real, %s::jsonb)",
            )
    return decisions
