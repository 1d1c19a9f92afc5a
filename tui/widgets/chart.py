"""24 h of $/h as stacked block bars: useful spend at the bottom, idle spend on top.

Block elements (▁..█) rather than braille, which PuTTY and the Linux console often lack; `ascii_only`
uses '#' (useful) and ':' (idle) in whole cells.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from gpuspend.tui.widgets.fmt import money

_V = " ▁▂▃▄▅▆▇█"


def render_chart(hourly: tuple[tuple[int, float, float], ...], width: int, height: int, *,
                 ascii_only: bool = False, currency: str = "USD",
                 now: tuple[float, float] | None = None) -> Text:
    """`height - 1` rows of bars plus one legend row, `width` cells wide. `now` = (useful, idle) $/h
    right now, for the legend (the current hour's bucket is still filling)."""
    out = Text(no_wrap=True, overflow="crop")
    rows = max(height - 1, 1)
    if not hourly:
        out.append("no samples in the last 24 h", style="dim")
        return out
    n = len(hourly)
    width = max(width, n)
    spans = [(i + 1) * width // n - i * width // n for i in range(n)]   # fill the width exactly
    peak = max((u + i for _t, u, i in hourly), default=0.0) or 1.0
    scale = rows * 8 / peak
    for r in range(rows - 1, -1, -1):
        lo, hi = r * 8, r * 8 + 8
        for (_t, useful, idle), col in zip(hourly, spans, strict=True):
            total_e = round((useful + idle) * scale)
            useful_e = round(useful * scale)
            filled = min(max(total_e - lo, 0), 8)
            if filled == 0:
                out.append(" " * col)
                continue
            idle_part = max(0, min(total_e, hi) - max(useful_e, lo))   # idle eighths inside this cell
            is_idle = idle_part * 2 > filled
            if ascii_only:
                ch = (":" if is_idle else "#") if filled >= 4 else " "
            else:
                ch = _V[filled]
            out.append(ch * col, style="#ff5f5f" if is_idle else "#5fd75f")
        out.append("\n")
    useful_now, idle_now = now if now is not None else hourly[-1][1:]
    legend = Text(no_wrap=True)
    legend.append("#" if ascii_only else "█", style="#5fd75f")
    legend.append(f" useful {money(useful_now, currency)}/h ")
    legend.append(":" if ascii_only else "█", style="#ff5f5f")
    legend.append(f" idle {money(idle_now, currency)}/h")
    out.append_text(legend)
    return out


class SpendChart(Widget):
    """Owns its own reactives, so an unchanged series repaints nothing."""

    DEFAULT_CSS = "SpendChart { height: 8; }"

    hourly: reactive[tuple[tuple[int, float, float], ...]] = reactive((), layout=False)
    currency: reactive[str] = reactive("USD")
    ascii_only: reactive[bool] = reactive(False)
    now: reactive[tuple[float, float] | None] = reactive(None)

    _drawn: Text | None = None
    _drawn_for: tuple | None = None           # the arguments `_drawn` was drawn with

    def _draw(self, hourly: tuple, now: tuple[float, float] | None, currency: str) -> Text:
        args = (hourly, self.size.width, self.size.height, self.ascii_only, currency, now)
        if args != self._drawn_for:
            self._drawn_for = args
            self._drawn = render_chart(hourly, self.size.width, self.size.height, ascii_only=self.ascii_only,
                                       currency=currency, now=now)
        assert self._drawn is not None
        return self._drawn

    def render(self) -> Text:
        return self._draw(self.hourly, self.now, self.currency)

    def show(self, hourly: tuple[tuple[int, float, float], ...], now: tuple[float, float] | None,
             currency: str) -> None:
        """New data; repainted only when the picture changes (the current hour's bar moves a few times an
        hour, not every tick). The data is kept either way, for the next resize. Drawn once: the repaint
        reuses the drawing made here for the comparison."""
        before = self._drawn
        if before is not None and self._draw(hourly, now, currency) == before:
            self.set_reactive(SpendChart.hourly, hourly)
            self.set_reactive(SpendChart.now, now)
            self.set_reactive(SpendChart.currency, currency)
        else:
            self.currency, self.hourly, self.now = currency, hourly, now
