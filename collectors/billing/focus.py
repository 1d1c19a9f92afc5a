"""FOCUS 1.0-1.2 exports (AWS/Azure/GCP/Oracle FOCUS exports, FinOps sample data).

Already in FOCUS meanings: BilledCost and EffectiveCost are taken as they are, periods are UTC.
"""

from __future__ import annotations

from typing import Any

from gpuspend.collectors.billing.normalise import Cols, Rows, charge_frequency, const, finish
from gpuspend.collectors.billing.values import (
    BadValue,
    mapped,
    num_col,
    tags_col,
    text_col,
    text_first,
    ts_col,
)

NAME = "focus"
# Required to import (the spec's mandatory columns that carry the money and the periods).
REQUIRED = ("billedcost", "billingperiodstart", "chargeperiodstart", "chargecategory")
# Seen in every FOCUS file: used to score detection.
SIGNATURE = REQUIRED + ("effectivecost", "billingcurrency", "billingperiodend", "chargeperiodend",
                        "servicename", "providername", "billingaccountid", "listcost", "chargeclass")
# Spec examples leave BillingCurrency out, and one draft spells it BilledCurrency.
DEFAULT_CURRENCY = "USD"
EXPORT_TIME = ("x_exportdatetime", "x_exporttime", "x_exportdate")


def keys(header: list[str]) -> list[str]:
    from gpuspend.collectors.billing.reader import header_keys

    return header_keys(header)


def normalise(c: Cols, ctx: dict[str, Any]) -> Rows:
    n = c.n
    bad: list[BadValue] = []
    billed = num_col(c.get("billedcost"), n, c.name("billedcost"), bad)
    effective = num_col(c.get("effectivecost"), n, c.name("effectivecost"), bad) if c.has("effectivecost") \
        else list(billed)
    currency = text_col(c.get("billingcurrency", "billedcurrency"), n)
    notes: list[str] = []
    if not (c.has("billingcurrency") or c.has("billedcurrency")):
        # Never a silent USD: the configured currency, and the output says so.
        cur = str(ctx.get("currency") or DEFAULT_CURRENCY)
        currency = const(cur, n)
        notes.append(f"no BillingCurrency column: amounts read as {cur} (the `currency` setting)")
    # ServiceProviderName: FOCUS 1.2 deprecates ProviderName for it. The same provider, whichever column names
    # it, is the same slice: a month exported in both versions replaces, never adds to, the other.
    provider = text_col(c.get("providername", "serviceprovidername", "invoiceissuername"), n)
    category = text_col(c.get("chargecategory"), n)
    data = {
        "billing_account": text_col(c.get("billingaccountid"), n),
        "sub_account": text_col(c.get("subaccountid"), n),
        "billing_period_start": ts_col(c.get("billingperiodstart"), n, c.name("billingperiodstart"), bad),
        "billing_period_end": ts_col(c.get("billingperiodend"), n, c.name("billingperiodend"), bad),
        "charge_period_start": ts_col(c.get("chargeperiodstart"), n, c.name("chargeperiodstart"), bad),
        "charge_period_end": ts_col(c.get("chargeperiodend"), n, c.name("chargeperiodend"), bad),
        "charge_category": category,
        "charge_class": text_col(c.get("chargeclass"), n),
        "charge_type": text_col(c.get("x_chargetype", "x_costtype", "pricingcategory"), n),
        "charge_frequency": charge_frequency(category, text_col(c.get("chargefrequency"), n)),
        "billed_cost": billed,
        "effective_cost": effective,
        "list_cost": num_col(c.get("listcost"), n, c.name("listcost"), bad),
        "currency": currency,
        "service": text_col(c.get("servicename"), n),
        "sku": text_col(c.get("skuid"), n),
        "sku_description": text_col(c.get("chargedescription"), n),
        "resource_id": text_col(c.get("resourceid"), n),
        "instance_type": text_col(c.get("x_instancetype"), n),
        "region": text_first(n, c.get("regionid"), c.get("regionname")),
        "quantity": num_col(c.get("consumedquantity", "pricingquantity"), n, c.name("consumedquantity"), bad,
                            bound=None),
        "unit": text_col(c.get("consumedunit", "pricingunit"), n),
        "tags": tags_col(c.get("tags"), n, c.name("tags"), bad),
    }
    source = mapped(provider, lambda p: "focus:" + (p or "unknown"))
    gpu_texts = [text_col(c.get(k), n) for k in ("x_usagetype", "x_skumetersubcategory", "x_skudetails",
                                                  "skupricedetails", "skumeter")]
    export_time = ts_col(c.get(*EXPORT_TIME), n, c.name(*EXPORT_TIME), bad) if c.get(*EXPORT_TIME) is not None \
        else None
    rows = Rows(n, data, source, gpu_texts, bad, export_time, notes)
    required = {"billing_period_start": c.name("billingperiodstart"),
                "charge_period_start": c.name("chargeperiodstart"),
                "charge_category": c.name("chargecategory"),
                "billed_cost": c.name("billedcost")}
    if c.has("billingcurrency") or c.has("billedcurrency"):   # mandatory where the column is: no silent bucket
        required["currency"] = c.name("billingcurrency", "billedcurrency")
    return finish(rows, required)
