"""Command line: python -m newsdedup <command>."""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
from pathlib import Path

from newsdedup import pipeline, store
from newsdedup.clean import clean_article, load_plain_text
from newsdedup.config import ConfigError, Settings
from newsdedup.dedup import cluster_jsonl
from newsdedup.extract import ExtractionError, extract
from newsdedup.fetch import Fetcher, FetchPolicy, decode_body
from newsdedup.sources import load_sources


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, turn known errors into a message and exit code 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.func(args)
    except (ConfigError, ExtractionError, OSError) as exc:
        print(f"newsdedup: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    parser = argparse.ArgumentParser(prog="newsdedup", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(required=True, metavar="command")

    db = sub.add_parser("db", help="database schema").add_subparsers(required=True, metavar="action")
    db.add_parser("migrate", help="apply pending migrations").set_defaults(func=_db_migrate)

    sources = sub.add_parser("sources", help="configured sources").add_subparsers(required=True, metavar="action")
    sources.add_parser("sync", help="write the sources file to the database").set_defaults(func=_sources_sync)
    sources.add_parser("check", help="validate the sources file").set_defaults(func=_sources_check)

    ingest = sub.add_parser("ingest", help="one whole run without Airflow")
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.set_defaults(func=_ingest)

    ext = sub.add_parser("extract", help="print the article extracted from a saved page or a URL as JSON")
    ext.add_argument("target", metavar="PATH_OR_URL")
    ext.add_argument("--url", help="the page's URL, for a saved page")
    ext.set_defaults(func=_extract)

    cln = sub.add_parser("clean", help="remove repeated segments from a text article or an HTML page")
    cln.add_argument("path", type=Path)
    cln.add_argument("--url", default="http://localhost/article", help="the page's URL, for HTML")
    cln.set_defaults(func=_clean)

    clu = sub.add_parser("cluster", help="deduplicate a JSONL corpus offline with the same engine")
    clu.add_argument("--input", required=True, type=Path, help='JSONL lines {"id","title","text"}')
    clu.add_argument("--output", required=True, type=Path, help='JSONL lines {"id","cluster","canonical","similarity"}')
    clu.set_defaults(func=_cluster)

    sub.add_parser("stats", help="headline numbers of the database as JSON").set_defaults(func=_stats)
    sub.add_parser("report", help="summary of the last run and of the database").set_defaults(func=_report)
    return parser


def _settings(require_db: bool = True) -> Settings:
    """Read the settings from the environment."""
    return Settings.from_env(require_db=require_db)


def _db_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    with store.connect(_settings().db_url) as conn:
        applied = store.migrate(conn)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'schema up to date'}")
    return 0


def _sources_sync(args: argparse.Namespace) -> int:
    """Write the sources file to the database."""
    settings = _settings()
    counts = pipeline.sync_sources(settings)
    print(f"{counts['enabled']} source(s) enabled, {counts['disabled']} disabled, from {settings.sources_path}")
    return 0


def _sources_check(args: argparse.Namespace) -> int:
    """Validate the sources file without touching the database."""
    settings = _settings(require_db=False)
    for source in load_sources(settings.sources_path):
        print(f"{source.name}\t{source.kind}\t{source.language or '-'}\t{source.url}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    """Run the pipeline once and print the run's row."""
    progress = sys.stderr.isatty() and not args.no_progress
    row = pipeline.run_once(_settings(), progress=progress)
    print(json.dumps(row, default=str, indent=2))
    return 0 if row["status"] != "failed" else 1


def _read_page(target: str) -> tuple[str, str]:
    """Return (html, url) of a saved page (gzip allowed) or of a URL fetched through the guarded fetcher."""
    if target.startswith(("http://", "https://")):
        with Fetcher(FetchPolicy.from_env()) as fetcher:
            result = fetcher.get(target)
        if not result.ok or result.text is None:
            raise ExtractionError(f"{target}: {result.outcome} {result.error_class or ''} {result.error_message or ''}")
        return result.text, result.final_url
    path = Path(target)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return decode_body(data, None)[0], ""


def _extract(args: argparse.Namespace) -> int:
    """Print the extracted record."""
    html, fetched_url = _read_page(args.target)
    url = args.url or fetched_url or Path(args.target).resolve().as_uri()
    article = extract(html, url)
    print(json.dumps(article.to_dict(), ensure_ascii=False, indent=2))
    return 0


def _clean(args: argparse.Namespace) -> int:
    """Print title, cleaned text and removed segments."""
    head = args.path.read_bytes()[:512].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"\x1f\x8b")) or b"<html" in head:
        html, _ = _read_page(str(args.path))
        found = extract(html, args.url)
        title, text = found.title, found.text
    else:
        title, text = load_plain_text(args.path)
    result = clean_article(title, text)
    out = {"title": title, "text": result.text, "removed": [r.to_dict() for r in result.removed]}
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def _cluster(args: argparse.Namespace) -> int:
    """Cluster a JSONL file and print the counts."""
    if not args.input.is_file():
        raise ConfigError(f"input file {args.input} does not exist")
    counts = cluster_jsonl(args.input, args.output)
    print(json.dumps(counts), file=sys.stderr)
    return 0


def _stats(args: argparse.Namespace) -> int:
    """Print headline numbers."""
    with store.connect(_settings().db_url) as conn:
        print(json.dumps(store.stats(conn), default=str, indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    """Print a short human summary of the last run and the database."""
    with store.connect(_settings().db_url) as conn:
        run = store.last_run(conn)
        totals = store.stats(conn)
    if run is None:
        print("no runs yet: run `python -m newsdedup ingest` or the news_ingest DAG")
        return 1
    print(f"last run       {run['run_key']} ({run['trigger']}): {run['status']}")
    print(
        f"sources        {run['sources_total']} crawled, {run['sources_failed']} failed, "
        f"{run['feeds_not_modified']} unchanged feeds"
    )
    print(
        f"pages          {run['urls_discovered']} announced, {run['urls_skipped_known']} already stored, "
        f"{run['pages_fetched']} fetched, {run['pages_failed']} failed, {run['extract_failed']} without text"
    )
    print(
        f"articles       {run['articles_new']} new, {run['articles_updated']} updated, "
        f"{run['articles_unchanged']} unchanged in this run"
    )
    print(
        f"dedup          {run['stories_created']} new stories, {run['duplicates_found']} copies collapsed "
        f"into existing stories, {run['segments_removed']} repeated segments removed"
    )
    print(
        f"database       {totals['articles']} articles in {totals['stories']} stories from {totals['sources']} "
        f"sources in {totals['languages']} languages; {totals['crawl_failures']} failed requests logged"
    )
    return 0
