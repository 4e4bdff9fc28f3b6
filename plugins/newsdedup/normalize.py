"""Unicode- and Turkish-aware text folding, used only to compare texts, never to store them."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np
import xxhash

_APOSTROPHES = "'’‘‚′`´ʼ"
# Typographic variants are unified before NFKC, which would turn "´" into a space + accent.
_UNIFY = str.maketrans(
    dict.fromkeys(_APOSTROPHES, "'") | dict.fromkeys("“”„«»", '"') | dict.fromkeys("–—", "-")
)
# Turkish dotted/dotless I: Python lowercases "İ" to "i" + U+0307, so fold these before casefold.
_TURKISH_I = str.maketrans({"İ": "i", "I": "i", "ı": "i"})


class _CompareTable(dict[int, "str | None"]):
    """Lazy str.translate table: apostrophes and format chars deleted, punctuation to spaces."""

    def __missing__(self, codepoint: int) -> str | None:
        char = chr(codepoint)
        category = unicodedata.category(char)
        value: str | None
        # Apostrophes are deleted so "Putin'den" and "Putin’den" both fold to "putinden"; NFKC can
        # still produce one (fullwidth ｀ becomes `), hence the whole set here.
        if char in _APOSTROPHES or category == "Cf":  # Cf: soft hyphens, zero-width spaces
            value = None
        elif category[0] == "P" or category in ("Cc", "Zl", "Zp"):
            value = " "
        else:
            value = char
        self[codepoint] = value
        return value


_COMPARE_TABLE = _CompareTable()
# The typographic characters most news text has, and their ASCII equivalents under _UNIFY.
_COMMON_VARIANTS = tuple((char, char.translate(_UNIFY)) for char in "’‘“”–—")
_ASCII_TABLE = str.maketrans({chr(c): _COMPARE_TABLE[c] for c in range(128)})


def normalize_for_compare(text: str) -> str:
    """Fold text for comparison: NFKC, Turkish I folding, casefold, no punctuation, single spaces."""
    quick = text
    for variant, plain in _COMMON_VARIANTS:
        quick = quick.replace(variant, plain)
    if quick.isascii():
        # Same result as the full path (NFKC and casefold are identities on ASCII but for case), 3x faster.
        return " ".join(quick.lower().translate(_ASCII_TABLE).split())
    return _normalize_unicode(text)


def _normalize_unicode(text: str) -> str:
    """The full folding, for text with non-ASCII characters."""
    folded = unicodedata.normalize("NFKC", text.translate(_UNIFY)).translate(_TURKISH_I).casefold()
    # casefold can produce sequences NFKC rewrites; "i" + U+0307 is a decomposed dotted capital I.
    folded = unicodedata.normalize("NFKC", folded).replace("i\u0307", "i")
    return " ".join(folded.translate(_COMPARE_TABLE).split())


def words(text: str) -> list[str]:
    """Word tokens of the normalised text."""
    return normalize_for_compare(text).split()


def shingles_of_words(tokens: Sequence[str], k: int) -> set[str]:
    """Word k-grams of already normalised tokens; fewer than k tokens give one shingle."""
    if k < 1:
        raise ValueError("k must be >= 1")
    if not tokens:
        return set()
    if len(tokens) < k:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)}


def shingles(text: str, k: int) -> set[str]:
    """Word k-gram shingles of the normalised text (empty text gives no shingles)."""
    return shingles_of_words(words(text), k)


def shingle_hashes(text: str, k: int, seed: int = 0) -> np.ndarray:
    """Sorted unique 32-bit xxhash values (uint32) of the word k-gram shingles."""
    hashes = [xxhash.xxh32_intdigest(s.encode("utf-8"), seed) for s in shingles(text, k)]
    return np.unique(np.asarray(hashes, dtype=np.uint32))
