#!/usr/bin/env bash
# Private PostgreSQL cluster for newsdedup, without Docker, that only its owner can use.
# Usage: scripts/pg.sh start|stop|status|port|url [DBNAME]|reader-url [DBNAME]|passfile|destroy
#   url         the owner's URL (superuser postgres, password included); creates the database if missing
#   reader-url  the analysts' URL (login newsdedup_analyst, member of newsdedup_reader: read-only);
#               needs the schema (`newsdedup db migrate`) in that database
#   passfile    a 0600 libpq password file for both logins: PGPASSFILE=$(scripts/pg.sh passfile) psql URL
#               (URLs without a password, nothing secret on screen)
# The cluster lives in a private home (mode 700, owned by the postgres OS user under root): $NEWSDEDUP_PGHOME,
# else a `mktemp -d` directory remembered in .pg-home (mode 600) of the checkout. A home that exists and is
# not ours (a symbolic link, another owner, group/world access) is refused, never chowned or chmoded.
# Authentication: peer on the socket (inside the data directory), SCRAM passwords on 127.0.0.1 only:
# another local user gets no access (see tests/test_pg_script.py).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/service_user.sh"
memo=$repo/.pg-home
pgopts=${NEWSDEDUP_PGOPTS:-}
analyst=newsdedup_analyst
me=$(id -un)
[ "$(id -u)" = 0 ] && server_user=postgres || server_user=$me

die() { echo "newsdedup: $*" >&2; exit 1; }

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

new_secret() {
  python3 -c 'import secrets; print(secrets.token_urlsafe(24))'
}

# Is $1 a home we made? A real directory (not a link) owned by us or the server user; with "strict", also
# no group/world access. stop/destroy accept an older home with a wider mode (never a foreign one).
check_home() {
  local path=$1 strict=${2:-strict} owner mode
  [ -L "$path" ] && die "refusing $path: it is a symbolic link, not a directory made by scripts/pg.sh (choose another NEWSDEDUP_PGHOME)"
  [ -d "$path" ] || die "refusing $path: it exists and is not a directory (choose another NEWSDEDUP_PGHOME)"
  owner=$(stat -c %U "$path")
  mode=$(stat -c %a "$path")
  [ "$owner" = "$me" ] || [ "$owner" = "$server_user" ] \
    || die "refusing $path: it belongs to $owner, not to $me or $server_user (choose another NEWSDEDUP_PGHOME)"
  if [ "$strict" = strict ] && [ "$mode" != 700 ]; then
    die "refusing $path: mode $mode, expected 700 (a home other users can enter is not private; choose another NEWSDEDUP_PGHOME)"
  fi
}

