"""The common shape every format is normalised to (FOCUS meanings), and the checks and GPU marking applied to it.

A format module turns one batch of text columns into `Rows`: one Python list per canonical field (the
`charges` columns), plus the replacement key parts (`source`, `billing_account`, `billing_period_start`).
`finish()` then applies what is common: required values, GPU marking from the data catalog, bad-row
collection. Nothing here knows about SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from gpuspend.collectors.billing import gpu_catalog
from gpuspend.collectors.billing.values import BadValue

# Canonical fields in `charges` column order (line and import_id are added by the importer).
FIELDS: tuple[str, ...] = (
    "billing_account", "sub_account", "billing_period_start", "billing_period_end",
    "charge_period_start", "charge_period_end", "charge_category", "charge_class", "charge_type",
    "billed_cost", "effective_cost", "list_cost", "currency",
    "service", "sku", "sku_description", "resource_id", "instance_type", "region", "quantity", "unit", "tags",
    "is_gpu", "gpu_model", "gpu_count",
)


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
                return self.arrays[i]
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
    """Required-value checks and GPU marking. `required` maps a canonical field to the file's column name."""
    d = rows.data
    n = rows.n
    for fld, colname in required.items():
        vals = d[fld]
        if None in vals:                      # C-speed scan; walk the column only when something is missing
            rows.bad.extend(BadValue(i, colname, "", "a value (it is required)")
                            for i, v in enumerate(vals) if v is None)
    billed, effective = d["billed_cost"], d["effective_cost"]
    if None in billed and None in effective:  # Azure's amortised dataset carries effective only
        rows.bad.extend(BadValue(i, "cost", "", "a value (it is required)")
                        for i in range(n) if billed[i] is None and effective[i] is None)
    _mark_gpus(rows)
    return rows


_NO_GPU = (0, None, None, None)
# live columns -> texts -> (is_gpu, model, gpus, instance type to fill in or None). The catalog is fixed for
# a process, so verdicts are kept across batches and files (an export repeats a few hundred combinations).
_VERDICTS: dict[tuple[int, ...], dict[tuple, tuple[int, str | None, float | None, str | None]]] = {}


def _mark_gpus(rows: Rows) -> None:
    """is_gpu / gpu_model / gpu_count from the catalog, classifying each distinct combination of texts once.

    Columns that are empty in the whole batch are left out of the key: they cannot match, and hashing and
    comparing fewer texts per row is most of the cost here.
    """
    d = rows.data
    n = rows.n
    inst = d["instance_type"]
    cols = [inst, *rows.gpu_texts, d["sku"], d["sku_description"]]
    live = tuple(i for i, c in enumerate(cols) if n and not (c[0] is None and c.count(None) == n))
    if not live:
        d["is_gpu"], d["gpu_model"], d["gpu_count"] = [0] * n, [None] * n, [None] * n
        return
    verdicts = _VERDICTS.setdefault(live, {})
    if len(verdicts) > 20_000:                # bounded: memory stays flat on odd exports
        verdicts.clear()
    texts = list(zip(*(cols[i] for i in live), strict=True))
    inst_in_key = live[0] == 0                # else the instance type is empty in the whole batch
    for key in set(texts).difference(verdicts):
        hit = gpu_catalog.classify(*key)
        no_inst = not inst_in_key or key[0] is None
        verdicts[key] = _NO_GPU if hit is None else (
            1, hit.model, hit.gpus, hit.text if no_inst and _INSTANCE_LIKE.match(hit.text) else None)
    is_gpu, model, gpus, fill = zip(*map(verdicts.__getitem__, texts), strict=True)
    d["is_gpu"], d["gpu_model"], d["gpu_count"] = list(is_gpu), list(model), list(gpus)
    if any(fill):                             # instance type named only in a description or usage type
        d["instance_type"] = [f if f is not None else v for v, f in zip(inst, fill, strict=True)]

Normaliser = Callable[[Cols, dict[str, Any]], Rows]
