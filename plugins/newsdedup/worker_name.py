"""Airflow's `[core] hostname_callable` for the local Celery workers: tells workers on one machine apart."""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "STACK_WORKER_NAME"  # set per worker by scripts/stack.sh


def worker_hostname() -> str:
    """Return `<host>-<worker name>` (e.g. `box-worker2`, host as in the Celery node name), else the FQDN."""
    name = os.environ.get(WORKER_NAME_ENV, "").strip()
    return f"{socket.gethostname()}-{name}" if name else socket.getfqdn()