# Create NEWSDEDUP_PGHOME: its parent must not let others swap it (writable by others only if sticky).
make_home() {
  local path=$1 parent mode
  parent=$(dirname "$path")
  [ -d "$parent" ] && [ ! -L "$parent" ] || die "cannot create $path: $parent is not a directory"
  mode=$(stat -c %a "$parent")
  if [ $(( 8#$mode & 8#022 )) -ne 0 ] && [ $(( 8#$mode & 8#1000 )) -eq 0 ]; then
    die "refusing to create $path: $parent is writable by other users and not sticky"
  fi
  mkdir -m 700 "$path" || die "cannot create $path"  # no -p: fails if someone made it meanwhile
  own_home "$path"
}

# Hand a directory we just created (mode 700, so nobody else could have replaced it) to the server user.
own_home() {
  [ "$server_user" = "$me" ] || { as_service_user true; chown -h "$server_user" "$1"; }
}

# Sets $home: NEWSDEDUP_PGHOME, else the remembered one; "create" makes a new one where there is none.
resolve_home() {
  local create=${1:-} strict=${2:-strict}
  if [ -n "${NEWSDEDUP_PGHOME:-}" ]; then
    home=$NEWSDEDUP_PGHOME
    if [ -e "$home" ] || [ -L "$home" ]; then
      check_home "$home" "$strict"
    elif [ "$create" = create ]; then
      make_home "$home"
    fi
    return
  fi
  home=
  if [ -f "$memo" ] && [ ! -L "$memo" ]; then
    home=$(cat "$memo")
    if [ -e "$home" ] || [ -L "$home" ]; then
      check_home "$home" "$strict"
      return
    fi
  fi
  if [ "$create" = create ]; then
    home=$(mktemp -d "${TMPDIR:-/tmp}/newsdedup-pg.XXXXXXXX")
    own_home "$home"
    rm -f "$memo"
    (umask 077; echo "$home" > "$memo")
  fi
}

running() {
  [ -n "$home" ] && [ -f "$home/data/postmaster.pid" ] && as_service_user "$bindir/pg_ctl" -D "$home/data" status >/dev/null 2>&1
}

need_running() {
  running || die "PostgreSQL is not running: scripts/pg.sh start"
}

# The password of a login from the 0600 password file (127.0.0.1:*:*:user:password lines).
password_of() {
  awk -F: -v u="$1" '$4 == u { print $5; exit }' "$home/pgpass"
}

add_login() {
  (umask 077; printf '127.0.0.1:*:*:%s:%s\n' "$1" "$2" >> "$home/pgpass")
}

# psql as the superuser over TCP; SQL on stdin (never on the command line, where `ps` shows it).
admin_psql() {
  PGPASSFILE=$home/pgpass "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(cat "$home/port")" \
    -U postgres "$@"
}

ensure_db() {
  [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "database name '$1': letters, digits and _ only"
  if [ -z "$(echo "SELECT 1 FROM pg_database WHERE datname = '$1'" | admin_psql -d postgres -tA)" ]; then
    echo "CREATE DATABASE \"$1\"" | admin_psql -d postgres >/dev/null
  fi
}

init_cluster() {
  local secret pwfile=$home/initdb.pw
  secret=$(new_secret)
  rm -f "$home/pgpass"
  add_login postgres "$secret"
  # initdb (run as the server user) reads the password from a file of its own, removed right after.
  printf '%s\n' "$secret" | as_service_user sh -c 'umask 077; cat > "$1"' sh "$pwfile"
  as_service_user "$bindir/initdb" -D "$home/data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 >"$home/initdb.log" 2>&1 \
    || { rm -f "$pwfile"; cat "$home/initdb.log" >&2; exit 1; }
  rm -f "$pwfile"
}

bindir=$(find_bindir)
cmd=${1:-status}
case "$cmd" in
  start)
    resolve_home create
    if running; then
      echo "PostgreSQL already running on 127.0.0.1:$(cat "$home/port") (data $home/data)"
      exit 0
    fi
    [ -f "$home/data/PG_VERSION" ] || init_cluster
    [ -s "$home/pgpass" ] || die "$home/pgpass is missing: scripts/pg.sh destroy, then start again"
    port=$(free_port)
    as_service_user "$bindir/pg_ctl" -D "$home/data" -l "$home/data/server.log" -w -t 30 \
      -o "-p $port -k $home/data -c listen_addresses=127.0.0.1 $pgopts" start >/dev/null \
      || { tail -n 20 "$home/data/server.log" >&2; exit 1; }
    echo "$port" > "$home/port"
    echo "PostgreSQL started on 127.0.0.1:$port (data $home/data)"
    ;;
  stop)
    resolve_home "" lenient
    if running; then
      as_service_user "$bindir/pg_ctl" -D "$home/data" -m fast -w stop >/dev/null
      echo "PostgreSQL stopped (data $home/data)"
    else
      echo "PostgreSQL not running${home:+ (data $home/data)}"
    fi
    ;;
  status)
    resolve_home
    if running; then echo "PostgreSQL running on 127.0.0.1:$(cat "$home/port") (data $home/data)"
    else echo "PostgreSQL not running${home:+ (data $home/data)}"; exit 1; fi
    ;;
  url)
    resolve_home; need_running
    db=${2:-newsdedup}
    ensure_db "$db"
    echo "postgresql://postgres:$(password_of postgres)@127.0.0.1:$(cat "$home/port")/$db"
    ;;
  reader-url)
    resolve_home; need_running
    db=${2:-newsdedup}
    ensure_db "$db"
    [ -n "$(echo "SELECT 1 FROM pg_roles WHERE rolname = 'newsdedup_reader'" | admin_psql -d "$db" -tA)" ] \
      || die "no role newsdedup_reader yet: apply the schema first (newsdedup db migrate)"
    [ -n "$(password_of "$analyst")" ] || add_login "$analyst" "$(new_secret)"
    admin_psql -d "$db" >/dev/null <<SQL
SET client_min_messages = warning;
DO \$\$ BEGIN
  CREATE ROLE $analyst LOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END \$\$;
ALTER ROLE $analyst LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$(password_of "$analyst")';
GRANT newsdedup_reader TO $analyst;
SQL
    echo "postgresql://$analyst:$(password_of "$analyst")@127.0.0.1:$(cat "$home/port")/$db"
    ;;
  passfile)
    resolve_home
    [ -n "$home" ] && [ -s "$home/pgpass" ] || die "no cluster yet: scripts/pg.sh start"
    echo "$home/pgpass"
    ;;
  port)
    resolve_home; need_running
    cat "$home/port"
    ;;
  destroy)
    resolve_home "" lenient
    if [ -z "$home" ]; then echo "nothing to remove"; exit 0; fi
    running && as_service_user "$bindir/pg_ctl" -D "$home/data" -m fast -w stop >/dev/null
    rm -rf "$home"
    [ -z "${NEWSDEDUP_PGHOME:-}" ] && rm -f "$memo"
    echo "removed $home"
    ;;
  *)
    echo "usage: $0 start|stop|status|port|url [DBNAME]|reader-url [DBNAME]|passfile|destroy" >&2; exit 2 ;;
esac
