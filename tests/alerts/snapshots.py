"""Build costing Snapshots by hand (the input contract of gpuspend.alerts), and configs with notify targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gpuspend.config import load_config
from gpuspend.snapshot import GpuNow, MonthView, ProcessNow, Rate, Snapshot

RATE = Rate(2.0, "USD", "config", "config: $2.00/GPU-hour")
HOUR_MS = 3_600_000
MIN_MS = 60_000


def gpu(uuid: str = "GPU-aaaa", *, index: int = 3, state: str = "held-idle", idle_for_s: float = 0.0,
        episode_open: bool = False, waste: float = 0.0, host: str = "node-1", name: str = "NVIDIA H100 80GB HBM3",
        rate: Rate = RATE) -> GpuNow:
    return GpuNow(uuid=uuid, index=index, host=host, name=name, model="H100", source="nvml", state=state,
                  util=0.0 if state != "busy" else 97.0, mem_used=40 << 30, mem_total=80 << 30, power=90.0,
                  temperature=40.0, rate=rate, cost_per_hour=rate.per_gpu_hour, idle_for_s=idle_for_s,
                  episode_open=episode_open, episode_waste=waste, last_sample_ms=None)


def proc(user: str = "alice", command: str = "python train.py", gpu_uuid: str = "GPU-aaaa",
         pid: int = 4242) -> ProcessNow:
    return ProcessNow(pid=pid, user=user, command=command, gpu_uuid=gpu_uuid, gpu_index=3,
                      used_memory=40 << 30, sm_util=0.0, cost_today=1.0)


def month(*, forecast_pct: float | None = None, actual_pct: float | None = None, budget: float = 10_000.0,
          name: str = "2026-11", currency: str = "USD") -> MonthView:
    return MonthView(month=name, currency=currency, mtd=(actual_pct or 0) * budget / 100,
                     billed=0.0, metered=0.0, coverage_end_ms=None,
                     projection=None if forecast_pct is None else forecast_pct * budget / 100, low=None, high=None,
                     interval_note="", budget=budget, budget_pct_actual=actual_pct, budget_pct_forecast=forecast_pct)


def snapshot(now_ms: int, *, gpus=(), processes=(), months=(), cost_per_hour: float | None = None,
             last_sample_ms: int | None = None, coverage_end_ms: int | None = None,
             catalog_as_of: str | None = None) -> Snapshot:
    gpus = tuple(gpus)
    cph = sum(g.cost_per_hour or 0 for g in gpus) if cost_per_hour is None else cost_per_hour
    return Snapshot(now_ms=now_ms, host="node-1", currency="USD", gpus=gpus, processes=tuple(processes),
                    cost_per_hour=cph, cost_per_hour_by_state=(), today_cost=0.0, idle_waste_today=0.0,
                    months=tuple(months), alerts=(), last_sample_ms=last_sample_ms if last_sample_ms is not None
                    else now_ms, billing_coverage_end_ms=coverage_end_ms, catalog_as_of=catalog_as_of)


def config(tmp_path: Path, targets: list[dict[str, Any]] | None = None, **sections: Any):
    data: dict[str, Any] = {"notify": {"targets": targets or []}}
    data.update(sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return load_config(path)
