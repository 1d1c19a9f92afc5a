"""`gpuspend idle`: has every selected GPU been idle for the whole window? An answer a scheduler can act on.

Exit 0 only when each selected GPU was seen idle (gpuspend.idle: at or below `idle.util_pct`) for the whole
window, with samples covering it and a fresh last sample. Exit 1 when any was active, and also when the answer
is not known: stale or missing samples, a collector that stopped, a lost GPU (NVML error), unknown utilisation.
Missing data is never "idle" (an autostop hook must not kill a job because the collector died). Exit 2 for usage
errors. Reads the store only (rollup minutes for the older part of the window, raw samples for the tail).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from gpuspend.cli import common_options
from gpuspend.options import Options

IDLE, ACTIVE, UNKNOWN = "idle", "active", "unknown"
LOOKBACK_MS = 31 * 24 * 3600_000    # idle_for_s looks back at most a month (in rollup minutes)


@click.command()
@click.option("--gpu", "gpus", multiple=True, metavar="INDEX|UUID", help="Only this GPU (repeatable; default all).")
@click.option("--for", "window", default="30m", show_default=True, metavar="DURATION",
              help="How long each GPU must have been idle (e.g. 30m, 2h).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_options
@click.pass_obj
def idle(opts: Options, gpus: tuple[str, ...], window: str, as_json: bool) -> None:
    """Exit 0 when every selected GPU has been idle for the whole window, 1 when any was active or the answer
    is not known (stale or missing samples), 2 on usage errors."""
    from gpuspend import clock
    from gpuspend.config import parse_duration
    from gpuspend.errors import EXIT_ALERTS, EXIT_OK, UsageError

    try:
        for_s = parse_duration(window)
    except ValueError:
        raise UsageError(f"--for {window!r} is not a duration", hint="use e.g. 30m, 2h or 900") from None
    if for_s <= 0:
        raise UsageError(f"--for {window!r} must be longer than 0")
    cfg = opts.load_config()
    now = clock.now_ms()
    path = opts.db_path(cfg)
    doc = verdict(path, cfg, now, for_s, list(gpus))
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(render(doc))
    click.get_current_context().exit(EXIT_OK if doc["verdict"] == IDLE else EXIT_ALERTS)


def verdict(path: Any, cfg: Any, now: int, for_s: float, wanted: list[str]) -> dict[str, Any]:
    from gpuspend.store import connect

    head: dict[str, Any] = {"verdict": UNKNOWN, "for_s": for_s, "now": _iso(now), "database": str(path), "gpus": []}
    if not path.exists():
        head["reason"] = "no database: is the collector running (`gpuspend collect`)?"
        return head
    conn = connect(path)
    try:
        return _verdict(conn, cfg, now, for_s, wanted, head)
    finally:
        conn.close()


def _verdict(conn: Any, cfg: Any, now: int, for_s: float, wanted: list[str], head: dict[str, Any]) -> dict[str, Any]:
    from gpuspend import costing
    from gpuspend.costing.workloads import details_for, holders_now
    from gpuspend.errors import UsageError
    from gpuspend.fmt import duration as dur
    from gpuspend.idle import GAP_INTERVALS, IDLE_STATES, sample_state
    from gpuspend.rollup import collector_interval
    from gpuspend.samples import procs_at

    all_gpus = [g for g in costing.load_gpus(conn) if g["source"] not in ("runpod", "lambda", "vast")]
    chosen, unknown = _select(all_gpus, wanted)
    if unknown:
        known = ", ".join(str(g["idx"]) for g in all_gpus if g["idx"] is not None and g["parent_id"] is None)
        raise UsageError(f"--gpu {' '.join(unknown)}: no such GPU in {head['database']} (indices: {known or 'none'})")
    if not chosen:
        head["reason"] = "no GPUs in the database: nothing has been sampled yet"
        return head
    interval_s = collector_interval(conn, cfg.interval)
    fresh_ms = GAP_INTERVALS * interval_s * 1000
    lo = now - int(for_s * 1000)
    slack_s = GAP_INTERVALS * interval_s + 60.0     # a rollup minute of rounding + one gap's worth
    segs_all: dict[int, list[tuple]] = {}
    with costing.reading(conn, cfg, now):
        for g in chosen:        # only the window, only the GPUs asked about: a 7-day store reads minutes
            segs_all[g["id"]] = costing.segments(conn, cfg, lo - 60_000, now + 1, now, gpu_id=g["id"]).get(g["id"], [])
    latest = _latest(conn, [g["id"] for g in chosen])
    holders = holders_now(conn, now, max(int(fresh_ms), 120_000))
    rows = []
    for g in chosen:
        gid = g["id"]
        last = latest.get(gid)
        age_s = None if last is None else max(0.0, (now - last[0]) / 1000)
        procs = [(p, m) for p, m, _sm in procs_at(conn, gid, last[0])] if last else []
        found: list[dict[str, Any]] = []
        for w in [*details_for(conn, [p[0] for p in procs]).values(), *holders.get(gid, [])]:
            if all((w["kind"], w["id"]) != (f["kind"], f["id"]) for f in found):
                found.append(w)
        labels = [w["label"] for w in found]
        state = "lost" if g["lost_at"] is not None else "no samples" if last is None else \
            "stale" if age_s is not None and age_s * 1000 > fresh_ms else \
            sample_state(last[1], any(m is None or m > 0 for _p, m in procs), cfg.idle.util_pct)
        segs = segs_all.get(gid, [])
        idle_for, whole = _idle_run(segs, now, interval_s)
        if whole and segs:
            idle_for += _idle_before(conn, cfg, gid, segs[0][0], now, interval_s)
        covered = busy = unknown = 0.0
        for seg in segs:
            start, cov, b, held, free = seg[:5]
            if start < lo - 60_000:
                continue
            part = 1.0 if start >= lo else max(0.0, min(1.0, (start + cov * 1000 - lo) / max(cov * 1000, 1.0)))
            covered += cov * part
            busy += b * part
            unknown += max(0.0, cov - b - held - free) * part
        if state == "lost":
            v, why = UNKNOWN, "NVML reports this GPU lost"
        elif last is None:
            v, why = UNKNOWN, "no samples for this GPU"
        elif state == "stale":
            v, why = UNKNOWN, f"last sample {dur(age_s)} old: the collector is not running"
        elif busy > 0 or state == "busy":
            v, why = ACTIVE, f"busy for {dur(busy)} of the window" if busy > 0 else "busy now"
        elif unknown > 0 or state not in IDLE_STATES:
            v, why = UNKNOWN, "utilisation unknown (MIG or NotSupported)"
        elif covered + slack_s < for_s:
            v, why = UNKNOWN, f"samples cover {dur(covered)} of the {dur(for_s)} window"
        else:
            v, why = IDLE, f"idle for the whole window ({state})"
        rows.append({"index": g["idx"], "uuid": g["uuid"], "verdict": v, "state": state,
                     "idle_for_s": round(idle_for, 1), "last_sample_age_s": None if age_s is None else round(age_s, 1),
                     "workload": labels, "workloads": found, "reason": why})
    head["gpus"] = rows
    if all(r["verdict"] == IDLE for r in rows):
        head["verdict"], head["reason"] = IDLE, f"all {len(rows)} selected GPUs idle for the whole window"
    elif any(r["verdict"] == ACTIVE for r in rows):
        first = next(r for r in rows if r["verdict"] == ACTIVE)
        head["verdict"], head["reason"] = ACTIVE, f"GPU {first['index']}: {first['reason']}"
    else:
        first = next(r for r in rows if r["verdict"] == UNKNOWN)
        head["verdict"], head["reason"] = UNKNOWN, f"GPU {first['index']}: {first['reason']}"
    return head


def _select(gpus: list[dict[str, Any]], wanted: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(the GPUs asked for, the --gpu values that name none); no --gpu: every physical GPU (a MIG slice is
    asked for by its UUID)."""
    if not wanted:
        return [g for g in gpus if g["parent_id"] is None], []
    out: list[dict[str, Any]] = []
    unknown: list[str] = []
    for w in wanted:
        hits = [g for g in gpus if (w.isdigit() and g["idx"] == int(w) and g["parent_id"] is None) or g["uuid"] == w]
        if not hits:
            unknown.append(w)
        out.extend(g for g in hits if g not in out)
    return out, unknown


