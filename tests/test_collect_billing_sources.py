"""The collector re-imports the export folders listed in `billing.sources` (and only when they change)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "billing" / "focus_gpu.csv"


def _imports(db: Path) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT format, rows FROM imports ORDER BY id").fetchall()
    finally:
        c.close()


def test_collect_imports_configured_billing_sources_once(cli, db_path: Path, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    shutil.copy(FIXTURE, exports / "focus.csv")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"billing:\n  sources: [{str(exports)!r}]\n")
    cfg.chmod(0o600)

    r = cli("--config", str(cfg), "collect", "--demo", "--once", "--db", str(db_path))
    assert r.returncode == 0, r.stderr
    first = _imports(db_path)
    assert first and all(fmt == "focus" and rows > 0 for fmt, rows in first)

    # unchanged folder: the next collector pass imports nothing new
    r = cli("--config", str(cfg), "collect", "--demo", "--once", "--db", str(db_path))
    assert r.returncode == 0, r.stderr
    assert _imports(db_path) == first
