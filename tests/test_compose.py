"""docker-compose.yml without a Docker engine: valid against the Compose specification, and in step with the
local stack (scripts/stack.sh env), the Dockerfile and .env.example.

The Compose specification's JSON schema ships in PyPI's `docker-compose==1.29.2` wheel
(compose/config/compose_spec.json): `make venv` unpacks that wheel, without its dependencies, into
.venv/compose-spec, so the suite itself talks to nothing but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
SCHEMA_WHEEL = "docker-compose==1.29.2"
SCHEMA = REPO / ".venv" / "compose-spec" / "compose" / "config" / "compose_spec.json"
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
SECRETS = (
    "POSTGRES_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_SECRET_KEY",
    "AIRFLOW_JWT_SECRET",
)
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class MissingVariable(KeyError):
    """A ${VAR:?message} whose variable is unset or empty: docker compose refuses to start."""


def interpolate(value: object, env: dict[str, str]) -> object:
    """Resolve ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err} and $$ as docker compose does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        current = env.get(name)
        if op in (":-", ":?") and not current:
            current = None
        if current is not None:
            return current
        if op in ("?", ":?"):
            raise MissingVariable(f"{name}: {arg}")
        return arg if op in ("-", ":-") else ""

    return VARIABLE.sub(one, value)


def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def variables() -> dict[str, list[tuple[str | None, str]]]:
    """Every variable the compose file interpolates, with how (operator, argument) each time."""
    found: dict[str, list[tuple[str | None, str]]] = {}
    for match in VARIABLE.finditer(COMPOSE.read_text().replace("$$", "")):
        if match.group(0) != "$$":
            found.setdefault(match.group(1) or match.group(4), []).append((match.group(2), match.group(3) or ""))
    return found


def env_example() -> dict[str, str]:
    out = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def filled_env(**overrides: str) -> dict[str, str]:
    """.env.example with every secret filled in, as a user's .env would be."""
    return env_example() | {name: f"test-{name.lower()}" for name in SECRETS} | overrides


@pytest.fixture(scope="module")
def model() -> dict:
    return interpolate(raw(), filled_env())


