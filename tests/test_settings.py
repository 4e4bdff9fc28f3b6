"""The settings model: bounds, unknown variables, one-line errors, and README's table kept equal to it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from annotated_types import Ge, Gt, Le
from newsdedup import retention, run_report, settings
from newsdedup.config import ConfigError, Settings
from newsdedup.fetch import FetchPolicy
from newsdedup.process import ProcessSettings
from newsdedup.retention import Retention

REPO = Path(__file__).resolve().parents[1]
VARIABLE = re.compile(r"\bNEWSDEDUP_[A-Z0-9_]*[A-Z0-9]")
NUMERIC = [name for name, field in settings.FIELDS.items() if field.annotation in (int, float, int | None)]


def bounds(name: str) -> tuple[float, float]:
    """A numeric field's smallest (or open lower bound) and largest value."""
    metadata = settings.FIELDS[name].metadata
    low = next(m.ge if isinstance(m, Ge) else m.gt for m in metadata if isinstance(m, Ge | Gt))
    return low, next(m.le for m in metadata if isinstance(m, Le))


def refused(env: dict[str, str]) -> str:
    """The message of the ConfigError that load() raises for env."""
    with pytest.raises(ConfigError) as info:
        settings.load(env)
    return str(info.value)


def test_negative_retention_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_RETAIN_CRAWL_LOG_DAYS", "-5")
    with pytest.raises(ConfigError) as info:
        Retention.from_env()
    assert str(info.value) == (
        "NEWSDEDUP_RETAIN_CRAWL_LOG_DAYS: must be >= 1, got '-5'; allowed: a whole number from 1 to 3650"
    )
    with pytest.raises(ValueError, match="negative"):  # the DELETE itself refuses too, before connecting
        retention.purge_crawl_log("postgresql://nobody@127.0.0.1:9/none", -1)


def test_settings_reach_their_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"RETAIN_RAW_PAGES_DAYS": "0", "RETAIN_CRAWL_LOG_DAYS": "30", "STALE_HOURS": "6",
                        "FAIL_AFTER_RUNS": "5", "BATCH_SIZE": "7", "WORKERS": "2", "PAGE_TIMEOUT": "9"}.items():
        monkeypatch.setenv(f"NEWSDEDUP_{name}", value)
    assert Retention.from_env() == Retention(raw_pages_days=0, crawl_log_days=30, stale_hours=6)
    assert run_report.fail_after_runs() == 5
    process = ProcessSettings.from_env()
    assert (process.batch_size, process.workers, process.page_timeout) == (7, 2, 9)


def test_defaults_are_the_models() -> None:
    assert settings.load({}) == settings.DEFAULTS
    assert FetchPolicy.from_env({}) == FetchPolicy()
    assert Retention() == Retention(raw_pages_days=7, crawl_log_days=90, stale_hours=24)
    assert ProcessSettings().batch_size == settings.DEFAULTS.batch_size


@pytest.mark.parametrize("name", NUMERIC)
def test_every_number_is_bounded_at_both_ends(name: str) -> None:
    low, high = bounds(name)
    whole = settings.FIELDS[name].annotation is not float
    step = 1 if whole else 0.5
    var = settings.variable(name)
    assert getattr(settings.load({var: str(high)}), name) == high
    for bad in (low - step, high + step):
        message = refused({var: str(bad)})
        assert message.startswith(f"{var}: must be ") and f"got '{bad}'" in message
        assert f"allowed: {settings.allowed(name)}" in message and "\n" not in message
    assert refused({var: "many"}).startswith(f"{var}: expected a {'whole ' if whole else ''}number")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"NEWSDEDUP_BATCHSIZE": "3"}, "NEWSDEDUP_BATCHSIZE is not a newsdedup setting: did you mean NEWSDEDUP_BATCH_"),
        ({"NEWSDEDUP_TIMEOUT": "3", "NEWSDEDUP_ZZ": "1"}, "also unknown: NEWSDEDUP_ZZ"),
        ({"NEWSDEDUP_DB_URL": "mysql://x:Sekr3t@y/z"}, "NEWSDEDUP_DB_URL: the value is not a libpq URL"),
        ({"NEWSDEDUP_FETCH_TIMEOUT": "nan"}, "NEWSDEDUP_FETCH_TIMEOUT: expected a finite number, got 'nan'"),
        ({"NEWSDEDUP_USER_AGENT": "bot/1"}, "NEWSDEDUP_USER_AGENT: 'bot/1': an honest user agent"),
        ({"NEWSDEDUP_ALLOW_NETWORKS": "10.0.0.0/8, 10.0.0.0/33"}, "NEWSDEDUP_ALLOW_NETWORKS: invalid network"),
    ],
)
def test_bad_or_unknown_variables_fail_in_one_line(env: dict[str, str], expected: str) -> None:
    message = refused(env)
    assert expected in message and "\n" not in message
    assert "Sekr3t" not in message  # a database URL is never echoed


