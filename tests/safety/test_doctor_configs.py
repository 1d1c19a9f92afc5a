"""`doctor` says when the running collector and this command read different configs (the collector evaluates
and delivers alerts with its own, so a budget removed from one still alerts through the other)."""

from __future__ import annotations

from pathlib import Path

from gpuspend.config import load_config
from gpuspend.daemon import Collector
from tests.conftest import run_cli


def _config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_doctor_says_whether_collector_and_command_read_the_same_config(tmp_path):
    db = tmp_path / "demo.db"
    service = _config(tmp_path / "service.yaml", "budget:\n  monthly: 1000\n")
    mine = _config(tmp_path / "mine.yaml", "budget:\n  monthly: 5000\n")
    # a collector holding the lease (this test's process is its pid, so the lease is live while it is open)
    with Collector(db, load_config(service), demo=True, owner="daemon") as col:
        col.tick()
        same = run_cli("--config", str(service), "--db", str(db), "doctor", "--demo")
        other = run_cli("--config", str(mine), "--db", str(db), "doctor", "--demo")
    assert f"the collector reads the same config: {service.resolve()}" in same.stdout, same.stdout
    line = next(x for x in other.stdout.splitlines() if "the collector reads" in x)
    assert line.startswith("warn") and f"the collector reads {service.resolve()}" in line
    assert f"this command reads {mine.resolve()}" in line and "pass the same --config to both" in line
