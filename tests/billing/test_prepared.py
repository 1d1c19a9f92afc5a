"""prepared.prepare on a batch whose rows interleave slices and currencies, as a multi-account FOCUS export's do:
the per-(slice, currency) groups and the parameters are checked against sums done by hand, and the text ids
a batch prepared by the importing process carries are the ones its lookup gave."""

from __future__ import annotations

import math

import pytest

from gpuspend.collectors.billing.normalise import FIELDS, Rows
from gpuspend.collectors.billing.prepared import prepare, rows_of

OCT, NOV = 1790812800, 1793491200          # 2026-10-01, 2026-11-01 UTC
HOUR = 3600

# (account, period start, currency, billed, is_gpu, charge start), in file order: three slices, two currencies
CELLS = [("a", NOV, "USD", 1.5, 1, NOV), ("b", NOV, "EUR", 2.0, 0, NOV + HOUR),
         ("a", OCT, "USD", 4.0, 0, OCT), ("a", NOV, "EUR", 0.25, 0, NOV + 2 * HOUR),
         ("a", NOV, "USD", 3.0, 1, NOV + 5 * HOUR), ("b", NOV, "EUR", None, 0, NOV + 3 * HOUR),
         ("a", OCT, "USD", 6.0, 1, OCT + 9 * HOUR)]
SERVICES = ["Compute", "Storage", "Compute", "Storage", "Compute", None, "Compute"]
R = 4                   # the pattern four times: 3 distinct services in 28 rows, few enough to go as text ids
ALL = CELLS * R


def _rows() -> Rows:
    n = len(ALL)
    data: dict[str, list] = {f: [None] * n for f in FIELDS}
    data["billing_account"] = [c[0] for c in ALL]
    data["billing_period_start"] = [c[1] for c in ALL]
    data["currency"] = [c[2] for c in ALL]
    data["billed_cost"] = [c[3] for c in ALL]
    data["effective_cost"] = [c[3] for c in ALL]
    data["is_gpu"] = [c[4] for c in ALL]
    data["charge_period_start"] = [c[5] for c in ALL]
    data["charge_period_end"] = [c[5] + HOUR for c in ALL]
    data["service"] = SERVICES * R
    return Rows(n, data, ["focus:x"] * n)


def test_interleaved_slices_and_currencies_group_by_hand() -> None:
    prep = prepare(_rows(), range(2, 2 + len(ALL)), set())
    assert prep is not None
    assert prep.keys == [("focus:x", "a", NOV), ("focus:x", "b", NOV), ("focus:x", "a", OCT)]
    got = {(prep.keys[g.key][1:], g.currency): (g.rows, g.gpu_rows, g.billed, g.has_billed, g.coverage_end)
           for g in prep.groups}
    assert got == {                                   # per pattern, times R
        (("a", NOV), "USD"): (2 * R, 2 * R, 4.5 * R, True, NOV + 6 * HOUR),     # 1.5 + 3.0, rows 1 and 5
        (("b", NOV), "EUR"): (2 * R, 0, 2.0 * R, True, NOV + 4 * HOUR),         # 2.0 + no cost
        (("a", OCT), "USD"): (2 * R, 1 * R, 10.0 * R, True, OCT + 10 * HOUR),   # 4.0 + 6.0
        (("a", NOV), "EUR"): (1 * R, 0, 0.25 * R, True, NOV + 3 * HOUR),
    }
    assert [(prep.keys[g.key][1:], g.currency) for g in prep.groups] == [   # first seen first
        (("a", NOV), "USD"), (("b", NOV), "EUR"), (("a", OCT), "USD"), (("a", NOV), "EUR")]
    assert math.fsum(g.billed for g in prep.groups) == pytest.approx(16.75 * R)
    rows = rows_of(prep)                                                     # every row, in file order
    assert [r[1] for r in rows] == list(range(2, 2 + len(ALL)))
    assert [prep.keys[r[0]][1] for r in rows] == [c[0] for c in ALL]
    assert [r[2 + prep.all_fields.index("service_tid")] for r in rows] == SERVICES * R
    assert [r[2 + prep.all_fields.index("billed_cost")] for r in rows] == [c[3] for c in ALL]


