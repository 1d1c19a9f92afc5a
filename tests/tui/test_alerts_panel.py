"""The alerts panel redraws what changed without laying the screen out again when the text keeps its shape.

An open idle alert's duration ticks over every minute ("for 2h03m" -> "for 2h04m"): the same length, the same
spaces, so it wraps into the same lines and only those cells are repainted. A change of shape (another alert,
a longer amount) is laid out, so nothing is cut off or left over.
"""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from gpuspend.tui.widgets.alerts import AlertLine, AlertsPanel
from tests.tui.factory import screen_text

pytestmark = pytest.mark.anyio


def idle(minutes: int, wasted: str) -> AlertLine:
    return AlertLine("idle:GPU-4", "idle", "warning",
                     f"idle: GPU 4 held-idle by bob for 2h{minutes:02d}m: {wasted} wasted at $6.88/h", 14.0)


class PanelApp(App):
    def compose(self) -> ComposeResult:
        yield AlertsPanel()


async def test_a_ticking_duration_repaints_without_a_layout_and_a_new_shape_is_laid_out() -> None:
    app = PanelApp()
    async with app.run_test(size=(60, 8)) as pilot:
        panel = app.query_one(AlertsPanel)
        layouts: list[bool] = []
        real = panel.refresh

        def refresh(*regions, **kw):
            layouts.append(bool(kw.get("layout")))
            return real(*regions, **kw)

        panel.refresh = refresh
        panel.show([idle(3, "$14.07")])
        await pilot.pause()
        assert "for 2h03m" in screen_text(app)
        panel.show([idle(4, "$14.18")])                  # a minute later: same shape
        await pilot.pause()
        text = screen_text(app)
        assert "for 2h04m" in text and "2h03m" not in text and "$14.18" in text
        assert layouts == [True, False]
        # a longer amount and a second alert: laid out, every line of both shown
        budget = AlertLine("budget:2026-11:USD:actual", "budget", "error", "budget: spent 104% of $10,000.00 "
                           "(threshold 100%)", 0.0)
        panel.show([budget, idle(5, "$1,014.29")])
        await pilot.pause()
        text = screen_text(app)
        assert layouts[-1] is True
        assert "budget: spent 104%" in text and "(threshold 100%)" in text and "$1,014.29" in text
        assert "$6.88/h" in text                        # the wrapped tail of the idle line is on screen too


def test_an_open_idle_alert_shows_the_gpu_rows_live_waste_not_the_engines_older_figure(tmp_path) -> None:
    """The alert engine stored $179.71 at its last evaluation; the snapshot the GPU row shows says $179.77 now
    (five seconds of a $6.88/h GPU later a cent more, half a minute later five): the panel says $179.77 too."""
    from dataclasses import replace

    from gpuspend.snapshot import AlertView
    from gpuspend.tui.widgets.alerts import alert_lines
    from gpuspend.tui.widgets.gpu_table import gpu_cells
    from tests.alerts.snapshots import config, gpu, snapshot

    g = gpu(idle_for_s=26 * 3600, episode_open=True, waste=179.77)
    stored = AlertView("idle", g.uuid, "open", 0, 179.71, "GPU 3 held idle for 1d02h")
    budget = AlertView("budget", "2026-11:USD", "open", 0, 9_500.0, "spent 95% of $10,000.00")
    snap = replace(snapshot(1_794_744_000_000, gpus=[g]), alerts=(stored, budget))
    lines = alert_lines(snap, config(tmp_path))
    (idle,) = [a for a in lines if a.kind == "idle"]
    assert idle.text == "idle: GPU 3 held-idle for 1d02h: $179.77 wasted at $2.00/h" and "179.71" not in idle.text
    assert gpu_cells(g, "USD")[9].plain.strip() == "$179.77"        # the row's "wasted" column, the same figure
    (other,) = [a for a in lines if a.kind == "budget"]
    assert other.text.endswith("($9,500.00)")                     # other kinds keep the engine's figure


def test_which_changes_wrap_alike() -> None:
    """Only a change that keeps every line break where it was skips the layout: a space that becomes a line end
    (or a letter), or a character that becomes a wide one, is laid out again."""
    from rich.text import Text

    from gpuspend.tui.widgets.fmt import wraps_alike

    base = Text("idle: GPU 4 for 2h03m: $14.07 wasted")
    assert wraps_alike(base, Text("idle: GPU 4 for 2h04m: $14.08 wasted"))
    assert not wraps_alike(None, base)
    assert not wraps_alike(base, Text("idle: GPU 4 for 2h03m: $14.07\nwasted"))      # a space became a line end
    assert not wraps_alike(base, Text("idle: GPU 4 for 2h03m: $14.07xwasted"))       # a break point is gone
    assert not wraps_alike(base, Text("idle: GPU 4 for 2h03m: $114.07 wasted"))      # longer
    assert not wraps_alike(Text("user bob"), Text("user 鲍ob"))                        # two cells where one was
    assert wraps_alike(Text("user 鲍b"), Text("user 鲍c"))
