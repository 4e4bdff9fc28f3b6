"""Near-duplicate engine: variants join their original, hard negatives stay apart, stable keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st
from newsdedup.dedup import Deduplicator
from newsdedup.dedup_jsonl import cluster_jsonl
from newsdedup.dedup_records import Decision, Doc, canonical_key, fingerprint_text
from newsdedup.minhash import (
    DedupParams,
    Signer,
    shingle_hash,
    shingle_hashes,
    shingles_of_tokens,
    tokens,
)
from newsdedup.signature_store import MemoryStore

FIXTURES = Path(__file__).parent / "fixtures" / "dedup"
STORIES = ["en_port_strike", "en_wildfire", "en_council_budget", "tr_istanbul_metro", "tr_deprem_tatbikat"]
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def fixture(name: str) -> str:
    """A fixture text."""
    return (FIXTURES / f"{name}.txt").read_text(encoding="utf-8").strip()


def paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs."""
    return [p for p in text.split("\n") if p.strip()]


def cut_words(text: str, fraction: float) -> str:
    """The text up to `fraction` of its words, layout kept."""
    words = text.split()
    pos = 0
    for word in words[: int(len(words) * fraction)]:
        pos = text.index(word, pos) + len(word)
    return text[:pos]


def wrapped(text: str) -> str:
    """A whole copy inside another outlet's header and footer boilerplate."""
    header, footer = fixture("outlet_wrapper").split("\n----\n")
    return f"{header}\n{text}\n{footer}"


def edited(text: str) -> str:
    """Light copy-edit: typos, other quote style, an inserted caption and a related link."""
    words = text.split(" ")
    for i in (7, 31, 58, 90):
        w = words[i]
        if len(w) > 3:
            words[i] = w[0] + w[2] + w[1] + w[3:]
    out = " ".join(words).replace('"', "\u201c", 1).replace("'", "\u2019")
    paras = out.split("\n")
    paras.insert(2, "Photo: Kerem Aydın / Courier staff")
    paras.append("Related: Ferry timetable changes announced for the summer")
    return "\n".join(paras)


def cut(text: str) -> str:
    """A re-headlined copy cut to its first 78 percent."""
    return "EXCLUSIVE - what we know so far\n" + cut_words(text, 0.78)


def excerpt(text: str) -> str:
    """The first half of the story and a read-more line."""
    return cut_words(text, 0.5) + "\nRead the full story on the publisher's website."


def update(text: str) -> str:
    """A later version: two paragraphs swapped, two merged, one appended."""
    paras = paragraphs(text)
    paras[1], paras[2] = paras[2], paras[1]
    paras[3:5] = [paras[3] + " " + paras[4]] if len(paras) > 4 else paras[3:5]
    paras.append(
        "Update, 18:40: officials confirmed late in the afternoon that a further statement "
        "would be issued on Wednesday morning after an emergency meeting."
    )
    return "\n".join(paras)


VARIANTS = {"wrapped": wrapped, "edited": edited, "cut": cut, "excerpt": excerpt, "update": update}


def new_dedup(params: DedupParams | None = None) -> Deduplicator:
    """A Deduplicator on an empty memory store."""
    return Deduplicator(params or DedupParams(), MemoryStore())


def load_all(dedup: Deduplicator) -> dict[str, Decision]:
    """Assign every fixture story (ids 1..n), so each variant has distractors."""
    return {
        name: dedup.assign(Doc(i, fixture(name), published_at=T0 + timedelta(hours=i)))
        for i, name in enumerate(STORIES, 1)
    }


@pytest.mark.parametrize("story", STORIES)
@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_variant_joins_original(story: str, kind: str) -> None:
    dedup = new_dedup()
    originals = load_all(dedup)
    assert {d.method for d in originals.values()} == {"new"}
    decision = dedup.assign(Doc(100, VARIANTS[kind](fixture(story)), published_at=T0 + timedelta(days=1)))
    assert decision.cluster_id == originals[story].cluster_id, decision
    assert decision.method in ("jaccard", "containment")
    assert decision.canonical_id == originals[story].doc_id
    assert not decision.is_canonical


