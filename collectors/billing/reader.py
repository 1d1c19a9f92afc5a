"""Stream a billing file (CSV, CSV.gz, Parquet, JSONL/JSONL.gz) as batches of text columns.

Memory stays flat whatever the file size: pyarrow's C CSV reader yields blocks of a few thousand rows,
Parquet is read by record batch, JSONL line by line. Every column is handed on as a pyarrow string array,
so the format modules apply one set of parsing rules whatever the container. Header names never leave
this process as SQL: they are only used as dictionary keys.

When pyarrow rejects a file (bad UTF-8, a short row, a truncated gzip stream) we re-read it with the
Python csv module just far enough to say on which line, so the user gets ``file:line: what``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gpuspend.collectors.billing.normalise import NOT_READ
from gpuspend.errors import DataError

try:
    # mimalloc (pyarrow's default on Linux) keeps ~40 MB of segments resident after the first file; jemalloc
    # returns freed blocks, which keeps a long-running collector's RSS flat (billing.sources re-imports).
    pa.set_memory_pool(pa.jemalloc_memory_pool())
except (NotImplementedError, pa.ArrowException):   # a build without jemalloc: keep the default
    pass

# pyarrow's CSV reader keeps ~36 blocks in flight whatever use_threads says, so memory follows the block size:
# small blocks are read and glued into batches of BATCH_BYTES (the per-batch work of normalising stays amortised).
BLOCK_SIZE = 1 << 18        # bytes per CSV block read by pyarrow (~360 FOCUS rows)
# Bytes of converted CSV columns per batch handed on (~6k FOCUS rows, ~0.85 MB pickled: within the reader
# process's 1 MB pipe). Larger batches spread the per-batch work of normalising thinner (2 MB: ~3% slower).
BATCH_BYTES = 3 << 20
JSON_BATCH = 5000
# Rows per Parquet batch: each batch becomes ~25 Python lists in flight (a few batches at once), so a batch the
# size of a CSV one in pickled bytes (8k CUR rows, ~0.7 MB; 4k FOCUS rows, ~0.6 MB) keeps memory flat; a row
# group is decoded whole anyway. Smaller batches cost more per row (2048: the reader process ~35% slower).
PARQUET_BATCH = 8192
MAX_DEPTH = 32              # JSONL objects nest a few levels (GCP: service.description); deeper is not billing data


@dataclass
class Batch:
    first_line: int                 # file line number of the batch's first row
    columns: list[pa.Array]         # one string array per header column (Parquet: timestamps stay typed)
    num_rows: int
    lines: list[int] | None = None  # exact line numbers when rows are not one per consecutive line (JSONL)

    def line_numbers(self) -> Sequence[int]:
        return self.lines if self.lines is not None else range(self.first_line, self.first_line + self.num_rows)


def unreadable(path: Path, exc: OSError) -> DataError:
    """`file: cannot read it (Permission denied)`: a data error (exit 3), not a usage error."""
    why = exc.strerror or type(exc).__name__
    return DataError(f"cannot read the file ({why})", where=str(path),
                     hint="check its permissions, or fetch the export again")


def sniff(path: Path) -> str:
    """'parquet' | 'jsonl' | 'csv' from the first bytes (gzip looked through)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        return "parquet"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(64)
        except (OSError, EOFError, zlib.error):
            raise DataError("not a readable gzip file", where=f"{path}:1",
                            hint="the download may be incomplete; fetch it again") from None
    else:
        with open(path, "rb") as fh:
            head = fh.read(64)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if stripped.startswith(b"{") else "csv"


