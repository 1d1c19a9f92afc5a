"""Money by workload (pod, Slurm job, container, notebook, else the process), invoice-true.

Three parts make a node's cost and idle cost over a window, per currency, and they add up to it exactly:
  1. process time: each process's GPU-seconds (attribution.process_seconds: SM share, else memory share),
     summed by the workload the process belongs to (processes.workload_id; none: the process itself);
  2. allocated-idle: GPU time with no process on it, on a GPU a workload held at that time (workload_gpus:
     a container's DeviceRequests, a Slurm job's GRES), goes to that workload (split evenly when several);
     else, while the GPU held memory with no live process for ORPHAN_AFTER_MS or more (gpu_orphans), to the
     last process seen on it (its workload), or to an `orphaned-memory` line when none was ever seen;
  3. unattributed: what is left of the node total (covered GPU time x rate, the local meter's own figure),
     computed as the difference so the sum is the node total to the cent.
"Idle" here is idle GPU time x rate (held-idle and free-idle seconds), the same seconds as `hourly`'s idle
money; idle *episodes* (waste after idle.after) stay in gpuspend.costing.episodes.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from gpuspend.costing.attribution import process_seconds
from gpuspend.costing.common import money
from gpuspend.costing.store_read import covered_totals, local_rates, segments, watermark
from gpuspend.fmt import clean
from gpuspend.rollup import collector_interval
from gpuspend.samples import proc_samples
from gpuspend.snapshot import Rate

KINDS = ("k8s-pod", "slurm-job", "docker", "jupyter-kernel", "process")
UNATTRIBUTED = "unattributed"
ORPHANED = "orphaned-memory"        # memory held with no live process, and no process ever seen on the GPU
ORPHAN_AFTER_MS = 300_000           # held this long with no live process before it is its own state
PID_NS_KEY = "collector.pid_namespace"
BY_KEYS = ("workload", "namespace", "user")
_CENT = 4           # decimals money is balanced at (the report's JSON precision)


@dataclass(frozen=True)
class WorkloadSpend:
    kind: str                   # one of KINDS, or "unattributed"
    id: str
    name: str | None
    namespace: str | None
    owner: str | None
    cost: float
    idle_waste: float           # idle GPU time x rate, of `cost`
    gpu_hours: float
    currency: str
    allocated_idle: float = 0.0  # of `cost`: time its GPUs had no process (allocated-idle)
    team: str | None = None

    @property
    def label(self) -> str:
        return workload_label(self.kind, self.id, self.name, self.namespace)


@dataclass(frozen=True)
class WorkloadSplit:
    rows: tuple[WorkloadSpend, ...]                  # biggest first, then the unattributed line per currency
    totals: dict[str, tuple[float, float, float]]    # currency -> (cost, idle, GPU-hours) of the node


def workload_label(kind: str, wid: str, name: str | None, namespace: str | None = None) -> str:
    """How a workload is named on every surface: `pod ns/name`, `job 123 train`, `container web`,
    `notebook path.ipynb`, `pid 42`; an id stands in for a name we could not learn."""
    name = clean(name, 120) if name else None
    wid = clean(wid, 64)
    if kind == "k8s-pod":
        return f"pod {clean(namespace, 63) + '/' if namespace else ''}{name or wid[:8]}"
    if kind == "slurm-job":
        return f"job {wid}{' ' + name if name else ''}"
    if kind == "docker":
        return f"container {name or wid[:12]}"
    if kind == "jupyter-kernel":
        return f"notebook {name}" if name else f"kernel {wid[:8]}"
    if kind == UNATTRIBUTED:
        return "unattributed (no process, no holder)"
    if kind == ORPHANED:
        return "memory held, no process ever seen"
    return f"pid {wid}{' ' + name if name else ''}"


def workload_attribution(conn: sqlite3.Connection, cfg: Any, rates: dict[int, Rate], lo_ms: int, hi_ms: int,
                         now_ms: int) -> WorkloadSplit:
    """Cost, idle cost and GPU-hours per workload over [lo, hi), plus one unattributed line per currency.
    GPU-cloud GPUs are left out: their money is the provider's meter (costing.cloud), not this node's."""
    rates = local_rates(conn, rates)
    acc: dict[tuple[str, Any], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])  # cost idle sec alloc
    info: dict[tuple[str, Any], dict[str, Any]] = {}
    per_proc = process_seconds(conn, cfg, lo_ms, hi_ms, now_ms)
    procs = _process_rows(conn, sorted({p for p, _g in per_proc}))
    for (proc, gid), (share, idle) in per_proc.items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        pid, user, command, wl = procs.get(proc, (0, "?", "", None))
        key: tuple[str, Any] = ("w", wl) if wl is not None else ("p", (pid, user, command))
        if key not in info:
            info[key] = {"wl": wl, "pid": pid, "user": user, "command": command}
        a = acc[(rate.currency, key)]
        a[0] += money(rate, share)
        a[1] += money(rate, idle)
        a[2] += share
    no_proc = _allocated_idle(conn, cfg, lo_ms, hi_ms, now_ms)
    orphan_procs = _process_rows(conn, sorted({o[1] for _g, o, _c, _i in no_proc if o[0] == "p"}))
    for gid, owner, cov, idle in no_proc:
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        if owner[0] == "p":            # memory left by a process: to it, or to its workload
            pid, user, command, wl = orphan_procs.get(owner[1], (0, "?", "", None))
            key = ("w", wl) if wl is not None else ("p", (pid, user, command))
            info.setdefault(key, {"wl": wl, "pid": pid, "user": user, "command": command})
        elif owner[0] == "o":
            key = ("o", None)
            info.setdefault(key, {"wl": None, "pid": 0, "user": None, "command": "", "orphan": True})
        else:
            key = owner
            info.setdefault(key, {"wl": owner[1], "pid": 0, "user": None, "command": ""})
        a = acc[(rate.currency, key)]
        a[0] += money(rate, cov)
        a[1] += money(rate, idle)
        a[2] += cov
        a[3] += money(rate, cov)

    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for (gid, _b), (cov, _busy, idle) in covered_totals(conn, cfg, lo_ms, hi_ms, now_ms).items():
        rate = rates.get(gid)
        if rate is None or rate.per_gpu_hour is None:
            continue
        t = totals[rate.currency]
        t[0] += money(rate, cov)
        t[1] += money(rate, idle)
        t[2] += cov

    wl_rows = _workload_rows(conn, sorted({v["wl"] for v in info.values() if v["wl"] is not None}))
    rows: list[WorkloadSpend] = []
    for (cur, key), (cost, idle, sec, alloc) in acc.items():
        v = info[key]
        w = wl_rows.get(v["wl"]) if v["wl"] is not None else None
        if w is not None:
            kind, wid, name, ns, owner, team = w
            owner = owner or (v["user"] if v["user"] not in (None, "?", "root", "unknown") else None)
        elif v.get("orphan"):
            kind, wid, name, ns, owner, team = ORPHANED, "never-seen", None, None, None, None
        else:
            kind, wid, name, ns, owner, team = ("process", str(v["pid"]), clean(v["command"], 120) or None, None,
                                                v["user"], None)
        rows.append(WorkloadSpend(kind, wid, name, ns, owner, round(cost, _CENT), round(idle, _CENT),
                                  round(sec / 3600.0, _CENT), cur, round(alloc, _CENT), team))
    rows.sort(key=lambda r: (r.currency, -r.cost, r.kind, r.id))
    out = list(rows)
    for cur, (cost, idle, sec) in sorted(totals.items()):
        mine = [r for r in rows if r.currency == cur]
        # The difference of rounded figures: the lines add up to the rounded node total exactly.
        un_cost = round(round(cost, _CENT) - sum(r.cost for r in mine), _CENT)
        un_idle = round(round(idle, _CENT) - sum(r.idle_waste for r in mine), _CENT)
        un_h = round(round(sec / 3600.0, _CENT) - sum(r.gpu_hours for r in mine), _CENT)
        out.append(WorkloadSpend(UNATTRIBUTED, "-", None, None, None, un_cost, un_idle, un_h, cur))
    return WorkloadSplit(tuple(out), {c: (round(t[0], _CENT), round(t[1], _CENT), round(t[2] / 3600.0, _CENT))
                                      for c, t in totals.items()})


def group_by(split: WorkloadSplit, by: str) -> list[tuple[str, str, float, float, float]]:
    """[(name, currency, cost, idle, GPU-hours)] by workload, namespace (k8s namespace / Slurm account) or user
    (the workload's owner), biggest first; the unattributed line stays its own row, last."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    tail: list[tuple[str, str, float, float, float]] = []
    for r in split.rows:
        if r.kind == UNATTRIBUTED:
            if r.cost or r.idle_waste:
                tail.append(("(unattributed)", r.currency, r.cost, r.idle_waste, r.gpu_hours))
            continue
        name = r.label if by == "workload" else (r.namespace or "(none)") if by == "namespace" \
            else (r.owner or "(unknown)")
        a = acc[(name, r.currency)]
        a[0] += r.cost
        a[1] += r.idle_waste
        a[2] += r.gpu_hours
    rows = sorted(((n, c, round(v[0], _CENT), round(v[1], _CENT), round(v[2], _CENT)) for (n, c), v in acc.items()),
                  key=lambda x: (x[1], -x[2], x[0]))
    return rows + tail


def details_for(conn: sqlite3.Connection, proc_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{proc id: {kind, id, name, namespace, owner, label}} for processes that belong to a workload."""
    out: dict[int, dict[str, Any]] = {}
    for i in range(0, len(proc_ids), 500):
        chunk = proc_ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for pid_row, kind, wid, name, ns, owner in conn.execute(
                "SELECT p.id, w.kind, w.wid, w.name, w.namespace, w.owner FROM processes p JOIN workloads w "
                f"ON w.id = p.workload_id WHERE p.id IN ({marks})", chunk):
            out[pid_row] = {"kind": kind, "id": wid, "name": name, "namespace": ns, "owner": owner,
                            "label": workload_label(kind, wid, name, ns)}
    return out


def labels_for(conn: sqlite3.Connection, proc_ids: list[int]) -> dict[int, tuple[str, str]]:
    """{proc id: (kind, label)} for processes that belong to a workload (the dashboard's workload column)."""
    return {p: (d["kind"], d["label"]) for p, d in details_for(conn, proc_ids).items()}


def holders_now(conn: sqlite3.Connection, now_ms: int, within_ms: int) -> dict[int, list[dict[str, Any]]]:
    """{gpu id: [{kind, id, name, namespace, owner, label}]} of workloads seen holding it (a container's
    DeviceRequests, a Slurm job's GRES) in the last `within_ms`."""
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for gid, kind, wid, name, ns, owner in conn.execute(
            "SELECT a.gpu_id, w.kind, w.wid, w.name, w.namespace, w.owner FROM workload_gpus a JOIN workloads w "
            "ON w.id = a.workload_id WHERE a.last_ms >= ? ORDER BY a.gpu_id, w.kind, w.wid", (now_ms - within_ms,)):
        entry = {"kind": kind, "id": wid, "name": name, "namespace": ns, "owner": owner,
                 "label": workload_label(kind, wid, name, ns)}
        if entry not in out[gid]:
            out[gid].append(entry)
    return dict(out)


# -- internals ---------------------------------------------------------------------------------------------------
def _process_rows(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[int, str, str, int | None]]:
    out: dict[int, tuple[int, str, str, int | None]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT id, pid, user, command, workload_id FROM processes WHERE id IN ({marks})",
                                chunk):
            out[row[0]] = (row[1], row[2] or "?", row[3] or "", row[4])
    return out


def _workload_rows(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple]:
    out: dict[int, tuple] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute("SELECT id, kind, wid, name, namespace, owner, team FROM workloads "
                                f"WHERE id IN ({marks})", chunk):
            out[row[0]] = tuple(row[1:])
    return out


def _allocated_idle(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int,
                    now_ms: int) -> list[tuple[int, tuple, float, float]]:
    """[(gpu id, owner, seconds, idle seconds)] of GPU time with no process on it, owned by the workload that
    held the GPU (owner ("w", workload id)), else by the process that left memory on it (("p", process id);
    ("o", None) when none was ever seen)."""
    interval_ms = collector_interval(conn, cfg.interval) * 1000
    spans: dict[int, list[tuple[tuple, float, float]]] = defaultdict(list)     # gpu -> [(owner, from, to)]
    for gid, wl, first, last in conn.execute(
            "SELECT gpu_id, workload_id, first_ms, last_ms FROM workload_gpus WHERE first_ms < ? AND last_ms + ? >= ?",
            (hi_ms, interval_ms, lo_ms)):
        spans[gid].append((("w", wl), float(first), float(last) + interval_ms))
    orphans: dict[int, list[tuple[tuple, float, float]]] = defaultdict(list)
    for gid, proc, first, last in conn.execute(
            "SELECT gpu_id, last_proc_id, first_ms, last_ms FROM gpu_orphans WHERE first_ms < ? AND last_ms + ? >= ? "
            "AND last_ms - first_ms >= ?", (hi_ms, interval_ms, lo_ms, ORPHAN_AFTER_MS)):
        orphans[gid].append((("p", proc) if proc is not None else ("o", None), float(first),
                             float(last) + interval_ms))
    if not spans and not orphans:
        return []
    wm = watermark(conn)
    out: dict[tuple[int, tuple], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for gid in sorted(set(spans) | set(orphans)):
        held, left = spans.get(gid, []), orphans.get(gid, [])
        every = held + left
        lo = max(lo_ms, int(min(s[1] for s in every)) // 60_000 * 60_000)
        hi = min(hi_ms, int(max(s[2] for s in every)) + 1)
        if lo >= hi:
            continue
        busy_minutes = {m: (share, idle) for m, share, idle in conn.execute(
            "SELECT minute, SUM(share_s), SUM(idle_share_s) FROM process_minutes WHERE gpu_id = ? AND minute >= ? "
            "AND minute < ? GROUP BY minute", (gid, lo, min(hi, wm)))} if lo < wm else {}
        with_procs = {r[1] for r in proc_samples(conn, max(lo, wm), hi, (gid,))} if hi > wm else set()
        for seg in segments(conn, cfg, lo, hi, now_ms, wm, gpu_id=gid).get(gid, []):
            start, cov, _busy, held_s, free_s = seg[:5]
            idle = held_s + free_s
            if start < wm:                  # a rollup minute: what its processes did not take
                share, pidle = busy_minutes.get(start, (0.0, 0.0))
                rest, rest_idle, span = max(0.0, cov - (share or 0.0)), max(0.0, idle - (pidle or 0.0)), 60_000.0
            else:                           # a raw sample: all of it when no process was on the GPU
                if start in with_procs:
                    continue
                rest, rest_idle, span = cov, idle, max(cov * 1000.0, 1.0)
            if rest <= 0:
                continue
            end = start + span
            # a holder first; else whoever left memory there
            parts = [(o, (min(end, b) - max(start, a)) / span) for o, a, b in held if min(end, b) > max(start, a)] \
                or [(o, (min(end, b) - max(start, a)) / span) for o, a, b in left if min(end, b) > max(start, a)]
            if not parts:
                continue
            n = len(parts)
            for wl, frac in parts:
                o = out[(gid, wl)]
                o[0] += rest * frac / n
                o[1] += rest_idle * frac / n
    return [(gid, owner, v[0], v[1]) for (gid, owner), v in out.items()]


def orphan_notes(conn: sqlite3.Connection, now_ms: int, within_ms: int) -> list[str]:
    """What the dashboard and the report say about memory held with no live process (open for ORPHAN_AFTER_MS
    or more), and about a collector that cannot see the host's processes at all."""
    from gpuspend.fmt import duration, size

    notes = []
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (PID_NS_KEY,)).fetchone()
    if row and row[0] == "foreign":
        notes.append("the collector cannot see the GPU processes (another PID namespace): run it with the host PID "
                     "namespace (docker --pid=host, Kubernetes hostPID: true); workloads are unknown")
    for idx, uuid, first, last, mem, pid, user, command in conn.execute(
            "SELECT g.idx, g.uuid, o.first_ms, o.last_ms, o.mem_used, p.pid, p.user, p.command FROM gpu_orphans o "
            "JOIN gpus g ON g.id = o.gpu_id LEFT JOIN processes p ON p.id = o.last_proc_id "
            "WHERE o.last_ms >= ? AND o.last_ms - o.first_ms >= ? ORDER BY g.idx", (now_ms - within_ms, ORPHAN_AFTER_MS)):
        who = f"last seen: pid {pid} {clean(user, 32)} {clean(command, 48)}" if pid is not None else "no process ever seen"
        name = f"GPU {idx}" if idx is not None else clean(uuid, 40)
        notes.append(f"{name}: {size(mem)} held with no live process for {duration((last - first) / 1000)} ({who})")
    return notes