@pytest.mark.parametrize("story", ["en_wildfire", "tr_istanbul_metro"])
@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_original_arriving_after_variant_joins_it(story: str, kind: str) -> None:
    dedup = new_dedup()
    first = dedup.assign(Doc(1, VARIANTS[kind](fixture(story)), published_at=T0 + timedelta(hours=5)))
    original = dedup.assign(Doc(2, fixture(story), published_at=T0))
    assert original.cluster_id == first.cluster_id == 1
    assert original.is_canonical and original.replaced_canonical_id == 1
    assert original.canonical_id == 2


def test_all_variants_of_each_story_form_one_cluster_per_story() -> None:
    dedup = new_dedup()
    decisions = {}
    next_id = 1
    for story in STORIES:
        for kind, make in [("orig", lambda t: t), *VARIANTS.items()]:
            decisions[(story, kind)] = dedup.assign(Doc(next_id, make(fixture(story))))
            next_id += 1
    for story in STORIES:
        assert len({decisions[(story, k)].cluster_id for k in ["orig", *VARIANTS]}) == 1
    assert len({d.cluster_id for d in decisions.values()}) == len(STORIES)


def test_identical_text_is_exact() -> None:
    dedup = new_dedup()
    dedup.assign(Doc(1, fixture("en_port_strike")))
    decision = dedup.assign(Doc(2, "  " + fixture("en_port_strike").replace("\n", "\n\n") + "\n"))
    assert decision.method == "exact" and decision.matched_id == 1
    assert decision.jaccard == 1.0 and decision.similarity == 1.0


def turkish_upper(text: str) -> str:
    """Upper case under Turkish rules (i -> İ, ı -> I)."""
    return text.replace("i", "İ").replace("ı", "I").upper()


@pytest.mark.parametrize("transform", [str.upper, str.lower, turkish_upper, str.casefold])
def test_turkish_case_folding_does_not_break_matching(transform) -> None:
    dedup = new_dedup()
    dedup.assign(Doc(1, fixture("tr_istanbul_metro")))
    decision = dedup.assign(Doc(2, transform(fixture("tr_istanbul_metro"))))
    assert decision.cluster_id == 1 and decision.method == "exact"


def test_turkish_dotted_capital_folds_like_lowercase() -> None:
    assert tokens("İSTANBUL IĞDIR Işık") == tokens("istanbul ığdır ışık") == ["istanbul", "iğdir", "işik"]
    heading = "İSTANBUL'DA METRO HATTI AÇILIYOR, yolculuk süresi kısalacak ve köprü trafiği azalacak"
    same = "istanbul'da metro hatti açiliyor, yolculuk süresi kisalacak ve köprü trafiği azalacak"
    assert np.array_equal(shingle_hashes(tokens(heading), 5), shingle_hashes(tokens(same), 5))


def test_stories_sharing_a_quoted_background_paragraph_stay_apart() -> None:
    dedup = new_dedup()
    para = fixture("background")
    a = dedup.assign(Doc(1, fixture("en_port_strike") + "\n" + para))
    b = dedup.assign(Doc(2, para + "\n" + fixture("en_council_budget")))
    c = dedup.assign(Doc(3, fixture("en_wildfire") + "\n" + para))
    assert [a.method, b.method, c.method] == ["new", "new", "new"]
    # The shared paragraph must not stop real copies from joining their stories.
    copy = dedup.assign(Doc(4, wrapped(fixture("en_port_strike") + "\n" + para)))
    assert copy.cluster_id == 1
    cut_copy = dedup.assign(Doc(5, cut(para + "\n" + fixture("en_council_budget"))))
    assert cut_copy.cluster_id == 2


