#!/usr/bin/env bash
# make demo: private PostgreSQL, schema, demo news site on 127.0.0.1, one news_ingest run through
# Airflow (airflow dags test), then a summary and example queries.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
PY=$repo/.venv/bin/python
export PATH=$repo/.venv/bin:$PATH

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "PostgreSQL"
scripts/pg.sh start
PG_PORT=$(scripts/pg.sh port)
scripts/pg.sh url newsdedup >/dev/null
scripts/pg.sh url airflow >/dev/null
source scripts/airflow_env.sh

step "Schema"
newsdedup db migrate
# Analysts query as newsdedup_analyst (role newsdedup_reader: SELECT only). Its password stays in the
# cluster's 0600 password file: neither the screen nor psql's command line (seen by `ps`) holds a secret.
scripts/pg.sh reader-url newsdedup >/dev/null
PGPASSFILE=$(scripts/pg.sh passfile)
export PGPASSFILE
reader_url=postgresql://newsdedup_analyst@127.0.0.1:$PG_PORT/newsdedup

step "Demo news site"
mkdir -p .demo
rm -f .demo/port
# Same port on every run: article URLs (and so canonical URLs) stay the same, a rerun adds nothing.
[ -s .demo/site-port ] || python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' > .demo/site-port
$PY demo/site.py --port "$(cat .demo/site-port)" --sources-out .demo/sources.yaml --seed-url-file .demo/seed-url --port-file .demo/port > .demo/site.log 2>&1 &
site_pid=$!
trap 'kill $site_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s .demo/port ] && break; sleep 0.1; done
[ -s .demo/port ] || { cat .demo/site.log >&2; echo "demo site did not start (port $(cat .demo/site-port) taken? rm .demo/site-port)" >&2; exit 1; }
head -n 3 .demo/site.log
export NEWSDEDUP_SOURCES=$repo/.demo/sources.yaml
# The demo site is on this machine: lift the address guard for loopback, no politeness delay.
export NEWSDEDUP_ALLOW_NETWORKS=127.0.0.0/8
export NEWSDEDUP_MIN_HOST_DELAY=0

step "Airflow metadata database"
airflow db migrate > .demo/airflow-db-migrate.log 2>&1 || { tail -n 30 .demo/airflow-db-migrate.log >&2; exit 1; }
echo "airflow metadata in postgresql://postgres@127.0.0.1:$PG_PORT/airflow"

step "news_ingest through Airflow (airflow dags test)"
start=$(date +%s)
airflow dags test news_ingest > .demo/dags-test.log 2>&1 || { tail -n 40 .demo/dags-test.log >&2; exit 1; }
grep -E "Marking run .* successful|state=success" .demo/dags-test.log | tail -n 1 || true
echo "DAG run finished in $(( $(date +%s) - start )) s (log: .demo/dags-test.log)"

step "Summary"
newsdedup report
for query in sql/queries/latest_stories.sql sql/queries/stories_by_sources.sql sql/queries/why_duplicate.sql; do
  step "Example query: $query"
  sed -n '/^-- /p' "$query"
  psql -X -P pager=off "$reader_url" -f "$query"
done

step "The seed article: repeated segments removed"
psql -X -P pager=off "$reader_url" -v url="$(cat .demo/seed-url 2>/dev/null || true)" <<'SQL'
SELECT r.position, r.reason, round(r.similarity::numeric, 2) AS similarity, left(r.segment, 70) AS removed_segment
FROM removed_segments r JOIN articles a USING (article_id)
WHERE a.canonical_url = :'url' ORDER BY r.position;
SQL

cat <<MSG

Query (read-only):   PGPASSFILE=$PGPASSFILE psql $reader_url
More queries:        ls sql/queries/
Stop PostgreSQL:     scripts/pg.sh stop
MSG
