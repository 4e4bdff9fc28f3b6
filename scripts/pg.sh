#!/usr/bin/env bash
# Private PostgreSQL cluster for newsdedup, without Docker.
# Usage: scripts/pg.sh start|stop|status|port|url [DBNAME]|destroy
# The cluster lives under $NEWSDEDUP_PGHOME (default: /tmp/newsdedup-pg-<checkout hash>), which the
# postgres OS user can reach (a checkout under /root is not traversable by it).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
hash=$(printf '%s' "$repo" | cksum | cut -d' ' -f1)
home=${NEWSDEDUP_PGHOME:-/tmp/newsdedup-pg-$hash}
data=$home/data
portfile=$home/port
pgopts=${NEWSDEDUP_PGOPTS:-}

find_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir)
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  [ -x "$d/initdb" ] && { echo "$d"; return; }
  cat >&2 <<'MSG'
newsdedup: no PostgreSQL server binaries found (looked at pg_config --bindir, /usr/lib/postgresql/*/bin, PATH).
Install them, for example:
  Debian/Ubuntu:  sudo apt-get install -y postgresql
  Fedora:         sudo dnf install -y postgresql-server
  macOS:          brew install postgresql@15
or run the whole stack with Docker instead:  docker compose up
MSG
  exit 3
}

# The server refuses to run as root: run its commands as the postgres OS user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
  [ -f "$data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

bindir=$(find_bindir)
cmd=${1:-status}
case "$cmd" in
  start)
    mkdir -p "$home"
    chmod 755 "$home"
    [ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || as_pg true; chown postgres "$home"; }
    if running; then
      echo "PostgreSQL already running on 127.0.0.1:$(cat "$portfile") (data $data)"
      exit 0
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
      as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$home/initdb.log" 2>&1 \
        || { cat "$home/initdb.log" >&2; exit 1; }
    fi
    port=$(free_port)
    as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 $pgopts" start >/dev/null \
      || { tail -n 20 "$data/server.log" >&2; exit 1; }
    echo "$port" > "$portfile"
    echo "PostgreSQL started on 127.0.0.1:$port (data $data)"
    ;;
  stop)
    if running; then
      as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
      echo "PostgreSQL stopped (data $data)"
    else
      echo "PostgreSQL not running (data $data)"
    fi
    ;;
  status)
    if running; then echo "PostgreSQL running on 127.0.0.1:$(cat "$portfile") (data $data)"; else echo "PostgreSQL not running (data $data)"; exit 1; fi
    ;;
  url)
    running || { echo "PostgreSQL is not running: scripts/pg.sh start" >&2; exit 1; }
    db=${2:-newsdedup}
    as_pg "$bindir/psql" -h 127.0.0.1 -p "$(cat "$portfile")" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
      || as_pg "$bindir/createdb" -h 127.0.0.1 -p "$(cat "$portfile")" -U postgres "$db"
    echo "postgresql://postgres@127.0.0.1:$(cat "$portfile")/$db"
    ;;
  port)
    running || { echo "PostgreSQL is not running: scripts/pg.sh start" >&2; exit 1; }
    cat "$portfile"
    ;;
  destroy)
    "$0" stop >/dev/null || true
    rm -rf "$home"
    echo "removed $home"
    ;;
  *)
    echo "usage: $0 start|stop|status|port|url [DBNAME]|destroy" >&2; exit 2 ;;
esac
