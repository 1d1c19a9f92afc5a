"""AWS Cost and Usage Reports: legacy CUR (``lineItem/UnblendedCost`` headers, CSV/CSV.gz), its Athena/Parquet
snake_case flattening, and CUR 2.0 / Data Exports (snake_case, map columns as JSON).

Billed (cash) = the invoice: the sum of unblended cost over every line item type (negation lines make it add
up). Effective (amortised) follows the CUR query library: covered usage at its effective cost, unused
commitment from the fee lines, upfront fees and negations at zero.
"""

from __future__ import annotations

import json
import re
from itertools import compress
from typing import Any

from gpuspend.collectors.billing.normalise import (
    Cols,
    Rows,
    coalesce,
    finish,
    month_start,
    next_month,
    spread,
)
from gpuspend.collectors.billing.values import (
    MAX_AMOUNT,
    BadValue,
    mapped,
    merge_tag_columns,
    num_col,
    tags_col,
    text_col,
    text_first,
    ts_col,
)

NAME = "aws-cur"
NAME_V2 = "aws-cur2"
REQUIRED = ("line_item_unblended_cost", "line_item_usage_start_date")
SIGNATURE = REQUIRED + ("line_item_line_item_type", "bill_billing_period_start_date", "bill_payer_account_id",
                        "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type",
                        "line_item_currency_code", "line_item_usage_account_id", "identity_line_item_id")

# lineItem/LineItemType -> FOCUS ChargeCategory; unknown types are kept as Adjustment (still summed).
CATEGORY = {
    "usage": "Usage", "discountedusage": "Usage", "savingsplancoveredusage": "Usage",
    "savingsplannegation": "Usage",
    "tax": "Tax",
    "credit": "Credit", "refund": "Credit", "discount": "Credit", "bundleddiscount": "Credit",
    "edpdiscount": "Credit", "privateratediscount": "Credit", "distributordiscount": "Credit",
    "fee": "Purchase", "rifee": "Purchase", "savingsplanrecurringfee": "Purchase",
    "savingsplanupfrontfee": "Purchase",
}

# A purchase's frequency, as FOCUS states it (ChargeFrequency): the recurring fees accrue every hour (a
# Savings Plan's) or month (an RI's); the upfront ones are paid once.
FREQUENCY = {"savingsplanrecurringfee": "Recurring", "rifee": "Recurring", "fee": "One-Time",
             "savingsplanupfrontfee": "One-Time", "refund": "One-Time"}   # a refund is money once, not a rate

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _snake(h: str) -> str:
    s = h.replace("\ufeff", "").strip()
    if "/" in s:
        cat, _, rest = s.partition("/")
        if cat in ("resourceTags", "costCategory"):
            return f"{_CAMEL.sub('_', cat).lower()}/{rest}"       # keep the tag key as written
        s = f"{cat}_{rest}"
    return _CAMEL.sub("_", s).lower()


def keys(header: list[str]) -> list[str]:
    return [_snake(h) for h in header]


def _effective(kind: str | None, unblended: float | None, res_eff: float | None, sp_eff: float | None,
               sp_total: float | None, sp_used: float | None, ri_unused_upfront: float | None,
               ri_unused_recurring: float | None, bill_type: str | None) -> float | None:
    k = (kind or "usage").lower()
    if k == "savingsplancoveredusage":
        return sp_eff if sp_eff is not None else unblended
    if k in ("savingsplannegation", "savingsplanupfrontfee"):
        return 0.0
    if k == "savingsplanrecurringfee":
        if sp_total is not None and sp_used is not None:
            return sp_total - sp_used
        return unblended
    if k == "discountedusage":
        return res_eff if res_eff is not None else unblended
    if k == "rifee":
        if ri_unused_upfront is None and ri_unused_recurring is None:
            return unblended
        return (ri_unused_upfront or 0.0) + (ri_unused_recurring or 0.0)
    if k == "fee" and (bill_type or "").lower() == "purchase":
        return 0.0        # RI upfront: amortised over the term through the covered usage lines
    return unblended


# Line item types whose amortised cost is not their unblended cost (see _effective).
_AMORTISED = {"savingsplancoveredusage", "savingsplannegation", "savingsplanupfrontfee", "savingsplanrecurringfee",
              "discountedusage", "rifee", "fee"}


def _amortises(kind: str | None) -> bool:
    return (kind or "usage").lower() in _AMORTISED


def _effective_col(kind: list[str | None], billed: list[float | None], *rest: list[Any]) -> list[float | None]:
    """_effective of every row, computed only for the rows of a type that amortises: the others (plain usage,
    tax, credits: nearly every row of an export) keep their billed cost."""
    special = {k: _amortises(k) for k in set(kind)}
    out = list(billed)
    if any(special.values()):
        for i in compress(range(len(kind)), map(special.__getitem__, kind)):
            out[i] = _effective(kind[i], billed[i], *(col[i] for col in rest))
    return out


def _tags(c: Cols, n: int, bad: list[BadValue]) -> list[str | None]:
    per_column: list[tuple[str, list[str | None]]] = []
    for i, k in enumerate(c.keys):
        raw = c.raw[i].replace("\ufeff", "").strip()
        if k.startswith("resource_tags/"):
            per_column.append((raw.split("/", 1)[1], text_col(c.arrays[i], n)))
        elif k.startswith("resource_tags_"):
            per_column.append((raw[len("resource_tags_"):], text_col(c.arrays[i], n)))
    merged = merge_tag_columns(per_column, n)
    if c.has("resource_tags"):          # CUR 2.0: one map column
        in_map = tags_col(c.get("resource_tags"), n, c.name("resource_tags"), bad)
        if not per_column:              # the usual CUR 2.0: nothing to merge it with
            return in_map
        merged = [_merge_json(a, b) for a, b in zip(merged, in_map, strict=True)]
    return merged


