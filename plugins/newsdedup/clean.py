"""Per-document cleaner: drops repeated headlines and repeated (possibly reworded) paragraphs.

A repeat is judged in context, not by word overlap alone: the headline printed again (anywhere as a line of
its own; with decorations or as a sentence only near the top), a passage repeated in the next kept paragraph,
and a reworded lead near the top go. A passage that comes back further away, a short standard phrase, a
direct quote, or a sentence with another name, number or negation stays: the article really holds it twice.
bench/clean_loss.py measures this against ground truth (BENCHMARKS.md, "Segment cleaning").
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import chain, islice
from pathlib import Path
from typing import Literal, NamedTuple

from newsdedup.normalize import word_count, words
from newsdedup.segments import Segment, SegmentKind, paragraph_segment, paragraph_spans, split_sentences

Reason = Literal["title_repeat", "near_duplicate", "exact_duplicate"]
Measure = Literal["equal", "title_overlap", "jaccard", "containment"]

# Thresholds, from k=2 word-shingle measurements (tests/test_clean.py records them):
# - seed: reworded lead vs the lead's first sentence Jaccard 0.75 (containment 0.88); closest
#   legitimate pair (two Lavrov "insani müdahale" sentences) Jaccard 0.36, containment 0.70;
# - own fixtures: reworded leads Jaccard 0.68 (tr) and 0.84 (en); templated regional forecasts
#   0.65, kept only by the names-and-figures guard in _near; "<title> - Ege Haber" vs title 0.71
#   both ways, while no non-repeat segment reaches 0.34 against its title;
# - k=3 separates worse (tr reworded lead 0.58 vs templated forecasts 0.53).
SHINGLE_K = 2
SHORT_MAX_WORDS = 5  # headings this short are only removed on normalised equality
JACCARD_THRESHOLD = 0.6
CONTAINMENT_THRESHOLD = 0.9  # later segment almost wholly inside an earlier one (a cut-off copy)
CONTAINMENT_MIN_SHINGLES = 8  # ...but only when it is long enough for that to mean something
TITLE_THRESHOLD = 0.6  # both-ways containment with the title ("Title - Site Name" still matches)
# Context: a scraped page prints the headline and a (reworded) lead again near the top, right after the
# lead; further down, a passage that comes back (an interview question, a recipe line, a refrain, a
# standard phrase, a ticker entry) is part of the article: on the 181 pages of the extraction benchmark,
# 129 of the 142 removals these rules now refuse took text the ground truth holds (the other 13: repeated
# table header rows, two boilerplate lines, a pull quote).
# Positions count kept paragraphs, so a second run sees the same ones.
LEAD_ZONE = 3  # kept paragraphs 0-3: where near (not equal) copies and sentence-level headline repeats go
LEAD_DISTANCE = 2  # ...of a passage at most this many kept paragraphs back; below the top, only the one before
NEAR_MIN_WORDS = 8  # shorter near copies are standard phrases or different sentences, kept
# Words that turn a statement around, folded (tr, en, de; CJK characters one by one).
_NEGATIONS = frozenset(
    """
    not no never nor none nothing nobody cannot cant dont doesnt didnt isnt arent wasnt werent wont
    wouldnt shouldnt couldnt hasnt havent hadnt nicht kein keine keinen keinem keiner keines nie niemals
    nichts weder değil yok hiç asla hayır 不 没 沒 未 无 無 非 别 否
    """.split()  # noqa: SIM905 - a word list is easier to read and extend than a list literal
)
# Either test above needs at least this share of a segment's shingles in one earlier segment
# (Jaccard >= J implies shared / len >= J): segments below it against all kept text are new.
MIN_SHARE = min(JACCARD_THRESHOLD, CONTAINMENT_THRESHOLD) * (1 - 1e-9)
# A segment long enough to be compared (over SHORT_MAX_WORDS words) has at least _MIN_POSITIONS shingle
# positions, and at least _MIN_FLAGGED of them shared with earlier text when it is a repeat.
_MIN_POSITIONS = SHORT_MAX_WORDS + 2 - SHINGLE_K
_MIN_FLAGGED = math.ceil(MIN_SHARE * _MIN_POSITIONS)

_FIRST_LETTER = re.compile(r"\W*[^\W\d_]")
_DIGIT = re.compile(r"\d")
# Han, kana and Hangul: written without spaces, so compared character by character.
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CJK_SPLIT = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff])")
_OPENING_QUOTES = frozenset("\"'“”„«»‘‚‹›")


@dataclass(frozen=True)
class Removal:
    """One segment dropped by clean_article, with what it matched and how closely."""

    segment: str
    kind: SegmentKind
    reason: Reason
    matched: str
    similarity: float
    position: int  # paragraph number in split_segments(text)
    sentence: int | None = None  # sentence number inside the paragraph, for kind="sentence"
    measure: Measure = "equal"

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form for JSON/database storage."""
        return asdict(self)


