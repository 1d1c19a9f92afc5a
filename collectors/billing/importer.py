"""Import billing exports into `imports` + `charges`: streamed, all-or-nothing, replacing, idempotent.

- One transaction for everything a call imports: a bad row anywhere leaves the database as it was.
- Replacement, not append: rows are grouped into slices by (source, billing account, billing period start);
  the first time a slice appears in this import, every older import of that slice is deleted. A cloud
  rewrites the month-to-date export several times a day, so this is what keeps totals right.
- Idempotent: a file whose sha256 is already imported (or a manifest version already imported) is skipped.
- Header text never reaches SQL: all statements are constants here; values go through ? parameters.
"""

from __future__ import annotations

import hashlib
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

from gpuspend import clock
from gpuspend.collectors.billing import detect as detect_mod
from gpuspend.collectors.billing.manifest import Unit, discover
from gpuspend.collectors.billing.normalise import FIELDS, Cols
from gpuspend.collectors.billing.reader import Batch, Table
from gpuspend.errors import DataError
from gpuspend.fmt import clean
from gpuspend.store import bump_generation, transaction

MAX_BAD_LINES = 5
_I = {f: i for i, f in enumerate(FIELDS)}


@dataclass
class PeriodTotal:
    start: int
    currency: str | None
    billed: float = 0.0
    effective: float = 0.0
    rows: int = 0


@dataclass
class FileResult:
    path: str
    format: str
    rows: int = 0
    gpu_rows: int = 0
    skipped_rows: int = 0
    bad_lines: list[int] = field(default_factory=list)
    periods: list[PeriodTotal] = field(default_factory=list)
    unchanged: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "format": self.format, "rows": self.rows, "gpu_rows": self.gpu_rows,
            "skipped_rows": self.skipped_rows,
            "periods": _merged_periods(self.periods),
        }


