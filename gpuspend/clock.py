"""One clock for everything, so tests and screenshots can fix time (GPUSPEND_NOW=ISO-8601 or epoch seconds)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime


def _fixed() -> float | None:
    raw = os.environ.get("GPUSPEND_NOW")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def now_s() -> float:
    fixed = _fixed()
    return fixed if fixed is not None else time.time()


def now_ms() -> int:
    return int(now_s() * 1000)


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