def _merge_json(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    d = json.loads(a)
    d.update(json.loads(b))
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


# The columns that vary from one hour of a line item to the next; every other column describes the item.
ROW_COLUMNS = frozenset({
    "line_item_unblended_cost", "line_item_net_unblended_cost", "line_item_usage_start_date",
    "line_item_usage_end_date", "line_item_usage_amount", "pricing_public_on_demand_cost",
    "reservation_effective_cost", "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date", "savings_plan_used_commitment",
    "reservation_unused_amortized_upfront_fee_for_billing_period", "reservation_unused_recurring_fee",
})


def normalise(c: Cols, ctx: dict[str, Any], items: tuple[Cols, list[int]] | None = None) -> Rows:
    """Every row of the batch `c`. `items` (normalise.itemize): the batch's distinct line items, one row each,
    and each row's item: the fields read from anything but ROW_COLUMNS are then read from those rows alone."""
    n = c.n
    it, item_of = (c, None) if items is None else items
    m = it.n
    bad: list[BadValue] = []
    item_bad = bad if item_of is None else []

    def num(*names: str, bound: float | None = MAX_AMOUNT) -> list[float | None]:
        return num_col(c.get(*names), n, c.name(*names), bad, bound)

    def ts(name: str, cols: Cols, into: list[BadValue]) -> list[int | None]:
        return ts_col(cols.get(name), cols.n, cols.name(name), into)

    unblended = num("line_item_unblended_cost")
    net = num("line_item_net_unblended_cost")
    billed = coalesce(net, unblended) if c.has("line_item_net_unblended_cost") else unblended
    kind = text_col(it.get("line_item_line_item_type"), m)
    bill_type = it.get("bill_bill_type")                 # asked for whatever the values (see columns_read)
    res_eff, sp_eff = num("reservation_effective_cost"), num("savings_plan_savings_plan_effective_cost")
    sp_total, sp_used = num("savings_plan_total_commitment_to_date"), num("savings_plan_used_commitment")
    ri_up = num("reservation_unused_amortized_upfront_fee_for_billing_period")
    ri_rec = num("reservation_unused_recurring_fee")
    if any(map(_amortises, set(kind))):
        effective = _effective_col(spread(kind, item_of), billed, res_eff, sp_eff, sp_total, sp_used, ri_up, ri_rec,
                                   spread(text_col(bill_type, m), item_of))
    else:                                                # no row of a type that amortises: effective is billed
        effective = list(billed)
    start = ts("line_item_usage_start_date", c, bad)
    per_row: dict[str, list[Any]] = {
        "charge_period_start": start,
        "charge_period_end": ts("line_item_usage_end_date", c, bad),
        "billed_cost": billed,
        "effective_cost": effective,
        "list_cost": num("pricing_public_on_demand_cost"),
        "quantity": num("line_item_usage_amount", bound=None),
    }
    per_item: dict[str, list[Any]] = {}
    if c.has("bill_billing_period_start_date"):
        per_item["billing_period_start"] = ts("bill_billing_period_start_date", it, item_bad)
        per_item["billing_period_end"] = ts("bill_billing_period_end_date", it, item_bad)
    else:                                                # minimal exports: the usage month is the period
        per_row["billing_period_start"] = [month_start(t) for t in start]
        per_row["billing_period_end"] = [next_month(t) for t in start]
    currency = text_col(it.get("line_item_currency_code"), m)
    if not c.has("line_item_currency_code"):
        currency = ["USD"] * m                           # CUR without the column is always USD
    per_item.update({
        "billing_account": text_first(m, it.get("bill_payer_account_id"), it.get("line_item_usage_account_id")),
        "sub_account": text_col(it.get("line_item_usage_account_id"), m),
        "charge_category": mapped(kind, lambda k: CATEGORY.get((k or "usage").lower(), "Adjustment")),
        "charge_class": [None] * m,
        "charge_type": mapped(kind, lambda k: k or "Usage"),
        "charge_frequency": mapped(kind, lambda k: FREQUENCY.get((k or "").lower())),
        "currency": currency,
        "service": text_first(m, it.get("product_product_name"), it.get("line_item_product_code")),
        "sku": text_col(it.get("product_sku"), m),
        "sku_description": text_col(it.get("line_item_line_item_description"), m),
        "resource_id": text_col(it.get("line_item_resource_id"), m),
        "instance_type": text_col(it.get("product_instance_type"), m),
        "region": text_first(m, it.get("product_region_code", "product_region"), it.get("line_item_availability_zone")),
        "unit": text_col(it.get("pricing_unit"), m),
        "tags": _tags(it, m, item_bad),
    })
    gpu_texts = [text_col(it.get("line_item_usage_type"), m)]
    if item_of is None:
        rows = Rows(n, {**per_row, **per_item}, ["aws"] * n, gpu_texts, bad)
    else:
        rows = Rows(n, per_row, ["aws"] * n, gpu_texts, bad, items=per_item, item_of=item_of, item_bad=item_bad)
    required = {"charge_period_start": c.name("line_item_usage_start_date"),
                "billed_cost": c.name("line_item_unblended_cost")}
    if c.has("line_item_currency_code"):
        required["currency"] = c.name("line_item_currency_code")
    return finish(rows, required)
