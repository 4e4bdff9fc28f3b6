"""Near-duplicate quality benchmark on real article texts: newsdedup against the first baselines.

The labelled set is generated with a seeded RNG from the article bodies of the shared
article-extraction-benchmark corpus (read in place, never copied). Articles are split into
"originals" and "material" (text for inserted paragraphs and short stories; page boilerplate of
material pages for outlet wrappers, templates and navigation blocks). Per original: the original
plus one variant of each kind below, all labelled with the original's story:
wrapped, edited, cut, excerpt, update, quoted (see BENCHMARKS.md), *rewritten* (10-25 % of the words
replaced, clauses rotated, sentences reordered within a paragraph, the headline reworded, from a
regional outlet) and *brief* (the first 40-90 words plus the long navigation/teaser block its outlet
prints on every page). A few originals go *viral*: 20-26 outlets carry each, lightly edited.
Hard negatives that must stay apart: different originals quoting one background paragraph;
short stories of one source sharing a template block; briefs of different stories of one outlet
(its navigation block); *follow-ups* (a new story a day later that repeats the original's names,
numbers and one background paragraph); and hand-written same-event, different-report pairs from
`tests/fixtures/dedup/events/` (Turkish and English). All documents arrive in random order.

Run: `python -m bench.dedup_quality [--docs N] [--seed S] [--json]`
(`NEWSDEDUP_SHARED_DIR` overrides the location of the shared directory, default `<repo>/../shared`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

import xxhash  # noqa: E402
from datasketch import MinHash, MinHashLSH  # noqa: E402
from newsdedup.dedup_jsonl import cluster_jsonl  # noqa: E402
from newsdedup.minhash import DedupParams  # noqa: E402
from newsdedup.normalize import normalize_for_compare  # noqa: E402

CORPUS = Path("corpora") / "article-extraction-benchmark"
POSITIVE_KINDS = ("wrapped", "edited", "cut", "excerpt", "update", "quoted", "rewritten", "brief", "viral")
NEGATIVE_KINDS = ("quoted_pairs", "template_pairs", "nav_pairs", "followup_pairs", "event_pairs")
EVENTS = REPO / "tests" / "fixtures" / "dedup" / "events"
N_NAV_OUTLETS = 3
N_MATERIAL = 50
N_OUTLETS = 8

_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_CAPTION_NAMES = ("Ayşe Demir", "John Carter", "Maria Silva", "Kenji Sato", "Li Wei", "Anna Novak")
_AGENCIES = ("Reuters", "AP", "AFP", "Getty Images", "Anadolu Ajansı", "EPA")


def shared_dir() -> Path:
    """The shared directory: `NEWSDEDUP_SHARED_DIR` or `<repo>/../shared`."""
    env = os.environ.get("NEWSDEDUP_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


def corpus_dir() -> Path | None:
    """The article corpus directory, or None when it is not available."""
    path = shared_dir() / CORPUS
    return path if (path / "ground-truth.json").is_file() else None


@dataclass
class BenchDoc:
    """One generated document with its label."""

    id: str
    title: str
    text: str
    story: str
    kind: str
    published_at: datetime
    source: str
    original: str | None = None


def _page_boilerplate(html_path: Path, body: str) -> list[str]:
    """Text nodes of a page that are not part of its article body (nav, footer, related)."""
    import lxml.html

    try:
        page = lxml.html.fromstring(gzip.decompress(html_path.read_bytes()))
    except (OSError, ValueError):
        return []
    for bad in page.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    folded_body = normalize_for_compare(body)
    out, seen = [], set()
    for node in page.xpath("//body//text()"):
        text = " ".join(str(node).split())
        folded = normalize_for_compare(text)
        if len(text.split()) < 3 or not folded or folded in folded_body or folded in seen:
            continue
        seen.add(folded)
        out.append(text)
    return out


def _clip_words(lines: list[str], lo: int, hi: int, rng: random.Random) -> str:
    """Consecutive lines from a random start, lo..hi normalised tokens in all, newline-joined."""
    target = rng.randint(lo, hi)
    start = rng.randrange(max(1, len(lines) // 2))
    picked, count = [], 0
    for line in lines[start:] + lines[:start]:
        kept = []
        for word in line.split():
            size = len(normalize_for_compare(word).split())
            if count + size > target:
                break
            kept.append(word)
            count += size
        picked.append(" ".join(kept))
        if count >= target or len(kept) < len(line.split()):
            break
    return "\n".join(p for p in picked if p)


def _grams(text: str) -> set[str]:
    """Word 5-grams of the folded text (labelling helper, independent of the engine)."""
    words = normalize_for_compare(text).split()
    return {" ".join(words[i : i + 5]) for i in range(len(words) - 4)}


class _Material:
    """Disjoint word windows cut from the material articles, none sharing a 5-gram with `avoid`."""

    def __init__(self, bodies: list[str], avoid: set[str], rng: random.Random) -> None:
        """Pool all material words, keeping each article's words together."""
        self._words = [w for body in bodies for w in body.split()]
        self._avoid = avoid
        self._pos = 0
        self._rng = rng

    def take(self, lo: int, hi: int) -> str:
        """The next unused clean window of lo..hi words."""
        n = self._rng.randint(lo, hi)
        while True:
            if self._pos + n > len(self._words):
                raise RuntimeError("material exhausted: use fewer documents")
            window = " ".join(self._words[self._pos : self._pos + n])
            self._pos += n + 3  # a small gap so neighbouring windows share no shingle
            if not _grams(window) & self._avoid:
                return window


