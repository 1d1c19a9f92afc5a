"""Import billing exports into `imports` + `charges`: streamed, all-or-nothing, replacing, idempotent.

- One transaction for everything a call imports: a bad row anywhere leaves the database as it was.
- Replacement, not append: rows are grouped into slices by (source, billing account, billing period start).
  A cloud rewrites the month-to-date export several times a day, so one slice holds one export run only.
- Parts and versions: files of one run (a CUR 2.0 `data/` folder copied without `metadata/`, split parts)
  carry different rows; successive runs repeat the same line items. So two files of a slice whose rows
  share line items are versions and the newest wins (latest export time, else latest coverage; a restatement
  reaching as far replaces), whatever the file names; files whose rows are disjoint are parts, all kept.
  A manifest names its run's parts itself. An older version imported after a newer one changes nothing
  (the transaction is rolled back) and is reported as superseded.
- Idempotent: a file whose sha256 is already imported (or a manifest version already imported) is skipped.
- Header text never reaches SQL: all statements are constants here; values go through ? parameters.
"""

from __future__ import annotations

import gc
import hashlib
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from gpuspend import clock
from gpuspend.collectors.billing import detect as detect_mod
from gpuspend.collectors.billing import pipeline
from gpuspend.collectors.billing.manifest import Unit, discover
from gpuspend.collectors.billing.normalise import Cols, Rows, columns_read, normalised
from gpuspend.collectors.billing.prepared import Prepared, prepare, prepared_batch
from gpuspend.collectors.billing.reader import Batch, Table, unreadable
from gpuspend.errors import DataError
from gpuspend.fmt import clean
from gpuspend.store import INTERNED_FIELDS, bump_generation, transaction

MAX_BAD_LINES = 5
_NULL = float("nan")         # binds as SQL NULL (as prepared.prepare binds every None)
TEXTS_CACHED = 50_000        # charge_texts ids an import keeps in memory (a month has a few thousand texts)
ITEMS_CACHED = 50_000        # charge_items ids likewise (a month has a few thousand line items per account)
CACHE_KIB = 16_384           # SQLite page cache during an import (KiB)


@dataclass
class PeriodTotal:
    start: int
    currency: str | None
    billed: float = 0.0
    effective: float = 0.0
    rows: int = 0
    has_billed: bool = False          # any row with a billed cost: an amortized dataset has none (null, not 0)


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
    superseded_by: list[str] = field(default_factory=list)   # newer versions that won over this file
    supersedes: list[str] = field(default_factory=list)      # stored or read files this one replaced
    supersedes_why: dict[str, str] = field(default_factory=dict, repr=False)
    # newer, but only part of its export run: the older run's files that were kept whole instead
    held_by: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)             # why it was superseded or held (evidence)
    notes: list[str] = field(default_factory=list)
    kept_periods: int = 0                                    # slices of this file that were kept
    sha256: str = field(default="", repr=False)

    @property
    def status(self) -> str:
        """imported | unchanged (same bytes or manifest version stored) | superseded (a newer version won) |
        incomplete (newer, but the rest of its export run is missing: the older run was kept whole)."""
        if self.unchanged:
            return "unchanged"
        if self.kept_periods or not (self.superseded_by or self.held_by):
            return "imported"
        return "superseded" if self.superseded_by else "incomplete"

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "format": self.format, "status": self.status, "rows": self.rows,
            "gpu_rows": self.gpu_rows, "skipped_rows": self.skipped_rows, "bad_lines": self.bad_lines,
            "superseded_by": sorted(set(self.superseded_by)), "supersedes": sorted(set(self.supersedes)),
            "kept_instead": sorted(set(self.held_by)), "why": self.why,
            "notes": self.notes, "periods": _merged_periods(self.periods),
        }


def summary_json(results: list[FileResult]) -> dict[str, Any]:
    """`gpuspend import --json`: every file, plus which were kept and which were superseded (by what, and why),
    and which were held back as an incomplete newer run (with the stored run kept instead)."""
    kept = [r.path for r in results if r.status in ("imported", "unchanged")]
    superseded = [{"path": r.path, "by": sorted(set(r.superseded_by)), "why": r.why}
                  for r in results if r.status == "superseded"]
    incomplete = [{"path": r.path, "kept_instead": sorted(set(r.held_by)), "why": r.why}
                  for r in results if r.status == "incomplete"]
    replaced: dict[str, set[str]] = {}
    why: dict[str, str] = {}
    for r in results:
        for old in r.supersedes:
            replaced.setdefault(old, set()).add(r.path)
            if old in r.supersedes_why:
                why.setdefault(old, r.supersedes_why[old])
    read = {str(Path(r.path).resolve()) for r in results}
    superseded += [{"path": old, "by": sorted(by), "why": [why[old]] if old in why else [],
                    "previously_imported": True}
                   for old, by in sorted(replaced.items()) if old not in read]
    return {"files": [r.as_json() for r in results], "kept": kept, "superseded": superseded,
            "incomplete": incomplete, "changed": any(r.status == "imported" for r in results)}


