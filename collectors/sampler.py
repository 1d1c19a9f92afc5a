"""Turns a `Reading` into rows: upserts `gpus`, inserts `gpu_samples`, `processes`, `process_samples`.

One small transaction per tick. This is the collector's hot path, so GPU and process ids are cached in
memory (a GPU row is rewritten only when what we know about it changes) and rows go in with executemany.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gpuspend.collectors.reading import GpuReading, Reading
from gpuspend.gpu_models import normalise_model
from gpuspend.store import transaction


def _round(value: float | None) -> float | None:
    # Whole watts / degrees / percent: SQLite stores integral REALs as small integers (about 6 bytes a
    # sample saved), and sub-watt precision means nothing for cost.
    return None if value is None else float(round(value))


class Sampler:
    """Writes readings into one connection. Not thread-safe: one Sampler per collector thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._gpus: dict[str, tuple[int, tuple, bool]] = {}        # uuid -> (id, static facts, lost)
        self._procs: dict[tuple[str, int, int | None], int] = {}    # (host, pid, started) -> id

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

    def gpu_id(self, uuid: str) -> int | None:
        hit = self._gpus.get(uuid)
        return hit[0] if hit else None

    # -- internals -------------------------------------------------------------------------------------
    def write_rows(self, r: Reading) -> int:
        """Rows of one reading, inside the caller's transaction (the collector adds its heartbeat to it)."""
        ts = r.ts_ms
        samples: list[tuple] = []
        psamples: list[tuple] = []
        seen: list[tuple[int, int]] = []
        for g in r.gpus:
            gid = self._upsert_gpu(g, r, ts)
            if g.lost:
                continue
            seen.append((ts, gid))
            samples.append((gid, ts, _round(g.util), _round(g.mem_util), g.mem_used, _round(g.power),
                            g.energy_mj, _round(g.temperature), g.sm_clock))
            for p in g.processes:
                pid = self._proc_id(r.host, p.pid, p.started, p.user, p.command)
                psamples.append((gid, ts, pid, p.used_memory, _round(p.sm_util)))
        conn = self.conn
        conn.executemany("INSERT OR REPLACE INTO gpu_samples (gpu_id, ts, util, mem_util, mem_used, power, "
                         "energy_mj, temperature, sm_clock) VALUES (?,?,?,?,?,?,?,?,?)", samples)
        if psamples:
            conn.executemany("INSERT OR REPLACE INTO process_samples (gpu_id, ts, proc_id, used_memory, sm_util) "
                             "VALUES (?,?,?,?,?)", psamples)
        if seen:
            conn.executemany("UPDATE gpus SET last_seen = ? WHERE id = ?", seen)
        return len(samples)

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

    def _proc_id(self, host: str, pid: int, started: int | None, user: str, command: str) -> int:
        key = (host, pid, started)
        hit = self._procs.get(key)
        if hit is not None:
            return hit
        # `started IS ?` also matches NULL (a process we could not inspect), which UNIQUE would not dedupe.
        row = self.conn.execute("SELECT id FROM processes WHERE host = ? AND pid = ? AND started IS ?",
                                (host, pid, started)).fetchone()
        if row is None:
            cur = self.conn.execute("INSERT INTO processes (host, pid, started, user, command) VALUES (?,?,?,?,?)",
                                    (host, pid, started, user, command))
            pid_row = cur.lastrowid
        else:
            pid_row = row[0]
        if len(self._procs) > 10_000:
            self._procs.clear()
        self._procs[key] = pid_row
        return pid_row
