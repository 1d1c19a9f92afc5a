"""What needs attention: open alerts from the store, open idle episodes, budget thresholds, stale data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from gpuspend import budget
from gpuspend.alert_kinds import BUDGET, IDLE, STALE, severity
from gpuspend.alerts import budget_subject, budget_top, idle_title, outdated_conditions
from gpuspend.snapshot import GpuNow, Snapshot, gpu_currency
from gpuspend.tui.widgets.fmt import clean, duration, money, share, wraps_alike

if TYPE_CHECKING:
    from gpuspend.config import Config


@dataclass(frozen=True)
class AlertLine:
    key: str          # identity (toast_key), so the app notifies once when a new one opens
    kind: str         # idle | budget | stale | spike | collector | ...
    severity: str     # warning | error
    text: str         # plain text (outside parts already cleaned)
    dollars: float = 0.0   # what it has cost so far: the most expensive alert is listed first


def holders(snap: Snapshot, uuid: str) -> str:
    """Who holds a GPU (the user to ask about a held-idle GPU): `bob pid 41966`, else the workload it is
    allocated to, or ''."""
    procs = [p for p in snap.processes if p.gpu_uuid == uuid]
    if not procs:
        gpu = next((g for g in snap.gpus if g.uuid == uuid), None)
        return clean(getattr(gpu, "workload", "") or "") if gpu is not None else ""
    first = procs[0]
    more = f" +{len(procs) - 1}" if len(procs) > 1 else ""
    return f"{first.user} pid {first.pid}{more}"


def toast_key(kind: str, subject: str, crossing: budget.Crossing | None = None) -> str:
    """What the app toasts once: an alert's kind and subject, the same whether the snapshot shows it live or
    the engine has stored it (an idle GPU toasts when its episode opens, not again when the engine records
    it); a budget's also its level, so crossing a higher threshold toasts again."""
    level = f":{crossing.basis}:{crossing.threshold:g}" if crossing is not None else ""
    return f"{kind}:{subject}{level}"


def _stored_budget_key(cfg: Config, snap: Snapshot, subject: str) -> str:
    """A stored budget alert's toast key: its level as the engine picks it (alerts.budget_top), from the
    snapshot's month that the alert is about."""
    m = next((m for m in snap.months if budget_subject(m) == subject), None)
    return toast_key(BUDGET, subject, budget_top(budget.crossings(cfg, m)) if m is not None else None)


def _idle_now_line(snap: Snapshot, g: GpuNow, cur: str) -> AlertLine:
    """An open idle episode as the panel writes it, stored by the engine or not: the GPU, its state and holders,
    how long, then its money and rate (what a reader acts on comes before any cut)."""
    name = f"GPU {g.index}" if g.index is not None else g.uuid[:12]
    rate = f" at {money(g.cost_per_hour, g.rate.currency)}/h" if g.cost_per_hour else ""
    who = holders(snap, g.uuid)
    who = f" by {who}" if who else ""
    return AlertLine(toast_key(IDLE, g.uuid), IDLE, severity(IDLE),
                     clean(f"idle: {name} {g.state}{who} for {duration(g.idle_for_s)}: "
                           f"{money(g.episode_waste, gpu_currency(g.rate, cur))} wasted{rate}"), g.episode_waste or 0.0)


