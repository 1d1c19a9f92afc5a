"""The raw sample layout: one home for how `gpu_samples` / `process_samples` rows stand for samples.

A `gpu_samples` row is a *run*: consecutive samples of one GPU inside one minute, the first at `ts`, the last at
`ts + span_ms`, `n` samples in all, none further apart than the gap rule allows (gpuspend.idle.gap_cap_ms of
the collector's interval), so coverage inside a run is exactly what the samples one by one gave, and a real
collector gap is always between two rows. Sample times: every `span_ms / (n - 1)` ms, or the steps in `dts`
when they were not regular. Each value column holds a plain number when the value did not change over the run
(values are already at NVML's resolution: whole %, W, C, MHz; memory in bytes), else a packed little-endian
array with one value per sample (the codecs below; a value that does not fit its codec starts a new row).
`energy_mj` is the energy counter at the run's first sample, `energy_end` at its last. A run does not go on past
a sample with a counter reading unless the next one has a reading too, so a counter read now and then (the NVML
collector reads it every 30 s) keeps every reading; read at every sample, a run keeps the readings at its
edges, and the rollup, which spreads each counter delta evenly over the samples it spans, gives every minute
the same energy (a run never leaves its minute). A `process_samples` row (same `ts`, `gpu_id`) stands for the
same samples as its GPU row: a run ends when the GPU's set of processes changes. A single-sample row (n = 1, span 0) is the
old row-per-sample layout, so rows written by older code, by the cloud poller or by hand read the same.

Readers never decode rows themselves: `gpu_samples` / `proc_samples` give the sample-by-sample view.
"""

from __future__ import annotations

import sqlite3
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from gpuspend.idle import gap_cap_ms

ROW_SPAN_MS = 60_000        # a run never leaves the minute of its first sample: readers look back this far
MAX_STEP_MS = 65_535        # steps of an irregular run are stored as unsigned 16-bit

# Column codecs: (array typecode, the value that stands for NULL, lowest value, highest value storable).
# "big" (bytes of memory): an 8-byte base (the first non-NULL value), a unit byte (0: deltas from the base in
# bytes, 32-bit signed; 1: in MiB, 16-bit signed, when every value is a whole MiB, as NVML's almost always are).
_SMALL = {"B": (255, 0, 254), "b": (-128, -127, 127), "H": (65535, 0, 65534)}
_BIG_UNITS = {0: (1, "i", -(1 << 31)), 1: (1 << 20, "h", -(1 << 15))}     # code -> (unit, typecode, NULL)
# util, mem_util, mem_used, power, temperature, sm_clock (process rows: used_memory "big", sm_util "B")
GPU_CODECS = ("B", "B", "big", "H", "b", "H")
GPU_REAL = (True, True, False, True, True, False)        # REAL columns: read back as floats
_SWAP = sys.byteorder != "little"                        # arrays are stored little-endian


def fits(code: str, v: Any) -> bool:
    """Whether a value can go into a packed array of this codec (NULL always can)."""
    if v is None:
        return True
    if isinstance(v, float):
        if not v.is_integer():
            return False
        v = int(v)
    elif not isinstance(v, int):
        return False
    if code == "big":
        return -(1 << 62) < v < (1 << 62)
    _null, lo, hi = _SMALL[code]
    return lo <= v <= hi


def big_fits(base: Any, unit_code: int, v: Any) -> bool:
    """Whether `v` can join a packed "big" column with this base and unit."""
    if v is None or base is None:
        return True
    unit, _tc, null = _BIG_UNITS[unit_code]
    d = int(v) - int(base)
    return d % unit == 0 and null < d // unit < -null