def _merged_periods(periods: list[PeriodTotal]) -> list[dict[str, Any]]:
    """Per (period start day, currency): two sources whose periods start the same day (UTC vs Pacific) merge."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for p in periods:
        day = time.strftime("%Y-%m-%d", time.gmtime(p.start))
        e = out.setdefault((day, p.currency or ""), {"start": day, "currency": p.currency, "billed_cost": [],
                                                     "effective_cost": [], "rows": 0})
        e["billed_cost"].append(p.billed)
        e["effective_cost"].append(p.effective)
        e["rows"] += p.rows
    for e in out.values():
        e["billed_cost"] = round(math.fsum(e["billed_cost"]), 6)
        e["effective_cost"] = round(math.fsum(e["effective_cost"]), 6)
    return [out[k] for k in sorted(out)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_paths(conn: sqlite3.Connection, paths: Sequence[str | Path], *, fmt: str | None = None,
                 skip_bad_rows: bool = False, dataset: str | None = None,
                 now_s: int | None = None) -> list[FileResult]:
    """Import files and export folders in one transaction. Raises DataError (nothing written) on bad input."""
    units: list[Unit] = []
    for p in paths:
        found = discover(Path(p))
        if not found:
            raise DataError("no billing files found here", where=str(p),
                            hint="pass CSV, CSV.gz, Parquet or JSONL files or an export folder")
        units.extend(found)
    return import_units(conn, units, fmt=fmt, skip_bad_rows=skip_bad_rows, dataset=dataset, now_s=now_s)


def import_units(conn: sqlite3.Connection, units: Iterable[Unit], *, fmt: str | None = None,
                 skip_bad_rows: bool = False, dataset: str | None = None,
                 now_s: int | None = None) -> list[FileResult]:
    now = clock.now_s() if now_s is None else now_s
    results: list[FileResult] = []
    # The importer creates every parent `imports` row itself and deletes children explicitly, so the per-row
    # foreign key probe is pure cost on bulk inserts (~15%); a larger page cache keeps the indexes in memory.
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA cache_size = -65536")
    units = list(units)
    try:
        with transaction(conn):
            rebuild = _drop_indexes_for_bulk(conn, units)
            for unit in units:
                results.extend(_import_unit(conn, unit, fmt, skip_bad_rows, dataset or unit.dataset, now))
            if not all(r.unchanged for r in results):
                bump_generation(conn)      # readers key what they derive from charges on it

            for sql in rebuild:
                conn.execute(sql)
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if fk else 'OFF'}")
        conn.execute(f"PRAGMA cache_size = {int(cache)}")
    return results


BYTES_PER_ROW = 600         # a FOCUS/CUR CSV row is 500-800 bytes: a cheap row estimate from file sizes
BULK_MIN_ROWS = 50_000      # below this, per-row index updates are cheaper than rebuilding


def _drop_indexes_for_bulk(conn: sqlite3.Connection, units: list[Unit]) -> list[str]:
    """When the import is bigger than what is already stored, drop the charges indexes and return their SQL.

    Building an index once over sorted keys after the bulk insert is cheaper than updating it per row
    (~25% of insert time). All inside the import's transaction: readers (WAL) keep the old snapshot, and a
    failure rolls the indexes back with everything else. The SQL comes from sqlite_master, i.e. our schema.
    """
    estimate = sum(f.stat().st_size for u in units for f in u.files) // BYTES_PER_ROW
    if estimate < BULK_MIN_ROWS:
        return []
    existing = conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0]
    if estimate <= existing:
        return []
    saved = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'charges' "
                         "AND sql IS NOT NULL ORDER BY name").fetchall()
    for name, _sql in saved:
        conn.execute(f'DROP INDEX "{name}"')
    return [sql for _name, sql in saved]


class _Slices:
    """import rows created by this call, one per (source, account, billing period start)."""

    def __init__(self, conn: sqlite3.Connection, now: int, version: str | None) -> None:
        self.conn, self.now, self.version = conn, now, version
        self.ids: dict[tuple[str, str | None, int], int] = {}
        self.stats: dict[int, list[Any]] = {}     # id -> [rows, gpu_rows, coverage_end, period_end]

    def id_for(self, key: tuple[str, str | None, int], path: Path, sha: str, fmt: str, bp_end: int | None) -> int:
        sid = self.ids.get(key)
        if sid is not None:
            return sid
        source, account, start = key
        old = [r[0] for r in self.conn.execute(
            "SELECT id FROM imports WHERE source = ? AND account IS ? AND billing_period_start = ?",
            (source, account, start))]
        if old:      # replacement: charges first (one indexed delete), then the import rows
            self.conn.executemany("DELETE FROM charges WHERE import_id = ?", [(i,) for i in old])
            self.conn.executemany("DELETE FROM imports WHERE id = ?", [(i,) for i in old])
        cur = self.conn.execute(
            "INSERT INTO imports (path, sha256, format, source, account, billing_period_start, billing_period_end, "
            "version_id, rows, gpu_rows, skipped_rows, coverage_end, imported_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, NULL, ?)",
            (str(path.resolve()), sha, fmt, source, account, start, bp_end, self.version, self.now))
        sid = int(cur.lastrowid)
        self.ids[key] = sid
        self.stats[sid] = [0, 0, None, bp_end]
        return sid


def _already(conn: sqlite3.Connection, unit: Unit, shas: list[str], fmt: str | None) -> bool:
    """Imported before (same manifest version, or same bytes read as the same format)."""
    if unit.version_id:
        row = conn.execute("SELECT 1 FROM imports WHERE version_id = ? LIMIT 1", (unit.version_id,)).fetchone()
        return row is not None
    row = conn.execute("SELECT format FROM imports WHERE sha256 = ? LIMIT 1", (shas[0],)).fetchone()
    return row is not None and (fmt is None or row[0] == fmt)


def _import_unit(conn: sqlite3.Connection, unit: Unit, fmt: str | None, skip_bad: bool, dataset: str | None,
                 now: int) -> list[FileResult]:
    shas = [sha256_file(f) for f in unit.files]
    if _already(conn, unit, shas, fmt):
        return [_unchanged(conn, f, sha) for f, sha in zip(unit.files, shas, strict=True)]
    slices = _Slices(conn, now, unit.version_id)
    results = [_import_file(conn, f, sha, fmt, skip_bad, dataset, slices)
               for f, sha in zip(unit.files, shas, strict=True)]
    for sid, (rows, gpu_rows, cov, bp_end) in slices.stats.items():
        conn.execute("UPDATE imports SET rows = ?, gpu_rows = ?, coverage_end = ?, billing_period_end = ? "
                     "WHERE id = ?", (rows, gpu_rows, cov, bp_end, sid))
    skipped = sum(r.skipped_rows for r in results)
    if skipped and slices.ids:
        conn.execute("UPDATE imports SET skipped_rows = ? WHERE id = ?", (skipped, min(slices.ids.values())))
    _reconcile_azure(conn, slices)
    return results


def _unchanged(conn: sqlite3.Connection, path: Path, sha: str) -> FileResult:
    """Same file again: report what is stored for it, write nothing."""
    fmt_row = conn.execute("SELECT format FROM imports WHERE sha256 = ? LIMIT 1", (sha,)).fetchone()
    res = FileResult(str(path), fmt_row[0] if fmt_row else "unknown", unchanged=True)
    for start, cur, billed, eff, n, gpu in conn.execute(
            "SELECT c.billing_period_start, c.currency, SUM(c.billed_cost), SUM(c.effective_cost), COUNT(*), "
            "SUM(c.is_gpu) FROM charges c JOIN imports i ON i.id = c.import_id WHERE i.sha256 = ? "
            "GROUP BY c.billing_period_start, c.currency ORDER BY 1, 2", (sha,)):
        res.periods.append(PeriodTotal(start, cur, billed or 0.0, eff or 0.0, n))
        res.rows += n
        res.gpu_rows += gpu or 0
    return res


def _reconcile_azure(conn: sqlite3.Connection, slices: _Slices) -> None:
    """Azure actual + amortised datasets of the same period: effective cost comes from the amortised one only."""
    for source, account, start in slices.ids:
        if source == "azure-amortized":
            conn.execute("UPDATE charges SET effective_cost = 0 WHERE import_id IN (SELECT id FROM imports WHERE "
                         "source = 'azure-actual' AND account IS ? AND billing_period_start = ?)", (account, start))
        elif source == "azure-actual":
            has = conn.execute("SELECT 1 FROM imports WHERE source = 'azure-amortized' AND account IS ? "
                               "AND billing_period_start = ?", (account, start)).fetchone()
            if has:
                conn.execute("UPDATE charges SET effective_cost = 0 WHERE import_id = ?",
                             (slices.ids[(source, account, start)],))


def _normalised(table: Table, keys: list[str], mod: Any, ctx: dict[str, Any]) -> Iterator[tuple[Batch, Any]]:
    """(batch, normalised rows), read and normalised one batch ahead in a thread.

    pyarrow (reading, casts) and SQLite (executemany's steps) both release the GIL, so reading batch k+1
    overlaps inserting batch k. Errors in the reader thread are re-raised here, in order.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in table.batches():
                cols = Cols(keys, table.header, batch.columns, batch.num_rows)
                if not put((batch, mod.normalise(cols, ctx))):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=produce, name="billing-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _import_file(conn: sqlite3.Connection, path: Path, sha: str, fmt: str | None, skip_bad: bool,
                 dataset: str | None, slices: _Slices) -> FileResult:
    table = Table(path)
    verdict = detect_mod.detect(table.header, f"{path}:1", fmt)
    mod = detect_mod.module(verdict.fmt)
    res = FileResult(str(path), verdict.fmt)
    ctx = {"path": str(path), "dataset": dataset}
    totals: dict[tuple[int, str | None], PeriodTotal] = {}
    seen_rows = 0
    for batch, rows in _normalised(table, verdict.keys, mod, ctx):
        seen_rows += batch.num_rows
        skip: set[int] = set()
        if rows.bad:
            first = min(rows.bad, key=lambda b: b.row)
            if not skip_bad:
                col = clean(first.column, 60)          # header text is outside data too
                raise DataError(f"{col}: cannot read {clean(first.value, 60)!r} as {first.expected}"
                                if first.value else f"{col}: missing {first.expected}",
                                where=f"{path}:{batch.line_numbers()[first.row]}",
                                hint="fix the row, or pass --skip-bad-rows to import the rest")
            skip = {b.row for b in rows.bad}
            for r in sorted(skip):
                if len(res.bad_lines) < MAX_BAD_LINES:
                    res.bad_lines.append(batch.line_numbers()[r])
            res.skipped_rows += len(skip)
        _insert_batch(conn, rows, skip, batch.line_numbers(), path, sha, verdict.fmt, slices, totals, res)
    if seen_rows == 0:
        raise DataError("no data rows (header only)", where=f"{path}:2",
                        hint="the export may still be running; import it when it is complete")
    res.periods = sorted(totals.values(), key=lambda t: (t.start, t.currency or ""))
    return res


