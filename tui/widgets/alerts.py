"""What needs attention: open alerts from the store, open idle episodes, budget thresholds, stale data."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from gpuspend.snapshot import Snapshot
from gpuspend.tui.widgets.fmt import clean, duration, money


@dataclass(frozen=True)
class AlertLine:
    key: str          # stable identity, so the app notifies once when a new one opens
    kind: str         # idle | budget | stale | spike | collector | ...
    severity: str     # warning | error
    text: str         # plain text (outside parts already cleaned)


def alert_lines(snap: Snapshot, *, stale_after_s: float = 300.0,
                thresholds: tuple[float, ...] = (50.0, 80.0, 100.0)) -> list[AlertLine]:
    cur = snap.currency
    out: list[AlertLine] = []
    stored_idle = set()
    for a in snap.alerts:
        if a.state != "open":
            continue
        if a.kind == "idle":
            stored_idle.add(a.subject)
        amount = f" ({money(a.dollars, cur)})" if a.dollars else ""
        out.append(AlertLine(f"{a.kind}:{a.subject}:{a.started_ms}", a.kind,
                             "error" if a.kind in ("budget", "collector") else "warning",
                             clean(f"{a.kind}: {a.message}{amount}")))
    for g in snap.gpus:
        if not g.episode_open or g.uuid in stored_idle:
            continue
        name = f"GPU {g.index}" if g.index is not None else g.uuid[:12]
        rate = f" at {money(g.cost_per_hour, g.rate.currency)}/h" if g.cost_per_hour else ""
        out.append(AlertLine(f"idle:{g.uuid}", "idle", "warning",
                             clean(f"idle: {name} {g.state} for {duration(g.idle_for_s)}{rate}, "
                                   f"{money(g.episode_waste, cur)} wasted")))
    if thresholds and not any(a.kind == "budget" for a in out):
        for m in snap.months:
            pct = m.budget_pct_forecast
            if m.budget is not None and pct is not None and pct >= min(thresholds):
                out.append(AlertLine(f"budget:{m.currency}", "budget", "error" if pct >= max(thresholds) else
                                     "warning", f"budget: projected {pct:.0f}% of {money(m.budget, m.currency)}"))
    if snap.last_sample_ms is None:
        out.append(AlertLine("stale:none", "stale", "warning", "stale: no samples in the database yet"))
    elif snap.now_ms - snap.last_sample_ms > stale_after_s * 1000:
        age = duration((snap.now_ms - snap.last_sample_ms) / 1000)
        out.append(AlertLine("stale:samples", "stale", "warning", f"stale: last sample {age} ago"))
    return out


def alerts_text(lines: list[AlertLine], ascii_only: bool = False) -> Text:
    t = Text(no_wrap=False, overflow="fold")
    if not lines:
        t.append("no open alerts", style="dim")
        return t
    mark = "!" if ascii_only else "●"
    for i, line in enumerate(lines):
        if i:
            t.append("\n")
        t.append(f"{mark} ", style="bold #ff5f5f" if line.severity == "error" else "#ffd75f")
        t.append(line.text)
    return t


class AlertsPanel(Static):
    DEFAULT_CSS = "AlertsPanel { height: 1fr; padding: 0 1; }"
    _last: Text | None = None

    def show(self, lines: list[AlertLine], ascii_only: bool = False) -> None:
        text = alerts_text(lines, ascii_only)
        if text != self._last:
            self._last = text
            self.update(text)
