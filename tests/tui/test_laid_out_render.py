"""The GPU and process tables draw their rows by a shorter path than DataTable's: the user sees exactly what
DataTable would draw, cursor, hover and focus included."""

from __future__ import annotations

from itertools import chain

import pytest
from rich.segment import Segment
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from gpuspend.tui.widgets.fmt import bar, plain, state
from gpuspend.tui.widgets.gpu_table import GpuTable
from gpuspend.tui.widgets.keyed_table import LaidOutTable, _join
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


def _joined_by_appending(cells, widths) -> Text:
    """The row as Rich's own Text.append/append_text lay it out, cell by cell (what _join must equal)."""
    row = Text(no_wrap=True, end="")
    for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        text = cell if isinstance(cell, Text) else Text(str(cell))
        pad = " " * max(0, width - text.cell_len)
        if i:
            row.append("  ")
        if text.justify == "right":
            row.append(pad)
            row.append_text(text)
        else:
            row.append_text(text)
            row.append(pad)
    return row


def test_a_laid_out_row_is_the_cells_appended_at_their_widths():
    cells = [Text("3", justify="right"), plain("H100-SXM"), bar(86.0, 8), bar(None, 8), Text("579W", justify="right"),
             Text("$6.88", justify="right", style="dim"), state("held-idle"), Text(""), "a plain str", 1234,
             Text("日本語 GPU", style="red"), Text("$87.14", justify="right", style="bold #ff5f5f")]
    widths = tuple(max(Text(str(c)).cell_len if not isinstance(c, Text) else c.cell_len, 1) + extra
                   for c, extra in zip(cells, [0, 3, 0, 1, 2, 0, 4, 5, 0, 1, 3, 2], strict=True))
    ours, theirs = _join(cells, widths), _joined_by_appending(cells, widths)
    assert ours.plain == theirs.plain
    assert ours.spans == theirs.spans                  # every colour where Rich would put it
    assert ours == theirs and (ours.no_wrap, ours.end) == (theirs.no_wrap, theirs.end)
    assert ours.cell_len == sum(widths) + 2 * (len(widths) - 1)


@pytest.mark.anyio
@pytest.mark.parametrize("changed", [(1, 2, 3), (1, 2, 3, 6), (5,)])
async def test_a_sample_repaints_exactly_the_gpu_rows_it_changed(make_app, demo_db, changed):
    """Adjacent changed rows are repainted as one region, others one by one: never a row left stale on the
    terminal, and no unchanged row sent again."""
    from dataclasses import replace

    app = make_app(demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.snapshots_applied >= 1)
        await pilot.pause()
        table = app.screen.query_one(GpuTable)
        snap = app.snapshot
        by_index = {g.index: g for g in snap.gpus}
        # a shown util moves by a bar step and a percent, so no field changes width
        moved = tuple(replace(g, util=(g.util + 1.0 if g.util < 50 else g.util - 1.0)) if g.index in changed
                      else g for g in snap.gpus)
        asked: list = []
        refresh = table.refresh

        def spy(*regions, **kwargs):
            asked.extend(regions)
            return refresh(*regions, **kwargs)

        table.refresh = spy
        assert table.show(moved, snap.currency) is True
        del table.refresh
        lines = {r.y + dy for r in asked for dy in range(r.height)}
        row_line = {i: table.header_height + [k.value for k in table.rows].index(by_index[i].uuid)
                    for i in by_index}
        assert {i for i, y in row_line.items() if y in lines} == set(changed)