def _merged_periods(periods: list[PeriodTotal]) -> list[dict[str, Any]]:
    """Per (period start day, currency): two sources whose periods start the same day (UTC vs Pacific) merge."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for p in periods:
        day = time.strftime("%Y-%m-%d", time.gmtime(p.start))
        e = out.setdefault((day, p.currency or ""), {"start": day, "currency": p.currency, "billed_cost": [],
                                                     "effective_cost": [], "rows": 0})
        if p.has_billed:
            e["billed_cost"].append(p.billed)
        e["effective_cost"].append(p.effective)
        e["rows"] += p.rows
    for e in out.values():
        e["billed_cost"] = round(math.fsum(e["billed_cost"]), 6) if e["billed_cost"] else None
        e["effective_cost"] = round(math.fsum(e["effective_cost"]), 6)
    return [out[k] for k in sorted(out)]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise unreadable(path, exc) from None
    return h.hexdigest()


class _NothingChanged(Exception):
    """Raised inside the import transaction when every file was an older version: roll back, byte for byte."""


def import_paths(conn: sqlite3.Connection, paths: Sequence[str | Path], *, fmt: str | None = None,
                 skip_bad_rows: bool = False, dataset: str | None = None,
                 now_s: int | None = None, currency: str | None = None) -> list[FileResult]:
    """Import files and export folders in one transaction. Raises DataError (nothing written) on bad input."""
    units: list[Unit] = []
    for p in paths:
        found = discover(Path(p))
        if not found:
            raise DataError("no billing files found here", where=str(p),
                            hint="pass CSV, CSV.gz, Parquet or JSONL files or an export folder")
        units.extend(found)
    return import_units(conn, units, fmt=fmt, skip_bad_rows=skip_bad_rows, dataset=dataset, now_s=now_s,
                        currency=currency)


def import_units(conn: sqlite3.Connection, units: Iterable[Unit], *, fmt: str | None = None,
                 skip_bad_rows: bool = False, dataset: str | None = None,
                 now_s: int | None = None, currency: str | None = None) -> list[FileResult]:
    now = clock.now_s() if now_s is None else now_s
    results: list[FileResult] = []
    slices = _Slices(conn, now)
    # The importer creates every parent `imports` row itself and deletes children explicitly, so the per-row
    # foreign key probe is pure cost on bulk inserts (~15%); a larger page cache keeps the indexes in memory,
    # but it is resident memory too: 16 MB is as fast as 64 MB here (the indexes are rebuilt on bulk imports).
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(f"PRAGMA cache_size = -{int(CACHE_KIB)}")
    units = list(units)
    try:
        with _no_cycle_collection(), transaction(conn):
            rebuild = _drop_indexes_for_bulk(conn, units)
            for unit in units:
                results.extend(_import_unit(conn, unit, fmt, skip_bad_rows, dataset or unit.dataset, slices,
                                            currency))
            for sql in rebuild:        # before resolving versions: it reads charges by import id
                conn.execute(sql)
            changed = _resolve_versions(conn, slices)
            _restate_unchanged(conn, results)
            _reconcile_azure(conn, slices)
            if not changed:
                raise _NothingChanged
            bump_generation(conn)      # readers key what they derive from charges on it
    except _NothingChanged:
        pass                           # only older versions or files already stored: the database is as it was
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if fk else 'OFF'}")
        conn.execute(f"PRAGMA cache_size = {int(cache)}")
    return results


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """An import allocates millions of short-lived lists, tuples and strings that reference counting frees
    (none of them in cycles); the cycle collector's passes over them are pure cost (~5% of a large import).
    Off for the import (and the reader process forked during it), on again after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


BYTES_PER_ROW = 600         # a FOCUS/CUR CSV row is 500-800 bytes: a cheap row estimate from file sizes
BULK_MIN_ROWS = 50_000      # below this, per-row index updates are cheaper than rebuilding


def _drop_indexes_for_bulk(conn: sqlite3.Connection, units: list[Unit]) -> list[str]:
    """When the import is bigger than what is already stored, drop the charges indexes and return their SQL.

    Building an index once over sorted keys after the bulk insert is cheaper than updating it per row
    (~25% of insert time). All inside the import's transaction: readers (WAL) keep the old snapshot, and a
    failure rolls the indexes back with everything else. The SQL comes from sqlite_master, i.e. our schema.
    """
    estimate = sum(_estimate_rows(f) for u in units for f in u.files)
    if estimate < BULK_MIN_ROWS:
        return []
    existing = conn.execute("SELECT COUNT(*) FROM charge_lines").fetchone()[0]
    if estimate <= existing:
        return []
    saved = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'charge_lines' "
                         "AND sql IS NOT NULL ORDER BY name").fetchall()
    for name, _sql in saved:
        conn.execute(f'DROP INDEX "{name}"')
    return [sql for _name, sql in saved]


