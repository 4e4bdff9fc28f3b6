"""Metadata quality on the real pages of ../shared/corpora/article-extraction-benchmark (read in place).

The benchmark's ground truth holds only the article body and URL, so this reports what can be checked
without it, for newsdedup's metadata and for bare trafilatura's (`trafilatura.extract_metadata`):
titles still carrying a site-name decoration (a separator followed or preceded by og:site_name, the
JSON-LD publisher or the host name), authors equal to the outlet, dates in the future or before 1990,
and how often a date-only tag was passed over for a timestamp. Then, on bench/metadata_annotations.json
(page id -> SHA-256 of the normalised correct title, day in the URL; hand-checked, no title text
stored), exact-title and right-day rates with the sample size.

    .venv/bin/python bench/metadata_quality.py
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

import trafilatura  # noqa: E402
from newsdedup.metadata import (  # noqa: E402
    _HAS_TIME,
    PageMeta,
    clean_authors,
    read_metadata,
    searched_date,
    site_names,
    strip_decorations,
)
from trafilatura.utils import load_html  # noqa: E402

SHARED = Path(os.environ.get("NEWSDEDUP_SHARED_DIR", REPO.parent / "shared"))
CORPUS = SHARED / "corpora" / "article-extraction-benchmark"
ANNOTATIONS = REPO / "bench" / "metadata_annotations.json"


def normalised_title(title: str) -> str:
    """The form hashed in the annotation file: NFKC, case-folded, straight apostrophes, single spaces."""
    folded = unicodedata.normalize("NFKC", title).casefold().replace("’", "'").replace("‘", "'")
    return " ".join(folded.split())


def title_sha(title: str | None) -> str:
    """SHA-256 of the normalised title."""
    return hashlib.sha256(normalised_title(title or "").encode()).hexdigest()


def decorated(title: str | None, names: list[str]) -> bool:
    """Whether a title still carries a site name or date before or after a separator."""
    return bool(title) and strip_decorations(title, names) != " ".join(title.split())


def outlet_author(author: str | None, names: list[str]) -> bool:
    """Whether any person of a "; "-separated byline is the outlet (or nothing but a role)."""
    return bool(author) and any(not clean_authors(a, names) for a in author.split("; "))


def date_problem(value: datetime | None, now: datetime) -> bool:
    """A date in the future or before 1990."""
    return value is not None and (value > now or value < datetime(1990, 1, 1, tzinfo=UTC))


def in_local_day(value: datetime | None, day: datetime) -> bool:
    """Whether a UTC time falls on the outlet's local day (in some real time zone, UTC-12 to UTC+14)."""
    return value is not None and day - timedelta(hours=14) <= value < day + timedelta(hours=36)


def main() -> int:
    """Print the report; skip (exit 0) when the corpus is absent."""
    if not CORPUS.exists():
        print(f"skipped: {CORPUS} is absent (set NEWSDEDUP_SHARED_DIR)")
        return 0
    truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    annotations = json.loads(ANNOTATIONS.read_text(encoding="utf-8")) if ANNOTATIONS.exists() else {}
    now = datetime.now(UTC)
    counts = {k: 0 for k in ("pages", "ours_decorated", "bare_decorated", "ours_outlet", "bare_outlet",
                             "ours_authors", "bare_authors", "ours_bad_date", "bare_bad_date", "flagged",
                             "date_only_passed_over", "with_date", "modified")}
    right = {"ours_title": 0, "bare_title": 0, "ours_day": 0, "bare_day": 0, "ours_day1": 0, "days": 0}
    for path in sorted((CORPUS / "html").glob("*.html.gz")):
        page_id = path.name.split(".")[0]
        url = truth[page_id]["url"]
        html = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        tree = load_html(html)  # parsed as extract.read_page parses it
        ours = read_metadata(tree, url, now=now)
        published = ours.published_at or searched_date(load_html(html), url)  # as extract_text does
        bare = trafilatura.extract_metadata(html, default_url=url)
        meta = PageMeta(tree)
        names = site_names(url, [meta.first((("property", "og:site_name"),)), *meta.publisher_names()])
        bare_date = _bare_date(bare.date if bare else None)
        counts["pages"] += 1
        counts["ours_decorated"] += decorated(ours.title, names)
        counts["bare_decorated"] += decorated(bare.title if bare else None, names)
        counts["ours_authors"] += bool(ours.author)
        counts["bare_authors"] += bool(bare and bare.author)
        counts["ours_outlet"] += outlet_author(ours.author, names)
        counts["bare_outlet"] += outlet_author(bare.author if bare else None, names)
        counts["ours_bad_date"] += date_problem(published, now)
        counts["bare_bad_date"] += date_problem(bare_date, now)
        counts["flagged"] += ours.date_issue is not None
        counts["with_date"] += ours.published_at is not None
        counts["modified"] += ours.modified_at is not None
        declared = meta.published_candidates()
        counts["date_only_passed_over"] += any(not _HAS_TIME.search(d) for d in declared) and any(
            _HAS_TIME.search(d) for d in declared)
        if page_id in annotations:
            expected = annotations[page_id]
            right["ours_title"] += title_sha(ours.title) == expected["title_sha256"]
            right["bare_title"] += title_sha(bare.title if bare else None) == expected["title_sha256"]
            if expected["day"]:
                right["days"] += 1
                day = datetime.fromisoformat(expected["day"]).replace(tzinfo=UTC)
                right["ours_day"] += in_local_day(published, day)
                right["ours_day1"] += published is not None and published.date() == day.date()
                right["bare_day"] += bool(bare_date) and bare_date == day
    _print(counts, right, len(annotations))
    return 0


def _bare_date(raw: str | None) -> datetime | None:
    """trafilatura's YYYY-MM-DD as a UTC datetime."""
    return datetime.fromisoformat(raw).replace(tzinfo=UTC) if raw else None


def _print(counts: dict[str, int], right: dict[str, int], annotated: int) -> None:
    """The report as a Markdown table."""
    pages = counts["pages"]

    def share(n: int, of: int) -> str:
        return f"{n}/{of} ({100 * n / of:.1f} %)" if of else "n/a"

    print(f"{pages} pages of {CORPUS}\n")
    print("| measure | newsdedup | bare trafilatura |\n|---|---|---|")
    print(f"| titles still carrying a site-name/date decoration | {share(counts['ours_decorated'], pages)} | "
          f"{share(counts['bare_decorated'], pages)} |")
    print(f"| authors that are the outlet or a role | {share(counts['ours_outlet'], counts['ours_authors'])} | "
          f"{share(counts['bare_outlet'], counts['bare_authors'])} |")
    print(f"| publication dates in the future or before 1990 | {counts['ours_bad_date']} | {counts['bare_bad_date']} |")
    print(f"| exact title, hand-checked sample | {share(right['ours_title'], annotated)} | "
          f"{share(right['bare_title'], annotated)} |")
    print(f"| right local day, URL-dated sample | {share(right['ours_day'], right['days'])} | "
          f"{share(right['bare_day'], right['days'])} |")
    print(f"\nnewsdedup: a declared published_at on {share(counts['with_date'], pages)} pages (htmldate's "
          f"search fills the others), modified_at on {counts['modified']}; date_issue flagged on {counts['flagged']}; "
          f"{counts['date_only_passed_over']} pages declare both a date-only and a timestamped publication date "
          f"(the timestamp is used); same day in UTC on the URL-dated sample: "
          f"{share(right['ours_day1'], right['days'])} (trafilatura gives the day only, as the page states it)")


if __name__ == "__main__":
    sys.exit(main())