def _title_of(body: str) -> str:
    """A headline-like start of the body (at most 10 words and 70 characters)."""
    return " ".join(body.split()[:10])[:70].rstrip(".,;: ")


def _cut_words(text: str, fraction: float) -> str:
    """The text up to the word at `fraction` of its words (layout kept)."""
    words = text.split()
    keep = max(1, int(len(words) * fraction))
    pos = 0
    for word in words[:keep]:
        pos = text.index(word, pos) + len(word)
    return text[:pos]


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard slip: swapped, dropped or doubled letter."""
    i = rng.randrange(1, len(word) - 1)
    choice = rng.randrange(3)
    if choice == 0:
        return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]
    if choice == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _edit(body: str, related: str, rng: random.Random) -> str:
    """Light copy-edit: typos, quote style, an inserted caption and/or related link."""
    words = body.split(" ")
    spots = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    for i in rng.sample(spots, min(len(spots), rng.randint(2, 4))):
        words[i] = _typo(words[i], rng)
    text = " ".join(words)
    if rng.random() < 0.7:
        text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'")
        text = text.replace('"', "\u00ab", 1) if rng.random() < 0.3 else text
    paras = text.split("\n")
    at = rng.randrange(len(paras) + 1)
    extra = []
    if rng.random() < 0.6:
        extra.append(f"Photo: {rng.choice(_CAPTION_NAMES)} / {rng.choice(_AGENCIES)}")
    if rng.random() < 0.6 or not extra:
        extra.append(f"Related: {related}")
    return "\n".join(paras[:at] + extra + paras[at:])


def _update(body: str, addition: str, rng: random.Random) -> str:
    """Later version: a paragraph appended, two paragraphs swapped or merged."""
    paras = [p for p in body.split("\n") if p.strip()]
    if len(paras) >= 3:
        i = rng.randrange(len(paras) - 1)
        if rng.random() < 0.5:
            paras[i], paras[i + 1] = paras[i + 1], paras[i]
        else:
            paras[i : i + 2] = [paras[i] + " " + paras[i + 1]]
    return "\n".join([*paras, f"Update: {addition}"])


def _insert_paragraph(body: str, paragraph: str, rng: random.Random) -> str:
    """The body with a quoted paragraph inserted at a paragraph break."""
    paras = body.split("\n")
    at = rng.randint(1, max(1, len(paras)))
    return "\n".join(paras[:at] + [f"\u201c{paragraph}\u201d"] + paras[at:])


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_NAMES_NUMBERS = re.compile(r"\b[A-ZÇİÖŞÜ][\w'’-]{2,}(?:\s[A-ZÇİÖŞÜ][\w'’-]+)*|\b\d[\d.,%]*")
_SITES = ("Haber", "Gazete", "Post", "Times", "Daily", "Kurier", "Journal", "Voice", "Express", "Echo")


def _units(text: str) -> list[str]:
    """What a rewrite replaces: characters of CJK text, otherwise space-separated words."""
    return list(text) if _CJK.search(text) else text.split(" ")


def _join(units: list[str], text: str) -> str:
    """Inverse of `_units`."""
    return "".join(units) if _CJK.search(text) else " ".join(units)


def _replace_units(text: str, fraction: float, vocabulary: list[str], rng: random.Random) -> str:
    """About `fraction` of the words (CJK: characters) replaced by other words of the same story."""
    units = _units(text)
    spots = [i for i, u in enumerate(units) if u.strip()]
    for i in rng.sample(spots, int(len(spots) * fraction)):
        units[i] = rng.choice(vocabulary)
    return _join(units, text)


def _rotate_clause(sentence: str) -> str:
    """'A, B.' becomes 'B, a.': the clause moved to the other end of the sentence."""
    body, end = (sentence[:-1], sentence[-1]) if sentence[-1:] in ".!?" else (sentence, "")
    first, _, second = body.partition(", ")
    if not second or not first:
        return sentence
    return f"{second[:1].upper()}{second[1:]}, {first[:1].lower()}{first[1:]}{end}"


def _rewrite(body: str, title: str, rng: random.Random) -> tuple[str, str]:
    """An outlet's rewrite: sentences reordered, clauses rotated, 10-25 % of words replaced, new headline."""
    vocabulary = [u for u in _units(body) if u.strip()]
    paragraphs = []
    for para in body.split("\n"):
        sentences = [x for x in _SENTENCE_END.split(para) if x.strip()]
        if len(sentences) >= 2 and rng.random() < 0.6:
            i = rng.randrange(len(sentences) - 1)
            sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
        sentences = [_rotate_clause(x) if rng.random() < 0.4 else x for x in sentences]
        joiner = "" if _CJK.search(para) else " "
        paragraphs.append(joiner.join(sentences))
    text = _replace_units("\n".join(paragraphs), rng.uniform(0.10, 0.25), vocabulary, rng)
    words = title.split()
    cut = rng.randrange(1, len(words)) if len(words) > 1 else 0
    headline = _replace_units(" ".join(words[cut:] + words[:cut]), 0.4, vocabulary, rng)
    return text, headline


