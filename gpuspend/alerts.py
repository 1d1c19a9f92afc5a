"""Alert state in SQLite: which conditions are open, and which notifications each one has queued.

`evaluate(conn, cfg, snapshot, now_ms)` turns a costing Snapshot (plus a few store facts: the collector
lease, billing coverage, the run-rate history) into conditions, then, in ONE BEGIN IMMEDIATE transaction,
opens / updates / resolves rows in `alerts` and enqueues rows in `notifications` (sent by gpuspend.notify).
Because the whole read-decide-write runs under SQLite's write lock, and the outbox has UNIQUE
(alert_id, target, event), two processes evaluating at once (daemon + cron) enqueue each message once.

Rules (reference/cost-tools.md section 6):
- one alert per episode: kind + subject, at most one open (partial unique index);
- 'open' once per target (when the alert first passes that target's filter), 'repeat:N' at most every
  alerts.repeat while open (not for budgets: a threshold fires once per month, like AWS Budgets),
  'resolved' once, to the targets that were told it opened;
- one alert per budget (month, currency) carrying the highest threshold crossed; a higher one crossed while
  it is open is one 'raised:THRESHOLD:BASIS' message, and after it cleared only a higher one reopens it;
- every open alert is judged against the CURRENT config: a cause that is gone (a removed budget, a target
  month that ended) resolves it, and `current_alerts` gives the report what is still true without writing;
- hysteresis: each condition is True (firing), False (clear) or None (in the band between: keep state).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gpuspend import budget
from gpuspend.alert_kinds import ALERTNAMES, BUDGET, IDLE, NO_REPEAT, OUTDATED, STALE
from gpuspend.fmt import clean, count, duration, money, rounded, share, unseen
from gpuspend.rollup import COLLECTOR_SEEN_KEY, REMOTE_SOURCES
from gpuspend.snapshot import AlertView, GpuNow, MonthView, Snapshot, gpu_currency
from gpuspend.store import get_meta, transaction

if TYPE_CHECKING:
    from gpuspend.config import Config
    from gpuspend.notify import Target

SPIKE_MIN_HOURS = 24            # hours of run-rate history before a baseline means anything
BASELINE_MS = 7 * 86_400_000


@dataclass(frozen=True)
class Condition:
    kind: str
    subject: str
    firing: bool | None             # None: inside the hysteresis band, keep the current state
    title: str = ""
    text: str = ""
    dollars: float | None = None
    currency: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    silent_resolve: bool = False    # resolve without a message (a budget month that has ended)
    refresh: bool = True            # False: keep the alert's stored text (a GPU busy again, episode not yet over)
    started_ms: int | None = None   # when the condition began, if before the alert opened (idle run start)
    level: float | None = None      # budgets: the highest threshold crossed (re-sent when it rises)


@dataclass(frozen=True)
class Change:
    alert_id: int
    kind: str
    subject: str
    event: str                      # open | repeat:N | resolved
    title: str


# -- conditions --------------------------------------------------------------------------------------------

def _idle_conditions(snap: Snapshot) -> list[Condition]:
    holders: dict[str, list[str]] = {}
    for p in snap.processes:
        who = f"{clean(p.user, 40) or '?'} ({clean(p.command, 60)}, pid {p.pid})"
        if getattr(p, "workload", ""):        # the pod / job / container / notebook, not only the user
            who = f"{clean(p.workload, 80)}: {who}"
        holders.setdefault(p.gpu_uuid, []).append(who)
    out = []
    whole_gpu_idle = {g.uuid for g in snap.gpus if g.parent_uuid is None and g.episode_open}
    for g in snap.gpus:
        if g.state in ("lost", "stale"):
            firing: bool | None = None      # no data: neither proof of idle nor of work
        elif g.parent_uuid in whole_gpu_idle:
            firing = None                   # a MIG slice of a GPU idle as a whole: one alert, on the GPU paid for
        else:
            firing = bool(g.episode_open)
        c = _idle_condition(snap, g, holders.get(g.uuid, []), firing)
        if firing is None or (g.episode_open and g.state not in ("held-idle", "free-idle")):
            # No fresh data, or busy again before costing ends the episode (idle.busy_for): keep the last
            # idle numbers and send no reminder on a guess.
            c = Condition(c.kind, c.subject, c.firing, refresh=False)
        out.append(c)
    return out


def idle_title(g: GpuNow) -> str:
    """An idle alert's title as of the snapshot `g` is from; the dashboard writes a stored alert's title from
    its GPU's live row with this, so it never says another length than the GPU table beside it."""
    label = f"GPU {g.index} " if g.index is not None else "GPU "
    idle_kind = "held idle" if g.state == "held-idle" else "idle"
    return f"{label}({clean(g.name or g.model or 'GPU', 60)}) on {clean(g.host, 60)} {idle_kind} for " \
           f"{duration(g.idle_for_s)}"