_NAN = float("nan")
ROWS_PER_INSERT = 32    # rows per INSERT statement: 32 x 27 parameters stays far below SQLite's limit


@lru_cache(maxsize=64)
def _insert_sql(fields: tuple[str, ...], rows: int = 1) -> str:
    """INSERT of `rows` rows naming only `fields` (all from FIELDS, our own constants); the rest take
    their NULL default."""
    cols = ("import_id", "line", *fields)
    one = f"({', '.join('?' * len(cols))})"
    return f"INSERT INTO charges ({', '.join(cols)}) VALUES {', '.join([one] * rows)}"


def _insert_rows(conn: sqlite3.Connection, ids: Sequence[int], lines: Sequence[int], cols: list[list[Any]]) -> None:
    """executemany, with the per-cell and per-row costs of Python's sqlite3 taken out (same stored rows):
    - a column empty in the whole batch is left out of the INSERT (its default is NULL);
    - other Nones are bound as NaN, which SQLite stores as NULL: a float binds ~5x faster than None
      (None goes through the adapter protocol lookup on every cell);
    - ROWS_PER_INSERT rows per statement: each step releases and re-takes the GIL, and with the reader
      thread running Python every re-take waits; one step per 32 rows instead of per row."""
    keep = [(f, c) for f, c in zip(FIELDS, cols, strict=True) if not (c[0] is None and c.count(None) == len(c))]
    fields = tuple(f for f, _c in keep)
    rows = list(zip(ids, lines, *(_sql_nulls(c) for _f, c in keep), strict=True))
    full = len(rows) // ROWS_PER_INSERT * ROWS_PER_INSERT
    if full:
        flat = list(chain.from_iterable(rows[:full]))
        k = ROWS_PER_INSERT * (len(fields) + 2)
        conn.executemany(_insert_sql(fields, ROWS_PER_INSERT), [flat[i:i + k] for i in range(0, len(flat), k)])
    if full < len(rows):
        conn.executemany(_insert_sql(fields), rows[full:])