def unpack(code: str, stored: Any, n: int, real: bool) -> list[Any]:
    """One value per sample from a column's stored form."""
    if not isinstance(stored, bytes):
        return [stored] * n
    if code == "big":
        base = struct.unpack_from("<q", stored)[0]
        unit, tc, null = _BIG_UNITS[stored[8]]
        deltas = array(tc)
        deltas.frombytes(stored[9:])
        if _SWAP:
            deltas.byteswap()
        out: list[Any] = [None if d == null else base + d * unit for d in deltas]
    else:
        null = _SMALL[code][0]
        vals = array(code)
        vals.frombytes(stored)
        if _SWAP:
            vals.byteswap()
        out = [None if v == null else v for v in vals]
    if real:
        out = [None if v is None else float(v) for v in out]
    return out


def value_at(code: str, stored: Any, n: int, real: bool, k: int) -> Any:
    """unpack(code, stored, n, real)[k], reading one value instead of the whole run: the newest sample of each
    GPU is what the dashboard reads every tick."""
    if not isinstance(stored, bytes):
        return stored
    if code == "big":
        base = struct.unpack_from("<q", stored)[0]
        unit, tc, null = _BIG_UNITS[stored[8]]
        d = struct.unpack_from("<" + tc, stored, 9 + k * struct.calcsize(tc))[0]
        v = None if d == null else base + d * unit
    else:
        d = struct.unpack_from("<" + code, stored, k * struct.calcsize(code))[0]
        v = None if d == _SMALL[code][0] else d
    return float(v) if real and v is not None else v


def times(ts: int, span: int, n: int, dts: bytes | None) -> list[int]:
    """The sample times of a run."""
    if n <= 1:
        return [ts]
    if dts is None:
        step = span // (n - 1)
        return [ts + k * step for k in range(n)]
    steps = array("H")
    steps.frombytes(dts)
    if _SWAP:
        steps.byteswap()
    out = [ts]
    t = ts
    for s in steps:
        t += s
        out.append(t)
    return out


# -- reading -------------------------------------------------------------------------------------------

def _gpu_filter(gpu_ids: Iterable[int] | None, col: str) -> tuple[str, tuple]:
    if gpu_ids is None:
        return "", ()
    ids = tuple(gpu_ids)
    return f" AND {col} IN ({','.join('?' * len(ids))})", ids


# Decoded runs, keyed by the whole stored row: a pure function of it, so a run read again unchanged (every
# run of the live tail but each GPU's newest, on every dashboard tick) is not unpacked again. Bounded: a long
# read (a day of raw samples) only churns it.
_DECODED: dict[tuple, list[tuple]] = {}
_DECODED_MAX = 256


def _decoded_run(key: tuple) -> list[tuple]:
    """Every sample of one stored run, as gpu_samples gives them (key: the row as selected there)."""
    rows = _DECODED.get(key)
    if rows is not None:
        return rows
    gid, ts, span, n, dts, util, mu, mem, power, temp, clk, e0, e1 = key
    last = n - 1
    rows = [(gid, t, u, m, b, p, e0 if k == 0 else (e1 if k == last else None), te, c)
            for k, (t, u, m, b, p, te, c) in enumerate(zip(
                times(ts, span, n, dts), unpack("B", util, n, True), unpack("B", mu, n, True),
                unpack("big", mem, n, False), unpack("H", power, n, True), unpack("b", temp, n, True),
                unpack("H", clk, n, False), strict=True))]
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    _DECODED[key] = rows
    return rows