GZIP_RATIO = 8              # billing CSV compresses ~8-15x: a low guess keeps small gzip files on the usual path


def _estimate_rows(path: Path) -> int:
    """Rows in a file, cheaply: Parquet says so in its footer (and compresses 100x+, so its size says nothing);
    CSV and JSONL from their size."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head == b"PAR1":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # noqa: BLE001 - unreadable or a broken footer: the reader says why, in its own line
        return 0
    return size * (GZIP_RATIO if head[:2] == b"\x1f\x8b" else 1) // BYTES_PER_ROW


SliceKey = tuple[str, str | None, int]


@dataclass
class _Cand:
    """One candidate version of a slice: the rows one unit (a file, or a manifest's files) gave it, or what
    earlier imports stored for it (the stored run: one import row per part)."""

    key: SliceKey
    ids: list[int]
    rows: int
    cov_end: int | None
    export_time: int | None
    mtime: float
    manifest: bool                                   # a manifest names every part of its run itself
    path: str
    results: list[FileResult] = field(default_factory=list)    # new candidates: the files of their unit
    stored: bool = False
    version: str | None = None                       # manifest assemblyId / executionId / runId
    older: frozenset[str] = frozenset()              # versions its export's layout shows as older (AWS)
    paths: dict[int, str] = field(default_factory=dict)          # import id -> file (the stored run's parts)
    items: set[int] = field(default_factory=set)                 # line-item identities (see _line_items)
    part_items: dict[int, set[int]] = field(default_factory=dict)


class _Texts:
    """charge_texts ids of billing texts (store v13), cached for one import call: its transaction is the cache's
    lifetime, since a rollback takes the texts it added back."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.known: dict[str, int] = {}

    def ids(self, values: list[Any]) -> list[Any]:
        """The id of each text (NaN, bound as NULL, for None), adding the texts not stored yet."""
        known = self.known
        if len(known) > TEXTS_CACHED:       # memory stays flat in file size; the rest is one indexed lookup away
            known.clear()
        missing = [v for v in values if v is not None and v not in known]
        for i in range(0, len(missing), 500):
            chunk = missing[i:i + 500]
            known.update(self.conn.execute(
                f"SELECT text, id FROM charge_texts WHERE text IN ({', '.join('?' * len(chunk))})", chunk))
        for v in missing:
            if v not in known:
                known[v] = int(self.conn.execute("INSERT INTO charge_texts (text) VALUES (?)", (v,)).lastrowid)
        return [_NULL if v is None else known[v] for v in values]


class _Slices:
    """import rows created by this call, one per (unit, source, account, billing period start)."""

    def __init__(self, conn: sqlite3.Connection, now: int) -> None:
        self.conn, self.now = conn, now
        self.version: str | None = None
        self.unit = 0
        self.ids: dict[tuple[int, SliceKey], int] = {}
        self.key_of: dict[int, SliceKey] = {}
        self.unit_of: dict[int, int] = {}
        self.stats: dict[int, list[Any]] = {}     # id -> [rows, gpu_rows, coverage_end, period_end, export_time]
        self.kept: set[int] = set()
        self.units: dict[int, tuple[list[FileResult], Unit]] = {}
        self.texts = _Texts(conn)
        self._next_item: int | None = None
        self._items: dict[tuple, int] = {}

    def item_ids(self, fields: tuple[str, ...], items: list[Any], sids: list[int]) -> list[int]:
        """The `charge_items` id of each of a batch's items (row-major `items` of `fields`, item k of slice
        import sids[k]), storing those this import has not stored yet. An item recurs in later batches (the
        next hours of a resource, the next day of a daily export): stored once per import, not once per batch."""
        if self._next_item is None:     # read once per call: its transaction holds the write lock
            self._next_item = int(self.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM charge_items").fetchone()[0])
        known = self._items
        if len(known) > ITEMS_CACHED:   # memory stays flat in file size; an item seen again is stored again
            known.clear()
        w = len(fields)
        ids: list[int] = []
        new: list[list[Any]] = []
        for k, sid in enumerate(sids):
            values = items[k * w:(k + 1) * w]
            key = (fields, sid, *values)
            i = known.get(key)
            if i is None:
                i = known[key] = self._next_item
                self._next_item += 1
                new.append([i, sid, *values])
            ids.append(i)
        if new:
            self.conn.executemany(f"INSERT INTO charge_items (id, import_id, {', '.join(fields)}) VALUES "
                                  f"({', '.join('?' * (w + 2))})", new)
        return ids

    def begin_unit(self, unit: Unit) -> None:
        self.unit += 1
        self.version = unit.version_id

    def id_for(self, key: SliceKey, path: Path, sha: str, fmt: str, bp_end: int | None) -> int:
        sid = self.ids.get((self.unit, key))
        if sid is not None:
            return sid
        source, account, start = key
        # No replacement here: which version of the slice wins is decided once everything is read.
        cur = self.conn.execute(
            "INSERT INTO imports (path, sha256, format, source, account, billing_period_start, billing_period_end, "
            "version_id, rows, gpu_rows, skipped_rows, coverage_end, imported_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, NULL, ?)",
            (str(path.resolve()), sha, fmt, source, account, start, bp_end, self.version, self.now))
        sid = int(cur.lastrowid)
        self.ids[(self.unit, key)] = sid
        self.key_of[sid], self.unit_of[sid] = key, self.unit
        self.stats[sid] = [0, 0, None, bp_end, None]
        return sid

    def unit_ids(self) -> list[int]:
        return [sid for (u, _k), sid in self.ids.items() if u == self.unit]


def _already(conn: sqlite3.Connection, unit: Unit, shas: list[str], fmt: str | None) -> bool:
    """Imported before (same manifest version, or same bytes read as the same format)."""
    if unit.version_id:
        row = conn.execute("SELECT 1 FROM imports WHERE version_id = ? LIMIT 1", (unit.version_id,)).fetchone()
        return row is not None
    row = conn.execute("SELECT format FROM imports WHERE sha256 = ? LIMIT 1", (shas[0],)).fetchone()
    return row is not None and (fmt is None or row[0] == fmt)


def _import_unit(conn: sqlite3.Connection, unit: Unit, fmt: str | None, skip_bad: bool, dataset: str | None,
                 slices: _Slices, currency: str | None) -> list[FileResult]:
    # A large first file's reader process starts before the hashing, so the two overlap. When it cannot even
    # start (a bad header), the file is opened again below, after the unchanged check, and the error is raised
    # in its usual place.
    early = None
    if pipeline.usable(_estimate_rows(unit.files[0])):
        try:
            early = _open(unit.files[0], fmt, skip_bad, dataset, currency)
        except DataError:
            early = None
    try:
        shas = [sha256_file(f) for f in unit.files]
        if _already(conn, unit, shas, fmt):
            return [_unchanged(conn, f, sha) for f, sha in zip(unit.files, shas, strict=True)]
        slices.begin_unit(unit)
        results = [_import_file(conn, early if i == 0 and early is not None else
                                _open(f, fmt, skip_bad, dataset, currency), sha, skip_bad, slices)
                   for i, (f, sha) in enumerate(zip(unit.files, shas, strict=True))]
    finally:
        if early is not None:
            early.batches.close()
    ids = slices.unit_ids()
    for sid in ids:
        if unit.export_time is not None:      # the manifest's run time, when the rows carry none later
            _latest(slices.stats[sid], [unit.export_time])
        rows, gpu_rows, cov, bp_end, export_time = slices.stats[sid]
        conn.execute("UPDATE imports SET rows = ?, gpu_rows = ?, coverage_end = ?, billing_period_end = ?, "
                     "export_time = ? WHERE id = ?", (rows, gpu_rows, cov, bp_end, export_time, sid))
    skipped = sum(r.skipped_rows for r in results)
    if skipped and ids:
        conn.execute("UPDATE imports SET skipped_rows = ? WHERE id = ?", (skipped, min(ids)))
    slices.units[slices.unit] = (results, unit)
    return results


# Share of the smaller candidate's line items found in the other above which the two are versions. Parts of
# one run share (almost) none; successive month-to-date runs share every day the older one had, and a run split
# by time shares at least its boundary day with the older run, so the bar is low.
PART_MAX_SHARED = 0.05
KEY_SAMPLE_ROWS = 200_000  # above this many rows a slice's line items are compared on a 1/16 hash sample
# What identifies a line item across runs. Not amounts or tags: a later run restates those (tags backfilled)
# for the same item, and must still read as a version, not a part.
KEY_FIELDS = ("charge_period_start", "charge_period_end", "charge_category", "charge_type", "service", "sku",
              "sku_description", "resource_id", "region", "unit", "sub_account")


def _key_column(f: str) -> str:
    """A key field in a form that compares equal for equal texts whether stored inline (rows before store
    v13/v14, rows inserted through the `charges` view) or as a `charge_texts` id: the id (an int, looked up by
    text for an inline one), else the inline text itself, which then no id-stored row can share. Reading ids,
    not resolving every row's texts through the view, reads a slice ~2.5x faster."""
    if f not in INTERNED_FIELDS:
        return f
    return f"COALESCE({f}_tid, (SELECT t.id FROM charge_texts t WHERE t.text = r.{f}), {f})"


_KEY_SQL = (f"SELECT {', '.join(map(_key_column, KEY_FIELDS))} FROM charge_rows r "   # our own constant names
            "WHERE import_id = ?")


def _line_items(conn: sqlite3.Connection, ids: list[int], modulus: int) -> set[int]:
    """Identities of a candidate's line items: what a line item is, without its amounts (a later run
    restates amounts of the same item). Hashes live only within this process, like the comparison."""
    out: set[int] = set()
    for i in ids:
        hs = map(hash, conn.execute(_KEY_SQL, (i,)))
        out.update(hs if modulus == 1 else (h for h in hs if h % modulus == 0))
    return out


def _stored_cand(conn: sqlite3.Connection, key: SliceKey, exclude: set[int]) -> _Cand | None:
    """What earlier imports keep for a slice: one run, one import row per part."""
    rows = [r for r in conn.execute(
        "SELECT id, rows, coverage_end, export_time, version_id, path FROM imports "
        "WHERE source = ? AND account IS ? AND billing_period_start = ? ORDER BY id", key) if r[0] not in exclude]
    if not rows:
        return None
    covs = [r[2] for r in rows if r[2] is not None]
    ets = [r[3] for r in rows if r[3] is not None]
    versions = {r[4] for r in rows if r[4]}
    return _Cand(key, [r[0] for r in rows], sum(r[1] for r in rows), max(covs, default=None),
                 max(ets) if len(ets) == len(rows) else None, 0.0, bool(versions), rows[0][5], stored=True,
                 version=next(iter(versions)) if len(versions) == 1 else None, paths={r[0]: r[5] for r in rows})


def _resolve_versions(conn: sqlite3.Connection, slices: _Slices) -> bool:
    """Keep, per slice, one run: the newest complete version and its parts; delete the rest. True when the
    stored rows changed (something new kept, or something stored replaced)."""
    units = slices.units
    by_key: dict[SliceKey, list[_Cand]] = {}
    for sid, key in slices.key_of.items():
        results, unit = units[slices.unit_of[sid]]
        st = slices.stats[sid]
        mtime = max((_mtime(f) for f in unit.files), default=0.0)
        by_key.setdefault(key, []).append(_Cand(key, [sid], st[0], st[2], st[4], mtime, unit.manifest is not None,
                                                results[0].path, results, version=unit.version_id,
                                                older=unit.older))
    new_ids = set(slices.key_of)
    changed = False
    for key, cands in by_key.items():
        stored = _stored_cand(conn, key, new_ids)
        if stored is not None:
            cands.append(stored)
        winners, losers = _choose(conn, cands)
        for c in winners:
            if not c.stored:
                changed = True
                slices.kept.update(c.ids)
                for r in c.results:
                    r.kept_periods += 1
        by = [p for w in winners for p in ([w.path] if not w.stored else w.paths.values())]
        for c, held, why in losers:
            # charges first (one indexed delete), then the import rows
            conn.executemany("DELETE FROM charge_lines WHERE import_id = ?", [(i,) for i in c.ids])
            conn.executemany("DELETE FROM charge_items WHERE import_id = ?", [(i,) for i in c.ids])
            conn.executemany("DELETE FROM imports WHERE id = ?", [(i,) for i in c.ids])
            if c.stored:
                changed = True
                for w in winners:
                    for r in w.results:
                        for old in c.paths.values():
                            r.supersedes.append(old)
                            r.supersedes_why.setdefault(old, why)
            else:
                for r in c.results:
                    (r.held_by if held else r.superseded_by).extend(by)
                    if why not in r.why:
                        r.why.append(why)
    return changed


def _restate_unchanged(conn: sqlite3.Connection, results: list[FileResult]) -> None:
    """A file skipped as already stored whose stored rows a newer file of this same call replaced: superseded."""
    by: dict[str, list[str]] = {}
    for r in results:
        for old in r.supersedes:
            by.setdefault(old, []).append(r.path)
    for r in results:
        if r.unchanged and r.sha256 and conn.execute(
                "SELECT 1 FROM imports WHERE sha256 = ? LIMIT 1", (r.sha256,)).fetchone() is None:
            r.unchanged = False
            r.superseded_by = by.get(str(Path(r.path).resolve()), [])
            if not r.superseded_by:       # the stored copy was imported from another path
                r.superseded_by = sorted({p for ps in by.values() for p in ps})


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _usage_coverage(conn: sqlite3.Connection, ids: list[int]) -> int | None:
    """How far a version reaches: the latest end of its hourly/daily rows. A fee, tax or credit row runs to
    the month end in every version, so the latest end of any row cannot tell two versions apart."""
    best: int | None = None
    for i in ids:
        short, any_end = conn.execute(
            "SELECT MAX(CASE WHEN charge_period_end - charge_period_start <= 86400 THEN charge_period_end END), "
            "MAX(COALESCE(charge_period_end, charge_period_start)) FROM charges WHERE import_id = ?", (i,)).fetchone()
        end = short if short is not None else any_end
        if end is not None and (best is None or end > best):
            best = end
    return best


# Share of an older run's line items a newer run must also carry to replace it as a whole. A newer month-to-date
# run repeats every line item of the older one; a newer run of which only some parts are here does not (the
# missing parts' items are absent), and replacing the older run with it would drop those items' money.
COMPLETE_MIN_SHARED = 0.9


def _shares(mine: set[int], union: set[int]) -> bool:
    """More than a few line items in common: two versions of the same items, not two parts of one run."""
    return len(mine & union) / (min(len(mine), len(union)) or 1) > PART_MAX_SHARED


def _day(ts: int | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _why(new: _Cand, old: _Cand, use_et: bool) -> str:
    """Why `new` counts as the newer version of `old`: the first evidence that tells them apart."""
    if old.version is not None and old.version in new.older | old.older and new.version not in old.older:
        return (f"{clean(old.version, 60)} is an older assembly: its folder lies beside the export's current "
                f"manifest, which names another")
    if use_et and new.export_time != old.export_time:
        return f"the newer one was exported later ({_day(new.export_time)}; the other {_day(old.export_time)})"
    if new.cov_end != old.cov_end:
        return f"the newer one's usage reaches further (to {_day(new.cov_end)}; the other to {_day(old.cov_end)})"
    if len(new.items) != len(old.items):
        return f"the newer one carries more line items over the same days ({len(new.items)} vs {len(old.items)})"
    if old.stored:
        return ("nothing in the files says which is newer (no export time, the same coverage and line items): "
                "the one imported last replaces the stored one (a re-issued export)")
    if new.stored:
        return "the stored version is kept: nothing in the files says the other is newer"
    return ("nothing in the files says which is newer (no export time, the same coverage and line items): of "
            "the files read together, the one with more rows, then the later file time, was kept")


def _choose(conn: sqlite3.Connection, cands: list[_Cand]) -> tuple[list[_Cand], list[tuple[_Cand, bool, str]]]:
    """(the kept run's candidates, [(a candidate not kept, held?, why)]) for one slice.

    Newest first, from what the files carry: a version the export's own layout shows as older (an AWS
    assembly beside the period's current manifest) goes last; then export time when every candidate has
    one; then coverage end (an older month-to-date export reaches less far); then the number of line items
    over the same days (late items, credits). On a full tie nothing in the files tells them apart: the file
    being imported replaces the stored one (a cloud re-issues a period with amounts restated, and says so),
    then more rows, then the later file mtime, among files read together; the `why` of each says which.

    Runs: going down that order, a candidate sharing line items with a run is an older version of it; one
    with different line items is another part of that run (never for manifest runs, whose manifest lists
    every part). The newest run wins if it is complete: a manifest run, or one that carries (nearly) all
    line items of the next older run. A newer run of which only some parts are here is held back (not
    imported) and the older run is kept whole, so no part's money disappears."""
    if len(cands) == 1:
        return cands, []
    for c in cands:
        c.cov_end = _usage_coverage(conn, c.ids)
    modulus = 16 if max(c.rows for c in cands) > KEY_SAMPLE_ROWS else 1
    for c in cands:
        c.part_items = {i: _line_items(conn, [i], modulus) for i in c.ids}
        c.items = set().union(*c.part_items.values())
    older = frozenset().union(*(c.older for c in cands))
    use_et = all(c.export_time is not None for c in cands)

    def newness(c: _Cand) -> tuple:
        return (c.version is None or c.version not in older, (c.export_time if use_et else 0),
                c.cov_end if c.cov_end is not None else -1, len(c.items), not c.stored, c.rows, c.mtime)

    order = sorted(cands, key=newness, reverse=True)
    # A part no other candidate shares line items with says nothing about which run it belongs to by its
    # items: it joins, after the runs are formed, the run it was exported with (same export time, else the
    # same coverage end), else the newest run that takes parts.
    isolated = [c for c in order if not c.manifest
                and not any(d is not c and _shares(c.items, d.items) for d in cands)]
    left = [c for c in order if all(c is not i for i in isolated)]
    runs: list[tuple[list[_Cand], set[int]]] = []
    while left:
        run, union, rest = [left[0]], set(left[0].items), []
        for c in left[1:]:
            if c.manifest or run[0].manifest or _shares(c.items, union):
                rest.append(c)
            else:
                run.append(c)
                union |= c.items
        runs.append((run, union))
        left = rest
    for c in isolated:
        takers = [r for r in runs if not r[0][0].manifest]
        fit = next((r for r in takers if use_et and r[0][0].export_time == c.export_time), None) or next(
            (r for r in takers if r[0][0].cov_end == c.cov_end), None) or (takers[0] if takers else None)
        if fit is None:
            runs.append(([c], set(c.items)))
        else:
            fit[0].append(c)
            fit[1].update(c.items)
    win = 0
    while win + 1 < len(runs):
        run, union = runs[win]
        nxt = runs[win + 1][1]
        if run[0].manifest or len(nxt & union) >= COMPLETE_MIN_SHARED * len(nxt):
            break
        win += 1
    winners = runs[win][0]
    losers: list[tuple[_Cand, bool, str]] = []
    for k, (run, union) in enumerate(runs):
        if k < win:
            why = _held_why(runs[win][0], runs[win][1], union)
            losers.extend((c, True, why) for c in run)
        elif k > win:
            why = _why(winners[0], run[0], use_et)
            losers.extend((c, False, why) for c in run)
    return winners, losers


def _held_why(kept: list[_Cand], kept_items: set[int], newer_items: set[int]) -> str:
    missing = [p for c in kept for i, p in (c.paths.items() if c.stored else [(c.ids[0], c.path)])
               if not _shares(c.part_items.get(i, c.items), newer_items)]
    lost = len(kept_items - newer_items)
    text = (f"part of a newer export run whose other parts are not here: {lost} of the {len(kept_items)} line "
            f"items of the run kept have no newer counterpart")
    if missing:
        text += f" (parts without one: {', '.join(clean(Path(p).name, 80) for p in missing[:5])})"
    return text + "; the older run is kept whole. Import all files of the newer run together, or its manifest"


def _unchanged(conn: sqlite3.Connection, path: Path, sha: str) -> FileResult:
    """Same file again: report what is stored for it, write nothing."""
    fmt_row = conn.execute("SELECT format FROM imports WHERE sha256 = ? LIMIT 1", (sha,)).fetchone()
    res = FileResult(str(path), fmt_row[0] if fmt_row else "unknown", unchanged=True, sha256=sha)
    for start, cur, billed, eff, n, gpu in conn.execute(
            "SELECT c.billing_period_start, c.currency, SUM(c.billed_cost), SUM(c.effective_cost), COUNT(*), "
            "SUM(c.is_gpu) FROM charges c JOIN imports i ON i.id = c.import_id WHERE i.sha256 = ? "
            "GROUP BY c.billing_period_start, c.currency ORDER BY 1, 2", (sha,)):
        res.periods.append(PeriodTotal(start, cur, billed or 0.0, eff or 0.0, n, billed is not None))
        res.rows += n
        res.gpu_rows += gpu or 0
    return res


def _reconcile_azure(conn: sqlite3.Connection, slices: _Slices) -> None:
    """Azure actual + amortised datasets of the same period: effective cost comes from the amortised one only."""
    for sid in sorted(slices.kept):
        source, account, start = slices.key_of[sid]
        if source == "azure-amortized":
            conn.execute("UPDATE charge_lines SET effective_cost = 0 WHERE import_id IN (SELECT id FROM imports WHERE "
                         "source = 'azure-actual' AND account IS ? AND billing_period_start = ?)", (account, start))
        elif source == "azure-actual":
            has = conn.execute("SELECT 1 FROM imports WHERE source = 'azure-amortized' AND account IS ? "
                               "AND billing_period_start = ?", (account, start)).fetchone()
            if has:
                conn.execute("UPDATE charge_lines SET effective_cost = 0 WHERE import_id = ?", (sid,))


def _normalised(table: Table, keys: list[str], mod: Any, ctx: dict[str, Any]
                ) -> Iterator[tuple[Batch, Rows, Prepared | None]]:
    """(batch, normalised rows, prepared rows), read, normalised and prepared one batch ahead in a thread.

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
            for batch in table.batches(columns_read(mod.normalise, keys, table.header, ctx)):
                cols = Cols(keys, table.header, batch.columns, batch.num_rows)
                if not put(prepared_batch(batch, normalised(mod, cols, ctx), table.skip_bad_rows)):
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


@dataclass
class _Opened:
    """A file whose header is read and format detected, and whose rows are being read (thread or process)."""

    path: Path
    table: Table
    verdict: Any
    batches: Any


def _open(path: Path, fmt: str | None, skip_bad: bool, dataset: str | None, currency: str | None) -> _Opened:
    table = Table(path, skip_bad_rows=skip_bad)
    verdict = detect_mod.detect(table.header, f"{path}:1", fmt)
    ctx = {"path": str(path), "dataset": dataset, "currency": currency}
    batches = (pipeline.reader_process(table, verdict.keys, verdict.fmt, ctx) if pipeline.usable(_estimate_rows(path))
               else _normalised(table, verdict.keys, detect_mod.module(verdict.fmt), ctx))
    return _Opened(path, table, verdict, batches)


def _import_file(conn: sqlite3.Connection, opened: _Opened, sha: str, skip_bad: bool, slices: _Slices) -> FileResult:
    path, table, verdict, batches = opened.path, opened.table, opened.verdict, opened.batches
    res = FileResult(str(path), verdict.fmt)
    totals: dict[tuple[int, str | None], PeriodTotal] = {}
    seen_rows = 0
    try:
        for batch, rows, prep in batches:
            seen_rows += batch.num_rows
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
            for note in rows.notes:
                if note not in res.notes:
                    res.notes.append(note)
            if prep is None and rows.data:         # the reader process left the preparing to us
                prep = prepare(rows, batch.line_numbers(), {b.row for b in rows.bad}, slices.texts.ids)
            if prep is not None:
                _insert_batch(conn, prep, path, sha, verdict.fmt, slices, totals, res)
    finally:
        batches.close()           # stops the reader (thread or process) at once on an error
    if table.skipped:                  # rows with the wrong number of fields, dropped by the reader
        res.skipped_rows += len(table.skipped)
        res.bad_lines = sorted(set(res.bad_lines) | {n for n in table.skipped if n > 0})[:MAX_BAD_LINES]
    if seen_rows == 0 and not table.skipped:
        raise DataError("no data rows (header only)", where=f"{path}:2",
                        hint="the export may still be running; import it when it is complete")
    if res.rows == 0:                  # --skip-bad-rows with nothing left: a bad file, not an empty success
        first = res.bad_lines[0] if res.bad_lines else 2
        raise DataError(f"every data row is bad ({res.skipped_rows} skipped), nothing imported",
                        where=f"{path}:{first}", hint="check that this is the export you meant, and fix it")
    res.periods = sorted(totals.values(), key=lambda t: (t.start, t.currency or ""))
    return res


ROWS_PER_INSERT = 32    # rows per INSERT statement: 32 x 9 parameters stays far below SQLite's limit


@lru_cache(maxsize=64)
def _insert_sql(fields: tuple[str, ...], rows: int = 1) -> str:
    """INSERT of `rows` lines naming only `fields` (from ROW_FIELDS, our own constants); the rest take their
    NULL default."""
    cols = ("import_id", "line", "item_id", *fields)
    one = f"({', '.join('?' * len(cols))})"
    return f"INSERT INTO charge_lines ({', '.join(cols)}) VALUES {', '.join([one] * rows)}"


def _insert_rows(conn: sqlite3.Connection, fields: tuple[str, ...], flat: list[Any], n: int) -> None:
    """executemany of a prepared batch's lines (prepared.prepare), with the per-row costs of Python's sqlite3
    taken out: ROWS_PER_INSERT rows per statement (one step, one GIL release and re-take, per 32 rows, not per
    row), each statement's parameters one slice of the row-major list."""
    width = len(fields) + 3
    full = n // ROWS_PER_INSERT * ROWS_PER_INSERT
    step = ROWS_PER_INSERT * width
    if full:
        conn.executemany(_insert_sql(fields, ROWS_PER_INSERT),
                         (flat[i:i + step] for i in range(0, full * width, step)))
    if full < n:
        conn.executemany(_insert_sql(fields), (flat[i:i + width] for i in range(full * width, n * width, width)))


def _insert_batch(conn: sqlite3.Connection, prep: Prepared, path: Path, sha: str, fmt: str, slices: _Slices,
                  totals: dict[tuple[int, str | None], PeriodTotal], res: FileResult) -> None:
    """Insert one prepared batch: its slice keys become `imports` ids, its groups add to the stats and totals."""
    sids = [slices.id_for(k, path, sha, fmt, None) for k in prep.keys]
    width = prep.width
    flat, items, wi = prep.flat, prep.items, len(prep.item_fields)
    for name, values in prep.texts.items():     # batch-local text indices -> charge_texts ids
        j = prep.item_fields.index(name)
        items[j::wi] = list(map(slices.texts.ids(values).__getitem__, items[j::wi]))
    if prep.row_keys is None:
        flat[0::width] = [sids[0]] * prep.n
    else:
        flat[0::width] = list(map(sids.__getitem__, prep.row_keys))
    item_sids = [sids[0]] * prep.n_items if prep.item_keys is None else list(map(sids.__getitem__, prep.item_keys))
    flat[2::width] = list(map(slices.item_ids(prep.item_fields, items, item_sids).__getitem__, flat[2::width]))
    _insert_rows(conn, prep.fields, flat, prep.n)
    for sid, bp_end, export_time in zip(sids, prep.period_end, prep.export_time, strict=True):
        st = slices.stats[sid]
        if st[3] is None:                     # first seen period end per slice
            st[3] = bp_end
        if export_time is not None and (st[4] is None or export_time > st[4]):
            st[4] = export_time               # the slice's export time: the latest one its rows carry
    for g in prep.groups:
        st = slices.stats[sids[g.key]]
        st[0] += g.rows
        st[1] += g.gpu_rows
        if g.coverage_end is not None and (st[2] is None or g.coverage_end > st[2]):
            st[2] = g.coverage_end
        start = prep.keys[g.key][2]
        t = totals.get((start, g.currency))
        if t is None:
            t = totals[(start, g.currency)] = PeriodTotal(start, g.currency)
        t.billed += g.billed
        t.has_billed = t.has_billed or g.has_billed
        t.effective += g.effective
        t.rows += g.rows
        res.rows += g.rows
        res.gpu_rows += g.gpu_rows


def _latest(st: list[Any], export_time: list[int | None]) -> None:
    """The slice's export time: the latest one its rows carry."""
    t = max((x for x in export_time if x is not None), default=None)
    if t is not None and (st[4] is None or t > st[4]):
        st[4] = t
