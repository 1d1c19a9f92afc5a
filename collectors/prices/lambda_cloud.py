"""Lambda instance types (`GET <url>/instance-types`, with the user's API key): price_cents_per_hour per
instance type; the GPU description ('H100 (80 GB SXM5)') and the type name carry the form factor."""

from __future__ import annotations

from gpuspend.collectors.prices.common import FetchedPrice, Http, SourceError, make, number
from gpuspend.gpu_models import normalise_model

SOURCE = PROVIDER = "lambda"


def fetch(http: Http, base: str, api_key: str) -> list[FetchedPrice]:
    url = f"{base.rstrip('/')}/instance-types"
    data = http.json(SOURCE, "GET", url, headers={"Authorization": f"Bearer {api_key}"})
    types = data.get("data") if isinstance(data, dict) else None
    if not isinstance(types, dict):
        raise SourceError("malformed answer: no data object", where=f"{SOURCE} {url}")
    out: list[FetchedPrice] = []
    for name, entry in sorted(types.items()):
        it = (entry or {}).get("instance_type") if isinstance(entry, dict) else None
        if not isinstance(it, dict):
            continue
        cents = number(it.get("price_cents_per_hour"))
        gpus = number((it.get("specs") or {}).get("gpus"))
        desc = str(it.get("gpu_description") or it.get("description") or "")
        model = normalise_model(f"{desc} {str(name).replace('_', ' ')}") if desc else None
        row = make(PROVIDER, model, name, None, gpus, cents / 100 if cents is not None else None, url)
        if row is not None:
            out.append(row)
    return out