def gpu_samples(conn: sqlite3.Connection, lo_ms: int, hi_ms: int | None, gpu_ids: Iterable[int] | None = None
                ) -> list[tuple]:
    """Samples with lo <= ts < hi (hi None: all after lo), ordered by (gpu_id, ts): (gpu_id, ts, util, mem_util,
    mem_used, power, energy_mj, temperature, sm_clock), exactly the rows of the row-per-sample layout (energy:
    the counter where a run keeps it, else NULL). Overlapping runs (a collector restarted with its clock set
    back) give each instant once."""
    only, ids = _gpu_filter(gpu_ids, "gpu_id")
    q = ("SELECT gpu_id, ts, span_ms, n, dts, util, mem_util, mem_used, power, temperature, sm_clock, energy_mj, "
         "energy_end FROM gpu_samples WHERE ts >= ?")
    args: list[Any] = [lo_ms - ROW_SPAN_MS]
    if hi_ms is not None:
        q += " AND ts < ?"
        args.append(hi_ms)
    top = hi_ms if hi_ms is not None else 1 << 62
    per: dict[int, list[tuple]] = {}
    ends: dict[int, int] = {}          # gpu -> last sample so far: rows come in ts order, runs of a GPU in turn
    overlap: set[int] = set()
    for row in conn.execute(q + only, (*args, *ids)):
        gid, ts, span, n = row[:4]
        out = per.get(gid)
        if out is None:
            out = per[gid] = []
        if ts <= ends.get(gid, ts - 1):
            overlap.add(gid)
        ends[gid] = max(ends.get(gid, ts), ts + span)
        if n <= 1 and span == 0:
            if lo_ms <= ts < top:
                _g, _t, _s, _n, _d, util, mu, mem, power, temp, clk, e0, _e1 = row
                out.append((gid, ts, util, mu, mem, power, e0, temp, clk))
            continue
        rows = _decoded_run(row)
        if lo_ms <= ts and ts + span < top:
            out.extend(rows)
        else:
            out.extend(r for r in rows if lo_ms <= r[1] < top)
    result: list[tuple] = []
    for gid in sorted(per):
        rows = per[gid]
        if gid in overlap:
            rows.sort(key=lambda r: r[1])
            rows = _dedupe(rows)
        result.extend(rows)
    return result


def _dedupe(rows: list[tuple]) -> list[tuple]:
    """One sample per instant (rows of one GPU sorted by ts): the run that started later wins."""
    keep: list[tuple] = []
    for r in rows:
        if keep and keep[-1][1] == r[1]:
            keep[-1] = r
        else:
            keep.append(r)
    return keep


def proc_samples(conn: sqlite3.Connection, lo_ms: int, hi_ms: int | None, gpu_ids: Iterable[int] | None = None
                 ) -> list[tuple]:
    """Process samples with lo <= ts < hi: [(gpu_id, ts, proc_id, used_memory, sm_util)], one per process per
    sample of its GPU's run (overlapping runs: one per instant, the run that started later wins)."""
    only, ids = _gpu_filter(gpu_ids, "p.gpu_id")
    q = ("SELECT p.gpu_id, p.ts, p.proc_id, p.used_memory, p.sm_util, g.span_ms, g.n, g.dts FROM process_samples p "
         "LEFT JOIN gpu_samples g ON g.ts = p.ts AND g.gpu_id = p.gpu_id WHERE p.ts >= ?")
    args: list[Any] = [lo_ms - ROW_SPAN_MS]
    if hi_ms is not None:
        q += " AND p.ts < ?"
        args.append(hi_ms)
    top = hi_ms if hi_ms is not None else 1 << 62
    out: dict[tuple[int, int, int], tuple] = {}
    for row in conn.execute(q + only + " ORDER BY p.ts", (*args, *ids)):
        gid, ts, proc, mem, sm, span, n, _dts = row
        if not n or (n <= 1 and not span):
            if lo_ms <= ts < top:
                out[(gid, ts, proc)] = (gid, ts, proc, mem, sm)
            continue
        rows = _decoded_proc_run(row)
        if not (lo_ms <= ts and ts + span < top):
            rows = [r for r in rows if lo_ms <= r[1] < top]
        out.update(((gid, r[1], proc), r) for r in rows)
    return list(out.values())


def _decoded_proc_run(key: tuple) -> list[tuple]:
    """Every sample of one stored process run, as proc_samples gives them (memoised as _decoded_run)."""
    rows = _DECODED.get(key)
    if rows is not None:
        return rows
    gid, ts, proc, mem, sm, span, n, dts = key
    rows = [(gid, t, proc, m, u) for t, m, u in zip(times(ts, span, n, dts), unpack("big", mem, n, False),
                                                     unpack("B", sm, n, True), strict=True)]
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.clear()
    _DECODED[key] = rows
    return rows


