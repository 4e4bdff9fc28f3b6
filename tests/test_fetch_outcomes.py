"""The outcome vocabulary of crawl_log and the one retry rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from newsdedup.outcomes import FetchResult, Outcome, failed, worth_retry

SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "schema.md"


def _outcome_row() -> str:
    """The crawl_log.outcome row of docs/schema.md."""
    section = SCHEMA.read_text(encoding="utf-8").split("## `crawl_log`", 1)[1].split("\n## ", 1)[0]
    return next(line for line in section.splitlines() if line.startswith("| `outcome` |"))


def test_documented_outcomes_are_the_enum() -> None:
    tables = set(re.findall(r"^## `([a-z_]+)`", SCHEMA.read_text(encoding="utf-8"), re.MULTILINE))
    # Every lower-case value named in the meaning column is an outcome, except the tables it refers to.
    values = _outcome_row().split("|")[3]
    named = set(re.findall(r"`([a-z_]+)`", values)) - tables
    assert named == {o.value for o in Outcome}


@pytest.mark.parametrize(
    ("outcome", "status", "error_class", "now", "later"),
    [
        (Outcome.HTTP_ERROR, 429, "HTTPError", True, True),
        (Outcome.HTTP_ERROR, 500, "HTTPError", True, True),
        (Outcome.HTTP_ERROR, 503, "HTTPError", True, True),
        (Outcome.HTTP_ERROR, 501, "HTTPError", False, False),  # Not Implemented: the same answer again
        (Outcome.HTTP_ERROR, 404, "HTTPError", False, False),
        (Outcome.HTTP_ERROR, 999, "HTTPError", False, False),
        (Outcome.HTTP_ERROR, 200, "ContentDecodingError", False, False),
        (Outcome.CONNECTION_ERROR, None, "ConnectionError", True, True),
        (Outcome.TIMEOUT, None, "ConnectTimeout", True, True),
        (Outcome.TIMEOUT, 200, "ReadTimeout", False, True),
        (Outcome.TIMEOUT, None, "TotalTimeout", False, True),
        (Outcome.CONNECTION_ERROR, None, "NameResolutionError", False, True),
        (Outcome.CONNECTION_ERROR, None, "SSLError", False, True),
        (Outcome.CONNECTION_ERROR, None, "ProtocolError", False, True),
        (Outcome.DEFERRED, None, "HostBackoff", False, True),
        (Outcome.DEFERRED, None, "OutOfTime", False, True),
        (Outcome.ROBOTS_DISALLOWED, None, "RobotsDisallowed", False, False),
        (Outcome.ADDRESS_REFUSED, None, "AddressRefused", False, False),
        (Outcome.TOO_LARGE, 200, "BodyTooLarge", False, False),
        (Outcome.REDIRECT_ERROR, None, "RedirectLoop", False, False),
        (Outcome.UNSUPPORTED_CONTENT_TYPE, 200, "UnsupportedContentType", False, False),
        (Outcome.INVALID_URL, None, "InvalidURL", False, False),
    ],
)
def test_retry_rule(outcome: Outcome, status: int | None, error_class: str, now: bool, later: bool) -> None:
    result = failed("https://n.example/a", "https://n.example/a", outcome, error_class, "x", status=status)
    assert (worth_retry(result), worth_retry(result, later=True)) == (now, later)


def test_failed_builds_a_result_that_is_not_ok() -> None:
    result = failed("https://n.example/a", "https://n.example/b", Outcome.TIMEOUT, "TotalTimeout", "slow", nbytes=7)
    assert result == FetchResult(
        url="https://n.example/a",
        final_url="https://n.example/b",
        outcome="timeout",
        nbytes=7,
        error_class="TotalTimeout",
        error_message="slow",
    )
    assert not result.ok


ROOT = Path(__file__).resolve().parents[1]
# `outcome = 'x'`, `outcome <> 'x'`, `outcome IN ('x', 'y')`, `outcome NOT IN (...)`: the quoted values.
_OUTCOME_LITERALS = re.compile(
    r"outcome\s*(?:=|<>|!=|(?:NOT\s+)?IN)\s*\(?\s*((?:'[^']*'\s*,?\s*)+)", re.IGNORECASE
)


def _outcome_literals(paths: list[Path], root: Path = ROOT) -> dict[str, set[str]]:
    """The outcome values spelt as SQL literals in each file."""
    found = {}
    for path in paths:
        values = {v for m in _OUTCOME_LITERALS.finditer(path.read_text(encoding="utf-8"))
                  for v in re.findall(r"'([^']*)'", m.group(1))}
        if values:
            found[str(path.relative_to(root))] = values
    return found


def test_outcome_literals_are_found(tmp_path: Path) -> None:
    sql = tmp_path / "q.sql"
    sql.write_text("WHERE c.outcome NOT IN ('ok', 'not_modified') AND x = 'y'\nSET outcome = 'gone'", encoding="utf-8")
    assert _outcome_literals([sql], tmp_path) == {"q.sql": {"ok", "not_modified", "gone"}}


def test_sql_outcome_literals_are_outcomes() -> None:
    known = {o.value for o in Outcome}
    found = _outcome_literals(sorted((ROOT / "sql").rglob("*.sql")))
    assert {path: values - known for path, values in found.items() if values - known} == {}


def test_code_spells_no_outcome_in_sql() -> None:
    """The library and DAGs pass outcomes from the enum as query parameters, never as literals."""
    code = sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "dags").rglob("*.py"))
    assert _outcome_literals(code) == {}
