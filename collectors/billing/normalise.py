"""The common shape every format is normalised to (FOCUS meanings), and the checks and GPU marking applied to it.

A format module turns one batch of text columns into `Rows`: one Python list per canonical field (the
`charges` columns), plus the replacement key parts (`source`, `billing_account`, `billing_period_start`).
`finish()` then applies what is common: required values, GPU marking from the data catalog, bad-row
collection. Nothing here knows about SQL.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter, lt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gpuspend.collectors.billing import gpu_catalog
from gpuspend.collectors.billing.values import BadValue
from gpuspend.fmt import clean, currency_code

# Canonical fields in `charges` column order (line and import_id are added by the importer).
FIELDS: tuple[str, ...] = (
    "billing_account", "sub_account", "billing_period_start", "billing_period_end",
    "charge_period_start", "charge_period_end", "charge_category", "charge_class", "charge_type", "charge_frequency",
    "billed_cost", "effective_cost", "list_cost", "currency",
    "service", "sku", "sku_description", "resource_id", "instance_type", "region", "quantity", "unit", "tags",
    "is_gpu", "gpu_model", "gpu_count",
)


class NotRead:
    """Stands for a column the reader skipped because the format never reads it (see columns_read)."""


NOT_READ = NotRead()


class _Recording(list):
    """The column list of a dry run: remembers which columns a format reads."""

    def __init__(self, items: Sequence[Any]) -> None:
        super().__init__(items)
        self.read: set[int] = set()

    def __getitem__(self, i: Any) -> Any:
        self.read.add(i)
        return super().__getitem__(i)


class Cols:
    """Column access by normalised header key; a format asks for the first of several spellings."""

    def __init__(self, keys: Sequence[str], raw: Sequence[str], arrays: Sequence[pa.Array], n: int) -> None:
        self.index: dict[str, int] = {}
        for i, k in enumerate(keys):
            self.index.setdefault(k, i)       # a repeated header name: the first one wins
        self.keys, self.raw, self.arrays, self.n = list(keys), list(raw), arrays, n

    def get(self, *names: str) -> pa.Array | None:
        for name in names:
            i = self.index.get(name)
            if i is not None:
                a = self.arrays[i]
                if a is NOT_READ:             # columns_read() missed it: a bug, never a silent empty column
                    raise RuntimeError(f"column {name!r} was not read")
                return a
        return None

    def name(self, *names: str) -> str:
        """The file's own spelling of the first present column (for error messages)."""
        for name in names:
            i = self.index.get(name)
            if i is not None:
                return self.raw[i].replace("\ufeff", "").strip()
        return names[0]

    def has(self, name: str) -> bool:
        return name in self.index


def columns_read(normalise: Callable[[Cols, dict[str, Any]], Any], keys: Sequence[str], raw: Sequence[str],
                 ctx: dict[str, Any]) -> set[int] | None:
    """Which header columns `normalise` reads, from a dry run on no rows; None (read them all) if it cannot
    tell. Formats decide what to read from the header alone (never from the values), so the set is exact;
    the reader then skips converting the others (a FOCUS export has ~45 columns, ~23 of them read)."""
    rec = _Recording([pa.array([], pa.string())] * len(keys))
    try:
        normalise(Cols(keys, raw, rec, 0), dict(ctx))
    except Exception:  # noqa: BLE001 - a format that cannot run on no rows: read every column
        return None
    return {i for i in rec.read if isinstance(i, int)}


@dataclass
class Rows:
    n: int
    data: dict[str, list[Any]]
    source: list[str]
    gpu_texts: list[list[str | None]] = field(default_factory=list)   # extra texts for GPU marking
    bad: list[BadValue] = field(default_factory=list)
    # When the export wrote this row (FOCUS x_ExportDateTime, GCP export_time): tells versions from parts.
    export_time: list[int | None] | None = None
    notes: list[str] = field(default_factory=list)       # said once per file (e.g. where a currency came from)
    # Itemized (see itemize): `data` holds what varies per row (its hour, its amounts), `items` every other field
    # once per distinct line item, `item_of` each row's item. `gpu_texts` are then per item, and so is a
    # BadValue's row in `item_bad` until finish() spreads it over the item's rows.
    items: dict[str, list[Any]] | None = None
    item_of: list[int] | None = None
    item_bad: list[BadValue] = field(default_factory=list)

    def values_of(self, name: str) -> tuple[list[Any], bool]:
        """(the values of a canonical field, whether they are per item)."""
        if name in self.data or self.items is None:
            return self.data[name], False
        return self.items[name], True

    def per_row(self, name: str) -> list[Any]:
        """A field's value on every row, per-item fields spread over their rows (C-speed map)."""
        values, per_item = self.values_of(name)
        return spread(values, self.item_of) if per_item else values


