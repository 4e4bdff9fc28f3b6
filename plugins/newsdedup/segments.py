"""Splitting scraped text into paragraphs (one per line) and sentences, with offsets into the text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

SegmentKind = Literal["paragraph", "sentence"]

# Same set of characters as str.splitlines(): scraped text puts one paragraph per line.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’»)\]]*\s+")
_OPENERS = frozenset("\"'“‘«„‚([")
_ROMAN = re.compile(r"[IVXLC]+")
# Tokens that end with "." without ending a sentence (Turkish and English), compared casefolded.
_ABBREVIATIONS = frozenset(
    """
    dr prof doç yrd av sn sayın alb gen org korg tuğg tümg kur bnb yzb ütğm tğm astsb vb vs vd bkz
    örn yy mah cad sok sk apt no nr tel şti ltd inc co corp jr sr st mr mrs ms mt gov sen rep rev
    lt col capt sgt cmdr adm fig vol pp ed eds approx dept est ca cf etc al jan feb mar apr jun jul
    aug sep sept oct nov dec
    """.split()  # noqa: SIM905 - a word list is easier to read and extend than a list literal
)


@dataclass(frozen=True)
class Segment:
    """A paragraph or sentence with its [start, end) offsets in the original text."""

    text: str
    start: int
    end: int
    kind: SegmentKind
    index: int  # paragraph number, or sentence number inside its paragraph
    sentences: tuple[Segment, ...] = ()


def _stripped_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _is_sentence_end(paragraph: str, boundary: re.Match[str]) -> bool:
    """Whether a terminator run followed by whitespace really ends a sentence."""
    following = paragraph[boundary.end()]
    if not (following.isupper() or following.isdigit() or following in _OPENERS):
        return False
    terminators = boundary.group().rstrip().rstrip("\"'”’»)]")
    if terminators != ".":
        return True  # "!", "?", "…" and "..." always end a sentence here
    before = paragraph[: boundary.start()]
    token = "" if not before or before[-1].isspace() else before.split()[-1]
    token = token.lstrip("\"'“‘«„‚([")
    if "." in token:  # U.S., A.Ş., e.g.
        return False
    if len(token) == 1 and token.isalpha():  # initials: "J. K. Rowling"
        return False
    if token.isdigit() and len(token) <= 3:  # Turkish ordinals: "1. Lig", "15. madde"
        return False
    if _ROMAN.fullmatch(token):  # "II. Dünya Savaşı"
        return False
    return token.casefold() not in _ABBREVIATIONS


def split_sentences(paragraph: str, offset: int) -> tuple[Segment, ...]:
    """Split one stripped paragraph into sentences, offsets relative to the whole text."""
    sentences: list[Segment] = []
    start = 0
    for boundary in _BOUNDARY.finditer(paragraph):
        if boundary.end() < len(paragraph) and _is_sentence_end(paragraph, boundary):
            end = len(boundary.group().rstrip()) + boundary.start()
            text = paragraph[start:end]
            sentences.append(Segment(text, offset + start, offset + end, "sentence", len(sentences)))
            start = boundary.end()
    text = paragraph[start:]
    sentences.append(Segment(text, offset + start, offset + len(paragraph), "sentence", len(sentences)))
    return tuple(sentences)


def paragraph_spans(text: str) -> Iterator[tuple[int, int]]:
    """[start, end) of each non-empty line of text, surrounding whitespace excluded."""
    line_start = 0
    for line_end in [m.start() for m in _LINE_BREAK.finditer(text)] + [len(text)]:
        start, end = _stripped_span(text, line_start, line_end)
        if start < end:
            yield start, end
        line_start = line_end + (2 if text.startswith("\r\n", line_end) else 1)


def paragraph_segment(text: str, start: int, end: int, index: int) -> Segment:
    """The paragraph text[start:end] with its sentences."""
    body = text[start:end]
    return Segment(body, start, end, "paragraph", index, split_sentences(body, start))


def split_segments(text: str) -> list[Segment]:
    """Split text into non-empty paragraphs (one per line), each carrying its sentences."""
    return [paragraph_segment(text, start, end, i) for i, (start, end) in enumerate(paragraph_spans(text))]