def _latest(conn: Any, ids: list[int]) -> dict[int, tuple]:
    from gpuspend.samples import latest_of

    out = {}
    for gid in ids:
        # the sampler keeps gpus.last_seen = the newest sample's ts: a bounded lookup of the run holding it
        seen = conn.execute("SELECT last_seen FROM gpus WHERE id = ?", (gid,)).fetchone()
        hit = latest_of(conn, gid, seen[0]) if seen else None
        row = hit[:2] if hit is not None and hit[0] == seen[0] else None
        if row is None:         # raw samples already gone: the newest rollup minute
            row = conn.execute("SELECT minute, util_avg FROM gpu_minutes WHERE gpu_id = ? ORDER BY minute DESC "
                               "LIMIT 1", (gid,)).fetchone()
        if row is not None:
            out[gid] = (row[0], row[1])
    return out


def _idle_run(segs: list[tuple], now: int, interval_s: float) -> tuple[float, bool]:
    """Seconds of continuous idle back from now, and whether the run goes back past the first segment: it
    stops at busy time, unknown time or a gap."""
    from gpuspend.idle import GAP_INTERVALS

    run, edge = 0.0, float(now)
    for seg in reversed(segs):
        start, cov, busy, held, free = seg[:5]
        end = start + cov * 1000
        if edge - end > GAP_INTERVALS * interval_s * 1000 + 60_000 or busy > 0 or cov - held - free > 0.5:
            return run, False
        run += held + free
        edge = start
    return run, True


