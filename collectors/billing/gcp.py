"""GCP Cloud Billing export: BigQuery NDJSON (nested records flattened to dotted names by the reader)
and flattened CSV (dotted headers, credits as JSON or Python repr, as koku writes them).

Billed = net cost = cost + sum(credits.amount) (credit amounts are negative). GCP has no amortisation, so
effective = billed. The billing period is `invoice.month`, a calendar month in US Pacific time.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gpuspend.collectors.billing.normalise import Cols, Rows, coalesce, finish
from gpuspend.collectors.billing.values import (
    BadValue,
    loads_lenient,
    mapped,
    num_col,
    tags_col,
    text_col,
    ts_col,
)

NAME = "gcp"
REQUIRED = ("cost", "usage_start_time", "invoice.month", "currency")
SIGNATURE = REQUIRED + ("billing_account_id", "service.description", "sku.description", "usage_end_time",
                        "credits", "project.id", "cost_type", "usage.amount")
PACIFIC = ZoneInfo("America/Los_Angeles")
CATEGORY = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment",
            "credit": "Credit"}


def keys(header: list[str]) -> list[str]:
    from gpuspend.collectors.billing.reader import header_keys

    return header_keys(header)


def pacific_month(text: str) -> tuple[int, int]:
    """'202011' -> (start, end) epoch s of that month in US Pacific time (DST-aware)."""
    s = text.strip()
    if len(s) != 6 or not s.isdigit() or not 1 <= int(s[4:]) <= 12:
        raise ValueError(s)
    y, m = int(s[:4]), int(s[4:])
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return (int(datetime(y, m, 1, tzinfo=PACIFIC).timestamp()), int(datetime(ny, nm, 1, tzinfo=PACIFIC).timestamp()))


def credits_sum(text: str | None) -> float:
    if text is None:
        return 0.0
    obj = loads_lenient(text)
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list):
        raise ValueError("credits")
    total = float(sum(float(c.get("amount") or 0.0) for c in obj if isinstance(c, dict)))
    if not math.isfinite(total):            # inf/NaN credits would make the month $inf
        raise ValueError("credits")
    return total


def normalise(c: Cols, ctx: dict[str, Any]) -> Rows:
    n = c.n
    bad: list[BadValue] = []
    cost = num_col(c.get("cost"), n, c.name("cost"), bad)
    credit_texts = text_col(c.get("credits"), n)
    credits: list[float] = []
    for i, v in enumerate(credit_texts):
        try:
            credits.append(credits_sum(v))
        except (ValueError, TypeError, AttributeError):
            bad.append(BadValue(i, c.name("credits"), v or "", "a list of credits"))
            credits.append(0.0)
    billed = [None if x is None else x + cr for x, cr in zip(cost, credits, strict=True)]
    months = text_col(c.get("invoice.month"), n)
    periods: list[tuple[int, int] | None] = []
    cache: dict[str, tuple[int, int] | None] = {}
    for i, v in enumerate(months):
        if v is None:
            periods.append(None)
            continue
        if v not in cache:
            try:
                cache[v] = pacific_month(v)
            except ValueError:
                cache[v] = None
        if cache[v] is None:
            bad.append(BadValue(i, c.name("invoice.month"), v, "a month YYYYMM"))
        periods.append(cache[v])
    cost_type = text_col(c.get("cost_type"), n)
    labels = tags_col(c.get("labels"), n, c.name("labels"), bad)
    data = {
        "billing_account": text_col(c.get("billing_account_id"), n),
        "sub_account": text_col(c.get("project.id"), n),
        "billing_period_start": [p[0] if p else None for p in periods],
        "billing_period_end": [p[1] if p else None for p in periods],
        "charge_period_start": ts_col(c.get("usage_start_time"), n, c.name("usage_start_time"), bad),
        "charge_period_end": ts_col(c.get("usage_end_time"), n, c.name("usage_end_time"), bad),
        "charge_category": mapped(cost_type, lambda t: CATEGORY.get((t or "regular").lower(), "Adjustment")),
        "charge_class": [None] * n,
        "charge_frequency": [None] * n,   # purchases read as one-time (see costing/month.py)
        "charge_type": cost_type,
        "billed_cost": billed,
        "effective_cost": list(billed),
        "list_cost": num_col(c.get("cost_at_list"), n, c.name("cost_at_list"), bad),
        "currency": text_col(c.get("currency"), n),
        "service": text_col(c.get("service.description"), n),
        "sku": text_col(c.get("sku.id"), n),
        "sku_description": text_col(c.get("sku.description"), n),
        "resource_id": coalesce(text_col(c.get("resource.global_name"), n), text_col(c.get("resource.name"), n)),
        "instance_type": [None] * n,
        "region": coalesce(text_col(c.get("location.region"), n), text_col(c.get("location.location"), n)),
        "quantity": num_col(c.get("usage.amount"), n, c.name("usage.amount"), bad, bound=None),
        "unit": text_col(c.get("usage.unit"), n),
        "tags": labels,
    }
    gpu_texts = [text_col(c.get("system_labels"), n)]
    export_time = ts_col(c.get("export_time"), n, c.name("export_time"), bad) if c.has("export_time") else None
    rows = Rows(n, data, ["gcp"] * n, gpu_texts, bad, export_time)
    return finish(rows, {"billing_period_start": c.name("invoice.month"),
                         "charge_period_start": c.name("usage_start_time"),
                         "billed_cost": c.name("cost"), "currency": c.name("currency")})
