"""Signature speed on real article texts: newsdedup's batch path against a datasketch update() loop.

Documents are ~3 KB windows of the shared corpus's article bodies (read in place). Every method
starts from the raw text, folds it with `normalize_for_compare` and uses the engine's word k-grams
(k = 4) with 128 permutations; all run in this process on the same documents, one core.

Run: `python -m bench.signatures [--docs 2000] [--loop-docs 300]`
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

import numpy as np  # noqa: E402
import xxhash  # noqa: E402
from datasketch import MinHash  # noqa: E402
from newsdedup.dedup_records import fingerprint_text  # noqa: E402
from newsdedup.minhash import (  # noqa: E402
    DedupParams,
    Signer,
    shingle_hash,
    shingle_hashes,
    shingles_of_tokens,
    tokens,
)
from newsdedup.normalize import normalize_for_compare  # noqa: E402

from bench.dedup_quality import corpus_dir, shared_dir  # noqa: E402

PARAMS = DedupParams()
K = PARAMS.shingle_k


def load_docs(n: int, size: int = 3000) -> list[str]:
    """About `size`-character windows of the article bodies, cycled up to `n` documents."""
    root = corpus_dir()
    if root is None:
        raise FileNotFoundError(f"corpus not found under {shared_dir()}")
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    windows = []
    for key in sorted(truth):
        body = truth[key]["articleBody"]
        for start in range(0, len(body) - size // 2, size):
            chunk = body[start : start + size]
            if len(chunk) >= size * 0.8:
                windows.append(chunk)
    return [windows[i % len(windows)] for i in range(n)]


def _grams(text: str) -> list[str]:
    """Normalised word k-gram strings (what a user would feed to datasketch)."""
    words = normalize_for_compare(text).split()
    return list({" ".join(words[i : i + K]) for i in range(max(1, len(words) - K + 1))})


def update_loop(text: str) -> np.ndarray:
    """Baseline: MinHash() with its default SHA-1 hash, one update() per shingle."""
    m = MinHash(num_perm=128)
    for gram in _grams(text):
        m.update(gram.encode("utf-8"))
    return m.hashvalues


def update_batch_sha1(text: str) -> np.ndarray:
    """update_batch with the default SHA-1 hash."""
    m = MinHash(num_perm=128)
    m.update_batch([g.encode("utf-8") for g in _grams(text)])
    return m.hashvalues


def update_batch_xxh32(text: str) -> np.ndarray:
    """update_batch with xxh32 over the shingle strings."""
    m = MinHash(num_perm=128, hashfunc=xxhash.xxh32_intdigest)
    m.update_batch([g.encode("utf-8") for g in _grams(text)])
    return m.hashvalues


def _rate(fn: Callable[[str], object], docs: list[str]) -> float:
    """Documents per second of `fn` over `docs`."""
    started = time.perf_counter()
    for doc in docs:
        fn(doc)
    return len(docs) / (time.perf_counter() - started)


def run(n_docs: int, loop_docs: int) -> dict[str, float]:
    """Measure every method; returns docs/s per method and the speed-up over the update loop."""
    docs = load_docs(n_docs)
    signer = Signer(DedupParams())

    def newsdedup(text: str) -> np.ndarray:
        return signer.signature(shingle_hashes(tokens(text), K))

    # The fast path must equal a plain update() loop with the same shingle hash.
    for text in docs[:20]:
        ref = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
        for shingle in shingles_of_tokens(tokens(text), K):
            ref.update(shingle)
        if not np.array_equal(ref.hashvalues, newsdedup(text)):
            raise AssertionError("batch signature differs from the update() reference")

    newsdedup(docs[0])  # warm the token-hash memo and numpy
    norm_tokens = [tokens(d) for d in docs]
    started = time.perf_counter()
    for toks in norm_tokens:
        signer.signature(shingle_hashes(toks, K))
    from_tokens = len(docs) / (time.perf_counter() - started)
    rates = {
        "update() loop, SHA-1": _rate(update_loop, docs[:loop_docs]),
        "update_batch, SHA-1": _rate(update_batch_sha1, docs),
        "update_batch, xxh32 strings": _rate(update_batch_xxh32, docs),
        "newsdedup Signer": _rate(newsdedup, docs),
        "normalize_for_compare only": _rate(normalize_for_compare, docs),
        "newsdedup from tokens": from_tokens,
        # What the pipeline computes per article: the signature above plus word 2-gram hashes and lead bands.
        "newsdedup fingerprint_text": _rate(lambda text: fingerprint_text(text, "", PARAMS), docs),
    }
    rates["speed-up"] = rates["newsdedup Signer"] / rates["update() loop, SHA-1"]
    normalize_s = 1 / rates["normalize_for_compare only"]
    rates["speed-up without normalisation"] = rates["newsdedup from tokens"] / (
        1 / (1 / rates["update() loop, SHA-1"] - normalize_s)
    )
    rates["mean chars"] = sum(map(len, docs)) / len(docs)
    return rates


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--loop-docs", type=int, default=300, help="documents for the slow loop")
    args = parser.parse_args(argv)
    if corpus_dir() is None:
        print(f"signatures: corpus not found under {shared_dir()}; set NEWSDEDUP_SHARED_DIR. Nothing to do.")
        return 0
    rates = run(args.docs, args.loop_docs)
    print(f"{args.docs} documents, mean {rates.pop('mean chars'):.0f} characters, 128 permutations, "
          f"word {K}-grams, one core; all from raw text unless noted")
    speedup = rates.pop("speed-up")
    speedup_tokens = rates.pop("speed-up without normalisation")
    for name, value in rates.items():
        print(f"  {name:32} {value:9.0f} docs/s")
    print(f"newsdedup vs update() loop: {speedup:.1f}x end to end, "
          f"{speedup_tokens:.1f}x excluding the shared normalisation step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
