"""RunPod GPU types over GraphQL (`gpuTypes { id displayName memoryInGb securePrice communityPrice }`).

`id` is the NVML name ('NVIDIA H100 80GB HBM3', 'NVIDIA H100 NVL'), so it keys the form factor. The secure
cloud price is the list price; the community price is used only when a type has no secure price."""

from __future__ import annotations

from gpuspend.collectors.prices.common import FetchedPrice, Http, SourceError, make, number
from gpuspend.gpu_models import normalise_model

SOURCE = PROVIDER = "runpod"
QUERY = "query gpuspendGpuTypes { gpuTypes { id displayName memoryInGb securePrice communityPrice } }"


def fetch(http: Http, url: str, api_key: str | None = None) -> list[FetchedPrice]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    data = http.json(SOURCE, "POST", url, json={"query": QUERY}, headers=headers)
    types = ((data.get("data") or {}).get("gpuTypes") if isinstance(data, dict) else None)
    if not isinstance(types, list):
        raise SourceError("malformed answer: no data.gpuTypes list", where=f"{SOURCE} {url}")
    out: list[FetchedPrice] = []
    for t in types:
        if not isinstance(t, dict):
            continue
        name = str(t.get("id") or t.get("displayName") or "")
        secure, community = number(t.get("securePrice")), number(t.get("communityPrice"))
        price, tier = (secure, "secure") if secure else (community, "community")
        row = make(PROVIDER, normalise_model(name), f"{t.get('displayName') or name} {tier}", None, 1, price, url)
        if row is not None:
            out.append(row)
    return out