def _is_gz(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _decoded_lines(path: Path) -> Iterator[str]:
    """Text lines, decoded one at a time so a bad byte or a cut gzip stream is blamed on its own line."""
    lineno = 0
    try:
        with gzip.open(path, "rb") if _is_gz(path) else open(path, "rb") as raw:
            for lineno, line in enumerate(raw, 1):  # noqa: B007
                try:
                    yield line.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise DataError("not UTF-8 text", where=f"{path}:{lineno}",
                                    hint="re-export the file as UTF-8") from None
    except (EOFError, zlib.error, OSError):      # gzip.BadGzipFile is an OSError
        raise DataError("truncated or corrupt gzip data", where=f"{path}:{lineno + 1}",
                        hint="the download may be incomplete; fetch it again") from None


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if _is_gz(path) else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


class Table:
    """One billing file: `.header` (raw names) and `.batches()`."""

    def __init__(self, path: Path, skip_bad_rows: bool = False) -> None:
        self.path = path
        self.skip_bad_rows = skip_bad_rows
        # CSV records skipped for a wrong field count (--skip-bad-rows), by record number (= line number
        # unless a quoted value spans lines, as everywhere in our line numbering).
        self.skipped: list[int] = []
        try:
            self.kind = sniff(path)
            self.header: list[str] = self._read_header()
        except OSError as exc:            # permission denied, a folder named .csv, a vanished file
            raise unreadable(path, exc) from None

    # ------------------------------------------------------------ header
    def _read_header(self) -> list[str]:
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            try:
                return list(pq.ParquetFile(self.path).schema_arrow.names)
            except (pa.ArrowException, OSError) as exc:
                raise DataError(f"not a readable Parquet file ({type(exc).__name__})", where=f"{self.path}:1",
                                hint="the download may be incomplete; fetch it again") from None
        if self.kind == "jsonl":
            self._json_keys = self._scan_json_keys()
            return self._json_keys
        rd = csv.reader(_decoded_lines(self.path))
        try:
            row = next(rd, None)
            first = next(rd, None)
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", where=f"{self.path}:{rd.line_num}") from None
        if not row or not any(c.strip() for c in row):
            raise DataError("empty file: no header and no rows", where=f"{self.path}:1",
                            hint="check that the export finished writing")
        # Some exports name one more column than their rows carry (koku's CUR sample): read the rows at
        # their own width and treat the trailing header names as absent columns.
        self.width = len(first) if first and 0 < len(first) < len(row) else len(row)
        return row

    def _scan_json_keys(self) -> list[str]:
        """JSONL: nested objects are flattened to dotted names (service.description), lists kept as JSON."""
        keys: dict[str, None] = {}
        for lineno, obj in self._json_rows(limit=JSON_BATCH):
            keys.update(dict.fromkeys(self._flat(lineno, obj)))
        if not keys:
            raise DataError("empty file: no JSON rows", where=f"{self.path}:1")
        return list(keys)

    def _flat(self, lineno: int, obj: dict) -> dict[str, str | None]:
        try:
            return _flatten(obj)
        except ValueError:
            raise DataError("JSON nested too deeply", where=f"{self.path}:{lineno}",
                            hint=f"billing rows nest a few levels; at most {MAX_DEPTH} are read") from None

    def _json_rows(self, limit: int | None = None) -> Iterator[tuple[int, dict]]:
        n = 0
        lineno = 0
        try:
            with _open_text(self.path) as fh:
                for lineno, line in enumerate(fh, 1):  # noqa: B007
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except RecursionError:
                        raise DataError("JSON nested too deeply", where=f"{self.path}:{lineno}",
                                        hint=f"billing rows nest a few levels; at most {MAX_DEPTH} are read") from None
                    except ValueError:
                        raise DataError("not a JSON object", where=f"{self.path}:{lineno}",
                                        hint="JSONL needs one object per line") from None
                    if not isinstance(obj, dict):
                        raise DataError("not a JSON object", where=f"{self.path}:{lineno}")
                    yield lineno, obj
                    n += 1
                    if limit is not None and n >= limit:
                        return
        except UnicodeDecodeError:
            raise DataError("not UTF-8 text", where=f"{self.path}:{lineno + 1}",
                            hint="re-export the file as UTF-8") from None
        except (EOFError, zlib.error, gzip.BadGzipFile):
            raise DataError("truncated or corrupt gzip data", where=f"{self.path}:{lineno + 1}",
                            hint="the download may be incomplete; fetch it again") from None

    # ------------------------------------------------------------ batches
    def batches(self, columns: set[int] | None = None) -> Iterator[Batch]:
        """Every row, in batches. `columns`: the header columns to convert (None: all); the others are
        handed on as normalise.NOT_READ (CSV and Parquet skip them: less parsing and copying)."""
        if self.kind == "parquet":
            yield from self._parquet_batches(columns)
        elif self.kind == "jsonl":
            yield from self._json_batches()
        else:
            yield from self._csv_batches(columns)

    def _csv_batches(self, columns: set[int] | None = None) -> Iterator[Batch]:
        names = [f"c{i}" for i in range(self.width)]     # our own names: the header may repeat or be odd
        wanted = None if columns is None else [i for i in range(self.width) if i in columns]
        read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=BLOCK_SIZE, encoding="utf8",
                                 use_threads=False)   # our own reader thread overlaps parsing with inserts
        skipped: set[int] = set()

        def wrong_width(row: pacsv.InvalidRow) -> str:
            # pyarrow numbers records from 1 with the header as record 1: the same as our line numbers
            number = row.number if row.number is not None else -1 - len(skipped)
            skipped.add(number)
            self.skipped.append(number)
            return "skip"

        parse = pacsv.ParseOptions(newlines_in_values=True,
                                   invalid_row_handler=wrong_width if self.skip_bad_rows else None)
        conv = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                                    quoted_strings_can_be_null=False, null_values=[],
                                    include_columns=[names[i] for i in wanted] if wanted else [])
        line = 2
        try:
            stream = pa.input_stream(str(self.path), compression="gzip" if _is_gz(self.path) else None)
            reader = pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=conv)
            for rb in _glued(reader):
                if wanted:
                    cols: list[Any] = [NOT_READ] * self.width
                    for i, arr in zip(wanted, rb.columns, strict=True):
                        cols[i] = arr
                else:
                    cols = list(rb.columns)
                cols += [pa.nulls(rb.num_rows, pa.string())] * (len(self.header) - self.width)
                if not skipped:
                    yield Batch(line, cols, rb.num_rows)
                    line += rb.num_rows
                    continue
                lines: list[int] = []          # skipped records leave holes in the numbering
                while len(lines) < rb.num_rows:
                    if line not in skipped:
                        lines.append(line)
                    line += 1
                yield Batch(lines[0], cols, rb.num_rows, lines)
        except (pa.ArrowException, OSError, EOFError) as exc:
            self._diagnose(exc)

    def _diagnose(self, exc: BaseException) -> None:
        """pyarrow failed: find the line with the Python reader and raise a DataError naming it."""
        width = self.width
        reader = csv.reader(_decoded_lines(self.path))
        lineno = 1
        try:
            next(reader, None)
            for row in reader:
                lineno = reader.line_num
                if len(row) != width and any(row):
                    raise DataError(f"expected {width} fields, found {len(row)}", where=f"{self.path}:{lineno}",
                                    hint="the row is cut short or has an unquoted comma")
        except csv.Error as e:
            raise DataError(f"malformed CSV: {e}", where=f"{self.path}:{reader.line_num}") from None
        raise DataError(f"cannot read the file ({type(exc).__name__})", where=f"{self.path}:{lineno}",
                        hint="run with --debug for details") from exc

    def _parquet_batches(self, columns: set[int] | None = None) -> Iterator[Batch]:
        import pyarrow.parquet as pq

        line = 1      # Parquet has no lines: report the 1-based row number instead
        width = len(self.header)
        wanted = None if columns is None else [i for i in range(width) if i in columns]
        if len(set(self.header)) != width:        # a repeated name: selecting by name would be ambiguous
            wanted = None
        try:
            pf = pq.ParquetFile(self.path)
            # by index: a Parquet schema may repeat a name, and only the columns read are decoded at all
            for rb in pf.iter_batches(batch_size=PARQUET_BATCH, columns=None if wanted is None else
                                      [pf.schema_arrow.names[i] for i in wanted]):
                if wanted is None:
                    yield Batch(line, [_as_text(c) for c in rb.columns], rb.num_rows)
                else:
                    cols: list[Any] = [NOT_READ] * width
                    for i, arr in zip(wanted, rb.columns, strict=True):
                        cols[i] = _as_text(arr)
                    yield Batch(line, cols, rb.num_rows)
                line += rb.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read Parquet data ({type(exc).__name__})", where=f"{self.path}:{line}",
                            hint="the file may be truncated; fetch it again") from None

    def _json_batches(self) -> Iterator[Batch]:
        keys = self._json_keys
        index = {k: i for i, k in enumerate(keys)}
        rows: list[list[str | None]] = []
        lines: list[int] = []
        for lineno, obj in self._json_rows():
            vals: list[str | None] = [None] * len(keys)
            for k, v in self._flat(lineno, obj).items():
                i = index.get(k)
                if i is not None:
                    vals[i] = v
            rows.append(vals)
            lines.append(lineno)
            if len(rows) >= JSON_BATCH:
                yield _json_batch(lines, rows, len(keys))
                rows, lines = [], []
        if rows:
            yield _json_batch(lines, rows, len(keys))


