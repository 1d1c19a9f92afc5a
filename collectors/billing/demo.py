"""Demo billing: a small FOCUS export for the demo box, imported through the normal importer.

An AWS p5.48xlarge (8x H100) on demand, hourly, from the start of the previous month up to yesterday
00:00 UTC (exports lag about a day), plus EBS, S3, data transfer and a monthly tax line. Written to a temp
CSV and imported with `import_paths`, so the demo exercises the real path end to end.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from gpuspend.collectors.billing.importer import FileResult, import_paths

DEMO_ACCOUNT = "123456789012"
DEMO_INSTANCE = "i-0demo0p5h100box1"
DEMO_RESOURCE = f"arn:aws:ec2:us-east-1:{DEMO_ACCOUNT}:instance/{DEMO_INSTANCE}"
P5_RATE = 55.04             # USD per instance-hour, on demand (gpuspend/data/prices.yaml, aws p5.48xlarge)
HEADER = ("BillingAccountId", "BillingAccountName", "SubAccountId", "BillingPeriodStart", "BillingPeriodEnd",
          "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription",
          "BilledCost", "EffectiveCost", "ListCost", "BillingCurrency", "ProviderName", "ServiceName",
          "ServiceCategory", "SkuId", "ResourceId", "RegionId", "ConsumedQuantity", "ConsumedUnit", "Tags",
          "x_UsageType")


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _month_start(ts: int, delta: int = 0) -> int:
    t = datetime.fromtimestamp(ts, UTC)
    y, m = t.year, t.month + delta
    while m < 1:
        y, m = y - 1, m + 12
    while m > 12:
        y, m = y + 1, m - 12
    return int(datetime(y, m, 1, tzinfo=UTC).timestamp())


def demo_rows(now_ms: int) -> list[dict[str, str]]:
    now = now_ms // 1000
    until = now - now % 86400 - 86400               # yesterday 00:00 UTC
    start = _month_start(now, -1)
    rows: list[dict[str, str]] = []
    tags = json.dumps({"team": "ml-research", "project": "llm-pretrain"})

    def add(ts: int, dur: int, cat: str, desc: str, cost: float, service: str, svc_cat: str, sku: str,
            res: str | None, qty: float, unit: str, usage: str, eff: float | None = None) -> None:
        bp = _month_start(ts)
        rows.append({
            "BillingAccountId": DEMO_ACCOUNT, "BillingAccountName": "gpuspend demo", "SubAccountId": DEMO_ACCOUNT,
            "BillingPeriodStart": _iso(bp), "BillingPeriodEnd": _iso(_month_start(bp, 1)),
            "ChargePeriodStart": _iso(ts), "ChargePeriodEnd": _iso(ts + dur), "ChargeCategory": cat,
            "ChargeClass": "", "ChargeDescription": desc, "BilledCost": f"{cost:.10f}",
            "EffectiveCost": f"{cost if eff is None else eff:.10f}", "ListCost": f"{cost:.10f}",
            "BillingCurrency": "USD", "ProviderName": "AWS", "ServiceName": service, "ServiceCategory": svc_cat,
            "SkuId": sku, "ResourceId": res or "", "RegionId": "us-east-1", "ConsumedQuantity": f"{qty:g}",
            "ConsumedUnit": unit, "Tags": tags if res else "", "x_UsageType": usage,
        })

    for ts in range(start, until, 3600):
        add(ts, 3600, "Usage", f"${P5_RATE} per On Demand Linux p5.48xlarge Instance Hour", P5_RATE,
            "Amazon Elastic Compute Cloud", "Compute", "DEMOP548XLARGE", DEMO_RESOURCE, 1, "Hours",
            "USE1-BoxUsage:p5.48xlarge")
    for ts in range(start, until, 86400):
        day = (ts - start) // 86400
        add(ts, 86400, "Usage", "$0.08 per GB-month of General Purpose (gp3) provisioned storage", 2000 * 0.08 / 30,
            "Amazon Elastic Compute Cloud", "Storage", "DEMOGP3", f"arn:aws:ec2:us-east-1:{DEMO_ACCOUNT}:volume/"
            "vol-0demo0data0001", 2000 / 30, "GB-Mo", "USE1-EBS:VolumeUsage.gp3")
        s3_gb = 40_000 + 350 * day
        add(ts, 86400, "Usage", "$0.023 per GB - first 50 TB / month of storage used", s3_gb * 0.023 / 30,
            "Amazon Simple Storage Service", "Storage", "DEMOS3STD", "arn:aws:s3:::demo-training-data", s3_gb / 30,
            "GB-Mo", "TimedStorage-ByteHrs")
        egress = 120 + (day * 37) % 90
        add(ts, 86400, "Usage", "$0.09 per GB - first 10 TB / month data transfer out", egress * 0.09,
            "AWS Data Transfer", "Networking", "DEMOEGRESS", None, egress, "GB", "USE1-DataTransfer-Out-Bytes")
    # Sales tax for the closed previous month, charged on its last day.
    prev_total = sum(float(r["BilledCost"]) for r in rows if r["BillingPeriodStart"] == _iso(start))
    last_day = _month_start(start, 1) - 86400
    if last_day < until:
        add(last_day, 86400, "Tax", "Sales tax", round(prev_total * 0.0625, 2), "Tax", "Other", "TAX", None, 1,
            "", "Tax")
    return rows


def import_demo_billing(conn: sqlite3.Connection, now_ms: int) -> list[FileResult]:
    """Write the demo FOCUS export to a temp CSV and import it. Returns the importer's results."""
    with tempfile.TemporaryDirectory(prefix="gpuspend-demo-billing-") as tmp:
        path = Path(tmp) / "demo-focus-export.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=HEADER)
            w.writeheader()
            w.writerows(demo_rows(now_ms))
        return import_paths(conn, [path], now_s=now_ms // 1000)
