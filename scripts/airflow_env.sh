# Sourced by the demo and stack scripts: Airflow settings for this checkout, given PG_PORT.
# Airflow keeps its metadata in the database "airflow" of the same private PostgreSQL.
repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$repo/.airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$repo/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$repo/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=4
# The owner's URLs with their password (scripts/pg.sh url); without it when PostgreSQL is not running.
pg_url() { "$repo/scripts/pg.sh" url "$1" 2>/dev/null || echo "postgresql://postgres@127.0.0.1:$PG_PORT/$1"; }
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://$(pg_url airflow | cut -d/ -f3-)
export AIRFLOW__LOGGING__BASE_LOG_FOLDER=$AIRFLOW_HOME/logs
export AIRFLOW_CONN_NEWSDEDUP_DB=$(pg_url newsdedup)
export NEWSDEDUP_DB_URL=$AIRFLOW_CONN_NEWSDEDUP_DB
export PYTHONPATH=$repo/plugins${PYTHONPATH:+:$PYTHONPATH}