def test_short_stories_sharing_an_outlet_template_stay_apart() -> None:
    dedup = new_dedup()
    template = fixture("template")
    stories = fixture("short_stories").split("\n\n")
    decisions = [
        dedup.assign(Doc(i, f"{story}\n{template}", source="valley-courier"))
        for i, story in enumerate(stories, 1)
    ]
    assert [d.method for d in decisions] == ["new"] * len(stories)
    assert isinstance(dedup.store, MemoryStore) and dedup.store.marked(2) > 50
    # Once the template is known, a re-post of one story with a typo still joins it.
    repost = stories[2].replace("resurface", "reusrface")
    again = dedup.assign(Doc(50, f"{repost}\n{template}", source="valley-courier"))
    assert again.cluster_id == 3 and again.method in ("jaccard", "containment")


def test_template_heavy_story_does_not_pull_in_siblings_by_minhash() -> None:
    # Raw MinHash similarity of two template stories is high; verification must see through it.
    dedup = new_dedup()
    template = fixture("template")
    stories = fixture("short_stories").split("\n\n")
    fps = [dedup.fingerprint(Doc(0, f"{s}\n{template}")) for s in stories[:2]]
    inter = len(np.intersect1d(fps[0].shingles, fps[1].shingles))
    assert inter / min(len(fps[0].shingles), len(fps[1].shingles)) > 0.6
    a, b = (dedup.assign(Doc(i, f"{s}\n{template}")) for i, s in enumerate(stories[:2], 1))
    assert b.cluster_id != a.cluster_id


def test_params_version_tracks_stored_format_not_thresholds() -> None:
    base = DedupParams()
    assert base.version == DedupParams().version
    assert base.version.startswith("mh-affine32-p128-s1-k4v2-b64x2+8-")
    thresholds = DedupParams(threshold=0.9, containment_threshold=0.9, rewrite_threshold=0.5, min_source_marks=3)
    assert thresholds.version == base.version
    for changed in (
        DedupParams(seed=2), DedupParams(num_perm=256), DedupParams(shingle_k=5), DedupParams(verify_k=3),
        DedupParams(bands=32, rows=4), DedupParams(lead_bands=4), DedupParams(lead_words=40),
    ):
        assert changed.version != base.version


def test_same_params_version_required() -> None:
    store = MemoryStore()
    text = fixture("en_wildfire")
    Deduplicator(DedupParams(), store).assign(Doc(1, text))
    other = Deduplicator(DedupParams(seed=7), store)
    decision = other.assign(Doc(2, text))
    assert decision.method == "new" and decision.params_version == DedupParams(seed=7).version
    stored = store.get([1, 2])
    assert stored[1].params_version == DedupParams().version != stored[2].params_version


def test_decision_records_threshold_and_version() -> None:
    params = DedupParams(threshold=0.85, containment_threshold=0.75)
    dedup = new_dedup(params)
    dedup.assign(Doc(1, fixture("en_council_budget")))
    decision = dedup.assign(Doc(2, excerpt(fixture("en_council_budget"))))
    assert decision.method == "containment" and decision.threshold == 0.75
    assert decision.containment is not None and decision.containment >= 0.75
    assert decision.params_version == params.version
    assert decision.shared >= params.min_shared


