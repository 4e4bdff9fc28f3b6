"""Comparison folding: Turkish I, quotes, NFKC, punctuation, words."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from newsdedup.normalize import normalize_for_compare, word_count, words


@pytest.mark.parametrize("variant", ["İSTANBUL", "istanbul", "ıstanbul", "ISTANBUL", "İstanbul", "Istanbul"])
def test_turkish_i_folds_to_one_form(variant: str) -> None:
    assert normalize_for_compare(variant) == "istanbul"


def test_turkish_folding_in_context() -> None:
    assert normalize_for_compare("DİYARBAKIR'DA") == normalize_for_compare("Diyarbakır'da") == "diyarbakirda"
    assert normalize_for_compare("LAVROV, GUTERRES İLE GÖRÜŞTÜ") == "lavrov guterres ile görüştü"
    # A decomposed capital İ (I + combining dot above) and its lowercase form fold the same way.
    assert normalize_for_compare("I\u0307zmir") == normalize_for_compare("i\u0307zmir") == "izmir"


def test_other_diacritics_are_kept() -> None:
    assert normalize_for_compare("ŞÇÖĞÜ şçöğü") == "şçöğü şçöğü"


@pytest.mark.parametrize("mark", ["'", "’", "‘", "‚", "′", "`", "´"])
def test_apostrophes_are_unified_and_dropped_inside_words(mark: str) -> None:
    assert normalize_for_compare(f"Putin{mark}den") == "putinden"


@pytest.mark.parametrize("quote", ['"', "“", "”", "„", "«", "»"])
def test_double_quotes_are_unified(quote: str) -> None:
    assert normalize_for_compare(f"dedi{quote}Evet{quote} dedi") == "dedi evet dedi"


@pytest.mark.parametrize("dash", ["-", "–", "—"])
def test_dashes_are_unified(dash: str) -> None:
    assert normalize_for_compare(f"Rusya{dash}Ukrayna {dash} savaş") == "rusya ukrayna savaş"


def test_nfkc_casefold_and_whitespace() -> None:
    assert normalize_for_compare("ﬁnal ＡＢＣ Straße") == "final abc strasse"
    assert normalize_for_compare("  a\u00a0b\t\tc\n\nd\u2028e ") == "a b c d e"
    assert normalize_for_compare("soft\u00adhyphen zero\u200bwidth") == "softhyphen zerowidth"


def test_punctuation_is_removed() -> None:
    assert normalize_for_compare('"Görüşmelerin olumlu sonuç vermesini umuyorum." dedi.') == (
        "görüşmelerin olumlu sonuç vermesini umuyorum dedi"
    )
    assert normalize_for_compare("...!?;:()[]{}") == ""


def test_words() -> None:
    assert words("Öte yandan, BM Genel Sekreteri") == ["öte", "yandan", "bm", "genel", "sekreteri"]
    assert words("") == []


@given(st.text())
def test_normalize_is_idempotent_and_clean(text: str) -> None:
    folded = normalize_for_compare(text)
    assert normalize_for_compare(folded) == folded
    assert not set(folded) & set("İIı")
    assert not any(unicodedata.category(char)[0] == "P" for char in folded)
    assert folded == " ".join(folded.split())


@given(st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from("’‘“”–—İıI")))
def test_ascii_fast_path_equals_full_folding(text: str) -> None:
    from newsdedup.normalize import _normalize_unicode

    assert normalize_for_compare(text) == _normalize_unicode(text)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F) | st.sampled_from("’“”–İıçşğ漢字"), max_size=80))
def test_word_count_is_the_number_of_words(text: str) -> None:
    assert word_count(text) == len(words(text))


def test_word_count_drops_punctuation_and_joins_apostrophes() -> None:
    text = "U.S. officials -- said: it's 'done' ... 3,000!"
    assert word_count(text) == len(words(text)) == 8
