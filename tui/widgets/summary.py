"""The header line: $/h now, today, month-to-date, projection vs budget, idle waste, rate sources."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from gpuspend import budget
from gpuspend.costing.observed import observed_pct
from gpuspend.snapshot import MonthView, Snapshot
from gpuspend.tui.widgets.fmt import clean, money, share, wraps_alike

LEVEL_STYLES = {budget.OK: "#5fd75f", budget.WARNING: "#ffd75f", budget.ERROR: "bold #ff5f5f"}


def budget_style(pct: float | None, thresholds: tuple[float, ...]) -> str:
    """The colour of gpuspend.budget.level: green under the first configured threshold, yellow at or past it,
    red at or past the last one; no colour when unknown."""
    return LEVEL_STYLES.get(budget.level(pct, thresholds) or "", "")


def _month(snap: Snapshot) -> MonthView | None:
    return next((m for m in snap.months if m.currency == snap.currency), snap.months[0] if snap.months else None)


def summary_text(snap: Snapshot, thresholds: tuple[float, ...] = (), *, compact: bool = False,
                 demo: bool = False, interval: bool = True) -> Text:
    """One line. `compact` (80 columns) drops the interval and the budget (sources_text shows it then) and
    writes today without cents, so the line never wraps; `interval=False` drops only the interval."""
    cur = snap.currency
    m = _month(snap)
    # Another currency than USD is named once, at the start, and the line's amounts in it are bare: four
    # `JPY`s would push the idle waste off an 80-column line. A month in another currency keeps its own.
    stated = cur if cur != "USD" else None
    t = Text(no_wrap=True, overflow="crop")
    if demo:
        t.append("DEMO", style="bold reverse")
        t.append(" ")
    if stated:
        t.append(stated, style="bold")
        t.append(" ")
    if not compact:
        t.append("now ", style="dim")
    physical = [g for g in snap.gpus if g.parent_uuid is None]
    if not physical:
        # an empty database on a first start is not a box without GPUs: the first sample is on its way
        t.append("no GPUs sampled yet" if snap.last_sample_ms is None else "no GPUs", style="bold")
    elif snap.no_rate_at_all:     # unknown, never $0
        t.append("no rate", style="bold")
    else:
        t.append(f"{money(snap.cost_per_hour, cur, stated=stated)}/h", style="bold")
        if snap.unrated_gpus:
            t.append(f" +{snap.unrated_gpus} no rate", style="dim")
    t.append("  today ", style="dim")
    t.append(_so_far(snap, snap.today_cost, decimals=0 if compact else None, stated=stated), style="bold")
    if snap.today_observed is not None and snap.today_observed < 0.995:
        # unobserved time is not free: today's figure covers only what the samples saw
        pct = observed_pct(snap.today_observed)
        t.append(f" ({pct} seen)" if compact else f" (observed {pct})", style="#ffaf00")
    if m is not None:
        t.append("  MTD ", style="dim")
        t.append(money(m.mtd, m.currency, decimals=0 if compact and abs(m.mtd) >= 100 else None, stated=stated),
                 style="bold")
        t.append("  proj ", style="dim")
        if m.projection is None:
            t.append("n/a", style="dim")
        else:
            style = budget_style(m.budget_pct_forecast, thresholds)
            t.append(money(m.projection, m.currency, decimals=0, stated=stated), style=f"bold {style}".strip())
            if interval and not compact and m.low is not None and m.high is not None and m.high > m.low:
                t.append(f" ({money(m.low, m.currency, decimals=0, stated=stated)}-"
                         f"{money(m.high, m.currency, decimals=0, stated=stated)})", style="dim")
        if m.budget is not None and not compact:
            t.append_text(budget_text(m, thresholds, lead=" / budget ", stated=stated))
    t.append("  idle today " if compact else "  idle waste today ", style="dim")
    t.append(_so_far(snap, snap.idle_waste_today, decimals=0 if compact else None, stated=stated),
             style="bold #ff5f5f" if snap.idle_waste_today > 0 else "")
    return t


def budget_text(m: MonthView, thresholds: tuple[float, ...], *, lead: str, stated: str | None = None) -> Text:
    t = Text(no_wrap=True)
    if m.budget is None:
        return t
    t.append(lead, style="dim")
    t.append(money(m.budget, m.currency, decimals=0, stated=stated))
    if m.budget_pct_forecast is not None:
        t.append(f" {share(m.budget_pct_forecast)}", style=budget_style(m.budget_pct_forecast, thresholds) or "")
        t.append(" projected", style="dim")
    return t


def _so_far(snap: Snapshot, amount: float, decimals: int | None = None, stated: str | None = None) -> str:
    """Money accrued so far; unknown (Snapshot.so_far_word) is a word, never $0. `decimals=0` (80 columns)
    drops cents only from $100 up, so a small amount is never written as $0."""
    word = snap.so_far_word(amount)
    if word is not None:
        return word
    return money(amount, snap.currency, decimals=decimals if abs(amount) >= 100 else None, stated=stated)


def sources_text(snap: Snapshot, collector: str, *, thresholds: tuple[float, ...] = (),
                 budget_first: bool = False) -> Text:
    """Where the numbers come from; at 80 columns the budget leads this line (the first line has no room)."""
    t = Text(no_wrap=True, overflow="crop")
    m = _month(snap)
    if budget_first and m is not None and m.budget is not None:
        t.append_text(budget_text(m, thresholds, lead="budget "))
        t.append("  ")
    t.append("rates: ", style="dim")
    t.append(clean("; ".join(snap.rate_sources) or "none"))
    t.append("  collector: ", style="dim")
    t.append(clean(collector))
    return t


class SummaryBar(Static):
    """Two lines; content set from the App when the snapshot changes (update() repaints only this widget)."""

    DEFAULT_CSS = "SummaryBar { height: auto; max-height: 2; padding: 0 1; text-wrap: nowrap; text-overflow: clip; }"

    thresholds: reactive[tuple[float, ...]] = reactive(())     # budget.thresholds of the app's config
    _last: Text | None = None

    def on_mount(self) -> None:
        cfg = getattr(self.app, "cfg", None)
        if cfg is not None:
            self.thresholds = budget.thresholds(cfg)

    def show(self, snap: Snapshot, collector: str, *, compact: bool = False, demo: bool = False,
             ascii_only: bool = False, scope: str = "") -> None:
        room = self.size.width or None        # the content width (padding excluded)
        text = summary_text(snap, self.thresholds, compact=compact, demo=demo)
        if room is not None and text.cell_len > room and not compact:
            # too long for this width (a budget set): drop the interval, then the labels, never the idle waste
            text = summary_text(snap, self.thresholds, demo=demo, interval=False)
            if text.cell_len > room:
                compact = True
                text = summary_text(snap, self.thresholds, compact=True, demo=demo)
        text.append("\n")
        sources = sources_text(snap, collector, thresholds=self.thresholds, budget_first=compact)
        if scope:
            sources = Text(scope + "  ", style="bold", no_wrap=True).append_text(sources)
        if room is not None:
            # the second line never wraps (cut with `...` under --ascii: nothing outside ASCII)
            mark = "..." if ascii_only else "…"
            if sources.cell_len > room:
                sources.truncate(max(room - len(mark), 0))
                sources.append(mark)
        text.append_text(sources)
        if text != self._last:          # an unchanged line costs nothing on the terminal
            layout = not wraps_alike(self._last, text)
            self._last = text
            self.update(text, layout=layout)