def test_canonical_rule_earliest_then_longest_then_smallest_id() -> None:
    when = T0
    assert canonical_key(when, 10, 5) < canonical_key(when + timedelta(seconds=1), 999, 1)
    assert canonical_key(when, 20, 5) < canonical_key(when, 10, 1)
    assert canonical_key(when, 10, 1) < canonical_key(when, 10, 5)
    assert canonical_key(when, 1, 9) < canonical_key(None, 999, 1)
    assert canonical_key(datetime(2024, 5, 1, 8), 1, 1) == canonical_key(when, 1, 1)

    dedup = new_dedup()
    text = fixture("en_port_strike")
    first = dedup.assign(Doc(10, excerpt(text), published_at=when))
    longer = dedup.assign(Doc(11, text, published_at=when))
    assert longer.is_canonical and longer.replaced_canonical_id == 10 and longer.canonical_id == 11
    later = dedup.assign(Doc(12, wrapped(text), published_at=when + timedelta(hours=1)))
    assert not later.is_canonical and later.canonical_id == 11
    earlier = dedup.assign(Doc(13, cut(text), published_at=when - timedelta(hours=1)))
    assert earlier.is_canonical and earlier.replaced_canonical_id == 11
    assert first.cluster_id == longer.cluster_id == later.cluster_id == earlier.cluster_id == 10
    assert dedup.store.clusters([10])[10].canonical_id == 13
    assert dedup.store.clusters([10])[10].size == 4


def test_batch_matches_one_by_one() -> None:
    docs = [
        Doc(i, text)
        for i, text in enumerate(
            [fixture(s) for s in STORIES] + [v(fixture(s)) for s in STORIES for v in VARIANTS.values()], 1
        )
    ]
    one = new_dedup()
    singles = [one.assign(d) for d in docs]
    many = new_dedup()
    batch = many.assign_batch(docs[:7]) + many.assign_batch(docs[7:])
    assert [(d.cluster_id, d.method, d.matched_id) for d in batch] == [
        (d.cluster_id, d.method, d.matched_id) for d in singles
    ]


def test_empty_and_title_only_documents() -> None:
    dedup = new_dedup()
    assert dedup.assign(Doc(1, "")).method == "new"
    assert dedup.assign(Doc(2, "  ")).method == "new"
    title = "Port strike enters second week as talks stall"
    dedup.assign(Doc(3, "", title=title))
    assert dedup.assign(Doc(4, "", title=title)).method == "exact"


def test_cjk_text_gets_character_shingles() -> None:
    text = "東京都は本日、新しい防災計画を発表した。計画では避難所の数を増やす。"
    toks = tokens(text)
    assert len(toks) > 20 and all(len(t) == 1 for t in toks)
    dedup = new_dedup()
    dedup.assign(Doc(1, text * 3))
    assert dedup.assign(Doc(2, "速報 " + text * 3)).cluster_id == 1


def test_memory_store_rejects_a_second_add_of_an_id() -> None:
    dedup = new_dedup()
    dedup.assign(Doc(1, fixture("en_wildfire")))
    with pytest.raises(ValueError, match="already stored"):
        dedup.assign(Doc(1, fixture("en_council_budget")))
    with pytest.raises(ValueError, match="unique within a batch"):
        dedup.assign_batch([Doc(2, "a b c d e"), Doc(2, "f g h i j")])


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="exceeds num_perm"):
        DedupParams(bands=65, rows=2)
    with pytest.raises(ValueError, match="affine32"):
        DedupParams(scheme="legacy")
    with pytest.raises(ValueError, match="thresholds"):
        DedupParams(threshold=0)
    assert DedupParams().candidate_probability(0.8) > 0.999999
    assert DedupParams().candidate_probability(0.4) > 0.9999
    assert DedupParams(bands=9, rows=13).candidate_probability(0.8) == pytest.approx(0.399, abs=0.001)


# --- signatures and band keys -------------------------------------------------------------

def reference_minhash(text: str, params: DedupParams) -> MinHash:
    """The slow path: datasketch update() per shingle with the documented shingle hash."""
    m = MinHash(num_perm=params.num_perm, seed=params.seed, scheme=params.scheme, hashfunc=shingle_hash)
    for shingle in shingles_of_tokens(tokens(text), params.shingle_k):
        m.update(shingle)
    return m


