"""A normalised batch turned into what the inserter binds, by whichever process has slack (pipeline.BEHIND_S).

The importing process then only maps slice keys to `imports` ids and binds: the line items, the grouping by
slice and currency, the per-group sums, the row-major parameter lists and the NULL handling run beside the
inserts (in the reader process for large files) instead of between them.

The store keeps a line item's description once (store v18: `charge_items`) and each row as its item, its hour
and its amounts (`charge_lines`): a batch goes out as its distinct items and its rows. A format that itemizes
its batches itself (normalise.itemize) hands its items over; the rows of any other are deduplicated here.
Nothing here knows about the database but those two column sets and which columns it stores as text ids
(store.INTERNED_FIELDS). Prepared in the reader, those go out as batch-local indices into the batch's distinct
texts, which the importing process maps to `charge_texts` ids (fewer bytes to pickle); prepared in the
importing process, as the ids themselves, looked up once per distinct text.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from gpuspend.collectors.billing.normalise import FIELDS, spread
from gpuspend.store import INTERNED_FIELDS, LINE_COLUMNS

SliceKey = tuple[str, "str | None", int]
_NAN = float("nan")
_AS_NAN = {None: _NAN}
# A column is stored as text ids in a batch where its distinct values are at most this share of the rows (a
# month's export repeats each tag set and description hundreds of times), or at most INTERN_ALWAYS texts: a
# column of mostly unique texts stays inline, where an id would only add a lookup. The floor keeps a batch of
# few rows (a file's last) reading its items as the batches before it did: an item that reads the same is
# stored once per import (store v18), one that came inline in one batch and as ids in another, twice.
INTERN_MAX_SHARE = 0.25
INTERN_ALWAYS = 64
# What varies from one row of a line item to the next (its hour, its amounts): stored per row. Every other
# field describes the item (account, period, service, SKU, resource, tags, GPU verdict...), stored per item.
ROW_FIELDS = LINE_COLUMNS
ITEM_FIELDS = tuple(f for f in FIELDS if f not in ROW_FIELDS)


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
    fields: tuple[str, ...]         # the per-row columns bound (ROW_FIELDS; one empty in the whole batch is left
                                    # out)
    # Row-major parameters, len(fields) + 3 per row: slot 0 holds the row's index into `keys` (the inserter puts
    # the import id there), slot 1 its line, slot 2 its index into the items (the inserter puts the item id
    # there); every None bound as NaN (SQLite stores NULL).
    flat: list[Any]
    row_keys: list[int] | None      # the key index of each row; None: every row is keys[0]
    item_fields: tuple[str, ...]    # the per-item columns bound (ITEM_FIELDS, an interned one as `<field>_tid`)
    items: list[Any]                # row-major, len(item_fields) per item
    item_keys: list[int] | None     # the key index of each item; None: every item is keys[0]
    groups: list[Group] = field(default_factory=list)
    period_end: list[Any] = field(default_factory=list)     # per key: its first billing period end seen
    export_time: list[Any] = field(default_factory=list)    # per key: the latest export time of its rows
    # per `<field>_tid` column: the batch's distinct texts (None among them), which its cells index
    texts: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return len(self.fields) + 3

    @property
    def all_fields(self) -> tuple[str, ...]:
        return self.fields + self.item_fields

    @property
    def n_items(self) -> int:
        return len(self.items) // len(self.item_fields)


def _items(rows: Any, col: dict[str, list[Any]], source: list[str], item_of: list[int] | None, must: bool
           ) -> tuple[list[int], dict[str, list[Any]], list[str]]:
    """(each row's item index, each item's ITEM_FIELDS, each item's source). An item lies in one slice (its
    source, account and period are part of it). The items a format handed over are kept as they are unless
    some of their fields came per row, the batch mixes sources, or `must` (rows were skipped: an item left
    without rows is dropped); else the rows' distinct descriptions, first seen first, are the items."""
    given = rows.items or {}
    per_row = [f for f in ITEM_FIELDS if f in col]
    mixed = len(set(source)) > 1
    if item_of is not None and not per_row and not mixed and not must:
        return item_of, {f: given[f] for f in ITEM_FIELDS}, [source[0]] * len(given[ITEM_FIELDS[0]])
    parts = [col[f] for f in per_row]
    if mixed:
        parts.append(source)
    if item_of is not None:
        parts.append(item_of)
    keys = parts[0] if len(parts) == 1 else list(zip(*parts, strict=True))
    distinct = dict.fromkeys(keys)
    pos = {k: i for i, k in enumerate(distinct)}
    ix = list(map(pos.__getitem__, keys))
    per_item = [list(distinct)] if len(parts) == 1 else [list(c) for c in zip(*distinct, strict=True)]
    out = dict(zip(per_row, per_item, strict=False))
    if item_of is not None:
        first = per_item[-1]                  # each new item's item as the format gave it
        for f in ITEM_FIELDS:
            if f not in out:
                out[f] = spread(given[f], first)
    item_source = per_item[len(per_row)] if mixed else [source[0]] * len(distinct)
    return ix, {f: out[f] for f in ITEM_FIELDS}, item_source


