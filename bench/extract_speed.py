"""Processing speed per core against bare trafilatura, on the same pages in the same process.

For each page set, the baseline, `trafilatura.extract(html, url=url)` with its defaults (full mode: the
readability/justext comparison, tables and comments on, no metadata), and newsdedup's processing of pages
as an extraction worker does it, `page_extraction.extract_pages` on chunks of CHUNK_PAGES with the pipeline's own
settings: extraction (metadata; text by trafilatura's fast pass with tables, comments off, and its full
pass where the fast text is suspect; language), segment cleaning, and the MinHash signature with its band
keys, take turns chunk by chunk. Times are CPU seconds of this process (the machine is shared). The ratio is
newsdedup pages per CPU second over trafilatura's, the median of the rounds (target >= 0.85). Then the
process pool of the processing step extracts the same pages with every core (wall clock), as a speed-up
over one core.

Page sets: the load benchmark's generated pages (bench/load.py), the demo site, and the 181 real pages of
../shared/corpora/article-extraction-benchmark when present (NEWSDEDUP_SHARED_DIR may point elsewhere).
The "full pass" column counts the pages whose text took trafilatura's full pass (counted after timing).

    .venv/bin/python bench/extract_speed.py [--rounds 5] [--pages 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

import trafilatura  # noqa: E402
from newsdedup.extract import _article_text, read_page  # noqa: E402
from newsdedup.page_extraction import extract_pages  # noqa: E402
from newsdedup.process import CHUNK_PAGES, ProcessSettings, _Extractor  # noqa: E402

Page = tuple[str, str]  # (url, html)


def load_pages(count: int) -> list[Page]:
    """Pages of the generated load site (a mix of hosts, layouts and syndicated copies)."""
    from bench.load import Corpus, article_html

    corpus = Corpus(100_000, 50)
    step = 100_000 // count
    return [(f"http://127.0.0.{g % 50 + 1}:8000/news/{g // 50}.html",
             article_html(corpus, g, f"http://127.0.0.{g % 50 + 1}:8000")) for g in range(0, 100_000, step)][:count]


def demo_pages() -> list[Page]:
    """Every article page of the demo site."""
    from demo import site

    corpus = site.load_corpus()
    pages = site.build_pages(corpus, "http://127.0.0.1:8000")
    return [(f"http://127.0.0.1:8000{a.path}", pages[a.path].body.decode()) for a in corpus.articles]


def real_pages() -> list[Page]:
    """The shared extraction benchmark's real news pages with their own URLs, if present."""
    from bench.extract_quality import aeb_pages

    return [(page.url, page.html) for page in aeb_pages()]


def full_passes(pages: list[Page]) -> int:
    """How many pages' text came from trafilatura's full pass."""
    return sum(_article_text(read_page(html, url))[1] == "trafilatura-full" for url, html in pages)


def as_raw(pages: list[Page]) -> list[dict]:
    """Pages as the processing step reads them from raw_pages."""
    return [
        {"raw_page_id": i, "source_id": 1, "url": url, "final_url": url, "html": html, "feed_title": None,
         "feed_published": None, "source_language": None}
        for i, (url, html) in enumerate(pages)
    ]


def measure(name: str, pages: list[Page], rounds: int) -> dict:
    """Baseline and newsdedup interleaved chunk by chunk; return pages per CPU second of each and their ratio.

    The machine's speed drifts by tens of percent within a minute, so the two are compared on the same
    chunk of pages back to back (which goes first alternates) rather than in separate rounds. Each round
    covers every page; the ratio of a round is its total baseline time over its total newsdedup time,
    and the median round is reported.
    """
    # Chunks as the processing step sends them to a worker.
    chunks = [(pages[i : i + CHUNK_PAGES], as_raw(pages[i : i + CHUNK_PAGES]))
              for i in range(0, len(pages), CHUNK_PAGES)]

    def baseline(chunk: list[Page]) -> None:
        for url, html in chunk:
            trafilatura.extract(html, url=url)

    def ours(raw: list[dict]) -> None:
        assert all(done.article is not None for done in extract_pages(raw))

    for chunk, raw in chunks:  # warm-up: lazy models and caches, for both
        ours(raw)
        baseline(chunk)
    clock = time.process_time  # CPU seconds of this process: the machine is shared
    rows = []
    for round_no in range(rounds):
        base = mine = 0.0
        for number, (chunk, raw) in enumerate(chunks):
            if (number + round_no) % 2:
                started = clock()
                baseline(chunk)
                middle = clock()
                ours(raw)
                base, mine = base + middle - started, mine + clock() - middle
            else:
                started = clock()
                ours(raw)
                middle = clock()
                baseline(chunk)
                base, mine = base + clock() - middle, mine + middle - started
        rows.append((base / mine, len(pages) / base, len(pages) / mine))
    ratio, base_pps, our_pps = sorted(rows)[len(rows) // 2]
    return {"set": name, "pages": len(pages), "kb": sum(len(h) for _, h in pages) // len(pages) // 1024,
            "trafilatura_pps": base_pps, "newsdedup_pps": our_pps, "ratio": ratio,
            "ratios": [r for r, _, _ in rows], "full": full_passes(pages)}


def pool_speedup(pages: list[Page], single_pps: float) -> dict:
    """Wall-clock pages per second of the processing pool on every core (extraction, cleaning, signature)."""
    settings = ProcessSettings(pool_min_pages=1)
    extractor = _Extractor(settings, pending=len(pages))
    try:
        raw = as_raw(pages)
        extractor.submit(raw)()  # warm, as the single-core rounds are: lazy models and per-process caches
        started = time.perf_counter()
        results = extractor.submit(raw)()
        seconds = time.perf_counter() - started
    finally:
        extractor.close()
    assert len(results) == len(pages)
    return {"workers": settings.workers, "pool_pps": len(pages) / seconds, "speedup": len(pages) / seconds / single_pps}


def main(argv: list[str] | None = None) -> int:
    """Measure every page set and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=300, help="generated pages to use")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # trafilatura warns about every page it discards
    sets = [("generated load site", load_pages(args.pages)), ("demo site", demo_pages())]
    real = real_pages()
    if real:
        sets.append(("real pages (extraction benchmark)", real))
    else:
        print("real pages skipped: ../shared/corpora/article-extraction-benchmark is absent\n")
    rows = [measure(name, pages, args.rounds) for name, pages in sets]
    print("baseline: trafilatura.extract defaults (full mode, tables, comments); newsdedup: extract_pages "
          "(fast pass with tables, full pass where suspect, metadata, cleaning, signature)\n")
    print("| pages | n | avg KB | trafilatura.extract pages/CPU-s | newsdedup pages/CPU-s | ratio | rounds "
          "| full pass |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['pages']} | {r['kb']} | {r['trafilatura_pps']:.0f} | {r['newsdedup_pps']:.0f} "
              f"| **{r['ratio']:.2f}** | {min(r['ratios']):.2f}-{max(r['ratios']):.2f} | {r['full']} |")
    pool = pool_speedup(sets[0][1], rows[0]["newsdedup_pps"])
    print(f"\nprocess pool, {pool['workers']} workers, generated pages (extract_pages, wall clock): "
          f"{pool['pool_pps']:.0f} pages/s = {pool['speedup']:.2f}x one core of newsdedup processing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
