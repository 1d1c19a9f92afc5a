"""`gpuspend --report`: the headless report for cron (text, markdown or JSON), with meaningful exit codes.

One data dict (the JSON document, schema in gpuspend/data/report.schema.json) is built from a costing
Snapshot, and the text and markdown renderers only format it, so the three formats never disagree.
Errors go to stderr through GpuspendError (exit 2/3); exit 1 when alerts selected by --fail-on are active.
Never imports textual: cron boxes may not have a terminal, and start-up must stay fast.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuspend import budget, clock, costing, forecast, pricing
from gpuspend.alert_kinds import BUDGET, COLLECTOR, IDLE, OUTDATED, parse_fail_on
from gpuspend.alerts import collector_condition
from gpuspend.config import parse_duration
from gpuspend.costing.observed import Observed, observed, observed_phrase
from gpuspend.costing.workloads import UNATTRIBUTED, group_by, workload_attribution
from gpuspend.errors import EXIT_ALERTS, EXIT_OK, GpuspendError, NvmlUnavailable, UsageError
from gpuspend.fmt import clean, count, money, share, share_cut, unseen
from gpuspend.fmt import duration as dur
from gpuspend.snapshot import Snapshot, observed_hours_label, unknown_so_far

if TYPE_CHECKING:
    from gpuspend.config import Config
    from gpuspend.options import ReportOptions

SCHEMA_VERSION = 2    # 2: workloads, workloads_total, top.by / top.grouped; alert kind "stale" -> "outdated"
# (2 also: unknown money is null: today.cost, today.idle_waste, now.by_state.*, episode_waste; added since, no
# field changed: freshness.billing_coverage_export, alerts[].currency)
NO_NVML = "no fresh sample:"      # + NvmlUnavailable's line ("NVML is not available: <reason> (<hint>)")
WIDTH = 80
TOP = 5
MAX_EPISODES = 20       # the text report lists at most this many idle episodes, and says so when there are more


# -- options -------------------------------------------------------------------------------------------
def parse_since(text: str | None, now_ms: int) -> int:
    """--since: an ISO date/time (UTC unless it says otherwise) or a duration back from now (24h, 7d)."""
    if not text:
        return now_ms - costing.DAY_MS
    try:
        return now_ms - int(parse_duration(text) * 1000)
    except ValueError:
        pass
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r} is not a date, time or duration",
                         hint="use e.g. 2026-11-01, 2026-11-14T08:00 or 24h") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    ms = int(d.timestamp() * 1000)
    if ms > now_ms:
        raise UsageError(f"--since {text!r} is in the future")
    return ms


# -- helpers -------------------------------------------------------------------------------------------
def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unrated_note(now: dict[str, Any]) -> str:
    n = now["unrated_gpus"]
    return f" (+{count(n, 'GPU')} with no rate)" if n else ""


def total_per_hour(now: dict[str, Any], cur: str) -> str:
    """The $/h total; GPUs without a rate are named, and with none rated the total is "no rate", never $0.
    No GPU at all (no driver, nothing in the database) is "no GPU", never $0.00/h."""
    if not now["gpus"]:
        return "no GPU"
    if now["cost_per_hour"] is None:
        return "no rate"
    return f"{money(now['cost_per_hour'], cur)}/h{_unrated_note(now)}"


NO_GPU_IDLE = "no GPU: no idle waste"


def _no_waste(idle: dict[str, Any], cur: str) -> str:
    """The idle waste total when no priced GPU wasted anything: "no rate" when unpriced GPUs were idle
    (unknown money, never $0), else nothing was wasted."""
    return "no rate" if any(e["waste"] is None for e in idle["episodes"]) else money(0.0, cur)


def total_so_far(amount: float | None, now: dict[str, Any], cur: str) -> str:
    """Money accrued so far; unknown (snapshot.unknown_so_far) is a word, not $0."""
    word = unknown_so_far(amount, gpus=bool(now["gpus"]), rated=now["cost_per_hour"] is not None)
    return money(amount, cur) if word is None else word


def _r(v: float | None, nd: int = 6) -> float | None:
    """A number for the document, money to the micro-unit: the text and markdown reports round the document's
    money once more, to cents, so its own rounding must sit far below a cent (at 4 places 8.54496 became 8.545
    and then $8.55)."""
    return None if v is None else round(float(v), nd)


def _cut(pct: float | None) -> float | None:
    """A budget percentage for the document: cut to 2 places, never up past a threshold (fmt.share_cut)."""
    return None if pct is None else share_cut(pct, 2)


def _observed_json(obs: Observed) -> dict[str, Any]:
    """How much of a window the samples cover: per GPU and in total (GPU-seconds), and as a percentage."""
    frac = obs.fraction
    return {"window_s": round(obs.window_s, 3), "seconds": round(obs.seconds, 3),
            "possible_s": round(obs.possible_s, 3), "pct": None if frac is None else round(frac * 100, 2),
            "per_gpu": [{"uuid": clean(u), "seconds": round(sec, 3)} for u, sec in obs.per_gpu]}


# -- sampling ------------------------------------------------------------------------------------------
def take_sample(db_path: Path, cfg: Config, demo: bool) -> tuple[bool, str]:
    """One fresh sample through the real collector when we can; never fails the report."""
    try:
        from gpuspend.daemon import Collector

        with Collector(db_path, cfg, demo=demo, owner="report") as col:
            col.tick()
        return True, "fresh sample taken"
    except NvmlUnavailable as exc:
        return False, f"{NO_NVML} {exc.line()}"       # the whole NVML reason, with what to do
    except GpuspendError as exc:
        return False, f"no fresh sample: {exc.message}"
    except ImportError as exc:
        return False, f"no fresh sample: {exc}"


# -- the document --------------------------------------------------------------------------------------
def build_document(conn: Any, cfg: Config, snap: Snapshot, since_ms: int, month: str, sample: tuple[bool, str],
                   fail_on: frozenset[str] | set[str], by: str = "user", until_ms: int | None = None) -> dict[str, Any]:
    now = snap.now_ms
    cur = snap.currency
    # the window's end: now, or the end of the month `--month` names (its sections then cover that month)
    hi = (now if until_ms is None else min(until_ms, now)) + 1
    gpus = costing.load_gpus(conn)
    rates = costing.resolve_rates(conn, cfg, gpus, now)
    episodes, _tl = costing.idle_episodes(conn, cfg, since_ms, hi, now, rates, gpus)
    spends = costing.attribution(conn, cfg, rates, since_ms, hi, now)
    split = workload_attribution(conn, cfg, rates, since_ms, hi, now)
    billing = costing.billing_summary(conn, cfg, month, now)
    index_of = {g["uuid"]: g["idx"] for g in gpus}

    waste_total = {k: _r(v) for k, v in costing.waste_since(episodes, since_ms).items()}
    months = []
    for mv in snap.months:
        months.append({
            "month": mv.month, "currency": mv.currency, "mtd": _r(mv.mtd), "billed": _r(mv.billed),
            "metered": _r(mv.metered), "cloud": _r(mv.cloud), "coverage_end": iso(mv.coverage_end_ms),
            "projection": _r(mv.projection),
            "low": _r(mv.low), "high": _r(mv.high), "interval_note": mv.interval_note, "budget": _r(mv.budget),
            "budget_pct_actual": _cut(mv.budget_pct_actual), "budget_pct_forecast": _cut(mv.budget_pct_forecast),
            "thresholds_crossed": [{"pct": c.threshold, "basis": c.basis} for c in budget.crossed(cfg, mv)],
        })
    last_age = None if snap.last_sample_ms is None else max(0.0, (now - snap.last_sample_ms) / 1000)
    cat = pricing.load_catalog()
    cat_as_of = snap.catalog_as_of or cat.as_of
    cat_age = pricing.age_days(cat_as_of, now)
    cat_stale = pricing.is_stale(cat_as_of, cfg, now) if snap.catalog_as_of else False
    cov = snap.billing_coverage_end_ms
    billing_stale = cov is not None and (now - cov) / 1000 > float(cfg.alerts.stale_billing)
    # The `collector` alert's one rule (gpuspend.alerts): a report's own sample is not a collector running.
    col = collector_condition(conn, cfg, snap, now)
    collector_stale = bool(col is not None and col.firing)
    collector_running = snap.collector != "none" and not snap.collector.endswith("(stale)") \
        and not snap.collector.startswith("report")
    # No driver on a host whose database knows local GPUs: they are not being sampled, which is an alert.
    nvml_missing = not sample[0] and sample[1].startswith(f"{NO_NVML} NVML is not available")
    local_gpus = [g for g in gpus if not g.get("parent_id") and not costing.is_remote(g.get("source"))]
    if nvml_missing and local_gpus:
        collector_stale = True
    obs_today = observed(conn, cfg, costing.day_start(now), now, now, gpus)
    obs_window = observed(conn, cfg, since_ms, hi - 1, now, gpus)

    active: set[str] = {a.kind for a in snap.alerts if a.state == "open"}
    if any(g.episode_open for g in snap.gpus):
        active.add(IDLE)
    if any(m["thresholds_crossed"] for m in months):
        active.add(BUDGET)
    if cat_stale or billing_stale:
        active.add(OUTDATED)
    if collector_stale:
        active.add(COLLECTOR)

    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "host": clean(snap.host),
        "currency": cur,
        "window": {"since": iso(since_ms), "until": iso(hi - 1), "observed": _observed_json(obs_window)},
        "now": {
            "cost_per_hour": None if (snap.no_rate_at_all or not snap.gpus) else _r(snap.cost_per_hour),
            "unrated_gpus": snap.unrated_gpus,
            "by_state": {s: _r(v) for s, v in snap.cost_per_hour_by_state_known()},
            "gpus": [{
                "index": g.index, "uuid": clean(g.uuid), "name": clean(g.name), "model": g.model,
                "state": g.state, "util": g.util, "power": g.power, "mem_used": g.mem_used,
                "rate": {"per_gpu_hour": _r(g.rate.per_gpu_hour), "currency": g.rate.currency,
                         "source": g.rate.source, "label": clean(g.rate.label), "as_of": g.rate.as_of},
                "cost_per_hour": _r(g.cost_per_hour), "currency": snap.currency_of(g.uuid),
                "idle_for_s": round(g.idle_for_s, 1), "episode_open": g.episode_open,
                "episode_waste": _r(g.episode_waste), "episode_unseen_s": round(g.episode_unseen_s, 1),
            } for g in snap.gpus],
        },
        "today": {"cost": _r(snap.today_cost_known), "idle_waste": _r(snap.idle_waste_today_known), "currency": cur,
                  "observed": _observed_json(obs_today)},
        "month": months,
        "idle": {
            "episodes": [{
                "gpu_uuid": e.uuid, "gpu_index": index_of.get(e.uuid), "start": iso(e.start_ms),
                "end": iso(e.end_ms), "open": e.open, "idle_s": round(e.idle_s, 1), "held_s": round(e.held_s, 1),
                "unseen_s": round(e.unseen_s, 1),
                "waste": _r(e.waste), "currency": e.currency,
            } for e in episodes],
            "waste_total": waste_total,
            "holders": [{"user": clean(s.user), "pid": s.pid, "command": clean(s.command, 200),
                         "idle_cost": _r(s.idle_cost), "currency": s.currency}
                        for s in sorted(spends, key=lambda s: -s.idle_cost) if s.idle_cost > 0.005][:TOP * 2],
            "underutilised": [{"uuid": u, "gpu_index": index_of.get(u)} for u in snap.underutilised],
        },
        "workloads": [{"kind": w.kind, "id": clean(w.id), "name": clean(w.name) if w.name else None,
                       "namespace": clean(w.namespace) if w.namespace else None,
                       "owner": clean(w.owner) if w.owner else None, "label": clean(w.label),
                       "cost": w.cost, "idle_waste": w.idle_waste, "gpu_hours": w.gpu_hours,
                       "allocated_idle": w.allocated_idle, "currency": w.currency} for w in split.rows],
        "workloads_total": {c: {"cost": t[0], "idle_waste": t[1], "gpu_hours": t[2]}
                            for c, t in sorted(split.totals.items())},
        "top": {
            "by": by,
            "grouped": [{"name": clean(n), "cost": c, "idle_cost": i, "gpu_hours": h, "currency": k}
                        for n, k, c, i, h in group_by(split, by)[:TOP * 4]],
            "users": [{"name": clean(u), "cost": _r(c), "idle_cost": _r(i), "currency": k}
                      for u, k, c, i in costing.by_user(spends)[:TOP * 2]],
            "processes": [{"pid": s.pid, "user": clean(s.user), "command": clean(s.command, 200),
                           "cost": _r(s.cost), "idle_cost": _r(s.idle_cost), "currency": s.currency}
                          for s in spends[:TOP * 2]],
            "billing_currency": billing.currency,
            "services": [{"name": clean(s.name), "amount": _r(s.amount), "is_gpu": s.is_gpu}
                         for s in billing.services],
            "gpu_skus": [{"name": clean(s.name), "amount": _r(s.amount)} for s in billing.gpu_skus],
            "alternatives": [{"provider": a.provider, "gpu_model": a.gpu_model, "per_gpu_hour": a.per_gpu_hour,
                              "as_of": a.as_of, "cost_same_hours": _r(a.cost_same_hours), "saving": _r(a.saving),
                              "gpu_hours": _r(a.gpu_hours)}
                             for a in billing.alternatives],
        },
        "freshness": {
            "last_sample": iso(snap.last_sample_ms), "last_sample_age_s": _r(last_age, 1),
            "sampled": sample[0], "sample_note": sample[1], "collector": clean(snap.collector),
            "collector_running": collector_running,
            "collector_warning": None if collector_running or not gpus else
            "no collector is running: GPUs are only seen when a report samples them, so idle time between "
            "reports is never seen; run `gpuspend collect` (see the README's systemd section)",
            "billing_coverage_end": iso(cov), "billing_stale": billing_stale,
            "billing_coverage_export": clean(snap.billing_coverage_export) or None,
            "imports": [{"format": f, "source": clean(s), "coverage_end": iso(c), "rows": n}
                        for f, s, c, n in billing.coverage],
            "catalog_as_of": cat_as_of, "catalog_age_days": round(cat_age, 1), "catalog_stale": cat_stale,
        },
        "alerts": [{"kind": a.kind, "subject": clean(a.subject), "state": a.state, "started": iso(a.started_ms),
                    "dollars": _r(a.dollars), "currency": a.currency or cur, "message": clean(a.message)}
                   for a in snap.alerts],
        "active": sorted(active),
        "failing": sorted(active & fail_on),
        "notes": [clean(n) for n in snap.notes if not n.startswith("underutilised")]
        + ([f"NVML is not available, but this database knows {count(len(local_gpus), 'GPU')} of this host: "
            "they are not being sampled"] if nvml_missing and local_gpus else [])
        + _threshold_notes(conn, cfg, since_ms, now),
    }
    return doc


# -- renderers -----------------------------------------------------------------------------------------
def _cmd(text: str, width: int) -> str:
    return clean(text, width)


def _hours_by_model(alternatives: list[dict[str, Any]]) -> dict[str, float]:
    return {a["gpu_model"]: a["gpu_hours"] or 0.0 for a in alternatives}


def render_text(doc: dict[str, Any]) -> str:
    cur = doc["currency"]
    out: list[str] = []

    def head(title: str) -> None:
        out.append("")
        out.append(title)
        out.append("-" * len(title))

    out.append(clean(f"gpuspend report: {doc['host']} at {doc['generated_at']}"))
    out.append(f"window: {doc['window']['since']} .. {doc['window']['until']} (Idle waste, Top spenders)")
    out.append(_observed_text(doc["window"]["observed"], "the window"))
    now = doc["now"]
    head(f"Now ({doc['generated_at']})")
    out.append(f"cost per hour: {total_per_hour(now, cur)}  "
               + "  ".join(f"{s} {money(v, cur)}" for s, v in now["by_state"].items() if v is None or v))
    for g in now["gpus"]:
        cph = money(g["cost_per_hour"], g["rate"]["currency"]) + "/h" if g["cost_per_hour"] is not None \
            else "no rate"
        util = "-" if g["util"] is None else f"{g['util']:.0f}%"
        idle = f" idle {dur(g['idle_for_s'])}" if g["idle_for_s"] else ""
        ep = f" wasted {money(g['episode_waste'], g['currency'])}" if g["episode_open"] else ""
        out.append(clean(f"  GPU {g['index'] if g['index'] is not None else '?'} {g['model'] or g['name']:<10} "
                         f"{g['state']:<9} {util:>4} {cph:>10}{idle}{ep}"))
        if g["episode_open"] and (gap := unseen(g["episode_unseen_s"])):
            out.append(f"      {gap} (no samples in the idle span)")
    srcs = sorted({g["rate"]["label"] for g in now["gpus"]})
    for s in srcs:
        out.append(clean(f"  rate {s}"))
    head(f"Today (UTC, {(doc['generated_at'] or '')[:10]})")
    out.append(f"cost so far: {total_so_far(doc['today']['cost'], now, cur)}   idle waste: "
               f"{total_so_far(doc['today']['idle_waste'], now, cur)}   "
               f"({_observed_text(doc['today']['observed'], 'today')})")
    months = sorted({m["month"] for m in doc["month"]})
    head(f"Month {', '.join(months)}" if months else "Month")
    if not doc["month"]:
        out.append("no cost data for this month")
    for m in doc["month"]:
        c = m["currency"]
        out.append(f"{m['month']} {c}: to date {money(m['mtd'], c)} (billed {money(m['billed'], c)}"
                   f" + metered {money(m['metered'], c)})")
        if m.get("cloud"):
            out.append(f"  of the metered part, GPU clouds (RunPod/Lambda/Vast): {money(m['cloud'], c)}")
        if m["coverage_end"]:
            fr = doc["freshness"]
            behind = fr.get("billing_coverage_export") and fr["billing_coverage_end"] \
                and fr["billing_coverage_end"] < m["coverage_end"]    # one export reaches less: say which
            out.append(f"  billing exports cover up to {m['coverage_end']}"
                       + (f"; the {fr['billing_coverage_export']} export only to {fr['billing_coverage_end']}"
                          if behind else ""))
        if m["projection"] is not None:
            rng = f", 80% {money(m['low'], c)} .. {money(m['high'], c)}" if m["low"] is not None else ""
            out.append(f"  projected month: {money(m['projection'], c)}{rng}")
        out.append(f"  {m['interval_note']}")
        if m["budget"] is not None and m["budget_pct_actual"] is None:   # a budget in a currency with no spend
            out.append(f"  budget {money(m['budget'], c)}: not compared (no spend in {c})")
        elif m["budget"] is not None:
            pf = f", forecast {share(m['budget_pct_forecast'])}" if m["budget_pct_forecast"] is not None else ""
            out.append(f"  budget {money(m['budget'], c)}: actual {share(m['budget_pct_actual'])}{pf}")
            for t in m["thresholds_crossed"]:
                out.append(f"  ! budget threshold {t['pct']:g}% crossed ({t['basis']})")
    idle = doc["idle"]
    head("Idle waste (window)")
    totals = ", ".join(money(v, k) for k, v in sorted(idle["waste_total"].items())) or _no_waste(idle, cur)
    eps = idle["episodes"]
    if not eps and not doc["now"]["gpus"]:      # as "today": no GPU is not $0.00 of waste
        out.append(NO_GPU_IDLE)
    else:
        out.append(f"{count(len(eps), 'idle episode')} in the window (idle longer than idle.after); waste booked "
                   f"in the window {totals}")
    shown = sorted(eps, key=lambda e: (not e["open"], -(e["waste"] or 0), e["start"]))[:MAX_EPISODES]
    if len(shown) < len(eps):
        out.append(f"the {len(shown)} costliest are listed; --format json lists all {len(eps)}")
    if eps:
        out.append("each episode's waste counts it whole, from its first idle second:")
    for e in sorted(shown, key=lambda e: (e["start"], e["gpu_index"] or 0)):
        end = "open" if e["open"] else e["end"][5:16].replace("T", " ")
        out.append(f"  GPU {e['gpu_index']} {e['start'][5:16].replace('T', ' ')} .. {end:<11} "
                   f"{dur(e['idle_s']):>7} idle {money(e['waste'], e['currency']):>10}")
    if idle["holders"]:
        out.append("held idle by (their share of idle GPU time in the window, of any length):")
        for h in idle["holders"][:TOP]:
            left = f"  {clean(h['user'])[:12]:<12} pid {h['pid']:<7} {money(h['idle_cost'], h['currency']):>10}  "
            out.append(left + clean(h["command"]))
    if idle["underutilised"]:
        out.append("underutilised over 24 h: GPU " + ", ".join(str(u["gpu_index"]) for u in idle["underutilised"]))
    wls = doc["workloads"]
    if _show_workloads(doc):
        head("Workloads")
        for c, t in doc["workloads_total"].items():
            un = next((w for w in wls if w["kind"] == UNATTRIBUTED and w["currency"] == c), None)
            out.append(f"node {money(t['cost'], c)} (idle {money(t['idle_waste'], c)}, {t['gpu_hours']:.2f} GPU-h)"
                       f"; unattributed {money(un['cost'] if un else 0.0, c)}")
        for w in [w for w in wls if w["kind"] != UNATTRIBUTED][:TOP * 2]:
            alloc = " held" if w["allocated_idle"] else ""
            out.append(f"  {_cmd(w['label'], 34):<34} {money(w['cost'], w['currency']):>11} idle "
                       f"{money(w['idle_waste'], w['currency']):>10} {w['gpu_hours']:>6.2f}h{alloc}")
    top = doc["top"]
    head("Top spenders (window)")
    if top["by"] != "user" and top["grouped"]:
        out.append(f"by {top['by']} (window):")
        for g in top["grouped"][:TOP * 2]:
            out.append(f"  {_cmd(g['name'], 40):<40} {money(g['cost'], g['currency']):>12}  idle "
                       f"{money(g['idle_cost'], g['currency'])}")
    elif top["users"]:
        out.append("users (idle = their share of idle GPU time, of any length; the idle episodes'")
        out.append("waste above counts only idle longer than idle.after):")
        for u in top["users"][:TOP]:
            out.append(f"  {u['name'][:20]:<20} {money(u['cost'], u['currency']):>12}  idle "
                       f"{money(u['idle_cost'], u['currency'])}")
    if top["processes"]:
        out.append("processes:")
        for p in top["processes"][:TOP]:
            left = f"  {clean(p['user'])[:10]:<10} {p['pid']:<7} {money(p['cost'], p['currency']):>11}  "
            out.append(left + clean(p["command"]))
    bc = top["billing_currency"]
    if top["services"]:
        out.append(f"billed services ({bc}):")
        for s in top["services"][:TOP]:
            out.append(f"  {s['name'][:50]:<50} {money(s['amount'], bc):>14}")
    if top["gpu_skus"]:
        out.append(f"billed GPU SKUs ({bc}):")
        for s in top["gpu_skus"][:TOP]:
            out.append(f"  {s['name'][:50]:<50} {money(s['amount'], bc):>14}")
    if top["alternatives"]:
        out.append(f"{observed_hours_label(_hours_by_model(top['alternatives']))} elsewhere (catalog prices):")
        for a in top["alternatives"][:TOP]:
            word = "save" if a["saving"] >= 0 else "extra"
            out.append(f"  {a['provider']:<10} {a['gpu_model']:<10} {money(a['per_gpu_hour'], 'USD'):>7}/h "
                       f"{money(a['cost_same_hours'], 'USD'):>12}  {word} {money(abs(a['saving']), 'USD')}")
    if not (top["users"] or top["services"]):
        out.append("no spending recorded in the window")
    fr = doc["freshness"]
    head("Data freshness")
    age = f" ({dur(fr['last_sample_age_s'])} ago)" if fr["last_sample_age_s"] is not None else ""
    out.append(f"last sample: {fr['last_sample'] or 'none'}{age}")
    out.extend(_wrapped(fr["sample_note"]))          # an NVML reason is never cut at the line width
    out.append(clean(f"collector: {fr['collector']}"))
    if fr.get("collector_warning"):
        out.extend(_wrapped("warning: " + fr["collector_warning"]))
    out.append(f"billing coverage end: {fr['billing_coverage_end'] or 'no billing imported'}"
               + (f" (the {fr['billing_coverage_export']} export)"
                  if fr["billing_coverage_export"] else "") + (" (stale)" if fr["billing_stale"] else ""))
    out.append(f"price catalog as of {fr['catalog_as_of']} ({count(round(fr['catalog_age_days']), 'day')})"
               + (" STALE" if fr["catalog_stale"] else ""))
    if doc["alerts"] or doc["notes"]:
        head("Alerts and notes")
        for a in doc["alerts"]:
            out.append(clean(f"  [{a['kind']}] {a['message']}"))
        for n in doc["notes"]:
            out.append(clean(f"  {n}"))
    if doc["failing"]:
        out.append("")
        out.append("failing: " + ", ".join(doc["failing"]))
    # Cron mail is read at any width: a long line wraps under its own indent, it is never cut.
    return "\n".join(w for line in out for w in _fold(line.rstrip())) + "\n"


def _fold(line: str) -> list[str]:
    if len(line) <= WIDTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()))
    return textwrap.wrap(line, WIDTH, initial_indent="", subsequent_indent=indent + "    ",
                         break_on_hyphens=False, drop_whitespace=True) or [line[:WIDTH]]


def _threshold_notes(conn: Any, cfg: Config, since_ms: int, now: int) -> list[str]:
    """idle.util_pct applies from the time it is set: say so when the window holds minutes rolled with another."""
    from gpuspend.rollup import thresholds_in

    pct = float(cfg.idle.util_pct)
    other = [t for t in thresholds_in(conn, since_ms, now + 1) if abs(t - pct) > 1e-9]
    if not other:
        return []
    return [f"idle in part of the window was decided at {', '.join(f'{t:g}%' for t in other)} (idle.util_pct is "
            f"now {pct:g}%, applied from when it was set); `gpuspend rollup --rebuild` re-derives retained minutes"]


def _observed_text(obs: dict[str, Any], what: str) -> str:
    return observed_phrase(Observed(obs["window_s"], tuple((g["uuid"], g["seconds"]) for g in obs["per_gpu"])),
                           what)


def _wrapped(text: str, indent: str = "  ") -> list[str]:
    return textwrap.wrap(clean(text), WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=True, break_on_hyphens=False) or [indent]


def _show_workloads(doc: dict[str, Any]) -> bool:
    """The text and markdown workloads section: shown when some GPU time belongs to a pod, job, container or
    notebook (a box of plain processes already has them under Top spenders), or when --by asks for it."""
    return doc["top"]["by"] != "user" or any(
        w["kind"] not in ("process", UNATTRIBUTED) for w in doc["workloads"])


def _md(text: Any) -> str:
    """Markdown-inert: escape the characters that would format or break a table cell."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", clean(text))


