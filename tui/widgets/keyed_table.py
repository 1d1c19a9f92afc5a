"""A DataTable updated in place: rows keyed by a stable id, only changed cells rewritten, order kept.

`clear()` would reset the cursor and scroll every tick (Textual #1381); diffing keeps the user's place and
writes nothing to the terminal when nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist


def cell_width(cell: Any) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


class KeyedTable(DataTable):
    COLUMNS: Sequence[tuple[str, str]] = ()       # (key, label)
    _pending: Sequence[tuple[str, Sequence[Any]]] | None = None
    _row_refresh_only = False

    def refresh(self, *regions: Any, **kwargs: Any) -> KeyedTable:
        # DataTable.update_cell repaints the whole table; while sync() rewrites cells it repaints only the
        # rows it changed (what goes down an SSH link every tick), and anything else still goes through.
        if self._row_refresh_only and not regions and not kwargs:
            return self
        return super().refresh(*regions, **kwargs)

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)
        if self._pending is not None:     # data that arrived before this widget was mounted
            rows, self._pending = self._pending, None
            self.sync(rows)

    def sync(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        """Make the table show `rows` ((key, cells) in order). Returns True when anything changed."""
        if not self.columns:
            self._pending = rows
            return True
        wanted = dict(rows)
        changed = False
        for key in [k.value for k in self.rows if k.value not in wanted]:
            self.remove_row(key)
            changed = True
        keys = [col.key.value for col in self.ordered_columns]
        present = {k.value for k in self.rows}
        updated: list[str] = []
        resized = False
        for key, cells in rows:
            if key not in present:
                self.add_row(*cells, key=key)
                changed = True
                continue
            row_changed = False
            for col, value in zip(keys, cells, strict=True):
                try:
                    old = self.get_cell(key, col)
                    if old == value:
                        continue
                    width_changed = cell_width(old) != cell_width(value)
                except CellDoesNotExist:
                    width_changed = True
                resized = resized or width_changed
                self._row_refresh_only = True
                try:
                    # measuring column widths (on idle) costs more than the update: only when they may move
                    self.update_cell(key, col, value, update_width=width_changed)
                finally:
                    self._row_refresh_only = False
                row_changed = changed = True
            if row_changed:
                updated.append(key)
        if resized:                         # a column may change width: every row moves
            self.refresh()
        else:
            for key in updated:
                self.refresh_row(self.get_row_index(key))
        # Rows are never re-sorted after they appear: a row jumping under the user's cursor is worse than
        # a new process showing up at the bottom.
        return changed


def _join(cells: Sequence[Any], widths: tuple[int, ...]) -> Text:
    """Cells laid out at fixed widths, two spaces apart: what a DataTable with these columns would draw."""
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


class LaidOutTable(KeyedTable):
    """A KeyedTable drawn as ONE DataTable cell per row, its FIELDS laid out here at fixed widths (the same
    look as a column per field). Textual re-renders every cell of a changed row through Rich (~0.15 ms a
    cell); tables whose rows change every sample pay that once a row instead of once a field."""

    FIELDS: Sequence[tuple[str, str]] = ()       # (key, label)
    COLUMNS = ()                                 # the one column is added, with its laid-out header, later
    _widths: tuple[int, ...] = ()
    _layout: list[tuple[str, list[Any]]] | None = None
    _values: dict[str, dict[str, Any]] = {}

    def value(self, row_key: str, field: str) -> str:
        """What the `field` column shows in this row (plain text)."""
        cell = self._values[row_key][field]
        return (cell.plain if isinstance(cell, Text) else str(cell)).strip()

    def show_rows(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        """Like sync(), with one cell per field. Returns True when anything changed."""
        names = [f for f, _label in self.FIELDS]
        self._values = {key: dict(zip(names, cells, strict=True)) for key, cells in rows}
        widths = tuple(max([cell_width(label), *(cell_width(cells[i]) for _k, cells in rows)])
                       for i, (_f, label) in enumerate(self.FIELDS))
        joined = [(key, [_join(cells, widths)]) for key, cells in rows]
        if widths != self._widths or not self.columns:
            self._widths = widths
            return self._relayout(joined)
        return self.sync(joined)

    def on_mount(self) -> None:
        super().on_mount()
        if self._layout is not None:       # data that arrived before this widget was mounted
            rows, self._layout = self._layout, None
            self._relayout(rows)

    def _relayout(self, rows: list[tuple[str, list[Any]]]) -> bool:
        """A field changed width (rare: a longer name, a wider amount): rebuild, keeping the user's place."""
        if not self.is_mounted:
            self._layout = rows
            return True
        cursor, scroll = self.cursor_row, self.scroll_y
        keys = [k.value for k in self.rows]
        at = keys[cursor] if 0 <= cursor < len(keys) else None
        self.clear(columns=True)
        self.add_column(_join([Text(label) for _f, label in self.FIELDS], self._widths), key="row")
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if rows:
            # the cursor stays on its row when rows move (a sort), else on its position
            order = [k for k, _c in rows]
            cursor = order.index(at) if at in order else cursor
            self.move_cursor(row=min(max(cursor, 0), len(rows) - 1), animate=False, scroll=False)
            self.scroll_to(y=scroll, animate=False)
        return True
