"""SkyPilot's published catalogs (`<base>/<cloud>/vms.csv`): InstanceType, AcceleratorName, AcceleratorCount,
vCPUs, MemoryGiB, Price, SpotPrice, Region, AvailabilityZone. One row per instance type in the cloud's default
region (the cheapest zone). GCP's rows without an instance type price a GPU on its own: they are added to the
host price of the machine types that carry those GPUs (a3-highgpu-8g = host + 8 x H100)."""

from __future__ import annotations

import csv
import io
import re

from gpuspend.collectors.prices.common import FetchedPrice, Http, SourceError, make, number
from gpuspend.gpu_models import normalise_model

REGIONS = {"aws": "us-east-1", "gcp": "us-central1", "azure": "eastus", "lambda": "us-east-1"}
REQUIRED = {"InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "Region"}
# Instance families whose form factor the accelerator name does not say (SkyPilot writes plain 'H100').
FORM_FACTOR_BY_TYPE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^p5\."), "H100-SXM"), (re.compile(r"^p5e\.|^p5en\."), "H200-SXM"),
    (re.compile(r"^p4d\."), "A100-40GB-SXM"), (re.compile(r"^p4de\."), "A100-80GB-SXM"),
    (re.compile(r"^a3-(high|mega|edge)gpu"), "H100-SXM"), (re.compile(r"^a3-ultragpu"), "H200-SXM"),
    (re.compile(r"^a2-(high|mega)gpu"), "A100-40GB-SXM"), (re.compile(r"^a2-ultragpu"), "A100-80GB-SXM"),
]


# GCP's catalog prices the accelerator-optimised machine types without their GPUs (host vCPU/RAM only) and the
# GPUs in rows of their own (no InstanceType): the instance's list-equivalent price is host + N x GPU.
GCP_BUILT_IN: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^a2-(?:high|mega)gpu-(\d+)g$"), "A100", "A100-40GB-SXM"),
    (re.compile(r"^a2-ultragpu-(\d+)g$"), "A100-80GB", "A100-80GB-SXM"),
    (re.compile(r"^a3-(?:high|edge)gpu-(\d+)g$"), "H100", "H100-SXM"),
    (re.compile(r"^a3-megagpu-(\d+)g$"), "H100-MEGA", "H100-SXM"),
    (re.compile(r"^a3-ultragpu-(\d+)g$"), "H200", "H200-SXM"),
]


def source_name(cloud: str) -> str:
    return f"skypilot-{cloud}"


def model_key(instance_type: str, accelerator: str) -> str | None:
    for pattern, key in FORM_FACTOR_BY_TYPE:
        if pattern.search(instance_type):
            return key
    # Lambda-style names carry it: gpu_8x_h100_sxm5, gpu_1x_h100_pcie, gpu_8x_a100_80gb_sxm4.
    return normalise_model(f"{accelerator} {instance_type.replace('_', ' ')}" if accelerator else None)


def parse(text: str, cloud: str, url: str) -> list[FetchedPrice]:
    reader = csv.DictReader(io.StringIO(text))
    missing = REQUIRED - set(reader.fieldnames or ())
    if missing:
        raise SourceError(f"malformed answer: no {', '.join(sorted(missing))} column", where=f"{source_name(cloud)} {url}")
    region = REGIONS.get(cloud)
    best: dict[str, FetchedPrice] = {}
    try:
        rows: list[dict[str, str]] = list(reader)
    except csv.Error as exc:
        raise SourceError(f"malformed CSV: {exc}", where=f"{source_name(cloud)} {url}") from None
    rows = [r for r in rows if not region or r.get("Region") == region]
    gpu_price: dict[str, float] = {}      # GCP: accelerator -> $/GPU-hour (its own rows, cheapest zone)
    for r in rows:
        acc, count, price = (r.get("AcceleratorName") or "").strip(), number(r.get("AcceleratorCount")), \
            number(r.get("Price"))
        if not (r.get("InstanceType") or "").strip() and acc and count and price and price > 0:
            gpu_price[acc] = min(gpu_price.get(acc, price / count), price / count)

    def keep(row: FetchedPrice | None) -> None:
        if row is not None and (row.sku not in best or row.usd_per_hour < best[row.sku].usd_per_hour):
            best[row.sku] = row     # one row per instance type: its cheapest zone

    for r in rows:
        itype, acc = (r.get("InstanceType") or "").strip(), (r.get("AcceleratorName") or "").strip()
        count = number(r.get("AcceleratorCount"))
        if itype and acc and count:
            keep(make(cloud, model_key(itype, acc), itype, r.get("Region"), count, r.get("Price"), url))
        elif itype and not acc and cloud == "gcp":
            for pattern, gcp_acc, key in GCP_BUILT_IN:
                m = pattern.match(itype)
                host = number(r.get("Price"))
                if m and gcp_acc in gpu_price and host is not None and host >= 0:
                    n = int(m.group(1))
                    keep(make(cloud, key, itype, r.get("Region"), n, host + n * gpu_price[gcp_acc], url))
    return sorted(best.values(), key=lambda p: (p.gpu, p.sku))


def fetch(http: Http, base: str, cloud: str) -> list[FetchedPrice]:
    url = f"{base.rstrip('/')}/{cloud}/vms.csv"
    return parse(http.text(source_name(cloud), url), cloud, url)
