#!/usr/bin/env bash
# Private Redis for the Celery executor (make up EXECUTOR=celery), without Docker: Debian's redis-server
# on 127.0.0.1 and a free port, with a random password, no persistence.
# Usage: scripts/redis.sh start|stop|status|url   (state in $NEWSDEDUP_REDIS_STATE, else .airflow/stack/redis)
#   url   the broker URL with its password (redis://:PASSWORD@127.0.0.1:PORT/0)
# The state directory (mode 700) keeps the password (mode 600), the port and where the server lives: a
# `mktemp -d` directory (mode 700) owned by the server's user, which holds its config (with the password,
# mode 600), log and PID file. As root the server runs as the postgres OS user, as scripts/pg.sh does;
# otherwise as you. Clients authenticate through REDISCLI_AUTH: the password never shows in `ps`.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/service_user.sh"
state=${NEWSDEDUP_REDIS_STATE:-${AIRFLOW_HOME:-$repo/.airflow}/stack/redis}
[ "$(id -u)" = 0 ] && server_user=postgres || server_user=$(id -un)

die() { echo "newsdedup: $*" >&2; exit 1; }

need_binaries() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return
  cat >&2 <<'MSG'
newsdedup: redis-server is not installed (the Celery executor's broker). Install it, for example:
  Debian/Ubuntu:  sudo apt-get install -y redis-server
  macOS:          brew install redis
MSG
  exit 3
}

cli() {
  REDISCLI_AUTH=$(cat "$state/password") redis-cli -h 127.0.0.1 -p "$(cat "$state/port")" "$@"
}

running() {
  [ -s "$state/port" ] && [ -s "$state/password" ] && [ "$(cli ping 2>/dev/null)" = PONG ]
}

start() {
  need_binaries
  mkdir -p "$state"
  chmod 700 "$state"
  if running; then
    echo "Redis already running on 127.0.0.1:$(cat "$state/port")"
    return
  fi
  if [ ! -s "$state/password" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(24))' > "$state/password")
  fi
  local home port
  home=$(mktemp -d "${TMPDIR:-/tmp}/newsdedup-redis.XXXXXXXX")
  port=$(free_port)
  (umask 077; cat > "$home/redis.conf" <<CONF
bind 127.0.0.1
protected-mode yes
port $port
requirepass $(cat "$state/password")
save ""
appendonly no
dir $home
daemonize yes
pidfile $home/redis.pid
logfile $home/redis.log
CONF
  )
  [ "$server_user" = "$(id -un)" ] || chown -R "$server_user" "$home"
  echo "$home" > "$state/home"
  echo "$port" > "$state/port"
  as_service_user redis-server "$home/redis.conf" || die "redis-server did not start (see $home/redis.log)"
  for _ in $(seq 50); do running && break; sleep 0.1; done
  running || { tail -n 5 "$home/redis.log" >&2; die "Redis did not answer on 127.0.0.1:$port"; }
  echo "Redis started on 127.0.0.1:$port (data $home, as $server_user)"
}

stop() {
  if running; then
    cli shutdown nosave >/dev/null 2>&1 || true
    for _ in $(seq 50); do running || break; sleep 0.1; done
    echo "Redis stopped (127.0.0.1:$(cat "$state/port"))"
  else
    echo "Redis not running"
  fi
  local home
  home=$(cat "$state/home" 2>/dev/null || true)
  case $home in */newsdedup-redis.*) rm -rf "$home" ;; esac
  rm -f "$state/home" "$state/port"
}

case "${1:-status}" in
  start) start ;;
  stop) stop ;;
  status)
    running || { echo "Redis not running"; exit 1; }
    echo "Redis running on 127.0.0.1:$(cat "$state/port")" ;;
  url)
    running || die "Redis is not running: scripts/redis.sh start"
    echo "redis://:$(cat "$state/password")@127.0.0.1:$(cat "$state/port")/0" ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
