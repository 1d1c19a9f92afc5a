"""Cell-level parsing shared by every export format: nulls, numbers, timestamps, tags.

Columns arrive as pyarrow string arrays (CSV, Parquet and JSONL are all read as text, so one set of rules
applies). The fast path converts a whole column with pyarrow compute; only when that fails do we walk the
column in Python, which both accepts the rarer spellings (US dates, ``... UTC``) and finds the bad row.
"""

from __future__ import annotations

import ast
import calendar
import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuspend.fmt import clean as clean_text

# Every null spelling seen in real exports (FOCUS sample: NULL; spec examples: (null); Python dumps: None).
NULL_MARKERS = ("", "NULL", "null", "(null)", "None", "none", "nan", "NaN")
_NULLSET = pa.array(NULL_MARKERS, pa.string())
# In a number column "nan" is not a null but a bad amount: it would make every total NaN.
_NUM_NULLSET = pa.array([m for m in NULL_MARKERS if m.lower() != "nan"], pa.string())
_NULL_STR = pa.scalar(None, pa.string())


class BadValue(Exception):
    """A cell that cannot be read; `row` is the index inside the batch."""

    def __init__(self, row: int, column: str, value: str, expected: str) -> None:
        self.row, self.column, self.value, self.expected = row, column, value, expected
        super().__init__(f"{column}: cannot read {clean_text(value, 60)!r} as {expected}")


def clean(arr: pa.Array, nulls: pa.Array = _NULLSET) -> pa.Array:
    """Trimmed strings with every null marker turned into a real null."""
    if arr.type != pa.string():
        arr = pc.cast(arr, pa.string())
    trimmed = pc.utf8_trim_whitespace(arr)
    marked = pc.is_in(trimmed, value_set=nulls)
    # if_else copies every string even when no cell is a null marker (most columns): only when one is.
    if not pc.any(marked).as_py():
        return trimmed
    return pc.if_else(marked, _NULL_STR, trimmed)


def text_col(arr: pa.Array | None, n: int) -> list[str | None]:
    if arr is None:
        return [None] * n
    enc = _encoded(arr)
    if enc is None:                               # short, empty or mostly distinct: nothing to share
        return clean(arr).to_pylist()
    # Cleaned per distinct cell, not per cell: a month repeats each text hundreds of times.
    return _spread(clean(enc.dictionary).to_pylist(), enc.indices)


def _encoded(arr: pa.Array) -> pa.DictionaryArray | None:
    """`arr` dictionary-encoded when its distinct values are at most a quarter of its cells, else None."""
    n = len(arr)
    if n < 64 or arr.null_count == n:
        return None
    enc = pc.dictionary_encode(arr)
    return enc if len(enc.dictionary) * 4 <= n else None


def _spread(values: list[Any], indices: pa.Array) -> list[Any]:
    """The value of each index (a null index: None), one shared Python object per distinct value."""
    values.append(None)
    return list(map(values.__getitem__, pc.fill_null(indices, pa.scalar(len(values) - 1, indices.type)).to_pylist()))


def pylist(a: pa.Array) -> list[Any]:
    """`a.to_pylist()`, faster for the repetitive columns billing exports are made of: each distinct value
    becomes one Python object shared by its rows (Arrow's dictionary encoding, then a C-level map), which also
    makes the list cheaper to pickle to the importing process (repeats are memo references) and to keep."""
    n = len(a)
    if a.null_count == n:
        return [None] * n
    enc = _encoded(a)
    if enc is None:                               # short or mostly distinct: nothing to share
        return a.to_pylist()
    return _spread(enc.dictionary.to_pylist(), enc.indices)


def text_first(n: int, *arrs: pa.Array | None) -> list[str | None]:
    """Per row, the first non-null of several text columns (computed in Arrow, not per row in Python)."""
    present = [clean(a) for a in arrs if a is not None]
    if not present:
        return [None] * n
    return pylist(pc.coalesce(*present) if len(present) > 1 else present[0])


# ---------------------------------------------------------------- numbers

_NOT_FINITE = "not a finite number"
_TOO_LARGE = "too large"
# A plain decimal number, ASCII digits only: Python's float() also reads `1_000` and other scripts' digits
# (`١٢٣`), which no export writes and a user would not read as money.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
# No line item costs a quadrillion. A larger amount is a broken cell (or an export in the wrong unit); stored,
# it would make every total of its month meaningless and more than money formatting can write.
MAX_AMOUNT = 1e15


def parse_num(text: str, bound: float | None = None) -> float:
    """A finite number; inf, NaN and overflowing spellings (1e400) are refused: they poison every total. With
    `bound`, magnitudes at or above it are refused too."""
    s = text.strip().replace("\u00a0", "")
    if s.startswith("$"):
        s = s[1:]
    f = float(s)                                      # ValueError: not a number in any spelling
    if not math.isfinite(f):
        raise ValueError(_NOT_FINITE)
    if not _DECIMAL.fullmatch(s):
        raise ValueError("not a number")
    if bound is not None and abs(f) >= bound:
        raise ValueError(_TOO_LARGE)
    return f