def render_markdown(doc: dict[str, Any]) -> str:
    cur = doc["currency"]
    o: list[str] = [f"# gpuspend report: {_md(doc['host'])}", "",
                    f"Generated {doc['generated_at']}; window {doc['window']['since']} .. {doc['window']['until']} "
                    f"({_md(_observed_text(doc['window']['observed'], 'the window'))}).",
                    "", f"## Now ({doc['generated_at']})", "", f"Cost per hour: **{total_per_hour(doc['now'], cur)}**"]
    if doc["now"]["gpus"]:              # no GPU: no table of $0.00 states
        o += ["", "| State | $/h |", "|---|---:|"]
        o += [f"| {s} | {money(v, cur)} |" for s, v in doc["now"]["by_state"].items()]
        o += ["", "| GPU | Model | State | Util | Cost/h | Idle for | Wasted | Rate source |",
              "|---:|---|---|---:|---:|---:|---:|---|"]
    for g in doc["now"]["gpus"]:
        cph = money(g["cost_per_hour"], g["rate"]["currency"]) if g["cost_per_hour"] is not None else "no rate"
        util = "-" if g["util"] is None else f"{g['util']:.0f}%"
        # as the text report: the open idle episode's length and its waste, blank for a GPU not idle now
        idle = dur(g["idle_for_s"]) if g["idle_for_s"] else ""
        wasted = money(g["episode_waste"], g["currency"]) if g["episode_open"] else ""
        if g["episode_open"] and (gap := unseen(g["episode_unseen_s"])):
            wasted += f" ({gap})"
        o.append(f"| {g['index']} | {_md(g['model'] or g['name'])} | {g['state']} | {util} | {cph} | {idle} | "
                 f"{wasted} | {_md(g['rate']['label'])} |")
    o += ["", f"## Today (UTC, {(doc['generated_at'] or '')[:10]})", "", f"Cost so far {total_so_far(doc['today']['cost'], doc['now'], cur)}; idle waste "
          f"{total_so_far(doc['today']['idle_waste'], doc['now'], cur)} "
          f"({_md(_observed_text(doc['today']['observed'], 'today'))}).", "",
          ("## Month " + ", ".join(sorted({m["month"] for m in doc["month"]}))).rstrip(), ""]
    for m in doc["month"]:
        c = m["currency"]
        o.append(f"- **{m['month']} {c}**: to date {money(m['mtd'], c)} (billed {money(m['billed'], c)} + "
                 f"metered {money(m['metered'], c)})"
                 + (f"; GPU clouds {money(m['cloud'], c)} of it" if m.get("cloud") else ""))
        if m["projection"] is not None:
            rng = f" (80%: {money(m['low'], c)} .. {money(m['high'], c)})" if m["low"] is not None else ""
            o.append(f"- projected month: {money(m['projection'], c)}{rng}; {m['interval_note']}")
        else:
            o.append(f"- {_md(m['interval_note'])}")
        if m["budget"] is not None and m["budget_pct_actual"] is None:    # a budget in a currency with no spend
            o.append(f"- budget {money(m['budget'], c)}: not compared (no spend in {c})")
        elif m["budget"] is not None:
            o.append(f"- budget {money(m['budget'], c)}: actual {share(m['budget_pct_actual'])}"
                     + (f", forecast {share(m['budget_pct_forecast'])}" if m["budget_pct_forecast"] is not None else ""))
            o += [f"- budget threshold {t['pct']:g}% crossed ({t['basis']})" for t in m["thresholds_crossed"]]
    if not doc["month"]:
        o.append("No cost data for this month.")
    idle = doc["idle"]
    totals = ", ".join(money(v, k) for k, v in sorted(idle["waste_total"].items())) or _no_waste(idle, cur)
    o += ["", "## Idle waste (window)", "", f"{NO_GPU_IDLE}." if not idle["episodes"] and not doc["now"]["gpus"]
          else f"{count(len(idle['episodes']), 'idle episode')} in the window "
          f"(idle longer than idle.after), all listed; waste booked in the window {totals} (the table counts each "
          "episode whole, from its first idle second).", ""]
    if idle["episodes"]:
        o += ["| GPU | Start | End | Idle | Waste |", "|---:|---|---|---:|---:|"]
        o += [f"| {e['gpu_index']} | {e['start']} | {e['end'] or 'open'} | {dur(e['idle_s'])} | "
              f"{money(e['waste'], e['currency'])} |" for e in idle["episodes"]]
    if idle["holders"]:
        o += ["", "| Held idle by | PID | Idle cost | Command |", "|---|---:|---:|---|"]
        o += [f"| {_md(h['user'])} | {h['pid']} | {money(h['idle_cost'], h['currency'])} | {_md(h['command'])} |"
              for h in idle["holders"][:TOP]]
    if _show_workloads(doc):
        o += ["", "## Workloads", ""]
        for c, t in doc["workloads_total"].items():
            o.append(f"Node {money(t['cost'], c)} (idle {money(t['idle_waste'], c)}, {t['gpu_hours']:.2f} GPU-h); "
                     "the rows below and the unattributed line add up to it.")
        o += ["", "| Workload | Kind | Namespace | Owner | Cost | Idle | GPU-h |", "|---|---|---|---|---:|---:|---:|"]
        o += [f"| {_md(w['label'])} | {w['kind']} | {_md(w['namespace'] or '')} | {_md(w['owner'] or '')} | "
              f"{money(w['cost'], w['currency'])} | {money(w['idle_waste'], w['currency'])} | {w['gpu_hours']:.2f} |"
              for w in doc["workloads"][:TOP * 4]]
    top = doc["top"]
    o += ["", "## Top spenders (window)", "",
          "Idle cost is the share of idle GPU time of any length; the idle episodes above count only idle "
          "longer than idle.after.", ""]
    if top["by"] != "user" and top["grouped"]:
        o += [f"| By {top['by']} | Cost | Idle cost |", "|---|---:|---:|"]
        o += [f"| {_md(g['name'])} | {money(g['cost'], g['currency'])} | {money(g['idle_cost'], g['currency'])} |"
              for g in top["grouped"][:TOP * 2]]
        o.append("")
    elif top["users"]:
        o += ["| User | Cost | Idle cost |", "|---|---:|---:|"]
        o += [f"| {_md(u['name'])} | {money(u['cost'], u['currency'])} | {money(u['idle_cost'], u['currency'])} |"
              for u in top["users"][:TOP]]
        o.append("")
    if top["processes"]:
        o += ["| PID | User | Cost | Command |", "|---:|---|---:|---|"]
        o += [f"| {p['pid']} | {_md(p['user'])} | {money(p['cost'], p['currency'])} | {_md(p['command'])} |"
              for p in top["processes"][:TOP]]
        o.append("")
    bc = top["billing_currency"]
    for title, rows in (("Billed service", top["services"]), ("Billed GPU SKU", top["gpu_skus"])):
        if rows:
            o += [f"| {title} | {bc} |", "|---|---:|"]
            o += [f"| {_md(s['name'])} | {money(s.get('amount'), bc)} |" for s in rows[:TOP]]
            o.append("")
    if top["alternatives"]:
        what = observed_hours_label(_hours_by_model(top["alternatives"]))
        o += [f"{what[0].upper()}{what[1:]}, elsewhere (catalog prices):", "",
              "| Elsewhere | GPU | $/GPU-h | Same hours | Saving |", "|---|---|---:|---:|---:|"]
        o += [f"| {a['provider']} | {a['gpu_model']} | {money(a['per_gpu_hour'], 'USD')} | "
              f"{money(a['cost_same_hours'], 'USD')} | {money(a['saving'], 'USD')} |" for a in top["alternatives"][:TOP]]
        o.append("")
    fr = doc["freshness"]
    o += ["## Data freshness", "", f"- last sample: {fr['last_sample'] or 'none'}; {_md(fr['sample_note'])}",
          f"- collector: {_md(fr['collector'])}",
          *([f"- **warning:** {_md(fr['collector_warning'])}"] if fr.get("collector_warning") else []),
          f"- billing coverage end: {fr['billing_coverage_end'] or 'no billing imported'}"
          + (f" (the {_md(fr['billing_coverage_export'])} export)"
             if fr["billing_coverage_export"] else "") + (" (stale)" if fr["billing_stale"] else ""),
          f"- price catalog as of {fr['catalog_as_of']} ({count(round(fr['catalog_age_days']), 'day')})"
          + (" **stale**" if fr["catalog_stale"] else "")]
    if doc["alerts"] or doc["notes"]:
        o += ["", "## Alerts and notes", ""]
        o += [f"- [{a['kind']}] {_md(a['message'])}" for a in doc["alerts"]]
        o += [f"- {_md(n)}" for n in doc["notes"]]
    if doc["failing"]:
        o += ["", f"**Failing:** {', '.join(doc['failing'])}"]
    return "\n".join(o) + "\n"


