"""Vast.ai: instances (GET /api/v1/instances/, 25 per page, next_token) with dph_total, and per-instance
charges (GET /api/v0/charges/ with a required day range) (reference/billing-formats.md 5.3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gpuspend.collectors.clouds.common import CloudClient, ProviderReading, RemoteInstance, number

PROVIDER = "vast"


@dataclass(frozen=True)
class Charge:
    source: str             # instance-12345678
    kind: str               # gpu | disk | bwd | bwu (or the contract type when it has no items)
    description: str
    amount: float
    start_s: int | None
    end_s: int | None
    label: str | None


def base_url(url: str) -> str:
    """The config may name the v0 or v1 API root; both endpoints hang off the origin."""
    url = url.rstrip("/")
    for suffix in ("/api/v0", "/api/v1"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def fetch(client: CloudClient) -> ProviderReading:
    out = []
    for inst in client.paginate("/api/v1/instances/", {"limit": 25}, "instances"):
        if not isinstance(inst, dict) or inst.get("id") is None:
            continue
        status = str(inst.get("actual_status") or inst.get("cur_state") or "unknown")
        count = number(inst.get("num_gpus")) or 0.0
        util = number(inst.get("gpu_util"))
        out.append(RemoteInstance(PROVIDER, str(inst["id"]), str(inst.get("label") or f"vast-{inst['id']}"),
                                  inst.get("gpu_name"), count, number(inst.get("dph_total")), status,
                                  status == "running", tuple([util] * int(count)) if util is not None else ()))
    return ProviderReading(PROVIDER, tuple(out), None)


def fetch_charges(client: CloudClient, start_s: int, end_s: int) -> list[Charge]:
    """Every charge line (per item type) for contracts with charges between start_s and end_s."""
    params = {"select_filters": json.dumps({"day": {"gte": start_s, "lte": end_s}}), "limit": 500,
              "latest_first": "false"}
    out = []
    for row in client.paginate("/api/v0/charges/", params, "results"):
        if not isinstance(row, dict):
            continue
        label = (row.get("metadata") or {}).get("label")
        items: list[Any] = row.get("items") or [row]
        for it in items:
            amount = number(it.get("amount"))
            if amount is None:
                continue
            out.append(Charge(str(row.get("source") or ""), str(it.get("type") or row.get("type") or ""),
                              str(it.get("description") or row.get("description") or ""), amount,
                              _int(it.get("start", row.get("start"))), _int(it.get("end", row.get("end"))), label))
    return out


def _int(v: Any) -> int | None:
    n = number(v)
    return None if n is None else int(n)