@pytest.mark.parametrize("story", STORIES)
def test_batch_signature_equals_update_loop(story: str) -> None:
    params = DedupParams()
    text = fixture(story)
    hashes = shingle_hashes(tokens(text), params.shingle_k)
    signer = Signer(params)
    fast = signer.signature(hashes)
    assert fast.dtype == np.uint32 and len(fast) == params.num_perm
    assert np.array_equal(fast, reference_minhash(text, params).hashvalues)
    plain = MinHash(num_perm=128, seed=1, scheme="affine32", hashfunc=lambda v: v)
    plain.update_batch(hashes.tolist())
    assert np.array_equal(fast, plain.hashvalues)
    assert signer._whole_array  # the fast single-item path is in use with this datasketch


def test_shingle_hashes_equal_reference_for_short_texts() -> None:
    texts = ["", "one", "two words", "exactly five words in here", "now there are six words here"]
    for text in texts:
        for k in (1, 4, 5):
            toks = tokens(text)
            expected = sorted({shingle_hash(s) for s in shingles_of_tokens(toks, k)})
            assert shingle_hashes(toks, k).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abcçğıiöşüİI ", min_size=1, max_size=8), max_size=40))
def test_shingle_hashes_property(words: list[str]) -> None:
    toks = tokens(" ".join(words))
    expected = sorted({shingle_hash(s) for s in shingles_of_tokens(toks, 4)})
    assert shingle_hashes(toks, 4).tolist() == expected


SAMPLE = "Dock workers at the port of Halvern walked off the job on Monday morning after talks collapsed."
# Computed once with DedupParams() defaults; they must never change for this params version
# (mh-affine32-p128-s1-k4v2-b64x2+8-...: band hashes are salted with the version).
EXPECTED_KEYS_HEAD = [
    (0, 2456877832289331163),
    (1, -6448605087780877347),
    (2, 3378598667657655765),
]


def sample_keys() -> list[tuple[int, int]]:
    """Band keys of the sample sentence under the default params."""
    params = DedupParams()
    signer = Signer(params)
    return signer.band_keys(signer.signature(shingle_hashes(tokens(SAMPLE), params.shingle_k)))


def test_band_keys_shape_and_fixed_values() -> None:
    keys = sample_keys()
    assert [b for b, _ in keys] == list(range(64))
    assert all(-(1 << 63) <= h < (1 << 63) for _, h in keys)
    assert keys[:3] == EXPECTED_KEYS_HEAD


def test_band_keys_stable_across_processes() -> None:
    code = (
        "import json\n"
        "from tests.test_dedup import sample_keys\n"
        "print(json.dumps(sample_keys()))\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=os.pathsep.join([str(root / "plugins"), str(root)]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=root)
    assert [tuple(k) for k in json.loads(out.stdout)] == sample_keys()


# --- offline clustering -------------------------------------------------------------------

def test_cluster_jsonl_every_id_once_with_final_canonical(tmp_path: Path) -> None:
    text = fixture("en_wildfire")
    rows = [
        {"id": "a", "title": "Fire", "text": excerpt(text), "published_at": "2024-05-02T10:00:00Z"},
        {"id": "b", "title": "Budget", "text": fixture("en_council_budget")},
        {"id": 7, "title": "Fire (full)", "text": text, "published_at": "2024-05-01T09:00:00+00:00"},
        {"id": "c", "title": "Fire copy", "text": wrapped(text), "published_at": "not a date"},
        {"id": "a", "title": "repeat", "text": "ignored"},
        {"id": "d", "title": "Metro", "text": fixture("tr_istanbul_metro"), "source": "x", "url": "http://x/1"},
    ]
    src, dst = tmp_path / "docs.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:3]) + "\n\n"
                   + "\n".join(json.dumps(r, ensure_ascii=False) for r in rows[3:]) + "\n", encoding="utf-8")
    summary = cluster_jsonl(src, dst, DedupParams(), batch_size=2)
    out = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in out] == ["a", "b", 7, "c", "d"]
    by_id = {r["id"]: r for r in out}
    assert by_id["a"]["cluster"] == by_id[7]["cluster"] == by_id["c"]["cluster"] == "a"
    assert {by_id[i]["canonical"] for i in ("a", 7, "c")} == {7}
    assert by_id["b"] == {"id": "b", "cluster": "b", "canonical": "b", "similarity": 1.0}
    assert 0.8 <= by_id[7]["similarity"] <= 1.0
    assert summary["docs"] == 5 and summary["clusters"] == 3 and summary["skipped"] == 1


