"""Demo billing goes through the real importer; configured source folders re-import only when they change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from gpuspend.collectors.billing.demo import DEMO_INSTANCE, P5_RATE, import_demo_billing
from gpuspend.collectors.billing.sources import reimport_changed
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES, dump

NOW_MS = 1794744000_000        # 2026-11-15T12:00:00Z (the suite's fixed clock)


def test_demo_billing_covers_last_month_and_this_month_to_yesterday(db_path: Path) -> None:
    conn = connect(db_path)
    [res] = import_demo_billing(conn, NOW_MS)
    assert res.format == "focus"
    starts = [p["start"] for p in res.as_json()["periods"]]
    assert starts == ["2026-10-01", "2026-11-01"]
    end = conn.execute("SELECT MAX(charge_period_end) FROM charges WHERE is_gpu = 1").fetchone()[0]
    assert end == 1794614400                                    # 2026-11-14 00:00 UTC: yesterday
    model, count, hours, cost = conn.execute(
        "SELECT gpu_model, gpu_count, COUNT(*), SUM(effective_cost) FROM charges WHERE resource_id LIKE ?",
        (f"%/{DEMO_INSTANCE}",)).fetchone()
    assert (model, count) == ("H100", 8.0) and hours == 31 * 24 + 13 * 24
    assert cost == pytest.approx(hours * P5_RATE)
    others = {r[0] for r in conn.execute("SELECT service FROM charges WHERE is_gpu = 0")}
    assert {"Amazon Simple Storage Service", "AWS Data Transfer", "Tax"} <= others
    # Rebuilding the demo at a later time replaces the periods instead of adding to them.
    import_demo_billing(conn, NOW_MS + 86_400_000)
    assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 2


def _cfg(*folders: Path) -> SimpleNamespace:
    return SimpleNamespace(billing=SimpleNamespace(sources=[str(f) for f in folders], resource_id=None))


def test_sources_reimport_only_changed_folders(db_path: Path, tmp_path: Path, capsys) -> None:
    conn = connect(db_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(FIXTURES / "focus_gpu.csv", folder / "focus.csv")
    cfg = _cfg(folder, tmp_path / "not-there-yet")
    assert [r.rows for r in reimport_changed(conn, cfg, NOW_MS)] == [10]
    before = dump(db_path)
    assert reimport_changed(conn, cfg, NOW_MS) == []            # nothing changed: nothing read
    assert dump(db_path) == before
    # A newer month-to-date file (the same line items and one more hour) replaces the AWS slice.
    (folder / "focus.csv").unlink()
    lines = (FIXTURES / "focus_gpu.csv").read_text().splitlines()
    later = lines[2].replace("2026-11-10T01:00:00Z,2026-11-10T02:00:00Z", "2026-11-11T01:00:00Z,2026-11-11T02:00:00Z")
    (folder / "focus-v2.csv").write_text("\n".join([*lines, later]) + "\n")
    os.utime(folder / "focus-v2.csv", (1, 1))
    [res] = reimport_changed(conn, cfg, NOW_MS)
    assert res.rows == 11 and conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 8 + 2 + 1   # not 10 + 11
    # A broken export is reported once, never raised into the daemon.
    (folder / "broken.csv").write_text("x,y\n1,2\n")
    assert reimport_changed(conn, cfg, NOW_MS) == []
    assert "unknown billing export format" in capsys.readouterr().err
    assert reimport_changed(conn, cfg, NOW_MS) == []
    assert capsys.readouterr().err == ""


def test_daemon_task_imports_changed_folders_in_a_child_process(db_path: Path, tmp_path: Path, capsys) -> None:
    """The collector's task: same rows as an in-process import, pyarrow never loaded into the collector, a
    bad export reported as its one line (no traceback) and the database left as it was."""
    import sys

    from gpuspend.collectors.billing.sources import reimport_task

    conn = connect(db_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    shutil.copy(FIXTURES / "focus_gpu.csv", folder / "focus.csv")
    cfg = _cfg(folder)
    had_pyarrow = "pyarrow" in sys.modules
    reimport_task(conn, cfg, NOW_MS)
    assert conn.execute("SELECT COUNT(*), SUM(is_gpu) FROM charges").fetchone()[0] == 10
    assert conn.execute("SELECT imported_at FROM imports").fetchone()[0] == NOW_MS // 1000
    assert had_pyarrow or "pyarrow" not in sys.modules
    before = dump(db_path)
    reimport_task(conn, cfg, NOW_MS)                             # nothing changed: no child, nothing written
    assert dump(db_path) == before
    (folder / "broken.csv").write_text("x,y\n1,2\n")
    reimport_task(conn, cfg, NOW_MS)
    err = capsys.readouterr().err
    assert "unknown billing export format" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 10
    reimport_task(conn, cfg, NOW_MS)                             # reported once per change
    assert capsys.readouterr().err == ""
