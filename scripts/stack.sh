#!/usr/bin/env bash
# make up / down / status: the local newsdedup stack without Docker.
#   up      private PostgreSQL (articles DB "newsdedup", Airflow metadata DB "airflow"), migrations, the
#           admin login, the four Airflow 3.3 components (api-server, scheduler, dag-processor, triggerer;
#           LocalExecutor) on 127.0.0.1, and the demo news site when no real sources are configured;
#           then news_ingest is unpaused and one run started. Running it again starts nothing twice.
#           NEWSDEDUP_EXECUTOR=celery (make up EXECUTOR=celery WORKERS=N): the CeleryExecutor instead, with a
#           private Redis as broker (scripts/redis.sh), the result backend in the "airflow" database and
#           NEWSDEDUP_CELERY_WORKERS (2) `airflow celery worker` processes worker1..N, NEWSDEDUP_CELERY_CONCURRENCY
#           (2) task slots each; each records its tasks' hostname as <host>-workerN (newsdedup.worker_name).
#   down    stops exactly what `up` started, by the PID files it wrote (and PostgreSQL if `up` started it).
#   status  what runs, where, and the latest runs.
#   env     the environment the components get (for tests and for comparing with docker-compose.yml).
# Settings: NEWSDEDUP_API_PORT (8080), AIRFLOW_HOME (.airflow), NEWSDEDUP_STACK_DIR ($AIRFLOW_HOME/stack),
# NEWSDEDUP_PGHOME (see scripts/pg.sh), NEWSDEDUP_SOURCES (else config/sources.yaml if it enables a source,
# else the demo site), NEWSDEDUP_STACK_DEMO=1 (the demo site whatever is configured).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH=$repo/.venv/bin:$PATH
PY=$repo/.venv/bin/python

export AIRFLOW_HOME=${AIRFLOW_HOME:-$repo/.airflow}
state=${NEWSDEDUP_STACK_DIR:-$AIRFLOW_HOME/stack}
api_port=${NEWSDEDUP_API_PORT:-8080}
components=(api-server scheduler dag-processor triggerer)
executor=${NEWSDEDUP_EXECUTOR:-local}
workers=${NEWSDEDUP_CELERY_WORKERS:-2}
case $executor in
  local | celery) ;;
  *) echo "NEWSDEDUP_EXECUTOR (make up EXECUTOR=...): local or celery, not '$executor'" >&2; exit 2 ;;
esac
[[ $workers =~ ^[1-9][0-9]?$ ]] \
  || { echo "NEWSDEDUP_CELERY_WORKERS (make up WORKERS=...): 1 to 99, not '$workers'" >&2; exit 2; }
dags=(news_ingest news_maintenance)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Airflow and newsdedup settings shared by every component (see also scripts/airflow_env.sh).
stack_env() {
  PG_PORT=$1
  source "$repo/scripts/airflow_env.sh"
  export AIRFLOW__API__HOST=127.0.0.1
  export AIRFLOW__API__PORT=$api_port
  export AIRFLOW__API__WORKERS=1
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$api_port/execution/
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$state/passwords.json
  export AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False
  export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=1
  if [ "$executor" = celery ]; then celery_env; fi
}

