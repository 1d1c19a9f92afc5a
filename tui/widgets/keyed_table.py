"""A DataTable updated in place: rows keyed by a stable id, only changed cells rewritten, order kept.

`clear()` would reset the cursor and scroll every tick (Textual #1381); diffing keeps the user's place and
writes nothing to the terminal when nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowKey


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
        elif updated:
            self._refresh_rows(sorted(self.get_row_index(key) for key in updated))
        # Rows are never re-sorted after they appear: a row jumping under the user's cursor is worse than
        # a new process showing up at the bottom.
        return changed

    def _refresh_rows(self, indices: list[int]) -> None:
        """Repaint these rows (sorted indices): adjacent ones (every GPU row, each sample) as one region, which
        costs one repaint request instead of one a row."""
        if indices[-1] - indices[0] + 1 == len(indices):
            first, last = self._get_row_region(indices[0]), self._get_row_region(indices[-1])
            self._refresh_region(first.union(last))
        else:
            for index in indices:
                self.refresh_row(index)


def _join(cells: Sequence[Any], widths: tuple[int, ...]) -> Text:
    """Cells laid out at fixed widths, two spaces apart: what a DataTable with these columns would draw. Built
    as one string and its spans (what Text.append_text would make, cell by cell, at a third of the cost: every
    GPU row is joined again every sample)."""
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
        text = cell if isinstance(cell, Text) else Text(str(cell))
        if i:
            parts.append("  ")
            pos += 2
        plain = text.plain
        pad = " " * max(0, width - cell_len(plain))
        right = text.justify == "right"
        if right:
            parts.append(pad)
            pos += len(pad)
        if text.style:
            spans.append(Span(pos, pos + len(plain), text.style))
        if text.spans:
            spans.extend(Span(pos + start, pos + end, style) for start, end, style in text.spans)
        parts.append(plain)
        pos += len(plain)
        if not right:
            parts.append(pad)
            pos += len(pad)
    return Text("".join(parts), no_wrap=True, end="", spans=spans)


def cell_segments(console: Console, cell: Text, width: int, padding: int, pre: Style, post: Style) -> list[Segment]:
    """One line of a one-line Text cell, as DataTable._render_cell draws it (Rich's Styled(Padding(cell)) through
    console.render_lines, cropped to `width`), without the generic renderable machinery around it."""
    inner = max(width - 2 * padding, 0)
    text = cell
    if text.cell_len > inner:
        text = text.copy()
        text.truncate(inner, overflow=text.overflow or "fold")
    line = [Segment(" " * padding)] if padding else []
    line.extend(text.render(console, end=""))
    fill = inner - text.cell_len
    if fill > 0:
        line.append(Segment(" " * fill))
    if padding:
        line.append(Segment(" " * padding))
    return list(Segment.apply_style(line, pre, post))


class LaidOutTable(KeyedTable):
    """A KeyedTable drawn as ONE DataTable cell per row, its FIELDS laid out here at fixed widths (the same
    look as a column per field). Textual re-renders every cell of a changed row through Rich (~0.15 ms a
    cell); tables whose rows change every sample pay that once a row instead of once a field.

    A changed row is drawn by a shorter path than DataTable's (the same segments and styles, see
    `_render_line_in_row`; tests/tui/test_laid_out_render.py holds them equal): every GPU row changes every
    sample, and drawing them was most of what the dashboard did between samples."""

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

    _pass_style: Style | None = None

    def render_lines(self, crop: Any) -> Any:
        # DataTable.render_line asks for self.rich_style (a walk up the DOM) on every line: once a pass here
        self._pass_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._pass_style = None

    def render_line(self, y: int) -> Any:
        style = self._pass_style
        if style is None or self.fixed_rows:
            return super().render_line(y)
        # DataTable.render_line with no fixed rows
        width, _height = self.size
        scroll_x, scroll_y = self.scroll_offset
        if y >= (self.get_row_height(self._header_row_key) if self.show_header else 0):
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + width, style)

    def _render_line_in_row(self, row_key: RowKey, line_no: int, base_style: Style, cursor_location: Any,
                            hover_location: Any) -> Any:
        """DataTable's row line for the simple case this table always is (one column, one-line Text cells, a
        row cursor, no labels, fixed rows or columns, no zebra stripes): the same (fixed, scrollable) pair,
        under the same cache key, computed without DataTable's per-line style look-ups. Anything else (the
        header, a multi-line row) goes through DataTable."""
        if (line_no or row_key is self._header_row_key or self.cursor_type != "row" or self.fixed_columns
                or self.fixed_rows or self.zebra_stripes or (self._labelled_row_exists and self.show_row_labels)
                or len(self.ordered_columns) != 1 or row_key not in self._row_locations):
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        row = self.rows.get(row_key)
        column = self.ordered_columns[0]
        cell = self._data.get(row_key, {}).get(column.key)
        if row is None or row.height != 1 or type(cell) is not Text or "\n" in cell.plain or "\t" in cell.plain:
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        cache_key = (row_key, line_no, base_style, cursor_location, hover_location, "row", self.show_cursor,
                     self._show_hover_cursor, self._update_count, self._pseudo_class_state)
        cached = self._row_render_cache.get(cache_key)
        if cached is not None:
            return cached
        row_index = self._row_locations.get(row_key)
        cursor = cursor_location.row == row_index
        hover = hover_location.row == row_index
        show_cursor, show_hover = self.show_cursor, self._show_hover_cursor
        component, post = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, show_cursor, show_hover,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        width = column.get_render_width(self)
        pre = base_style + Style.from_meta({"row": row_index, "column": 0}) + component
        line = cell_segments(self.app.console, cell, width, self.cell_padding, pre, post)
        extend, _ = self._get_styles_to_render_cell(
            False, False, False, hover_location.row == (row_index or 0), cursor, show_cursor, show_hover,
            False, False)
        extend = base_style + extend + Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
        remaining = max(0, self.size.width - width - self._row_label_column_width)
        pair: Any = ([], [line, [Segment(" " * remaining, extend)]])
        self._row_render_cache[cache_key] = pair
        return pair

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
