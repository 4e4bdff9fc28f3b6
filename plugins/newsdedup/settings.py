"""Every NEWSDEDUP_* setting in one model: type, bounds, default and description, checked once at start.

`load()` reads the environment (or a given mapping) and refuses, in one line naming the variable and what
is allowed, a bad value or a NEWSDEDUP_* variable that is neither a setting nor one of SCRIPT_VARIABLES.
README's configuration table is `readme_table()` (tests/test_settings.py keeps the two equal).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

from annotated_types import Ge, Gt, Le
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from newsdedup.netguard import parse_networks

PREFIX = "NEWSDEDUP_"
DEFAULT_USER_AGENT = "newsdedup/0.1 (+https://github.com/newsdedup/newsdedup)"
_CONTACT = re.compile(r"https?://\S+|\S+@\S+\.\S+")
# Read only by scripts/, tests/, bench/ and demo/: allowed in the environment, never read by the library.
SCRIPT_VARIABLES = {
    "NEWSDEDUP_PGHOME": "scripts/pg.sh: the private PostgreSQL's home directory",
    "NEWSDEDUP_PGOPTS": "scripts/pg.sh: extra server options, e.g. fsync off for tests",
    "NEWSDEDUP_TEST_PG_URL": "tests: the server scripts/test.sh started",
    "NEWSDEDUP_SHARED_DIR": "tests, bench/ and demo/: where ../shared is",
    "NEWSDEDUP_BENCH_DB_URL": "bench/: a server to use instead of a private one",
    "NEWSDEDUP_BENCH_BASE_DB_URL": "bench/dedup_scale.py: an empty baseline database beside NEWSDEDUP_BENCH_DB_URL",
    "NEWSDEDUP_API_PORT": "scripts/stack.sh: the Airflow API server's port",
    "NEWSDEDUP_STACK_DIR": "scripts/stack.sh: the stack's state directory",
    "NEWSDEDUP_STACK_DEMO": "scripts/stack.sh: 1 crawls the demo site whatever is configured",
    "NEWSDEDUP_EXECUTOR": "scripts/stack.sh: local (LocalExecutor) or celery (CeleryExecutor, Redis, workers)",
    "NEWSDEDUP_CELERY_WORKERS": "scripts/stack.sh: how many Celery workers (2)",
    "NEWSDEDUP_CELERY_CONCURRENCY": "scripts/stack.sh: task slots per Celery worker (2)",
    "NEWSDEDUP_REDIS_STATE": "scripts/redis.sh: its state directory",
}


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names it and says how to fix it."""


