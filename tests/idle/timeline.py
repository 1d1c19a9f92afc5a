"""Scripted timelines through the real collector and store with a fixed clock: a FakeNvml box (the real pynvml
error classes, answering as a real driver does) read by the real NvmlSource, written by the real Collector
(lease, heartbeat, periodic rollup), read back by the real cost engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuspend.collectors.nvml import NvmlSource
from gpuspend.config import load_config
from gpuspend.daemon import Collector
from tests.conftest import FIXED_NOW_S
from tests.fake_pynvml import FakeNvml

NOW_MS = FIXED_NOW_S * 1000          # 2026-11-15 12:00 UTC
MIN = 60_000


def cfg_file(tmp_path: Path, text: str) -> Any:
    p = tmp_path / "config.yaml"
    p.write_text(text, encoding="utf-8")
    return load_config(p)


def collect(db: Path, cfg: Any, fake: FakeNvml, start_ms: int, end_ms: int, step_ms: int,
            script: Callable[[int], None] | None = None, *, periodic: bool = True) -> None:
    """One collector run: a tick every `step_ms` in [start, end), `script(t)` setting the box up before each."""
    source = NvmlSource("node-1", nvml=fake.module)
    with Collector(db, cfg, demo=False, source=source, interval_s=step_ms / 1000, periodic=periodic) as col:
        for t in range(start_ms, end_ms, step_ms):
            if script is not None:
                script(t)
            col.tick(t)
