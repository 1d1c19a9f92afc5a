"""One row per GPU, keyed by UUID."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.text import Text

from gpuspend.fmt import mark
from gpuspend.snapshot import GpuNow, gpu_currency
from gpuspend.tui.widgets.fmt import bar, duration, money, plain, state
from gpuspend.tui.widgets.keyed_table import LaidOutTable


def gpu_cells(g: GpuNow, currency: str, *, ascii_only: bool = False, bar_width: int = 8) -> list[Any]:
    """A GPU's cells; its money in `currency` (the dashboard's, which the `$/h` header names, fmt.mark) bare."""
    mem_pct = (100.0 * g.mem_used / g.mem_total) if (g.mem_used is not None and g.mem_total) else None
    rate = money(g.cost_per_hour, g.rate.currency, stated=currency)   # None: "no rate", the unknown-money word
    idle = duration(g.idle_for_s) if g.idle_for_s > 0 else ""
    waste = money(g.episode_waste, gpu_currency(g.rate, currency), stated=currency) if g.episode_open else ""
    return [
        Text("-" if g.index is None else str(g.index), justify="right"),
        plain(g.model or g.name),
        bar(g.util, bar_width, ascii_only=ascii_only),
        bar(mem_pct, bar_width, ascii_only=ascii_only, style="#5fd7ff"),
        Text("-" if g.power is None else f"{g.power:.0f}W", justify="right"),
        Text("-" if g.temperature is None else f"{g.temperature:.0f}C", justify="right"),
        Text(rate, justify="right", style="dim" if g.cost_per_hour is None else ""),
        state(g.state),
        Text(idle, justify="right"),
        Text(waste, justify="right", style="bold #ff5f5f" if waste else ""),
    ]


class GpuTable(LaidOutTable):
    """The GPU rows. Every GPU row changes every sample, which is why this is a LaidOutTable (measured: ten
    DataTable cells a row made this table 0.77 % of a core of the dashboard's ~2 %)."""

    FIELDS = (("idx", "#"), ("model", "GPU"), ("util", "util"), ("mem", "memory"), ("power", "power"),
              ("temp", "temp"), ("rate", "$/h"), ("state", "state"), ("idle", "idle"), ("waste", "wasted"))
    DEFAULT_CSS = "GpuTable { height: auto; max-height: 18; }"

    ascii_only = False
    bar_width = 8
    _shown: tuple | None = None          # what the rows were made from: the same again changes nothing

    def show(self, gpus: tuple[GpuNow, ...], currency: str) -> bool:
        # what the rows show: the sample's time is not shown, and an idle time only to the minute
        key = (tuple((replace(g, last_sample_ms=None, idle_for_s=0.0), duration(g.idle_for_s) if g.idle_for_s > 0
                      else "") for g in gpus), currency, self.ascii_only, self.bar_width)
        if key == self._shown and self.columns:
            return False
        self._shown = key
        fields = tuple((f, f"{mark(currency)}/h") if f == "rate" else (f, label) for f, label in GpuTable.FIELDS)
        if fields != self.FIELDS:            # the header names the dashboard's currency: `JPY/h`
            self.FIELDS = fields
            self._widths = ()
        return self.show_rows([(g.uuid, gpu_cells(g, currency, ascii_only=self.ascii_only, bar_width=self.bar_width))
                               for g in gpus])
