"""One sender in the two-process de-duplication test: wait for the go file, then evaluate + deliver.

Usage: python -m tests.alerts.race_worker DB CONFIG GO_FILE NOW_MS IDLE_MINUTES
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gpuspend import alerts, notify
from gpuspend.config import load_config
from gpuspend.store import connect
from tests.alerts.snapshots import gpu, proc, snapshot


def main() -> None:
    db, cfg_path, go, now_ms, minutes = sys.argv[1:6]
    cfg = load_config(cfg_path)
    conn = connect(db)
    t = int(now_ms)
    g = gpu(idle_for_s=float(minutes) * 60, episode_open=float(minutes) >= 15, waste=float(minutes) / 30,
            state="held-idle" if float(minutes) > 0 else "busy")
    deadline = time.monotonic() + 20
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    changes = alerts.evaluate(conn, cfg, snapshot(t, gpus=[g], processes=[proc()]), t)
    result = notify.deliver_pending(conn, cfg, t, backoff_s=0.01)
    print(f"changes={len(changes)} sent={result.sent} errors={len(result.errors)}")


if __name__ == "__main__":
    main()