# -- entry point ---------------------------------------------------------------------------------------
def run_report(opts: ReportOptions) -> int:
    from gpuspend.store import connect

    fmt = opts.fmt
    fail_on = parse_fail_on(opts.fail_on)
    month_opt = opts.month
    month_arg = forecast.parse_month(month_opt) if month_opt else None
    cfg = opts.load_config()
    now = clock.now_ms()
    if month_arg and month_arg > forecast.month_of(now):     # as the billing screen refuses it: nothing is there
        raise UsageError(f"--month {month_arg} has not started: nothing is recorded there yet",
                         hint=f"pick {forecast.month_of(now)} or an earlier month")
    since = parse_since(opts.since, now)
    until: int | None = None
    if month_arg and not opts.since:
        # --month: every section covers that month (the window is the month, not the last 24 h)
        since, until = forecast.month_bounds(month_arg)
        until -= 1
    path = opts.db_path(cfg)
    if opts.demo:
        from gpuspend.demo import ensure_demo_db

        ensure_demo_db(path, now)
    sample = (False, "no fresh sample (--no-sample)")
    if not opts.no_sample:
        sample = take_sample(path, cfg, opts.demo)
    conn = connect(path)
    try:
        now = clock.now_ms()
        month = month_arg or forecast.month_of(now)
        snap = costing.build_snapshot(conn, cfg, now, month=month)
        if opts.notify:
            snap = _notify(conn, cfg, snap, now)
        else:       # judged against this config, written nowhere, delivered by nobody (only --notify does)
            from gpuspend import alerts

            snap = replace(snap, alerts=alerts.current_alerts(conn, cfg, snap, now))
        doc = build_document(conn, cfg, snap, since, month, sample, fail_on, by=getattr(opts, "by", "user"),
                             until_ms=until)
    finally:
        conn.close()
    if fmt == "json":
        text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    elif fmt == "markdown":
        text = render_markdown(doc)
    else:
        text = render_text(doc)
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_ALERTS if doc["failing"] else EXIT_OK


def _notify(conn: Any, cfg: Config, snap: Snapshot, now: int) -> Snapshot:
    """Evaluate alerts and deliver pending notifications (modules owned by the alerts engineer)."""
    import dataclasses

    try:
        from gpuspend import alerts, notify
    except ImportError:
        print("gpuspend: warning: --notify: alerts are not available in this build", file=sys.stderr)
        return snap
    alerts.evaluate(conn, cfg, snap, now)
    result = notify.deliver_pending(conn, cfg, now)
    # Delivery problems are warnings: the report itself is fine and failed messages stay in the outbox for a
    # later run, so the exit code keeps meaning "alerts active" (1) or not. The errors never hold URLs/tokens.
    for err in result.errors:
        print(f"gpuspend: warning: --notify: {clean(err, 300)}", file=sys.stderr)
    return dataclasses.replace(snap, alerts=costing.open_alerts(conn))
