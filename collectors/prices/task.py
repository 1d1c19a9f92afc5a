"""The collector's price-refresh task, kept light: a box with `prices.refresh` off (the default) never loads
httpx or the fetchers (the collector must cost almost nothing)."""

from __future__ import annotations

import sqlite3
from typing import Any


def refresh_task(conn: sqlite3.Connection, cfg: Any, now_ms: int) -> None:
    if float(cfg.prices.refresh or 0) <= 0:
        return
    from gpuspend.collectors.prices.refresh import refresh_task as run

    run(conn, cfg, now_ms)