@pytest.fixture(scope="module")
def common_env(model: dict) -> dict[str, str]:
    return model["services"]["airflow-scheduler"]["environment"]


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    """The Compose specification schema, as `make venv` unpacked it from the docker-compose 1.29.2 wheel."""
    if not SCHEMA.is_file():
        pytest.fail(f"{SCHEMA} is missing: run `make venv` (it unpacks {SCHEMA_WHEEL} there)")
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def test_compose_file_is_valid_against_the_compose_spec(compose_schema: dict, model: dict) -> None:
    import jsonschema

    # The schema says draft 2019-09 (as "http://json-schema.org/draft/2019-09/schema#", a URI jsonschema
    # does not recognise, so name the draft).
    assert "2019-09" in compose_schema["$schema"]
    validator = jsonschema.Draft201909Validator(compose_schema)
    errors = sorted(validator.iter_errors(model), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    # The schema really checks: a misspelt key is caught.
    broken = json.loads(json.dumps(model))
    broken["services"]["postgres"]["healthchek"] = broken["services"]["postgres"].pop("healthcheck")
    assert not validator.is_valid(broken)


def test_services_and_profiles(model: dict) -> None:
    services = model["services"]
    default = {name for name, s in services.items() if not s.get("profiles")}
    assert default == {"postgres", "airflow-init"} | AIRFLOW_SERVICES
    assert {name for name, s in services.items() if "celery" in s.get("profiles", [])} == {"redis", "airflow-worker"}
    for name in AIRFLOW_SERVICES | {"airflow-init", "airflow-worker"}:
        assert services[name]["image"] == "newsdedup-airflow:3.3.2" and services[name]["build"] == "."
    for name in AIRFLOW_SERVICES | {"airflow-worker"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"], name
        assert services[name]["restart"] == "always"
    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler --skip-serve-logs",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer --skip-serve-logs",
    }
    # A service of the default profile must not need one that only the celery profile starts.
    for name in default:
        assert not set(services[name].get("depends_on", {})) & {"redis", "airflow-worker"}, name


def test_celery_profile_switches_the_executor_and_scales(model: dict) -> None:
    worker = model["services"]["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert "container_name" not in worker and "ports" not in worker  # --scale airflow-worker=N works
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert model["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    celery = interpolate(raw(), filled_env(AIRFLOW_EXECUTOR="CeleryExecutor", REDIS_PASSWORD="r"))
    for name in AIRFLOW_SERVICES | {"airflow-worker"}:
        env = celery["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:r@redis:6379/0"
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://newsdedup:")


def test_ports_are_published_on_loopback_only(model: dict) -> None:
    published = {name: s.get("ports", []) for name, s in model["services"].items()}
    assert published["airflow-apiserver"] == ["127.0.0.1:8080:8080"]
    assert published["postgres"] == ["127.0.0.1:5432:5432"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_no_default_passwords() -> None:
    used = variables()
    for name, uses in used.items():
        if re.search(r"PASSWORD|SECRET|FERNET|_KEY$", name):
            for op, arg in uses:
                assert op in (None, ":?", "?") or arg == "", f"{name} has a default: {op}{arg}"
    for name in SECRETS:
        assert any(op == ":?" for op, _ in used[name]), f"{name} is not required"
        assert env_example()[name] == "", f".env.example sets {name}"
        with pytest.raises(MissingVariable, match=name):
            interpolate(raw(), filled_env(**{name: ""}))
    assert "airflow:airflow" not in COMPOSE.read_text()
    # Redis is optional (celery profile) but refuses to start without its password.
    assert "$${REDIS_PASSWORD:?" in COMPOSE.read_text()


def test_env_example_documents_every_variable() -> None:
    documented = set(env_example())
    assert set(variables()) <= documented, set(variables()) - documented


def stack_env(home: Path, **settings: str) -> dict[str, str]:
    """What scripts/stack.sh gives the Airflow components (`stack.sh env`: nothing is started)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSDEDUP_"))}
    env |= {"AIRFLOW_HOME": str(home / "airflow"), "NEWSDEDUP_PGHOME": str(home / "pg")} | settings
    done = subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "env"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return stack_env(tmp_path_factory.mktemp("stackenv"))


# Settings that differ by nature between a checkout and containers: paths (checked through the mounts below),
# the demo site's loopback exception, and the bind address (containers listen on all their interfaces).
LOCAL_ONLY = {
    "AIRFLOW_HOME",
    "NEWSDEDUP_ALLOW_NETWORKS",
    "NEWSDEDUP_MIN_HOST_DELAY",
    "NEWSDEDUP_PGHOME",
    "NEWSDEDUP_PGOPTS",
    "NEWSDEDUP_API_PORT",
    "NEWSDEDUP_STACK_DIR",
    "NEWSDEDUP_STACK_DEMO",
    "NEWSDEDUP_EXECUTOR",
    "NEWSDEDUP_CELERY_WORKERS",
    "NEWSDEDUP_CELERY_CONCURRENCY",
}
SAME_VALUE = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__PARALLELISM",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
    "AIRFLOW__CORE__LAZY_LOAD_PLUGINS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__WORKERS",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES",
)


def test_environment_agrees_with_the_local_stack(local_env: dict[str, str], common_env: dict[str, str]) -> None:
    missing = {k for k in local_env if k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "NEWSDEDUP_"))} - LOCAL_ONLY
    assert missing <= set(common_env), (
        f"set locally, missing in docker-compose.yml: {sorted(missing - set(common_env))}"
    )
    for key in SAME_VALUE:
        assert common_env[key] == local_env[key], key
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_CONN_NEWSDEDUP_DB"):
        local, docker = local_env[key], common_env[key]
        assert local.split("://")[0] == docker.split("://")[0], key  # same driver
        assert local.rsplit("/", 1)[1] == docker.rsplit("/", 1)[1], key  # same database
    assert common_env["NEWSDEDUP_DB_URL"] == common_env["AIRFLOW_CONN_NEWSDEDUP_DB"]
    assert local_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith(":8080/execution/")
    assert common_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert local_env["AIRFLOW__API__HOST"] == "127.0.0.1"


def test_celery_environment_agrees_with_make_up_executor_celery(tmp_path: Path) -> None:
    """`make up EXECUTOR=celery` and the celery profile: same executor, broker, result backend and slots."""
    local = stack_env(tmp_path, NEWSDEDUP_EXECUTOR="celery")
    celery = interpolate(raw(), filled_env(AIRFLOW_EXECUTOR="CeleryExecutor", REDIS_PASSWORD="r"))
    docker = celery["services"]["airflow-worker"]["environment"]
    missing = {k for k in local if k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "NEWSDEDUP_"))} - LOCAL_ONLY
    assert missing <= set(docker), f"set locally, missing in docker-compose.yml: {sorted(missing - set(docker))}"
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__WORKER_CONCURRENCY", "AIRFLOW__CORE__PARALLELISM"):
        assert local[key] == docker[key], key
    assert local["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for key, scheme in (("AIRFLOW__CELERY__BROKER_URL", "redis"), ("AIRFLOW__CELERY__RESULT_BACKEND", "db+postgresql")):
        assert local[key].split("://")[0] == docker[key].split("://")[0] == scheme, key
        assert local[key].rsplit("/", 1)[1] == docker[key].rsplit("/", 1)[1], key  # same Redis db / database
    # The default stack stays on the LocalExecutor and sets no Celery settings.
    assert not any(k.startswith("AIRFLOW__CELERY__") for k in stack_env(tmp_path / "local"))


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of a service's bind mounts (named volumes map to 'volume:NAME')."""
    out = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        out[target] = source if source.startswith(".") else f"volume:{source}"
    return out


def mounted_from(service: dict, container_path: str) -> tuple[str, PurePosixPath]:
    """The mount holding a container path and the path relative to it."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source, path.relative_to(target)
    raise AssertionError(f"{container_path} is on no mount")


def test_mounts_agree_with_the_local_stack(model: dict, local_env: dict[str, str], common_env: dict[str, str]) -> None:
    for name in AIRFLOW_SERVICES | {"airflow-init", "airflow-worker"}:
        service = model["services"][name]
        # The local stack reads dags/ and plugins/ of the checkout; the containers the same folders, mounted.
        for key in ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER"):
            local = Path(local_env[key]).relative_to(REPO)
            assert mounted_from(service, common_env[key]) == (f"./{local}", PurePosixPath(".")), (name, key)
        assert mounted_from(service, common_env["NEWSDEDUP_SQL_DIR"]) == ("./sql", PurePosixPath("."))
        assert mounted_from(service, common_env["NEWSDEDUP_SOURCES"]) == ("./config", PurePosixPath("sources.yaml"))
        assert mounted_from(service, common_env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])[0] == "./logs"
        passwords = common_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
        assert mounted_from(service, passwords)[0] == "volume:airflow-secrets"
        # The library is imported from plugins/, as scripts/airflow_env.sh does with PYTHONPATH.
        assert service["environment"]["PYTHONPATH"] == common_env["AIRFLOW__CORE__PLUGINS_FOLDER"]


def test_dockerfile_builds_the_pinned_airflow_with_the_same_layout(common_env: dict[str, str]) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", dockerfile, re.M)
    assert "apache-airflow==3.3.2\n" in (REPO / "requirements.txt").read_text()
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE.read_text()
    for folder, key in (("dags", "AIRFLOW__CORE__DAGS_FOLDER"), ("plugins", "AIRFLOW__CORE__PLUGINS_FOLDER")):
        assert f"COPY --chown=airflow:0 {folder}/ {common_env[key]}/" in dockerfile
    assert f"COPY --chown=airflow:0 sql/ {common_env['NEWSDEDUP_SQL_DIR']}/" in dockerfile
    assert f"NEWSDEDUP_SQL_DIR={common_env['NEWSDEDUP_SQL_DIR']}" in dockerfile
    assert f"PYTHONPATH={common_env['PYTHONPATH']}" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv/" in ignored and ".env" in ignored
