"""Near-duplicate quality on a small fixed benchmark built from the shared article corpus."""

from __future__ import annotations

import pytest

from bench.dedup_quality import CORPUS, NEGATIVE_KINDS, corpus_dir, format_table, run_quality, shared_dir

pytestmark = pytest.mark.skipif(
    corpus_dir() is None,
    reason=f"shared corpus not found at {shared_dir() / CORPUS} (set NEWSDEDUP_SHARED_DIR)",
)


@pytest.fixture(scope="module")
def report() -> dict:
    """One run of the benchmark: 40 originals, fixed seed."""
    return run_quality(n_docs=40, seed=7)


def test_newsdedup_meets_quality_floor(report: dict) -> None:
    print("\n" + format_table(report))
    ours = report["methods"]["newsdedup"]
    assert ours["precision"] >= 0.99, format_table(report)
    assert ours["f1"] >= 0.97, format_table(report)


def test_rewrites_and_briefs_join_their_story(report: dict) -> None:
    kinds = report["methods"]["newsdedup"]["recall_by_kind"]
    assert kinds["rewritten"] >= 0.95 and kinds["brief"] >= 0.95 and kinds["viral"] >= 0.95, kinds


def test_hard_negatives_kept_apart(report: dict) -> None:
    apart = report["methods"]["newsdedup"]["apart"]
    assert set(apart) == set(NEGATIVE_KINDS)
    assert all(value >= 0.99 for value in apart.values()), apart


def test_beats_the_first_baselines(report: dict) -> None:
    methods = report["methods"]
    assert methods["newsdedup"]["f1"] > max(m["f1"] for name, m in methods.items() if name != "newsdedup")