def _idle_condition(snap: Snapshot, g: GpuNow, holders: list[str], firing: bool | None) -> Condition:
    where = clean(g.host, 60)
    label = f"GPU {g.index} " if g.index is not None else "GPU "
    name = clean(g.name or g.model or "GPU", 60)
    held = ", ".join(holders[:3]) + (f" and {len(holders) - 3} more" if len(holders) > 3 else "")
    currency = gpu_currency(g.rate, snap.currency)
    title = idle_title(g)
    fields = [("GPU", f"{label}{name} on {where}"),
              ("Held by", held or (f"{clean(g.workload, 120)} (allocated, no process)" if getattr(g, "workload", "")
                                   else "nobody (no process holds memory)")),
              ("Idle for", duration(g.idle_for_s)),
              ("Wasted so far", money(g.episode_waste, currency)
                                 + (f" ({gap})" if (gap := unseen(g.episode_unseen_s)) else ""))]
    if g.cost_per_hour is not None:
        fields.append(("Burning", f"{money(g.cost_per_hour, currency)}/h"))
    return Condition(IDLE, g.uuid, firing, title=title, dollars=float(rounded(g.episode_waste or 0.0)),
                     currency=currency, fields=tuple(fields), started_ms=snap.now_ms - int(g.idle_for_s * 1000),
                     labels={"gpu": g.uuid, "host": where, "gpu_index": str(g.index), "source": g.source})


def budget_level(threshold: float, basis: str) -> float:
    """How far a budget has gone, as one comparable number: the threshold, and at the same threshold money
    already spent ranks above a forecast of it."""
    return float(threshold) + (0.5 if basis == budget.ACTUAL else 0.0) / 1000


def _budget_conditions(cfg: Config, snap: Snapshot) -> list[Condition]:
    """ONE condition per budget (month and currency), carrying the highest threshold crossed: crossing 50, 80
    and 100% at once is one message, not three (and one line in the panel, not five). Crossing and hysteresis:
    gpuspend.budget. Firing when any crossing fires; clear only when every crossing is clear."""
    out = []
    for m in snap.months:
        if not m.budget:
            continue
        cs = budget.crossings(cfg, m)
        if not cs:
            continue
        top = budget_top(cs)
        if top is not None:
            out.append(_budget_condition(m, top.basis, top.threshold, top.pct, top.amount, True))
        else:
            firing = None if any(c.firing is None for c in cs) else False
            out.append(Condition(BUDGET, budget_subject(m), firing, refresh=False))
    return out


def budget_top(cs: list[budget.Crossing]) -> budget.Crossing | None:
    """The crossing a month's one budget alert carries: the highest by budget_level of those firing."""
    fired = [c for c in cs if c.firing]
    return max(fired, key=lambda c: budget_level(c.threshold, c.basis)) if fired else None


def budget_subject(m: MonthView) -> str:
    return f"budget:{m.month}:{m.currency}"