def _opening(body: str, rng: random.Random) -> str:
    """The first 40-90 words (CJK: 80-180 characters) of a story."""
    if _CJK.search(body):
        return body[: rng.randint(80, 180)]
    return _cut_words(body, min(1.0, rng.randint(40, 90) / max(1, len(body.split()))))


def _follow_up(body: str, new_text: str, rng: random.Random) -> str:
    """A new story that repeats the original's names and numbers and one of its background paragraphs."""
    facts = list(dict.fromkeys(_NAMES_NUMBERS.findall(body)))[:10]
    words = new_text.split()
    for fact in facts:
        words.insert(rng.randrange(len(words) + 1), fact)
    # One background paragraph: 25-90 words (CJK: 50-270 characters) and at most a third of the story.
    size = len if _CJK.search(body) else lambda t: len(t.split())
    scale = 2 if _CJK.search(body) else 1
    paras = [p for p in body.split("\n")[1:] if 25 * scale <= size(p) <= min(90 * scale, size(body) // 3)]
    background = rng.choice(paras) if paras else _clip_words([body], 10, max(10, len(body.split()) // 4), rng)
    third = len(words) // 3
    return "\n".join([" ".join(words[:third]), " ".join(words[third : 2 * third]), background,
                      " ".join(words[2 * third :])])


def _event_docs(base: datetime) -> list[BenchDoc]:
    """Hand-written same-event, different-report pairs (first line: headline); each report its own story."""
    docs = []
    for n, path in enumerate(sorted(EVENTS.glob("*_a.txt"))):
        for side in ("a", "b"):
            report = path.with_name(path.name[:-5] + f"{side}.txt").read_text(encoding="utf-8")
            headline, _, text = report.partition("\n")
            name = f"ev-{path.name[:-6]}-{side}"
            docs.append(BenchDoc(name, headline.strip(), text.strip(), name, "event",
                                 base + timedelta(hours=5 * n + (3 if side == "b" else 0)), f"event-{side}{n}"))
    return docs


def build_corpus(n_docs: int, seed: int) -> list[BenchDoc]:
    """Generate the labelled documents from `n_docs` originals (capped by the corpus)."""
    root = corpus_dir()
    if root is None:
        raise FileNotFoundError(f"corpus not found under {shared_dir()}")
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    rng = random.Random(seed)
    ids = sorted(truth)
    rng.shuffle(ids)
    bodies = {i: truth[i]["articleBody"].strip() for i in ids}
    # Sizes below are counted in whitespace words, so material must not be CJK text.
    material_ids = [i for i in ids if not _CJK.search(bodies[i])][:N_MATERIAL]
    original_ids = [i for i in ids if i not in set(material_ids)][:n_docs]
    # Material must not quote an original, or "distinct" stories would really be excerpts.
    avoid = set().union(*(_grams(bodies[i]) for i in original_ids))
    material = _Material([bodies[i] for i in material_ids], avoid, rng)

    # Outlet wrappers and source templates come from the boilerplate of real material pages.
    n_sources = max(2, round(len(original_ids) / 12))
    boiler = []
    for pid in material_ids:
        lines = _page_boilerplate(root / "html" / f"{pid}.html.gz", bodies[pid])
        lines = [x for x in lines if not _CJK.search(x) and not _grams(x) & avoid]
        if sum(len(x.split()) for x in lines) >= 170:
            boiler.append(lines)
        if len(boiler) == N_OUTLETS + N_NAV_OUTLETS + n_sources:
            break
    if len(boiler) < N_OUTLETS + N_NAV_OUTLETS + n_sources:
        raise RuntimeError("not enough page boilerplate in the material pages")
    outlets = [
        (f"outlet{k}", _clip_words(lines, 15, 50, rng), _clip_words(lines[::-1], 20, 60, rng))
        for k, lines in enumerate(boiler[:N_OUTLETS])
    ]
    nav_pages = boiler[N_OUTLETS : N_OUTLETS + N_NAV_OUTLETS]
    nav_outlets = [(f"nav{k}", _clip_words(lines, 180, 280, rng)) for k, lines in enumerate(nav_pages)]
    base = datetime(2024, 3, 1, tzinfo=UTC)
    docs: list[BenchDoc] = []
    viral = set(rng.sample(range(len(original_ids)), max(1, len(original_ids) // 40)))
    follow_ups = set(rng.sample(sorted(set(range(len(original_ids))) - viral), len(original_ids) * 3 // 20))
    titles = [_title_of(bodies[i]) for i in original_ids]

    def hours(lo: float, hi: float) -> timedelta:
        return timedelta(hours=rng.uniform(lo, hi))

    quoted = rng.sample(range(len(original_ids)), 2 * (len(original_ids) * 35 // 200))
    partner = {quoted[k]: quoted[k ^ 1] for k in range(len(quoted))}
    quotes = {min(quoted[k], quoted[k + 1]): material.take(40, 90) for k in range(0, len(quoted), 2)}

    for n, oid in enumerate(original_ids):
        body, story = bodies[oid], f"s{n}"
        t0 = base + timedelta(hours=6 * n) + hours(0, 5)
        title = titles[n]
        name, header, footer = rng.choice(outlets)

        def add(kind: str, text: str, when: datetime, headline: str, source: str, story: str = story) -> None:
            docs.append(BenchDoc(f"{story}-{kind}", headline, text, story, kind, when, source, f"{story}-orig"))

        docs.append(BenchDoc(f"{story}-orig", title, body, story, "orig", t0, "origin"))
        add("wrapped", f"{header}\n{body}\n{footer}", t0 + hours(1, 24), title, name)
        related = titles[(n + 1) % len(titles)]
        add("edited", _edit(body, related, rng), t0 + hours(1, 24), title.upper(), "copydesk")
        add("cut", _cut_words(body, rng.uniform(0.70, 0.85)), t0 + hours(1, 24), f"Report: {title}", "aggregator")
        excerpt = _cut_words(body, rng.uniform(0.45, 0.55))
        if rng.random() < 0.5:
            excerpt += f"\nRead more at {name}."
        add("excerpt", excerpt, t0 + hours(1, 24), title, "digest")
        add("update", _update(body, material.take(30, 70), rng), t0 + hours(2, 48), title, "origin")
        if n in partner:
            paragraph = quotes[min(n, partner[n])]
            add("quoted", _insert_paragraph(body, paragraph, rng), t0 + hours(1, 24), title, "explainer")
        text, headline = _rewrite(body, title, rng)
        add("rewritten", text, t0 + hours(1, 36), headline, f"regional{rng.randrange(6)}")
        nav_name, block = rng.choice(nav_outlets)
        opening = _opening(body, rng)
        brief = f"{block}\n{opening}" if rng.random() < 0.25 else f"{opening}\n{block}"
        add("brief", brief, t0 + hours(0.5, 24), title, nav_name)
        if n in viral:
            for k in range(rng.randint(20, 26)):
                site = f"{rng.choice(_CAPTION_NAMES).split()[1]} {_SITES[k % len(_SITES)]} {k}"
                copy = _edit(body, related, rng) if rng.random() < 0.5 else _cut_words(body, rng.uniform(0.8, 1.0))
                docs.append(BenchDoc(f"{story}-viral{k}", title, f"{site} / {rng.choice(_AGENCIES)}\n{copy}",
                                     story, "viral", t0 + hours(0.2, 30), f"site{k}", f"{story}-orig"))
        if n in follow_ups:
            text = _follow_up(body, material.take(120, 200), rng)
            docs.append(BenchDoc(f"{story}-followup", _title_of(text), text, f"{story}f", "followup",
                                 t0 + timedelta(hours=24) + hours(-4, 8), rng.choice(("origin", "followdesk")),
                                 f"{story}-orig"))

    for s, lines in enumerate(boiler[N_OUTLETS + N_NAV_OUTLETS :]):
        template = _clip_words(lines, 100, 160, rng)
        prefix = rng.random() < 0.3
        for k in range(rng.randint(6, 12)):
            story_text = material.take(50, 110)
            text = f"{template}\n{story_text}" if prefix else f"{story_text}\n{template}"
            when = base + hours(0, 6 * len(original_ids))
            docs.append(BenchDoc(f"t{s}-{k}", _title_of(story_text), text, f"t{s}-{k}", "template", when, f"source{s}"))
    if EVENTS.is_dir():
        docs.extend(_event_docs(base))
    rng.shuffle(docs)
    return docs


def _pairs(n: int) -> int:
    """Unordered pairs among n items."""
    return n * (n - 1) // 2


def score(docs: list[BenchDoc], predicted: dict[str, Any]) -> dict[str, Any]:
    """Pairwise precision/recall/F1, recall per variant kind and hard negatives kept apart."""
    cells = Counter((predicted[d.id], d.story) for d in docs)
    pred_pairs = sum(_pairs(c) for c in Counter(predicted[d.id] for d in docs).values())
    true_pairs = sum(_pairs(c) for c in Counter(d.story for d in docs).values())
    tp = sum(_pairs(c) for c in cells.values())
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    kinds = {}
    for kind in POSITIVE_KINDS:
        members = [d for d in docs if d.kind == kind]
        hits = sum(predicted[d.id] == predicted[d.original] for d in members)
        kinds[kind] = hits / len(members) if members else float("nan")
    quoted = [d for d in docs if d.kind == "quoted"]
    quoted_pairs = [
        (a, b) for a in quoted for b in quoted if a.id < b.id and _shares_quote(a, b)
    ]
    apart_q = [predicted[a.id] != predicted[b.id] for a, b in quoted_pairs]
    by_id = {d.id: d for d in docs}
    apart = {
        "quoted_pairs": apart_q,
        "template_pairs": _apart_same_source(docs, "template", predicted),
        "nav_pairs": _apart_same_source(docs, "brief", predicted),
        "followup_pairs": [predicted[d.id] != predicted[d.original] for d in docs if d.kind == "followup"],
        "event_pairs": [
            predicted[d.id] != predicted[d.id[:-1] + "b"] for d in docs if d.kind == "event" and d.id.endswith("-a")
            and d.id[:-1] + "b" in by_id
        ],
    }
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recall_by_kind": kinds,
        "apart": {name: sum(kept) / len(kept) if kept else float("nan") for name, kept in apart.items()},
        "apart_counts": {name: len(kept) for name, kept in apart.items()},
        "clusters": len(set(predicted.values())),
    }


def _apart_same_source(docs: list[BenchDoc], kind: str, predicted: dict[str, Any]) -> list[bool]:
    """Per pair of `kind` documents of one source telling different stories: kept apart?"""
    members = [d for d in docs if d.kind == kind]
    return [
        predicted[a.id] != predicted[b.id]
        for a in members for b in members if a.id < b.id and a.source == b.source and a.story != b.story
    ]


def _shares_quote(a: BenchDoc, b: BenchDoc) -> bool:
    """Whether two 'quoted' variants carry the same inserted paragraph."""
    qa = a.text.split("\u201c")[-1].split("\u201d")[0]
    return qa and qa == b.text.split("\u201c")[-1].split("\u201d")[0]


def run_newsdedup(docs: list[BenchDoc], params: DedupParams) -> dict[str, Any]:
    """Cluster through `cluster_jsonl` exactly as the CLI does."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "docs.jsonl", Path(tmp) / "assignments.jsonl"
        with src.open("w", encoding="utf-8") as f:
            for d in docs:
                rec = {"id": d.id, "title": d.title, "text": d.text, "source": d.source,
                       "published_at": d.published_at.isoformat()}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        cluster_jsonl(src, dst, params)
        rows = [json.loads(line) for line in dst.read_text(encoding="utf-8").splitlines()]
    if sorted(r["id"] for r in rows) != sorted(d.id for d in docs):
        raise AssertionError("cluster_jsonl must output every input id exactly once")
    return {r["id"]: r["cluster"] for r in rows}


def run_exact(docs: list[BenchDoc]) -> dict[str, Any]:
    """Baseline: identical normalised text."""
    return {d.id: xxhash.xxh64_hexdigest(normalize_for_compare(d.text).encode()) for d in docs}


def run_minhash_lsh(docs: list[BenchDoc], threshold: float) -> dict[str, Any]:
    """Baseline: datasketch MinHashLSH over lower-cased word 5-grams, join the best hit."""
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    sketches: dict[str, MinHash] = {}
    cluster: dict[str, str] = {}
    for d in docs:
        words = d.text.lower().split()
        grams = {" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))}
        m = MinHash(num_perm=128)
        m.update_batch([g.encode("utf-8") for g in grams])
        hits = lsh.query(m)
        if hits:
            best = max(hits, key=lambda h: (m.jaccard(sketches[h]), h))
            cluster[d.id] = cluster[best]
        else:
            cluster[d.id] = d.id
        lsh.insert(d.id, m)
        sketches[d.id] = m
    return cluster


def run_quality(n_docs: int = 200, seed: int = 13, params: DedupParams | None = None) -> dict[str, Any]:
    """Build the benchmark from up to `n_docs` originals and score every method on it."""
    params = params or DedupParams()
    docs = build_corpus(n_docs, seed)
    methods: dict[str, Callable[[], dict[str, Any]]] = {
        "newsdedup": lambda: run_newsdedup(docs, params),
        "exact-hash": lambda: run_exact(docs),
        "MinHashLSH@0.5": lambda: run_minhash_lsh(docs, 0.5),
        "MinHashLSH@0.8": lambda: run_minhash_lsh(docs, 0.8),
    }
    results: dict[str, Any] = {}
    for name, run in methods.items():
        started = time.perf_counter()
        predicted = run()
        results[name] = score(docs, predicted) | {"seconds": time.perf_counter() - started}
    counts = Counter(d.kind for d in docs)
    return {
        "seed": seed,
        "originals": counts["orig"],
        "documents": len(docs),
        "kinds": dict(counts),
        "params": params.to_dict(),
        "methods": results,
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width table."""
    cols = ["P", "R", "F1", *POSITIVE_KINDS, *NEGATIVE_KINDS, "clusters", "sec"]
    lines = [
        f"{report['documents']} documents from {report['originals']} originals (seed {report['seed']}); "
        f"kinds {report['kinds']}",
        "recall per kind = variant clustered with its original; *_pairs = hard-negative pairs kept apart",
        f"hard-negative pairs: {next(iter(report['methods'].values()))['apart_counts']}",
        f"{'method':16}" + "".join(f"{c[:12]:>13}" for c in cols),
    ]
    for name, r in report["methods"].items():
        values = [r["precision"], r["recall"], r["f1"], *r["recall_by_kind"].values(), *r["apart"].values()]
        cells = [f"{v:13.3f}" for v in values] + [f"{r['clusters']:13d}", f"{r['seconds']:13.2f}"]
        lines.append(f"{name:16}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200, help="originals to use (capped by the corpus)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    if corpus_dir() is None:
        print(f"dedup_quality: corpus not found under {shared_dir() / CORPUS}; "
              "set NEWSDEDUP_SHARED_DIR to the shared directory. Nothing to do.")
        return 0
    report = run_quality(args.docs, args.seed)
    print(json.dumps(report, indent=2, default=str) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
