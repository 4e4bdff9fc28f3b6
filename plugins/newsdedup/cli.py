"""Command line: newsdedup <command> (the console script make venv installs; also python -m newsdedup)."""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import psycopg2
import psycopg2.extensions
import psycopg2.sql

from newsdedup import pipeline, store
from newsdedup.clean import clean_article, load_plain_text
from newsdedup.config import ConfigError, RedactFilter, Settings, redact
from newsdedup.content import decode_body
from newsdedup.dedup_jsonl import cluster_jsonl
from newsdedup.extract import ExtractionError, extract
from newsdedup.fetch import Fetcher, FetchPolicy
from newsdedup.rebuild import params_from_json, rebuild
from newsdedup.retention import Retention, maintenance, stale_line
from newsdedup.sources import load_sources

# A reader that goes away (`... | head -1`) ends the program quietly with status 141, 128 + SIGPIPE,
# as a shell reports for any program stopped by a closed pipe (`yes | head -1`).
EXIT_BROKEN_PIPE = 141

Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a closed stdout ends it quietly."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_gone()


def _run(argv: list[str] | None) -> int:
    """Parse arguments, run the command, turn known errors into a message and exit code 2."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help and usage errors: main still flushes what they wrote
        return int(stop.code or 0)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except BrokenPipeError:
        raise
    except (ConfigError, ExtractionError, OSError) as exc:
        print(f"newsdedup: error: {redact(str(exc))}", file=sys.stderr)
        return 2


def _reader_gone() -> int:
    """Python's documented SIGPIPE recipe: point stdout at devnull so the exit-time flush stays silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _setup_logging(verbose: bool) -> None:
    """Log to stderr: newsdedup's warnings always, other libraries' records (and Python warnings) only with -v."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactFilter())
    if not verbose:
        # trafilatura's "discarding data: ..." and the like are about pages, not for the user to act on.
        handler.addFilter(lambda record: record.name.partition(".")[0] == "newsdedup")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler], force=True)
    logging.captureWarnings(True)


def _command(
    sub: argparse._SubParsersAction,
    name: str,
    summary: str,
    *examples: str,
    func: Handler | None = None,
    json_help: str | None = None,
) -> argparse.ArgumentParser:
    """Add a sub-command whose --help ends with examples; it runs func (or has sub-commands of its own).

    With `json_help` it takes `--json`: print the result as JSON, as that help says.
    """
    lines = "\n".join(f"  newsdedup {example}" for example in examples)
    parser = sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example{'s' if len(examples) > 1 else ''}:\n{lines}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if func is not None:
        parser.set_defaults(func=func)
    if json_help is not None:
        parser.add_argument("--json", action="store_true", help=json_help)
    return parser


def _parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    parser = argparse.ArgumentParser(
        prog="newsdedup",
        description=__doc__,
        epilog="examples:\n  newsdedup db migrate\n  newsdedup ingest\n  newsdedup -v report\n"
        "  newsdedup maintain\n\nRun newsdedup COMMAND --help for each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and libraries' warnings")
    sub = parser.add_subparsers(required=True, metavar="command")

    db = _command(sub, "db", "database schema", "db migrate", "db status").add_subparsers(
        required=True, metavar="action"
    )
    _command(db, "migrate", "create the database if missing, apply pending migrations", "db migrate", func=_db_migrate)
    _command(
        db,
        "status",
        "list applied (with date) and pending migrations; exit status 1 unless all are applied unchanged",
        "db status",
        "db status --json | jq -r '.migrations[] | select(.state == \"pending\") | .version'",
        func=_db_status,
        json_help='print {"up_to_date": ..., "migrations": [...]}',
    )

    sources = _command(sub, "sources", "configured sources", "sources check", "sources sync")
    actions = sources.add_subparsers(required=True, metavar="action")
    _command(actions, "sync", "write the sources file to the database", "sources sync", func=_sources_sync)
    _command(actions, "check", "validate the sources file", "sources check | head -3", func=_sources_check)

    ingest = _command(sub, "ingest", "one whole run without Airflow", "ingest --no-progress > run.json", func=_ingest)
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")

    ext = _command(
        sub,
        "extract",
        "print the article extracted from a saved page or a URL as JSON",
        "extract page.html.gz --url https://example.com/news/1",
        "extract https://example.com/news/1",
        func=_extract,
    )
    ext.add_argument("target", metavar="PATH_OR_URL")
    ext.add_argument("--url", help="the page's URL, for a saved page")

    cln = _command(
        sub,
        "clean",
        "remove repeated segments from a text article or an HTML page",
        "clean article.txt   # first line is the headline",
        func=_clean,
    )
    cln.add_argument("path", type=Path)
    cln.add_argument("--url", default="http://localhost/article", help="the page's URL, for HTML")

    clu = _command(
        sub,
        "cluster",
        "deduplicate a JSONL corpus offline with the same engine",
        "cluster --input articles.jsonl --output clusters.jsonl",
        func=_cluster,
    )
    clu.add_argument("--input", required=True, type=Path, help='JSONL lines {"id","title","text"}')
    clu.add_argument("--output", required=True, type=Path, help='JSONL lines {"id","cluster","canonical","similarity"}')

    dedup = _command(sub, "dedup", "story clustering state", "dedup rebuild").add_subparsers(
        required=True, metavar="action"
    )
    reb = _command(
        dedup,
        "rebuild",
        "recompute signatures, bands and stories from the stored texts, in batches; resumes after a kill",
        "dedup rebuild",
        "dedup rebuild --params '{\"seed\": 2}' --batch-size 200",
        func=_dedup_rebuild,
    )
    reb.add_argument("--params", help="JSON object of DedupParams fields to change from the defaults")
    reb.add_argument("--batch-size", type=int, default=500, help="articles per transaction (default 500)")
    reb.add_argument("--max-batches", type=int, help="stop after this many batches (run again to go on)")
    reb.add_argument("--restart", action="store_true", help="start over instead of resuming")
    reb.add_argument("--no-progress", action="store_true", help="no progress bar")

    _command(
        sub,
        "maintain",
        "retention (old raw pages and crawl_log rows), ANALYZE and stale sources, as the news_maintenance DAG; "
        "run daily",
        "maintain",
        "maintain --json | jq .raw_pages_deleted",
        func=_maintain,
        json_help="print what was done as one JSON object",
    )
    _command(
        sub, "stats", "headline numbers of the database", "stats", "stats --json | jq .articles",
        func=_stats, json_help="print them as one JSON object",
    )
    _command(
        sub, "report", "summary of the last run and of the database", "report", "report --json | jq .last_run.status",
        func=_report, json_help='print {"last_run": {...}, "database": {...}} as JSON',
    )
    return parser


def _settings(require_db: bool = True) -> Settings:
    """Read the settings from the environment."""
    return Settings.from_env(require_db=require_db)


def _db_migrate(args: argparse.Namespace) -> int:
    """Create the database when it is missing, then apply pending migrations."""
    db_url = _settings().db_url
    if _create_missing_database(db_url):
        print(f"created database {psycopg2.extensions.parse_dsn(db_url)['dbname']}")
    with store.connect(db_url) as conn:
        applied = store.migrate(conn)
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'schema up to date'}")
    return 0


def _create_missing_database(db_url: str) -> bool:
    """Create the URL's database when the server says it does not exist; ConfigError saying how when we may not."""
    try:
        psycopg2.connect(db_url, connect_timeout=10).close()
        return False
    except psycopg2.OperationalError as exc:
        if not re.search(r'database ".*" does not exist', str(exc)):
            return False  # any other problem is reported, redacted, by the connection that follows
    name = psycopg2.extensions.parse_dsn(db_url)["dbname"]
    try:
        conn = psycopg2.connect(psycopg2.extensions.make_dsn(db_url, dbname="postgres"), connect_timeout=10)
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(psycopg2.sql.SQL("CREATE DATABASE {}").format(psycopg2.sql.Identifier(name)))
        finally:
            conn.close()
    except psycopg2.Error as exc:
        raise ConfigError(
            f"database {name!r} does not exist and could not be created ({str(exc).strip().splitlines()[0]}): "
            f"create it as a PostgreSQL superuser (createdb {name}), or with scripts/pg.sh url {name} on the "
            "private server"
        ) from exc
    return True