def _budget_condition(m: MonthView, basis: str, thr: float, pct: float, amount: float | None,
                      firing: bool | None) -> Condition:
    what = "spent" if basis == "actual" else "forecast"
    title = f"Budget {thr:g}% {'reached' if basis == 'actual' else 'forecast'} for {m.month}: " \
            f"{what} {money(amount, m.currency)} of {money(m.budget, m.currency)} ({share(pct)})"
    fields = (("Month", m.month), ("Basis", basis), ("Threshold", f"{thr:g}%"),
              ("Month to date", money(m.mtd, m.currency)), ("Projection", money(m.projection, m.currency)),
              ("Budget", money(m.budget, m.currency)))
    return Condition(BUDGET, budget_subject(m), firing, title=title,
                     dollars=amount, currency=m.currency, fields=fields,
                     labels={"month": m.month, "basis": basis, "threshold": f"{thr:g}"},
                     level=budget_level(thr, basis))


def _record_run_rate(conn: sqlite3.Connection, snap: Snapshot, now_ms: int) -> None:
    hour = now_ms - now_ms % 3_600_000
    conn.execute("INSERT INTO run_rate_hours (hour, currency, rate_sum, n) VALUES (?, ?, ?, 1) "
                 "ON CONFLICT(hour, currency) DO UPDATE SET rate_sum = rate_sum + excluded.rate_sum, n = n + 1",
                 (hour, snap.currency, float(snap.cost_per_hour)))
    conn.execute("DELETE FROM run_rate_hours WHERE hour < ?", (hour - 2 * BASELINE_MS,))


def _spike_condition(conn: sqlite3.Connection, cfg: Config, snap: Snapshot, now_ms: int) -> Condition | None:
    hour = now_ms - now_ms % 3_600_000
    row = conn.execute("SELECT COUNT(*), AVG(rate_sum / n) FROM run_rate_hours WHERE currency = ? "
                       "AND hour >= ? AND hour < ?", (snap.currency, hour - BASELINE_MS, hour)).fetchone()
    hours, baseline = row[0], row[1]
    pct = float(cfg.alerts.spike_pct)
    if hours < SPIKE_MIN_HOURS or not baseline or baseline <= 0:
        return Condition("spike", f"spend:{snap.currency}", None)   # not enough history: decide nothing
    now_rate = float(snap.cost_per_hour)
    up = (now_rate / baseline - 1) * 100
    firing: bool | None = True if up >= pct else (False if up < pct / 2 else None)
    extra_day = (now_rate - baseline) * 24
    title = f"Spend run rate {money(now_rate, snap.currency)}/h is {up:.0f}% above the 7-day baseline"
    return Condition("spike", f"spend:{snap.currency}", firing, title=title, dollars=float(rounded(max(extra_day, 0))),
                     currency=snap.currency,
                     fields=(("Run rate", f"{money(now_rate, snap.currency)}/h"),
                             ("7-day baseline", f"{money(baseline, snap.currency)}/h"),
                             ("Extra per day", money(extra_day, snap.currency))))


