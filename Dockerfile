# newsdedup's Airflow image: the official Airflow 3.3.2 image plus the project's extra packages (not
# _PIP_ADDITIONAL_REQUIREMENTS, which Airflow's docs reserve for quick checks) and the project's code, so
# Celery or Kubernetes workers on other machines run the same DAGs without bind mounts.
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt /tmp/requirements.txt
# Airflow and its providers come with the image: install the other pins, holding Airflow at its version.
RUN grep -vE '^(apache-airflow|#|\s)' /tmp/requirements.txt > /tmp/extra.txt \
 && pip install --no-cache-dir "apache-airflow==3.3.2" -r /tmp/extra.txt \
 && rm /tmp/requirements.txt /tmp/extra.txt

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 sql/ /opt/airflow/sql/
COPY --chown=airflow:0 config/ /opt/airflow/config/

ENV PYTHONPATH=/opt/airflow/plugins \
    NEWSDEDUP_SQL_DIR=/opt/airflow/sql \
    NEWSDEDUP_SOURCES=/opt/airflow/config/sources.yaml