def test_cluster_jsonl_reads_dates_as_feeds_do(tmp_path: Path) -> None:
    """Naive ISO dates are UTC and RFC 2822 dates are read too: the earlier copy becomes canonical."""
    text = fixture("en_port_strike")
    rows = [
        {"id": "late", "title": "Strike", "text": text, "published_at": "2024-05-01T09:00:00"},
        {"id": "early", "title": "Strike", "text": wrapped(text), "published_at": "Wed, 01 May 2024 10:00:00 +0300"},
    ]
    src, dst = tmp_path / "docs.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cluster_jsonl(src, dst)
    out = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["cluster"], r["canonical"]) for r in out] == [
        ("late", "late", "early"),
        ("early", "late", "early"),
    ]


def test_cluster_jsonl_rejects_lines_without_id(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"title": "no id", "text": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        cluster_jsonl(src, tmp_path / "out.jsonl")


def test_a_carried_fingerprint_is_used_and_one_of_another_version_is_made_again() -> None:
    params = DedupParams()
    text = " ".join(f"word{i} of the harbour story number {i % 7}" for i in range(60))
    made = fingerprint_text(text, "", params)
    dedup = Deduplicator(params, MemoryStore())
    assert dedup.fingerprint(Doc(1, text, fingerprint=made)).signature is made.signature
    other = fingerprint_text(text, "", DedupParams(num_perm=64, bands=32))
    redone = dedup.fingerprint(Doc(1, text, fingerprint=other))
    assert redone.signature is not other.signature and np.array_equal(redone.signature, made.signature)
    assert redone.keys == made.keys and redone.text_hash == made.text_hash


def assign_as(dedup: Deduplicator, doc_id: int, name_or_text: str, source: str | None, hours: float = 0) -> Decision:
    """Assign a fixture (by name) or a text, from `source`, `hours` after T0."""
    text = fixture(name_or_text) if name_or_text.isidentifier() else name_or_text
    return dedup.assign(Doc(doc_id, text, published_at=T0 + timedelta(hours=hours), source=source))


@pytest.mark.parametrize("story", ["en_port_strike", "tr_istanbul_metro", "ja_typhoon", "zh_metro"])
def test_rewrite_from_another_outlet_joins_its_story(story: str) -> None:
    dedup = new_dedup()
    originals = {
        name: assign_as(dedup, i, name, "wire")
        for i, name in enumerate([*STORIES, "ja_typhoon", "ja_festival", "zh_metro", "zh_flood"], 1)
    }
    assert {d.method for d in originals.values()} == {"new"}
    decision = assign_as(dedup, 100, f"{story}_rewrite", "regional", hours=5)
    assert decision.cluster_id == originals[story].cluster_id, decision
    assert decision.method in ("jaccard", "rewrite_jaccard", "rewrite_containment"), decision
    assert decision.evidence["same_source"] is False and decision.evidence["hours_apart"] == 5.0
    assert decision.similarity >= decision.threshold


@pytest.mark.parametrize(("source", "hours"), [(None, 5), ("wire", 5), ("regional", 24 * 30)])
def test_rewrite_evidence_needs_another_known_source_within_days(source: str | None, hours: float) -> None:
    dedup = new_dedup()
    assign_as(dedup, 1, "en_port_strike", "wire" if source else None)
    decision = assign_as(dedup, 2, "en_port_strike_rewrite", source, hours=hours)
    assert decision.method == "new", decision
    nearest = decision.evidence["nearest"]
    assert nearest["candidate"] == 1 and 0.25 <= nearest["jaccard"] < 0.8


def test_japanese_and_chinese_copies_join_and_other_stories_stay_apart() -> None:
    dedup = new_dedup()
    names = ["ja_typhoon", "ja_festival", "zh_metro", "zh_flood"]
    first = {name: assign_as(dedup, i, name, "wire") for i, name in enumerate(names, 1)}
    assert {d.method for d in first.values()} == {"new"}
    for i, name in enumerate(names, 10):
        header = "共同通信" if name.startswith("ja") else "新华社"
        copy = assign_as(dedup, i, f"{header}\n{fixture(name)}\n（{header}）", "portal", hours=2)
        assert copy.cluster_id == first[name].cluster_id and copy.method in ("jaccard", "containment"), copy
    lead = assign_as(dedup, 20, fixture("zh_metro").split("\n")[0], "digest", hours=3)
    assert lead.cluster_id == first["zh_metro"].cluster_id and lead.method == "containment", lead


def test_thai_text_is_shingled_by_character() -> None:
    text = "กรุงเทพมหานครประกาศปิดถนน"
    assert tokens(text) == list(text)


def outlet_page(story: str) -> str:
    """A short story on the outlet's page: its long about/membership block follows every story."""
    return f"{story}\n{fixture('template')}"


def test_outlet_block_is_learnt_per_source_and_a_brief_joins_its_story() -> None:
    dedup = new_dedup()
    store = dedup.store
    original = assign_as(dedup, 1, "en_port_strike", "wire")
    stories = fixture("short_stories").split("\n\n")
    first, second = (assign_as(dedup, i, outlet_page(s), "courier", hours=i) for i, s in enumerate(stories[:2], 2))
    assert first.method == second.method == "new"  # the block is most of both pages: same source, kept apart
    block = fingerprint_text(fixture("template"), "", dedup.params).shingles
    learnt = store.source_marks({"courier": block, "wire": block})
    assert len(learnt["courier"]) >= 0.9 * len(block) and learnt["wire"] == {}
    brief = outlet_page(cut_words(fixture("en_port_strike"), 0.2))
    decision = assign_as(dedup, 10, brief, "courier", hours=3)
    assert decision.cluster_id == original.cluster_id and decision.method == "containment", decision
    assert decision.evidence["informative"][0] < 0.5 * len(fingerprint_text(brief, "", dedup.params).shingles)
    third = assign_as(dedup, 11, outlet_page(stories[2]), "courier", hours=4)
    assert third.method == "new" and third.evidence["nearest"]["shared"] < 15


def test_a_story_many_outlets_carry_is_not_any_outlets_boilerplate() -> None:
    dedup = new_dedup()
    first = assign_as(dedup, 1, "en_wildfire", "wire")
    for k in range(2, 27):
        copy = assign_as(dedup, k, f"Valley Post {k} / Reuters\n{fixture('en_wildfire')}", f"site{k}", hours=k)
        assert copy.cluster_id == first.cluster_id, copy
    story = fingerprint_text(fixture("en_wildfire"), "", dedup.params).shingles
    learnt = dedup.store.source_marks({f"site{k}": story for k in range(2, 27)})
    assert all(not marks for marks in learnt.values())
    assert dedup.store.marked() == 0


def test_a_one_article_story_the_original_also_matches_joins_it_late() -> None:
    """A rewrite and, days later, an excerpt arrive before their original and do not match each other."""
    dedup = new_dedup()
    rewrite = assign_as(dedup, 1, "en_port_strike_rewrite", "regional", hours=5)
    excerpt = assign_as(dedup, 2, cut_words(fixture("en_port_strike"), 0.3), "digest", hours=200)
    assert rewrite.method == excerpt.method == "new"
    original = assign_as(dedup, 3, "en_port_strike", "wire")
    assert original.cluster_id == 2 and original.is_canonical
    (late,) = dedup.moved
    assert (late.doc_id, late.cluster_id, late.matched_id, late.method) == (1, 2, 3, "rewrite_jaccard")
    assert late.evidence["joined_late"] is True and not late.is_canonical
    assert {s.cluster_id for s in dedup.store.get([1, 2, 3]).values()} == {2}
    assert dedup.store.clusters([1, 2]) == {2: dedup.store.clusters([2])[2]}
    assert dedup.store.clusters([2])[2].size == 3 and dedup.store.clusters([2])[2].canonical_id == 3


def test_an_outlets_second_page_learns_its_block_before_its_own_decision() -> None:
    """A brief that is only the outlet's second page, its block first: the block is learnt, then it matches."""
    dedup = new_dedup()
    original = assign_as(dedup, 1, "en_port_strike", "wire")
    other = fixture("short_stories").split("\n\n")[0]
    assert assign_as(dedup, 2, outlet_page(other), "courier", hours=1).method == "new"
    brief = f"{fixture('template')}\n{cut_words(fixture('en_port_strike'), 0.3)}"
    decision = assign_as(dedup, 3, brief, "courier", hours=2)
    assert decision.cluster_id == original.cluster_id and decision.method == "containment", decision
    learnt = dedup.store.source_marks({"courier": fingerprint_text(fixture("template"), "", dedup.params).shingles})
    assert len(learnt["courier"]) > 100


FOLLOW_UP = (
    "Talks between the dock workers' union and the port's operators resumed on Tuesday evening at a hotel "
    "outside Halvern, a day after the walkout began, with a mediator appointed by the regional government "
    "chairing the first session.\n"
    "Ships waiting at anchor rose to fourteen by the afternoon, according to the harbour master's daily "
    "list, and two container lines said they would send their next calls to other ports until the dispute "
    "was settled. A supermarket chain warned that fresh fruit deliveries could run short by the weekend.\n"
    "Daniel Reyes told reporters that the government would not take sides, but that it expected a "
    "proposal both parties could put to a vote before Friday. Union delegates said they would consult "
    "members at three mass meetings on Wednesday morning before giving any answer to the operators."
)


def test_a_follow_up_repeating_a_briefs_paragraph_stays_apart_from_the_story() -> None:
    """A follow-up repeats the paragraph a brief consists of: the story's canonical article does not support it."""
    dedup = new_dedup()
    original = assign_as(dedup, 1, "en_port_strike", "wire")
    stories = fixture("short_stories").split("\n\n")
    for i, story in enumerate(stories[:2], 2):
        assign_as(dedup, i, outlet_page(story), "courier", hours=i)
    background = paragraphs(fixture("en_port_strike"))[1]
    brief = assign_as(dedup, 5, outlet_page(background), "courier", hours=3)
    assert brief.cluster_id == original.cluster_id, brief
    follow_up = assign_as(dedup, 6, f"{background}\n{FOLLOW_UP}", "daily", hours=26)
    assert follow_up.method == "new", follow_up
    nearest = follow_up.evidence["nearest"]
    assert nearest["candidate"] == 5 and nearest["containment"] >= 0.8 and nearest["unsupported_by"] == 1
    copy = assign_as(dedup, 7, wrapped(fixture("en_port_strike")), "gazette", hours=4)
    assert copy.cluster_id == original.cluster_id  # a real copy is supported by the canonical article


def test_two_outlets_printing_one_block_are_not_rewrites_of_each_other() -> None:
    """One publisher's two sites print the same block under different stories: shared verbatim, not rewritten."""
    dedup = new_dedup()
    stories = fixture("short_stories").split("\n\n")
    first = assign_as(dedup, 1, outlet_page(stories[0]), "courier")
    second = assign_as(dedup, 2, outlet_page(stories[1]), "herald", hours=2)
    assert first.method == second.method == "new", second
    nearest = second.evidence["nearest"]
    assert nearest["candidate"] == 1 and nearest["jaccard"] >= 0.3  # rewrite_jaccard's score, refused
