"""The fleet screen: one row per node, the idle GPUs across nodes, fleet totals, and a stale banner.

Every string that came from Prometheus (node names, models, error text) is wrapped in rich Text, so a label
such as "[bold]" shows as typed and never as markup.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from gpuspend.fleet import IDLE_HEADER, NODE_HEADER, FleetView, banner, idle_rows, node_rows
from gpuspend.fmt import count, money

NODE_KEYS = ("node", "source", "gpus", "idle", "cost", "burn", "waste", "mtd", "projection")
IDLE_KEYS = ("node", "gpu", "model", "state", "idle_for", "cost", "waste")


def _cell(value: str, numeric: bool) -> Text:
    return Text(value, justify="right" if numeric else "left", no_wrap=True)


class FleetScreen(Screen):
    BINDINGS = [Binding("r", "app.refresh_fleet", "Refresh"), Binding("q", "app.quit", "Quit")]

    DEFAULT_CSS = """
    FleetScreen #banner { background: $error; color: $text; padding: 0 1; display: none; }
    FleetScreen #banner.shown { display: block; }
    FleetScreen #summary { padding: 0 1; height: auto; }
    FleetScreen #nodes { height: 1fr; }
    FleetScreen #idle-title { padding: 0 1; text-style: bold; }
    FleetScreen #idle { height: 1fr; }
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.view: FleetView | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="banner")
        yield Static(Text(f"Fleet from {self.url}: waiting for Prometheus..."), id="summary")
        with Vertical():
            yield DataTable(id="nodes", cursor_type="row", zebra_stripes=True)
            yield Static(Text("Idle GPUs"), id="idle-title")
            yield DataTable(id="idle", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        nodes = self.query_one("#nodes", DataTable)
        for key, label in zip(NODE_KEYS, NODE_HEADER, strict=True):
            nodes.add_column(label, key=key)
        idle = self.query_one("#idle", DataTable)
        for key, label in zip(IDLE_KEYS, IDLE_HEADER, strict=True):
            idle.add_column(label, key=key)

    def show_error(self, message: str) -> None:
        """Prometheus failed and there is no earlier view: say so, keep whatever is on screen."""
        self._banner(f"Prometheus failed: {message}" + ("" if self.view else "; no earlier fleet view to show"))

    def show(self, view: FleetView) -> None:
        self.view = view
        text = banner(view)
        if text:
            self._banner(text)
        else:
            self.query_one("#banner", Static).remove_class("shown")
        parts = [f"{count(len(view.nodes), 'node')}, {count(view.gpu_count, 'GPU')}, {view.idle_count} idle"]
        for cur, t in sorted(view.totals().items()):
            parts.append(f"{money(t['cost_per_hour'], cur)}/h, idle burn {money(t['waste_per_hour'], cur)}/h, "
                         f"waste today {money(t['waste_today'], cur)}, month projected {money(t['projection'], cur)}")
        if view.unpriced:
            parts.append(f"{count(view.unpriced, 'GPU')} with no rate (in no total)")
        if view.missing:
            parts.append("not reporting: " + ", ".join(view.missing))
        self.query_one("#summary", Static).update(Text("  |  ".join(parts)))
        with self.app.batch_update():
            self._fill(self.query_one("#nodes", DataTable), NODE_KEYS, node_rows(view), 2,
                       [n.name for n in view.nodes])
            idle = view.idle_gpus()
            self._fill(self.query_one("#idle", DataTable), IDLE_KEYS, idle_rows(view), 4,
                       [f"{g.node}\x00{g.uuid}\x00{g.gpu}" for g in idle])
            self.query_one("#idle-title", Static).update(Text(f"Idle GPUs ({len(idle)})"))

    def _banner(self, text: str) -> None:
        widget = self.query_one("#banner", Static)
        widget.update(Text(text))
        widget.add_class("shown")

    @staticmethod
    def _fill(table: DataTable, keys: tuple[str, ...], rows: list[tuple[str, ...]], left: int,
              row_keys: list[str]) -> None:
        """Update cells in place by stable row keys (the cursor stays put); add and drop rows as needed."""
        existing = {rk.value for rk in table.rows}
        wanted = set(row_keys)
        for gone in existing - wanted:
            table.remove_row(gone)
        for rk, row in zip(row_keys, rows, strict=True):
            cells = [_cell(v, i >= left) for i, v in enumerate(row)]
            if rk in existing:
                for key, cell in zip(keys, cells, strict=True):
                    table.update_cell(rk, key, cell, update_width=True)
            else:
                table.add_row(*cells, key=rk)