def _row_major(part: list[tuple[str, list[Any]]], m: int, rows: int, texts: dict[str, list[Any]],
               text_ids: Callable[[list[Any]], list[Any]] | None, head: int = 0, nan: bool = True) -> list[Any]:
    """The columns of `part` (m values each) as one row-major parameter list after `head` slots left for the
    caller, interned texts coded (see prepare) where they repeat enough over the batch's `rows`, None as NaN
    with `nan` (items keep None: the importer compares them with the items it stored). Renames an interned
    column in `part`."""
    coded: set[str] = set()                   # columns of text indices or ids: never None
    for j, (f, c) in enumerate(part):
        if f in INTERNED_FIELDS:
            distinct = dict.fromkeys(c)
            if len(distinct) <= max(rows * INTERN_MAX_SHARE, INTERN_ALWAYS):
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
    for j, (f, c) in enumerate(part, head):
        flat[j::width] = c if f in coded or not nan else _sql_nulls(c)
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
    names = [f for f in FIELDS if f in d]
    cols = [d[f] for f in names]
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
    col = dict(zip(names, cols, strict=True))
    ix, item, item_source = _items(rows, col, source, item_of, bool(skip))
    m = len(item_source)
    texts: dict[str, list[Any]] = {}
    row_cols = [(f, col[f]) for f in ROW_FIELDS if not _empty(col[f])]
    item_cols = [(f, item[f]) for f in ITEM_FIELDS if not _empty(item[f])]
    flat = _row_major(row_cols, n, n, texts, text_ids, head=3)
    width = len(row_cols) + 3
    flat[1::width] = lines
    flat[2::width] = ix
    items = _row_major(item_cols, m, n, texts, text_ids, nan=False)
    fields, item_fields = tuple(f for f, _c in row_cols), tuple(f for f, _c in item_cols)
    billed, eff = col["billed_cost"], col["effective_cost"]
    starts, ends = col["charge_period_start"], col["charge_period_end"]
    acct, bp_start, bp_end, cur, is_gpu = (item[f] for f in ("billing_account", "billing_period_start",
                                                              "billing_period_end", "currency", "is_gpu"))
    if len(set(item_source)) == 1 and len(set(acct)) == 1 and len(set(bp_start)) == 1 and len(set(cur)) == 1:
        # The usual batch: one slice, one currency. Whole-column C-speed work, no per-row tuples.
        flat[0::width] = [0] * n
        prep = Prepared(n, [(item_source[0], acct[0], bp_start[0])], fields, flat, None, item_fields, items, None,
                        texts=texts)
        prep.period_end = [next((e for e in bp_end if e is not None), None)]
        prep.export_time = [_latest(export_time)]
        gpu_rows = sum(map(is_gpu.__getitem__, ix)) if any(is_gpu) else 0
        prep.groups = [Group(0, cur[0], n, gpu_rows, _cov(starts, ends), _sum(billed),
                             any(x is not None for x in billed), _sum(eff))]
        return prep
    item_slices = list(zip(item_source, acct, bp_start, strict=True))
    index = {k: i for i, k in enumerate(dict.fromkeys(item_slices))}
    item_keys = list(map(index.__getitem__, item_slices))
    row_keys = spread(item_keys, ix)
    flat[0::width] = row_keys
    prep = Prepared(n, list(index), fields, flat, row_keys, item_fields, items, item_keys, texts=texts)
    for k in range(len(index)):
        # items are in first-seen order: the first of a slice's items with a period end is its first row's
        prep.period_end.append(next((e for i, e in zip(item_keys, bp_end, strict=True) if i == k and e is not None),
                                    None))
        prep.export_time.append(None if export_time is None else
                                _latest([t for i, t in zip(row_keys, export_time, strict=True) if i == k]))
    # (slice, currency) groups, first seen first. The rows sorted by group once (a stable C sort: file order
    # within each group) and cut into runs: no Python loop per row, and no pass over the rows per group.
    pairs = list(zip(row_keys, spread(cur, ix), strict=True))
    group = {g: i for i, g in enumerate(dict.fromkeys(pairs))}
    gids = list(map(group.__getitem__, pairs))
    order = sorted(range(n), key=gids.__getitem__)
    row_gpu = spread(is_gpu, ix)
    at = 0
    for g, i in group.items():
        rix = order[at:at + gids.count(i)]
        at += len(rix)
        pick = itemgetter(*rix)

        def take(values: list[Any], pick: Any = pick, one: bool = len(rix) == 1) -> list[Any]:
            return [pick(values)] if one else list(pick(values))

        b = take(billed)
        prep.groups.append(Group(g[0], g[1], len(rix), sum(take(row_gpu)), _cov(take(starts), take(ends)), _sum(b),
                                 any(x is not None for x in b), _sum(take(eff))))
    return prep


def _latest(export_time: list[int | None] | None) -> int | None:
    if export_time is None:
        return None
    return max((x for x in export_time if x is not None), default=None)


def rows_of(prep: Prepared) -> list[list[Any]]:
    """Every row's parameters: the key index, the line, then its values in the order of `all_fields` (its item's
    spread over it), NaN back to None, interned cells back to their text: for tests and reference paths."""
    def unnan(v: Any) -> Any:
        return None if isinstance(v, float) and v != v else v

    w, wi = prep.width, len(prep.item_fields)
    out = []
    for i in range(0, prep.n * w, w):
        row = [unnan(v) for v in prep.flat[i:i + w]]
        k = row.pop(2)
        out.append(row + [unnan(v) for v in prep.items[k * wi:(k + 1) * wi]])
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
    rows.items, rows.item_of = None, None
    return batch, rows, prep
