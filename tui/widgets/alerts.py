"""What needs attention: open alerts from the store, open idle episodes, budget thresholds, stale data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from gpuspend import budget
from gpuspend.alert_kinds import BUDGET, IDLE, STALE, severity
from gpuspend.snapshot import Snapshot
from gpuspend.tui.widgets.fmt import clean, duration, money

if TYPE_CHECKING:
    from gpuspend.config import Config


@dataclass(frozen=True)
class AlertLine:
    key: str          # stable identity, so the app notifies once when a new one opens
    kind: str         # idle | budget | stale | spike | collector | ...
    severity: str     # warning | error
    text: str         # plain text (outside parts already cleaned)


def alert_lines(snap: Snapshot, cfg: Config, *, stale_after_s: float = 300.0) -> list[AlertLine]:
    """Open alerts from the store, then what the snapshot shows that the store has not recorded yet: open idle
    episodes and budget crossings, decided by gpuspend.budget from `cfg` exactly as the alert engine and the
    report decide them."""
    cur = snap.currency
    out: list[AlertLine] = []
    stored_idle = set()
    for a in snap.alerts:
        if a.state != "open":
            continue
        if a.kind == IDLE:
            stored_idle.add(a.subject)
        amount = f" ({money(a.dollars, cur)})" if a.dollars else ""
        out.append(AlertLine(f"{a.kind}:{a.subject}:{a.started_ms}", a.kind, severity(a.kind),
                             clean(f"{a.kind}: {a.message}{amount}")))
    for g in snap.gpus:
        if not g.episode_open or g.uuid in stored_idle:
            continue
        name = f"GPU {g.index}" if g.index is not None else g.uuid[:12]
        rate = f" at {money(g.cost_per_hour, g.rate.currency)}/h" if g.cost_per_hour else ""
        out.append(AlertLine(f"idle:{g.uuid}", IDLE, severity(IDLE),
                             clean(f"idle: {name} {g.state} for {duration(g.idle_for_s)}{rate}, "
                                   f"{money(g.episode_waste, cur)} wasted")))
    if not any(a.kind == BUDGET for a in out):
        levels = budget.thresholds(cfg)
        for m in snap.months:
            for c in budget.highest(cfg, m):
                what = "spent" if c.basis == budget.ACTUAL else "projected"
                out.append(AlertLine(f"budget:{m.month}:{m.currency}:{c.basis}", BUDGET,
                                     "error" if budget.level(c.pct, levels) == budget.ERROR else "warning",
                                     f"budget: {what} {c.pct:.0f}% of {money(m.budget, m.currency)} "
                                     f"(threshold {c.threshold:g}%)"))
    if snap.last_sample_ms is None:
        out.append(AlertLine("stale:none", STALE, severity(STALE), "stale: no samples in the database yet"))
    elif snap.now_ms - snap.last_sample_ms > stale_after_s * 1000:
        age = duration((snap.now_ms - snap.last_sample_ms) / 1000)
        out.append(AlertLine("stale:samples", STALE, severity(STALE), f"stale: last sample {age} ago"))
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