def spread(values: list[Any], item_of: list[int] | None) -> list[Any]:
    """Per-item values on every row (item_of None: they are per row already)."""
    return values if item_of is None else list(map(values.__getitem__, item_of))


# A batch is itemized when its distinct line items are at most this share of its rows: a month's export repeats
# each resource's line item every hour, so the fields describing an item (account, service, SKU, resource, tags,
# GPU verdict) are read, checked and classified once per item, and only the hours and amounts per row.
ITEM_MAX_SHARE = 0.25
ITEMIZE_MIN_ROWS = 256          # below, the per-column Arrow work costs more than it saves
_KEY_SPAN = 1 << 62


def itemize(c: Cols, row_columns: frozenset[str]) -> tuple[Cols, list[int]] | None:
    """(the batch's distinct line items, one row each, and each row's item index) from the columns read that
    are not `row_columns` (a format's per-row columns: amounts, usage times), or None when the rows are not
    that repetitive. In Arrow: each column dictionary-encoded, its codes folded into one key per row (a column
    with one value in the whole batch adds nothing), re-encoded whenever the key could overflow and at the
    end (first seen first), so the first row of each item is its row in the file."""
    n = c.n
    if n < ITEMIZE_MIN_ROWS:
        return None
    key: pa.Array | None = None
    span = 1                                  # the key's values are below this
    for k, a in zip(c.keys, c.arrays, strict=True):
        if a is NOT_READ or k in row_columns:
            continue
        enc = pc.dictionary_encode(a)
        card, codes = len(enc.dictionary), enc.indices
        if codes.null_count:
            codes = pc.fill_null(codes, pa.scalar(card, codes.type))
            card += 1
        if card == 1:
            continue
        if card > n * ITEM_MAX_SHARE:
            return None
        codes = codes.cast(pa.int64())
        if key is None:
            key, span = codes, card
            continue
        if span * card >= _KEY_SPAN:          # folded further, the key could overflow int64: compact it first
            enc = pc.dictionary_encode(key)
            key, span = enc.indices.cast(pa.int64()), len(enc.dictionary)
            if span > n * ITEM_MAX_SHARE:
                return None
        key = pc.add(pc.multiply(key, pa.scalar(card, pa.int64())), codes)
        span *= card
    if key is None:                           # every column read has one value: the whole batch is one item
        return Cols(c.keys, c.raw, [a if a is NOT_READ else a.slice(0, 1) for a in c.arrays], 1), [0] * n
    enc = pc.dictionary_encode(key)
    m = len(enc.dictionary)
    if m > n * ITEM_MAX_SHARE:
        return None
    ids = enc.indices
    first = pc.index_in(pa.array(range(m), ids.type), value_set=ids)
    arrays = [a if a is NOT_READ else a.take(first) for a in c.arrays]
    return Cols(c.keys, c.raw, arrays, m), ids.to_pylist()


def normalised(mod: Any, c: Cols, ctx: dict[str, Any]) -> Rows:
    """A batch normalised by format module `mod`: itemized where the format says which of its columns vary
    per row (ROW_COLUMNS) and the batch repeats its line items, else row by row."""
    row_columns = getattr(mod, "ROW_COLUMNS", None)
    found = itemize(c, row_columns) if row_columns else None
    return mod.normalise(c, ctx) if found is None else mod.normalise(c, ctx, found)


def charge_frequency(category: list[Any], frequency: list[Any]) -> list[Any]:
    """The frequency ('Recurring', 'One-Time') of every row but usage, None on usage rows: the month needs it
    where a row is no usage (a recurring fee accrues, an upfront one does not; a one-time credit or refund is
    money once, not a day's rate), so a batch of usage only stores and binds nothing for it."""
    kinds = {k for k in set(category) if k is None or k.lower() != "usage"}
    if not kinds:
        return [None] * len(category)
    return [f if k in kinds else None for k, f in zip(category, frequency, strict=True)]


