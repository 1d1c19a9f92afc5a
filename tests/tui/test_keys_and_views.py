"""Pilot tests for issue 17: every binding, the process sort/detail/filters, month navigation on the billing
screen, --ascii (nothing outside ASCII), NO_COLOR / --no-color, and the 80x24 layout showing the idle alert.

Expected values are computed from the snapshot the screen shows (or by hand), never read back from the widget
that is under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpuspend.collectors.reading import ProcReading
from gpuspend.config import load_config
from gpuspend.snapshot import ProcessNow
from gpuspend.tui.screens.billing import BillingScreen, shift_month
from gpuspend.tui.screens.dashboard import DashboardScreen
from gpuspend.tui.screens.help import HelpScreen
from gpuspend.tui.screens.process import ProcessScreen
from gpuspend.tui.widgets.chart import render_chart
from gpuspend.tui.widgets.fmt import money, share
from gpuspend.tui.widgets.gpu_table import GpuTable
from gpuspend.tui.widgets.process_table import ProcessTable, sort_processes
from tests.conftest import run_cli
from tests.tui.conftest import NOW_MS
from tests.tui.factory import GIB, ScriptedSource, refreshed, screen_text, wait_for, write_samples

pytestmark = pytest.mark.anyio


async def started(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.snapshots_applied >= 1)
    await pilot.pause()


def order(app) -> list[tuple[int, int | None]]:
    """(pid, GPU) of the process rows in screen order."""
    table = app.screen.query_one(ProcessTable)
    return [(int(k.value.split(":")[0]), next(p.gpu_index for p in app.snapshot.processes
                                              if f"{p.pid}:{p.gpu_uuid}" == k.value)) for k in table.rows]


def by_hand(app, key) -> list[tuple[int, int | None]]:
    rows = sorted(app.snapshot.processes, key=lambda p: (*key(p), p.gpu_index, p.pid))
    return [(p.pid, p.gpu_index) for p in rows]


def non_ascii(text: str) -> set[str]:
    return {ch for ch in text if ord(ch) > 127}


# -- process table: sort, detail, filters -----------------------------------------------------------------

async def test_s_cycles_sort_cost_memory_gpu_user_and_S_reverses(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        box = app.screen.query_one("#procs-box")
        idle = app.snapshot.idle_now()
        assert order(app) == by_hand(app, lambda p: (p.gpu_uuid not in idle, -p.cost_today, -p.idle_cost_today))
        assert "by cost today" in str(box.border_title)
        await pilot.press("s")
        assert order(app) == by_hand(app, lambda p: (-(p.used_memory or 0),))
        assert "by memory" in str(box.border_title)
        await pilot.press("s")
        assert order(app) == by_hand(app, lambda p: ())
        await pilot.press("s")
        assert order(app) == by_hand(app, lambda p: (p.user,))
        await pilot.press("S")
        assert order(app) == by_hand(app, lambda p: (p.user,))[::-1]
        assert "ascending" in str(box.border_title)
        await pilot.press("s")                      # back to cost
        assert order(app)[0] == by_hand(app, lambda p: (p.gpu_uuid not in idle, -p.cost_today,
                                                         -p.idle_cost_today))[0]


def test_the_default_order_puts_who_holds_an_idle_gpu_first() -> None:
    """A notebook holding an idle H100 since this morning has cost less today than two busy training runs: in
    the default order (cost today) it still comes first, since only the first rows show at 80x24. The other
    orders are as asked."""
    def proc(pid: int, gpu: str, index: int, cost: float, idle: float, mem: int) -> ProcessNow:
        return ProcessNow(pid=pid, user="u", command="python", gpu_uuid=gpu, gpu_index=index, used_memory=mem,
                          sm_util=None, cost_today=cost, idle_cost_today=idle)

    rows = [proc(1, "GPU-a", 0, 90.0, 0.0, 70), proc(2, "GPU-b", 1, 80.0, 0.0, 60), proc(3, "GPU-c", 2, 12.5, 12.5, 5)]
    idle = frozenset({"GPU-c"})
    assert [p.pid for p in sort_processes(rows, "cost", idle=idle)] == [3, 1, 2]
    assert [p.pid for p in sort_processes(rows, "cost")] == [1, 2, 3]
    assert [p.pid for p in sort_processes(rows, "cost", reverse=True, idle=idle)] == [3, 2, 1]
    assert [p.pid for p in sort_processes(rows, "memory", idle=idle)] == [1, 2, 3]


async def test_sort_keeps_the_cursor_on_its_process(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        table = app.screen.query_one(ProcessTable)
        table.focus()
        table.move_cursor(row=2)
        await pilot.pause()
        picked = table.selected()
        await pilot.press("s")
        assert table.selected() == picked


async def test_enter_opens_the_process_detail_with_full_command_and_costs(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        held = next(g for g in app.snapshot.gpus if g.state == "held-idle")
        proc = next(p for p in app.snapshot.processes if p.gpu_uuid == held.uuid)
        table = app.screen.query_one(ProcessTable)
        table.focus()
        table.move_cursor(row=[k.value for k in table.rows].index(f"{proc.pid}:{proc.gpu_uuid}"))
        await pilot.pause()
        await pilot.press("enter")
        assert isinstance(app.screen, ProcessScreen)
        text = str(app.screen.query_one("#process-text").render())
        flat = " ".join(text.split())
        assert " ".join(proc.command.split()) in flat          # the whole command, not cut at 35 characters
        assert len(proc.command) > 40
        for words in (str(proc.pid), proc.user, f"GPU {held.index}", "held-idle", money(proc.cost_today),
                      money(proc.idle_cost_today), "workload"):
            assert words in text
        assert proc.idle_cost_today > 0                       # it holds an idle GPU: some of today was idle
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


async def test_process_rows_are_redrawn_only_when_what_they_show_changes(make_app, demo_db):
    """Each process's cost today grows every sample, its cents every few seconds: a sample that moves no shown
    figure redraws nothing, yet the detail view reads that newest sample; a cent more is shown at once."""
    from dataclasses import replace

    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        table = app.screen.query_one(ProcessTable)
        snap = app.snapshot
        table.focus()
        await pilot.pause()
        first = table.selected()
        row = f"{first.pid}:{first.gpu_uuid}"
        base = round(first.cost_today, 2)                # a cost whose shown cents have room either side
        start = tuple(replace(p, cost_today=base + 0.001) if p is first else p for p in snap.processes)
        table.show(start, snap.currency_of)
        await pilot.pause()
        drawn = table.get_row(row)[0].plain
        assert table.value(row, "cost") == money(base + 0.001, snap.currency)
        later = tuple(replace(p, cost_today=base + 0.002, sm_util=77.0) if p.pid == first.pid
                      and p.gpu_uuid == first.gpu_uuid else p for p in start)
        assert table.show(later, snap.currency_of) is False
        assert table.get_row(row)[0].plain == drawn
        assert table.selected().sm_util == 77.0          # the process detail shows the newest sample
        cent = tuple(replace(p, cost_today=base + 0.011) if p.pid == first.pid
                     and p.gpu_uuid == first.gpu_uuid else p for p in later)
        assert table.show(cent, snap.currency_of) is True
        assert table.value(row, "cost") == money(base + 0.011, snap.currency)
        assert table.get_row(row)[0].plain != drawn


async def test_enter_on_a_gpu_shows_only_its_processes_and_again_all(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        gpus = app.screen.query_one(GpuTable)
        gpus.focus()
        gpus.move_cursor(row=6)
        await pilot.pause()
        await pilot.press("enter")
        procs = app.screen.query_one(ProcessTable)
        assert {gpu for _pid, gpu in order(app)} == {6}
        assert procs.row_count == sum(1 for p in app.snapshot.processes if p.gpu_index == 6)
        assert "processes on GPU 6" in screen_text(app)
        await pilot.press("enter")
        assert procs.row_count == len(app.snapshot.processes)


async def test_only_shows_a_gpu_subset_and_says_so(make_app, demo_db):
    app = make_app(demo_db, only_gpus=frozenset({0, 4}))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        gpus = app.screen.query_one(GpuTable)
        assert gpus.row_count == 2
        assert {gpu for _pid, gpu in order(app)} == {0, 4}
        assert "showing GPUs 0,4 of 8" in screen_text(app)
        # the header's totals stay the whole box's: the subset is a view, not a different box
        assert f"{money(app.snapshot.cost_per_hour)}/h" in screen_text(app)


async def test_u_cycles_the_user_filter(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        users = sorted({p.user for p in app.snapshot.processes})
        procs = app.screen.query_one(ProcessTable)
        for user in users:
            await pilot.press("u")
            assert procs.row_count == sum(1 for p in app.snapshot.processes if p.user == user)
            assert f"user {user}" in screen_text(app)
        await pilot.press("u")
        assert procs.row_count == len(app.snapshot.processes)


async def test_user_option_starts_filtered(make_app, demo_db):
    app = make_app(demo_db, user="bob")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        assert {p for p, _g in order(app)} == {p.pid for p in app.snapshot.processes if p.user == "bob"}


async def test_workload_column_appears_when_processes_have_one(make_app, db_path, cfg):
    """Issue 14's `workload` of a process is a column when any process has one, and absent otherwise."""
    from dataclasses import replace

    job = ProcReading(pid=77, used_memory=2 * GIB, user="ana", command="train.py", started=1)
    write_samples(db_path, cfg, ScriptedSource(gpus=1, procs={0: [job]}), NOW_MS - 10_000, 5)
    app = make_app(db_path)
    async with app.run_test(size=(140, 30)) as pilot:
        await started(pilot)
        table = app.screen.query_one(ProcessTable)
        if all(not p.workload for p in app.snapshot.processes):
            assert "workload" not in [f for f, _l in table.FIELDS]
        procs = tuple(replace(p, workload="job 1234 train") for p in app.snapshot.processes)
        app.apply_snapshot(replace(app.snapshot, processes=procs))
        await pilot.pause()
        assert table.value("77:GPU-test-0000", "workload") == "job 1234 train"
        assert "job 1234 train" in screen_text(app)


