"""The HTTP Retry-After header, shared by webhook delivery and the GPU-cloud clients."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `Retry-After` (delta-seconds or an HTTP date); None when absent or unreadable."""
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = datetime.strptime(raw, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0.0, when.timestamp() - time.time())