def _glued(reader: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Consecutive small record batches concatenated into ~BATCH_BYTES ones (same rows, same order)."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for rb in reader:
        if rb.num_rows == 0:
            continue
        pending.append(rb)
        size += rb.nbytes
        if size >= BATCH_BYTES:
            yield _concat(pending)
            pending, size = [], 0
    if pending:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.RecordBatch.from_arrays([pa.concat_arrays([b.column(i) for b in batches])
                                       for i in range(batches[0].num_columns)], schema=batches[0].schema)


def _json_batch(lines: list[int], rows: list[list[str | None]], width: int) -> Batch:
    cols = [pa.array([r[i] for r in rows], pa.string()) for i in range(width)]
    return Batch(lines[0], cols, len(rows), lines)


def _flatten(obj: dict, prefix: str = "", depth: int = 0) -> dict[str, str | None]:
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    out: dict[str, str | None] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + ".", depth + 1))
        elif v is None:
            out[name] = None
        elif isinstance(v, (list, bool)):
            try:
                out[name] = json.dumps(v)
            except RecursionError:
                raise ValueError("nested too deeply") from None
        else:
            out[name] = str(v)
    return out


def _as_text(col: pa.Array) -> pa.Array:
    if pa.types.is_string(col.type):
        return col
    if pa.types.is_large_string(col.type) or pa.types.is_dictionary(col.type):
        return col.cast(pa.string())
    if pa.types.is_timestamp(col.type):
        # Kept typed: values.ts_col reads the instants directly (formatting them as text to parse them back
        # cost ~1 s per 200k rows); anything reading such a column as text gets Arrow's ISO rendering.
        # Naive Parquet timestamps are UTC by convention in billing exports.
        return col
    if pa.types.is_map(col.type):
        text = _map_as_text(col)
        if text is not None:
            return text
    if pa.types.is_nested(col.type) or pa.types.is_map(col.type):
        return pa.array([_json_cell(v) for v in col.to_pylist()], pa.string())
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def _json_cell(v: Any) -> str | None:
    """A nested cell as JSON text; a map (a list of pairs in Python) as an object."""
    if v is None:
        return None
    return json.dumps(v if not isinstance(v, list) or not v or not isinstance(v[0], tuple) else dict(v), default=str)