class NewsdedupSettings(BaseSettings):
    """The library's settings; each field is the variable NEWSDEDUP_<FIELD NAME IN CAPITALS>."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", frozen=True)

    db_url: str = Field(
        "",
        description="libpq URL of the article database, `postgresql://user[:password]@host[:port]/dbname`; "
        "needed by the CLI commands that use it. In Airflow the database is the connection `newsdedup_db` "
        "(`AIRFLOW_CONN_NEWSDEDUP_DB`)",
        json_schema_extra={"shown": "none", "allowed": "a `postgresql://` URL with a database name"},
    )
    sources: Path = Field(
        Path("config/sources.yaml"),
        description="path of the sources YAML file",
        json_schema_extra={"allowed": "a path"},
    )
    sql_dir: Path = Field(
        Path(__file__).resolve().parents[2] / "sql",
        description="directory of the numbered SQL migrations",
        json_schema_extra={"shown": "`sql/` of this checkout", "allowed": "a path"},
    )
    allow_networks: tuple[str, ...] = Field(
        (),
        description="comma-separated CIDRs the crawler may reach although private or loopback (e.g. "
        "`127.0.0.0/8`); by default it refuses private, loopback, link-local, multicast and metadata addresses",
        json_schema_extra={"shown": "none", "allowed": "CIDRs or addresses, comma-separated"},
    )
    user_agent: str = Field(
        DEFAULT_USER_AGENT,
        description="the crawler's user agent; it must contain a contact URL or e-mail address",
        json_schema_extra={"allowed": "one line with a contact URL or e-mail address"},
    )
    min_host_delay: float = Field(
        1.0, ge=0, le=3600, allow_inf_nan=False,
        description="minimum seconds between two requests to one host name, all ports and sources together",
    )
    max_connections: int = Field(
        8, ge=1, le=256, description="requests in flight at once in one process, all sources together"
    )
    fetch_timeout: float = Field(
        30.0, gt=0, le=3600, allow_inf_nan=False,
        description="seconds one request may take from connecting to the last byte, slow senders included",
    )
    max_page_bytes: int = Field(
        10 * 1024 * 1024, ge=1, le=1024**3,
        description="largest response body read, in bytes (twice that after decompression)",
    )
    max_feed_entries: int = Field(
        10_000, ge=1, le=1_000_000,
        description="entries of one RSS, Atom or JSON feed that are read, newest first; a longer feed is "
        "recorded as `truncated` in `crawl_log`",
    )
    max_sitemap_urls: int = Field(
        50_000, ge=1, le=1_000_000,
        description="URLs of one sitemap file that are read, newest first (the sitemap protocol allows 50,000); "
        "a longer file is recorded as `truncated` in `crawl_log`",
    )
    max_xml_depth: int = Field(
        100, ge=8, le=250,
        description="deepest element nesting of a feed or sitemap; a deeper document is refused before it is "
        "parsed (`parse_error`, `TooDeep`)",
    )
    retries: int = Field(
        2, ge=0, le=10,
        description="extra attempts after a transient failure: connection refused or reset, connect timeout, "
        "429, 5xx except 501",
    )
    host_max_failures: int = Field(
        5, ge=1, le=100,
        description="timeouts or connection errors in a row after which a host (scheme, name and port) is left "
        "alone for the rest of the run: its remaining pages wait for the next run",
    )
    source_budget_seconds: int = Field(
        300, ge=1, le=3600,
        description="wall-clock seconds one source's crawl may take per run (feed and pages); no request starts "
        "after it, links not reached wait for the next run. The Airflow task `crawl_shard` starts no source "
        "after 30 minutes and is stopped that plus this plus two request timeouts plus a minute later",
    )
    crawl_shards: int = Field(
        4, ge=1, le=1024,
        description="crawl shards of a run (Airflow tasks `crawl_shard`): a source's shard is a hash of its host, "
        "so one host's sources share a shard and keep their shard as sources are added",
    )
    process_shards: int = Field(
        2, ge=1, le=64,
        description="processing tasks of a run (`process_shard`), each claiming disjoint batches of staged pages",
    )
    robots_ttl: float = Field(
        3600.0, ge=0, le=7 * 86400, allow_inf_nan=False,
        description="seconds a robots.txt copy is used before it is asked for again, conditionally",
    )
    batch_size: int = Field(100, ge=1, le=10_000, description="raw pages processed per database transaction")
    workers: int | None = Field(
        None, ge=1, le=256,
        description="extraction worker processes",
        json_schema_extra={"shown": "the cores this process may use"},
    )
    pool_min_pages: int = Field(
        200, ge=0, le=1_000_000,
        description="pages to process below which extraction stays in one process (starting workers costs more)",
    )
    page_timeout: int = Field(
        60, ge=1, le=3600, description="seconds one page may take in a worker before it is given up"
    )
    db_retry_seconds: int = Field(
        120, ge=0, le=86400,
        description="seconds a batch is retried after a transient database error (restart, deadlock)",
    )
    give_up_after: int = Field(
        3, ge=1, le=20,
        description="runs in which an article page is fetched and yields no text before its URL is given up: "
        "not fetched again, not making runs `partial` (see `page_failures` in docs/schema.md)",
    )
    give_up_retry_days: int = Field(
        7, ge=0, le=3650,
        description="days after which a given-up URL is tried once more, when its feed is next read (0: never)",
    )
    fail_after_runs: int = Field(
        3, ge=1, le=1000, description="failed runs in a row after which a source's Airflow task fails"
    )
    retain_raw_pages_days: int = Field(
        7, ge=0, le=3650,
        description="days processed raw pages are kept (0: deleted at the next maintenance; unprocessed ones stay)",
    )
    retain_crawl_log_days: int = Field(90, ge=1, le=3650, description="days `crawl_log` rows are kept")
    candidate_days: int = Field(
        30, ge=0, le=3650,
        description="days an article stays a dedup candidate, by `published_at` (else `fetched_at`); older ones "
        "leave the LSH band index at the next maintenance, their stories and decisions stay (0: never leave)",
    )
    stale_hours: int = Field(
        24, ge=1, le=8760,
        description="hours without a successful read after which an enabled source is reported as stale",
    )
    poll_floor_minutes: int = Field(
        15, ge=1, le=1440,
        description="shortest learned interval between two reads of a source (adaptive polling; a source's "
        "`poll_min` or `poll_every` overrides it)",
    )
    poll_ceiling_hours: int = Field(
        24, ge=1, le=720,
        description="longest learned interval between two reads of a source (a source's `poll_max` or "
        "`poll_every` overrides it); at least the floor",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what `load()` passes: it reads os.environ or a given mapping, once, the same way."""
        return (init_settings,)

    @field_validator("allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        """A comma-separated list; each entry must be a CIDR or an address."""
        if isinstance(value, str):
            value = tuple(entry.strip() for entry in value.split(",") if entry.strip())
        parse_networks(value)  # type: ignore[arg-type]
        return value

    @field_validator("user_agent")
    @classmethod
    def _honest_user_agent(cls, value: str) -> str:
        """One line that says how to reach the crawler's operator."""
        if any(ord(ch) < 0x20 for ch in value) or not _CONTACT.search(value):
            raise ValueError(
                f"{value!r}: an honest user agent names the crawler and how to reach its operator, "
                "e.g. 'newsdedup/0.1 (+https://example.org/crawler; ops@example.org)'"
            )
        return value

    @field_validator("db_url")
    @classmethod
    def _libpq_url(cls, value: str) -> str:
        """A postgresql:// URL with a database name; the value is never echoed (it may hold a password)."""
        parts = urlsplit(value)
        if value and (parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/")):
            raise ValueError("the value is not a libpq URL: expected postgresql://user[:password]@host[:port]/dbname")
        return value


FIELDS: dict[str, FieldInfo] = NewsdedupSettings.model_fields
DEFAULTS = NewsdedupSettings.model_construct()  # every default, the environment not read
_SETTING = "newsdedup_setting"  # dataclass field metadata: the setting a field is read from
T = TypeVar("T")


def setting(name: str, **options: Any) -> Any:
    """A dataclass field read from the setting `name`, whose default it takes (unless given a default_factory)."""
    if "default_factory" not in options:
        options["default"] = getattr(DEFAULTS, name)
    return dataclasses.field(metadata={_SETTING: name}, **options)


def configured(cls: type[T], env: NewsdedupSettings, **given: Any) -> T:
    """`cls` with each of its `setting()` fields from `env` (an unset one, None, keeps its default), then `given`."""
    values = {
        f.name: value
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if _SETTING in f.metadata and (value := getattr(env, f.metadata[_SETTING])) is not None
    }
    return cls(**(values | given))


class FromSettings:
    """A dataclass mixin: `from_env()` builds it with its `setting()` fields read from the environment."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The dataclass from the environment (or `environ`); ConfigError in one line on a bad setting."""
        return configured(cls, load(environ))


def variable(name: str) -> str:
    """The environment variable of a field."""
    return PREFIX + name.upper()


def load(environ: Mapping[str, str] | None = None) -> NewsdedupSettings:
    """Every setting from the environment (or `environ`); ConfigError in one line on a bad or unknown one."""
    env = os.environ if environ is None else environ
    _refuse_unknown(env)
    given = {name: raw for name in FIELDS if (raw := env.get(variable(name), "").strip())}
    try:
        return NewsdedupSettings(**given)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(error, given) for error in exc.errors())) from None


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """A NEWSDEDUP_* variable nobody reads is a typo or a leftover: say so rather than ignore it."""
    known = {variable(name) for name in FIELDS} | set(SCRIPT_VARIABLES)
    unknown = sorted(key for key in env if key.startswith(PREFIX) and key not in known)
    if unknown:
        guess = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"did you mean {guess[0]}? " if guess else ""
        raise ConfigError(
            f"{unknown[0]} is not a newsdedup setting: {hint}the settings are listed in README.md, Configuration"
            + (f" (also unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else "")
        )


def _describe(error: ErrorDetails, given: Mapping[str, str]) -> str:
    """One validation error as 'VARIABLE: problem, got value; allowed: ...'."""
    name = str(error["loc"][0])
    ctx = error.get("ctx", {})
    if error["type"] == "value_error":
        return f"{variable(name)}: {ctx['error']}"
    problems = {
        "int_parsing": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_parsing": "expected a number",
        "finite_number": "expected a finite number",
        "greater_than_equal": f"must be >= {ctx.get('ge')}",
        "greater_than": f"must be > {ctx.get('gt')}",
        "less_than_equal": f"must be <= {ctx.get('le')}",
    }
    problem = problems.get(error["type"], error["msg"])
    return f"{variable(name)}: {problem}, got {given.get(name, '')!r}; allowed: {allowed(name)}"


def allowed(name: str) -> str:
    """What a field accepts, in words."""
    field = FIELDS[name]
    if "allowed" in (field.json_schema_extra or {}):
        return str(field.json_schema_extra["allowed"])  # type: ignore[index]
    whole = field.annotation in (int, int | None)
    low = next((f"{m.ge}" for m in field.metadata if isinstance(m, Ge)), None)
    above = next((m.gt for m in field.metadata if isinstance(m, Gt)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    kind = "a whole number" if whole else "a number"
    if above is not None:
        return f"{kind} greater than {above} and at most {high}"
    return f"{kind} from {low} to {high}"


def _shown_default(name: str) -> str:
    """A field's default as README shows it."""
    field = FIELDS[name]
    shown = (field.json_schema_extra or {}).get("shown")  # type: ignore[union-attr]
    if shown is not None:
        return str(shown)
    value = field.default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def readme_table() -> str:
    """README's configuration table: one row per setting, then the script-only variables."""
    rows = ["| variable | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for name, field in FIELDS.items():
        rows.append(f"| `{variable(name)}` | {_shown_default(name)} | {allowed(name)} | {field.description} |")
    scripts = ", ".join(f"`{var}` ({what})" for var, what in SCRIPT_VARIABLES.items())
    return "\n".join(rows) + f"\n\nRead only by scripts and tests, allowed and ignored by the library: {scripts}.\n"


if __name__ == "__main__":
    print(readme_table(), end="")