def alert_lines(snap: Snapshot, cfg: Config, *, stale_after_s: float = 300.0) -> list[AlertLine]:
    """Open alerts from the store, then what the snapshot shows that the store has not recorded yet: open idle
    episodes and budget crossings, decided by gpuspend.budget from `cfg` exactly as the alert engine and the
    report decide them."""
    cur = snap.currency
    out: list[AlertLine] = []
    stored_idle = set()
    # An open idle alert's money as of this snapshot, the GPU row's own figure: the stored one is as of the
    # alert engine's last evaluation (up to half a minute back), a few cents apart on the same screen.
    live = {g.uuid: g.episode_waste for g in snap.gpus if g.episode_open and g.episode_waste is not None}
    # Its title too, as the engine will next write it: stored on the engine's last evaluation, it can name a
    # shorter episode than the GPU table beside it (on the demo's first start, until the month is in: 1d08h
    # beside 2d14h). Idle rows only: busy again before the episode ends, the engine keeps its last title too.
    idle = snap.idle_now()
    titles = {g.uuid: idle_title(g) for g in snap.gpus if g.uuid in idle}
    currency_of = {g.uuid: gpu_currency(g.rate, cur) for g in snap.gpus}     # a GPU's money in its rate's currency
    # A GPU idle now is written as the panel writes one the engine has not stored yet, money before the rest:
    # the stored title (model, host) put it last, cut off at 80 columns.
    idle_now = {g.uuid: g for g in snap.gpus if g.uuid in titles and g.episode_waste is not None}
    for a in snap.alerts:
        if a.state != "open":
            continue
        dollars, message = a.dollars, a.message
        if a.kind == IDLE and a.subject in idle_now:
            stored_idle.add(a.subject)
            out.append(_idle_now_line(snap, idle_now[a.subject], cur))
            continue
        if a.kind == IDLE:
            stored_idle.add(a.subject)
            dollars = live.get(a.subject, dollars)
            message = titles.get(a.subject, message)
        money_cur = (currency_of.get(a.subject) if a.kind == IDLE else None) or a.currency or cur
        amount = f" ({money(dollars, money_cur)})" if dollars else ""
        who = holders(snap, a.subject) if a.kind == IDLE else ""
        who = f", held by {who}" if who else ""
        key = _stored_budget_key(cfg, snap, a.subject) if a.kind == BUDGET else toast_key(a.kind, a.subject)
        out.append(AlertLine(key, a.kind, severity(a.kind),
                             clean(f"{a.kind}: {message}{who}{amount}"), dollars or 0.0))
    for g in snap.gpus:
        if not g.episode_open or g.uuid in stored_idle:
            continue
        out.append(_idle_now_line(snap, g, cur))
    if not any(a.kind == BUDGET for a in out):
        levels = budget.thresholds(cfg)
        for m in snap.months:
            for c in budget.highest(cfg, m):
                what = "spent" if c.basis == budget.ACTUAL else "projected"
                out.append(AlertLine(toast_key(BUDGET, budget_subject(m), c), BUDGET,
                                     "error" if budget.level(c.pct, levels) == budget.ERROR else "warning",
                                     f"budget: {what} {share(c.pct)} of {money(m.budget, m.currency)} "
                                     f"(threshold {c.threshold:g}%)"))
    # Outdated billing or prices as the alert engine decides it, where it has not stored it (it runs in the
    # collector: a box without a GPU, viewing billing only, runs none, and the report would say it alone).
    stored = {(a.kind, a.subject) for a in snap.alerts if a.state == "open"}
    for c in outdated_conditions(cfg, snap, snap.now_ms):
        if c.firing and (c.kind, c.subject) not in stored:
            out.append(AlertLine(toast_key(c.kind, c.subject), c.kind, severity(c.kind), clean(f"{c.kind}: {c.title}")))
    # the most expensive fact first: errors, then what has cost the most so far (stable for equal amounts)
    out.sort(key=lambda a: (a.severity != "error", -a.dollars))
    if snap.last_sample_ms is None:
        out.append(AlertLine("stale:none", STALE, severity(STALE), "stale: no samples in the database yet"))
    elif snap.now_ms - snap.last_sample_ms > stale_after_s * 1000:
        age = duration((snap.now_ms - snap.last_sample_ms) / 1000)
        out.append(AlertLine("stale:samples", STALE, severity(STALE), f"stale: last sample {age} ago"))
    return out


def alerts_text(lines: list[AlertLine], ascii_only: bool = False, *, width: int | None = None) -> Text:
    """One alert a line; with `width` (80 columns) each is cut to one screen line instead of wrapping."""
    t = Text(no_wrap=width is not None, overflow="crop" if width is not None else "fold")
    if not lines:
        t.append("no open alerts", style="dim")
        return t
    mark = "!" if ascii_only else "●"
    for i, line in enumerate(lines):
        if i:
            t.append("\n")
        t.append(f"{mark} ", style="bold #ff5f5f" if line.severity == "error" else "#ffd75f")
        t.append(line.text if width is None else clean(line.text, max(width - 2, 8), ascii=ascii_only))
    return t


class AlertsPanel(Static):
    """Scrollable (focus it with `a`, then the arrow keys) when there are more alerts than rows."""

    DEFAULT_CSS = "AlertsPanel { height: 1fr; padding: 0 1; overflow-y: auto; }"
    can_focus = True
    _last: Text | None = None

    def show(self, lines: list[AlertLine], ascii_only: bool = False, *, one_line: bool = False) -> None:
        width = (self.size.width or 80) - 2 if one_line else None
        text = alerts_text(lines, ascii_only, width=width)
        if text != self._last:
            layout = not wraps_alike(self._last, text)     # most changes are a duration's minute ticking over
            self._last = text
            self.update(text, layout=layout)
