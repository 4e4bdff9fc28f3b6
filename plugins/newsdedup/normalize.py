"""Unicode- and Turkish-aware text folding, used only to compare texts, never to store them."""

from __future__ import annotations

import unicodedata

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


def word_count(text: str) -> int:
    """len(words(text)); ASCII text is counted without folding it (case does not change the count)."""
    if text.isascii():
        return len(text.translate(_ASCII_TABLE).split())
    return len(words(text))