def last_sample_ms(conn: sqlite3.Connection, gpu_id: int | None = None) -> int | None:
    """The newest sample's time (of one GPU, or of any): runs extend past their key, so MAX(ts + span_ms) over the
    rows of the last minute (indexed)."""
    if gpu_id is None:
        top = conn.execute("SELECT MAX(ts) FROM gpu_samples").fetchone()[0]
        if top is None:
            return None
        return conn.execute("SELECT MAX(ts + span_ms) FROM gpu_samples WHERE ts >= ?",
                            (top - ROW_SPAN_MS,)).fetchone()[0]
    return conn.execute("SELECT MAX(ts + span_ms) FROM gpu_samples WHERE gpu_id = ?", (gpu_id,)).fetchone()[0]


_RUN_COLS = "ts, span_ms, n, dts, util, mem_util, mem_used, power, temperature, sm_clock"
_LATEST_ALL = ("SELECT g.id, g.last_seen, " + ", ".join(f"s.{c.strip()}" for c in _RUN_COLS.split(",")) +
               " FROM gpus g CROSS JOIN gpu_samples s ON s.gpu_id = g.id AND s.ts = (SELECT ts FROM gpu_samples "
               "WHERE ts <= g.last_seen AND ts >= g.last_seen - 3600000 AND gpu_id = g.id ORDER BY ts DESC LIMIT 1)")
BATCH = 500                 # GPUs per batched read (well inside SQLite's bound-parameter limit)


def _newest_in(row: tuple, at_ms: int) -> tuple | None:
    """The newest sample at or before `at_ms` in one stored run (ts, span_ms, n, dts, *values):
    (ts, util, mem_util, mem_used, power, temperature, sm_clock)."""
    ts, span, n, dts, *vals = row
    tss = times(ts, span, n, dts)
    k = max((i for i, t in enumerate(tss) if t <= at_ms), default=None)
    if k is None:
        return None
    return (tss[k], *(value_at(c, v, n, r, k) for c, v, r in zip(GPU_CODECS, vals, GPU_REAL, strict=True)))


def latest_of(conn: sqlite3.Connection, gpu_id: int, at_ms: int | None) -> tuple | None:
    """The GPU's newest sample at or before `at_ms` (its gpus.last_seen), looked for in the hour before:
    (ts, util, mem_util, mem_used, power, temperature, sm_clock)."""
    if at_ms is None:
        return None
    row = conn.execute(f"SELECT {_RUN_COLS} FROM gpu_samples WHERE ts <= ? AND ts >= ? AND gpu_id = ? "
                       "ORDER BY ts DESC LIMIT 1", (at_ms, at_ms - 3600_000, gpu_id)).fetchone()
    return None if row is None else _newest_in(row, at_ms)


def latest_all(conn: sqlite3.Connection) -> dict[int, tuple]:
    """latest_of(gpu, gpus.last_seen) for every GPU, in one read (the dashboard asks every tick; a read per GPU
    was most of what a tick cost): {gpu_id: (ts, util, mem_util, mem_used, power, temperature, sm_clock)}."""
    out: dict[int, tuple] = {}
    # CROSS JOIN keeps `gpus` the outer loop (SQLite would otherwise scan every stored sample)
    for gid, last, *row in conn.execute(_LATEST_ALL):
        hit = _newest_in(tuple(row), last)
        if hit is not None:
            out[gid] = hit
    return out


def procs_at(conn: sqlite3.Connection, gpu_id: int, sample_ts: int) -> list[tuple[int, Any, Any]]:
    """[(proc_id, used_memory, sm_util)] of one GPU sample, by proc_id."""
    return procs_at_many(conn, {gpu_id: sample_ts})[gpu_id]


