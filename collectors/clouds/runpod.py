"""RunPod: GraphQL `myself { currentSpendPerHr pods { ... } }` (reference/billing-formats.md 5.2).

currentSpendPerHr is RunPod's own burn rate (USD/h); each pod reports costPerHr for the whole pod and, while
it runs, per-GPU utilisation in runtime.gpus[].gpuUtilPercent.
"""

from __future__ import annotations

from typing import Any

from gpuspend.collectors.clouds.common import (
    CloudAuthError,
    CloudClient,
    CloudError,
    ProviderReading,
    RemoteInstance,
    _clean,
    number,
)

PROVIDER = "runpod"
QUERY = ("query gpuspendPods { myself { currentSpendPerHr pods { id name costPerHr desiredStatus gpuCount "
         "machine { gpuDisplayName } runtime { uptimeInSeconds gpus { id gpuUtilPercent } } } } }")


def fetch(client: CloudClient) -> ProviderReading:
    where = client._where("")          # never the raw URL: it may carry ?api_key=
    data = client.post("", {"query": QUERY})
    if not isinstance(data, dict):
        raise CloudError("unexpected answer: not a JSON object", where=where)
    errors = data.get("errors")
    if errors:
        first = errors[0].get("message", "") if isinstance(errors[0], dict) else str(errors[0])
        text = _clean(str(first), client.api_key)[:160]      # raw control characters never reach stderr
        if any(w in text.lower() for w in ("unauthorized", "api key", "not authenticated", "forbidden")):
            raise CloudAuthError(f"{PROVIDER} rejected the API key ({text})", where=where,
                                 hint=f"check {client.key_hint}")
        raise CloudError(f"GraphQL error: {text}", where=where)
    myself = (data.get("data") or {}).get("myself")
    if myself is None:
        # RunPod answers an unknown key with myself: null rather than an HTTP error.
        raise CloudAuthError(f"{PROVIDER} returned no account for this API key", where=where,
                             hint=f"check {client.key_hint}")
    pods = myself.get("pods") or []
    if not isinstance(pods, list):
        raise CloudError("unexpected answer: myself.pods is not a list", where=where)
    return ProviderReading(PROVIDER, tuple(_pod(p) for p in pods if isinstance(p, dict) and p.get("id")),
                           number(myself.get("currentSpendPerHr")))


def _pod(p: dict[str, Any]) -> RemoteInstance:
    runtime = p.get("runtime") or {}
    gpus = runtime.get("gpus") or []
    count = number(p.get("gpuCount")) or float(len(gpus)) or 0.0
    util = tuple(number(g.get("gpuUtilPercent")) for g in gpus if isinstance(g, dict))
    status = str(p.get("desiredStatus") or "UNKNOWN")
    return RemoteInstance(PROVIDER, str(p["id"]), str(p.get("name") or p["id"]),
                          (p.get("machine") or {}).get("gpuDisplayName"), count, number(p.get("costPerHr")),
                          status.lower(), status == "RUNNING", util)