@dataclass(frozen=True)
class CleanResult:
    """Cleaned text (kept paragraphs joined by blank lines) and what was removed."""

    text: str
    removed: list[Removal] = field(default_factory=list)
    norm: str = field(default="", repr=False)  # normalize_for_compare(text), folded on the way

    def to_dict(self) -> dict[str, object]:
        """Plain-dict form for JSON/database storage."""
        return {"text": self.text, "removed": [r.to_dict() for r in self.removed]}


@dataclass(frozen=True)
class _Unit:
    """Comparison view of a piece of text; the original text is kept untouched."""

    text: str
    tokens: list[str]  # folded words, CJK characters one by one
    norm: str  # normalize_for_compare(text)
    n_words: int
    shingles: frozenset[tuple[str, ...]]

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """Tokens."""
        return frozenset(self.tokens)

    @cached_property
    def anchors(self) -> frozenset[str]:
        """Tokens of words that start with a capital letter, and numbers."""
        capitalised = " ".join(raw for raw in self.text.split() if _is_capitalised(raw))
        return frozenset(_fold(capitalised)[0]) | self.numbers

    @cached_property
    def numbers(self) -> frozenset[str]:
        """Tokens that hold a digit."""
        return frozenset(token for token in self.tokens if _DIGIT.search(token))

    @cached_property
    def negations(self) -> frozenset[str]:
        """Negation words."""
        return _NEGATIONS.intersection(self.tokens)


def _is_capitalised(raw: str) -> bool:
    """Whether a whitespace-separated word starts with a capital letter."""
    first = _FIRST_LETTER.match(raw)
    return bool(first and first.group()[-1].isupper())


def _fold(text: str) -> tuple[list[str], str]:
    """Comparison tokens of text (CJK split into characters) and its folded form."""
    folded = words(text)
    norm = " ".join(folded)
    if not _CJK.search(norm):
        return folded, norm
    return [piece for word in folded for piece in _CJK_SPLIT.split(word) if piece], norm


def _token_count(text: str) -> int:
    """len(_fold(text)[0]); ASCII text (no CJK) is counted without folding it."""
    return word_count(text) if text.isascii() else len(_fold(text)[0])


def _word_count(tokens: list[str], norm: str) -> int:
    """Length in words: two CJK characters count as one word (a phrase of 8 characters is a short one)."""
    if not _CJK.search(norm):
        return len(tokens)
    return len(tokens) - sum(1 for token in tokens if len(token) == 1 and _CJK.match(token)) // 2


def _unit(text: str) -> _Unit:
    """Build the comparison view of text."""
    tokens, norm = _fold(text)
    return _Unit(text, tokens, norm, _word_count(tokens, norm), _shingles(tokens))


def _joined_unit(text: str, parts: list[_Unit]) -> _Unit:
    """The comparison view of text made of `parts` separated by whitespace (a paragraph of its sentences).

    Equal to _unit(text) (folding is per character and tokens never span whitespace), without folding twice.
    """
    tokens = [token for part in parts for token in part.tokens]
    norm = " ".join(part.norm for part in parts if part.norm)
    return _Unit(text, tokens, norm, _word_count(tokens, norm), _shingles(tokens))


def _shingles(tokens: list[str]) -> frozenset[tuple[str, ...]]:
    """Word k-grams as tuples: the set of minhash.shingles_of_tokens, built in C."""
    if len(tokens) < SHINGLE_K:
        return frozenset([tuple(tokens)]) if tokens else frozenset()
    if SHINGLE_K == 2:
        return frozenset(zip(tokens, tokens[1:], strict=False))
    return frozenset(zip(*(tokens[i:] for i in range(SHINGLE_K)), strict=False))