def procs_at_many(conn: sqlite3.Connection, at: dict[int, int]) -> dict[int, list[tuple[int, Any, Any]]]:
    """procs_at for several GPUs ({gpu_id: sample ts}) in one read per BATCH GPUs: {gpu_id: [(proc_id,
    used_memory, sm_util)] by proc_id}, [] for a GPU with no process at that sample. The run holding the sample
    is the newest row of the GPU that starts at or before it within a row's span; without one (the sample's
    row is gone) the process rows stored at the sample's own time are read."""
    out: dict[int, list[tuple[int, Any, Any]]] = {gid: [] for gid in at}
    items = list(at.items())
    for i in range(0, len(items), BATCH):
        chunk = items[i:i + BATCH]
        found: dict[int, tuple[int, int] | None] = {}   # gpu id -> (the sample's index, run length) or None
        for gid, sample_ts, row_ts, span, n, dts, proc, mem, sm in conn.execute(
                f"WITH want(gid, at) AS (VALUES {','.join(['(?,?)'] * len(chunk))}) "
                "SELECT w.gid, w.at, s.ts, s.span_ms, s.n, s.dts, p.proc_id, p.used_memory, p.sm_util FROM want w "
                "LEFT JOIN gpu_samples s ON s.gpu_id = w.gid AND s.ts = (SELECT ts FROM gpu_samples WHERE ts <= w.at "
                f"AND ts > w.at - {ROW_SPAN_MS} AND gpu_id = w.gid ORDER BY ts DESC LIMIT 1) "
                "CROSS JOIN process_samples p ON p.ts = COALESCE(s.ts, w.at) AND p.gpu_id = w.gid "
                "ORDER BY w.gid, p.proc_id", [v for pair in chunk for v in pair]):
            if gid not in found:
                if row_ts is None:
                    row_ts, span, n, dts = sample_ts, 0, 1, None
                tss = times(row_ts, span, n, dts)
                found[gid] = (tss.index(sample_ts), n) if sample_ts in tss else None
            hit = found[gid]
            if hit is not None:
                k, n = hit
                out[gid].append((proc, value_at("big", mem, n, False, k), value_at("B", sm, n, True, k)))
    return out


# -- writing -------------------------------------------------------------------------------------------

