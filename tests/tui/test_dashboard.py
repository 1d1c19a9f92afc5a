"""Pilot tests: what a user sees and does on the dashboard, on real SQLite files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from textual.widgets import Input

from gpuspend import lease
from gpuspend.collectors.reading import ProcReading
from gpuspend.store import connect, transaction
from gpuspend.tui.screens.billing import BillingScreen
from gpuspend.tui.screens.dashboard import DashboardScreen
from gpuspend.tui.screens.help import HelpScreen
from gpuspend.tui.widgets.alerts import AlertsPanel
from gpuspend.tui.widgets.fmt import money
from gpuspend.tui.widgets.gpu_table import GpuTable
from gpuspend.tui.widgets.keyed_table import LaidOutTable
from gpuspend.tui.widgets.process_table import ProcessTable
from gpuspend.tui.widgets.summary import SummaryBar
from tests.conftest import ROOT
from tests.tui.conftest import NOW_MS
from tests.tui.factory import GIB, ScriptedSource, refreshed, screen_text, wait_for, write_samples

pytestmark = pytest.mark.anyio


def cell(table, row: str, col: str) -> str:
    if isinstance(table, LaidOutTable):  # one laid-out cell per row: ask for the field
        return table.value(row, col)
    value = table.get_cell(row, col)
    return getattr(value, "plain", str(value)).strip()


async def started(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.snapshots_applied >= 1)


async def test_demo_dashboard_shows_costs_gpus_processes_and_alerts(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        summary = str(app.screen.query_one(SummaryBar).render())
        assert "$55.04/h" in summary and "MTD" in summary and "idle waste today" in summary
        assert app.snapshot.rate_sources and f"rates: {app.snapshot.rate_sources[0][:24]}" in summary
        gpus = app.screen.query_one(GpuTable)
        assert gpus.row_count == 8
        states = [cell(gpus, g.uuid, "state") for g in app.snapshot.gpus]
        assert states == [g.state for g in app.snapshot.gpus]
        idle = [g for g in app.snapshot.gpus if g.episode_open]
        assert idle and "busy" in states      # the demo has a mix (its story: idle GPUs burning money)
        assert app.screen.query_one(ProcessTable).row_count == len(app.snapshot.processes) > 0
        alerts = str(app.screen.query_one(AlertsPanel).render())
        assert f"idle: GPU {idle[0].index} {idle[0].state}" in alerts and "wasted" in alerts


async def test_update_in_place_keeps_cursor(make_app, db_path, cfg):
    src = ScriptedSource(gpus=4)
    write_samples(db_path, cfg, src, NOW_MS - 60_000, 10)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        table = app.screen.query_one(GpuTable)
        table.focus()
        table.move_cursor(row=2)
        await pilot.pause()
        assert cell(table, "GPU-test-0002", "util").endswith("90%")
        src.util[2] = 3.0
        write_samples(db_path, cfg, src, NOW_MS - 2000, 1)
        await refreshed(pilot)
        assert cell(table, "GPU-test-0002", "util").endswith("3%")
        assert table.cursor_row == 2
        assert table.row_count == 4
        await pilot.press("down")
        assert table.cursor_row == 3


async def test_pause_freezes_display_and_resume_catches_up(make_app, db_path, cfg):
    src = ScriptedSource(gpus=2)
    write_samples(db_path, cfg, src, NOW_MS - 20_000, 5)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("p")
        assert app.paused
        banner = app.screen.query_one("#banner")
        assert banner.display and "PAUSED" in str(banner.render())
        src.util[0] = 1.0
        write_samples(db_path, cfg, src, NOW_MS - 1000, 1)
        n = app.snapshots_applied
        app.action_refresh_now()
        await pilot.pause(0.3)
        assert app.snapshots_applied == n
        table = app.screen.query_one(GpuTable)
        assert cell(table, "GPU-test-0000", "util").endswith("90%")
        await pilot.press("p")
        await wait_for(pilot, lambda: app.snapshots_applied > n)
        assert not app.paused and not banner.display
        assert cell(table, "GPU-test-0000", "util").endswith("1%")


async def test_plus_minus_change_refresh_interval(make_app, demo_db):
    app = make_app(demo_db, interval=1.0)
    async with app.run_test() as pilot:
        await pilot.press("plus")
        assert app.interval == 0.5
        await pilot.press("minus", "minus", "minus")
        assert app.interval == 5.0
        assert app._timer is not None and app._timer._interval == 5.0


async def test_q_quits(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_billing_screen_and_back(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("b")
        assert isinstance(app.screen, BillingScreen)
        title = app.screen.query_one("#billing-title")
        await wait_for(pilot, lambda: "so far" in str(title.render()))
        assert "2026-11" in str(title.render())
        await pilot.pause()
        text = screen_text(app)
        for words in ("2026-11 by day", "2026-11-14", "month so far", "top services", "top GPU SKUs",
                      "import coverage", "cheaper elsewhere", "runpod"):
            assert words in text
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_help_screen_lists_keys(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        for words in ("Pause", "Billing", "Filter", "held-idle", "free-idle"):
            assert words in text
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_slash_filters_processes(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        procs = app.screen.query_one(ProcessTable)
        total = procs.row_count
        carol = sum(1 for p in app.snapshot.processes if p.user == "carol")
        assert 0 < carol < total
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.display and box.has_focus
        await pilot.press(*"carol")
        assert procs.row_count == carol
        await pilot.press("enter")
        assert procs.has_focus and procs.row_count == carol
        await pilot.press("escape")
        assert procs.row_count == total and not box.display


async def test_keymap_override_from_config(make_app, demo_db):
    app = make_app(demo_db, keymap={"pause": "space", "billing": "f2"})
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("p")
        assert not app.paused
        await pilot.press("space")
        assert app.paused
        await pilot.press("f2")
        assert isinstance(app.screen, BillingScreen)
        await pilot.press("escape", "question_mark")
        assert "space" in str(app.screen.query_one("#help-text").render())


async def test_unknown_keymap_id_is_reported(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.apply_keymap({"pasue": "space"}) == ["pasue"]


async def test_command_palette_opens_billing(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Billing")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, BillingScreen))


async def test_markup_and_escapes_in_process_names_are_shown_literally(make_app, db_path, cfg):
    evil = ProcReading(pid=4242, used_memory=2 * GIB, user="[b]mallory[/b]",
                       command="[red]rm -rf /[/red] \x1b[2J\x1b]0;pwned\x07done [link=http://x]y[/link]")
    src = ScriptedSource(gpus=1, procs={0: [evil]})
    write_samples(db_path, cfg, src, NOW_MS - 10_000, 5)
    app = make_app(db_path)
    async with app.run_test(size=(160, 30)) as pilot:     # wide enough for the whole command
        await started(pilot)
        procs = app.screen.query_one(ProcessTable)
        key = "4242:GPU-test-0000"
        assert cell(procs, key, "user") == "[b]mallory[/b]"
        assert cell(procs, key, "cmd") == "[red]rm -rf /[/red] done [link=http://x]y[/link]"
        svg = app.export_screenshot()
        assert "[b]mallory[/b]" in svg and "pwned" not in svg and "\x1b" not in svg


async def test_no_nvml_shows_banner_and_stored_data(make_app, db_path, cfg, monkeypatch):
    import pynvml

    from tests.fake_pynvml import FakeNvml

    write_samples(db_path, cfg, ScriptedSource(gpus=2), NOW_MS - 10_000, 5)
    fake = FakeNvml.h100_box()
    fake.init_error = pynvml.NVMLError_LibraryNotFound
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    app = make_app(db_path, collect=True)
    async with app.run_test(size=(120, 40)) as pilot:
        banner = app.screen.query_one("#banner")
        await wait_for(pilot, lambda: banner.display)
        assert "NVML unavailable" in str(banner.render())
        await started(pilot)
        assert app.screen.query_one(GpuTable).row_count == 2
        assert "NVML unavailable" in app.collector_text


@pytest.fixture
def fake_gpus(monkeypatch):
    from tests.fake_pynvml import FakeNvml

    fake = FakeNvml.h100_box(2)
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake


async def test_lease_handoff_daemon_then_in_app(make_app, db_path, cfg, fake_gpus):
    """While a `gpuspend collect` daemon holds the lease the app only reads; when it stops, the app
    collects; while the app collects a daemon is refused; on quit the app releases the lease."""
    # The demo daemon creates (and marks) its own database: it never writes into one holding real samples.
    env = dict(os.environ)
    daemon = subprocess.Popen([sys.executable, "-m", "gpuspend", "collect", "--demo", "--db", str(db_path),
                               "--interval", "0.5"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              cwd=ROOT, text=True)
    try:
        conn = connect(db_path)
        try:
            deadline = time.monotonic() + 30
            while (lease.holder(conn) is None or lease.holder(conn).pid != daemon.pid) and daemon.poll() is None:
                assert time.monotonic() < deadline, "daemon did not take the lease"
                time.sleep(0.1)
            # The daemon is a demo one only because a subprocess cannot share this test's fake NVML; a real
            # collector refuses a demo database, so the file is made an ordinary one for the handoff tested here.
            with transaction(conn):
                conn.execute("DELETE FROM meta WHERE key = 'demo.database'")
        finally:
            conn.close()
        app = make_app(db_path, collect=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.collector_text == f"daemon pid {daemon.pid} on {socket.gethostname()}")
            assert fake_gpus.calls["nvmlInit"] == 0          # never touched NVML while the daemon collects
            daemon.send_signal(signal.SIGTERM)               # the daemon stops and releases the lease
            daemon.wait(20)
            await wait_for(pilot, lambda: app.collector_text == "in-app", timeout=20)
            await wait_for(pilot, lambda: app._collector.ticks >= 1)
            # its alerts task is handed the dashboard's newest full snapshot rather than building one more
            assert app._collector.recent_snapshot() is app._full is not None
            # a second (real) collector, in another process, is refused by the lease
            code = ("import sys\nfrom gpuspend.collectors.simulated import SimulatedSource\n"
                    "from gpuspend.config import load_config\nfrom gpuspend.daemon import Collector\n"
                    "Collector(sys.argv[1], load_config(), demo=False, source=SimulatedSource()).open()\n")
            refused = subprocess.run([sys.executable, "-c", code, str(db_path)], cwd=ROOT, capture_output=True,
                                     text=True, timeout=60)
            assert refused.returncode != 0 and "LeaseHeld: another collector is already writing" in refused.stderr
            await pilot.press("q")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    conn = connect(db_path)
    try:
        assert lease.holder(conn) is None
    finally:
        conn.close()


async def test_80x24_keeps_every_gpu_and_column(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        gpus = app.screen.query_one(GpuTable)
        await pilot.pause()
        assert gpus.virtual_size.width <= gpus.size.width      # no column cut off / scrolled away
        assert gpus.size.height >= 9                           # header + 8 GPUs
        text = screen_text(app)
        wasting = [g for g in app.snapshot.gpus if g.episode_open]
        for words in ("wasted", "processes", "alerts", *(money(g.episode_waste) for g in wasting)):
            assert words in text
        for g in app.snapshot.gpus:
            assert cell(gpus, g.uuid, "state") in text


async def test_80x24_shows_who_holds_an_idle_gpu_in_the_first_process_rows(make_app, db_path, cfg, monkeypatch):
    """The README's promise: at 80x24 the process holding an idle GPU is among the first rows. Six training runs
    busy for two hours have each cost more today than the notebook holding GPU 6 idle for the last 20 minutes:
    by cost alone it would be the last row, below the screen."""
    runs = {i: [ProcReading(pid=1000 + i, used_memory=30 * GIB, user="train", command=f"torchrun job{i}")]
            for i in range(6)}
    src = ScriptedSource(gpus=7, procs=runs)
    write_samples(db_path, cfg, src, NOW_MS - 7_200_000, 720, step_ms=10_000)        # two busy hours
    src.util[6] = 0.0
    src.procs[6] = [ProcReading(pid=4711, used_memory=10 * GIB, user="bob", command="jupyter kernel")]
    last = write_samples(db_path, cfg, src, NOW_MS + 10_000, 120, step_ms=10_000)     # then 20 idle minutes
    monkeypatch.setenv("GPUSPEND_NOW", str(last / 1000))
    app = make_app(db_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.pause()
        snap = app.snapshot
        assert "GPU-test-0006" in snap.idle_now()
        holder = next(p for p in snap.processes if p.pid == 4711)
        assert holder.cost_today < min(p.cost_today for p in snap.processes if p.pid != 4711)
        table = app.screen.query_one(ProcessTable)
        assert table.shown[0].pid == 4711
        lines = screen_text(app).splitlines()
        at = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["pid", "user"])
        assert lines[at + 1].split()[:2] == ["4711", "bob"], lines[at:]
        rest = table.shown[1:]
        assert [p.cost_today for p in rest] == sorted((p.cost_today for p in rest), reverse=True)


async def test_ascii_mode_draws_no_box_or_block_characters(make_app, demo_db):
    app = make_app(demo_db, ascii_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.pause()
        text = screen_text(app)
        assert "#" in text and "processes" in text
        odd = {ch for ch in text if "\u2500" <= ch <= "\u259f" or "\u2800" <= ch <= "\u28ff"}
        assert not odd, odd


async def test_notification_when_an_idle_episode_opens(make_app, db_path, cfg, monkeypatch):
    src = ScriptedSource(gpus=2)
    write_samples(db_path, cfg, src, NOW_MS - 600_000, 301)           # busy for the last 10 minutes
    app = make_app(db_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await started(pilot)
        assert "idle alert" not in screen_text(app)
        src.util[1] = 0.0                                              # GPU 1 goes idle for 20 minutes
        write_samples(db_path, cfg, src, NOW_MS + 2000, 600)
        monkeypatch.setenv("GPUSPEND_NOW", str((NOW_MS + 1_200_000) / 1000))
        await refreshed(pilot)
        await pilot.pause()
        text = screen_text(app)
        assert "idle alert" in text and "idle: GPU 1" in text
        assert str(app.screen.query_one(AlertsPanel).render()).count("idle: GPU 1") == 1
        # the same episode on the next tick does not notify again
        n = len(app._notifications)
        await refreshed(pilot)
        assert len(app._notifications) == n


async def test_an_idle_alert_toasts_once_when_shown_live_and_not_again_when_the_engine_stores_it(
        make_app, db_path, cfg, monkeypatch):
    """A dashboard reading a separate collector's database shows an idle episode the moment it opens; that
    collector's alert engine stores the alert a little later. The user is told once, not again when it is
    stored. (The in-app collector stores it at once: the two snapshots are replayed in the order a dashboard
    next to a daemon sees them.)"""
    src = ScriptedSource(gpus=2)
    write_samples(db_path, cfg, src, NOW_MS - 600_000, 301)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await started(pilot)
        src.util[1] = 0.0
        write_samples(db_path, cfg, src, NOW_MS + 2000, 600)
        monkeypatch.setenv("GPUSPEND_NOW", str((NOW_MS + 1_200_000) / 1000))
        await refreshed(pilot)
        stored = app.snapshot
        assert any(a.kind == "idle" and a.state == "open" for a in stored.alerts)
        live = replace(stored, alerts=tuple(a for a in stored.alerts if a.kind != "idle"))
        told: list[str] = []
        monkeypatch.setattr(app, "announce", lambda a: told.append(a.text))
        app.apply_snapshot(replace(stored, alerts=()))       # before the episode: nothing open
        app.apply_snapshot(replace(live, gpus=tuple(replace(g, episode_open=False) for g in live.gpus)))
        app.apply_snapshot(live)                             # shown live: told
        app.apply_snapshot(stored)                           # the engine has stored it: not told again
        app.apply_snapshot(stored)
        await pilot.pause()
        assert len(told) == 1 and told[0].startswith("idle: GPU 1"), told
        assert str(app.screen.query_one(AlertsPanel).render()).count("idle: GPU 1") == 1


async def test_gpus_without_a_rate_show_no_rate_not_zero(make_app, db_path, cfg):
    """No `provider:` and no `rates:` (a bare GPU box): the header must not claim the box costs $0.00/h."""
    job = ProcReading(pid=77, used_memory=2 * GIB, user="ana", command="train.py", started=1)
    write_samples(db_path, cfg, ScriptedSource(gpus=2, source="nvml", procs={0: [job]}), NOW_MS - 10_000, 5)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        header = str(app.screen.query_one(SummaryBar).render())
        assert "now no rate" in header and "today no rate" in header and "$0.00" not in header
        assert cell(app.screen.query_one(GpuTable), "GPU-test-0000", "rate") == "no rate"
        assert cell(app.screen.query_one(ProcessTable), "77:GPU-test-0000", "cost") == "no rate"


async def test_ticks_between_money_refreshes_show_new_samples_and_a_state_change_rebuilds(make_app, db_path, cfg):
    """A tick within MONEY_REFRESH_MS of the last full build shows the newest util and power at once and keeps
    the money as built; a GPU turning idle rebuilds everything on that same tick (state, idle, money)."""
    src = ScriptedSource(gpus=2)
    write_samples(db_path, cfg, src, NOW_MS - 20_000, 10)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        full = app.snapshot
        table = app.screen.query_one(GpuTable)
        src.util[0] = 70.0                        # still busy: a live refresh
        write_samples(db_path, cfg, src, NOW_MS - 1000, 1)
        n = app.snapshots_applied
        app._tick()
        await wait_for(pilot, lambda: app.snapshots_applied > n)
        assert cell(table, "GPU-test-0000", "util").endswith("70%")
        assert app.snapshot.gpus[0].power == 100 + 5 * 70.0
        assert app.snapshot.live_ms is not None and app.snapshot.now_ms == full.now_ms
        assert app.snapshot.today_cost == full.today_cost and app.snapshot.months == full.months
        src.util[1] = 0.0                         # no process: free idle from this sample on
        write_samples(db_path, cfg, src, NOW_MS, 1)
        n = app.snapshots_applied
        app._tick()
        await wait_for(pilot, lambda: app.snapshots_applied > n)
        assert app.snapshot.live_ms is None      # a full build
        assert cell(table, "GPU-test-0001", "state") == "free-idle"


def test_a_budget_toasts_again_when_it_crosses_a_higher_threshold_not_when_it_is_stored(db_path, tmp_path):
    """The alerts panel's toast identity (AlertLine.key) for a budget: the same at one level whether shown
    live or stored by the engine; a new one at 100% after 80%, stored or live."""
    from gpuspend import alerts
    from gpuspend.tui.widgets.alerts import alert_lines
    from tests.alerts.snapshots import config, month, snapshot

    cfg = config(tmp_path, budget={"monthly": 1000, "thresholds": [80, 100], "basis": ["actual"]})

    def keys(pct: float, *, store: bool) -> list[str]:
        snap = snapshot(NOW_MS, months=[month(actual_pct=pct, budget=1000)])
        if store:
            conn = connect(db_path)
            try:
                alerts.evaluate(conn, cfg, snap, NOW_MS)
                conn.commit()
                snap = replace(snap, alerts=alerts.alert_views(conn))
            finally:
                conn.close()
        return [a.key for a in alert_lines(snap, cfg) if a.kind == "budget"]

    live80 = keys(85, store=False)
    assert len(live80) == 1
    assert keys(85, store=True) == live80                 # stored by the engine: the same alert, no new toast
    assert keys(101, store=True) != live80                # 100% crossed while open: toasted again
    assert keys(101, store=False) == keys(101, store=True)


def test_a_stored_idle_alert_reads_as_its_gpu_row_beside_it(tmp_path):
    """The engine stored GPU 4's idle alert when its episode was 1d08h long (on the demo's first start, before
    the month was backfilled; or up to half a minute ago): the panel states the episode the GPU table shows
    now, 2d14h, in the GPU's own currency, not the stored title's length."""
    from gpuspend.snapshot import AlertView, Rate
    from gpuspend.tui.widgets.alerts import alert_lines
    from tests.alerts.snapshots import config, gpu, snapshot

    eur = Rate(3.0, "EUR", "config", "config: 3.00 EUR/GPU-hour")
    g = gpu("GPU-4", index=4, state="free-idle", idle_for_s=2 * 86400 + 14 * 3600, episode_open=True,
            waste=446.0, rate=eur)
    stored = AlertView("idle", "GPU-4", "open", NOW_MS - 32 * 3600_000, 96.0,
                       "GPU 4 (NVIDIA H100 80GB HBM3) on node-1 idle for 1d08h", "EUR")
    snap = replace(snapshot(NOW_MS, gpus=[g]), alerts=(stored,))
    (line,) = [a for a in alert_lines(snap, config(tmp_path)) if a.kind == "idle"]
    # as the panel writes an idle GPU the engine has not stored: money before anything an 80-column panel cuts
    assert line.text == "idle: GPU 4 free-idle for 2d14h: 446.00 EUR wasted at 3.00 EUR/h"
    # the GPU left the snapshot: the stored title and money are all there is, in the alert's own currency
    gone = replace(snap, gpus=())
    (line,) = [a for a in alert_lines(gone, config(tmp_path)) if a.kind == "idle"]
    assert line.text == "idle: GPU 4 (NVIDIA H100 80GB HBM3) on node-1 idle for 1d08h (96.00 EUR)"


@pytest.mark.parametrize(("currency", "rate"), [("JPY", 1030.5), ("EUR", 6.35)])
async def test_a_dashboard_in_another_currency_names_it_once_and_keeps_the_idle_waste_at_80_columns(
        make_app, demo_db, tmp_path, currency, rate):
    """Rated in JPY (or EUR), four `JPY`s on the header line pushed the idle waste off an 80-column screen,
    and the GPU table's wasted column with it. The currency is named once at the start of the line and in the
    GPU table's `JPY/h` header; the amounts in it are bare."""
    from tests.costing.builders import cfg_from

    cfg = cfg_from(tmp_path, f"currency: {currency}\nrates: {{per_model: {{H100: {rate}}}}}\n")
    app = make_app(demo_db, cfg=cfg)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.pause()
        lines = screen_text(app).splitlines()
        head = lines[0]
        assert head.split()[:2] == ["DEMO", currency] and head.count(currency) == 1, head
        idle = money(app.snapshot.idle_waste_today, currency, decimals=0, stated=currency)
        assert head.rstrip().endswith(f"idle today {idle}"), head
        table = next(ln for ln in lines if "state" in ln and "wasted" in ln)
        assert f"{currency}/h" in table and "$" not in table
        wasting = next(g for g in app.snapshot.gpus if g.episode_open)
        row = next(ln for ln in lines if ln.split()[:1] == [str(wasting.index)] and "idle" in ln)
        assert row.rstrip().endswith(money(wasting.episode_waste, currency, stated=currency)), row
        chart = next(ln for ln in lines if "by hour, last 24 h" in ln)
        assert f"{currency}/h by hour" in chart and "$" not in chart, chart       # was `$/h by hour`
        procs = next(ln for ln in lines if ln.split()[:2] == ["pid", "user"])
        assert f"idle {currency}" in procs and "$" not in procs, procs     # was `idle $` over yen
        first = app.screen.query_one(ProcessTable).shown[0]
        assert money(first.cost_today, currency, stated=currency) in next(
            ln for ln in lines if ln.split()[:1] == [str(first.pid)])
