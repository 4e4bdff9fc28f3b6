#!/usr/bin/env bash
# make test: start a private PostgreSQL for the suite, run ruff and pytest, stop what was started.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH=$repo/.venv/bin:$PATH
# An unpredictable parent (mktemp, ours) that the server user may traverse; pg.sh makes the home in it.
parent=$(mktemp -d "${TMPDIR:-/tmp}/newsdedup-test.XXXXXXXX")
chmod 711 "$parent"
export NEWSDEDUP_PGHOME=$parent/pg
export NEWSDEDUP_PGOPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
trap 'scripts/pg.sh destroy >/dev/null 2>&1 || true; rm -rf "$parent"' EXIT
scripts/pg.sh start
NEWSDEDUP_TEST_PG_URL=$(scripts/pg.sh url postgres)
export NEWSDEDUP_TEST_PG_URL
ruff check .
python -m pytest "$@"