def const(value: Any, n: int) -> list[Any]:
    return [value] * n


def coalesce(*cols: list[Any]) -> list[Any]:
    """Per row, the first non-None value (column by column: no generator per row)."""
    if not cols:
        return []
    out = list(cols[0])
    for col in cols[1:]:
        if None not in out:                   # C-speed scan: nothing left to fill
            break
        out = [a if a is not None else b for a, b in zip(out, col, strict=True)]
    return out


def month_start(ts: int | None) -> int | None:
    """UTC month start (epoch s) of `ts`."""
    if ts is None:
        return None
    import calendar
    import time

    t = time.gmtime(ts)
    return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))


def next_month(ts: int | None) -> int | None:
    if ts is None:
        return None
    import calendar
    import time

    t = time.gmtime(ts)
    y, m = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((y, m, 1, 0, 0, 0))


_INSTANCE_LIKE = re.compile(r"^(ml\.)?[a-z][a-z0-9-]*\.[a-z0-9]+$|^[a-z]\d-[a-z]+-\d+g?$|^Standard_N", re.I)


def finish(rows: Rows, required: dict[str, str]) -> Rows:
    """Required-value checks and GPU marking. `required` maps a canonical field to the file's column name.
    Itemized rows are checked per item where a field is per item; a bad item is a bad value on each of its rows."""
    n = rows.n
    for fld, colname in required.items():
        vals, per_item = rows.values_of(fld)
        if None in vals:                      # C-speed scan; walk the column only when something is missing
            _bad(rows, per_item).extend(BadValue(i, colname, "", "a value (it is required)")
                                        for i, v in enumerate(vals) if v is None)
    billed, effective = rows.data["billed_cost"], rows.data["effective_cost"]   # per row, always
    if None in billed and None in effective:  # Azure's amortised dataset carries effective only
        rows.bad.extend(BadValue(i, "cost", "", "a value (it is required)")
                        for i in range(n) if billed[i] is None and effective[i] is None)
    _currencies(rows, required.get("currency", "currency"))
    _ordered(rows, "billing_period_start", "billing_period_end", required.get("billing_period_start"))
    _ordered(rows, "charge_period_start", "charge_period_end", required.get("charge_period_start"))
    if rows.items is None:
        _mark_gpus(rows.data, n, rows.gpu_texts)
    else:
        _mark_gpus(rows.items, len(rows.items["instance_type"]), rows.gpu_texts)
        _spread_bad(rows)
    return rows


def _bad(rows: Rows, per_item: bool) -> list[BadValue]:
    return rows.item_bad if per_item else rows.bad


def _spread_bad(rows: Rows) -> None:
    """Each bad item as a bad value on every row of it (the first of them is the item's first row in the file)."""
    if not rows.item_bad:
        return
    of: dict[int, list[BadValue]] = {}
    for b in rows.item_bad:
        of.setdefault(b.row, []).append(b)
    assert rows.item_of is not None
    rows.bad.extend(BadValue(r, b.column, b.value, b.expected)
                    for r, k in enumerate(rows.item_of) if k in of for b in of[k])
    rows.item_bad = []


def _currencies(rows: Rows, colname: str) -> None:
    """Every currency as its ISO 4217 code: `usd` is USD, never a second bucket of the month beside USD's. A
    cell that is no code (`US$`, an anonymised sample's `MC`) stays as written, its own currency, never summed
    with another, and the import says so once. Checked per distinct cell: a batch has one or two."""
    col, per_item = rows.values_of("currency")
    fixed: dict[str, str] = {}
    for v in set(col):
        if v is None:
            continue
        code = currency_code(v)
        if code is None:
            note = (f"{colname} {clean(v, 20)!r} is not an ISO 4217 currency code: its amounts are kept apart from "
                    "every other currency's")
            if note not in rows.notes:
                rows.notes.append(note)
        elif code != v:
            fixed[v] = code
    if fixed:
        (rows.items if per_item and rows.items is not None else rows.data)["currency"] = [fixed.get(v, v) for v in col]


