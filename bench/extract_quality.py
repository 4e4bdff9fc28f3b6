"""Body text quality against ground truth: newsdedup's extraction next to bare trafilatura, page by page.

On the 181 real news pages of ../shared/corpora/article-extraction-benchmark (AEB), each page's text is
scored by bag-of-words token F1 against the ground truth's articleBody, for:

- bare `trafilatura.extract(html, url=url)` with its defaults (full mode: readability/justext comparison,
  tables, comments), the baseline;
- newsdedup's extraction as the pipeline runs it (`extract.extract`): trafilatura's fast pass, its full
  pass where the fast text is suspect, BeautifulSoup where trafilatura finds nothing;
- the two single-mode alternatives newsdedup chose between: the fast pass only, the full pass only.

Also the CPU seconds of each mode on all pages: bare trafilatura's whole call (its parse included), the
text step of the three newsdedup modes on the same parsed page (their order rotating page by page); the
pages under 0.5 where the baseline is over 0.8; the pages under half the baseline's text, by length and
by the ground-truth words recovered (a loss).
Targets (issue 12): mean F1 >= baseline + 0.005, no page under 0.5 where the baseline is over 0.8,
no page recovering under half the ground-truth words the baseline recovers.

    .venv/bin/python bench/extract_quality.py [--all]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

import trafilatura  # noqa: E402
from newsdedup import extract as ex  # noqa: E402

SHARED = Path(os.environ.get("NEWSDEDUP_SHARED_DIR", REPO.parent / "shared"))
AEB = SHARED / "corpora" / "article-extraction-benchmark"
MODES = ("bare", "newsdedup", "fast only", "full only")


@dataclass
class AebPage:
    """One page of the extraction benchmark with its ground-truth body."""

    key: str
    url: str
    html: str
    truth: str


def aeb_pages(folder: Path = AEB) -> list[AebPage]:
    """The benchmark's pages in key order ([] when the folder is absent)."""
    truth_file = folder / "ground-truth.json"
    if not truth_file.exists():
        return []
    truth = json.loads(truth_file.read_text(encoding="utf-8"))
    return [
        AebPage(key, item["url"], gzip.decompress((folder / "html" / f"{key}.html.gz").read_bytes())
                .decode("utf-8", "replace"), item["articleBody"])
        for key, item in sorted(truth.items())
    ]


def tokens(text: str) -> Counter[str]:
    """Lower-cased word tokens of a text, counted."""
    return Counter(re.findall(r"\w+", text.lower()))


def f1(text: str, truth: str) -> float:
    """Bag-of-words token F1 of a text against the ground truth."""
    got, want = tokens(text), tokens(truth)
    common = sum((got & want).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def recovered(text: str, truth: str) -> int:
    """How many ground-truth word tokens a text holds."""
    return sum((tokens(text) & tokens(truth)).values())


def single_mode_text(page: ex.ReadPage, options: ex.Extractor) -> str:
    """One trafilatura mode alone, with the same BeautifulSoup last resort."""
    return ex._trafilatura_text(page, options) or ex._soup_text(page.html)


def texts_and_times(pages: list[AebPage]) -> tuple[dict[str, list[str]], dict[str, float], Counter[str]]:
    """Each mode's text of every page, each mode's CPU seconds, and how often each newsdedup path ran."""
    texts: dict[str, list[str]] = {mode: [] for mode in MODES}
    seconds = dict.fromkeys(MODES, 0.0)
    methods: Counter[str] = Counter()
    clock = time.process_time
    for number, page in enumerate(pages):
        started = clock()
        texts["bare"].append(trafilatura.extract(page.html, url=page.url) or "")
        seconds["bare"] += clock() - started
        read = ex.read_page(page.html, page.url)
        steps = {"newsdedup": lambda r=read: ex._article_text(r),
                 "fast only": lambda r=read: (single_mode_text(r, ex._FAST), ""),
                 "full only": lambda r=read: (single_mode_text(r, ex._FULL), "")}
        order = list(steps)[number % 3:] + list(steps)[: number % 3]  # the first after parsing runs colder
        for mode in order:
            step = steps[mode]
            started = clock()
            text, method = step()
            seconds[mode] += clock() - started
            texts[mode].append(text)
            if mode == "newsdedup":
                methods[method] += 1
        fast = texts["fast only"][-1]
        methods["full pass run"] += bool(ex._suspicion(fast, ex._expected_chars(read.tree)))
    return texts, seconds, methods


def summary(pages: list[AebPage], texts: dict[str, list[str]]) -> dict[str, dict]:
    """Mean F1, failures where the baseline succeeds, and pages short of the baseline, per mode."""
    bare_f1 = [f1(t, p.truth) for t, p in zip(texts["bare"], pages, strict=True)]
    rows = {}
    for mode in MODES:
        scores = [f1(t, p.truth) for t, p in zip(texts[mode], pages, strict=True)]
        rows[mode] = {
            "mean": statistics.mean(scores),
            "failed": [p.key for p, s, b in zip(pages, scores, bare_f1, strict=True) if s < 0.5 and b > 0.8],
            "shorter": [p.key for p, t, b in zip(pages, texts[mode], texts["bare"], strict=True)
                        if len(t) < 0.5 * len(b)],
            "lost": [p.key for p, t, b in zip(pages, texts[mode], texts["bare"], strict=True)
                     if recovered(t, p.truth) < 0.5 * recovered(b, p.truth)],
            "scores": scores,
        }
    return rows


def main(argv: list[str] | None = None) -> int:
    """Score every mode on the benchmark pages and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="list every page, not only those that differ")
    args = parser.parse_args(argv)
    pages = aeb_pages()
    if not pages:
        print(f"skipped: {AEB} is absent (../shared is only present in CI and the team's checkouts)")
        return 0
    logging.disable(logging.WARNING)  # trafilatura warns about every page it discards
    texts, seconds, methods = texts_and_times(pages)
    rows = summary(pages, texts)
    bare, ours = rows["bare"]["scores"], rows["newsdedup"]["scores"]
    print("| page | bare F1 | newsdedup F1 | fast only | full only | bare chars | newsdedup chars |")
    print("|---|---|---|---|---|---|---|")
    for i, page in enumerate(pages):
        flagged = any(page.key in rows[m][k] for m in MODES[1:] for k in ("failed", "shorter", "lost"))
        if args.all or flagged or abs(bare[i] - ours[i]) > 0.1:
            print(f"| {page.key[:10]} | {bare[i]:.2f} | {ours[i]:.2f} | {rows['fast only']['scores'][i]:.2f} "
                  f"| {rows['full only']['scores'][i]:.2f} | {len(texts['bare'][i])} | {len(texts['newsdedup'][i])} |")
    print(f"\n{len(pages)} pages; newsdedup's full pass ran on {methods.pop('full pass run')}, its text came from: "
          + ", ".join(f"{method} {count}" for method, count in methods.most_common()))
    print("\n| mode | mean F1 | vs bare | under 0.5 where bare > 0.8 | under half bare's chars "
          "| under half bare's truth words | text step CPU s |")
    print("|---|---|---|---|---|---|---|")
    for mode in MODES:
        r = rows[mode]
        print(f"| {mode} | {r['mean']:.4f} | {r['mean'] - rows['bare']['mean']:+.4f} | {len(r['failed'])} "
              f"| {len(r['shorter'])} | {len(r['lost'])} | {seconds[mode]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