def _idle_before(conn: Any, cfg: Any, gid: int, before_ms: int, now: int, interval_s: float) -> float:
    """Idle seconds of the run before `before_ms`: raw samples after the rollup watermark (a minute or so when
    the collector rolls up), then the rollup minutes since the last one with busy time (two indexed reads:
    an idle GPU's week of minutes is never read in Python)."""
    from gpuspend import costing

    floor = now - LOOKBACK_MS
    wm = costing.watermark(conn)
    extra = 0.0
    if before_ms > wm:
        with costing.reading(conn, cfg, now):
            raw = costing.segments(conn, cfg, max(wm, floor), before_ms, now, gpu_id=gid).get(gid, [])
        run, whole = _idle_run(raw, before_ms, interval_s)
        if not whole:
            return run
        extra = run
    before_ms = min(before_ms, wm)          # minutes behind the watermark only: never a second counting
    row = conn.execute("SELECT MAX(minute) FROM gpu_minutes WHERE gpu_id = ? AND minute >= ? AND minute < ? AND "
                       "busy_s > 0", (gid, floor, before_ms)).fetchone()
    start = row[0] + 60_000 if row and row[0] is not None else floor
    row = conn.execute("SELECT SUM(held_idle_s + free_idle_s) FROM gpu_minutes WHERE gpu_id = ? AND minute >= ? "
                       "AND minute < ?", (gid, start, before_ms)).fetchone()
    return extra + (float(row[0] or 0.0) if row else 0.0)


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render(doc: dict[str, Any]) -> str:
    from gpuspend.fmt import UNKNOWN as UNSEEN
    from gpuspend.fmt import clean
    from gpuspend.fmt import duration as dur

    out = []
    for r in doc["gpus"]:
        who = f" [{clean(', '.join(r['workload']), 60)}]" if r["workload"] else ""
        # a GPU whose last sample is stale, lost or missing has no idle run to tell
        idle_for = UNSEEN if r["state"] in ("stale", "lost", "no samples") else dur(r["idle_for_s"])
        out.append(f"GPU {r['index'] if r['index'] is not None else r['uuid']}: {r['verdict']:<7} {r['state']:<9} "
                   f"idle {idle_for}{who}: {clean(r['reason'], 120)}")
    out.append(f"{doc['verdict']}: {clean(doc['reason'], 200)} (window {dur(doc['for_s'])})")
    return "\n".join(out) + "\n"
