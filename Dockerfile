# The Airflow image with newsdedup's extra packages (not _PIP_ADDITIONAL_REQUIREMENTS, which is for quick checks).
FROM apache/airflow:3.3.2-python3.11
COPY requirements.txt /tmp/requirements.txt
# Airflow itself is already in the image: install only the project's other pins.
RUN grep -vE '^(apache-airflow|#|\s)' /tmp/requirements.txt > /tmp/extra.txt \
 && pip install --no-cache-dir -r /tmp/extra.txt
