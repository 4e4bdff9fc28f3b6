"""The run counters, defined once: the integer columns of pipeline_runs and source_runs and the SQL that writes them.

Adding a counter: one line in RUN_COUNTERS (or SOURCE_COUNTERS) plus a migration adding its column; the writes,
the run summary and tests/test_run_counters.py (which holds this against the database and docs/schema.md) follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Step = Literal["run", "crawl", "process"]


@dataclass(frozen=True)
class RunCounter:
    """One counter: its column, the step that counts it, its documented meaning, its key in the run summary."""

    name: str
    step: Step  # crawl: each source's crawl report; process: each processed batch; run: added up when the run closes
    description: str  # the column's meaning, as docs/schema.md gives it
    summary: str | None = None  # key of the run summary and its Asset event (None: not in them)
    error: bool = False  # part of the run's `errors`


# pipeline_runs, in column order.
RUN_COUNTERS = (
    RunCounter("sources_failed", "run", "sources whose feed could not be fetched or parsed", "sources_failed", True),
    RunCounter("feeds_not_modified", "crawl", "feeds that answered 304 to the conditional GET"),
    RunCounter("urls_discovered", "crawl", "article URLs announced by the feeds"),
    RunCounter("urls_skipped_known", "crawl", "announced URLs already stored and not changed since"),
    RunCounter("pages_fetched", "crawl", "article pages fetched successfully", "pages_fetched"),
    RunCounter("pages_failed", "crawl", "article fetches that failed (see `crawl_log`)", error=True),
    RunCounter(
        "extract_failed",
        "process",
        "fetched pages in which no article could be extracted (pages given up, see `page_failures`, not counted)",
        error=True,
    ),
    RunCounter("articles_new", "process", "articles stored for the first time", "articles_new"),
    RunCounter("articles_updated", "process", "stored articles whose title or text changed", "articles_revised"),
    RunCounter("articles_unchanged", "process", "re-fetched articles with identical content"),
    RunCounter("stories_created", "process", "new articles that started a story of their own", "stories_created"),
    RunCounter("duplicates_found", "process", "new articles that joined a story already stored", "copies_collapsed"),
    RunCounter(
        "segments_removed", "process", "repeated segments removed from the text of new and changed articles",
        "segments_removed",
    ),
)

# source_runs: crawl counters are recorded with the source's crawl, process counters added after processing.
SOURCE_COUNTERS = (
    RunCounter("urls_discovered", "crawl", "article URLs the feed announced"),
    RunCounter("urls_skipped_known", "crawl", "announced article URLs already stored and unchanged"),
    RunCounter("pages_fetched", "crawl", "article fetches that succeeded"),
    RunCounter("pages_failed", "crawl", "article fetches that failed"),
    RunCounter("robots_disallowed", "crawl", "article URLs skipped because robots.txt disallows them"),
    RunCounter("feeds_not_modified", "crawl", "1 when the feed answered 304"),
    RunCounter(
        "extract_failed",
        "process",
        "fetched pages without an extractable article (pages given up, see `page_failures`, not counted)",
    ),
    RunCounter("articles_new", "process", "articles first stored from this source's pages in this run"),
    RunCounter(
        "articles_revised", "process", "stored articles whose text changed in this run (see `article_versions`)"
    ),
    RunCounter(
        "duplicates",
        "process",
        "new articles that joined a story already stored (their `cluster_id` is another article's id)",
    ),
)


def names(step: Step | None = None, counters: tuple[RunCounter, ...] = RUN_COUNTERS) -> tuple[str, ...]:
    """Column names of the counters (of one step, when given), in definition order."""
    return tuple(c.name for c in counters if step is None or c.step == step)


RUN = names()
CRAWL = names("crawl")  # the counts of a crawl report that pipeline_runs adds up
PROCESS = names("process")  # added to pipeline_runs in each processed batch's transaction
SOURCE_CRAWL = names("crawl", SOURCE_COUNTERS)  # written to source_runs with the source's crawl
ERRORS_SQL = " + ".join(c.name for c in RUN_COUNTERS if c.error)  # a run's errors, as an SQL expression

# Fixed column names only (never user input) go into these statements.
ADD_PROCESS_COUNTS = (
    "UPDATE pipeline_runs SET "  # noqa: S608
    + ", ".join(f"{name} = {name} + %({name})s" for name in PROCESS)
    + " WHERE run_id = %(run_id)s"
)
SELECT_PROCESS_COUNTS = f"SELECT {', '.join(PROCESS)} FROM pipeline_runs WHERE run_id = %s"  # noqa: S608
SET_RUN_COUNTS = ", ".join(f"{name} = %({name})s" for name in RUN)


def errors(run: dict) -> int:
    """A pipeline_runs row's errors: failed sources, failed fetches, pages without text."""
    return sum(int(run[c.name]) for c in RUN_COUNTERS if c.error)


def summary(run: dict) -> dict[str, int]:
    """The run summary's counters, by their summary keys, from a pipeline_runs row."""
    return {c.summary: run[c.name] for c in RUN_COUNTERS if c.summary}
