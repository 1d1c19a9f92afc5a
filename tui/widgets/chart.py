"""24 h of $/h as stacked block bars: useful spend at the bottom, idle spend on top, with a $/h scale and an
hours-ago axis.

Block elements (▁..█) rather than braille, which PuTTY and the Linux console often lack; `ascii_only`
uses '#' (useful) and ':' (idle) in whole cells.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from gpuspend.tui.widgets.fmt import money

_V = " ▁▂▃▄▅▆▇█"


# Every amount of the chart is in its one currency, which its title names (`JPY/h by hour`): in another than
# USD they are written bare (tui fmt.money `stated`), so the scale does not take the plot's width.
def _axis_label(amount: float, currency: str, peak: float) -> str:
    return money(amount, currency, decimals=0 if peak >= 10 else None, stated=currency)


def legend(useful: float, idle: float, currency: str = "USD", *, ascii_only: bool = False) -> Text:
    """What the two colours are, with their $/h right now."""
    return _legend_text(money(useful, currency, stated=currency), money(idle, currency, stated=currency),
                        ascii_only=ascii_only)


def _legend_text(useful: str, idle: str, *, ascii_only: bool = False) -> Text:
    t = Text(no_wrap=True, overflow="crop")
    t.append("#" if ascii_only else "█", style="#5fd75f")
    t.append(f" useful {useful}/h  ")
    t.append(":" if ascii_only else "█", style="#ff5f5f")
    t.append(f" idle {idle}/h")
    return t


def render_chart(hourly: tuple[tuple[int, float, float], ...], width: int, height: int, *,
                 ascii_only: bool = False, currency: str = "USD",
                 now: tuple[float, float] | None = None, with_legend: bool = True) -> Text:
    """Bars of $/h per hour (useful at the bottom, idle on top) with a $/h scale on the left and an hours-ago
    axis under them, then (`with_legend`) one legend row; `width` x `height` cells. `now` = (useful, idle)
    $/h right now, for the legend (the current hour's bucket is still filling)."""
    return paint_chart(chart_plan(hourly, width, height, ascii_only=ascii_only, currency=currency, now=now,
                                  with_legend=with_legend))


def chart_plan(hourly: tuple[tuple[int, float, float], ...], width: int, height: int, *,
               ascii_only: bool = False, currency: str = "USD",
               now: tuple[float, float] | None = None, with_legend: bool = True) -> tuple:
    """Everything the drawing depends on, in whole cells and eighths: two plans are equal exactly when the
    pictures are (the current hour's bucket grows every sample; its bar moves a few times an hour)."""
    if not hourly:
        return ()
    rows = max(height - 1 - (1 if with_legend else 0), 1)
    n = len(hourly)
    peak = max((u + i for _t, u, i in hourly), default=0.0) or 1.0
    # the top row's label is the scale's top (a full column = that $/h), the bottom row's is zero
    labels = {rows - 1: _axis_label(peak, currency, peak), 0: _axis_label(0.0, currency, peak)}
    if rows >= 5:
        mid = (rows - 1) // 2
        labels[mid] = _axis_label(peak * (mid + 1) / rows, currency, peak)
    lw = max(len(v) for v in labels.values())
    plot = max(width - lw - 1, n)
    spans = tuple((i + 1) * plot // n - i * plot // n for i in range(n))   # fill the width exactly
    scale = rows * 8 / peak
    bars = tuple((round((useful + idle) * scale), round(useful * scale)) for _t, useful, idle in hourly)
    legend_now = None
    if with_legend:
        useful_now, idle_now = now if now is not None else hourly[-1][1:]
        legend_now = (money(useful_now, currency, stated=currency), money(idle_now, currency, stated=currency))
    return (rows, tuple(sorted(labels.items())), lw, spans, bars, ascii_only, legend_now)


def paint_chart(plan: tuple) -> Text:
    """The picture of a chart_plan."""
    out = Text(no_wrap=True, overflow="crop")
    if not plan:
        out.append("no samples in the last 24 h", style="dim")
        return out
    rows, label_items, lw, spans, bars, ascii_only, legend_now = plan
    labels = dict(label_items)
    tick = "|" if ascii_only else "┤"
    for r in range(rows - 1, -1, -1):
        out.append(labels.get(r, "").rjust(lw) + (tick if r in labels else ("|" if ascii_only else "│")),
                   style="dim")
        lo, hi = r * 8, r * 8 + 8
        for (total_e, useful_e), col in zip(bars, spans, strict=True):
            filled = min(max(total_e - lo, 0), 8)
            if filled == 0:
                out.append(" " * col)
                continue
            idle_part = max(0, min(total_e, hi) - max(useful_e, lo))   # idle eighths inside this cell
            is_idle = idle_part * 2 > filled
            if ascii_only:
                ch = (":" if is_idle else "#") if filled >= 4 else ("." if filled else " ")
            else:
                ch = _V[filled]
            out.append(ch * col, style="#ff5f5f" if is_idle else "#5fd75f")
        out.append("\n")
    out.append(_time_axis(list(spans), lw, ascii_only), style="dim")
    if legend_now is not None:
        out.append("\n")
        out.append_text(_legend_text(*legend_now, ascii_only=ascii_only))
    return out


def _time_axis(spans: list[int], lw: int, ascii_only: bool) -> str:
    """Hours ago under the bars: `-24h`, `-18h`, ... `now`, each under its hour (the last bar is this hour)."""
    n = len(spans)
    starts = [sum(spans[:i]) for i in range(n)]
    width = sum(spans)
    cells = [" "] * width
    marks = [(n - 1, "now")] + [(n - 1 - h, f"-{h}h") for h in range(6, n, 6)]
    taken: list[tuple[int, int]] = []
    for i, text in marks:
        pos = starts[i] if text != "now" else max(width - len(text), 0)
        if text != "now":
            pos = max(0, min(pos, width - len(text)))
        end = pos + len(text)
        if any(pos < b + 1 and a < end + 1 for a, b in taken):
            continue                                   # would touch a label already placed
        cells[pos:end] = list(text)
        taken.append((pos, end))
    corner = "+" if ascii_only else "└"
    return " " * lw + corner + "".join(cells)


class SpendChart(Widget):
    """Owns its own reactives, so an unchanged series repaints nothing."""

    DEFAULT_CSS = "SpendChart { height: 8; }"

    hourly: reactive[tuple[tuple[int, float, float], ...]] = reactive((), layout=False)
    currency: reactive[str] = reactive("USD")
    ascii_only: reactive[bool] = reactive(False)
    now: reactive[tuple[float, float] | None] = reactive(None)
    with_legend: reactive[bool] = reactive(True)      # False: the screen puts the legend in the box title

    _drawn: Text | None = None
    _drawn_for: tuple | None = None           # the chart_plan `_drawn` was drawn from

    def _draw(self, hourly: tuple, now: tuple[float, float] | None, currency: str) -> Text:
        plan = chart_plan(hourly, self.size.width, self.size.height, ascii_only=self.ascii_only,
                          currency=currency, now=now, with_legend=self.with_legend)
        if plan != self._drawn_for or self._drawn is None:
            self._drawn_for = plan
            self._drawn = paint_chart(plan)
        return self._drawn

    def render(self) -> Text:
        return self._draw(self.hourly, self.now, self.currency)

    def show(self, hourly: tuple[tuple[int, float, float], ...], now: tuple[float, float] | None,
             currency: str) -> None:
        """New data; repainted only when the picture changes (the current hour's bar moves a few times an
        hour, not every tick). The data is kept either way, for the next resize. Drawn once: the repaint
        reuses the drawing made here for the comparison."""
        before = self._drawn
        if before is not None and self._draw(hourly, now, currency) is before:     # the same plan: not redrawn
            self.set_reactive(SpendChart.hourly, hourly)
            self.set_reactive(SpendChart.now, now)
            self.set_reactive(SpendChart.currency, currency)
        else:
            self.currency, self.hourly, self.now = currency, hourly, now
