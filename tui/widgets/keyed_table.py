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


def _width(cell: Any) -> int:
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
        keys = [c for c, _label in self.COLUMNS]
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
                    width_changed = _width(old) != _width(value)
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