def collector_condition(conn: sqlite3.Connection, cfg: Config, snap: Snapshot, now_ms: int) -> Condition | None:
    """The `collector` alert: GPUs of this host are in the database but no collector (daemon or the TUI's
    in-app one) is sampling them. A report's own one-shot sample is not collecting: with only cron reports, no
    idle GPU is ever seen. Firing after alerts.collector_stopped since a collector was last alive (its live
    lease heartbeat, or the mark its periodic rollup leaves), or since the GPUs were first seen when none ever
    ran. No GPU and no collector ever here: no condition."""
    marks = ",".join("?" * len(REMOTE_SOURCES))
    first_seen = conn.execute(f"SELECT MIN(first_seen) FROM gpus WHERE parent_id IS NULL AND "
                              f"(source IS NULL OR source NOT IN ({marks}))", REMOTE_SOURCES).fetchone()[0]
    row = conn.execute("SELECT pid, host, owner, heartbeat FROM collector_lease WHERE id = 1").fetchone()
    lease_beat = row[3] if row and row[2] != "report" else None
    seen_text = get_meta(conn, COLLECTOR_SEEN_KEY)
    seen = int(seen_text) if seen_text and seen_text.lstrip("-").isdigit() else None
    known = [v for v in (lease_beat, seen) if v is not None]
    limit_ms = float(cfg.alerts.collector_stopped) * 1000
    if known:
        last = max(known)
        who = (f"{row[2]} pid {row[0]} on {clean(row[1], 60)}" if lease_beat is not None and lease_beat == last
               else "no collector is running")
        since = "no sample"
    elif first_seen is not None:
        last, who, since = int(first_seen), "no collector has ever run on this database", "no collector"
    else:
        return None                 # no GPU and no collector ever here: nothing has stopped
    age = max(0, now_ms - last)
    title = f"Collector stopped: {since} for {duration(age / 1000)} ({who})"
    return Condition("collector", "collector", age > limit_ms, title=title,
                     text="Run `gpuspend collect` (see the README's systemd section) so idle GPUs are seen.",
                     fields=(("Last alive", datetime.fromtimestamp(last / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")),
                             ("Collector", who)))


_collector_condition = collector_condition


def outdated_conditions(cfg: Config, snap: Snapshot, now_ms: int) -> list[Condition]:
    """Billing exports and the price catalog, each against its limit: from the snapshot alone, so the
    dashboard states it live where no alert engine runs (no GPU here, so no in-app collector)."""
    out = []
    coverage = snap.billing_coverage_end_ms      # the month's, else the newest import's (costing)
    if coverage is not None:
        age = (now_ms - coverage) / 1000
        when = datetime.fromtimestamp(coverage / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        which = f"the {clean(snap.billing_coverage_export, 60)} export ends" if snap.billing_coverage_export \
            else "exports end"
        out.append(Condition(OUTDATED, "billing", age > float(cfg.alerts.stale_billing),
                             title=f"Billing data is outdated: {which} {when} ({duration(age)} ago)",
                             text="Import the latest billing exports (gpuspend import FILE).",
                             fields=(("Coverage ends", when),
                                     *((("Export", clean(snap.billing_coverage_export, 60)),)
                                       if snap.billing_coverage_export else ()))))
    if snap.catalog_as_of:
        try:
            as_of = datetime.strptime(snap.catalog_as_of, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return out
        age = now_ms / 1000 - as_of.timestamp()
        out.append(Condition(OUTDATED, "catalog", age > float(cfg.alerts.stale_catalog),
                             title=f"Price catalog is outdated: {count(int(age // 86400), 'day')} old "
                                   f"(as of {snap.catalog_as_of})",
                             text="Catalog rates may be out of date: set rates: in the config or import billing.",
                             fields=(("Catalog as of", snap.catalog_as_of),)))
    return out


def conditions(conn: sqlite3.Connection, cfg: Config, snap: Snapshot, now_ms: int) -> list[Condition]:
    out: list[Condition] = []
    out += _idle_conditions(snap)
    out += _budget_conditions(cfg, snap)
    for c in (_spike_condition(conn, cfg, snap, now_ms), _collector_condition(conn, cfg, snap, now_ms)):
        if c is not None:
            out.append(c)
    out += outdated_conditions(cfg, snap, now_ms)
    return out


# -- state machine -----------------------------------------------------------------------------------------

def _payload(alert_id: int, c: Condition, event: str, started: int, ended: int | None) -> str:
    return json.dumps({"alert_id": alert_id, "kind": c.kind, "subject": c.subject, "event": event,
                       "alertname": ALERTNAMES.get(c.kind, c.kind), "title": c.title, "text": c.text,
                       "dollars": c.dollars, "currency": c.currency, "fields": [list(f) for f in c.fields],
                       "labels": c.labels, "started_ms": started, "ended_ms": ended}, sort_keys=True)


def _condition_from_row(kind: str, subject: str, details: str | None, dollars: float | None,
                        currency: str | None, title: str) -> Condition:
    d = json.loads(details) if details else {}
    return Condition(kind, subject, False, title=title, text=d.get("text", ""), dollars=dollars, currency=currency,
                     fields=tuple(tuple(f) for f in d.get("fields", [])), labels=d.get("labels", {}))


def _details(c: Condition) -> str:
    # "message" is what costing puts in Snapshot.alerts (AlertView.message) for the TUI and the report.
    return json.dumps({"message": c.title, "text": c.text, "fields": [list(f) for f in c.fields],
                       "labels": c.labels, "level": c.level}, sort_keys=True)


def _level_of(details: str | None) -> float | None:
    try:
        level = json.loads(details).get("level") if details else None
    except (ValueError, AttributeError):
        return None
    return float(level) if isinstance(level, int | float) else None


def _enqueue(conn: sqlite3.Connection, alert_id: int, target: str, event: str, payload: str, now_ms: int) -> bool:
    cur = conn.execute("INSERT OR IGNORE INTO notifications (alert_id, target, event, payload, created, next_attempt) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (alert_id, target, event, payload, now_ms, now_ms))
    return cur.rowcount == 1


def _told(conn: sqlite3.Connection, alert_id: int) -> dict[str, tuple[int, int]]:
    """target -> (created of its latest notification, repeats so far) for targets told this alert opened."""
    out: dict[str, tuple[int, int]] = {}
    for target, last, repeats in conn.execute(
            "SELECT target, MAX(created), SUM(event LIKE 'repeat:%') FROM notifications WHERE alert_id = ? "
            "GROUP BY target HAVING SUM(event = 'open') > 0", (alert_id,)):
        out[target] = (last, int(repeats or 0))
    return out


def _open(conn: sqlite3.Connection, c: Condition, targets: list[Target], now_ms: int) -> list[Change]:
    if c.kind in NO_REPEAT:
        # A budget level is told once per month, even after it cleared; only a higher threshold reopens it.
        told = [_level_of(d) for (d,) in conn.execute(
            "SELECT details FROM alerts WHERE kind = ? AND subject = ?", (c.kind, c.subject))]
        if told and (c.level is None or any(t is None or t >= c.level for t in told)):
            return []
    started = min(c.started_ms, now_ms) if c.started_ms is not None else now_ms
    cur = conn.execute(
        "INSERT OR IGNORE INTO alerts (kind, subject, state, started, dollars, currency, title, details, updated, "
        "last_notified) VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
        (c.kind, c.subject, started, c.dollars, c.currency, c.title, _details(c), now_ms, now_ms))
    if cur.rowcount != 1:
        return []
    alert_id = int(cur.lastrowid)
    for t in targets:
        if t.accepts(c.kind, c.dollars):
            _enqueue(conn, alert_id, t.name, "open", _payload(alert_id, c, "open", started, None), now_ms)
    return [Change(alert_id, c.kind, c.subject, "open", c.title)]


def _update(conn: sqlite3.Connection, row: tuple, c: Condition, targets: list[Target], repeat_ms: int,
            now_ms: int) -> list[Change]:
    alert_id, started, repeats = row[0], row[1], row[2]
    if not c.refresh:
        return []
    old_level = _level_of(row[3])
    raised = c.level is not None and (old_level is None or c.level > old_level)
    conn.execute("UPDATE alerts SET dollars = ?, currency = ?, title = ?, details = ?, updated = ? WHERE id = ?",
                 (c.dollars, c.currency, c.title, _details(c), now_ms, alert_id))
    told = _told(conn, alert_id)
    changes: list[Change] = []
    for t in targets:
        if not t.accepts(c.kind, c.dollars) and t.name not in told:
            continue
        if t.name not in told:      # passes this target's filter for the first time (e.g. min_dollars)
            _enqueue(conn, alert_id, t.name, "open", _payload(alert_id, c, "open", started, None), now_ms)
            continue
        last, n = told[t.name]
        if raised and c.kind in NO_REPEAT:
            # A higher threshold crossed while open: said once, as its own event (the outbox key).
            event = f"raised:{c.labels.get('threshold')}:{c.labels.get('basis')}"
            if _enqueue(conn, alert_id, t.name, event, _payload(alert_id, c, event, started, None), now_ms):
                changes.append(Change(alert_id, c.kind, c.subject, event, c.title))
            continue
        if c.kind in NO_REPEAT or now_ms - last < repeat_ms:
            continue
        event = f"repeat:{n + 1}"
        if _enqueue(conn, alert_id, t.name, event, _payload(alert_id, c, event, started, None), now_ms):
            repeats = max(repeats, n + 1)
            changes.append(Change(alert_id, c.kind, c.subject, event, c.title))
    if changes:
        conn.execute("UPDATE alerts SET repeats = ?, last_notified = ? WHERE id = ?", (repeats, now_ms, alert_id))
    # The same repeat to several targets is one change for the caller.
    return list({ch.event: ch for ch in changes}.values())


def _resolve(conn: sqlite3.Connection, row: tuple, silent: bool, now_ms: int) -> list[Change]:
    """The resolved message repeats what the alert last said (final idle time, money wasted), not the
    clear condition (a busy GPU has no idle time to show)."""
    alert_id, started = row[0], row[1]
    conn.execute("UPDATE alerts SET state = 'resolved', ended = ?, updated = ? WHERE id = ? AND state = 'open'",
                 (now_ms, now_ms, alert_id))
    if silent:
        return []
    kind, subject = conn.execute("SELECT kind, subject FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    c = _condition_from_row(kind, subject, row[3], row[4], row[5], row[6])
    for target in _told(conn, alert_id):
        _enqueue(conn, alert_id, target, "resolved", _payload(alert_id, c, "resolved", started, now_ms), now_ms)
    return [Change(alert_id, c.kind, c.subject, "resolved", c.title)]


def evaluate(conn: sqlite3.Connection, cfg: Config, snapshot: Snapshot, now_ms: int) -> list[Change]:
    """Open, repeat and resolve alerts for this snapshot; enqueue their notifications. Idempotent for a
    given state of the store, and safe when several processes call it at once."""
    from gpuspend.notify import configured_targets  # the report reads alerts without loading delivery

    targets = configured_targets(cfg)
    repeat_ms = int(float(cfg.alerts.repeat) * 1000)
    changes: list[Change] = []
    with transaction(conn):
        conds = conditions(conn, cfg, snapshot, now_ms)
        _record_run_rate(conn, snapshot, now_ms)
        seen: set[tuple[str, str]] = set()
        open_rows = {(k, s): (i, st, rp, d, dl, cur, ti) for i, k, s, st, rp, d, dl, cur, ti in conn.execute(
            "SELECT id, kind, subject, started, repeats, details, dollars, currency, title FROM alerts "
            "WHERE state = 'open'")}
        for c in conds:
            seen.add((c.kind, c.subject))
            row = open_rows.get((c.kind, c.subject))
            if row is None:
                if c.firing:
                    changes += _open(conn, c, targets, now_ms)
            elif c.firing is False:
                changes += _resolve(conn, row, c.silent_resolve, now_ms)
            else:
                changes += _update(conn, row, c, targets, repeat_ms, now_ms)
        # Open alerts whose subject is gone: a GPU that left the snapshot, a budget month that ended.
        for (kind, subject), row in open_rows.items():
            if (kind, subject) in seen:
                continue
            if kind == "spike":
                continue            # no verdict this time (e.g. currency changed): keep it
            # Silent: a budget month that ended, and rows of the old "stale" kind (now `outdated`, reopened
            # under that name when still true).
            changes += _resolve(conn, row, kind in (BUDGET, STALE), now_ms)
    return changes


# -- readers -----------------------------------------------------------------------------------------------

def alert_views(conn: sqlite3.Connection, *, since_ms: int | None = None) -> tuple[AlertView, ...]:
    """Open alerts, plus those resolved since `since_ms`: what the TUI and the report show."""
    rows = conn.execute(
        "SELECT kind, subject, state, started, dollars, title, currency FROM alerts WHERE state = 'open' "
        "OR (ended IS NOT NULL AND ended >= ?) ORDER BY state = 'open' DESC, started DESC",
        (since_ms if since_ms is not None else 2**62,)).fetchall()
    return tuple(AlertView(k, s, st, started, d, t, cur) for k, s, st, started, d, t, cur in rows)


def current_alerts(conn: sqlite3.Connection, cfg: Config, snap: Snapshot, now_ms: int) -> tuple[AlertView, ...]:
    """The alerts that are true NOW under THIS config, without writing anything (the report without --notify,
    whose --fail-on must not fail on a budget that was removed from the config, nor miss one crossed while no
    daemon ran): stored open alerts whose condition still holds (or sits in its hysteresis band), plus
    conditions firing that no alert row records yet."""
    conds = {(c.kind, c.subject): c for c in conditions(conn, cfg, snap, now_ms)}
    out: list[AlertView] = []
    seen: set[tuple[str, str]] = set()
    for v in alert_views(conn):
        if v.state != "open":
            continue
        c = conds.get((v.kind, v.subject))
        if c is None and v.kind != "spike":      # its cause is gone (a removed budget, a GPU that left)
            continue
        if c is not None and c.firing is False:
            continue
        seen.add((v.kind, v.subject))
        title = c.title if c is not None and c.firing and c.refresh and c.title else v.message
        dollars = c.dollars if c is not None and c.firing and c.refresh else v.dollars
        currency = c.currency if c is not None and c.firing and c.refresh and c.currency else v.currency
        out.append(AlertView(v.kind, v.subject, "open", v.started_ms, dollars, title, currency))
    for key, c in conds.items():
        if c.firing and key not in seen:
            started = min(c.started_ms, now_ms) if c.started_ms is not None else now_ms
            out.append(AlertView(c.kind, c.subject, "open", started, c.dollars, c.title, c.currency))
    return tuple(out)


def open_alerts(conn: sqlite3.Connection, kinds: Iterable[str] | None = None) -> tuple[AlertView, ...]:
    views = alert_views(conn)
    wanted = set(kinds) if kinds else None
    return tuple(v for v in views if v.state == "open" and (wanted is None or v.kind in wanted))


# A snapshot handed to the alerts task (the dashboard's newest full one) is evaluated when at most this old;
# older (the dashboard paused, or on another screen), the task builds its own.
SHARED_SNAPSHOT_MAX_AGE_MS = 10_000


def alerts_task(conn: sqlite3.Connection, cfg: Config, now_ms: int, snapshot: Snapshot | None = None) -> None:
    """Collector periodic task (daemon and the TUI's in-app collector): snapshot, evaluate, deliver.
    `snapshot`: a full snapshot of this database and config built moments ago (the dashboard's, when its in-app
    collector runs this task: the same build_snapshot, so the task need not build a second one, about a fifth of
    what the in-app collector cost), evaluated as of its own time. Delivery problems become one log line; the
    messages stay in the outbox for the next try."""
    from gpuspend.costing import build_snapshot
    from gpuspend.notify import deliver_pending

    if snapshot is None or not 0 <= now_ms - snapshot.now_ms <= SHARED_SNAPSHOT_MAX_AGE_MS:
        snapshot = build_snapshot(conn, cfg, now_ms)
    evaluate(conn, cfg, snapshot, snapshot.now_ms)
    result = deliver_pending(conn, cfg, now_ms)
    # A misconfigured target is said once per process, not every 30 s; delivery failures each time they
    # happen (the outbox backoff spaces them out).
    errors = [e for e in result.errors if e not in _said]
    _said.update(e for e in errors if e.startswith("notify target "))
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise RuntimeError(f"notifications not delivered: {errors[0]}{more}")


alerts_task.takes_snapshot = True    # type: ignore[attr-defined]  # the collector hands it one when it has one
_said: set[str] = set()