class _Hit(NamedTuple):
    """Why a unit is a repeat: reason, the text it matched, similarity and the measure used."""

    reason: Reason
    matched: str
    similarity: float
    measure: Measure


class _Pool:
    """Kept units in order with their paragraph ordinals, an exact-text map, the union of their shingles
    and a lazy shingle index.

    A near-duplicate shares at least MIN_SHARE of its shingles with one earlier unit, hence with all of them:
    most segments of an article fail that test against the union, and the index (the costly part) is only
    built, up to date, for the few that pass.
    """

    def __init__(self) -> None:
        self.units: list[_Unit] = []
        self.ordinals: list[int] = []  # kept-paragraph number of each unit
        self.by_norm: dict[str, int] = {}  # folded text -> its latest unit
        self.seen: set[tuple[str, ...]] = set()
        self.postings: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self.indexed = 0

    def add(self, unit: _Unit, ordinal: int) -> None:
        """Append a unit kept in kept-paragraph number `ordinal`."""
        self.by_norm[unit.norm] = len(self.units)
        self.seen.update(unit.shingles)
        self.units.append(unit)
        self.ordinals.append(ordinal)

    def equal(self, candidate: _Unit, nearest: int) -> _Unit | None:
        """The latest unit with the candidate's folded text, if it is in kept paragraph `nearest` or later."""
        n = self.by_norm.get(candidate.norm)
        return self.units[n] if n is not None and self.ordinals[n] >= nearest else None

    def sharing(self, candidate: _Unit, nearest: int) -> list[tuple[_Unit, int]]:
        """Units from kept paragraph `nearest` on that may be near-duplicates of candidate, with shared counts."""
        if len(self.seen.intersection(candidate.shingles)) < MIN_SHARE * len(candidate.shingles):
            return []
        postings = self.postings
        for n in range(self.indexed, len(self.units)):
            for shingle in self.units[n].shingles:
                postings[shingle].append(n)
        self.indexed = len(self.units)
        # One Counter over all posting lists: counted in C, not one update() call per shingle.
        counts = Counter(chain.from_iterable(postings[s] for s in candidate.shingles if s in postings))
        return [(self.units[i], counts[i]) for i in sorted(counts) if self.ordinals[i] >= nearest]


def _near(candidate: _Unit, earlier: _Unit, shared: int) -> _Hit | None:
    """Shingle Jaccard/containment test, guarded so names, figures and negations must match too."""
    a, b = len(candidate.shingles), len(earlier.shingles)
    jaccard, containment = shared / (a + b - shared), shared / a
    if jaccard >= JACCARD_THRESHOLD:
        hit = _Hit("near_duplicate", earlier.text, jaccard, "jaccard")
    elif containment >= CONTAINMENT_THRESHOLD and a >= CONTAINMENT_MIN_SHINGLES:
        hit = _Hit("near_duplicate", earlier.text, containment, "containment")
    else:
        return None
    # Templated but distinct text ("Ege Bölgesi'nde ... 15 derece" after "Marmara Bölgesi'nde
    # ... 12 derece") shares most shingles; a real repeat keeps its names, numbers and negations (a cut-off
    # copy may have lost some of the latter).
    if not candidate.anchors <= earlier.vocabulary:
        return None
    if hit.measure == "jaccard" and candidate.negations != earlier.negations:
        return None
    return hit if candidate.negations <= earlier.negations else None


def _title_hit(candidate: _Unit, title: _Unit, in_lead: bool) -> _Hit | None:
    """A paragraph that is the headline with an outlet's decoration ("<title> - Site"), or None.

    Away from the top only when it holds the whole headline; never when it brings a number of its own
    (a dateline) or changes a name or a negation.
    """
    if not title.shingles or not (in_lead or title.norm in candidate.norm):
        return None
    both_ways = len(candidate.shingles & title.shingles) / max(len(candidate.shingles), len(title.shingles))
    if both_ways < TITLE_THRESHOLD or candidate.numbers - title.vocabulary or candidate.negations != title.negations:
        return None
    # A decoration adds names ("- Ege Haber") or drops them; a different story changes them both ways.
    if candidate.anchors - title.vocabulary and title.anchors - candidate.vocabulary:
        return None
    return _Hit("title_repeat", title.text, both_ways, "title_overlap")


