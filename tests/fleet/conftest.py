"""Fleet fixtures: constructed snapshots, and a real Prometheus (the Debian package's binary) on loopback.

Without the binary the Prometheus tests skip with the reason locally, and fail when CI is set: CI installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gpuspend.snapshot import GpuNow, MonthView, ProcessNow, Rate, Snapshot

NOW_MS = 1794744000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_gpu(host: str, index: int, *, state: str = "busy", rate: float | None = 6.88, util: float = 90.0,
             idle_for_s: float = 0.0, episode_waste: float = 0.0, model: str = "H100") -> GpuNow:
    r = Rate(per_gpu_hour=rate, currency="USD", source="catalog" if rate is not None else "none",
             label=f"catalog: aws {model} ${rate}" if rate is not None else "no rate", as_of="2026-01-21")
    return GpuNow(uuid=f"GPU-{host}-{index:04d}", index=index, host=host, name=f"NVIDIA {model} 80GB HBM3",
                  model=model, source="demo", state=state, util=util, mem_used=40 << 30, mem_total=80 << 30,
                  power=500.0 if state == "busy" else 75.0, temperature=50.0, rate=r, cost_per_hour=rate,
                  idle_for_s=idle_for_s, episode_open=idle_for_s >= 900, episode_waste=episode_waste,
                  last_sample_ms=NOW_MS)


def make_snapshot(host: str = "node-a", gpus: tuple[GpuNow, ...] | None = None, *, now_ms: int = NOW_MS,
                  processes: tuple[ProcessNow, ...] = (), mtd: float = 1000.0, projection: float = 2500.0,
                  waste_today: float = 12.5) -> Snapshot:
    gpus = gpus if gpus is not None else tuple(make_gpu(host, i) for i in range(2))
    cost = sum(g.cost_per_hour or 0.0 for g in gpus)
    month = MonthView(month="2026-11", currency="USD", mtd=mtd, billed=mtd * 0.6, metered=mtd * 0.4,
                      coverage_end_ms=now_ms - 86400_000, projection=projection, low=projection * 0.9,
                      high=projection * 1.1, interval_note="80% interval from 14 daily totals", budget=None,
                      budget_pct_actual=None, budget_pct_forecast=None)
    return Snapshot(now_ms=now_ms, host=host, currency="USD", gpus=gpus, processes=processes, cost_per_hour=cost,
                    cost_per_hour_by_state=(("busy", cost),), today_cost=cost * 12, idle_waste_today=waste_today,
                    months=(month,), alerts=(), catalog_as_of="2026-01-21", last_sample_ms=now_ms)


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the prometheus binary is missing; CI must install the Debian package `prometheus`")
        pytest.skip("prometheus binary not installed (apt-get install prometheus); CI runs these tests")
    return path


class PrometheusServer:
    def __init__(self, binary: str, workdir: Path, targets: list[str], scrape_s: float = 1.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        config = workdir / "prometheus.yml"
        lines = ["global:", f"  scrape_interval: {scrape_s:g}s", f"  scrape_timeout: {scrape_s:g}s",
                 "scrape_configs:", "  - job_name: gpuspend", "    static_configs:", "      - targets:"]
        lines += [f"          - '{t}'" for t in targets]
        config.write_text("\n".join(lines) + "\n")
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready in time")

    def query(self, promql: str) -> list[dict]:
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        resp.raise_for_status()
        return resp.json()["data"]["result"]

    def wait_for(self, promql: str, count: int, timeout: float = 30.0) -> list[dict]:
        """Wait until the query returns `count` series (bounded)."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if len(result) >= count:
                return result
            time.sleep(0.3)
        raise TimeoutError(f"{promql!r}: {len(result)} series after {timeout}s, wanted {count}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def start_prometheus(workdir: Path, targets: list[str], scrape_s: float = 1.0) -> PrometheusServer:
    workdir.mkdir(parents=True, exist_ok=True)
    return PrometheusServer(prometheus_binary(), workdir, targets, scrape_s)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """Factory: prometheus(["127.0.0.1:PORT", ...]) -> a running PrometheusServer, stopped at teardown."""
    prometheus_binary()
    servers: list[PrometheusServer] = []

    def start(targets: list[str], scrape_s: float = 1.0) -> PrometheusServer:
        server = start_prometheus(tmp_path / f"prom{len(servers)}", targets, scrape_s)
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()
