"""A DataTable updated in place: rows keyed by a stable id, only changed cells rewritten, order kept.

`clear()` would reset the cursor and scroll every tick (Textual #1381); diffing keeps the user's place and
writes nothing to the terminal when nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist


class KeyedTable(DataTable):
    COLUMNS: Sequence[tuple[str, str]] = ()       # (key, label)
    _pending: Sequence[tuple[str, Sequence[Any]]] | None = None

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
        for key, cells in rows:
            if key not in present:
                self.add_row(*cells, key=key)
                changed = True
                continue
            for col, value in zip(keys, cells, strict=True):
                try:
                    if self.get_cell(key, col) == value:
                        continue
                except CellDoesNotExist:
                    pass
                self.update_cell(key, col, value, update_width=True)
                changed = True
        # Rows are never re-sorted after they appear: a row jumping under the user's cursor is worse than
        # a new process showing up at the bottom.
        return changed