def _is_quote(unit: _Unit) -> bool:
    """Whether the text opens with a quotation mark: a direct quote repeats the reported speech on purpose."""
    text = unit.text.lstrip()
    return bool(text) and text[0] in _OPENING_QUOTES


def _match(
    candidate: _Unit, title: _Unit, pool: _Pool, ordinal: int, previous: _Unit | None, *, whole: bool
) -> _Hit | None:
    """Return why candidate, in kept paragraph `ordinal`, repeats the title or an earlier passage, or None.

    whole: candidate is a paragraph, and `previous` the paragraph kept just before it. Short candidates
    (headings, "Ready?") only go on equality with the title or with `previous` (a stuttered line).
    Passages of the candidate's own paragraph never count: a sentence said twice there is meant.
    """
    if not candidate.norm:
        return None  # nothing comparable, e.g. a "***" separator
    in_lead = ordinal <= LEAD_ZONE
    if candidate.norm == title.norm and (whole or in_lead):
        return _Hit("title_repeat", title.text, 1.0, "equal")
    if candidate.n_words <= SHORT_MAX_WORDS:
        if previous is not None and candidate.norm == previous.norm:
            return _Hit("exact_duplicate", previous.text, 1.0, "equal")
        # Repeated labels ("Meal 2", an interview question per guest) are structure, not noise.
        return None
    nearest = ordinal - (LEAD_DISTANCE if in_lead else 1)
    earlier = pool.equal(candidate, nearest)
    if earlier is not None:
        return _Hit("exact_duplicate", earlier.text, 1.0, "equal")
    if whole and (hit := _title_hit(candidate, title, in_lead)):
        return hit
    if not in_lead or candidate.n_words < NEAR_MIN_WORDS or _is_quote(candidate):
        return None
    pairs = pool.sharing(candidate, nearest)
    hits = [hit for unit, shared in pairs if shared and (hit := _near(candidate, unit, shared))]
    # Prefer a same-size (Jaccard) match over "contained in a longer unit"; earliest wins ties.
    return max(hits, key=lambda hit: (hit.measure == "jaccard", hit.similarity), default=None)


def _join_sentences(paragraph: Segment, kept: list[Segment]) -> str:
    """Rebuild a paragraph from kept sentences, each keeping the whitespace that preceded it."""
    parts: list[str] = []
    for sentence in kept:
        if parts:
            before = paragraph.sentences[sentence.index - 1]
            parts.append(paragraph.text[before.end - paragraph.start : sentence.start - paragraph.start])
        parts.append(sentence.text)
    return "".join(parts)


def _removal(segment: Segment, kind: SegmentKind, hit: _Hit, position: int) -> Removal:
    """Describe one removed segment."""
    sentence = segment.index if kind == "sentence" else None
    return Removal(
        segment.text, kind, hit.reason, hit.matched, hit.similarity, position, sentence, hit.measure
    )


