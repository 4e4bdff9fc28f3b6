"""Query rows as JSON-safe dicts, for reports, the dashboard and Airflow's XCom."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import psycopg2.extras
from psycopg2.extensions import connection as Connection


def jsonable(row: dict) -> dict:
    """Make a row JSON-safe: datetimes as ISO strings, decimals as floats."""
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    return out


def fetch(conn: Connection, sql: str, params: tuple | dict = ()) -> list[dict]:
    """Run a query, return its rows as JSON-safe dicts."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, params)
        return [jsonable(dict(row)) for row in cur.fetchall()]