def test_a_batch_repeating_its_line_items_binds_each_item_once() -> None:
    """6 distinct line items (account, period, currency, service, GPU verdict: rows 1 and 5 of the pattern are one
    item at two hours) over 28 rows: the descriptors go once per item, the rows carry their hour and amounts and
    their item's index; spread back, every row is as written."""
    prep = prepare(_rows(), range(2, 2 + len(ALL)), set())
    assert prep is not None
    assert prep.n_items == 6
    assert "service_tid" in prep.item_fields and "billing_account_tid" in prep.item_fields
    assert set(prep.fields) == {"charge_period_start", "charge_period_end", "billed_cost", "effective_cost"}
    item_of = prep.flat[2::prep.width]
    assert item_of == [0, 1, 2, 3, 0, 4, 5] * R
    rows = rows_of(prep)
    col = {f.removesuffix("_tid"): [r[2 + j] for r in rows] for j, f in enumerate(prep.all_fields)}
    assert col["billing_account"] == [c[0] for c in ALL]
    assert col["currency"] == [c[2] for c in ALL]
    assert col["is_gpu"] == [c[4] for c in ALL]
    assert col["charge_period_start"] == [c[5] for c in ALL]


def test_a_batch_of_distinct_items_is_one_item_per_row() -> None:
    rows = _rows()
    rows.data["sku"] = [f"sku-{i}" for i in range(rows.n)]        # every row its own line item
    prep = prepare(rows, range(2, 2 + rows.n), set())
    assert prep is not None
    assert prep.n_items == rows.n
    assert "sku_tid" in prep.item_fields                          # 28 texts: few enough to go as ids
    assert prep.flat[2::prep.width] == list(range(rows.n))
    assert [r[2 + prep.all_fields.index("sku_tid")] for r in rows_of(prep)] == rows.data["sku"]


def test_a_large_batch_of_distinct_texts_keeps_them_inline() -> None:
    """Over INTERN_ALWAYS texts, each on a single row: inline (an id would only add a lookup and an index entry)."""
    n = 400
    data: dict[str, list] = {f: [None] * n for f in FIELDS}
    data.update(billing_account=["a"] * n, billing_period_start=[NOV] * n, currency=["USD"] * n, is_gpu=[0] * n,
                billed_cost=[1.0] * n, effective_cost=[1.0] * n, charge_period_start=[NOV + i * HOUR for i in range(n)],
                charge_period_end=[NOV + (i + 1) * HOUR for i in range(n)], resource_id=[f"i-{i}" for i in range(n)])
    prep = prepare(Rows(n, data, ["focus:x"] * n), range(2, 2 + n), set())
    assert prep is not None
    assert prep.n_items == n
    assert "resource_id" in prep.item_fields and "billing_account_tid" in prep.item_fields


def test_skipped_rows_leave_no_item_behind() -> None:
    """Rows 1 and 5 of every pattern skipped (bad values): the items only they had are not stored."""
    rows = _rows()
    skip = {i for i in range(rows.n) if i % len(CELLS) in (1, 5)}
    prep = prepare(rows, range(2, 2 + rows.n), skip)
    assert prep is not None
    assert prep.n == rows.n - len(skip)
    assert prep.n_items == 4                  # ("b", NOV, EUR, Storage) and ("b", NOV, EUR, None) had no other row
    assert prep.keys == [("focus:x", "a", NOV), ("focus:x", "a", OCT)]      # nor does slice b
    assert [r[1] for r in rows_of(prep)] == [2 + i for i in range(rows.n) if i not in skip]


def test_the_importing_process_binds_the_stored_text_ids() -> None:
    asked: list[list] = []
    stored = {"Compute": 41, "Storage": 7, "a": 3, "b": 5}

    def text_ids(values: list) -> list:
        asked.append(values)
        return [float("nan") if v is None else stored[v] for v in values]

    prep = prepare(_rows(), range(2, 2 + len(ALL)), set(), text_ids)
    assert asked == [["a", "b"], ["Compute", "Storage", None]]   # once per distinct text, first seen first
    assert prep.texts == {}                                  # nothing left to map after
    j = prep.item_fields.index("service_tid")
    cells = prep.items[j::len(prep.item_fields)]             # once per line item
    want = [41, 7, 41, 7, None, 41]
    assert [None if isinstance(c, float) and math.isnan(c) else c for c in cells] == want   # NaN binds as NULL
    assert sum(1 for c in cells if isinstance(c, float)) == 1
    assert [r[2 + prep.all_fields.index("service_tid")] for r in rows_of(prep)] == [41, 7, 41, 7, 41, None, 41] * R
