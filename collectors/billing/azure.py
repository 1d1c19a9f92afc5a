"""Azure Cost Management cost details: EA (PascalCase), MCA (camelCase), legacy pay-as-you-go (PreTaxCost,
UsageDateTime), localized headers ("Label (Key)"), actual and amortised datasets.

Headers are matched case-insensitively with their synonyms. Dates are UTC days in US or ISO spelling;
billing period ends are inclusive in the file and stored exclusive. The *actual* dataset is cash (billed);
the *amortised* dataset is effective cost: it is stored with billed = NULL under its own source, and the
importer drops the actual rows' stand-in effective cost when both datasets of a period are present.
"""

from __future__ import annotations

import re
from typing import Any

from gpuspend.collectors.billing.normalise import Cols, Rows, coalesce, finish, month_start, next_month
from gpuspend.collectors.billing.values import (
    BadValue,
    loads_lenient,
    mapped,
    num_col,
    tags_col,
    text_col,
    ts_col,
)

NAME = "azure"
COST = ("costinbillingcurrency", "cost", "pretaxcost")
DATE = ("date", "usagedatetime")
CURRENCY = ("billingcurrency", "billingcurrencycode", "currency")
REQUIRED = (COST, DATE, CURRENCY)
SIGNATURE_ANY = (COST, DATE, CURRENCY, ("metercategory",), ("meterid",), ("subscriptionid", "subscriptionguid"),
                 ("metername",), ("consumedservice",), ("resourcelocation",), ("unitofmeasure",))
CATEGORY = {"usage": "Usage", "purchase": "Purchase", "refund": "Credit", "unusedreservation": "Usage",
            "unusedsavingsplan": "Usage", "roundingadjustment": "Adjustment", "tax": "Tax", "credit": "Credit"}
DAY = 86400
_AMORTISED = re.compile(r"amorti[sz]", re.IGNORECASE)


def keys(header: list[str]) -> list[str]:
    from gpuspend.collectors.billing.reader import header_keys

    return header_keys(header)


def dataset_of(path_text: str) -> str:
    """'amortized' when the export's name says so (Azure names datasets ActualCost / AmortizedCost)."""
    return "amortized" if _AMORTISED.search(path_text) else "actual"


def _service_type(info: str | None) -> str | None:
    if not info:
        return None
    try:
        obj = loads_lenient(info)
    except ValueError:
        return None
    if isinstance(obj, dict):
        v = obj.get("ServiceType") or obj.get("serviceType")
        return str(v) if v else None
    return None


def normalise(c: Cols, ctx: dict[str, Any]) -> Rows:
    n = c.n
    bad: list[BadValue] = []
    dataset = ctx.get("dataset") or dataset_of(str(ctx.get("path", "")))
    cost = num_col(c.get(*COST), n, c.name(*COST), bad)
    day = ts_col(c.get(*DATE), n, c.name(*DATE), bad)
    bp_start = ts_col(c.get("billingperiodstartdate"), n, c.name("billingperiodstartdate"), bad)
    bp_end_incl = ts_col(c.get("billingperiodenddate"), n, c.name("billingperiodenddate"), bad)
    # Inclusive last day -> exclusive end. Where the file has no period (pay-as-you-go files, or MCA exports
    # that leave the cells empty) the row's usage month is its billing period: a NULL period would drop the
    # row out of every month.
    bp_start = [s if s is not None else month_start(t) for s, t in zip(bp_start, day, strict=True)]
    bp_end = [(e // DAY + 1) * DAY if e is not None else next_month(s)
              for s, e in zip(bp_start, bp_end_incl, strict=True)]
    charge_type = text_col(c.get("chargetype"), n)
    currency = text_col(c.get(*CURRENCY), n)
    info = text_col(c.get("additionalinfo"), n)
    data = {
        "billing_account": coalesce(text_col(c.get("billingaccountid"), n),
                                    text_col(c.get("subscriptionid", "subscriptionguid"), n)),
        "sub_account": text_col(c.get("subscriptionid", "subscriptionguid"), n),
        "billing_period_start": bp_start,
        "billing_period_end": bp_end,
        "charge_period_start": [None if t is None else t - t % DAY if c.has("date") else t for t in day],
        "charge_period_end": [None if t is None else (t // DAY + 1) * DAY if c.has("date") else t + 3600
                              for t in day],
        "charge_category": mapped(charge_type, lambda t: CATEGORY.get((t or "usage").lower(), "Adjustment")),
        "charge_class": [None] * n,
        # purchases read as one-time (see costing/month.py); a refund is money once, never a day's rate
        "charge_frequency": mapped(charge_type, lambda t: "One-Time" if (t or "").lower() == "refund" else None),
        "charge_type": charge_type,
        "billed_cost": list(cost) if dataset == "actual" else [None] * n,
        "effective_cost": cost,
        "list_cost": None,
        "currency": currency,
        "service": text_col(c.get("metercategory", "servicename"), n),
        "sku": text_col(c.get("meterid"), n),
        "sku_description": coalesce(text_col(c.get("metername"), n), text_col(c.get("productname", "product"), n)),
        "resource_id": text_col(c.get("resourceid", "instanceid"), n),
        "instance_type": mapped(info, _service_type),
        "region": coalesce(text_col(c.get("resourcelocation"), n), text_col(c.get("meterregion"), n)),
        "quantity": num_col(c.get("quantity", "usagequantity"), n, c.name("quantity", "usagequantity"), bad,
                            bound=None),
        "unit": text_col(c.get("unitofmeasure"), n),
        "tags": tags_col(c.get("tags"), n, c.name("tags"), bad),
    }
    payg = num_col(c.get("paygprice"), n, c.name("paygprice"), bad)
    data["list_cost"] = [None if p is None or q is None or p == 0 else p * q
                         for p, q in zip(payg, data["quantity"], strict=True)]
    gpu_texts = [text_col(c.get("metersubcategory"), n), text_col(c.get("productname", "product"), n)]
    notes = ["amortized dataset: effective cost only, no billed cost; the actual-cost export carries the invoice"] \
        if dataset == "amortized" else []
    rows = Rows(n, data, [f"azure-{dataset}"] * n, gpu_texts, bad, notes=notes)
    return finish(rows, {"charge_period_start": c.name(*DATE), "currency": c.name(*CURRENCY),
                         "effective_cost": c.name(*COST)})
