"""The demo database: a simulated 8x H100 box with 30 days of history up to now, plus demo billing.

Built into a temporary file and moved into place, so a reader never sees half a demo. Rebuilt when the
history is stale (more than an hour behind) unless a collector is live on it (then it is kept and extended
by that collector).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gpuspend import clock, lease
from gpuspend.errors import UsageError
from gpuspend.store import connect, get_meta, set_meta, transaction

HISTORY_DAYS = 30
STALE_MS = 3600_000
META_UNTIL = "demo.history_until_ms"
META_SEED = "demo.seed"


def _is_fresh(path: Path, now_ms: int, seed: int) -> bool:
    conn = connect(path)
    try:
        until = get_meta(conn, META_UNTIL)
        if until is None:
            if conn.execute("SELECT 1 FROM gpus WHERE source != 'demo' LIMIT 1").fetchone():
                raise UsageError(f"{path} holds real GPU data, not demo data",
                                 hint="pass another --db with --demo")
            return False
        if get_meta(conn, META_SEED) != str(seed):
            return False
        holder = lease.holder(conn, now_ms)
        if holder is not None and not holder.stale:
            return True               # a demo collector keeps it current
        latest = conn.execute("SELECT MAX(ts) FROM gpu_samples").fetchone()[0] or int(until)
        return now_ms - max(int(until), latest) <= STALE_MS
    finally:
        conn.close()


def build_demo_db(path: str | Path, now_ms: int, seed: int = 42) -> Path:
    """Write a fresh demo database at `path` (replacing it atomically)."""
    from gpuspend.collectors.simulated import generate_history

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        p.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        start = now_ms - HISTORY_DAYS * 86_400_000
        generate_history(conn, start, now_ms, seed)
        _import_billing(conn, now_ms)
        with transaction(conn):
            set_meta(conn, META_UNTIL, str(now_ms))
            set_meta(conn, META_SEED, str(seed))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, target)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    return target


def _import_billing(conn, now_ms: int) -> None:
    try:
        from gpuspend.collectors.billing.demo import import_demo_billing
    except ImportError:
        # Demo billing ships with the billing collectors; without them the demo has metered costs only.
        print("gpuspend: demo: billing demo data not available; showing metered costs only", file=sys.stderr)
        return
    import_demo_billing(conn, now_ms)
    # The demo box is that export's EC2 instance: record its id so its GPUs are priced from the billing
    # (billing-derived rate), as a real box is through its asset tag or `billing.resource_id`.
    from gpuspend.collectors.billing.demo import DEMO_INSTANCE
    from gpuspend.pricing import META_RESOURCE_ID

    with transaction(conn):
        set_meta(conn, META_RESOURCE_ID, DEMO_INSTANCE)


def ensure_demo_db(path: str | Path, now_ms: int | None = None, seed: int = 42) -> Path:
    """The demo database at `path`, (re)built if missing or stale. Returns its path."""
    now = clock.now_ms() if now_ms is None else now_ms
    p = Path(path)
    if p.exists() and p.stat().st_size > 0 and _is_fresh(p, now, seed):
        return p
    return build_demo_db(p, now, seed)
