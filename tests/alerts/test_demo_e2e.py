"""The issue's "done means" through the real pipeline: samples written by the collector's Sampler ->
gpuspend.costing.build_snapshot -> alerts.evaluate -> notify.deliver_pending -> a Slack-shaped server on
127.0.0.1, with a simulated clock stepping one sample interval (1 min) at a time."""

from __future__ import annotations

import json

from gpuspend import alerts, costing, notify
from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.collectors.sampler import Sampler
from gpuspend.store import connect
from tests.alerts.snapshots import MIN_MS, config

T_START = 1794722400000          # 2026-11-15 06:00 UTC
HOOK = "/services/T1/B1/e2e"


def reading(t: int, busy: bool) -> Reading:
    proc = ProcReading(pid=4242, used_memory=30 << 30, user="alice", command="python train.py", started=1794700000)
    gpu = GpuReading(uuid="GPU-e2e-0", index=0, name="NVIDIA H100 80GB HBM3", memory_total=80 << 30,
                     util=95.0 if busy else 0.0, mem_used=30 << 30, power=300.0 if busy else 80.0,
                     processes=[proc])
    return Reading(ts_ms=t, host="gpu-node-7", source="nvml", gpus=[gpu])


def test_idle_episode_through_costing_gives_open_reminder_resolved(db_path, tmp_path, httpserver):
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    cfg = config(tmp_path, [{"name": "team", "kind": "slack", "url": httpserver.url_for(HOOK)}],
                 interval=60, rates={"per_model": {"H100": 2.0}},
                 # only the Sampler writes here (no collector lease): keep the `collector` alert out of it
                 alerts={"repeat": "4h", "collector_stopped": "30d"},
                 idle={"after": "15m", "busy_for": "30s"})
    conn = connect(db_path)
    sampler = Sampler(conn)
    sent_at: list[int] = []
    for minute in range(0, 330):                        # idle (memory held) for 5 h, then busy
        t = T_START + minute * MIN_MS
        sampler.write(reading(t, busy=minute >= 300))
        snap = costing.build_snapshot(conn, cfg, t)
        alerts.evaluate(conn, cfg, snap, t)
        before = len(httpserver.log)
        notify.deliver_pending(conn, cfg, t)
        sent_at += [minute] * (len(httpserver.log) - before)
    messages = [json.loads(req.data) for req, _ in httpserver.log]
    kinds = [m["text"].split(":")[0] for m in messages]
    assert kinds == ["Alert", "Still open", "Resolved"], kinds
    assert sent_at[1] - sent_at[0] == 240                # the reminder after alerts.repeat
    assert 15 <= sent_at[0] <= 16                        # at the idle.after threshold
    assert 300 <= sent_at[2] <= 302                      # once the GPU is busy again
    fields = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1]
              for b in messages[2]["blocks"] if "fields" in b for f in b["fields"]}
    assert fields["GPU"].startswith("GPU 0 NVIDIA H100 80GB HBM3 on gpu-node-7")
    assert fields["Held by"].startswith("alice (python train.py")
    # the resolved message keeps the episode's final numbers: ~5 h idle at $2/h
    assert fields["Idle for"] in ("4h59m", "5h00m")
    assert 9.9 <= float(fields["Wasted so far"].lstrip("$")) <= 10.0
    assert messages[2]["blocks"][-1]["elements"][0]["text"].startswith("gpuspend · idle · started 2026-11-15T06:00")
    conn.close()