class Column:
    """One value column of a run in progress: the plain value while it stays the same, then its packed array,
    appended to sample by sample (the collector's hot path: no re-packing per tick)."""

    __slots__ = ("code", "first", "n", "buf", "base", "unit")

    def __init__(self, code: str, v: Any) -> None:
        self.code, self.first, self.n, self.buf = code, v, 1, None
        self.base, self.unit = v, 0

    def joins(self, v: Any) -> bool:
        if self.buf is None and v == self.first and type(v) is type(self.first):
            return True
        if not fits(self.code, v) or (self.buf is None and not fits(self.code, self.first)):
            return False
        if self.code != "big":
            return True
        if self.buf is None:        # the unit is chosen when the column starts to vary
            return big_fits(self.base if self.base is not None else v, 0, v)
        return big_fits(self.base, self.unit, v)

    def add(self, v: Any) -> None:
        """Append a value that `joins`."""
        if self.buf is None:
            if v == self.first and type(v) is type(self.first):
                self.n += 1
                return
            self._start(v)
        self.buf += self._enc(v)
        self.n += 1

    def _start(self, v: Any) -> None:
        if self.code == "big":
            if self.base is None:
                self.base = v
            mib = _BIG_UNITS[1][0]
            whole = all(x is None or int(x) % mib == 0 for x in (self.base, v))
            self.unit = 1 if whole and big_fits(self.base, 1, v) else 0
            self.buf = bytearray(struct.pack("<qB", int(self.base) if self.base is not None else 0, self.unit))
            self.buf += self._enc(self.first) * self.n
        else:
            self.buf = bytearray(self._enc(self.first) * self.n)

    def _enc(self, v: Any) -> bytes:
        if self.code == "big":
            unit, tc, null = _BIG_UNITS[self.unit]
            return struct.pack("<" + tc, null if v is None else (int(v) - int(self.base)) // unit)
        return struct.pack("<" + self.code, _SMALL[self.code][0] if v is None else int(v))

    def stored(self) -> Any:
        return self.first if self.buf is None else bytes(self.buf)


class Run:
    """A GPU's run in progress (the sampler's memory of the row it extends)."""

    __slots__ = ("ts", "tss", "regular", "cols", "e0", "e1", "procs", "pcols")

    def __init__(self, ts: int, vals: Sequence[Any], energy: Any, procs: dict[int, tuple[Any, Any]]) -> None:
        self.ts = ts
        self.tss = [ts]
        self.regular = True
        self.cols = [Column(c, v) for c, v in zip(GPU_CODECS, vals, strict=True)]
        self.e0 = self.e1 = energy
        self.procs = frozenset(procs)
        self.pcols = {p: (Column("big", m), Column("B", s)) for p, (m, s) in procs.items()}

    def can_take(self, ts: int, vals: Sequence[Any], energy: Any, procs: dict[int, tuple[Any, Any]],
                 cap_ms: float) -> bool:
        tss = self.tss
        dt = ts - tss[-1]
        if dt <= 0 or dt > cap_ms or dt > MAX_STEP_MS or ts // ROW_SPAN_MS != self.ts // ROW_SPAN_MS:
            return False
        if self.e1 is not None and energy is None and len(tss) > 1:   # keep the reading at the last sample
            return False
        if len(procs) != len(self.procs) or (procs and procs.keys() != self.procs):
            return False
        for col, v in zip(self.cols, vals, strict=True):
            if not col.joins(v):
                return False
        for p, (m, s) in procs.items():
            mcol, scol = self.pcols[p]
            if not (mcol.joins(m) and scol.joins(s)):
                return False
        return True

    def take(self, ts: int, vals: Sequence[Any], energy: Any, procs: dict[int, tuple[Any, Any]]) -> bool:
        """Append a sample that `can_take`; returns whether any process row changed."""
        tss = self.tss
        if self.regular and len(tss) >= 2 and ts - tss[-1] != tss[1] - tss[0]:
            self.regular = False
        tss.append(ts)
        for col, v in zip(self.cols, vals, strict=True):
            col.add(v)
        self.e1 = energy
        changed = False
        for p, (m, s) in procs.items():
            mcol, scol = self.pcols[p]
            mcol.add(m)
            scol.add(s)
            changed = changed or mcol.buf is not None or scol.buf is not None
        return changed

    def gpu_row(self, gid: int) -> tuple:
        """(span_ms, n, dts, util, mem_util, mem_used, power, temperature, sm_clock, energy_mj, energy_end, ts,
        gpu_id): the UPDATE's parameters (the INSERT's too)."""
        tss = self.tss
        dts = None if self.regular else array("H", [tss[k + 1] - tss[k] for k in range(len(tss) - 1)]).tobytes()
        c = self.cols
        return (tss[-1] - tss[0], len(tss), dts, c[0].stored(), c[1].stored(), c[2].stored(), c[3].stored(),
                c[4].stored(), c[5].stored(), self.e0, self.e1 if len(tss) > 1 else None, self.ts, gid)

    def proc_rows(self, gid: int) -> list[tuple]:
        """[(used_memory, sm_util, ts, gpu_id, proc_id)]."""
        return [(m.stored(), s.stored(), self.ts, gid, p) for p, (m, s) in self.pcols.items()]


INSERT_GPU = ("INSERT OR IGNORE INTO gpu_samples (span_ms, n, dts, util, mem_util, mem_used, power, temperature, "
              "sm_clock, energy_mj, energy_end, ts, gpu_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)")
UPDATE_GPU = ("UPDATE gpu_samples SET span_ms = ?, n = ?, dts = ?, util = ?, mem_util = ?, mem_used = ?, power = ?, "
              "temperature = ?, sm_clock = ?, energy_mj = ?, energy_end = ? WHERE ts = ? AND gpu_id = ?")
INSERT_PROC = ("INSERT OR REPLACE INTO process_samples (used_memory, sm_util, ts, gpu_id, proc_id) "
               "VALUES (?,?,?,?,?)")
UPDATE_PROC = "UPDATE process_samples SET used_memory = ?, sm_util = ? WHERE ts = ? AND gpu_id = ? AND proc_id = ?"


def run_cap_ms(interval_s: float | None) -> float:
    """The longest step a run may take: the gap rule's (a longer one is a gap, which must lie between rows)."""
    return gap_cap_ms(max(1, int((interval_s or 2.0) * 1000)))


REPACK_CHUNK_MS = 3600_000       # minute-aligned, so no run crosses a chunk: bounded memory per chunk


def repack(conn: sqlite3.Connection, interval_s: float | None, lo_ms: int | None = None, hi_ms: int | None = None,
           max_chunks: int | None = None) -> tuple[int, int, int | None]:
    """Rewrite the raw rows starting in [lo_ms, hi_ms) into runs, an hour at a time, with the sampler's own
    packing (for databases written row per sample; on packed rows it changes nothing). Inside the caller's
    transaction; at most `max_chunks` hours. Returns (samples, rows written, where to go on from or None when
    the range is done)."""
    cap = run_cap_ms(interval_s)
    total = written = chunks = 0
    nxt = conn.execute("SELECT MIN(ts) FROM gpu_samples WHERE ts >= ?", (lo_ms or 0,)).fetchone()[0]
    while nxt is not None and (hi_ms is None or nxt < hi_ms):
        if max_chunks is not None and chunks >= max_chunks:
            return total, written, nxt
        chunks += 1
        lo = nxt // REPACK_CHUNK_MS * REPACK_CHUNK_MS
        hi = lo + REPACK_CHUNK_MS
        if hi_ms is not None:
            hi = min(hi, hi_ms)
        # rows starting in [lo, hi) hold samples only in [lo, hi) when hi is minute-aligned: runs stay in their
        # first sample's minute
        samples = gpu_samples(conn, lo, hi)
        procs: dict[tuple[int, int], dict[int, tuple[Any, Any]]] = {}
        for gid, ts, proc, mem, sm in proc_samples(conn, lo, hi):
            procs.setdefault((gid, ts), {})[proc] = (mem, sm)
        runs: list[tuple[int, Run]] = []
        cur: dict[int, Run] = {}
        for gid, ts, util, mu, mem, power, energy, temp, clock in samples:
            vals = (util, mu, mem, power, temp, clock)
            pr = dict(sorted(procs.get((gid, ts), {}).items()))
            run = cur.get(gid)
            if run is not None and run.can_take(ts, vals, energy, pr, cap):
                run.take(ts, vals, energy, pr)
            else:
                run = cur[gid] = Run(ts, vals, energy, pr)
                runs.append((gid, run))
        conn.execute("DELETE FROM process_samples WHERE ts >= ? AND ts < ?", (lo, hi))
        conn.execute("DELETE FROM gpu_samples WHERE ts >= ? AND ts < ?", (lo, hi))
        runs.sort(key=lambda r: (r[1].ts, r[0]))
        conn.executemany(INSERT_GPU, [run.gpu_row(gid) for gid, run in runs])
        conn.executemany(INSERT_PROC, [row for gid, run in runs for row in run.proc_rows(gid)])
        total += len(samples)
        written += len(runs)
        nxt = conn.execute("SELECT MIN(ts) FROM gpu_samples WHERE ts >= ?", (hi,)).fetchone()[0]
    return total, written, None