# Joins a map's keys and values into one text per row (to find its distinct maps), and marks a null value: no AWS
# tag may hold these control characters; a map whose texts hold one is converted row by row instead.
_PAIR, _ENTRY, _NULL_VALUE = "\x1f", "\x1e", "\x1d"


def _map_as_text(col: pa.Array) -> pa.Array | None:
    """A map<string, string> column (CUR 2.0 Parquet's resource_tags) as JSON text, converted once per distinct
    map: a month repeats each resource's tags on every hourly row, and converting every row in Python cost
    ~4 us a row (more than reading the whole file). None when the column is not a map of texts."""
    kt, vt = col.type.key_type, col.type.item_type
    if not all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in (kt, vt)) or len(col) == 0:
        return None
    keys, values = col.keys, col.items          # the whole buffer's: `offsets` index them (a slice's too)
    for texts in (keys, values):
        for mark in (_PAIR, _ENTRY, _NULL_VALUE):
            if pc.any(pc.match_substring(texts, mark)).as_py():
                return None
    pairs = pc.binary_join_element_wise(keys, values, _PAIR, null_handling="replace", null_replacement=_NULL_VALUE)
    offsets = col.offsets
    lo = offsets[0].as_py()
    rows = pa.ListArray.from_arrays(pc.subtract(offsets, pa.scalar(lo, offsets.type)),  # a fresh array: a slice's
                                    pairs.slice(lo, offsets[-1].as_py() - lo), mask=col.is_null())   # cannot mask
    enc = pc.dictionary_encode(pc.binary_join(rows, _ENTRY))
    first = pc.index_in(pa.array(range(len(enc.dictionary)), enc.indices.type), value_set=enc.indices)
    texts = pa.array([_json_cell(col[i].as_py()) for i in first.to_pylist()], pa.string())
    return texts.take(enc.indices)


def header_keys(header: list[str]) -> list[str]:
    """Raw header names -> lookup keys: BOM and spaces stripped, localized 'Label (Key)' -> key, lowercase."""
    import re

    out = []
    for h in header:
        s = h.replace("\ufeff", "").strip()
        m = re.search(r"\(([^()]+)\)\s*$", s)
        if m and not s.startswith("("):
            s = m.group(1).strip()
        out.append(s.lower())
    return out
