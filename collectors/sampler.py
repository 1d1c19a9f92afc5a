"""Turns a `Reading` into rows: upserts `gpus`, writes `gpu_samples`, `processes`, `process_samples`.

One small transaction per tick. This is the collector's hot path, so GPU and process ids are cached in
memory (a GPU row is rewritten only when what we know about it changes) and rows go in with executemany.
Samples are written as runs (gpuspend.samples): a GPU's sample extends the row of its previous one (updated in
place, in the tick's transaction) while the gap rule, the minute and the set of processes allow, else starts
a new row; a run in progress lives in memory, so a restarted or rolled-back sampler starts a new row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gpuspend.collectors.reading import GpuReading, Reading, WorkloadReading
from gpuspend.gpu_models import normalise_model
from gpuspend.samples import INSERT_GPU, INSERT_PROC, UPDATE_GPU, UPDATE_PROC, Run, run_cap_ms
from gpuspend.store import set_meta, transaction

# A held GPU seen again within this long continues the same allocation row (a restart of the collector or a
# slow allocation refresh is not a new allocation); the money is bounded by covered GPU time anyway.
ALLOC_GAP_MS = 600_000
PID_NS_KEY = "collector.pid_namespace"    # host | foreign (NVML's pids are not in the collector's /proc)


def _round(value: float | None) -> float | None:
    # Whole watts / degrees / percent: SQLite stores integral REALs as small integers (about 6 bytes a
    # sample saved), and sub-watt precision means nothing for cost.
    return None if value is None else float(round(value))


class Sampler:
    """Writes readings into one connection. Not thread-safe: one Sampler per collector thread."""

    def __init__(self, conn: sqlite3.Connection, interval_s: float | None = None) -> None:
        """`interval_s`: the sampling interval (the gap rule's unit: a longer step ends a run); 2 s if unknown."""
        self.conn = conn
        self._cap = run_cap_ms(interval_s)
        self._runs: dict[int, Run] = {}                              # gpu id -> its run in progress
        self._gpus: dict[str, tuple[int, tuple, bool]] = {}        # uuid -> (id, static facts, lost)
        self._procs: dict[tuple[str, int, int | None], int] = {}    # (host, pid, started) -> id
        self._wl: dict[tuple[str, str, str], tuple[int, WorkloadReading]] = {}   # (host, kind, id) -> row
        self._allocs: dict[tuple[int, int], list[int]] = {}          # (gpu id, workload id) -> [first, last]
        self._orphans: dict[int, list[int]] = {}                     # gpu id -> [first, last, bytes]
        self._last_proc: dict[int, int] = {}                         # gpu id -> last process row seen on it
        self._pid_ns: str | None = None

    def write(self, reading: Reading) -> int:
        """One tick: all rows of this reading in one transaction. Returns the number of GPU samples."""
        try:
            with transaction(self.conn):
                return self.write_rows(reading)
        except BaseException:
            self.forget()
            raise

    def write_many(self, readings: Iterable[Reading]) -> int:
        """Bulk path (demo history, tests): many readings in one transaction."""
        n = 0
        try:
            with transaction(self.conn):
                for r in readings:
                    n += self.write_rows(r)
        except BaseException:
            self.forget()
            raise
        return n

    def forget(self) -> None:
        """After a rollback the cached ids may name rows that were never committed."""
        self._gpus.clear()
        self._procs.clear()
        self._wl.clear()
        self._allocs.clear()
        self._orphans.clear()
        self._last_proc.clear()
        self._runs.clear()
        self._pid_ns = None

    def gpu_id(self, uuid: str) -> int | None:
        hit = self._gpus.get(uuid)
        return hit[0] if hit else None

    # -- internals -------------------------------------------------------------------------------------
    def write_rows(self, r: Reading) -> int:
        """Rows of one reading, inside the caller's transaction (the collector adds its heartbeat to it)."""
        ts = r.ts_ms
        grow: list[tuple] = []
        pgrow: list[tuple] = []
        fresh: list[tuple[int, Run]] = []
        seen: list[tuple[int, int]] = []
        runs, cap = self._runs, self._cap
        for g in r.gpus:
            gid = self._upsert_gpu(g, r, ts)
            if g.lost:
                continue
            seen.append((ts, gid))
            vals = (_round(g.util), _round(g.mem_util), g.mem_used, _round(g.power), _round(g.temperature), g.sm_clock)
            procs: dict[int, tuple] = {}
            for p in g.processes:
                wl = self._workload_id(r.host, p.workload, ts) if p.workload is not None else None
                pid = self._proc_id(r.host, p.pid, p.started, p.user, p.command, wl)
                procs[pid] = (p.used_memory, _round(p.sm_util))
                self._last_proc[gid] = pid
            run = runs.get(gid)
            if run is not None and run.can_take(ts, vals, g.energy_mj, procs, cap):
                if run.take(ts, vals, g.energy_mj, procs):
                    pgrow.extend(run.proc_rows(gid))
                grow.append(run.gpu_row(gid))
            else:
                run = Run(ts, vals, g.energy_mj, procs)
                fresh.append((gid, run))
        conn = self.conn
        if grow:
            conn.executemany(UPDATE_GPU, grow)
        if pgrow:
            conn.executemany(UPDATE_PROC, pgrow)
        for gid, run in fresh:
            if conn.execute(INSERT_GPU, run.gpu_row(gid)).rowcount:
                runs[gid] = run
                if run.pcols:
                    conn.executemany(INSERT_PROC, run.proc_rows(gid))
            else:                   # a row already starts at this instant: keep it, extend nothing
                runs.pop(gid, None)
        if seen:
            conn.executemany("UPDATE gpus SET last_seen = ? WHERE id = ?", seen)
        if r.allocations:
            self._write_allocations(r, ts)
        if r.orphans:
            self._write_orphans(r, ts)
        if r.pid_namespace is not None and r.pid_namespace != self._pid_ns:
            # what the dashboard and the report say when the collector cannot see the host's processes
            set_meta(conn, PID_NS_KEY, r.pid_namespace)
            self._pid_ns = r.pid_namespace
        return len(seen)

    def _write_orphans(self, r: Reading, ts: int) -> None:
        for uuid, held in r.orphans:
            gid = self.gpu_id(uuid)
            if gid is None:
                continue
            span = self._orphans.get(gid)
            if span is None:
                row = self.conn.execute("SELECT first_ms, last_ms, mem_used FROM gpu_orphans WHERE gpu_id = ? "
                                        "ORDER BY first_ms DESC LIMIT 1", (gid,)).fetchone()
                span = list(row) if row else None
            if span is not None and span[1] <= ts <= span[1] + ALLOC_GAP_MS:
                if ts > span[1]:
                    span[1], span[2] = ts, max(span[2] or 0, held)
                    self.conn.execute("UPDATE gpu_orphans SET last_ms = ?, mem_used = ? WHERE gpu_id = ? AND "
                                      "first_ms = ?", (ts, span[2], gid, span[0]))
            elif span is None or ts > span[1]:
                self.conn.execute("INSERT OR IGNORE INTO gpu_orphans (gpu_id, first_ms, last_ms, mem_used, "
                                  "last_proc_id) VALUES (?,?,?,?,?)", (gid, ts, ts, held, self._previous_proc(gid, ts)))
                span = [ts, ts, held]
            self._orphans[gid] = span

    def _previous_proc(self, gid: int, ts: int) -> int | None:
        """The last process seen on a GPU: this sampler's memory, else the last hour of raw samples, else the
        newest rollup minute that had one (both indexed reads)."""
        hit = self._last_proc.get(gid)
        if hit is not None:
            return hit
        row = self.conn.execute("SELECT proc_id FROM process_samples WHERE ts >= ? AND ts < ? AND gpu_id = ? "
                                "ORDER BY ts DESC LIMIT 1", (ts - 3_600_000, ts, gid)).fetchone()
        if row is None:
            row = self.conn.execute("SELECT proc_id FROM process_minutes WHERE gpu_id = ? ORDER BY minute DESC "
                                    "LIMIT 1", (gid,)).fetchone()
        return row[0] if row else None

    def _workload_id(self, host: str, w: WorkloadReading, ts: int) -> int:
        key = (host, w.kind, w.id)
        hit = self._wl.get(key)
        if hit is not None and (hit[1] == w or w.name is None):
            return hit[0]
        # First sight in this sampler, or better names than we wrote: names are kept once known.
        self.conn.execute(
            "INSERT INTO workloads (host, kind, wid, name, namespace, owner, team, detail, first_seen, last_seen) "
            "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(host, kind, wid) DO UPDATE SET "
            "name = COALESCE(excluded.name, name), namespace = COALESCE(excluded.namespace, namespace), "
            "owner = COALESCE(excluded.owner, owner), team = COALESCE(excluded.team, team), "
            "detail = COALESCE(excluded.detail, detail), last_seen = MAX(last_seen, excluded.last_seen)",
            (host, w.kind, w.id, w.name, w.namespace, w.owner, w.team, w.detail, ts, ts))
        wid = self.conn.execute("SELECT id FROM workloads WHERE host = ? AND kind = ? AND wid = ?",
                                (host, w.kind, w.id)).fetchone()[0]
        if len(self._wl) > 10_000:
            self._wl.clear()
        self._wl[key] = (wid, w)
        return wid

    def _write_allocations(self, r: Reading, ts: int) -> None:
        for uuid, w in r.allocations:
            gid = self.gpu_id(uuid)
            if gid is None:
                continue
            wl = self._workload_id(r.host, w, ts)
            key = (gid, wl)
            span = self._allocs.get(key)
            if span is None:
                row = self.conn.execute("SELECT first_ms, last_ms FROM workload_gpus WHERE gpu_id = ? AND "
                                        "workload_id = ? ORDER BY first_ms DESC LIMIT 1", key).fetchone()
                span = [row[0], row[1]] if row else None
            if span is not None and span[1] <= ts <= span[1] + ALLOC_GAP_MS:
                if ts > span[1]:
                    self.conn.execute("UPDATE workload_gpus SET last_ms = ? WHERE gpu_id = ? AND workload_id = ? "
                                      "AND first_ms = ?", (ts, gid, wl, span[0]))
                    span[1] = ts
            elif span is None or ts > span[1]:
                self.conn.execute("INSERT OR IGNORE INTO workload_gpus (gpu_id, workload_id, first_ms, last_ms) "
                                  "VALUES (?,?,?,?)", (gid, wl, ts, ts))
                span = [ts, ts]
            self._allocs[key] = span

    def _upsert_gpu(self, g: GpuReading, r: Reading, ts: int) -> int:
        hit = self._gpus.get(g.uuid)
        if g.lost:
            if hit is None:
                row = self.conn.execute("SELECT id FROM gpus WHERE uuid = ?", (g.uuid,)).fetchone()
                if row is None:
                    return self._insert_gpu(g, r, ts, ())
                hit = (row[0], (), False)
            if not hit[2]:
                self.conn.execute("UPDATE gpus SET lost_at = COALESCE(lost_at, ?) WHERE id = ?", (ts, hit[0]))
                self._gpus[g.uuid] = (hit[0], hit[1], True)
            return hit[0]
        parent_id = self.gpu_id(g.parent_uuid) if g.parent_uuid else None
        facts = (r.host, g.index, g.name, g.memory_total, g.power_limit, parent_id, g.mig_gi, g.mig_ci, r.source)
        if hit is not None and hit[1] == facts and not hit[2]:
            return hit[0]
        return self._insert_gpu(g, r, ts, facts)

    def _insert_gpu(self, g: GpuReading, r: Reading, ts: int, facts: tuple) -> int:
        parent_id = self.gpu_id(g.parent_uuid) if g.parent_uuid else None
        lost_at = ts if g.lost else None
        self.conn.execute(
            "INSERT INTO gpus (uuid, host, idx, name, model, memory_total, power_limit, parent_id, mig_gi, mig_ci, "
            "source, first_seen, last_seen, lost_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT(uuid) DO UPDATE SET host = excluded.host, idx = excluded.idx, "
            "name = COALESCE(excluded.name, name), model = COALESCE(excluded.model, model), "
            "memory_total = COALESCE(excluded.memory_total, memory_total), "
            "power_limit = COALESCE(excluded.power_limit, power_limit), "
            "parent_id = COALESCE(excluded.parent_id, parent_id), mig_gi = COALESCE(excluded.mig_gi, mig_gi), "
            "mig_ci = COALESCE(excluded.mig_ci, mig_ci), source = excluded.source, "
            "last_seen = MAX(last_seen, excluded.last_seen), "
            "lost_at = CASE WHEN excluded.lost_at IS NULL THEN NULL ELSE COALESCE(lost_at, excluded.lost_at) END",
            (g.uuid, r.host, g.index, g.name, normalise_model(g.name), g.memory_total, g.power_limit, parent_id,
             g.mig_gi, g.mig_ci, r.source, ts, ts, lost_at))
        gid = self.conn.execute("SELECT id FROM gpus WHERE uuid = ?", (g.uuid,)).fetchone()[0]
        self._gpus[g.uuid] = (gid, facts, g.lost)
        return gid

    def _proc_id(self, host: str, pid: int, started: int | None, user: str, command: str,
                 workload_id: int | None = None) -> int:
        key = (host, pid, started)
        hit = self._procs.get(key)
        if hit is not None:
            return hit
        # `started IS ?` also matches NULL (a process we could not inspect), which UNIQUE would not dedupe.
        row = self.conn.execute("SELECT id FROM processes WHERE host = ? AND pid = ? AND started IS ?",
                                (host, pid, started)).fetchone()
        if row is None:
            cur = self.conn.execute("INSERT INTO processes (host, pid, started, user, command, workload_id) "
                                    "VALUES (?,?,?,?,?,?)", (host, pid, started, user, command, workload_id))
            pid_row = cur.lastrowid
        else:
            pid_row = row[0]
            if workload_id is not None:
                self.conn.execute("UPDATE processes SET workload_id = ? WHERE id = ? AND workload_id IS NULL",
                                  (workload_id, pid_row))
        if len(self._procs) > 10_000:
            self._procs.clear()
        self._procs[key] = pid_row
        return pid_row
