"""MinHash signatures and LSH band keys over normalised word shingles (datasketch 2.0).

Shingles are word k-grams of `normalize_for_compare(text)`. Scripts written without spaces
between words (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) are split into single characters
first, so their shingles are character n-grams.

Two shingle sizes are used: word `shingle_k`-grams (4) give the MinHash signature and LSH band
keys (few chance collisions, so candidate look-ups stay cheap as the corpus grows), and word
`verify_k`-grams (2) are the stored set every candidate is verified on (a rewrite that replaces
15 % of the words keeps about half of its 2-grams but only a quarter of its 4-grams; see
BENCHMARKS.md for the measured distributions).

Shingle hash (recipe "xxh32w-poly64-v1"): every token is hashed with xxh32 (seed 0) of its UTF-8
bytes; the k token hashes h_0..h_{k-1} are combined as a polynomial in uint64,
acc = (...((h_0 * P + h_1) * P + h_2)...) * P + h_{k-1} mod 2^64 with P = 0x9E3779B97F4A7C15,
then mixed with the 64-bit MurmurHash3 finalizer; the upper 32 bits are the shingle hash.
This is about three times faster than hashing joined shingle strings and is reproduced
exactly by `shingle_hash` (the per-shingle reference used with `MinHash.update`).

Signatures are datasketch `MinHash` hash values (scheme "affine32", uint32) computed with
`update_batch` over the shingle hashes (identity hashfunc), so they equal a plain
`MinHash(hashfunc=shingle_hash).update(shingle)` loop bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import xxhash
from datasketch import MinHash

from newsdedup.normalize import normalize_for_compare

BandKey = tuple[int, int]

SHINGLE_RECIPE = "xxh32w-poly64-v2"  # v2: Thai, Lao, Khmer, Myanmar split into characters too
NORMALIZER = "normalize_for_compare-v1"

_POLY = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1
_FMIX1 = 0xFF51AFD7ED558CCD
_FMIX2 = 0xC4CEB9FE1A85EC53

# Fields that change stored signatures, shingle hashes or band keys.
_SIGNATURE_FIELDS = (
    "num_perm", "seed", "scheme", "shingle_k", "verify_k", "shingle_recipe", "normalizer", "bands", "rows",
    "lead_words", "lead_bands",
)

_NP_POLY, _NP_FMIX1, _NP_FMIX2 = np.uint64(_POLY), np.uint64(_FMIX1), np.uint64(_FMIX2)
_NP_32, _NP_33 = np.uint64(32), np.uint64(33)

# Scripts without spaces between words: Thai, Lao, Myanmar, Khmer, kana, CJK ideographs.
_CJK_CHARS = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
)
_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_TOKENS = re.compile(f"[{_CJK_CHARS}]|[^\\s{_CJK_CHARS}]+")


@dataclass(frozen=True)
class DedupParams:
    """Signature, LSH and decision settings; `version` names everything that shapes stored data.

    Defaults: 128 permutations of word 4-gram shingles in 64 bands x 2 rows, chosen for recall
    because every candidate is verified on its stored word `verify_k`-gram hashes anyway. The
    S-curve 1 - (1 - J^2)^64 makes a pair a candidate with probability 1 - 4e-29 at 4-gram
    Jaccard 0.8, 0.99999 at 0.4, 0.998 at 0.3 and 0.93 at 0.2, which is where a short excerpt
    inside a long wrapped copy or a typical rewrite (median 0.26 on the benchmark) sits; it
    falls to 0.47 at 0.1 and 0.006 at 0.01. datasketch's own choice at 0.8 (9 x 13) finds a
    J = 0.8 pair with probability 0.40 and a J = 0.4 pair 6e-5.
    Decisions, on word 2-gram hashes after boilerplate is taken out: Jaccard >= `threshold`,
    or containment of the smaller set in the larger >= `containment_threshold` (excerpts,
    wrapped copies; 0.8 keeps two stories sharing a template of up to 3/4 of their text apart
    before the template is learnt; `same_source_containment_threshold` 0.95 between two pages of
    one source, whose shared navigation block can make up 94 % of a brief: a republished page
    of its own is contained 0.97-1.0), or, between different (known) sources published at most
    `rewrite_window_hours` apart, Jaccard >= `rewrite_threshold` or containment >=
    `rewrite_containment_threshold` with Jaccard >= `rewrite_min_jaccard` (a rewrite against its
    story's other copies: Jaccard 5th percentile 0.33-0.40 against whole copies, 0.23 against
    excerpts, containment 0.54-0.59; a follow-up story a day later against any copy of the
    first: Jaccard mostly under 0.18 but up to 0.27 against an excerpt, containment at most
    0.5, or 0.68 against a short story's cut copy, with Jaccard 0.19). Every rule needs
    `min_shared` shared hashes except Jaccard >= `threshold`.
    `lead_bands` more bands come from a signature of the first `lead_words` tokens alone: a brief
    (a story's opening inside a long navigation block) shares little of its 4-gram set with the
    full story, but most of its lead (lead 4-gram Jaccard about 0.5: candidate with p = 0.88).
    `min_marks`: how many articles must have shown a shingle hash shared across clusters
    before it is common boilerplate for everyone; `min_source_marks`: how many articles of one
    source must have shown it shared with another story of that source before it is that
    source's boilerplate (navigation, teasers, bylines), which counts for that source only.
    `support_share`: a containment match with a smaller, non-canonical member of a story that makes up
    less than this share of the new article (a follow-up repeating the paragraph a brief opens with)
    stands only if another member or the story's canonical article matches too.
    """

    num_perm: int = 128
    seed: int = 1
    scheme: str = "affine32"
    shingle_k: int = 4
    verify_k: int = 2
    shingle_recipe: str = SHINGLE_RECIPE
    normalizer: str = NORMALIZER
    bands: int = 64
    rows: int = 2
    lead_words: int = 60
    lead_bands: int = 8
    threshold: float = 0.8
    containment_threshold: float = 0.8
    same_source_containment_threshold: float = 0.95
    rewrite_threshold: float = 0.3
    rewrite_containment_threshold: float = 0.55
    rewrite_min_jaccard: float = 0.2
    rewrite_window_hours: float = 96.0
    min_shared: int = 15
    support_share: float = 0.5
    min_marks: int = 2
    min_source_marks: int = 1
    max_candidates: int = 100

    def __post_init__(self) -> None:
        """Reject settings the signature code cannot honour."""
        if self.scheme != "affine32":
            raise ValueError(f"only scheme 'affine32' is supported, got {self.scheme!r}")
        if min(self.num_perm, self.shingle_k, self.verify_k, self.bands, self.rows) < 1:
            raise ValueError("num_perm, shingle_k, verify_k, bands and rows must be positive")
        if max(self.bands, self.lead_bands) * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands}x{self.rows}) exceeds num_perm {self.num_perm}")
        thresholds = (
            self.threshold, self.containment_threshold, self.same_source_containment_threshold,
            self.rewrite_threshold, self.rewrite_containment_threshold, self.rewrite_min_jaccard, self.support_share,
        )
        if not all(0 < t <= 1 for t in thresholds):
            raise ValueError("thresholds must be in (0, 1]")

    @cached_property
    def version(self) -> str:
        """Stable id of the stored-data format; thresholds are excluded, they do not change it."""
        data = {name: getattr(self, name) for name in _SIGNATURE_FIELDS}
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
        return (
            f"mh-{self.scheme}-p{self.num_perm}-s{self.seed}-k{self.shingle_k}v{self.verify_k}"
            f"-b{self.bands}x{self.rows}+{self.lead_bands}-{digest}"
        )

    def candidate_probability(self, jaccard: float) -> float:
        """Probability that a pair of this Jaccard shares at least one band (the S-curve)."""
        return 1.0 - (1.0 - jaccard**self.rows) ** self.bands

    def to_dict(self) -> dict[str, object]:
        """All fields plus the version, for logs and reports."""
        out: dict[str, object] = dict(asdict(self))
        out["version"] = self.version
        return out


class _TokenHashes(dict[str, int]):
    """Memo of xxh32 per token; common words are looked up instead of rehashed."""

    def __missing__(self, token: str) -> int:
        if len(self) > 500_000:
            self.clear()
        value = xxhash.xxh32_intdigest(token.encode("utf-8"))
        self[token] = value
        return value


_TOKEN_HASHES = _TokenHashes()


def tokens_of_normalized(norm: str) -> list[str]:
    """Tokens of already normalised text; CJK runs become one token per character."""
    if not norm.isascii() and _CJK.search(norm):
        return _CJK_TOKENS.findall(norm)
    return norm.split()


def tokens(text: str) -> list[str]:
    """Comparison tokens of raw text."""
    return tokens_of_normalized(normalize_for_compare(text))


def shingle_hash(shingle: Sequence[str]) -> int:
    """32-bit hash of one shingle (a sequence of tokens); the reference for `shingle_hashes`."""
    acc = 0
    for token in shingle:
        acc = (acc * _POLY + xxhash.xxh32_intdigest(token.encode("utf-8"))) & _MASK64
    acc ^= acc >> 33
    acc = (acc * _FMIX1) & _MASK64
    acc ^= acc >> 33
    acc = (acc * _FMIX2) & _MASK64
    acc ^= acc >> 33
    return acc >> 32


def shingles_of_tokens(toks: Sequence[str], k: int) -> list[tuple[str, ...]]:
    """Word k-grams in order (duplicates kept); fewer than k tokens give one shingle."""
    if not toks:
        return []
    if len(toks) < k:
        return [tuple(toks)]
    return [tuple(toks[i : i + k]) for i in range(len(toks) - k + 1)]


def shingle_hashes(toks: Sequence[str] | np.ndarray, k: int) -> np.ndarray:
    """Sorted unique uint32 shingle hashes of a token list or its token_hash_array (vectorised `shingle_hash`)."""
    if len(toks) == 0:
        return np.empty(0, dtype=np.uint32)
    out = np.sort(shingle_hash_sequence(toks, k))
    # Sort and mask: np.unique costs about six times as much on arrays this size.
    keep = np.empty(len(out), dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]


def token_hash_array(toks: Sequence[str]) -> np.ndarray:
    """uint64 array of each token's xxh32 (memoised): the input of shingle hashing, computed once per text."""
    return np.fromiter(map(_TOKEN_HASHES.__getitem__, toks), dtype=np.uint64, count=len(toks))


def shingle_hash_sequence(toks: Sequence[str] | np.ndarray, k: int) -> np.ndarray:
    """uint32 hash of the shingle starting at each position, in text order (duplicates kept).

    `toks` may be the tokens or their token_hash_array (a text hashed under several k).
    """
    n = len(toks)
    if n == 0:
        return np.empty(0, dtype=np.uint32)
    hw = toks if isinstance(toks, np.ndarray) else token_hash_array(toks)
    width = min(k, n)
    count = n - width + 1
    acc = hw[:count].copy()
    for j in range(1, width):
        acc *= _NP_POLY
        acc += hw[j : j + count]
    acc ^= acc >> _NP_33
    acc *= _NP_FMIX1
    acc ^= acc >> _NP_33
    acc *= _NP_FMIX2
    acc ^= acc >> _NP_33
    return (acc >> _NP_32).astype(np.uint32)


def _identity(value: int) -> int:
    """Hashfunc for MinHash when the inputs are already 32-bit shingle hashes."""
    return value


class Signer:
    """Computes MinHash signatures and band keys for one `DedupParams`."""

    def __init__(self, params: DedupParams) -> None:
        """Build the permutations once; every signature reuses them."""
        self.params = params
        self._template = MinHash(num_perm=params.num_perm, seed=params.seed, scheme=params.scheme)
        self._band_seed = xxhash.xxh64_intdigest(params.version.encode())
        self._whole_array = self._whole_array_works()

    def minhash(self, hashes: np.ndarray) -> MinHash:
        """A datasketch MinHash of the given shingle hashes (empty input gives an empty MinHash)."""
        m = MinHash(
            num_perm=self.params.num_perm,
            seed=self.params.seed,
            scheme=self.params.scheme,
            hashfunc=_identity,
            permutations=self._template.permutations,
        )
        if len(hashes):
            if self._whole_array:
                m.update_batch([hashes])
            else:
                m.update_batch(hashes.tolist())
        return m

    def _whole_array_works(self) -> bool:
        """Whether update_batch accepts the whole hash array as one item (checked, not assumed).

        update_batch builds `np.array([hashfunc(x) for x in batch])` and reshapes it to a column,
        so a single item whose identity "hash" is the uint32 array yields the same column as
        the per-value list while skipping a Python-level loop over every shingle (about 40 %
        of the signature time). If a datasketch release stops doing that, the plain path is used.
        """
        sample = np.arange(1, 5000, 7, dtype=np.uint32) * np.uint32(2654435761)
        self._whole_array = False
        plain = self.minhash(sample).hashvalues
        self._whole_array = True
        try:
            return bool(np.array_equal(self.minhash(sample).hashvalues, plain))
        except (TypeError, ValueError):
            return False

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash hash values (uint32, length num_perm) of the shingle hashes."""
        return self.minhash(hashes).hashvalues.astype(np.uint32, copy=False)

    def band_keys(self, signature: np.ndarray) -> list[BandKey]:
        """(band_no, band_hash) per band; band_hash is a signed 64-bit xxh64, salted by version."""
        p = self.params
        if len(signature) != p.num_perm:
            raise ValueError(f"signature has {len(signature)} values, params expect {p.num_perm}")
        return self._keys(signature, 0, p.bands)

    def lead_keys(self, signature: np.ndarray) -> list[BandKey]:
        """Band keys of the lead's signature, numbered after the main bands (`lead_bands` of them)."""
        return self._keys(signature, self.params.bands, self.params.lead_bands)

    def _keys(self, signature: np.ndarray, first: int, count: int) -> list[BandKey]:
        """(first + i, xxh64 of band i's rows) for i < count, as signed 64-bit values."""
        rows = self.params.rows
        data = np.ascontiguousarray(signature[: count * rows], dtype="<u4").tobytes()
        width = 4 * rows
        keys = []
        for band in range(count):
            h = xxhash.xxh64_intdigest(data[band * width : (band + 1) * width], self._band_seed + first + band)
            keys.append((first + band, h - (1 << 64) if h >= 1 << 63 else h))
        return keys


_SIGNERS: dict[DedupParams, Signer] = {}


def signer_for(params: DedupParams) -> Signer:
    """Shared `Signer` per params (building permutations costs more than one signature)."""
    signer = _SIGNERS.get(params)
    if signer is None:
        signer = _SIGNERS[params] = Signer(params)
    return signer


