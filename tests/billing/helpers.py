"""Small helpers shared by the billing tests: fixture paths, database dumps, independent CSV arithmetic."""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from pathlib import Path

from tests.old_schema import schema_at

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "billing"
NULLS = {"", "NULL", "null", "(null)", "None"}


def dump(db: Path) -> str:
    """Everything in the database, for before/after comparisons."""
    if not db.exists():
        return ""
    conn = sqlite3.connect(db)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def store_copy_at(version: int, path: Path, ref: sqlite3.Connection, tables: tuple[str, ...],
                  read: dict[str, str] | None = None) -> None:
    """A database exactly as schema `version` left it, holding the reference's rows of `tables`: each column
    of the old table read from the reference as itself, or as the SQL `read` gives for it."""
    conn = schema_at(path, version)
    conn.execute("BEGIN")
    for table in tables:
        cols = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")]
        picked = [(read or {}).get(c, c) for c in cols]
        conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                         ref.execute(f"SELECT {', '.join(picked)} FROM {table}").fetchall())
    conn.execute("COMMIT")
    conn.close()


def stored_charges(db: Path, *, line: bool = True) -> list[tuple]:
    """Every stored charge as (line, *FIELDS) in file order (without the line: to compare containers whose
    rows are numbered differently, CSV lines and Parquet rows)."""
    from gpuspend.collectors.billing.normalise import FIELDS

    conn = sqlite3.connect(db)
    try:
        cols = ("line", *FIELDS) if line else FIELDS
        return conn.execute(f"SELECT {', '.join(cols)} FROM charges ORDER BY id").fetchall()
    finally:
        conn.close()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def num(v: str | None) -> float:
    return 0.0 if v is None or v.strip() in NULLS else float(v)


def sums_by(rows: list[dict[str, str]], key: str, *cols: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(cols))
    for r in rows:
        acc = out[r[key]]
        for i, c in enumerate(cols):
            acc[i] += num(r.get(c))
    return dict(out)
