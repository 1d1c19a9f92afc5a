"""Azure Retail Prices API (no key): one query per GPU VM size, pay-as-you-go Linux price in eastus.

`GET <base>?api-version=2023-01-01-preview&$filter=serviceName eq 'Virtual Machines' and armRegionName eq
'eastus' and armSkuName eq '<size>' and priceType eq 'Consumption'` answers {"Items": [...], "NextPageLink"}.
Windows, Spot and Low Priority meters are dropped; filter values are case-sensitive since 2023-01-01-preview.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from gpuspend.collectors.prices.common import FetchedPrice, Http, SourceError, make, number

SOURCE = "azure"
PROVIDER = "azure"
REGION = "eastus"
API_VERSION = "2023-01-01-preview"
MAX_PAGES = 10
# VM size -> (model key, GPUs): the form factor is in the size (NC..ads_H100_v5 is the NVL board).
SIZES: dict[str, tuple[str, int]] = {
    "Standard_ND96isr_H100_v5": ("H100-SXM", 8),
    "Standard_NC40ads_H100_v5": ("H100-NVL", 1),
    "Standard_NC80adis_H100_v5": ("H100-NVL", 2),
    "Standard_ND96isr_H200_v5": ("H200-SXM", 8),
    "Standard_ND96asr_v4": ("A100-40GB-SXM", 8),
    "Standard_ND96amsr_A100_v4": ("A100-80GB-SXM", 8),
    "Standard_NC24ads_A100_v4": ("A100-80GB-PCIE", 1),
    "Standard_NC4as_T4_v3": ("T4", 1),
}


def query_url(base: str, size: str, skip: int = 0) -> str:
    flt = (f"serviceName eq 'Virtual Machines' and armRegionName eq '{REGION}' and armSkuName eq '{size}' "
           "and priceType eq 'Consumption'")
    params: dict[str, Any] = {"api-version": API_VERSION, "$filter": flt}
    if skip:
        params["$skip"] = skip
    sep = "&" if "?" in base else "?"
    return base + sep + urlencode(params)


def _keep(item: dict[str, Any], size: str) -> bool:
    words = f"{item.get('productName', '')} {item.get('skuName', '')} {item.get('meterName', '')}"
    return (item.get("armSkuName") == size and item.get("type", "Consumption") == "Consumption"
            and str(item.get("unitOfMeasure", "1 Hour")) == "1 Hour" and item.get("currencyCode", "USD") == "USD"
            and not str(item.get("productName", "")).rstrip().endswith("Windows")
            and "Spot" not in words and "Low Priority" not in words)


def fetch(http: Http, base: str) -> list[FetchedPrice]:
    out: list[FetchedPrice] = []
    for size, (gpu, gpus) in SIZES.items():
        items: list[dict[str, Any]] = []
        url = query_url(base, size)
        for _page in range(MAX_PAGES):
            data = http.json(SOURCE, "GET", url)
            if not isinstance(data, dict) or not isinstance(data.get("Items"), list):
                raise SourceError("malformed answer: no Items list", where=f"{SOURCE} {url}")
            items += [i for i in data["Items"] if isinstance(i, dict)]
            nxt = data.get("NextPageLink")
            if not nxt:
                break
            # Follow the link only under the configured base (a mirror must not send us elsewhere); else page
            # by $skip, the documented fallback when NextPageLink broke.
            url = nxt if isinstance(nxt, str) and nxt.startswith(base) else query_url(base, size, len(items))
        kept = [i for i in items if _keep(i, size) and number(i.get("retailPrice")) is not None]
        if not kept:
            continue          # not sold in this region (or not any more): no row, never a guess
        # Several meters can survive (a price change mid-month): the newest effective one is the price.
        best = max(kept, key=lambda i: str(i.get("effectiveStartDate") or ""))
        row = make(PROVIDER, gpu, size, REGION, gpus, best.get("retailPrice"), query_url(base, size))
        if row is not None:
            out.append(row)
    return out
