"""The issue's end-to-end test: two `gpuspend collect --demo --metrics` nodes (different hosts, rates and
history), a real Prometheus scraping both every second, and the fleet report's totals equal to the sum of the two
nodes' own `--report --format json` figures. Then Prometheus goes away: the fleet report shows the last good
view marked stale and exits 3.

The clock is fixed (GPUSPEND_NOW) for collectors and reports alike, so every snapshot is a pure function of the
database and the two sides can be compared exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gpuspend import clock
from gpuspend.store import connect

from ..conftest import ROOT
from .conftest import free_port, prometheus_binary

pytestmark = pytest.mark.prometheus

NODES = {
    # host -> (config, days of history)
    "node-a": ("host: node-a\n", 3),
    "node-b": ("host: node-b\nrates:\n  per_model:\n    H100: 3.5\n", 2),
}


def _build_history(db: Path, days: int) -> None:
    from gpuspend.collectors.simulated import generate_history

    conn = connect(db)
    try:
        now = clock.now_ms()
        generate_history(conn, now - days * 86_400_000, now, 42)
    finally:
        conn.close()


def _wait_metrics(port: int, host: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    """Until the node's exporter serves a snapshot built from its database (bounded)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"collector for {host} exited: {log.read_text()[-2000:]}")
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            text = ""
        if f'gpuspend_up{{host="{host}"}} 1.0' in text:
            return
        time.sleep(0.3)
    raise TimeoutError(f"{host}: no snapshot on /metrics after {timeout}s:\n{text[-1500:]}")


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpuspend", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=timeout, cwd=ROOT)


def own_figures(report: dict) -> dict[str, float]:
    """A node's own `--report --format json` -> the figures the fleet sums (USD)."""
    month = next(m for m in report["month"] if m["currency"] == "USD")
    return {"cost_per_hour": float(report["now"]["cost_per_hour"]), "waste_today": float(report["today"]["idle_waste"]),
            "mtd": float(month["mtd"]), "projection": float(month["projection"])}


def test_fleet_totals_equal_the_sum_of_node_reports(tmp_path: Path):
    prometheus_binary()
    from .conftest import start_prometheus

    procs: list[subprocess.Popen] = []
    logs = []
    prom = None
    try:
        ports = {}
        for host, (config, days) in NODES.items():
            (tmp_path / f"{host}.yaml").write_text(config)
            _build_history(tmp_path / f"{host}.db", days)
            ports[host] = free_port()
            logs.append(open(tmp_path / f"{host}.log", "w"))  # noqa: SIM115 - a file, not a pipe that can fill
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "gpuspend", "--config", str(tmp_path / f"{host}.yaml"), "collect", "--demo",
                 "--db", str(tmp_path / f"{host}.db"), "--interval", "1", "--metrics", f"127.0.0.1:{ports[host]}"],
                cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
                stderr=logs[-1]))
        for (host, port), proc in zip(ports.items(), procs, strict=True):
            _wait_metrics(port, host, proc, tmp_path / f"{host}.log")

        prom = start_prometheus(tmp_path / "prom", [f"127.0.0.1:{p}" for p in ports.values()])
        stamp = clock.now_ms() / 1000
        prom.wait_for(f"gpuspend_last_sample_timestamp_seconds == {stamp}", len(NODES))
        time.sleep(1.5)         # one more scrape: every series of the same (settled) snapshot

        fleet = _run("--report", "--fleet", prom.url, "--format", "json")
        assert fleet.returncode == 0, fleet.stderr
        view = json.loads(fleet.stdout)
        assert sorted(n["name"] for n in view["nodes"]) == sorted(NODES)
        assert view["gpus"] == 16

        own = {}
        for host in NODES:
            r = _run("--config", str(tmp_path / f"{host}.yaml"), "--report", "--format", "json", "--no-sample",
                     "--db", str(tmp_path / f"{host}.db"))
            assert r.returncode in (0, 1), r.stderr          # 1 = alerts active, still a report
            own[host] = own_figures(json.loads(r.stdout))
        totals = view["totals"]["USD"]
        assert all(o[k] > 0 for o in own.values() for k in o), own       # nothing trivially zero
        for key in ("cost_per_hour", "waste_today", "mtd", "projection"):
            # the report rounds money to 4 decimals; the fleet sums full-precision gauges
            assert totals[key] == pytest.approx(sum(o[key] for o in own.values()), abs=1e-3), key
        # the nodes really differ (rates and history), so the sum is not a doubled single node
        assert own["node-a"]["cost_per_hour"] != own["node-b"]["cost_per_hour"]
        assert own["node-a"]["mtd"] != own["node-b"]["mtd"]
        for n in view["nodes"]:
            assert n["cost_per_hour"]["USD"] == pytest.approx(own[n["name"]]["cost_per_hour"], abs=1e-3)

        # Prometheus goes away: last known values, marked stale, exit 3, one line on stderr
        prom.stop()
        stale = _run("--report", "--fleet", prom.url, "--format", "json")
        assert stale.returncode == 3
        assert "Prometheus unreachable" in stale.stderr and "Traceback" not in stale.stderr
        again = json.loads(stale.stdout)
        assert again["stale"] is True and again["totals"] == view["totals"]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for f in logs:
            f.close()
        if prom is not None:
            prom.stop()