def _expected(bound: float | None) -> str:
    return "a finite number" if bound is None else f"a finite amount (below 10^{round(math.log10(bound))})"


def _readable(f: pa.Array, bound: float | None) -> bool:
    """Every non-null cell finite (and below `bound`): computed in Arrow, no pass in Python."""
    if pc.all(pc.is_finite(f)).as_py() is False:      # None: every cell null
        return False
    return bound is None or not (pc.max(pc.abs(f)).as_py() or 0.0) >= bound


def num_col(arr: pa.Array | None, n: int, name: str, bad: list[BadValue],
            bound: float | None = MAX_AMOUNT) -> list[float | None]:
    """Finite floats (None for nulls). Unreadable or non-finite cells, and amounts at or above `bound` (None
    for a quantity: usage in bytes or byte-seconds runs to 1e18), are appended to `bad` and read as None."""
    if arr is None:
        return [None] * n
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type):
        f = pc.cast(arr, pa.float64())                # Parquet: typed already, no text round trip
        if _readable(f, bound):
            return f.to_pylist()
        return [v if v is None or (math.isfinite(v) and (bound is None or abs(v) < bound))
                else _bad_number(bad, i, name, v, bound) for i, v in enumerate(f.to_pylist())]
    a = clean(arr, _NUM_NULLSET)
    try:
        f = pc.cast(a, pa.float64())
        if _readable(f, bound):
            return f.to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out: list[float | None] = []
    for i, v in enumerate(a.to_pylist()):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(parse_num(v, bound))
        except ValueError as exc:
            bad.append(BadValue(i, name, v, "a number" if str(exc) not in (_NOT_FINITE, _TOO_LARGE)
                                else _expected(bound)))
            out.append(None)
    return out


def _bad_number(bad: list[BadValue], i: int, name: str, v: float, bound: float | None) -> None:
    bad.append(BadValue(i, name, str(v), _expected(bound)))
    return None


# ---------------------------------------------------------------- timestamps

_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AP]M))?)?$", re.I)
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z?)?$")


def parse_ts(text: str) -> int:
    """Epoch seconds (UTC) from any timestamp spelling seen in billing exports; a missing offset means UTC."""
    s = text.strip()
    if s.endswith(" UTC"):
        s = s[:-4] + "+00:00"
    m = _US_DATE.match(s)
    if m:
        mo, d, y, hh, mm, ss, ampm = m.groups()
        year = int(y) + (2000 if len(y) == 2 else 0)
        hour = int(hh or 0)
        if ampm:
            hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
        dt = datetime(year, int(mo), int(d), hour, int(mm or 0), int(ss or 0))
        return calendar.timegm(dt.timetuple())
    m = _COMPACT.match(s)
    if m:
        y, mo, d, hh, mm, ss = m.groups()
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
        return calendar.timegm(dt.timetuple())
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


_TS_TYPES = (pa.timestamp("ms", tz="UTC"), pa.timestamp("ms"))
_PER_SECOND = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}
_TS_HINT: dict[str, int] = {}


def _int64(v: int) -> pa.Scalar:
    # Typed: a bare Python int is inferred, and pyarrow's inference looks for python-dateutil on each call
    # (a full sys.path search when it is not installed, ~50 us).
    return pa.scalar(v, pa.int64())


_MS_PER_S = _int64(1000)


