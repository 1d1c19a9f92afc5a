"""One spelling for money, durations and outside text on every surface (issue 11).

Each test builds one real store (the cost engine's builders), takes one snapshot, and reads what every surface
would show from it: the dashboard's cells (rendered through Rich, as the terminal gets them), the text report,
the Slack / ntfy / webhook messages of the alert engine, and the fleet view. They must agree character for
character on a duration, on the word for unknown money, and on what is left of hostile outside text.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gpuspend import alerts, costing, fleet, notify, pricing, report
from gpuspend.fleet import FleetGpu, FleetNode, FleetView
from gpuspend.store import connect
from gpuspend.tui.widgets import fmt as tui_fmt
from gpuspend.tui.widgets.alerts import alert_lines
from gpuspend.tui.widgets.gpu_table import gpu_cells
from gpuspend.tui.widgets.process_table import process_cells
from tests.costing.builders import NOW_MS, add_gpus, add_process, add_samples, cfg_from, set_watermark

IDLE_S = 3900                       # 1 h 5 min: the example
HOSTILE = "\x1b[31mrm\x1b[0m \x9b2Jx \u202eevil\u200bname\nnext [bold red]x[/]"
# What a person must see of HOSTILE: the escape sequences gone whole (7- and 8-bit CSI), the bidi override
# visible as "?", the zero-width space gone, the newline a space, the markup as the literal characters.
INERT = "rm x ?evilname next [bold red]x[/]"
BAD_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def rendered(cell: Any) -> str:
    """A dashboard cell as the terminal gets it: printed by Rich with no colour, so markup or escapes that
    survived would show (or vanish) here exactly as on screen."""
    buf = io.StringIO()
    Console(file=buf, width=300, color_system=None, force_terminal=False, legacy_windows=False).print(
        cell, end="", soft_wrap=True)
    return buf.getvalue()


def _store(tmp_path: Path, rates: str) -> tuple[Any, Any, Any]:
    """One H100 idle (utilisation 0) for 3,900 s, its memory held by a process whose command line is hostile."""
    conn = connect(tmp_path / "fmt.db")
    (gid,) = add_gpus(conn, 1)
    pid = add_process(conn, 666, "mallory", HOSTILE)
    set_watermark(conn, NOW_MS - IDLE_S * 1000)
    add_samples(conn, gid, NOW_MS - IDLE_S * 1000, NOW_MS + 1, 30_000, 0.0, [(pid, 2**30, None)])
    cfg = cfg_from(tmp_path, rates + "interval: 30\n")
    snap = costing.build_snapshot(conn, cfg, NOW_MS)
    return conn, cfg, snap


def _report_text(conn: Any, cfg: Any, snap: Any) -> str:
    doc = report.build_document(conn, cfg, snap, NOW_MS - 86_400_000, "2026-11", (False, "test"), set())
    return report.render_text(doc)


def _notifications(conn: Any, cfg: Any, snap: Any) -> dict[str, str]:
    """The idle alert as each webhook kind would send it (the message bodies, as JSON text)."""
    (idle,) = [c for c in alerts.conditions(conn, cfg, snap, NOW_MS) if c.kind == "idle"]
    p = json.loads(alerts._payload(1, idle, "open", NOW_MS - IDLE_S * 1000, None))
    return {"slack": json.dumps(notify.render_slack(p), ensure_ascii=False),
            "ntfy": json.dumps(notify.render_ntfy(p, "gpus"), ensure_ascii=False),
            "webhook": json.dumps(notify.render_webhook(p, "gpuspend"), ensure_ascii=False)}


def _fleet_text(g_idle_s: float | None, cost_per_hour: float | None, waste: float) -> str:
    gpu = FleetGpu(node="node-a", gpu="0", uuid="GPU-a-0", model="H100", source="gpuspend", state="held-idle",
                   util_pct=0.0, cost_per_hour=cost_per_hour, currency="USD", rate_source="config", idle=True,
                   idle_for_s=g_idle_s, episode_open=True, waste=waste)
    node = FleetNode(name="node-a", source="gpuspend", gpus=[gpu], unpriced=0 if cost_per_hour is not None else 1)
    return fleet.render(FleetView(url="http://prometheus:9090", fetched_s=NOW_MS / 1000, nodes=[node]))


def test_3900_seconds_of_idle_is_written_the_same_on_every_surface(tmp_path):
    conn, cfg, snap = _store(tmp_path, "rates: {per_model: {H100: 4.0}}\n")
    (g,) = snap.gpus
    assert g.episode_open and IDLE_S <= g.idle_for_s < IDLE_S + 60
    spelled = "1h05m"

    dashboard_cell = rendered(gpu_cells(g, snap.currency)[8])        # the "Idle" column
    assert dashboard_cell.strip() == spelled
    dashboard_alert = [a.text for a in alert_lines(snap, cfg) if a.kind == "idle"]
    assert dashboard_alert and f"for {spelled}" in dashboard_alert[0]

    text = _report_text(conn, cfg, snap)
    (gpu_line,) = [ln for ln in text.splitlines() if ln.startswith("  GPU 0 H100 ")]
    assert f" idle {spelled}" in gpu_line, gpu_line                   # was "idle 65m"
    (episode_line,) = [ln for ln in text.splitlines() if ln.startswith("  GPU 0 11-15")]
    assert f" {spelled} idle " in episode_line, episode_line

    for kind, body in _notifications(conn, cfg, snap).items():
        assert f"for {spelled}" in body, (kind, body)                 # Slack said "1h 05m"
        assert "1h 05m" not in body and "65m" not in body

    fleet_text = _fleet_text(float(IDLE_S), 4.0, 4.33)
    (row,) = [ln for ln in fleet_text.splitlines() if ln.startswith("node-a ") and "held-idle" in ln]
    assert f" {spelled} " in row


def test_unknown_money_is_one_word_everywhere(tmp_path):
    """A GPU nobody priced: its money is "no rate" on the dashboard, in the report, in the notifications and in
    the fleet view; never "n/a", never "$0.00", never "$nan"."""
    conn, cfg, snap = _store(tmp_path, "")
    (g,) = snap.gpus
    assert g.cost_per_hour is None and g.episode_open
    word = "no rate"

    assert rendered(gpu_cells(g, snap.currency)[6]).strip() == word      # the "$/h" column

    text = _report_text(conn, cfg, snap)
    (gpu_line,) = [ln for ln in text.splitlines() if ln.startswith("  GPU 0 H100 ")]
    assert f" {word} idle " in gpu_line, gpu_line
    (episode_line,) = [ln for ln in text.splitlines() if ln.startswith("  GPU 0 11-15")]
    assert episode_line.endswith(f" idle {word:>10}"), episode_line      # the episode's waste: was "n/a"
    notes = _notifications(conn, cfg, snap)
    fleet_text = _fleet_text(float(IDLE_S), None, 0.0)
    for surface, body in {"report": text, **notes, "fleet": fleet_text}.items():
        assert "n/a" not in body, surface
        assert not re.search(r"\$(nan|inf|-inf)|\bnan\b|\binf\b", body), surface
    annotations = json.loads(notes["webhook"])["alerts"][0]["annotations"]
    assert "burning" not in annotations                          # no "$0.00/h" for a GPU nobody priced

    # Not-a-number money (a broken rate, a division by zero) is unknown too, on every surface's formatter.
    for bad in (math.nan, math.inf, -math.inf):
        assert tui_fmt.money(bad) == word
        assert word in _fleet_text(60.0, bad, bad)


def test_idle_waste_of_an_unpriced_gpu_is_unknown_not_zero(tmp_path):
    conn, cfg, snap = _store(tmp_path, "")
    text = _report_text(conn, cfg, snap)
    (gpu_line,) = [ln for ln in text.splitlines() if ln.startswith("  GPU 0 H100 ")]
    assert gpu_line.endswith("wasted no rate"), gpu_line
    assert "no rate wasted" in " ".join(a.text for a in alert_lines(snap, cfg) if a.kind == "idle")
    annotations = json.loads(_notifications(conn, cfg, snap)["webhook"])["alerts"][0]["annotations"]
    assert annotations["wasted_so_far"] == "no rate"


def test_hostile_outside_text_is_inert_in_the_report_and_in_a_rendered_tui_cell(tmp_path):
    conn, cfg, snap = _store(tmp_path, "rates: {per_model: {H100: 4.0}}\n")

    text = _report_text(conn, cfg, snap)
    assert not BAD_CHARS.search(text)
    lines = [ln for ln in text.splitlines() if "mallory" in ln and "666" in ln]      # held idle by, processes
    assert len(lines) == 2 and all(ln.endswith(INERT) for ln in lines), lines       # old report: "?[31mrm?[0m ?2Jx ..."
    assert "[31m" not in text and "2Jx" not in text

    (p,) = snap.processes
    cells = [rendered(c) for c in process_cells(p, snap.currency, command_width=200)]
    assert cells[-1].strip() == INERT                                    # old TUI kept the U+202E override
    assert not any(BAD_CHARS.search(c) for c in cells)
    # Markup in outside text is never parsed: the brackets are on screen, not bold red.
    assert "[bold red]x[/]" in cells[-1]

    # Other users' names and API answers go through the same cleaner: one spelling of "inert".
    assert tui_fmt.plain(HOSTILE).plain == INERT
    assert rendered(tui_fmt.plain(HOSTILE)) == INERT


def test_large_and_unknown_money_is_never_scientific_notation(tmp_path):
    """Rate labels were written with 4 significant digits: a $35,040 GPU read "$3.504e+04 over 4 y" and a big
    negotiated rate "$1.235e+07/h"."""
    cfg = cfg_from(tmp_path, "onprem: {purchase_price: 35040, amortise_years: 4}\n"
                             "rates: {per_gpu: {'1': 12345678.9}}\n")
    gpu0 = {"uuid": "GPU-x-0", "idx": 0, "host": "box1", "model": "H100", "source": "nvml"}
    gpu1 = {"uuid": "GPU-x-1", "idx": 1, "host": "box1", "model": "H100", "source": "nvml"}
    onprem = pricing.resolve_rate(cfg, None, gpu0, now_ms=NOW_MS)
    big = pricing.resolve_rate(cfg, None, gpu1, now_ms=NOW_MS)
    assert "$35,040.00 over 4 y" in onprem.label, onprem.label
    assert "$12,345,678.90/h" in big.label, big.label
    for label in (onprem.label, big.label):
        assert not re.search(r"\d[eE][+-]?\d", label), label

    conn, cfg2, snap = _store(tmp_path, "rates: {per_model: {H100: 1000000000000.0}}\n")
    text = _report_text(conn, cfg2, snap)
    assert "$1,000,000,000,000.00/h" in text
    assert not re.search(r"\d[eE][+-]?\d", text)
    huge = 1e21
    for shown in (tui_fmt.money(huge), report.money(huge, "USD"), fleet.money(huge, "USD")):
        assert shown.startswith("$1,000,000,000,000,000,000,000") and "e" not in shown, shown
    assert "e+" not in _fleet_text(60.0, huge, huge)


@pytest.mark.parametrize(("seconds", "spelled"), [(45, "45s"), (720, "12m"), (3900, "1h05m"),
                                                   (6 * 86400 + 2 * 3600, "6d02h"), (None, "unknown")])
def test_one_duration_spelling(seconds, spelled):
    from gpuspend.fmt import duration

    assert duration(seconds) == tui_fmt.duration(seconds) == spelled
