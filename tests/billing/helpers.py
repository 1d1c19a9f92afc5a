"""Small helpers shared by the billing tests: fixture paths, database dumps, independent CSV arithmetic."""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from pathlib import Path

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
