"""Deterministic SVG snapshots of the dashboard (fixed clock, size, theme; no collector, no toasts).

Update after a reviewed visual change: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from tests.tui.factory import wait_for


async def _loaded(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.snapshots_applied >= 1)
    await pilot.pause()


def test_dashboard_120x40(snap_compare, make_app, demo_db):
    assert snap_compare(make_app(demo_db), terminal_size=(120, 40), run_before=_loaded)


def test_dashboard_80x24(snap_compare, make_app, demo_db):
    assert snap_compare(make_app(demo_db), terminal_size=(80, 24), run_before=_loaded)


def test_dashboard_ascii_80x24(snap_compare, make_app, demo_db):
    assert snap_compare(make_app(demo_db, ascii_only=True), terminal_size=(80, 24), run_before=_loaded)


def test_billing_120x40(snap_compare, make_app, demo_db):
    async def billing(pilot) -> None:
        await _loaded(pilot)
        await pilot.press("b")
        await wait_for(pilot, lambda: "so far" in str(pilot.app.screen.query_one("#billing-title").render()))

    assert snap_compare(make_app(demo_db), terminal_size=(120, 40), run_before=billing)