def _sql_nulls(col: list[Any]) -> list[Any]:
    if None not in col:                       # C-speed scan
        return col
    return [_NAN if v is None else v for v in col]


def _insert_batch(conn: sqlite3.Connection, rows: Any, skip: set[int], lines: Sequence[int], path: Path, sha: str,
                  fmt: str, slices: _Slices, totals: dict[tuple[int, str | None], PeriodTotal],
                  res: FileResult) -> None:
    """Insert one normalised batch; column-wise work (no per-row Python beyond building the tuples)."""
    d = rows.data
    n = rows.n
    cols = [d[f] for f in FIELDS]
    source = rows.source
    if skip:
        keep = [i for i in range(n) if i not in skip]
        cols = [[c[i] for i in keep] for c in cols]
        lines = [lines[i] for i in keep]
        source = [source[i] for i in keep]
        n = len(keep)
    if n == 0:
        return
    col = dict(zip(FIELDS, cols, strict=True))
    acct, bp_start, bp_end = col["billing_account"], col["billing_period_start"], col["billing_period_end"]
    is_gpu, billed, eff, cur = col["is_gpu"], col["billed_cost"], col["effective_cost"], col["currency"]
    if len(set(source)) == 1 and len(set(acct)) == 1 and len(set(bp_start)) == 1 and len(set(cur)) == 1:
        # The usual batch: one slice, one currency. Whole-column C-speed work, no per-row tuples.
        key = (source[0], acct[0], bp_start[0])
        sid = slices.id_for(key, path, sha, fmt, None)
        st = slices.stats[sid]
        if st[3] is None:                     # first seen period end per slice
            st[3] = next((e for e in bp_end if e is not None), None)
        _insert_rows(conn, [sid] * n, lines, cols)
        _tally(st, totals, key[2], cur[0], is_gpu, col["charge_period_start"], col["charge_period_end"],
               billed, eff)
        res.rows += n
        res.gpu_rows += sum(is_gpu)
        return
    keys = list(zip(source, acct, bp_start, strict=True))
    sid_of = {k: slices.id_for(k, path, sha, fmt, None) for k in dict.fromkeys(keys)}
    ids = list(map(sid_of.__getitem__, keys))
    for sid in sid_of.values():               # first seen period end per slice
        st = slices.stats[sid]
        if st[3] is None:
            st[3] = next((e for i, e in zip(ids, bp_end, strict=True) if i == sid and e is not None), None)
    _insert_rows(conn, ids, lines, cols)
    start_of = {sid: k[2] for k, sid in sid_of.items()}
    groups: dict[tuple[int, str | None], list[int]] = {}
    for i, g in enumerate(zip(ids, cur, strict=True)):
        groups.setdefault(g, []).append(i)
    starts, ends = col["charge_period_start"], col["charge_period_end"]
    for (sid, c), ix in groups.items():
        def take(values: list[Any], ix: list[int] = ix) -> list[Any]:
            return [values[i] for i in ix]

        _tally(slices.stats[sid], totals, start_of[sid], c, take(is_gpu), take(starts), take(ends), take(billed),
               take(eff))
    res.rows += n
    res.gpu_rows += sum(is_gpu)


def _tally(st: list[Any], totals: dict[tuple[int, str | None], PeriodTotal], start: int, currency: str | None,
           is_gpu: list[int], starts: list[Any], ends: list[Any], billed: list[Any], eff: list[Any]) -> None:
    """Add one (slice, currency) group to the slice stats and the period totals."""
    st[0] += len(is_gpu)
    st[1] += sum(is_gpu)
    if None in ends:                          # coverage: charge period end, else its start
        ends = [e if e is not None else s for s, e in zip(starts, ends, strict=True)]
        cov = max((e for e in ends if e is not None), default=None)
    else:
        cov = max(ends, default=None)
    if cov is not None and (st[2] is None or cov > st[2]):
        st[2] = cov
    t = totals.get((start, currency))
    if t is None:
        t = totals[(start, currency)] = PeriodTotal(start, currency)
    # fsum per batch then per file: exact enough for 6 decimals on millions of rows
    t.billed += math.fsum(billed if None not in billed else (x for x in billed if x is not None))
    t.effective += math.fsum(eff if None not in eff else (x for x in eff if x is not None))
    t.rows += len(is_gpu)
