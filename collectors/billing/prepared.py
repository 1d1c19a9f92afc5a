"""A normalised batch turned into what the inserter binds, by whichever process has slack (pipeline.BEHIND_S).

The importing process then only maps slice keys to `imports` ids and binds: the grouping by slice and currency,
the per-group sums, the row-major parameter list and the NULL handling run beside the inserts (in the reader
process for large files) instead of between them. Nothing here knows about the database but which columns it
stores as text ids (store.INTERNED_FIELDS). Prepared in the reader, those go out as batch-local indices into the
batch's distinct texts, which the importing process maps to `charge_texts` ids (fewer bytes to pickle); prepared
in the importing process, as the ids themselves, looked up once per distinct text (one pass over the cells
fewer: ~5% of a large import).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from gpuspend.collectors.billing import normalise
from gpuspend.collectors.billing.normalise import FIELDS, spread
from gpuspend.store import INTERNED_FIELDS

SliceKey = tuple[str, "str | None", int]
_NAN = float("nan")
_AS_NAN = {None: _NAN}
# A column is stored as text ids in a batch where its distinct values are at most this share of the rows (a
# month's export repeats each tag set and description hundreds of times); a column of mostly unique texts
# stays inline, where an id would only add a lookup.
INTERN_MAX_SHARE = 0.25
# What varies from one row of a line item to the next (its hour, its amounts); every other column describes
# the item (account, service, SKU, resource, tags, GPU verdict...) and repeats on each of its rows.
ROW_FIELDS = frozenset({"charge_period_start", "charge_period_end", "billed_cost", "effective_cost", "list_cost",
                        "quantity"})
ITEM_MIN_ROWS = 16          # below, a batch is inserted row by row (nothing to share)
# The fields a batch's slices and groups are made of (the first three: one value each in the usual batch).
_SLICE_FIELDS = ("billing_account", "billing_period_start", "currency", "billing_period_end", "is_gpu")


@dataclass
class Group:
    """One (slice, currency) group of a batch: what the slice stats and the period totals add up."""

    key: int                        # index into Prepared.keys
    currency: str | None
    rows: int
    gpu_rows: int
    coverage_end: int | None        # latest charge period end (else start)
    billed: float                   # fsum of the batch's billed costs (nulls left out)
    has_billed: bool
    effective: float


@dataclass
class Prepared:
    n: int
    keys: list[SliceKey]            # distinct slice keys in first-seen order
    fields: tuple[str, ...]         # the columns bound: FIELDS, an interned one as `<field>_tid` (a column
                                    # empty in the whole batch is left out)
    # Row-major parameters, len(fields) + 2 per row: slot 0 holds the row's index into `keys` (the inserter
    # puts the import id there), slot 1 its line; every None bound as NaN (SQLite stores NULL).
    flat: list[Any]
    row_keys: list[int] | None      # the key index of each row; None: every row is keys[0]
    groups: list[Group] = field(default_factory=list)
    period_end: list[Any] = field(default_factory=list)     # per key: its first billing period end seen
    export_time: list[Any] = field(default_factory=list)    # per key: the latest export time of its rows
    # per `<field>_tid` column: the batch's distinct texts (None among them), which its cells index
    texts: dict[str, list[Any]] = field(default_factory=dict)
    # Itemized (a batch whose rows repeat a few line items, hour after hour): the columns that describe a line
    # item are bound once per distinct item, row-major in `items`, and each row's slot 2 holds its item's index;
    # `fields` are then the per-row columns only (ROW_FIELDS). Empty: every column is in `flat`.
    item_fields: tuple[str, ...] = ()
    items: list[Any] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.fields) + 2 + bool(self.item_fields)

    @property
    def all_fields(self) -> tuple[str, ...]:
        return self.fields + self.item_fields

    @property
    def n_items(self) -> int:
        return len(self.items) // len(self.item_fields) if self.item_fields else 0


def _items(keep_cols: list[tuple[str, list[Any]]], n: int
           ) -> tuple[list[int] | None, list[tuple[str, list[Any]]], list[tuple[str, list[Any]]]]:
    """(each row's item index, per-row columns, per-item columns) when the batch's distinct line items are at
    most normalise.ITEM_MAX_SHARE of its rows, else (None, every column, nothing): for the rows of a format
    that does not itemize them itself (normalise.itemize). A month's export repeats each resource's line item
    every hour: bound once per item, a row binds 9 cells, not 25 (the insert is ~2x faster)."""
    row_cols = [(f, c) for f, c in keep_cols if f in ROW_FIELDS]
    desc = [(f, c) for f, c in keep_cols if f not in ROW_FIELDS]
    if n < ITEM_MIN_ROWS or not desc:
        return None, keep_cols, []
    keys = list(zip(*(c for _f, c in desc), strict=True))
    distinct = dict.fromkeys(keys)
    if len(distinct) > n * normalise.ITEM_MAX_SHARE:
        return None, keep_cols, []
    pos = {k: i for i, k in enumerate(distinct)}
    per_item = list(zip(*distinct, strict=True))
    return list(map(pos.__getitem__, keys)), row_cols, [(f, list(c)) for (f, _c), c in zip(desc, per_item, strict=True)]


def _row_major(part: list[tuple[str, list[Any]]], m: int, rows: int, texts: dict[str, list[Any]],
               text_ids: Callable[[list[Any]], list[Any]] | None, lines: Any = None,
               item_of: list[int] | None = None) -> list[Any]:
    """The columns of `part` (m values each) as one row-major parameter list, interned texts coded (see
    prepare) where they repeat enough over the batch's `rows`. With `lines`: the rows' list, slot 0 left for
    the slice key, slot 1 the line, slot 2 the item when itemized. Without: the items' list, nothing before the
    columns. Renames an interned column in `part`."""
    head = 0 if lines is None else 2 + (item_of is not None)
    coded: set[str] = set()                   # columns of text indices or ids: never None
    for j, (f, c) in enumerate(part):
        if f in INTERNED_FIELDS:
            distinct = dict.fromkeys(c)
            if len(distinct) <= rows * INTERN_MAX_SHARE:
                if text_ids is None:
                    pos = {v: i for i, v in enumerate(distinct)}
                    texts[f + "_tid"] = list(distinct)
                else:
                    values = list(distinct)
                    pos = dict(zip(values, text_ids(values), strict=True))
                part[j] = (f + "_tid", list(map(pos.__getitem__, c)))
                coded.add(f + "_tid")
    width = len(part) + head
    # Row-major parameters from the columns by extended-slice assignment (a pointer copy per cell in C, ~5x
    # cheaper than zipping rows into tuples and flattening them).
    flat: list[Any] = [None] * (m * width)
    if lines is not None:
        flat[1::width] = lines
        if item_of is not None:
            flat[2::width] = item_of
    for j, (f, c) in enumerate(part, head):
        flat[j::width] = c if f in coded else _sql_nulls(c)
    return flat


def _empty(c: list[Any]) -> bool:
    return not c or (c[0] is None and c.count(None) == len(c))


def _sql_nulls(col: list[Any]) -> list[Any]:
    if None not in col:                       # C-speed scan
        return col
    return list(map(_AS_NAN.get, col, col))   # get(v, v): None -> NaN, anything else itself, at C speed


def _sum(values: list[Any]) -> float:
    # fsum per batch then per file: exact enough for 6 decimals on millions of rows
    return math.fsum(values if None not in values else (x for x in values if x is not None))


def _cov(starts: list[Any], ends: list[Any]) -> int | None:
    """Coverage: the latest charge period end, else its start."""
    if None in ends:
        ends = [e if e is not None else s for s, e in zip(starts, ends, strict=True)]
        return max((e for e in ends if e is not None), default=None)
    return max(ends, default=None)


def prepare(rows: Any, lines: Any, skip: set[int],
            text_ids: Callable[[list[Any]], list[Any]] | None = None) -> Prepared | None:
    """The rows of one normalised batch but those in `skip`, ready to bind; None when none are left.
    text_ids: the stored ids of texts (the importing process's charge_texts lookup): an interned column then
    goes out as those ids, not as indices into `texts` to be mapped to them afterwards."""
    d = rows.data
    n = rows.n
    item_of = rows.item_of
    row_names = [f for f in FIELDS if f in d]
    cols = [d[f] for f in row_names]
    source = rows.source
    export_time = rows.export_time
    if skip:
        keep = [i for i in range(n) if i not in skip]
        cols = [[c[i] for i in keep] for c in cols]
        lines = [lines[i] for i in keep]
        source = [source[i] for i in keep]
        if export_time is not None:
            export_time = [export_time[i] for i in keep]
        if item_of is not None:
            item_of = [item_of[i] for i in keep]
        n = len(keep)
    if n == 0:
        return None
    col = dict(zip(row_names, cols, strict=True))
    # Itemized by the format: what the slices and groups need is read per item while every item has rows
    # (items are in first-seen order, so the first item's value is the first row's); spread over the rows else.
    per_item = {f: rows.items[f] for f in _SLICE_FIELDS if f not in col} if rows.items is not None else {}
    if skip:
        col.update((f, spread(v, item_of)) for f, v in per_item.items())
        per_item = {}
    billed, eff = col["billed_cost"], col["effective_cost"]
    starts, ends = col["charge_period_start"], col["charge_period_end"]
    texts: dict[str, list[Any]] = {}
    if rows.items is None:
        keep_cols = [(f, c) for f, c in zip(row_names, cols, strict=True) if not _empty(c)]
        item_of, row_cols, item_cols = _items(keep_cols, n)
    else:
        row_cols = [(f, c) for f, c in zip(row_names, cols, strict=True) if not _empty(c)]
        item_cols = [(f, rows.items[f]) for f in FIELDS if f not in d and not _empty(rows.items[f])]
    flat = _row_major(row_cols, n, n, texts, text_ids, lines, item_of)
    items: list[Any] = []
    if item_of is not None:
        items = _row_major(item_cols, len(item_cols[0][1]), n, texts, text_ids)
    fields = tuple(f for f, _c in row_cols)
    width = len(fields) + 2 + (item_of is not None)
    one = {f: next(iter(v)) for f in _SLICE_FIELDS[:3]
           if len(v := set(per_item[f] if f in per_item else col[f])) == 1}
    if len(set(source)) == 1 and len(one) == 3:
        # The usual batch: one slice, one currency. Whole-column C-speed work, no per-row tuples.
        acct, bp_start, cur = one["billing_account"], one["billing_period_start"], one["currency"]
        is_gpu = per_item.get("is_gpu")
        gpu_rows = sum(col["is_gpu"]) if is_gpu is None else sum(map(is_gpu.__getitem__, item_of))
        bp_end = per_item.get("billing_period_end") or col["billing_period_end"]
        flat[0::width] = [0] * n
        prep = Prepared(n, [(source[0], acct, bp_start)], fields, flat, None, texts=texts,
                        item_fields=tuple(f for f, _c in item_cols), items=items)
        prep.period_end = [next((e for e in bp_end if e is not None), None)]
        prep.export_time = [_latest(export_time)]
        prep.groups = [Group(0, cur, n, gpu_rows, _cov(starts, ends), _sum(billed),
                             any(x is not None for x in billed), _sum(eff))]
        return prep
    col.update((f, spread(v, item_of)) for f, v in per_item.items())
    acct, bp_start, bp_end = col["billing_account"], col["billing_period_start"], col["billing_period_end"]
    is_gpu, cur = col["is_gpu"], col["currency"]
    keys = list(zip(source, acct, bp_start, strict=True))
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    row_keys = list(map(index.__getitem__, keys))
    flat[0::width] = row_keys
    prep = Prepared(n, list(index), fields, flat, row_keys, texts=texts, item_fields=tuple(f for f, _c in item_cols),
                    items=items)
    for k in range(len(index)):
        prep.period_end.append(next((e for i, e in zip(row_keys, bp_end, strict=True) if i == k and e is not None),
                                    None))
        prep.export_time.append(None if export_time is None else
                                _latest([t for i, t in zip(row_keys, export_time, strict=True) if i == k]))
    # (slice, currency) groups, first seen first. The rows sorted by group once (a stable C sort: file order
    # within each group) and cut into runs: no Python loop per row, and no pass over the rows per group.
    pairs = list(zip(row_keys, cur, strict=True))
    group = {g: i for i, g in enumerate(dict.fromkeys(pairs))}
    gids = list(map(group.__getitem__, pairs))
    order = sorted(range(n), key=gids.__getitem__)
    at = 0
    for g, i in group.items():
        ix = order[at:at + gids.count(i)]
        at += len(ix)
        pick = itemgetter(*ix)

        def take(values: list[Any], pick: Any = pick, one: bool = len(ix) == 1) -> list[Any]:
            return [pick(values)] if one else list(pick(values))

        b = take(billed)
        prep.groups.append(Group(g[0], g[1], len(ix), sum(take(is_gpu)), _cov(take(starts), take(ends)), _sum(b),
                                 any(x is not None for x in b), _sum(take(eff))))
    return prep


def _latest(export_time: list[int | None] | None) -> int | None:
    if export_time is None:
        return None
    return max((x for x in export_time if x is not None), default=None)


def rows_of(prep: Prepared) -> list[list[Any]]:
    """Every row's parameters in the order of `all_fields` after slots 0 (the key index) and 1 (the line), NaN
    back to None, interned cells back to their text, items spread over their rows: for tests and reference
    paths."""
    def unnan(v: Any) -> Any:
        return None if isinstance(v, float) and v != v else v

    w = prep.width
    wi = len(prep.item_fields)
    out = []
    for i in range(0, prep.n * w, w):
        row = [unnan(v) for v in prep.flat[i:i + w]]
        if wi:
            k = row.pop(2)
            row += [unnan(v) for v in prep.items[k * wi:(k + 1) * wi]]
        out.append(row)
    names = prep.all_fields
    for name, values in prep.texts.items():
        j = names.index(name) + 2
        for row in out:
            row[j] = values[row[j]]
    return out


def prepared_batch(batch: Any, rows: Any, skip_bad: bool) -> tuple[Any, Any, Prepared | None]:
    """(batch, rows, prepared) as the reading side hands them on. A bad value without --skip-bad-rows: nothing
    prepared (the importer raises on it). The rows keep their bad values and notes only: the rest is in the
    prepared batch, never handed over twice."""
    prep = None if rows.bad and not skip_bad else prepare(rows, batch.line_numbers(), {b.row for b in rows.bad})
    rows.data, rows.source, rows.gpu_texts, rows.export_time = {}, [], [], None
    return batch, rows, prep
