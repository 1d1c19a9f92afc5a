"""The snapshot: everything a reader shows, built once per call from the store through one read context."""

from __future__ import annotations

import socket
import sqlite3
from dataclasses import replace
from typing import Any

from gpuspend import clock, fmt, forecast, pricing
from gpuspend.costing import context
from gpuspend.costing.attribution import attribution_by_gpu
from gpuspend.costing.common import STATES, day_start
from gpuspend.costing.episodes import idle_episodes, is_remote, underutilised
from gpuspend.costing.metering import hourly
from gpuspend.costing.month import (
    billing_coverage_end,
    month_views_for,
    sources_without_billed_cost,
    today_cost,
)
from gpuspend.costing.observed import observed
from gpuspend.costing.store_read import (
    collector_holder,
    current_procs,
    latest_samples,
    load_gpus,
    open_alerts,
    resolve_rates,
)
from gpuspend.costing.workloads import holders_now, labels_for, orphan_notes
from gpuspend.idle import GAP_INTERVALS, sample_state, state_of
from gpuspend.rollup import cloud_interval, collector_interval
from gpuspend.snapshot import GpuNow, ProcessNow, Snapshot


def build_snapshot(conn: sqlite3.Connection, cfg: Any, now_ms: int | None = None, *,
                   month: str | None = None) -> Snapshot:
    """Everything a reader shows, computed once from the store. Cheap enough to call every second.
    Read through one read context: every cached value it uses is as of one state of the database."""
    now = clock.now_ms() if now_ms is None else now_ms
    with context.reading(conn, cfg, now):
        return _build_snapshot(conn, cfg, now, month)


def refresh_live(conn: sqlite3.Connection, cfg: Any, snap: Snapshot, now_ms: int | None = None) -> Snapshot | None:
    """`snap` with its live fields read again (each GPU's util, memory, power, temperature and last sample,
    each process's memory and SM use) and its money left as of snap.now_ms; None when anything the money
    depends on moved: a GPU's state, the GPUs or the processes on them, the open alerts. Then the caller
    builds a full snapshot. A few reads instead of the whole cost engine: what a dashboard pays per tick
    between full builds (tui: every MONEY_REFRESH_MS)."""
    now = clock.now_ms() if now_ms is None else now_ms
    with context.reading(conn, cfg, now):
        gpus = load_gpus(conn)
        if [g["uuid"] for g in gpus] != [g.uuid for g in snap.gpus]:
            return None
        interval = collector_interval(conn, cfg.interval)
        latest = latest_samples(conn)
        cur_procs = current_procs(conn, latest)
        states = gpu_states(cfg, gpus, latest, cur_procs, now, GAP_INTERVALS * interval * 1000)
        if [states[g["id"]] for g in gpus] != [g.state for g in snap.gpus]:
            return None
        live: dict[tuple[str, int, str], tuple[int | None, float | None]] = {}
        for g in gpus:
            for _proc, pid, _user, command, mem, sm in cur_procs.get(g["id"], []):
                live[(g["uuid"], pid, command or "")] = (mem, sm)
        if (set(live) != {(p.gpu_uuid, p.pid, p.command) for p in snap.processes}
                or open_alerts(conn) != snap.alerts):
            return None
    gnow = []
    for g, old in zip(gpus, snap.gpus, strict=True):
        row = latest.get(g["id"])
        gnow.append(old if row is None else replace(old, util=row[1], mem_used=row[2], power=row[3],
                                                    temperature=row[4], last_sample_ms=row[0]))
    procs = tuple(replace(p, used_memory=mem, sm_util=sm) for p in snap.processes
                  for mem, sm in (live[(p.gpu_uuid, p.pid, p.command)],))
    last = max((r[0] for r in latest.values()), default=None)
    return replace(snap, gpus=tuple(gnow), processes=procs, last_sample_ms=last, live_ms=now)