def ts_col(arr: pa.Array | None, n: int, name: str, bad: list[BadValue]) -> list[int | None]:
    """Epoch seconds (None for nulls); bad cells go to `bad`."""
    if arr is None:
        return [None] * n
    if pa.types.is_timestamp(arr.type):           # Parquet: instants already (naive ones are UTC)
        per_s = _PER_SECOND[arr.type.unit]
        ticks = pc.cast(arr, pa.int64())
        return (ticks if per_s == 1 else pc.divide(ticks, _int64(per_s))).to_pylist()   # after 1970: floor
    # Billing times repeat (hourly line items): clean and parse each distinct text once and spread it back by
    # index. Arrow's ISO parser costs ~1 us a cell; hashing the column is far cheaper when values repeat.
    enc = _encoded(arr)
    texts = clean(arr if enc is None else enc.dictionary)
    # Try last batch's winning spelling first: a file keeps one timestamp style per column.
    first = _TS_HINT.get(name, 0)
    for k in (first, *(j for j in range(len(_TS_TYPES)) if j != first)):
        try:
            ms = pc.cast(pc.cast(texts, _TS_TYPES[k]), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        _TS_HINT[name] = k
        if enc is not None:
            ms = pc.take(ms, enc.indices)            # null indices (null cells) stay null
        return pc.divide(ms, _MS_PER_S).to_pylist()  # billing times are after 1970: truncation = floor
    a = clean(arr)
    out: list[int | None] = []
    cache: dict[str, int] = {}
    for i, v in enumerate(a.to_pylist()):
        if v is None:
            out.append(None)
            continue
        t = cache.get(v)
        if t is None:
            try:
                t = cache[v] = parse_ts(v)
            except (ValueError, OverflowError):
                bad.append(BadValue(i, name, v, "a date/time"))
                out.append(None)
                continue
        out.append(t)
    return out


# ---------------------------------------------------------------- tags and other JSON-ish cells

def loads_lenient(text: str) -> Any:
    """JSON, JSON without its outer braces (Azure EA tags), or a Python repr (koku's GCP flattening)."""
    s = text.strip()
    try:
        return json.loads(s)
    except RecursionError:                # nested deeper than the interpreter's stack: not a tag set
        raise ValueError("nested too deeply") from None
    except ValueError:
        pass
    if s and s[0] not in "{[":
        try:
            return json.loads("{" + s + "}")
        except RecursionError:
            raise ValueError("nested too deeply") from None
        except ValueError:
            pass
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("not JSON") from None


def tags_json(value: Any) -> str | None:
    """A tags cell -> a JSON object string with scalar values (None when empty).

    Accepts a JSON object, an object without braces, a list of {key, value} records (GCP labels), or a
    list of (key, value) pairs (Parquet maps). Raises ValueError when it is none of those.
    """
    if value is None:
        return None
    obj = loads_lenient(value) if isinstance(value, str) else value
    if isinstance(obj, list):
        pairs: dict[str, Any] = {}
        for item in obj:
            if isinstance(item, dict) and "key" in item:
                pairs[str(item["key"])] = item.get("value")
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs[str(item[0])] = item[1]
            else:
                raise ValueError("not a tag list")
        obj = pairs
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    if not obj:
        return None
    try:
        flat = {str(k): (v if v is None or isinstance(v, (str, int, float, bool)) else json.dumps(v))
                for k, v in obj.items()}
        return json.dumps(flat, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (RecursionError, ValueError):  # a value nested beyond the stack, or NaN: not a tag set
        raise ValueError("not a flat tag set") from None


_TAGS_CACHE: dict[str, str | None] = {}


def _tags_cell(v: str) -> str | None:
    """A well-formed flat JSON object is kept as written (valid JSON already); anything else is rebuilt."""
    if v[0] == "{":
        try:
            obj = json.loads(v)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and not any(isinstance(x, (dict, list)) for x in obj.values()):
            return v if obj else None
    return tags_json(v)


def tags_col(arr: pa.Array | None, n: int, name: str, bad: list[BadValue]) -> list[str | None]:
    if arr is None:
        return [None] * n
    a = clean(arr)
    if a.null_count == len(a):
        return [None] * n
    cache = _TAGS_CACHE               # across batches and files: tag sets repeat across a whole export
    if len(cache) > 200_000:
        cache.clear()
    # Each distinct cell once (dictionary-encoded in Arrow), spread back over the rows by index.
    enc = pc.dictionary_encode(a)
    texts = enc.dictionary.to_pylist()
    out_of: list[str | None] = []
    bad_at: dict[int, str] = {}
    for k, v in enumerate(texts):
        t = cache.get(v, _MISSING)
        if t is _MISSING:
            try:
                cache[v] = t = _tags_cell(v)
            except ValueError:
                bad_at[k] = v
                t = None
        out_of.append(t)
    out_of.append(None)                       # null cells
    idx = pc.fill_null(enc.indices, len(texts)).to_pylist()
    if bad_at:
        bad.extend(BadValue(i, name, bad_at[k], "tags (a JSON object)") for i, k in enumerate(idx) if k in bad_at)
    return list(map(out_of.__getitem__, idx))


_MISSING = object()


def merge_tag_columns(columns: Sequence[tuple[str, list[str | None]]], n: int) -> list[str | None]:
    """One-column-per-tag layouts (CUR `resourceTags/user:env`) -> one JSON object per row."""
    if not columns:
        return [None] * n
    out: list[str | None] = []
    for i in range(n):
        d = {k: vals[i] for k, vals in columns if vals[i] is not None}
        out.append(json.dumps(d, ensure_ascii=False, sort_keys=True) if d else None)
    return out


def mapped(values: list[Any], fn: Callable[[Any], Any]) -> list[Any]:
    """fn of each cell, computed once per distinct value (billing columns repeat the same few values)."""
    of = {v: fn(v) for v in set(values)}
    return list(map(of.__getitem__, values))
