"""Lambda Cloud: GET /instances and /instance-types (reference/billing-formats.md 5.1).

Lambda has no billing endpoint and no instance start time, so spend is metered locally: every poll records
each instance's price and whether it is billed (booting, active, unhealthy), and cost is integrated over
the polls (gpuspend.costing.cloud_daily). Prices are integer US cents per instance-hour.
"""

from __future__ import annotations

from typing import Any

from gpuspend.collectors.clouds.common import CloudClient, ProviderReading, RemoteInstance, expect, number

PROVIDER = "lambda"
BILLED = {"booting", "active", "unhealthy"}


def fetch(client: CloudClient) -> ProviderReading:
    where = client._where("")          # never the raw URL: it may carry a key
    instances = expect(client.get("/instances"), "data", list, where + "/instances")
    types: dict[str, Any] | None = None
    out = []
    for inst in instances:
        if not isinstance(inst, dict) or not inst.get("id"):
            continue
        itype = inst.get("instance_type") or {}
        price_cents = number(itype.get("price_cents_per_hour"))
        gpus = number((itype.get("specs") or {}).get("gpus"))
        if price_cents is None or gpus is None:
            # Older answers carry only the type name: look its price up once per poll.
            if types is None:
                types = expect(client.get("/instance-types"), "data", dict, where + "/instance-types")
            full = (types.get(itype.get("name", "")) or {}).get("instance_type") or {}
            itype = {**full, **{k: v for k, v in itype.items() if v is not None}}
            price_cents = number(itype.get("price_cents_per_hour"))
            gpus = number((itype.get("specs") or {}).get("gpus"))
        status = str(inst.get("status") or "unknown")
        out.append(RemoteInstance(PROVIDER, str(inst["id"]), str(inst.get("name") or inst.get("hostname")
                                                                  or inst["id"]),
                                  itype.get("gpu_description") or itype.get("description"), gpus or 0.0,
                                  None if price_cents is None else price_cents / 100.0, status, status in BILLED))
    return ProviderReading(PROVIDER, tuple(out), None)
