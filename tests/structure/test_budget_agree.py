"""Budget crossing has one home (gpuspend.budget): from ONE config, the dashboard (Pilot), `--report --fail-on
budget` and the alert engine agree on whether a budget alert is active, and the header colours the projection by
the configured thresholds.

Before, with `budget.basis: [actual]` and a 92% forecast, the dashboard's alert panel said "budget: projected 92%"
while the report exited 0 and the alert engine raised nothing; the header coloured 92% by 50/80/100 whatever
`budget.thresholds` said.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpuspend import alerts, costing
from gpuspend.config import load_config
from gpuspend.store import connect
from gpuspend.tui.widgets.alerts import AlertsPanel
from gpuspend.tui.widgets.summary import SummaryBar
from tests.conftest import run_cli
from tests.costing.builders import DAY0_MS, NOW_MS, add_gpus, add_minutes, set_watermark

NOV1_MS = DAY0_MS - 14 * 86_400_000
RATES = "rates: {per_model: {H100: 2.0}}\n"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def month_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float, float]:
    """One H100 at $2/h, busy since the 1st: (db, month to date, projection) from the engine itself."""
    base = tmp_path_factory.mktemp("budget")
    db = base / "month.db"
    conn = connect(db)
    try:
        (gid,) = add_gpus(conn, 1)
        add_minutes(conn, gid, NOV1_MS, (NOW_MS - NOV1_MS) // 60_000)
        set_watermark(conn, NOW_MS)
        cfg = _write_cfg(base, RATES)
        (view,) = costing.build_snapshot(conn, cfg, NOW_MS).months
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")      # each test copies the main file only
    finally:
        conn.close()
    assert view.projection is not None and view.projection > view.mtd > 0
    return db, view.mtd, view.projection


def _write_cfg(where: Path, text: str):
    path = where / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _config(tmp_path: Path, *, monthly: float, basis: list[str], thresholds: list[float]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(RATES + f"budget: {{monthly: {monthly:.6f}, currency: USD, thresholds: {thresholds}, "
                            f"basis: {basis}}}\n", encoding="utf-8")
    return path


def _style_at(text, needle: str) -> str:
    """The styles of the spans covering the first character of `needle` in a rich Text."""
    at = text.plain.index(needle)
    return " ".join(str(s.style) for s in text.spans if s.start <= at < s.end)


async def _dashboard(db: Path, cfg) -> tuple[list, str, object]:
    from gpuspend.tui.app import GpuspendApp

    app = GpuspendApp(db, cfg, collect=False, interval=3600)
    app.theme = "textual-dark"
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            if app.snapshots_applied >= 1:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        assert app.snapshots_applied >= 1, "the dashboard never showed a snapshot"
        panel = str(app.screen.query_one(AlertsPanel).render())
        header = app.screen.query_one(SummaryBar)._last
        return [a for a in app.alert_lines if a.kind == "budget"], panel, header


def _report(db: Path, cfg_path: Path) -> tuple[int, dict]:
    r = run_cli("--report", "--format", "json", "--no-sample", "--fail-on", "budget",
                "--db", str(db), "--config", str(cfg_path))
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def _engine(db: Path, cfg) -> list[str]:
    conn = connect(db)
    try:
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
        alerts.evaluate(conn, cfg, snap, NOW_MS)
        return [f"{s} {t}" for s, t in conn.execute("SELECT subject, title FROM alerts WHERE kind = 'budget' "
                                                     "AND state = 'open' ORDER BY subject")]
    finally:
        conn.close()


# (basis, which percentage the budget is sized for and its value, expected crossings as (threshold, basis))
CASES = {
    "actual-basis-ignores-a-92pct-forecast": (["actual"], "forecast", 92.0, []),
    "forecast-basis-fires-on-92pct": (["forecast"], "forecast", 92.0, [(50.0, "forecast"), (80.0, "forecast")]),
    "actual-basis-fires-on-60pct-spent": (["actual"], "actual", 60.0, [(50.0, "actual")]),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(CASES))
async def test_dashboard_report_and_alert_engine_agree(month_db, tmp_path, case):
    basis, sized_on, pct, expected = CASES[case]
    src, mtd, projection = month_db
    db = tmp_path / "month.db"
    shutil.copy(src, db)
    monthly = (projection if sized_on == "forecast" else mtd) * 100 / pct
    cfg_path = _config(tmp_path, monthly=monthly, basis=basis, thresholds=[50, 80, 100])
    cfg = load_config(cfg_path)
    if case.startswith("actual-basis-ignores"):
        assert 100 * mtd / monthly < 50          # spent is under every threshold: only the forecast is past two

    lines, panel, _ = await _dashboard(db, cfg)
    code, doc = _report(db, cfg_path)
    subjects = _engine(db, cfg)

    crossed = [(t["pct"], t["basis"]) for t in doc["month"][0]["thresholds_crossed"]]
    assert crossed == expected
    # the engine keeps ONE alert per budget, carrying the highest threshold crossed
    assert len(subjects) == (1 if expected else 0)
    if expected:
        top_thr, top_b = max(expected)
        assert subjects[0].startswith(f"budget:2026-11:USD Budget {top_thr:g}% "
                                      f"{'reached' if top_b == 'actual' else 'forecast'}"), subjects
    assert code == (1 if expected else 0) and doc["failing"] == (["budget"] if expected else [])
    if expected:
        top, top_basis = max(expected)
        what = "spent" if top_basis == "actual" else "projected"
        assert len(lines) == 1, lines
        assert lines[0].text.startswith(f"budget: {what} {pct:.0f}% of $")
        assert lines[0].text.endswith(f"(threshold {top:g}%)") and lines[0].text in panel
    else:
        assert lines == [] and "budget" not in panel


@pytest.mark.anyio
@pytest.mark.parametrize(("thresholds", "style"), [
    ([95, 99], "#5fd75f"),          # under the first configured threshold: green, though 92 >= 80
    ([90, 99], "#ffd75f"),          # past the first: yellow
    ([50, 90], "bold #ff5f5f"),     # past the last: red, though 92 < 100
])
async def test_header_colours_the_projection_by_the_configured_thresholds(month_db, tmp_path, thresholds, style):
    src, _mtd, projection = month_db
    db = tmp_path / "month.db"
    shutil.copy(src, db)
    cfg = load_config(_config(tmp_path, monthly=projection * 100 / 92, basis=["forecast"], thresholds=thresholds))
    _, _, header = await _dashboard(db, cfg)
    assert header is not None and " 92%" in header.plain
    assert _style_at(header, " 92%") == style
