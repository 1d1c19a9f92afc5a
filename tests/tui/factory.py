"""Test data for the dashboard, written through the real collector path into a real SQLite file.

`ScriptedSource` is a collector source (open/read/close, like collectors.simulated) whose GPUs and
processes each test sets; `write_samples` runs a real `gpuspend.daemon.Collector` over it, so the app
reads exactly what a daemon would have written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuspend.collectors.reading import GpuReading, ProcReading, Reading
from gpuspend.daemon import Collector

GIB = 1024 ** 3
HOST = "testbox"


@dataclass
class ScriptedSource:
    gpus: int = 4
    util: dict[int, float] = field(default_factory=dict)          # index -> util (default 90)
    procs: dict[int, list[ProcReading]] = field(default_factory=dict)
    source: str = "demo"        # "demo" is priced like an AWS box; "nvml" has no rate without config

    def open(self) -> ScriptedSource:
        return self

    def close(self) -> None:
        pass

    def read(self, now_ms: int | None = None) -> Reading:
        assert now_ms is not None
        out = []
        for i in range(self.gpus):
            util = self.util.get(i, 90.0)
            out.append(GpuReading(uuid=f"GPU-test-{i:04d}", index=i, name="NVIDIA H100 80GB HBM3",
                                  memory_total=80 * GIB, power_limit=700.0, util=util, mem_util=util / 2,
                                  mem_used=40 * GIB, power=100 + 5 * util, energy_mj=None, temperature=40 + util / 5,
                                  processes=list(self.procs.get(i, []))))
        return Reading(ts_ms=now_ms, host=HOST, source=self.source, gpus=out, driver="570.00")


def write_samples(db_path: Path, cfg: Any, source: ScriptedSource, start_ms: int, count: int,
                  step_ms: int = 2000) -> int:
    """`count` samples ending at start_ms + (count-1)*step, as the daemon would write them. Returns the
    last timestamp."""
    collector = Collector(db_path, cfg, demo=False, owner="daemon", interval_s=step_ms / 1000, source=source)
    collector.open()
    try:
        ts = start_ms
        for k in range(count):
            ts = start_ms + k * step_ms
            collector.tick(ts)
    finally:
        collector.close()
    return ts


async def wait_for(pilot, cond, timeout: float = 10.0) -> None:
    """Let workers and threads run until `cond()` holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the dashboard")
        await pilot.pause(0.05)
    await pilot.pause()


async def refreshed(pilot) -> None:
    """Ask for a new snapshot and wait until it is on screen."""
    app = pilot.app
    n = app.snapshots_applied
    await wait_for(pilot, lambda: not app._loading)
    await pilot.press("r")                 # the refresh-now binding
    await wait_for(pilot, lambda: app.snapshots_applied > n)


def screen_text(app) -> str:
    """The characters on the terminal right now, one line per row."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())