def test_two_bad_values_share_one_line() -> None:
    message = refused({"NEWSDEDUP_WORKERS": "0", "NEWSDEDUP_BATCH_SIZE": "x"})
    assert "NEWSDEDUP_WORKERS: must be >= 1" in message and "NEWSDEDUP_BATCH_SIZE: expected a whole number" in message
    assert "\n" not in message


def test_script_variables_are_known_and_empty_values_mean_the_default() -> None:
    env = dict.fromkeys(settings.SCRIPT_VARIABLES, "x") | {"NEWSDEDUP_MIN_HOST_DELAY": " ", "NEWSDEDUP_WORKERS": ""}
    assert settings.load(env) == settings.DEFAULTS
    assert settings.load({"NEWSDEDUP_ALLOW_NETWORKS": " 127.0.0.0/8, ::1 ,"}).allow_networks == ("127.0.0.0/8", "::1")


def test_settings_from_env_checks_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDEDUP_DB_URL", "postgresql://u@127.0.0.1:9/db")
    monkeypatch.setenv("NEWSDEDUP_SOURCES", "/tmp/s.yaml")
    assert Settings.from_env() == Settings(db_url="postgresql://u@127.0.0.1:9/db", sources_path=Path("/tmp/s.yaml"))
    monkeypatch.setenv("NEWSDEDUP_STALE_HOUR", "3")
    with pytest.raises(ConfigError, match="NEWSDEDUP_STALE_HOUR is not a newsdedup setting"):
        Settings.from_env(require_db=False)


def test_cli_stops_at_start_with_one_line(tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text("sources:\n  - {name: a, url: 'https://a.example/rss', kind: rss}\n", encoding="utf-8")
    env = {"PYTHONPATH": str(REPO / "plugins"), "PATH": os.environ["PATH"], "NEWSDEDUP_SOURCES": str(sources)}
    done = subprocess.run([sys.executable, "-m", "newsdedup", "sources", "check"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for bad in ({"NEWSDEDUP_RETAIN_CRAWL_LOG_DAYS": "-1"}, {"NEWSDEDUP_RETRIES_": "1"}):
        done = subprocess.run([sys.executable, "-m", "newsdedup", "sources", "check"], env=env | bad,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"newsdedup: error: {next(iter(bad))}"), done.stderr


def readme_configuration() -> str:
    """README's generated part of the Configuration section: the table and the script variables."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return section[section.index("| variable |"):].rstrip("\n") + "\n"


def test_readme_table_is_the_model() -> None:
    table = readme_configuration()
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `(NEWSDEDUP_\w+)` \| ([^|]+) \|", table, re.MULTILINE)}
    assert set(rows) == {settings.variable(name) for name in settings.FIELDS}
    assert rows["NEWSDEDUP_RETAIN_CRAWL_LOG_DAYS"] == "`90`" and rows["NEWSDEDUP_MAX_CONNECTIONS"] == "`8`"
    assert table == settings.readme_table(), "regenerate it: PYTHONPATH=plugins python -m newsdedup.settings"


def test_every_variable_in_the_repository_is_known() -> None:
    files = [*REPO.glob("plugins/**/*.py"), *REPO.glob("dags/*.py"), *REPO.glob("scripts/*"), *REPO.glob("demo/*.py"),
             *REPO.glob("bench/*.py"), *REPO.glob("tests/*.py"), REPO / "docker-compose.yml", REPO / "Dockerfile"]
    found: dict[str, set[str]] = {}
    for path in files:
        if path.is_file() and path.name != Path(__file__).name:
            for var in VARIABLE.findall(path.read_text(encoding="utf-8", errors="replace")):
                found.setdefault(var, set()).add(str(path.relative_to(REPO)))
    model = {settings.variable(name) for name in settings.FIELDS}
    assert {v: p for v, p in found.items() if v not in model | set(settings.SCRIPT_VARIABLES)} == {}
    library = {v for v, paths in found.items() for p in paths - {"plugins/newsdedup/settings.py"}
               if p.startswith(("plugins/", "dags/"))}
    assert library <= model, "the library reads only settings of the model"
