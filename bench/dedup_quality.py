"""Near-duplicate quality benchmark on real article texts: newsdedup against the first baselines.

The labelled set is generated with a seeded RNG from the article bodies of the shared
article-extraction-benchmark corpus (read in place, never copied). Articles are split into
"originals" and "material" (text for inserted paragraphs and short stories; page boilerplate of
material pages for outlet wrappers and templates). Per original: the original plus one variant of
each kind below, all labelled with the original's story. Hard negatives: pairs of different
originals that both quote one background paragraph, and many short stories per fake source whose
pages all carry one long template block. All documents arrive in random order.

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
from newsdedup.dedup import DedupParams, cluster_jsonl  # noqa: E402
from newsdedup.normalize import normalize_for_compare  # noqa: E402

CORPUS = Path("corpora") / "article-extraction-benchmark"
POSITIVE_KINDS = ("wrapped", "edited", "cut", "excerpt", "update", "quoted")
NEGATIVE_KINDS = ("quoted_pairs", "template_pairs")
N_MATERIAL = 45
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
        if len(boiler) == N_OUTLETS + n_sources:
            break
    if len(boiler) < N_OUTLETS + n_sources:
        raise RuntimeError("not enough page boilerplate in the material pages")
    outlets = [
        (f"outlet{k}", _clip_words(lines, 15, 50, rng), _clip_words(lines[::-1], 20, 60, rng))
        for k, lines in enumerate(boiler[:N_OUTLETS])
    ]
    base = datetime(2024, 3, 1, tzinfo=UTC)
    docs: list[BenchDoc] = []
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

    for s, lines in enumerate(boiler[N_OUTLETS:]):
        template = _clip_words(lines, 100, 160, rng)
        prefix = rng.random() < 0.3
        for k in range(rng.randint(6, 12)):
            story_text = material.take(50, 110)
            text = f"{template}\n{story_text}" if prefix else f"{story_text}\n{template}"
            when = base + hours(0, 6 * len(original_ids))
            docs.append(BenchDoc(f"t{s}-{k}", _title_of(story_text), text, f"t{s}-{k}", "template", when, f"source{s}"))
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
    template = [d for d in docs if d.kind == "template"]
    template_pairs = [
        (a, b) for a in template for b in template if a.id < b.id and a.source == b.source
    ]
    apart_t = [predicted[a.id] != predicted[b.id] for a, b in template_pairs]
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recall_by_kind": kinds,
        "apart": {
            "quoted_pairs": sum(apart_q) / len(apart_q) if apart_q else float("nan"),
            "template_pairs": sum(apart_t) / len(apart_t) if apart_t else float("nan"),
        },
        "clusters": len(set(predicted.values())),
    }


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
        f"{'method':16}" + "".join(f"{c:>15}" for c in cols),
    ]
    for name, r in report["methods"].items():
        values = [r["precision"], r["recall"], r["f1"], *r["recall_by_kind"].values(), *r["apart"].values()]
        cells = [f"{v:15.3f}" for v in values] + [f"{r['clusters']:15d}", f"{r['seconds']:15.2f}"]
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
