"""Per-document repeated-segment cleaner: seed document, own fixtures, segmentation, properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from newsdedup.clean import (
    CONTAINMENT_THRESHOLD,
    JACCARD_THRESHOLD,
    SHINGLE_K,
    TITLE_THRESHOLD,
    CleanResult,
    _clean,
    clean_article,
    load_plain_text,
)
from newsdedup.minhash import shingles_of_tokens
from newsdedup.normalize import words
from newsdedup.segments import split_segments

from tests.conftest import shared_path

FIXTURES = Path(__file__).parent / "fixtures" / "articles"
SEED_HEADLINE = "Putin'den müzakere açıklaması: Olumlu sonuç vermesini bekliyorum"


def shingles(text: str, k: int) -> set[tuple[str, ...]]:
    """Word k-grams of the folded text, as sets the cleaner compares."""
    return set(shingles_of_tokens(words(text), k))


def _sentences(text: str) -> list[str]:
    """All sentence texts of text, in order."""
    return [s.text for p in split_segments(text) for s in p.sentences]


def _is_subsequence(part: list[str], whole: list[str]) -> bool:
    """Whether part occurs in whole in the same order."""
    remaining = iter(whole)
    return all(item in remaining for item in part)


def _jaccard_containment(later: str, earlier: str) -> tuple[float, float]:
    """Shingle Jaccard and containment of later in earlier, as the cleaner measures them."""
    a, b = shingles(later, SHINGLE_K), shingles(earlier, SHINGLE_K)
    return len(a & b) / len(a | b), len(a & b) / len(a)


def _assert_idempotent(title: str, text: str) -> CleanResult:
    """Clean twice and check the second run changes nothing."""
    first = clean_article(title, text)
    second = clean_article(title, first.text)
    assert second.text == first.text
    assert second.removed == []
    return first


@pytest.fixture(scope="module")
def seed() -> tuple[str, str]:
    """Headline and body of the shared seed document (read in place, never copied)."""
    return load_plain_text(shared_path("seed", "000_fbb121151ca4ddf0.txt"))


def test_seed_title_is_the_headline(seed: tuple[str, str]) -> None:
    title, text = seed
    assert title == SEED_HEADLINE
    assert text.count(SEED_HEADLINE) == 2  # the body repeats it twice more


def test_seed_removes_headline_repeats_and_reworded_lead(seed: tuple[str, str]) -> None:
    title, text = seed
    paragraphs = split_segments(text)
    result = _assert_idempotent(title, text)

    assert [(r.kind, r.reason, r.position) for r in result.removed] == [
        ("paragraph", "title_repeat", 1),
        ("paragraph", "title_repeat", 2),
        ("paragraph", "near_duplicate", 3),
    ]
    assert [r.segment for r in result.removed[:2]] == [SEED_HEADLINE, SEED_HEADLINE]
    reworded = result.removed[2]
    assert "video konferans yöntemiyle devam ediyor" in reworded.segment
    assert reworded.matched == paragraphs[0].sentences[0].text  # the lead's first sentence
    assert reworded.similarity == pytest.approx(0.75)

    assert result.text.count("Putin'den müzakere açıklaması") == 0
    assert result.text.count("video konferans") == 1
    kept = [p.text for p in paragraphs if p.index not in {1, 2, 3}]
    assert result.text == "\n\n".join(kept)
    assert _is_subsequence(_sentences(result.text), _sentences(text))
    # The reworded lead is one paragraph of two sentences in our segmentation.
    assert len(_sentences(result.text)) == len(_sentences(text)) - 4


def test_seed_keeps_every_section_heading_in_order(seed: tuple[str, str]) -> None:
    title, text = seed
    headings = [p.text for p in split_segments(text) if p.text.isupper()]
    assert headings == [
        "LAVROV, GUTERRES İLE GÖRÜŞTÜ",
        "BM İLE BİRLİKTE ÇALIŞACAKLAR",
        "'BÖYLE GİDERSE MÜZAKERELERDEN BİR SONUÇ ALAMAYACAĞIZ'",
        "GUTERRES'TEN AÇIKLAMALAR",
    ]
    cleaned = [p.text for p in split_segments(clean_article(title, text).text)]
    assert [p for p in cleaned if p.isupper()] == headings


def test_seed_similarities_behind_the_thresholds(seed: tuple[str, str]) -> None:
    """Record the measured k=2 similarities that the thresholds in clean.py sit between."""
    _, text = seed
    paragraphs = split_segments(text)
    lead = paragraphs[0].sentences
    # The reworded lead against the lead's first sentence: removed.
    jaccard, containment = _jaccard_containment(paragraphs[3].text, lead[0].text)
    assert (round(jaccard, 2), round(containment, 2)) == (0.75, 0.88)
    assert jaccard >= JACCARD_THRESHOLD
    # Closest legitimate pair: two different Lavrov sentences about working with the UN and Red Cross.
    jaccard, containment = _jaccard_containment(paragraphs[7].sentences[1].text, lead[1].text)
    assert (round(jaccard, 2), round(containment, 2)) == (0.36, 0.70)
    assert jaccard < JACCARD_THRESHOLD and containment < CONTAINMENT_THRESHOLD


def test_fixture_similarities_behind_the_thresholds() -> None:
    """No kept segment of the fixtures comes near the title; k=2 separates better than k=3."""
    for name in ("tr_orman_yangini.txt", "en_flood_plan.txt", "tr_hava_durumu_clean.txt"):
        title, text = load_plain_text(FIXTURES / name)
        t = shingles(title, SHINGLE_K)
        kept = [s.text for p in split_segments(clean_article(title, text).text) for s in (p, *p.sentences)]
        both_ways = [len(shingles(k, SHINGLE_K) & t) / max(len(shingles(k, SHINGLE_K)), len(t)) for k in kept]
        assert max(both_ways) < 0.34 < TITLE_THRESHOLD
    tr = split_segments(load_plain_text(FIXTURES / "tr_orman_yangini.txt")[1])
    forecast = split_segments(load_plain_text(FIXTURES / "tr_hava_durumu_clean.txt")[1])
    pairs = {"reworded": (tr[2].text, tr[0].sentences[0].text)}
    pairs["templated"] = (forecast[4].sentences[0].text, forecast[2].sentences[0].text)
    jaccard = {
        (name, k): round(len(shingles(a, k) & shingles(b, k)) / len(shingles(a, k) | shingles(b, k)), 2)
        for name, (a, b) in pairs.items()
        for k in (2, 3)
    }
    assert jaccard == {
        ("reworded", 2): 0.68,
        ("reworded", 3): 0.58,
        ("templated", 2): 0.65,
        ("templated", 3): 0.53,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "tr_orman_yangini.txt",
            [
                ("paragraph", "title_repeat", 1, 1.0),  # upper-case copy: İ/I folding
                ("paragraph", "near_duplicate", 2, 0.68),  # reworded lead, ’ apostrophe
                ("paragraph", "title_repeat", 5, 0.71),  # "<title> - Ege Haber"
            ],
        ),
        (
            "en_flood_plan.txt",
            [
                ("paragraph", "title_repeat", 1, 1.0),  # title-case copy
                ("paragraph", "near_duplicate", 3, 0.84),  # reworded lead
                ("paragraph", "title_repeat", 6, 1.0),  # trailing copy
            ],
        ),
    ],
)
def test_own_fixtures_with_repeats(name: str, expected: list[tuple[str, str, int, float]]) -> None:
    title, text = load_plain_text(FIXTURES / name)
    result = _assert_idempotent(title, text)
    got = [(r.kind, r.reason, r.position, round(r.similarity, 2)) for r in result.removed]
    assert got == expected
    assert all(s >= TITLE_THRESHOLD for *_, s in got)
    paragraphs = split_segments(text)
    removed_positions = {r.position for r in result.removed}
    assert result.text == "\n\n".join(p.text for p in paragraphs if p.index not in removed_positions)
    assert result.text.count(paragraphs[0].sentences[0].text) == 1


def test_own_clean_fixture_loses_nothing() -> None:
    title, text = load_plain_text(FIXTURES / "tr_hava_durumu_clean.txt")
    paragraphs = split_segments(text)
    # Templated regional forecasts share most shingles (k=2 Jaccard 0.65, above the threshold);
    # only the different names and figures show they are distinct.
    marmara, ege = paragraphs[2].sentences[0].text, paragraphs[4].sentences[0].text
    assert _jaccard_containment(ege, marmara)[0] >= JACCARD_THRESHOLD
    result = clean_article(title, text)
    assert result.removed == []
    assert result.text == "\n\n".join(p.text for p in paragraphs)


# Passages these articles really hold twice: word overlap alone (Jaccard over the threshold, or the same
# text) would remove the later one; position, distance, length, quotation and the changed words keep it.
_MEANT_REPEATS = [
    # near-twin sentences ("die" / "beide Berichte") four paragraphs apart, below the top
    ("de_armee_berichte.txt", "mit, beide Berichte", "mit, die Berichte"),
    # a standard phrase of seven words, near the top
    ("de_armee_berichte.txt", "unabhängig verifizieren", "unabhängig überprüfen"),
    # live-ticker entries: timestamps on lines of their own, entries sharing most words
    ("de_liveticker_brand.txt", "eingedämmt ist.", "gelöscht ist."),
    ("de_liveticker_brand.txt", "sich ausbreitet.", "gelöscht ist."),
    # a direct quote right after its reported-speech paragraph
    ("en_port_strike_quote.txt", "“The agreement", "Union leader"),
    # an interview question per guest, and a refrain that closes the piece
    ("tr_kordon_nakarat.txt", "Sizce mahallenin", "Sizce mahallenin"),
    ("tr_kordon_nakarat.txt", "Bu şehir", "Bu şehir"),
]


def _sentence_with(text: str, part: str, *, last: bool) -> str:
    """The first (or last) sentence of text that contains `part`."""
    found = [s for s in _sentences(text) if part in s]
    return found[-1 if last else 0]


@pytest.mark.parametrize(("name", "later", "earlier"), _MEANT_REPEATS)
def test_passages_the_article_really_repeats_are_kept(name: str, later: str, earlier: str) -> None:
    title, text = load_plain_text(FIXTURES / name)
    jaccard, _ = _jaccard_containment(_sentence_with(text, later, last=True), _sentence_with(text, earlier, last=False))
    assert jaccard >= JACCARD_THRESHOLD
    result = _assert_idempotent(title, text)
    assert result.removed == []
    assert result.text == "\n\n".join(p.text for p in split_segments(text))


def test_cjk_dateline_is_kept_and_repeats_are_compared_by_character() -> None:
    title, text = load_plain_text(FIXTURES / "zh_tongji_dateline.txt")
    paragraphs = split_segments(text)
    result = _assert_idempotent(title, text)
    # The dateline paragraph holds the headline's words, but adds a date and a byline: the article's own text.
    # The reworded repeat of paragraph 1 differs in one character; whole CJK runs would be different words.
    assert [(r.kind, r.reason, r.position, round(r.similarity, 2)) for r in result.removed] == [
        ("paragraph", "title_repeat", 2, 1.0),
        ("paragraph", "near_duplicate", 3, 0.93),
    ]
    assert result.removed[1].matched == paragraphs[1].text
    assert result.text == "\n\n".join(p.text for i, p in enumerate(paragraphs) if i not in {2, 3})


@pytest.mark.parametrize(
    ("lead", "later"),
    [
        # a negation turns the statement around
        (
            "The council said the new bridge is affordable and will open to traffic next spring.",
            "The council said the new bridge is not affordable and will open to traffic next spring.",
        ),
        (
            "Valilik açıklamasına göre barajdaki su seviyesi şu an için kritik seviyede.",
            "Valilik açıklamasına göre barajdaki su seviyesi şu an için kritik seviyede değil.",
        ),
        # another number, another name
        (
            "Die Polizei nahm am Samstag in der Innenstadt insgesamt 12 Personen vorläufig fest.",
            "Die Polizei nahm am Samstag in der Innenstadt insgesamt 21 Personen vorläufig fest.",
        ),
        (
            "Governor Hale signed the budget on Friday after a long night of talks in the capital.",
            "Governor Brandt signed the budget on Friday after a long night of talks in the capital.",
        ),
    ],
)
def test_a_changed_name_number_or_negation_makes_another_sentence(lead: str, later: str) -> None:
    assert _jaccard_containment(later, lead)[0] >= JACCARD_THRESHOLD
    result = _assert_idempotent("Bambaşka bir başlık", f"{lead}\n{later}")
    assert result.removed == []


def test_the_same_repeat_goes_at_the_top_and_stays_further_down() -> None:
    lead = "The city council approved a plan on Tuesday to rebuild the harbour wall before winter."
    reworded = "On Tuesday the city council approved a plan to rebuild the harbour wall before winter."
    filler = [f"Paragraph {n} tells another part of the story, with words of its own." for n in range(5)]
    top = clean_article("Harbour wall plan", "\n".join([lead, reworded, *filler]))
    assert [(r.reason, r.position) for r in top.removed] == [("near_duplicate", 1)]
    below = clean_article("Harbour wall plan", "\n".join([*filler, lead, reworded]))
    assert below.removed == []


def test_sentence_level_removal_inside_a_paragraph() -> None:
    lead = "Merkez Bankası faizi yüzde 45 seviyesinde sabit tuttuğunu açıkladı."
    text = (
        f"{lead} Karar piyasalarda beklentilere uygun bulundu.\n"
        "Ekonomistler kararı değerlendirdi. Merkez Bankası, faizi yüzde 45 seviyesinde sabit "
        "tuttuğunu duyurdu. Bir sonraki toplantı ay sonunda yapılacak."
    )
    result = _assert_idempotent("Faiz kararı açıklandı", text)
    assert [(r.kind, r.reason, r.position, r.sentence) for r in result.removed] == [
        ("sentence", "near_duplicate", 1, 1)
    ]
    assert result.removed[0].matched == lead
    assert result.text.endswith(
        "\n\nEkonomistler kararı değerlendirdi. Bir sonraki toplantı ay sonunda yapılacak."
    )


def test_paragraph_left_over_after_sentence_removal_is_checked_again() -> None:
    # Each sentence alone is too short or too different to match, and the headline sentence keeps
    # the whole paragraph below the thresholds; only what is left after dropping it matches.
    title = "Uzun bir başlık burada yazıldı ve sonra devam edip sonunda bitti"
    earlier = "Ali Veli ile buluştu ve birlikte yürüdüler Ayşe de katıldı ve eve döndüler"
    later = f"{title}. Ali Veli ile buluştu ve birlikte yürüdüler. Ayşe de katıldı. Ve eve döndüler."
    result = _assert_idempotent(title, f"{earlier}\n{later}")
    assert [(r.kind, r.reason, r.position) for r in result.removed] == [
        ("paragraph", "exact_duplicate", 1)
    ]
    assert result.text == earlier


def test_short_paragraphs_go_only_on_equality_with_title_or_the_line_before() -> None:
    text = "SON DAKİKA\nSON DAKİKA!\nSon dakika gelişmesi\nSon dakika\nKısa başlık\nMeclis toplandı"
    result = clean_article("Kısa başlık", text)
    assert [(r.position, r.reason, r.matched) for r in result.removed] == [
        (1, "exact_duplicate", "SON DAKİKA"),  # a stuttered line
        (4, "title_repeat", "Kısa başlık"),
    ]
    # "Son dakika" repeats paragraph 0 but not the line just before it: a label, kept.
    assert result.text == "SON DAKİKA\n\nSon dakika gelişmesi\n\nSon dakika\n\nMeclis toplandı"


def test_short_sentences_are_never_dropped_as_repeats() -> None:
    text = "Hazır mısınız? Başlıyoruz.\nSoru geldi. Hazır mısınız? Evet, başlıyoruz dedi herkes."
    result = _assert_idempotent("Yarışma başladı", text)
    assert result.removed == []


def test_separators_without_words_are_kept() -> None:
    text = "Birinci paragraf burada.\n***\nİkinci paragraf burada.\n***"
    assert clean_article("", text).removed == []


def test_removal_to_dict_is_json_ready(seed: tuple[str, str]) -> None:
    result = clean_article(*seed)
    data = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    assert data["removed"][2] == {
        "segment": result.removed[2].segment,
        "kind": "paragraph",
        "reason": "near_duplicate",
        "matched": result.removed[2].matched,
        "similarity": 0.75,
        "position": 3,
        "sentence": None,
        "measure": "jaccard",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Ali geldi. Sonra gitti.", ["Dr. Ali geldi.", "Sonra gitti."]),
        ("Fiyat 3.5 TL oldu. Ertesi gün düştü!", ["Fiyat 3.5 TL oldu.", "Ertesi gün düştü!"]),
        ("II. Dünya Savaşı bitti… Yeni dönem başladı.", ["II. Dünya Savaşı bitti…", "Yeni dönem başladı."]),
        ("Bu vb. Şeyler. Mayor J. R. Hollis spoke.", ["Bu vb. Şeyler.", "Mayor J. R. Hollis spoke."]),
        ('He said "Go." Then left.', ['He said "Go."', "Then left."]),
        ('"Umuyorum." dedi. \'BÖYLE\' yazdı.', ['"Umuyorum." dedi.', "'BÖYLE' yazdı."]),
        ("Ne? Evet. 1. Lig başladı. 2022 iyi geçti.", ["Ne?", "Evet.", "1. Lig başladı.", "2022 iyi geçti."]),
        ("The U.S. Army left. A.Ş. Genel Müdürü geldi.", ["The U.S. Army left.", "A.Ş. Genel Müdürü geldi."]),
    ],
)
def test_sentence_splitting(text: str, expected: list[str]) -> None:
    assert _sentences(text) == expected


def test_segments_keep_offsets() -> None:
    text = "  Başlık\r\n\r\nBirinci cümle. İkinci cümle!  \n\n\tSon satır\n"
    paragraphs = split_segments(text)
    assert [p.text for p in paragraphs] == ["Başlık", "Birinci cümle. İkinci cümle!", "Son satır"]
    for segment in [*paragraphs, *(s for p in paragraphs for s in p.sentences)]:
        assert text[segment.start : segment.end] == segment.text
    assert [s.text for s in paragraphs[1].sentences] == ["Birinci cümle.", "İkinci cümle!"]


def test_load_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("\ufeff\n  Başlık satırı  \n\nGövde bir.\nGövde iki.\n\n", encoding="utf-8")
    assert load_plain_text(path) == ("Başlık satırı", "Gövde bir.\nGövde iki.")
    path.write_text("\n \n", encoding="utf-8")
    assert load_plain_text(path) == ("", "")


# Property tests -------------------------------------------------------------------------------

_WORDS = st.text(alphabet="abcçdefgğhıijklmnoöprsştuüvyz", min_size=2, max_size=9)
_SMALL_VOCABULARY = st.sampled_from(
    ["Ankara", "İstanbul", "bakan", "dedi", "ki", "bu", "yıl", "yüzde", "5", "artış", "oldu."]
    + ["Meclis", "karar", "verdi!", "ve", "ile", "Dr.", "1.", "“Evet”"]
)


@settings(max_examples=300)
@given(st.text(), st.text())
def test_any_unicode_text_is_handled(title: str, text: str) -> None:
    result = _assert_idempotent(title, text)
    kept = _sentences(result.text)
    assert all(sentence in text for sentence in kept)  # kept text is never altered
    assert _is_subsequence(kept, _sentences(text))


@settings(max_examples=300)
@given(
    st.lists(st.lists(_SMALL_VOCABULARY, min_size=1, max_size=30).map(" ".join), max_size=12),
    st.sampled_from(["\n", "\n\n"]),
)
def test_repetitive_articles_stay_ordered_and_idempotent(paragraphs: list[str], separator: str) -> None:
    text = separator.join(paragraphs)
    result = _assert_idempotent("Ankara bakan dedi", text)
    assert _is_subsequence(_sentences(result.text), _sentences(text))


@settings(max_examples=200)
@given(
    st.lists(_WORDS, min_size=1, max_size=240, unique_by=lambda w: w.replace("ı", "i")),
    st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=40),
)
def test_distinct_paragraphs_lose_nothing(vocabulary: list[str], lengths: list[int]) -> None:
    paragraphs: list[str] = []
    position = 0
    for length in lengths:
        chunk = vocabulary[position : position + length]
        if not chunk:
            break
        paragraphs.append(" ".join(chunk).capitalize() + ".")
        position += length
    result = clean_article("Bambaşka bir başlık", "\n".join(paragraphs))
    assert result.removed == []
    assert result.text == "\n\n".join(paragraphs)


def test_screen_changes_nothing_on_the_seed_and_the_fixtures(seed: tuple[str, str]) -> None:
    """Paragraphs the screen keeps whole are the ones comparing every segment keeps whole (clean._Screen)."""
    articles = [seed, *(load_plain_text(path) for path in sorted(FIXTURES.glob("*.txt")))]
    for title, text in articles:
        assert _clean(title, text, screened=True) == _clean(title, text, screened=False)
    assert any(_clean(title, text, screened=True).removed for title, text in articles)


def test_screen_changes_nothing_on_real_article_bodies() -> None:
    """The 181 bodies of the shared extraction benchmark, each with its first sentence as the title."""
    truth = json.loads(shared_path("corpora", "article-extraction-benchmark", "ground-truth.json").read_text())
    bodies = [item["articleBody"] for item in truth.values() if item.get("articleBody")]
    assert len(bodies) > 100
    for body in bodies:
        title = body.split(". ", 1)[0][:200]
        assert _clean(title, body, screened=True) == _clean(title, body, screened=False)