async def test_w_groups_the_rows_by_workload_costliest_workload_first(make_app, db_path, cfg):
    """Issue 14: on a node where containers run as root, `w` puts each pod's processes together, the pod that
    costs most first, whatever the per-process order was."""
    from dataclasses import replace

    procs = [ProcReading(pid=100 + i, used_memory=(i + 1) * GIB, user="root", command=f"worker {i}", started=1)
             for i in range(4)]
    write_samples(db_path, cfg, ScriptedSource(gpus=4, procs={i: [procs[i]] for i in range(4)}), NOW_MS - 10_000, 5)
    app = make_app(db_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await started(pilot)
        # pods: train-a holds pids 100 and 103, serve-b holds 101 and 102; made-up costs so the groups differ
        pod = {100: "train-a", 103: "train-a", 101: "serve-b", 102: "serve-b"}
        cost = {100: 1.0, 103: 4.0, 101: 3.0, 102: 3.0}          # serve-b $6.00 > train-a $5.00
        rows = tuple(replace(p, workload=pod[p.pid], cost_today=cost[p.pid]) for p in app.snapshot.processes)
        app.apply_snapshot(replace(app.snapshot, processes=rows))
        await pilot.pause()
        assert [p for p, _g in order(app)] == [103, 101, 102, 100]        # by cost today: pods interleaved
        await pilot.press("w")
        await pilot.pause()
        assert [p for p, _g in order(app)] == [101, 102, 103, 100]        # serve-b ($6) then train-a ($5)
        assert "by workload" in str(app.screen.query_one("#procs-box").border_title)
        await pilot.press("w")
        await pilot.pause()
        assert [p for p, _g in order(app)] == [103, 101, 102, 100]


# -- bindings -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["question_mark", "h", "f1"])
async def test_help_opens_with_question_mark_h_and_f1_and_lists_binding_ids(make_app, demo_db, key):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press(key)
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        # every id tui.keymap accepts is shown next to its key, r included
        for bid in ("quit", "pause", "faster", "slower", "billing", "help", "refresh", "filter", "sort",
                    "sort_reverse", "user", "group", "alerts", "month_prev", "month_next"):
            assert f"[{bid}]" in text, bid
        assert "Refresh now" in text
        await pilot.press(key)
        assert isinstance(app.screen, DashboardScreen)


async def test_a_focuses_the_alerts_panel(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.press("a")
        assert app.focused is app.screen.query_one("#alerts")


async def test_r_refreshes_now(make_app, db_path, cfg):
    src = ScriptedSource(gpus=1)
    write_samples(db_path, cfg, src, NOW_MS - 60_000, 10)
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        src.util[0] = 2.0
        write_samples(db_path, cfg, src, NOW_MS - 2000, 1)
        await refreshed(pilot)                           # presses r
        assert app.screen.query_one(GpuTable).value("GPU-test-0000", "util").endswith("2%")


async def test_faster_five_times_shows_one_toast_not_five(make_app, demo_db):
    app = make_app(demo_db, interval=60)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await started(pilot)
        for _ in range(5):
            await pilot.press("plus")
        await pilot.pause()
        toasts = [n.message for n in app._notifications if n.message.startswith("refresh every")]
        assert toasts == ["refresh every 1 s"]             # 60 -> 30 -> 10 -> 5 -> 2 -> 1, the last one only


async def test_screenshot_goes_to_the_current_directory_and_says_where(make_app, demo_db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home-without-downloads"))
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await started(pilot)
        app.action_screenshot()
        await pilot.pause()
        saved = list(tmp_path.glob("*.svg"))
        assert len(saved) == 1 and "<svg" in saved[0].read_text(encoding="utf-8")
        assert any(str(saved[0]) in n.message for n in app._notifications)


async def test_screenshot_falls_back_to_the_state_dir(make_app, demo_db, tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()                                   # the current directory no longer exists (nor is writable)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await started(pilot)
        app.action_screenshot()
        await pilot.pause()
        saved = list((tmp_path / "state").rglob("*.svg"))
        assert len(saved) == 1
        assert any(str(saved[0]) in n.message for n in app._notifications)


# -- billing: month navigation, budget, projection, refresh ----------------------------------------------------

async def test_billing_months_go_back_and_forward_but_not_past_this_month(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("b")
        screen = app.screen
        assert isinstance(screen, BillingScreen)
        await wait_for(pilot, lambda: screen.loads >= 1)
        assert "billing 2026-11" in screen_text(app)
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: screen.loads >= 2)
        text = screen_text(app)
        assert "billing 2026-10" in text and "2026-10 by day" in text and "month total" in text
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: screen.loads >= 3)
        assert "billing 2026-11" in screen_text(app)
        await pilot.press("right_square_bracket")        # December has not started
        await pilot.pause()
        assert screen.month == "2026-11"


def test_shift_month_crosses_years() -> None:
    assert shift_month("2026-01", -1) == "2025-12"
    assert shift_month("2026-12", 1) == "2027-01"
    assert shift_month("2026-11", 0) == "2026-11"


async def test_billing_shows_budget_and_projection_and_refreshes(make_app, demo_db, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("budget:\n  monthly: 30000\n", encoding="utf-8")
    cfg = load_config(str(conf), explicit=True)
    app = make_app(demo_db, cfg=cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        month = next(m for m in app.snapshot.months if m.currency == "USD")
        await pilot.press("b")
        screen = app.screen
        await wait_for(pilot, lambda: screen.loads >= 1)
        text = screen_text(app)
        assert f"month to date {money(month.mtd)}" in text
        assert f"projected {money(month.projection, decimals=0)}" in text
        assert "budget $30,000" in text and f"projected {month.budget_pct_forecast:.0f}%" in text
        await pilot.press("r")                           # refresh
        await wait_for(pilot, lambda: screen.loads >= 2)


async def test_billing_on_the_first_of_the_month_points_to_the_last_one(make_app, db_path, cfg, monkeypatch):
    write_samples(db_path, cfg, ScriptedSource(gpus=1), NOW_MS - 10_000, 5)
    monkeypatch.setenv("GPUSPEND_NOW", "2026-12-01T00:00:30+00:00")
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("b")
        screen = app.screen
        await wait_for(pilot, lambda: screen.loads >= 1)
        assert "nothing recorded in 2026-12 yet: [ shows 2026-11" in screen_text(app)


# -- terminal: --ascii, NO_COLOR, 80x24 -----------------------------------------------------------------------

@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_ascii_mode_draws_nothing_outside_ascii_on_any_screen(make_app, demo_db, size):
    app = make_app(demo_db, ascii_only=True, interval=60)
    async with app.run_test(size=size, notifications=True) as pilot:
        await started(pilot)
        assert not non_ascii(screen_text(app)), non_ascii(screen_text(app))
        await pilot.press("plus")                      # a toast
        await pilot.pause()
        assert "refresh every" in screen_text(app) and not non_ascii(screen_text(app)), non_ascii(screen_text(app))
        await pilot.press("ctrl+p")                    # the command palette
        await pilot.pause(0.3)
        assert not non_ascii(screen_text(app)), non_ascii(screen_text(app))
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("b")
        screen = app.screen
        await wait_for(pilot, lambda: screen.loads >= 1)
        assert not non_ascii(screen_text(app)), non_ascii(screen_text(app))
        await pilot.press("escape", "question_mark")
        assert not non_ascii(screen_text(app))
        await pilot.press("escape")
        table = app.screen.query_one(ProcessTable)
        table.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, ProcessScreen)
        assert not non_ascii(screen_text(app))


# the SVG frame's three dots and Rich's default SVG foreground: the export's, not the app's
_WINDOW_BUTTONS = {"#ff5f57", "#febc2e", "#28c840", "#c5c8c6"}


def _colours(svg: str) -> set[str]:
    return {c.lower() for c in re.findall(r"#[0-9a-fA-F]{6}\b", svg)} - _WINDOW_BUTTONS


def _grey(c: str) -> bool:
    return c[1:3] == c[3:5] == c[5:7]


async def test_no_color_env_and_flag_draw_in_greys_only(make_app, demo_db, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        assert not all(_grey(c) for c in _colours(app.export_screenshot()))   # colours without it
    app = make_app(demo_db, no_color=True)                                      # --no-color
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        assert all(_grey(c) for c in _colours(app.export_screenshot()))
    monkeypatch.setenv("NO_COLOR", "1")                                         # https://no-color.org
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        assert all(_grey(c) for c in _colours(app.export_screenshot()))


async def test_80x24_shows_the_idle_gpu_who_holds_it_and_what_it_cost(make_app, demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        lines = screen_text(app).splitlines()
        text = "\n".join(lines)
        held = next(g for g in app.snapshot.gpus if g.state == "held-idle" and g.episode_open)
        holder = next(p for p in app.snapshot.processes if p.gpu_uuid == held.uuid)
        alert = next(line for line in lines if f"GPU {held.index} held-idle" in line)
        assert f"by {holder.user} pid {holder.pid}" in alert and money(held.episode_waste) in alert
        assert f"{holder.pid}  {holder.user}" in text                 # its process row is on screen
        for g in app.snapshot.gpus:
            if g.episode_open:                                         # every open idle alert is visible
                assert any(f"GPU {g.index} {g.state}" in line for line in lines)
        # the header is one line (budget or not) and the chart has its scale and time axis
        assert lines[0].lstrip().startswith("DEMO")
        assert lines[1].lstrip().startswith(("rates:", "budget"))
        assert "now" in text and "-6h" in text and "useful" in text and "idle" in text


async def test_80x24_header_stays_one_line_with_a_budget(make_app, demo_db, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("budget:\n  monthly: 30000\n", encoding="utf-8")
    app = make_app(demo_db, cfg=load_config(str(conf), explicit=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        lines = screen_text(app).splitlines()
        assert "MTD" in lines[0] and "idle today" in lines[0]
        assert lines[1].lstrip().startswith("budget $30,000")
        assert lines[2].lstrip().startswith("#")                       # the GPU table follows at once


async def test_120x40_header_keeps_idle_waste_with_a_budget(make_app, demo_db, tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("budget:\n  monthly: 30000\n", encoding="utf-8")
    app = make_app(demo_db, cfg=load_config(str(conf), explicit=True))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        m = next(m for m in app.snapshot.months if m.currency == "USD")
        first = screen_text(app).splitlines()[0]
        assert "budget $30,000" in first and f"{share(m.budget_pct_forecast)} projected" in first
        assert f"idle waste today {money(app.snapshot.idle_waste_today)}" in first


async def test_no_gpus_says_no_gpus_not_zero_dollars(make_app, db_path):
    from gpuspend.store import connect

    connect(db_path).close()                                           # an empty, migrated database
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        first = screen_text(app).splitlines()[0]
        assert "no GPUs" in first and "$0.00" not in first
        # today's money on a box with no GPU is the report's word ("cost so far: no GPU"), never $0.00
        assert "today no GPU" in first and "idle waste today no GPU" in first


async def test_outdated_billing_shows_on_a_dashboard_no_alert_engine_runs_for(make_app, db_path, cfg):
    """A box without a GPU viewing billing runs no collector, so no alert engine stores the `outdated` alert:
    the panel states it from the same rule the report's --fail-on outdated uses (the Google Cloud export of
    the fixture ends 11-10 01:00, 5d11h before the fixed clock; alerts.stale_billing is 3 days)."""
    from gpuspend.collectors.billing.importer import import_paths
    from gpuspend.store import connect

    conn = connect(db_path)
    import_paths(conn, [Path(__file__).resolve().parents[1] / "fixtures" / "billing" / "focus_gpu.csv"])
    conn.close()
    title = "Billing data is outdated: the focus:Google Cloud/GCP-01 export ends 2026-11-10 01:00 UTC (5d11h ago)"
    report = run_cli("--db", str(db_path), "--report", "--no-sample", "--fail-on", "outdated")
    assert report.returncode == 1 and title in report.stdout.replace("\n      ", " ")
    app = make_app(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        assert [a.text for a in app.alert_lines if a.kind == "outdated"] == [f"outdated: {title}"]
        assert "outdated: Billing data is" in screen_text(app)


# -- the chart's axes -----------------------------------------------------------------------------------------

def test_chart_has_a_dollar_scale_and_an_hours_ago_axis() -> None:
    # 24 hours of $40/h useful, six of them with $15/h idle on top: the scale's top is $55/h
    hourly = tuple((h * 3_600_000, 40.0, 15.0 if 10 <= h < 16 else 0.0) for h in range(24))
    text = render_chart(hourly, 60, 8, currency="USD").plain.splitlines()
    assert text[0].startswith("$55") and text[5].lstrip().startswith("$0")
    assert "now" in text[6] and "-6h" in text[6] and "-12h" in text[6] and "-18h" in text[6]
    assert "useful $40.00/h" in text[7] and "idle $0.00/h" in text[7]
    ascii_text = render_chart(hourly, 60, 8, currency="USD", ascii_only=True).plain
    assert not non_ascii(ascii_text) and "#" in ascii_text and ":" in ascii_text


# -- the command line -----------------------------------------------------------------------------------------

def test_short_flags_and_once(demo_db: Path) -> None:
    once = run_cli("-1", "--db", str(demo_db), "--no-sample")
    assert once.returncode in (0, 1) and "gpuspend" in once.stdout.lower() and not once.stderr.startswith("Trace")
    assert run_cli("-h").returncode == 0
    helps = run_cli("collect", "-h").stdout
    assert "-i, --interval" in helps and "-1, --once" in helps
    assert "-i, --interval" in run_cli("-h").stdout


def test_root_once_before_a_subcommand_is_refused(demo_db: Path) -> None:
    r = run_cli("-1", "collect", "--db", str(demo_db))
    assert r.returncode == 2 and "collect --once" in r.stderr


def test_dashboard_flags_are_refused_by_the_report(demo_db: Path) -> None:
    for flag in (["--no-color"], ["--only", "0"], ["--user", "bob"]):
        r = run_cli("--report", "--db", str(demo_db), *flag)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (flag, r.stderr)


def test_bad_only_is_one_clear_line(demo_db: Path) -> None:
    r = run_cli("--db", str(demo_db), "--only", "zero")
    assert r.returncode == 2 and "--only" in r.stderr and "0,3" in r.stderr and "Traceback" not in r.stderr
