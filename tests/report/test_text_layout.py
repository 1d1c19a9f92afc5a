"""The text report as cron mails it (issue 17): nothing cut at 80 columns, every section names the window it
covers and lists what it counts, `--month` moves every window-bound section to that month."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuspend.collectors.reading import ProcReading
from gpuspend.config import load_config
from tests.conftest import run_cli
from tests.tui.conftest import NOW_MS
from tests.tui.factory import GIB, ScriptedSource, write_samples

NOW = "2026-11-15T12:00:00+00:00"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    r = run_cli("--demo", "--db", str(path), "--report", "--no-sample", "--format", "json",
                env={"GPUSPEND_NOW": NOW})
    assert r.returncode == 0, r.stderr
    return path


def text_report(db: Path, *args: str) -> str:
    r = run_cli("--db", str(db), "--report", "--no-sample", *args, env={"GPUSPEND_NOW": NOW})
    assert r.returncode in (0, 1), r.stderr
    return r.stdout


def test_long_commands_wrap_and_are_never_cut(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    command = "python train.py " + " ".join(f"--option-{i}=value-{i}" for i in range(8))
    assert 150 < len(command) < 200                # longer than a line, shorter than the document keeps
    job = ProcReading(pid=4242, used_memory=30 * GIB, user="dana", command=command, started=1)
    write_samples(db, load_config(None), ScriptedSource(gpus=1, procs={0: [job]}), NOW_MS - 600_000, 300)
    out = text_report(db)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not any(line.endswith(("~", "…")) for line in lines)
    flat = " ".join(" ".join(lines).split())
    assert command in flat                         # the whole command, wrapped


def test_sections_name_their_window_and_list_what_they_count(demo_db: Path) -> None:
    out = text_report(demo_db)
    doc = json.loads(text_report(demo_db, "--format", "json"))
    assert f"window: {doc['window']['since']} .. {doc['window']['until']}" in out
    for section in ("Idle waste (window)", "Top spenders (window)", "Month 2026-11", "Today (UTC, 2026-11-15)"):
        assert f"\n{section}\n" in out
    n = len(doc["idle"]["episodes"])
    assert f"{n} idle episode" in out
    listed = [line for line in out.split("Idle waste (window)")[1].split("\n\n")[0].splitlines()
              if line.startswith("  GPU ")]
    assert len(listed) == min(n, 20)
    # the two idle figures say which definition each uses
    assert "idle longer than idle.after" in out and "of any length" in out


def test_month_option_moves_every_window_section_to_that_month(demo_db: Path) -> None:
    doc = json.loads(text_report(demo_db, "--month", "2026-10", "--format", "json"))
    assert doc["window"]["since"].startswith("2026-10-01T00:00:00")
    assert doc["window"]["until"].startswith("2026-10-31T23:59:59")
    assert all(e["start"] < "2026-11-01" for e in doc["idle"]["episodes"])
    out = text_report(demo_db, "--month", "2026-10")
    assert "\nMonth 2026-10\n" in out and "This month" not in out
    assert "window: 2026-10-01T00:00:00" in out
