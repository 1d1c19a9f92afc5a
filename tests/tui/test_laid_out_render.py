"""The GPU and process tables draw their rows by a shorter path than DataTable's: the user sees exactly what
DataTable would draw, cursor, hover and focus included."""

from __future__ import annotations

from itertools import chain

import pytest
from rich.segment import Segment
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from gpuspend.tui.widgets.gpu_table import GpuTable
from gpuspend.tui.widgets.keyed_table import LaidOutTable
from gpuspend.tui.widgets.process_table import ProcessTable
from tests.tui.factory import wait_for


def _drawn(pair) -> list[Segment]:
    fixed, scrollable = pair
    return list(Segment.simplify(chain(chain.from_iterable(fixed), chain.from_iterable(scrollable))))


def _both(table: LaidOutTable, key, cursor: Coordinate, hover: Coordinate, *, short: bool = True,
          monkeypatch=None) -> tuple[list, list]:
    base = table.rich_style
    table._row_render_cache.clear()          # the two paths share DataTable's cache key
    theirs_fn = DataTable._render_line_in_row
    if short:                                # a body row never falls back to DataTable's path
        def refuse(*_a, **_k):
            raise AssertionError("fell back to DataTable's row drawing")

        monkeypatch.setattr(DataTable, "_render_line_in_row", refuse)
    try:
        ours = _drawn(table._render_line_in_row(key, 0, base, cursor, hover))
    finally:
        if short:
            monkeypatch.setattr(DataTable, "_render_line_in_row", theirs_fn)
    table._row_render_cache.clear()
    theirs = _drawn(theirs_fn(table, key, 0, base, cursor, hover))
    table._row_render_cache.clear()
    return ours, theirs


@pytest.mark.anyio
@pytest.mark.parametrize("ascii_only", [False, True])
async def test_rows_are_drawn_as_datatable_draws_them(make_app, demo_db, ascii_only, monkeypatch):
    app = make_app(demo_db, ascii_only=ascii_only)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.snapshots_applied >= 1)
        await pilot.pause()
        for cls in (GpuTable, ProcessTable):
            table = app.screen.query_one(cls)
            table.focus()
            await pilot.pause()
            keys = [r.key for r in table.ordered_rows]
            assert len(keys) >= 3
            for focused in (True, False):
                if not focused:
                    app.screen.query_one("#filter").focus()
                    await pilot.pause()
                table._pseudo_class_state = table.get_pseudo_class_state()
                for cursor_row in (0, 2):
                    for hover, show_hover in ((Coordinate(0, 0), False), (Coordinate(1, 0), True)):
                        table._show_hover_cursor = show_hover
                        for key in keys:
                            ours, theirs = _both(table, key, Coordinate(cursor_row, 0), hover,
                                                 monkeypatch=monkeypatch)
                            assert ours == theirs, (cls.__name__, key, cursor_row, hover, focused)
            # the header still goes through DataTable
            ours, theirs = _both(table, table._header_row_key, Coordinate(0, 0), Coordinate(0, 0), short=False)
            assert ours == theirs
