"""Billing rows with the fields the month needs (charge category, usage quantity and unit), on top of the
cost engine tests' hand-built stores: every expected amount in tests/month is worked out from these rows."""

from __future__ import annotations

import sqlite3

from gpuspend.store import bump_generation, transaction
from tests.costing.builders import MIN

NOV1_S = 1793491200                   # 2026-11-01 00:00 UTC
DEC1_S = NOV1_S + 30 * 86400
DAY_S = 86400
NOV1_MS = NOV1_S * 1000
DAY_MS = DAY_S * 1000
RID = "i-0123456789abcdef0"


def day_ms(day: int, hour: float = 0.0) -> int:
    """Epoch ms of November `day` (1-based) at `hour` UTC."""
    return NOV1_MS + (day - 1) * DAY_MS + int(hour * 3_600_000)


def new_import(conn: sqlite3.Connection, coverage_end_s: int, source: str = "aws", imported_at_s: int = DEC1_S,
               period: tuple[int, int] = (NOV1_S, DEC1_S)) -> int:
    with transaction(conn):
        bump_generation(conn)
        return conn.execute(
            "INSERT INTO imports (path, sha256, format, source, account, billing_period_start, billing_period_end, "
            "rows, coverage_end, imported_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (f"exports/{source}.csv", "0" * 64, "focus", source, "acct", *period, 0, coverage_end_s,
             imported_at_s)).lastrowid


def charges(conn: sqlite3.Connection, import_id: int, rows: list[dict], period: tuple[int, int] = (NOV1_S, DEC1_S)
            ) -> None:
    """Insert charges of the 2026-11 billing period (or `period`). Keys: start_s, end_s, cost, and optionally currency,
    category (Usage), resource_id, service, quantity, unit, is_gpu, gpu_count."""
    with transaction(conn):
        bump_generation(conn)
        conn.executemany(
            "INSERT INTO charges (import_id, billing_period_start, billing_period_end, charge_period_start, "
            "charge_period_end, charge_category, billed_cost, effective_cost, currency, service, resource_id, "
            "quantity, unit, is_gpu, gpu_count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(import_id, *period, r["start_s"], r["end_s"], r.get("category", "Usage"), r["cost"], r["cost"],
              r.get("currency", "USD"), r.get("service", "Amazon EC2"), r.get("resource_id"), r.get("quantity"),
              r.get("unit"), int(r.get("is_gpu", False)), r.get("gpu_count")) for r in rows])


def hourly(start_s: int, hours: int, cost: float, **kw) -> list[dict]:
    """`hours` consecutive hourly usage rows of `cost` each (quantity 1 Hrs)."""
    return [dict(start_s=start_s + h * 3600, end_s=start_s + (h + 1) * 3600, cost=cost, quantity=1.0,
                 unit="Hrs", **kw) for h in range(hours)]


def power_minutes(conn: sqlite3.Connection, gpu_id: int, start_ms: int, minutes: int, watts: float) -> None:
    """Busy rollup minutes at a constant average power."""
    rows = [(gpu_id, start_ms + i * MIN, 30, 60.0, 90.0, 90.0, 60.0, 0.0, 0.0, watts) for i in range(minutes)]
    with transaction(conn):
        conn.executemany("INSERT OR REPLACE INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, "
                         "util_max, busy_s, held_idle_s, free_idle_s, power_avg) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
