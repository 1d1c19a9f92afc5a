"""The header line: $/h now, today, month-to-date, projection vs budget, idle waste, rate sources."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from gpuspend import budget
from gpuspend.snapshot import MonthView, Snapshot
from gpuspend.tui.widgets.fmt import clean, money

LEVEL_STYLES = {budget.OK: "#5fd75f", budget.WARNING: "#ffd75f", budget.ERROR: "bold #ff5f5f"}


def budget_style(pct: float | None, thresholds: tuple[float, ...]) -> str:
    """The colour of gpuspend.budget.level: green under the first configured threshold, yellow at or past it,
    red at or past the last one; no colour when unknown."""
    return LEVEL_STYLES.get(budget.level(pct, thresholds) or "", "")


def _month(snap: Snapshot) -> MonthView | None:
    return next((m for m in snap.months if m.currency == snap.currency), snap.months[0] if snap.months else None)


def summary_text(snap: Snapshot, thresholds: tuple[float, ...] = (), *, compact: bool = False) -> Text:
    """One line at 120 columns; `compact` (80 columns) drops the interval and shortens labels."""
    cur = snap.currency
    t = Text(no_wrap=False)
    if not compact:
        t.append("now ", style="dim")
    if snap.no_rate_at_all:     # unknown, never $0
        t.append("no rate", style="bold")
    else:
        t.append(f"{money(snap.cost_per_hour, cur)}/h", style="bold")
        if snap.unrated_gpus:
            t.append(f" +{snap.unrated_gpus} no rate", style="dim")
    t.append("  today ", style="dim")
    t.append(_so_far(snap, snap.today_cost), style="bold")
    m = _month(snap)
    if m is not None:
        t.append("  MTD ", style="dim")
        t.append(money(m.mtd, m.currency), style="bold")
        t.append("  proj ", style="dim")
        if m.projection is None:
            t.append("n/a", style="dim")
        else:
            style = budget_style(m.budget_pct_forecast, thresholds)
            t.append(money(m.projection, m.currency, decimals=0), style=f"bold {style}".strip())
            if not compact and m.low is not None and m.high is not None and m.high > m.low:
                t.append(f" ({money(m.low, m.currency, decimals=0)}-{money(m.high, m.currency, decimals=0)})",
                         style="dim")
        if m.budget is not None:
            t.append(" / budget ", style="dim")
            t.append(money(m.budget, m.currency, decimals=0))
            if m.budget_pct_forecast is not None:
                t.append(f" {m.budget_pct_forecast:.0f}%",
                         style=budget_style(m.budget_pct_forecast, thresholds) or "")
    t.append("  idle today " if compact else "  idle waste today ", style="dim")
    t.append(_so_far(snap, snap.idle_waste_today), style="bold #ff5f5f" if snap.idle_waste_today > 0 else "")
    return t


def _so_far(snap: Snapshot, amount: float) -> str:
    """Money accrued so far; with no GPU rated and nothing accrued it is unknown, never $0."""
    return "no rate" if snap.no_rate_at_all and not amount else money(amount, snap.currency)


def sources_text(snap: Snapshot, collector: str) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("rates: ", style="dim")
    t.append(clean("; ".join(snap.rate_sources) or "none"))
    t.append("  collector: ", style="dim")
    t.append(clean(collector))
    return t


class SummaryBar(Static):
    """Two lines; content set from the App when the snapshot changes (update() repaints only this widget)."""

    DEFAULT_CSS = "SummaryBar { height: auto; max-height: 3; padding: 0 1; }"

    thresholds: reactive[tuple[float, ...]] = reactive(())     # budget.thresholds of the app's config
    _last: Text | None = None

    def on_mount(self) -> None:
        cfg = getattr(self.app, "cfg", None)
        if cfg is not None:
            self.thresholds = budget.thresholds(cfg)

    def show(self, snap: Snapshot, collector: str, *, compact: bool = False) -> None:
        text = summary_text(snap, self.thresholds, compact=compact)
        text.append("\n")
        sources = sources_text(snap, collector)
        if self.size.width > 2:
            sources.truncate(self.size.width - 2, overflow="ellipsis")   # the second line never wraps
        text.append_text(sources)
        if text != self._last:          # an unchanged line costs nothing on the terminal
            # Same length and spaces in the same places: it wraps the same, so no layout pass is needed.
            layout = self._last is None or _breaks(self._last.plain) != _breaks(text.plain)
            self._last = text
            self.update(text, layout=layout)


def _breaks(plain: str) -> tuple[int, list[int]]:
    return len(plain), [i for i, c in enumerate(plain) if c in " \n"]