def node_host(cfg: Any, gpus: list[dict]) -> str:
    """This node's name: config `host:`, else the host of its own (NVML or demo) GPUs, else this machine.
    Never a cloud pod's name (those sort before the local host as often as not)."""
    if cfg.host:
        return cfg.host
    me = socket.gethostname()
    local = sorted({g["host"] for g in gpus if g.get("host") and not is_remote(g["source"])})
    return me if me in local or not local else local[0]


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

    states = gpu_states(cfg, gpus, latest, cur_procs, now, stale_ms)
    gnow: list[GpuNow] = []
    held_by = holders_now(conn, now, max(int(stale_ms), 120_000))   # allocations seen lately (allocated-idle)
    by_state: dict[str, float] = {s: 0.0 for s in STATES}
    total = 0.0
    for g in gpus:
        rate = rates[g["id"]]
        row = latest.get(g["id"])
        state = states[g["id"]]
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
            episode_open=open_ep is not None, episode_waste=open_ep.waste if open_ep else 0.0,
            last_sample_ms=row[0] if row else None, parent_uuid=parent,
            workload=", ".join(w["label"] for w in held_by.get(g["id"], [])),
            episode_unseen_s=open_ep.unseen_s if open_ep else 0.0))

    uuid_of = {g["id"]: (g["uuid"], g["idx"]) for g in gpus}
    parent_of = {g["id"]: g["parent_id"] for g in gpus if g.get("parent_id")}
    # Each row is one process on one GPU and carries that GPU's share: a process on two GPUs is two rows
    # that add up to its total (never its total on each row).
    spends = attribution_by_gpu(conn, cfg, rates, today0, now + 1, now)
    pnow = []
    wl = labels_for(conn, [p[0] for procs in cur_procs.values() for p in procs])
    for gid, procs in cur_procs.items():
        for proc_id, pid, user, command, mem, sm in procs:
            key = (pid, user or "?", command or "")
            # a MIG slice's processes are paid from its physical GPU's cost (rollup.mig_shares)
            cost, idle_cost = spends.get((*key, gid)) or spends.get((*key, parent_of.get(gid)), (0.0, 0.0))
            kind, label = wl.get(proc_id, ("process", ""))
            pnow.append(ProcessNow(pid=pid, user=user or "?", command=command or "", gpu_uuid=uuid_of[gid][0],
                                   gpu_index=uuid_of[gid][1], used_memory=mem, sm_util=sm,
                                   cost_today=cost, idle_cost_today=idle_cost,
                                   workload=label, workload_kind=kind))

    month = month or forecast.month_of(now)
    months, _cov_end = month_views_for(conn, cfg, month, now, rates)
    # Freshness is now's: a report on a closed month (--month 2026-10) is not outdated because that month's
    # exports end where it does (its cron job paged every time while November's export was a day old).
    cov_end, cov_export = billing_coverage_end(conn, cfg, max(month, forecast.month_of(now)))

    notes = []
    notes.extend(orphan_notes(conn, now, max(int(stale_ms), 120_000)))   # memory held with no live process
    no_rate = [g for g in gnow if g.rate.per_gpu_hour is None and not pricing.counted_on_parent(g.rate)]
    if no_rate:
        notes.append(f"{fmt.count(len(no_rate), 'GPU')} {'has' if len(no_rate) == 1 else 'have'} no rate: "
                     f"{no_rate[0].rate.label}")
    # Currencies are never summed: GPUs rated in another currency are in no total of `currency`; say so.
    other_cur: dict[str, list[float]] = {}
    for g in gnow:
        if g.cost_per_hour is not None and g.rate.currency != currency:
            other_cur.setdefault(g.rate.currency, []).append(g.cost_per_hour)
    for cur, per_hour in sorted(other_cur.items()):
        notes.append(f"{fmt.count(len(per_hour), 'GPU')} rated in {cur} "
                     f"({fmt.rate(sum(per_hour), cur)}) not in the {currency} totals: currencies are never summed")
    cat_dates = sorted({r.as_of for r in rates.values() if r.source == "catalog" and r.as_of})
    for d in cat_dates:
        if pricing.is_stale(d, cfg, now):
            notes.append(f"catalog price from {d} is older than {fmt.count(round(cfg.alerts.stale_catalog / 86400), 'day')}")
    for src in sources_without_billed_cost(conn, month):
        # Short enough for an 80-column report line: what is missing and what to import.
        notes.append(f"{month} {src[:24]}: no billed cost (amortized only); import actual cost")
    under = underutilised(conn, cfg, now, gpus)
    if under:
        notes.append(f"underutilised over 24 h (< {cfg.idle.low_util_pct:g}%): "
                     + ", ".join(f"{u[:12]} {a:.0f}%" for u, a in under[:4]))
    last = max((r[0] for r in latest.values()), default=None)
    return Snapshot(
        now_ms=now, host=node_host(cfg, gpus), currency=currency,
        gpus=tuple(gnow), processes=tuple(sorted(pnow, key=lambda p: (-p.cost_today, p.pid))),
        cost_per_hour=total, cost_per_hour_by_state=tuple((s, by_state[s]) for s in STATES),
        today_cost=today_cost(conn, cfg, now, rates, currency),
        idle_waste_today=sum(e.by_day.get(today, 0.0) for e in episodes if e.currency == currency),
        months=months, alerts=open_alerts(conn), hourly=hourly(conn, cfg, rates, now),
        rate_sources=tuple(sorted({r.label for r in rates.values()})), nvml_available=None,
        collector=collector_holder(conn, now), last_sample_ms=last,
        billing_coverage_end_ms=cov_end, billing_coverage_export=cov_export,
        catalog_as_of=cat_dates[0] if cat_dates else None, notes=tuple(notes),
        underutilised=tuple(u for u, _a in under),
        today_observed=observed(conn, cfg, today0, now, now, gpus).fraction)


def gpu_states(cfg: Any, gpus: list[dict], latest: dict[int, tuple], cur_procs: dict[int, list[tuple]], now: int,
               stale_ms: float) -> dict[int, str]:
    """Each GPU's state now (busy | held-idle | free-idle | lost | stale) from its newest sample: the one place
    the full snapshot and the live refresh both take it from."""
    # A MIG-enabled GPU without utilisation of its own takes its state from its slices' latest samples.
    slice_states: dict[int, list[str]] = {}
    for g in gpus:
        row = latest.get(g["id"])
        if g["parent_id"] and row is not None and row[0] == (latest.get(g["parent_id"]) or (None,))[0]:
            holds = any((p[4] is None) or p[4] > 0 for p in cur_procs.get(g["id"], []))
            slice_states.setdefault(g["parent_id"], []).append(sample_state(row[1], holds, cfg.idle.util_pct))
    out: dict[int, str] = {}
    for g in gpus:
        row = latest.get(g["id"])
        stale_after = GAP_INTERVALS * cloud_interval(cfg) * 1000 if is_remote(g["source"]) else stale_ms
        if g["lost_at"] is not None:
            out[g["id"]] = "lost"
        elif row is None or now - row[0] > stale_after:
            out[g["id"]] = "stale"
        else:
            holds = any((p[4] is None) or p[4] > 0 for p in cur_procs.get(g["id"], []))
            out[g["id"]] = state_of(row[1], holds, cfg.idle.util_pct, slice_states.get(g["id"]))
    return out
