"""Segment cleaning against ground truth: how many removals take away text the article really holds.

Each of the 181 real pages of ../shared/corpora/article-extraction-benchmark is extracted
(`newsdedup.extract.extract`) and cleaned (`clean.clean_article`). A removal is a LOSS when the
ground-truth `articleBody` holds the removed text (as a sequence of folded word tokens) more times than
the cleaned text still does. Reported: removals, losses, loss rate (target <= 2 % of removals), each loss.

The same is done with a baseline cleaner, by default clean.py as committed at HEAD (`git show
HEAD:plugins/newsdedup/clean.py`), and the CPU time of clean_article alone on the extracted bodies is
compared with it, the two taking turns page by page, median of the rounds.

    .venv/bin/python bench/clean_loss.py [--baseline REV] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from newsdedup import clean  # noqa: E402
from newsdedup.extract import ExtractionError, extract  # noqa: E402
from newsdedup.normalize import words  # noqa: E402

SHARED = Path(os.environ.get("NEWSDEDUP_SHARED_DIR", REPO.parent / "shared"))
AEB = SHARED / "corpora" / "article-extraction-benchmark"
TARGET = 0.02


@dataclass(frozen=True)
class Page:
    """One benchmark page: extracted title and text, and the ground-truth body."""

    name: str
    title: str
    text: str
    truth: str


@dataclass(frozen=True)
class Loss:
    """A removal whose text the ground truth holds more often than the cleaned text."""

    page: str
    kind: str
    reason: str
    segment: str
    matched: str
    similarity: float


def load_pages() -> list[Page]:
    """Extract every benchmark page that has a ground-truth body (pages extraction rejects are skipped)."""
    truth = json.loads((AEB / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for path in sorted((AEB / "html").glob("*.html.gz")):
        name = path.name.removesuffix(".html.gz")
        body = (truth.get(name) or {}).get("articleBody")
        if not body:
            continue
        html = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        try:
            article = extract(html, truth[name].get("url") or f"https://example.com/{name}")
        except ExtractionError:
            continue
        pages.append(Page(name, article.title, article.text, body))
    return pages


def baseline_module(rev: str) -> types.ModuleType:
    """clean.py as it was at git revision `rev`, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{rev}:plugins/newsdedup/clean.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(f"clean_at_{rev}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:clean.py", "exec"), module.__dict__)  # noqa: S102 - our own file at a revision
    return module


def occurrences(needle: list[str], haystack: str) -> int:
    """How many times the token sequence occurs in the space-joined token string (overlaps counted)."""
    if not needle:
        return 0
    target, count, start = f" {' '.join(needle)} ", 0, 0
    while (found := haystack.find(target, start)) >= 0:
        count, start = count + 1, found + 1
    return count


def losses(module: types.ModuleType, pages: list[Page]) -> tuple[int, list[Loss]]:
    """All removals of module.clean_article on the pages, and those that lose ground-truth text."""
    total, lost = 0, []
    for page in pages:
        result = module.clean_article(page.title, page.text)
        truth, kept = f" {' '.join(words(page.truth))} ", f" {' '.join(words(result.text))} "
        for removal in result.removed:
            total += 1
            tokens = words(removal.segment)
            if occurrences(tokens, truth) > occurrences(tokens, kept):
                lost.append(Loss(page.name, removal.kind, removal.reason, removal.segment, removal.matched,
                                 removal.similarity))
    return total, lost


def speed_ratio(old: types.ModuleType, new: types.ModuleType, pages: list[Page], rounds: int) -> list[float]:
    """Per round, clean_article CPU time of new over old on every page (turns alternate page by page)."""
    clock, ratios = time.process_time, []
    for module in (old, new):  # warm-up
        for page in pages:
            module.clean_article(page.title, page.text)
    for round_no in range(rounds):
        spent = {old: 0.0, new: 0.0}
        for number, page in enumerate(pages):
            for module in (old, new) if (number + round_no) % 2 else (new, old):
                started = clock()
                for _ in range(3):
                    module.clean_article(page.title, page.text)
                spent[module] += clock() - started
        ratios.append(spent[new] / spent[old])
    return ratios


def report(label: str, total: int, lost: list[Loss]) -> None:
    """Print one cleaner's counts."""
    rate = len(lost) / total if total else 0.0
    print(f"{label}: {total} removals, {len(lost)} losses, loss rate {rate:.1%} (target <= {TARGET:.0%})")


def main(argv: list[str] | None = None) -> int:
    """Measure the baseline and the current cleaner, print counts, the current losses and the speed ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="HEAD", help="git revision of the baseline clean.py")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if not (AEB / "ground-truth.json").exists():
        print(f"skipped: {AEB} is absent (../shared is only present in CI and the team's checkouts)")
        return 0
    import logging

    logging.disable(logging.WARNING)  # trafilatura's per-page warnings
    pages = load_pages()
    print(f"{len(pages)} pages extracted with ground truth")
    old = baseline_module(args.baseline)
    old_total, old_lost = losses(old, pages)
    total, lost = losses(clean, pages)
    report(f"baseline ({args.baseline})", old_total, old_lost)
    report("current", total, lost)
    for loss in lost:
        print(f"- {loss.page[:12]} {loss.kind} {loss.reason} {loss.similarity:.2f}: {loss.segment[:120]!r}"
              f"  ~ {loss.matched[:80]!r}")
    ratios = speed_ratio(old, clean, pages, args.rounds)
    print(f"clean_article CPU time, current / baseline: median {sorted(ratios)[len(ratios) // 2]:.2f} "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")
    return 0 if total == 0 or len(lost) / total <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