def _db_status(args: argparse.Namespace) -> int:
    """Print every migration's state: applied (when), changed since applied, pending, or file missing."""
    with store.connect(_settings().db_url) as conn:
        status = store.migration_status(conn)
    up_to_date = all(m.state == "applied" for m in status)
    if args.json:
        print(json.dumps({"up_to_date": up_to_date, "migrations": [m.to_dict() for m in status]}, indent=2))
        return 0 if up_to_date else 1
    for m in status:
        when = f"{m.applied_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if m.applied_at else "-"
        note = {"changed": "  (file changed since it was applied)", "missing": "  (file missing)"}.get(m.state, "")
        print(f"{m.state:<8} {m.version:<28} {when}{note}")
    counts = Counter(m.state for m in status)
    print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return 0 if up_to_date else 1


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


def _dedup_rebuild(args: argparse.Namespace) -> int:
    """Rebuild the dedup state from stored texts and print what this run did as JSON."""
    show = sys.stderr.isatty() and not args.no_progress
    report = rebuild(
        _settings().db_url,
        params_from_json(args.params),
        batch_size=args.batch_size,
        max_batches=args.max_batches,
        restart=args.restart,
        progress=lambda total: pipeline._progress_bar(show, total, "articles"),
    )
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def _maintain(args: argparse.Namespace) -> int:
    """Run the news_maintenance DAG's work once and print what it did."""
    retention = Retention.from_env()
    done = maintenance(_settings().db_url, retention)
    if args.json:
        print(json.dumps(done, default=str, indent=2))
        return 0
    print(
        f"retention      {done['raw_pages_deleted']} raw pages processed over {retention.raw_pages_days} days ago, "
        f"{done['crawl_log_deleted']} crawl_log rows over {retention.crawl_log_days} days old: deleted"
    )
    print(f"candidates     {done['candidates_unindexed']} articles over {retention.candidate_days} days old: unindexed")
    print(f"analyzed       {len(done['analyzed'])} tables")
    print(f"stale sources  {len(done['stale_sources'])} (no successful read for {retention.stale_hours} h)")
    for source in done["stale_sources"]:
        print(f"  {stale_line(source)}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    """Print headline numbers."""
    with store.connect(_settings().db_url) as conn:
        totals = store.stats(conn)
    if args.json:
        print(json.dumps(totals, default=str, indent=2))
    else:
        for name, value in totals.items():
            print(f"{name:<22} {value}")
    return 0


def _report(args: argparse.Namespace) -> int:
    """Print a short human summary (or its numbers as JSON) of the last run and the database."""
    with store.connect(_settings().db_url) as conn:
        run = store.last_run(conn)
        totals = store.stats(conn)
    if args.json:
        print(json.dumps({"last_run": run, "database": totals}, default=str, indent=2))
        return 0 if run is not None else 1
    if run is None:
        print("no runs yet: run `newsdedup ingest` or the news_ingest DAG")
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
