"""Properties on any input (hypothesis): normalisation, segment cleaning, shingling and signatures,
and the processing unit of one page. Complements the properties in test_clean.py and test_normalize.py."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from newsdedup.clean import LEAD_ZONE, _clean, _joined_unit, _unit, clean_article
from newsdedup.dedup import Deduplicator
from newsdedup.dedup_records import Doc, fingerprint_text
from newsdedup.minhash import DedupParams, shingle_hashes, shingles_of_tokens, token_hash_array, tokens
from newsdedup.normalize import normalize_for_compare, words
from newsdedup.page_extraction import _by_size, extract_page
from newsdedup.segments import split_segments
from newsdedup.signature_store import MemoryStore

PARAMS = DedupParams()
# Letters of several scripts, digits, Turkish dotted/dotless i, typographic quotes, spaces and breaks.
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("İıIi’“”–— \n\u00a0\u200b"),
    max_size=400,
)


@settings(max_examples=300)
@given(TEXT)
def test_normalisation_words_and_shingles_never_fail(text: str) -> None:
    folded = normalize_for_compare(text)
    assert words(text) == folded.split()
    assert all(token for token in words(text))
    for k in (1, 2, 4):
        grams = shingles_of_tokens(words(text), k)
        assert all(gram and all(token.split() == [token] for token in gram) for gram in grams)
        assert len(grams) <= max(len(words(text)) - k + 1, 1 if words(text) else 0)


@settings(max_examples=300)
@given(TEXT)
def test_shingle_hashes_are_sorted_unique_uint32_and_deterministic(text: str) -> None:
    hashes = shingle_hashes(tokens(text), PARAMS.shingle_k)
    assert hashes.dtype == np.uint32
    assert np.all(hashes[1:] > hashes[:-1])  # sorted, unique
    assert np.array_equal(hashes, shingle_hashes(tokens(text), PARAMS.shingle_k))
    assert np.array_equal(hashes, shingle_hashes(token_hash_array(tokens(text)), PARAMS.shingle_k))  # pre-hashed


@settings(max_examples=200)
@given(TEXT, st.sampled_from(["upper", "spaces", "quotes"]))
def test_shingles_ignore_case_spacing_and_quote_style(text: str, variant: str) -> None:
    changed = {
        "upper": text.upper(),
        "spaces": "  ".join(text.split(" ")),
        "quotes": text.replace("“", '"').replace("”", '"').replace("’", "'"),
    }[variant]
    if variant == "upper" and normalize_for_compare(changed) != normalize_for_compare(text):
        return  # some letters change identity when upper-cased (ß -> SS, ŉ -> ʼN): not a variant
    assert np.array_equal(shingle_hashes(tokens(changed), 4), shingle_hashes(tokens(text), 4))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_fingerprint_of_any_text_and_its_copy_is_an_exact_match(text: str) -> None:
    assume(words(text))  # a text without a word has no shingles, so no band keys to find its copy by
    dedup = Deduplicator(PARAMS, MemoryStore())
    first, copy = dedup.assign_batch([Doc(1, text, title="t"), Doc(2, text, title="t")])
    assert first.method == "new" and first.cluster_id == 1
    assert copy.cluster_id == 1 and copy.method == "exact"
    prepared = dedup.fingerprint(Doc(3, text))
    assert len(prepared.signature) == PARAMS.num_perm
    assert len(prepared.keys) in (0, PARAMS.bands)


UNIQUE_WORDS = st.lists(
    st.text(alphabet="abcçdefgğhıijklmnoöprsştuüvyz", min_size=3, max_size=9), min_size=96, max_size=120, unique=True
)


def _distinct_paragraphs(words_: list[str], count: int) -> list[str]:
    """Up to `count` paragraphs of eight words each, no word shared between them."""
    chunks = [words_[i * 8 : i * 8 + 8] for i in range(count)]
    return [" ".join(chunk).capitalize() + "." for chunk in chunks if len(chunk) == 8]


@settings(max_examples=200)
@given(UNIQUE_WORDS, st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=12))
def test_paragraphs_occurring_once_stay_and_stuttered_repeats_go_in_order(words_: list[str], plan: list[int]) -> None:
    """Distinct paragraphs (own words), each followed by exact copies of itself: every one kept once, in order.

    Paragraphs have eight words: repeats of five words or fewer are headings and labels, kept on purpose.
    """
    paragraphs = _distinct_paragraphs(words_, len(plan))
    assume(paragraphs)
    sequence = [copy for paragraph, times in zip(paragraphs, plan, strict=False) for copy in [paragraph] * (1 + times)]
    result = clean_article("Zzz qqq www", "\n".join(sequence))
    kept = [s.text for s in split_segments(result.text)]
    assert kept == paragraphs  # each distinct paragraph once, first occurrences in their order
    assert len(result.removed) == len(sequence) - len(paragraphs)
    assert all(r.reason == "exact_duplicate" and r.segment == r.matched for r in result.removed)
    assert clean_article("Zzz qqq www", result.text).text == result.text


@settings(max_examples=200)
@given(UNIQUE_WORDS, st.integers(min_value=LEAD_ZONE + 1, max_value=12), st.data())
def test_repeats_away_from_their_copy_and_the_top_stay(words_: list[str], count: int, data: st.DataObject) -> None:
    """A passage that comes back two or more paragraphs later, below the top, is meant (a refrain, a question)."""
    paragraphs = _distinct_paragraphs(words_, count)
    at = data.draw(st.integers(min_value=LEAD_ZONE + 1, max_value=len(paragraphs)))  # the copy's position
    source = data.draw(st.integers(min_value=0, max_value=at - 2))
    sequence = [*paragraphs[:at], paragraphs[source], *paragraphs[at:]]
    result = clean_article("Zzz qqq www", "\n".join(sequence))
    assert result.removed == []
    assert result.text == "\n\n".join(sequence)


@settings(max_examples=150)
@given(st.lists(TEXT, max_size=8), TEXT)
def test_every_paragraph_is_kept_or_accounted_for(paragraphs: list[str], title: str) -> None:
    text = "\n".join(paragraphs)
    result = clean_article(title, text)
    originals = [s.text for s in split_segments(text)]
    kept = [s.text for s in split_segments(result.text)]
    whole = {r.position for r in result.removed if r.kind == "paragraph"}
    partly = {r.position for r in result.removed if r.kind == "sentence"}
    survivors = [p for i, p in enumerate(originals) if i not in whole]
    assert len(kept) == len(survivors)
    for before, after, index in zip(survivors, kept, [i for i in range(len(originals)) if i not in whole], strict=True):
        assert after == before or index in partly  # untouched unless sentences of it were recorded


# Paragraphs of several sentences: each starts with a capital after ". ", so it is split there.
SENTENCED = st.lists(st.lists(TEXT, min_size=1, max_size=4).map(lambda parts: ". ".join(f"A{p}" for p in parts)),
                     max_size=6)


@settings(max_examples=200)
@given(SENTENCED, TEXT)
def test_folding_a_paragraph_by_its_sentences_equals_folding_it_whole(paragraphs: list[str], title: str) -> None:
    text = "\n".join(paragraphs)
    for paragraph in split_segments(text):
        joined = _joined_unit(paragraph.text, [_unit(s.text) for s in paragraph.sentences])
        whole = _unit(paragraph.text)
        assert (joined.tokens, joined.norm, joined.shingles) == (whole.tokens, whole.norm, whole.shingles)
    result = clean_article(title, text)
    assert result.norm == normalize_for_compare(result.text)  # what the worker's fingerprint is made from


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, TEXT, st.sampled_from([None, "tr", "en"]))
def test_processing_a_page_never_raises(body: str, title: str, language: str | None) -> None:
    page = {
        "raw_page_id": 1,
        "source_id": 1,
        "url": "http://127.0.0.1/a.html",
        "final_url": "http://127.0.0.1/a.html",
        "html": f"<html><head><title>{title}</title></head><body><article><p>{body}</p></article></body></html>",
        "feed_title": title or None,
        "feed_published": None,
        "source_language": language,
    }
    done = extract_page(page)
    assert (done.article is None) != (done.failure is None)
    if done.article:
        assert done.article.text and "\x00" not in done.article.text + done.article.title
        made, fresh = done.article.fingerprint, fingerprint_text(done.article.text, done.article.title, PARAMS)
        assert np.array_equal(made.shingles, fresh.shingles) and np.array_equal(made.signature, fresh.signature)
        assert (made.keys, made.text_hash, made.length) == (fresh.keys, fresh.text_hash, fresh.length)
    else:
        assert done.failure.outcome == "extract_failed" and done.failure.error_class


# Few words, so that shingles repeat everywhere: the screen must let every real repeat through. A negation,
# and CJK words (compared character by character).
VOCAB = st.sampled_from(
    ["Ankara", "kent", "yangın", "the", "of", "said", "2024", "İzmir", "ılık", "su", "not", "北京电", "经济"]
)
SENTENCE = st.lists(VOCAB, min_size=1, max_size=12).map(lambda ws: " ".join(ws).capitalize() + ".")
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=4).map(" ".join)


@st.composite
def repetitive_articles(draw: st.DrawFn) -> tuple[str, str]:
    """A title and paragraphs where earlier paragraphs, sentences and the title come back, some edited."""
    paragraphs = draw(st.lists(PARAGRAPH, min_size=1, max_size=5))
    title = draw(st.one_of(SENTENCE, st.sampled_from(paragraphs)))
    for _ in range(draw(st.integers(0, 6))):
        source = draw(st.sampled_from([title, *paragraphs]))
        words_ = source.split()
        if words_ and draw(st.booleans()):
            words_[draw(st.integers(0, len(words_) - 1))] = draw(VOCAB)
        if len(words_) > 1 and draw(st.booleans()):
            words_ = words_[: draw(st.integers(1, len(words_)))]
        paragraphs.insert(draw(st.integers(0, len(paragraphs))), " ".join(words_))
    return title, "\n".join(paragraphs)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(repetitive_articles())
# A six-word paragraph with three of its five shingles in a four-word one: Jaccard 0.6 from a short run.
@example(("Zzz qqq www", "Ankara kent yangın su.\nAnkara kent yangın su ılık hava."))
# A sentence repeating the one before it in the first paragraph: only the paragraph's own repeats tell.
@example(("Zzz qqq www", "Ankara kent yangın su ılık hava. Ankara kent yangın su ılık hava dedi."))
def test_screen_keeps_the_result_of_comparing_every_segment(article: tuple[str, str]) -> None:
    """The screen only skips paragraphs that cannot hold a removal: same text, removals and folding."""
    title, text = article
    assert _clean(title, text, screened=True) == _clean(title, text, screened=False)


@settings(max_examples=200)
@given(st.lists(TEXT, max_size=8), TEXT)
def test_screen_keeps_the_result_on_any_text(paragraphs: list[str], title: str) -> None:
    text = "\n".join(paragraphs)
    assert _clean(title, text, screened=True) == _clean(title, text, screened=False)


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=30), st.integers(min_value=1, max_value=60))
def test_pages_read_ahead_in_groups_within_the_budget(sizes: list[int], budget: int) -> None:
    """Groups keep every page once, in order; a group over the budget is one page alone."""
    pages = [{"raw_page_id": n, "html": "x" * size} for n, size in enumerate(sizes)]
    groups = list(_by_size(pages, budget))
    assert [page for group in groups for page in group] == pages
    assert all(group for group in groups)
    for group in groups:
        assert len(group) == 1 or sum(len(page["html"]) for page in group) <= budget
    for group, after in zip(groups, groups[1:], strict=False):  # a group ends only when the next page would not fit
        assert sum(len(page["html"]) for page in group) + len(after[0]["html"]) > budget
