"""Vast.ai: a marketplace, not a list price. The median $/GPU-hour of rentable on-demand offers per model,
stored as kind 'market' and labelled so ('median of N offers'); a model with fewer than MIN_OFFERS is skipped."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict

from gpuspend.collectors.prices.common import FetchedPrice, Http, SourceError, make, number
from gpuspend.gpu_models import normalise_model

SOURCE = PROVIDER = "vast"
MIN_OFFERS = 3
QUERY = {"rentable": {"eq": True}, "rented": {"eq": False}, "type": "on-demand", "limit": 5000}


def model_of(offer: dict) -> str | None:
    name = str(offer.get("gpu_name") or "")
    ram = number(offer.get("gpu_ram"))          # MB per GPU: 40 vs 80 GB A100s differ in price
    return normalise_model(f"{name} {round(ram / 1024)}GB" if ram else name)


def fetch(http: Http, base: str) -> list[FetchedPrice]:
    url = f"{base.rstrip('/')}/bundles/"
    data = http.json(SOURCE, "GET", url, params={"q": json.dumps(QUERY)})
    offers = data.get("offers") if isinstance(data, dict) else None
    if not isinstance(offers, list):
        raise SourceError("malformed answer: no offers list", where=f"{SOURCE} {url}")
    per_gpu: dict[str, list[float]] = defaultdict(list)
    for o in offers:
        if not isinstance(o, dict):
            continue
        n, price, model = number(o.get("num_gpus")), number(o.get("dph_total")), model_of(o)
        if model and n and n > 0 and price and price > 0:
            per_gpu[model].append(price / n)
    out: list[FetchedPrice] = []
    for model, prices in sorted(per_gpu.items()):
        if len(prices) < MIN_OFFERS:
            continue
        row = make(PROVIDER, model, f"median of {len(prices)} on-demand offers", None, 1,
                   statistics.median(prices), url, kind="market")
        if row is not None:
            out.append(row)
    return out
