# Sourced by scripts/pg.sh and scripts/redis.sh: how their servers are run and where they listen.

# PostgreSQL refuses to run as root, and Redis should not: as root, run their commands as the postgres OS
# user (created when missing); otherwise as the invoking user.
as_service_user() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
