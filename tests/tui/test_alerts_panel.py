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