def _ordered(rows: Rows, start: str, end: str, colname: str | None) -> None:
    """A period that ends before it starts is a bad row: stored, its money would fall in the month its end
    names, and its hours count backwards. (Equal ends are one-time charges at an instant.)"""
    (starts, s_item), (ends, e_item) = rows.values_of(start), rows.values_of(end)
    if s_item != e_item:                      # a format keeps both ends of a period at one level
        starts, ends, s_item = rows.per_row(start), rows.per_row(end), False
    if None in starts or None in ends:
        pairs = [(i, s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True))
                 if s is not None and e is not None and e < s]
    elif any(map(lt, ends, starts)):          # C-speed scan first: almost every batch is in order
        pairs = [(i, s, e) for i, (s, e) in enumerate(zip(starts, ends, strict=True)) if e < s]
    else:
        return
    label = colname or start
    _bad(rows, s_item).extend(BadValue(i, label, f"{_iso(s)} to {_iso(e)}", "a period that ends at or after it starts")
                              for i, s, e in pairs)


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


_NO_GPU = (0, None, None, None)
# live columns -> texts -> (is_gpu, model, gpus, instance type to fill in or None). The catalog is fixed for
# a process, so verdicts are kept across batches and files (an export repeats a few hundred combinations).
_VERDICTS: dict[tuple[int, ...], dict[tuple, tuple[int, str | None, float | None, str | None]]] = {}


def _mark_gpus(d: dict[str, list[Any]], n: int, gpu_texts: list[list[str | None]]) -> None:
    """is_gpu / gpu_model / gpu_count in `d` (n values each: rows, or items) from the catalog, classifying each
    distinct combination of texts once.

    Columns that are empty in the whole batch are left out of the key: they cannot match. Most rows of an
    export are not GPUs: each distinct text of each column is looked up once (cached), and only the rows
    holding a text that names a GPU are classified as a whole (the most specific text first).
    """
    inst = d["instance_type"]
    cols = [inst, *gpu_texts, d["sku"], d["sku_description"]]
    live = tuple(i for i, c in enumerate(cols) if n and not (c[0] is None and c.count(None) == n))
    hit_rows: set[int] = set()
    for i in live:
        col = cols[i]
        hits = {v for v in set(col) if v is not None and gpu_catalog.lookup(v) is not None}
        if hits:
            hit_rows.update(compress(range(n), map(hits.__contains__, col)))
    if not hit_rows:
        d["is_gpu"], d["gpu_model"], d["gpu_count"] = [0] * n, [None] * n, [None] * n
        return
    verdicts = _VERDICTS.setdefault(live, {})
    if len(verdicts) > 20_000:                # bounded: memory stays flat on odd exports
        verdicts.clear()
    inst_in_key = live[0] == 0                # else the instance type is empty in the whole batch
    is_gpu, model, gpus = [0] * n, [None] * n, [None] * n
    fill: dict[int, str] = {}
    rows_hit = list(hit_rows)
    pick = itemgetter(*rows_hit)
    # each hit row's texts, column by column at C speed, then one verdict per distinct combination
    keys = list(zip(*([pick(cols[i])] if len(rows_hit) == 1 else pick(cols[i]) for i in live), strict=True))
    for key in set(keys).difference(verdicts):
        hit = gpu_catalog.classify(*key)
        no_inst = not inst_in_key or key[0] is None
        verdicts[key] = _NO_GPU if hit is None else (
            1, hit.model, hit.gpus, hit.text if no_inst and _INSTANCE_LIKE.match(hit.text) else None)
    for r, v in zip(rows_hit, map(verdicts.__getitem__, keys), strict=True):
        is_gpu[r], model[r], gpus[r] = v[0], v[1], v[2]
        if v[3] is not None:
            fill[r] = v[3]
    d["is_gpu"], d["gpu_model"], d["gpu_count"] = is_gpu, model, gpus
    if fill:                                  # instance type named only in a description or usage type
        filled = list(inst)
        for r, t in fill.items():
            filled[r] = t
        d["instance_type"] = filled


Normaliser = Callable[[Cols, dict[str, Any]], Rows]