class _Screen:
    """Whether a paragraph can hold a removal at all, from its shingle positions alone.

    A segment is only removed if it meets the title (equal, or sharing TITLE_THRESHOLD of the title's
    shingles), equals the previous kept paragraph (short paragraphs), or shares MIN_SHARE of its d distinct
    shingles with one earlier unit, which lies in one earlier paragraph or earlier in its own. Of the
    segment's m >= _MIN_POSITIONS shingle positions, at least a + (m - d) >= MIN_SHARE * m then hold a
    shingle of that paragraph or a repeat from earlier in their own. A paragraph with no such dense run
    against any earlier paragraph, and not meeting the title or the previous paragraph, is kept whole with
    all its sentences, without splitting or comparing them.
    """

    def __init__(self, title: _Unit) -> None:
        self.title = title.shingles if len(title.tokens) >= SHINGLE_K else frozenset()
        # A title shorter than a shingle is one short shingle, met only by a segment equal to it.
        self.title_words = frozenset(title.tokens) if 0 < len(title.tokens) < SHINGLE_K else None
        self.seen: set[tuple[str, ...]] = set()  # union of self.paragraphs
        self.paragraphs: list[set[tuple[str, ...]]] = []  # per earlier paragraph: its shingles and its units'

    def may_remove(self, text: str, tokens: list[str], norm: str, previous_norm: str | None) -> bool:
        """Whether some segment of the paragraph `text` (`tokens`, folded `norm`) could be removed; records its
        shingles."""
        shingles = list(zip(*(tokens[i:] for i in range(SHINGLE_K)), strict=False))  # as _shingles, in order
        distinct = set(shingles)
        before = distinct & self.seen
        earlier = len(self.paragraphs)
        self.seen |= distinct
        self.paragraphs.append(distinct)
        if len(tokens) <= SHORT_MAX_WORDS and norm == previous_norm:
            return True
        if self.title_words is not None and self.title_words.issubset(tokens):
            return True
        if self.title and len(self.title & distinct) >= TITLE_THRESHOLD * (1 - 1e-9) * len(self.title):
            return True
        if len(before) + len(shingles) - len(distinct) < _MIN_FLAGGED:
            return False
        # Positions holding a shingle of earlier text or an earlier one of their own, then those of the latter.
        first = dict(zip(reversed(shingles), range(len(shingles) - 1, -1, -1), strict=True))  # first positions
        if len(distinct) == len(shingles):
            flagged, repeats = sorted(map(first.__getitem__, before)), []
        else:
            flagged = [i for i, s in enumerate(shingles) if s in before or first[s] != i]
            repeats = [i for i in flagged if first[shingles[i]] != i]
        # Dense against all earlier text somewhere (cheap), then over a whole segment (the paragraph or one of
        # its sentences: needs the split), then against one earlier paragraph alone.
        if not _dense(flagged, MIN_SHARE, _MIN_POSITIONS):
            return False
        repeated = set(repeats)
        for a, b in _segment_ranges(text, tokens):
            if _count(flagged, a, b) < MIN_SHARE * (b - a):
                continue
            need = MIN_SHARE * (b - a) - _count(repeats, a, b)
            if need <= 0:
                return True
            fresh = {shingles[i] for i in range(a, b) if i not in repeated}  # first occurrences: one per position
            if any(len(fresh & other) >= need for other in islice(self.paragraphs, earlier)):
                return True
        return False

    def record(self, shingles: frozenset[tuple[str, ...]]) -> None:
        """Add the shingles of a unit kept from the last paragraph (a rejoined one has new ones)."""
        self.seen |= shingles
        self.paragraphs[-1] |= shingles


def _segment_ranges(text: str, tokens: list[str]) -> list[tuple[int, int]]:
    """Shingle positions [first, end) of the paragraph and of its sentences, those over SHORT_MAX_WORDS words."""
    ranges = [(0, len(tokens) - SHINGLE_K + 1)] if len(tokens) > SHORT_MAX_WORDS else []
    sentences = split_sentences(text, 0)
    if len(sentences) > 1:
        first = 0
        for sentence in sentences:
            count = _token_count(sentence.text)
            if count > SHORT_MAX_WORDS:
                ranges.append((first, first + count - SHINGLE_K + 1))
            first += count
    return ranges


def _count(positions: list[int], start: int, end: int) -> int:
    """How many of the sorted positions lie in [start, end)."""
    return bisect_left(positions, end) - bisect_left(positions, start)


def _dense(positions: list[int], share: float, window: int) -> bool:
    """Whether some run of at least `window` positions has `share` of them in `positions` (sorted).

    A longer run splits into disjoint runs of window to 2*window - 1 positions, and one of them is at least
    as dense, so only those lengths are tried, each ending at a listed position.
    """
    longest = 2 * window - 1
    for b, end in enumerate(positions):
        if b - bisect_left(positions, end - longest + 1) + 1 < share * window:
            continue  # too few even in the longest run ending here, and every length needs share * window
        for length in range(window, longest + 1):
            if b - bisect_left(positions, end - length + 1) + 1 >= share * length:
                return True
    return False


def clean_article(title: str, text: str) -> CleanResult:
    """Remove headline repeats and near-duplicates of earlier paragraphs/sentences from text."""
    return _clean(title, text, screened=True)