# The CeleryExecutor's settings (every component, workers included, needs them): the broker is the private
# Redis (its URL without the password while it is not running), results go to Airflow's metadata database.
celery_env() {
  export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
  AIRFLOW__CELERY__BROKER_URL=$(redis url 2>/dev/null || echo redis://127.0.0.1:6379/0)
  export AIRFLOW__CELERY__BROKER_URL
  export AIRFLOW__CELERY__RESULT_BACKEND=db+${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN/+psycopg2/}
  export AIRFLOW__CELERY__WORKER_CONCURRENCY=${NEWSDEDUP_CELERY_CONCURRENCY:-2}
}

worker_names() {
  if [ "$executor" = celery ]; then seq -f 'worker%g' "$workers"; fi
}

# The workers a running stack has, by their PID files (whatever WORKERS says now).
running_workers() {
  local file
  for file in "$state"/worker*.pid; do
    if [ -e "$file" ]; then basename "$file" .pid; fi
  done
}

redis() { NEWSDEDUP_REDIS_STATE=$state/redis scripts/redis.sh "$@"; }

# One Celery worker: its own Celery node name and its own TaskInstance hostname; no log server (it would
# bind every interface; the API server reads task logs from the shared log folder).
start_worker() {
  start_component "$1" env STACK_WORKER_NAME="$1" \
    AIRFLOW__CORE__HOSTNAME_CALLABLE=newsdedup.worker_name.worker_hostname \
    airflow celery worker --celery-hostname "$1@%h" --concurrency "$AIRFLOW__CELERY__WORKER_CONCURRENCY" \
    --skip-serve-logs
}

# Wait until every worker logged that it is ready (connected to Redis, consuming its queue).
wait_workers() {
  local name
  for name in "$@"; do
    for _ in $(seq 240); do grep -q "$name@[^ ]* ready\." "$state/logs/$name.log" 2>/dev/null && break; sleep 0.5; done
    grep -q "$name@[^ ]* ready\." "$state/logs/$name.log" 2>/dev/null \
      || { tail -n 20 "$state/logs/$name.log" >&2; echo "$name did not become ready in 120 s" >&2; exit 1; }
  done
  echo "workers ready: $*"
}

# Which sources the DAG crawls: NEWSDEDUP_SOURCES, else config/sources.yaml when it enables a source,
# else the demo site's (written when the site starts). Sets sources_mode.
choose_sources() {
  if [ "${NEWSDEDUP_STACK_DEMO:-0}" = 1 ]; then
    unset NEWSDEDUP_SOURCES
    use_demo_sources "demo site (NEWSDEDUP_STACK_DEMO=1)"
  elif [ -n "${NEWSDEDUP_SOURCES:-}" ]; then
    sources_mode="given ($NEWSDEDUP_SOURCES)"
  elif [ "$($PY -c 'from newsdedup.sources import load_sources; from pathlib import Path
print(sum(s.enabled for s in load_sources(Path("config/sources.yaml"))))' 2>/dev/null || echo 0)" -gt 0 ]; then
    export NEWSDEDUP_SOURCES=$repo/config/sources.yaml
    sources_mode="config/sources.yaml"
  else
    use_demo_sources "demo site (config/sources.yaml enables no source)"
  fi
}

use_demo_sources() {
  export NEWSDEDUP_SOURCES=$state/demo-sources.yaml
  # The demo site is on this machine: lift the address guard for loopback, no politeness delay.
  export NEWSDEDUP_ALLOW_NETWORKS=127.0.0.0/8
  export NEWSDEDUP_MIN_HOST_DELAY=0
  sources_mode=$1
}

# PID files hold "pid starttime": a recycled PID is never mistaken for ours.
# Field 22 of /proc/PID/stat, counted after the command name (which may contain spaces and parentheses).
starttime() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
alive() {
  local file=$state/$1.pid pid start
  [ -f "$file" ] || return 1
  read -r pid start < "$file"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(starttime "$pid")" = "$start" ]
}
pid_of() { cut -d' ' -f1 "$state/$1.pid"; }

# Start a command in its own session (so `down` can stop it with its children), log to $state/logs.
start_component() {
  local name=$1; shift
  if alive "$name"; then echo "$name already running (pid $(pid_of "$name"))"; return; fi
  setsid "$@" > "$state/logs/$name.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid $(starttime "$pid")" > "$state/$name.pid"
  echo "$name started (pid $pid, log $state/logs/$name.log)"
}

# Stop components: SIGTERM to each one's process group at once, then wait; SIGKILL what is left after 30 s.
stop_components() {
  local name pid stopping=()
  for name in "$@"; do
    if alive "$name" && [[ $name == worker* ]]; then
      # Warm shutdown: the worker waits for its running tasks (each in a process group of its own).
      kill -TERM "$(pid_of "$name")" 2>/dev/null || true
      stopping+=("$name")
    elif alive "$name"; then
      kill -TERM -- "-$(pid_of "$name")" 2>/dev/null || kill -TERM "$(pid_of "$name")" 2>/dev/null || true
      stopping+=("$name")
    else
      rm -f "$state/$name.pid"
    fi
  done
  for name in "${stopping[@]}"; do
    pid=$(pid_of "$name")
    for _ in $(seq 60); do alive "$name" || break; sleep 0.5; done
    if alive "$name"; then
      echo "$name (pid $pid) did not stop in 30 s: killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$state/$name.pid"
    echo "$name stopped (pid $pid)"
  done
}

port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

admin_password() {
  local file=$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE
  if [ -s "$file" ]; then
    echo "login: admin, password in $file"
    return
  fi
  local password
  password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
  (umask 077; printf '{"admin": "%s"}\n' "$password" > "$file")
  chmod 600 "$file"
  echo "login: admin / $password   (shown once; kept in $file, readable only by you)"
}

up() {
  local started_at
  started_at=$(date -u +%Y-%m-%dT%H:%M:%S)
  mkdir -p "$state/logs"
  chmod 700 "$state"
  say "PostgreSQL"
  if ! scripts/pg.sh status >/dev/null 2>&1; then
    scripts/pg.sh start
    touch "$state/pg.started"
  else
    scripts/pg.sh status
  fi
  local pg_port
  pg_port=$(scripts/pg.sh port)
  scripts/pg.sh url newsdedup >/dev/null
  scripts/pg.sh url airflow >/dev/null
  if alive scheduler && [ "$(cat "$state/executor" 2>/dev/null || echo local)" != "$executor" ]; then
    echo "the stack runs with the $(cat "$state/executor" 2>/dev/null || echo local) executor: make down first" >&2
    exit 1
  fi
  if [ "$executor" = celery ]; then
    say "Redis (Celery broker)"
    redis start
  fi
  stack_env "$pg_port"
  choose_sources

  local name missing=0
  for name in "${components[@]}" $(worker_names); do alive "$name" || missing=1; done
  if [ "$missing" = 0 ]; then
    say "Airflow is already running"
    status || true
    return
  fi
  if ! alive api-server && ! port_free "$api_port"; then
    echo "port 127.0.0.1:$api_port is taken by another program: set NEWSDEDUP_API_PORT" >&2
    exit 1
  fi

  if [ "$NEWSDEDUP_SOURCES" = "$state/demo-sources.yaml" ]; then
    say "Demo news site"
    # Same port every time: article URLs (and so canonical URLs) stay the same, a restart adds nothing.
    [ -s "$state/site-port" ] || python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' > "$state/site-port"
    if ! alive demo-site; then rm -f "$state/site-port.ready"; fi
    start_component demo-site "$PY" demo/site.py --port "$(cat "$state/site-port")" \
      --sources-out "$state/demo-sources.yaml" --port-file "$state/site-port.ready"
    for _ in $(seq 100); do [ -s "$state/site-port.ready" ] && break; sleep 0.1; done
    [ -s "$state/site-port.ready" ] || { tail -n 5 "$state/logs/demo-site.log" >&2; echo "demo site did not start (port $(cat "$state/site-port") taken? rm $state/site-port)" >&2; exit 1; }
    echo "demo site on http://127.0.0.1:$(cat "$state/site-port")/"
  fi
  echo "sources: $sources_mode"

  say "Schema and Airflow metadata"
  newsdedup db migrate
  airflow db migrate > "$state/logs/db-migrate.log" 2>&1 || { tail -n 30 "$state/logs/db-migrate.log" >&2; exit 1; }
  echo "Airflow metadata in postgresql://postgres@127.0.0.1:$pg_port/airflow"
  admin_password

  say "Airflow 3.3 ($AIRFLOW__CORE__EXECUTOR, parallelism $AIRFLOW__CORE__PARALLELISM)"
  (umask 077; env | grep -E '^(AIRFLOW|NEWSDEDUP|PYTHONPATH|PG_PORT)' | sort > "$state/env")
  chmod 600 "$state/env"  # passwords of PostgreSQL and Redis
  echo "$executor" > "$state/executor"
  start_component api-server airflow api-server
  start_component dag-processor airflow dag-processor
  start_component triggerer airflow triggerer --skip-serve-logs
  for name in $(worker_names); do start_worker "$name"; done
  # Tasks report to the API server's execution API: schedule nothing before it answers.
  "$PY" scripts/stack_api.py wait-health --timeout 180 || { tail -n 20 "$state/logs/api-server.log" >&2; exit 1; }
  if [ "$executor" = celery ]; then wait_workers $(worker_names); fi
  start_component scheduler airflow scheduler --skip-serve-logs
  "$PY" scripts/stack_api.py wait-dag "${dags[@]}" --timeout 180
  "$PY" scripts/stack_api.py kickoff news_ingest --since "$started_at"
  cat <<MSG

Airflow UI:   http://127.0.0.1:$api_port/   (DAG news_ingest; dashboard: "newsdedup" in the menu)
Dashboard:    http://127.0.0.1:$api_port/newsdedup/
Articles DB:  psql $NEWSDEDUP_DB_URL
Status:       make status        Stop: make down
MSG
}

down() {
  local any=0
  for name in triggerer dag-processor scheduler api-server demo-site $(running_workers); do
    if [ -f "$state/$name.pid" ]; then any=1; fi
  done
  # The scheduler first (it queues, or with the LocalExecutor runs, the tasks), then Celery workers, then the rest.
  stop_components scheduler
  stop_components $(running_workers)
  stop_components triggerer dag-processor api-server demo-site
  if [ -s "$state/redis/port" ]; then
    redis stop
    any=1
  fi
  rm -f "$state/executor"
  if [ -f "$state/pg.started" ]; then
    scripts/pg.sh stop
    rm -f "$state/pg.started"
    any=1
  fi
  [ "$any" = 1 ] || echo "nothing to stop (no PID files in $state)"
}

status() {
  local all=0 name
  echo "stack state: $state"
  echo "executor: $(cat "$state/executor" 2>/dev/null || echo "$executor (not started)")"
  for name in "${components[@]}" $(running_workers) demo-site; do
    if alive "$name"; then
      printf '  %-14s running (pid %s)\n' "$name" "$(pid_of "$name")"
    elif [ "$name" != demo-site ]; then
      printf '  %-14s not running\n' "$name"
      all=1
    fi
  done
  if [ -s "$state/redis/port" ]; then
    printf '  %-14s %s\n' redis "$(redis status 2>&1 | sed 's/^Redis //')"
  fi
  if scripts/pg.sh status >/dev/null 2>&1; then
    echo "  postgresql     running on 127.0.0.1:$(scripts/pg.sh port)$([ -f "$state/pg.started" ] && echo ' (started by make up)')"
  else
    echo "  postgresql     not running"
    all=1
  fi
  if [ -f "$state/env" ]; then
    grep -E '^NEWSDEDUP_SOURCES=' "$state/env" | sed 's/^/  sources: /'
  fi
  if alive api-server; then
    echo "  Airflow UI:    http://127.0.0.1:$api_port/   dashboard: http://127.0.0.1:$api_port/newsdedup/"
    if [ -z "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-}" ]; then
      export AIRFLOW__API__PORT=$api_port AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$state/passwords.json
    fi
    "$PY" scripts/stack_api.py status "${dags[@]}" || true
  fi
  return $all
}

print_env() {
  local pg_port
  pg_port=$(scripts/pg.sh port 2>/dev/null || echo 5432)
  stack_env "$pg_port"
  choose_sources
  env | grep -E '^(AIRFLOW|NEWSDEDUP)' | sort
}

case "${1:-status}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
