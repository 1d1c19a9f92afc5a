"""The snapshot: everything a reader shows, built once per call from the store through one read context."""

from __future__ import annotations

import socket
import sqlite3
from typing import Any

from gpuspend import clock, forecast, pricing
from gpuspend.costing import context
from gpuspend.costing.attribution import attribution
from gpuspend.costing.cloud import cloud_daily
from gpuspend.costing.common import STATES, day_start
from gpuspend.costing.episodes import idle_episodes, is_remote, underutilised
from gpuspend.costing.metering import hourly, metered_total
from gpuspend.costing.month import month_views_for
from gpuspend.costing.store_read import (
    collector_holder,
    current_procs,
    latest_samples,
    load_gpus,
    local_rates,
    open_alerts,
    resolve_rates,
)
from gpuspend.idle import GAP_INTERVALS, sample_state
from gpuspend.rollup import cloud_interval, collector_interval
from gpuspend.snapshot import GpuNow, ProcessNow, Snapshot


def build_snapshot(conn: sqlite3.Connection, cfg: Any, now_ms: int | None = None, *,
                   month: str | None = None) -> Snapshot:
    """Everything a reader shows, computed once from the store. Cheap enough to call every second.
    Read through one read context: every cached value it uses is as of one state of the database."""
    now = clock.now_ms() if now_ms is None else now_ms
    with context.reading(conn, cfg, now):
        return _build_snapshot(conn, cfg, now, month)


def _build_snapshot(conn: sqlite3.Connection, cfg: Any, now: int, month: str | None) -> Snapshot:
    gpus = load_gpus(conn)
    rates = resolve_rates(conn, cfg, gpus, now)
    interval = collector_interval(conn, cfg.interval)
    latest = latest_samples(conn)
    cur_procs = current_procs(conn, latest)
    today0 = day_start(now)
    today = forecast.day_key(now)
    episodes, timelines = idle_episodes(conn, cfg, today0, now + 1, now, rates, gpus)
    stale_ms = GAP_INTERVALS * interval * 1000
    currency = next((r.currency for r in rates.values() if r.per_gpu_hour is not None), cfg.currency or "USD")

    gnow: list[GpuNow] = []
    by_state: dict[str, float] = {s: 0.0 for s in STATES}
    total = 0.0
    for g in gpus:
        rate = rates[g["id"]]
        row = latest.get(g["id"])
        procs = cur_procs.get(g["id"], [])
        stale_after = GAP_INTERVALS * cloud_interval(cfg) * 1000 if is_remote(g["source"]) else stale_ms
        if g["lost_at"] is not None:
            state = "lost"
        elif row is None or now - row[0] > stale_after:
            state = "stale"
        else:
            holds = any((p[4] is None) or p[4] > 0 for p in procs)
            state = sample_state(row[1], holds, cfg.idle.util_pct)
        tl = timelines.get(g["id"])
        open_ep = next((e for e in (tl.episodes if tl else []) if e.open), None)
        cph = rate.per_gpu_hour
        if cph is not None and rate.currency == currency:
            total += cph
            by_state[state] += cph
        idle_state = state in ("held-idle", "free-idle")
        parent = next((p["uuid"] for p in gpus if p["id"] == g["parent_id"]), None) if g["parent_id"] else None
        gnow.append(GpuNow(
            uuid=g["uuid"], index=g["idx"], host=g["host"], name=g["name"] or "", model=g["model"],
            source=g["source"], state=state, util=row[1] if row else None, mem_used=row[2] if row else None,
            mem_total=g["memory_total"], power=row[3] if row else None, temperature=row[4] if row else None,
            rate=rate, cost_per_hour=cph, idle_for_s=tl.idle_for_s if (tl and idle_state) else 0.0,
            episode_open=open_ep is not None, episode_waste=(open_ep.waste or 0.0) if open_ep else 0.0,
            last_sample_ms=row[0] if row else None, parent_uuid=parent))

    uuid_of = {g["id"]: (g["uuid"], g["idx"]) for g in gpus}
    spends = {(s.pid, s.user, s.command): s for s in attribution(conn, cfg, rates, today0, now + 1, now)}
    pnow = []
    for gid, procs in cur_procs.items():
        for _proc_id, pid, user, command, mem, sm in procs:
            s = spends.get((pid, user or "?", command or ""))
            pnow.append(ProcessNow(pid=pid, user=user or "?", command=command or "", gpu_uuid=uuid_of[gid][0],
                                   gpu_index=uuid_of[gid][1], used_memory=mem, sm_util=sm,
                                   cost_today=s.cost if s else 0.0))

    month = month or forecast.month_of(now)
    months, cov_end = month_views_for(conn, cfg, month, now, rates)
    cov_today = max(cov_end or 0, today0)
    today_billed = forecast.billed_daily(conn, forecast.month_of(now), cov_end).get(currency, {}).get(today, 0.0) \
        if cov_end and cov_end > today0 else 0.0
    today_metered = metered_total(conn, cfg, local_rates(conn, rates), cov_today, now + 1, now).get(currency, 0.0)
    today_metered += sum(cloud_daily(conn, cfg, today0, now + 1, now).get(currency, {}).values())

    notes = []
    no_rate = [g for g in gnow if g.rate.per_gpu_hour is None and not pricing.counted_on_parent(g.rate)]
    if no_rate:
        notes.append(f"{len(no_rate)} GPU{'s' if len(no_rate) > 1 else ''} have no rate: "
                     f"{no_rate[0].rate.label}")
    cat_dates = sorted({r.as_of for r in rates.values() if r.source == "catalog" and r.as_of})
    for d in cat_dates:
        if pricing.is_stale(d, cfg, now):
            notes.append(f"catalog price from {d} is older than {cfg.alerts.stale_catalog / 86400:.0f} days")
    under = underutilised(conn, cfg, now, gpus)
    if under:
        notes.append(f"underutilised over 24 h (< {cfg.idle.low_util_pct:g}%): "
                     + ", ".join(f"{u[:12]} {a:.0f}%" for u, a in under[:4]))
    last = max((r[0] for r in latest.values()), default=None)
    return Snapshot(
        now_ms=now, host=cfg.host or (gpus[0]["host"] if gpus else socket.gethostname()), currency=currency,
        gpus=tuple(gnow), processes=tuple(sorted(pnow, key=lambda p: (-p.cost_today, p.pid))),
        cost_per_hour=total, cost_per_hour_by_state=tuple((s, by_state[s]) for s in STATES),
        today_cost=today_billed + today_metered,
        idle_waste_today=sum(e.by_day.get(today, 0.0) for e in episodes if e.currency == currency),
        months=months, alerts=open_alerts(conn), hourly=hourly(conn, cfg, rates, now),
        rate_sources=tuple(sorted({r.label for r in rates.values()})), nvml_available=None,
        collector=collector_holder(conn, now), last_sample_ms=last, billing_coverage_end_ms=cov_end,
        catalog_as_of=cat_dates[0] if cat_dates else None, notes=tuple(notes),
        underutilised=tuple(u for u, _a in under))