def _clean(title: str, text: str, *, screened: bool) -> CleanResult:
    """clean_article; screened=False compares every segment (the screen must not change the result)."""
    title_unit = _unit(title)
    screen = _Screen(title_unit)
    pool = _Pool()  # kept paragraphs and their sentences, in order
    pending: list[tuple[int, int, int, int]] = []  # (start, end, index, ordinal) of paragraphs kept unscreened
    previous: _Unit | None = None  # the last kept paragraph (None while it is pending)
    previous_norm: str | None = None
    kept_paragraphs: list[str] = []
    norms: list[str] = []
    removed: list[Removal] = []
    for index, (start, end) in enumerate(paragraph_spans(text)):
        tokens, norm = _fold(text[start:end])
        ordinal = len(kept_paragraphs)
        if screened and not screen.may_remove(text[start:end], tokens, norm, previous_norm):
            pending.append((start, end, index, ordinal))
            kept_paragraphs.append(text[start:end])
            previous, previous_norm = None, norm
            if norm:
                norms.append(norm)
            continue
        for pending_start, pending_end, pending_index, pending_ordinal in pending:
            paragraph = paragraph_segment(text, pending_start, pending_end, pending_index)
            previous = _pool_paragraph(pool, paragraph, pending_ordinal)
        pending.clear()
        paragraph = paragraph_segment(text, start, end, index)
        whole, dropped = _clean_paragraph(paragraph, title_unit, pool, previous, ordinal)
        removed.extend(dropped)
        if whole is None:
            continue
        if screened:
            screen.record(whole.shingles)
        previous, previous_norm = whole, whole.norm
        kept_paragraphs.append(whole.text)
        if whole.norm:
            norms.append(whole.norm)
    return CleanResult("\n\n".join(kept_paragraphs), removed, " ".join(norms))


def _paragraph_units(paragraph: Segment) -> tuple[_Unit, list[_Unit]]:
    """The paragraph's unit and its sentences' units (none when it is one sentence)."""
    units = [_unit(sentence.text) for sentence in paragraph.sentences] if len(paragraph.sentences) > 1 else []
    return (_joined_unit(paragraph.text, units) if units else _unit(paragraph.text)), units


def _pool_paragraph(pool: _Pool, paragraph: Segment, ordinal: int) -> _Unit:
    """Add a paragraph kept whole as kept paragraph `ordinal`, and its sentences, to the pool; return its unit."""
    whole, units = _paragraph_units(paragraph)
    for unit in (whole, *units):
        pool.add(unit, ordinal)
    return whole


def _clean_paragraph(
    paragraph: Segment, title_unit: _Unit, pool: _Pool, previous: _Unit | None, ordinal: int
) -> tuple[_Unit | None, list[Removal]]:
    """Compare a paragraph, then its sentences, with the title and the pool; add what is kept to the pool.

    ordinal: how many paragraphs were kept before it. Returns the unit of the kept text (None when nothing
    is kept) and the removals.
    """
    whole, units = _paragraph_units(paragraph)
    hit = _match(whole, title_unit, pool, ordinal, previous, whole=True)
    if hit:
        return None, [_removal(paragraph, "paragraph", hit, paragraph.index)]
    sentence_units: list[_Unit] = []
    dropped: list[Removal] = []
    if units:
        kept: list[Segment] = []
        for sentence, unit in zip(paragraph.sentences, units, strict=True):
            hit = _match(unit, title_unit, pool, ordinal, None, whole=False)
            if hit:
                dropped.append(_removal(sentence, "sentence", hit, paragraph.index))
            else:
                kept.append(sentence)
                sentence_units.append(unit)
        if dropped and kept:
            # What is left must pass the paragraph check too, or a second run would drop it.
            whole = _joined_unit(_join_sentences(paragraph, kept), sentence_units)
            hit = _match(whole, title_unit, pool, ordinal, previous, whole=True)
            if hit:
                return None, [_removal(paragraph, "paragraph", hit, paragraph.index)]
        if not kept:
            return None, dropped
    for unit in (whole, *sentence_units):
        pool.add(unit, ordinal)
    return whole, dropped


def load_plain_text(path: str | Path) -> tuple[str, str]:
    """Read a UTF-8 text file: first non-empty line is the headline, the rest is the body."""
    content = Path(path).read_text(encoding="utf-8-sig")
    lines = content.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.strip():
            return line.strip(), "".join(lines[number + 1 :]).strip()
    return "", ""
