"""A GPU's money says what it is: in the GPU's own currency, and with what its idle span leaves out.

- Currency: a GPU rated in EUR on a box whose totals are in USD shows its idle waste, and its processes'
  cost, in EUR on the dashboard, in the report and in the alert (they read "$" before).
- Unseen time: an idle episode spans a collector gap (nobody saw work), but the gap is not money, so
  "idle 2h00m" beside "$6.00" at $4/h says "30m unseen, not counted"; by hand 1h30m x $4 = $6.00.
"""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from gpuspend import alerts, costing, report
from gpuspend.store import connect
from gpuspend.tui.screens.process import detail_text
from gpuspend.tui.widgets.alerts import alert_lines
from gpuspend.tui.widgets.gpu_table import gpu_cells
from tests.costing.builders import (
    HOUR,
    MIN,
    NOW_MS,
    add_gpus,
    add_process,
    add_samples,
    cfg_from,
    set_watermark,
)
from tests.month.store import DAY_S, NOV1_S, RID, charges, hourly, new_import

IDLE_S = 3900                                  # 1 h 05 min held idle: an episode, open


def _cell(c) -> str:
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(c, end="")
    return buf.getvalue().strip()


def _doc(conn, cfg, snap) -> dict:
    return report.build_document(conn, cfg, snap, NOW_MS - 86_400_000, "2026-11", (False, "test"), set())


@pytest.fixture
def two_currencies(tmp_path):
    """GPU 0 at $2/h (config), GPU 1 at 3 EUR/h (this box's EUR billing: 6 EUR/h for 2 GPUs), each held idle
    by one process for 3,900 s: by hand GPU 0 wasted $2.1667 ($2.17), GPU 1 3.25 EUR."""
    conn = connect(tmp_path / "cur.db")
    g0, g1 = add_gpus(conn, 2)
    bob, carol = add_process(conn, 100, "bob", "jupyter"), add_process(conn, 200, "carol", "vllm")
    imp = new_import(conn, NOV1_S + 14 * DAY_S, source="azure")
    charges(conn, imp, hourly(NOV1_S + 13 * DAY_S, 24, 6.0, currency="EUR", resource_id=RID, gpu_count=2,
                              is_gpu=True))
    set_watermark(conn, NOW_MS - IDLE_S * 1000)
    for gid, proc in ((g0, bob), (g1, carol)):
        add_samples(conn, gid, NOW_MS - IDLE_S * 1000, NOW_MS + 1, 30_000, 0.0, [(proc, 2**30, None)])
    cfg = cfg_from(tmp_path, f"billing: {{resource_id: {RID}}}\nrates: {{per_gpu: {{'0': 2.0}}}}\ninterval: 30\n")
    return conn, cfg, costing.build_snapshot(conn, cfg, NOW_MS)


def test_a_gpu_rated_in_eur_shows_its_waste_and_its_processes_in_eur(two_currencies):
    conn, cfg, snap = two_currencies
    assert snap.currency == "USD"
    g0, g1 = snap.gpus
    assert g1.rate.currency == "EUR" and g1.episode_open and g1.episode_waste == pytest.approx(3.25, abs=0.01)
    # the dashboard's GPU rows: the "wasted" column
    assert _cell(gpu_cells(g0, snap.currency)[9]) == "$2.17"
    assert _cell(gpu_cells(g1, snap.currency)[9]) == "3.25 EUR"
    # the dashboard's alerts panel
    lines = {a.text.split(":")[1].split()[1]: a.text for a in alert_lines(snap, cfg) if a.kind == "idle"}
    assert "3.25 EUR wasted" in lines["1"] and "$" not in lines["1"].split("wasted")[0], lines
    # the process detail: carol's cost today is GPU 1's, in EUR
    carol = next(p for p in snap.processes if p.user == "carol")
    detail = detail_text(carol, snap).plain
    assert "cost today    3.25 EUR" in detail and "GPU 1: 1.0G held, held-idle, 3.25 EUR today" in detail
    # the report: text line and JSON
    doc = _doc(conn, cfg, snap)
    assert [g["currency"] for g in doc["now"]["gpus"]] == ["USD", "EUR"]
    text = report.render_text(doc)
    (line,) = [ln for ln in text.splitlines() if ln.startswith("  GPU 1 H100 ")]
    assert line.endswith("idle 1h05m wasted 3.25 EUR"), line
    # the idle alert's message
    (c,) = [c for c in alerts.conditions(conn, cfg, snap, NOW_MS) if c.kind == "idle" and c.subject == g1.uuid]
    assert c.currency == "EUR" and ("Wasted so far", "3.25 EUR") in c.fields


def test_an_idle_span_across_a_collector_gap_says_what_its_waste_leaves_out(tmp_path):
    conn = connect(tmp_path / "gap.db")
    (gid,) = add_gpus(conn, 1)
    pid = add_process(conn, 300, "dave", "notebook")
    set_watermark(conn, NOW_MS - 2 * HOUR)
    # idle 2 h, with no collector from -75 min to -45 min: seen 45 min + 45 min
    add_samples(conn, gid, NOW_MS - 2 * HOUR, NOW_MS - 75 * MIN, 30_000, 0.0, [(pid, 2**30, None)])
    add_samples(conn, gid, NOW_MS - 45 * MIN, NOW_MS + 1, 30_000, 0.0, [(pid, 2**30, None)])
    cfg = cfg_from(tmp_path, "rates: {per_model: {H100: 4.0}}\ninterval: 30\n")
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    (g,) = snap.gpus
    assert g.episode_open and 2 * 3600 <= g.idle_for_s < 2 * 3600 + 60
    assert g.episode_waste == pytest.approx(6.0, abs=0.04)          # 90 min x $4/h, the gap is not money
    assert g.episode_unseen_s == pytest.approx(1800, abs=31)
    doc = _doc(conn, cfg, snap)
    lines = report.render_text(doc).splitlines()
    (at,) = [i for i, ln in enumerate(lines) if ln.startswith("  GPU 0 H100 ")]
    assert lines[at].endswith("idle 2h00m wasted $6.00"), lines[at]
    assert lines[at + 1] == "      30m unseen, not counted (no samples in the idle span)"
    assert doc["now"]["gpus"][0]["episode_unseen_s"] == pytest.approx(1800, abs=31)
    (ep,) = doc["idle"]["episodes"]
    assert ep["unseen_s"] == pytest.approx(1800, abs=31) and ep["idle_s"] == pytest.approx(5400, abs=31)
    (c,) = [c for c in alerts.conditions(conn, cfg, snap, NOW_MS) if c.kind == "idle"]
    assert ("Wasted so far", "$6.00 (30m unseen, not counted)") in c.fields
    payload = json.loads(alerts._payload(1, c, "open", NOW_MS - 2 * HOUR * 1000, None))
    assert "30m unseen, not counted" in json.dumps(payload)


def test_a_span_seen_whole_says_nothing_more(two_currencies):
    conn, cfg, snap = two_currencies
    assert all(g.episode_unseen_s == 0 for g in snap.gpus)
    text = report.render_text(_doc(conn, cfg, snap))
    assert "unseen" not in text
