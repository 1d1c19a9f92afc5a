"""Hand-built stores for the cost engine tests: real SQLite files written row by row, so every expected
dollar in the tests can be worked out on paper from what is inserted here."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from gpuspend.config import load_config
from gpuspend.rollup import WATERMARK_KEY
from gpuspend.store import bump_generation, connect, set_meta, transaction
from tests.conftest import FIXED_NOW_S

NOW_MS = FIXED_NOW_S * 1000               # 2026-11-15 12:00 UTC
DAY0_MS = NOW_MS - 12 * 3600_000          # 2026-11-15 00:00 UTC
MIN = 60_000
HOUR = 3600_000


def cfg_from(tmp_path: Path, text: str = "") -> Any:
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8")
    return load_config(p)


def new_store(path: Path) -> sqlite3.Connection:
    return connect(path)


def add_gpus(conn: sqlite3.Connection, n: int, *, model: str = "H100", host: str = "box1",
             source: str = "nvml") -> list[int]:
    ids = []
    with transaction(conn):
        for i in range(n):
            cur = conn.execute(
                "INSERT INTO gpus (uuid, host, idx, name, model, memory_total, source, first_seen, last_seen) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (f"GPU-{host}-{i}", host, i, f"NVIDIA {model}", model, 80 * 2**30, source, DAY0_MS, NOW_MS))
            ids.append(cur.lastrowid)
    return ids


def add_minutes(conn: sqlite3.Connection, gpu_id: int, start_ms: int, minutes: int, *, busy: float = 60.0,
                held: float = 0.0, free: float = 0.0, util: float = 90.0) -> None:
    """`minutes` consecutive rollup rows, each with the given seconds per state."""
    rows = [(gpu_id, start_ms + i * MIN, 30, busy + held + free, util, util, busy, held, free)
            for i in range(minutes)]
    with transaction(conn):
        conn.executemany("INSERT OR REPLACE INTO gpu_minutes (gpu_id, minute, samples, covered_s, util_avg, util_max, "
                         "busy_s, held_idle_s, free_idle_s) VALUES (?,?,?,?,?,?,?,?,?)", rows)


def set_watermark(conn: sqlite3.Connection, ms: int) -> None:
    with transaction(conn):
        set_meta(conn, WATERMARK_KEY, str(ms))


def add_process(conn: sqlite3.Connection, pid: int, user: str, command: str, host: str = "box1") -> int:
    with transaction(conn):
        return conn.execute("INSERT INTO processes (host, pid, started, user, command) VALUES (?,?,?,?,?)",
                            (host, pid, 1000, user, command)).lastrowid


def add_samples(conn: sqlite3.Connection, gpu_id: int, start_ms: int, end_ms: int, step_ms: int, util: float,
                procs: list[tuple[int, int | None, float | None]] = ()) -> None:
    """Raw samples every step in [start, end), each with the given (proc_id, used_memory, sm_util)."""
    with transaction(conn):
        for ts in range(start_ms, end_ms, step_ms):
            conn.execute("INSERT OR REPLACE INTO gpu_samples (gpu_id, ts, util, mem_used, power) VALUES (?,?,?,?,?)",
                         (gpu_id, ts, util, 10 * 2**30 if procs else 0, 100.0))
            for proc_id, mem, sm in procs:
                conn.execute("INSERT OR REPLACE INTO process_samples (gpu_id, ts, proc_id, used_memory, sm_util) "
                             "VALUES (?,?,?,?,?)", (gpu_id, ts, proc_id, mem, sm))


def add_import(conn: sqlite3.Connection, *, period_start_s: int, period_end_s: int, coverage_end_s: int,
               source: str = "aws", fmt: str = "focus") -> int:
    with transaction(conn):
        bump_generation(conn)
        return conn.execute(
            "INSERT INTO imports (path, sha256, format, source, account, billing_period_start, billing_period_end, "
            "rows, coverage_end, imported_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (f"/exports/{source}.csv", "0" * 64, fmt, source, "acct", period_start_s, period_end_s, 0,
             coverage_end_s, FIXED_NOW_S)).lastrowid


def add_charge(conn: sqlite3.Connection, import_id: int, *, start_s: int, hours: float, cost: float,
               currency: str = "USD", period_start_s: int, service: str = "Amazon EC2", sku: str | None = None,
               resource_id: str | None = None, instance_type: str | None = None, is_gpu: bool = False,
               gpu_count: float | None = None, effective: float | None = None) -> None:
    with transaction(conn):
        bump_generation(conn)
        conn.execute(
            "INSERT INTO charges (import_id, billing_period_start, billing_period_end, charge_period_start, "
            "charge_period_end, billed_cost, effective_cost, currency, service, sku, resource_id, instance_type, "
            "is_gpu, gpu_count) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (import_id, period_start_s, period_start_s + 30 * 86400, start_s, int(start_s + hours * 3600), cost,
             cost if effective is None else effective, currency, service, sku, resource_id, instance_type,
             int(is_gpu), gpu_count))
