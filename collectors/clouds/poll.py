"""Poll the configured GPU clouds and write what they report into the store.

Per provider, in one transaction: upsert `cloud_instances`, append one `cloud_spend` row per instance per
poll (the meter: Lambda has no billing API), and upsert one `gpus` row per remote GPU (uuid
'<provider>:<instance id>:<n>', host = instance name, source = provider, model normalised) with a
`gpu_samples` row per poll (util where the API gives it, else NULL), so the dashboard and report list remote
GPUs next to local ones. Vast.ai charges (its billing API) go to `cloud_charges`, replaced per month.

The poll log is metered in one place, gpuspend.costing.cloud_daily (the same gap rule as GPU samples: a
billed poll counts until the next one, or one poll interval after a gap of more than 3 intervals), which the
dashboard, `--report` and /metrics all read.

Costing joins a remote GPU to its price through the uuid: cloud_instances.price_per_hour / gpu_count for
(provider, instance_id) = the first two parts of gpus.uuid.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from gpuspend.collectors.clouds import lambda_cloud, runpod, vast
from gpuspend.collectors.clouds.common import CloudClient, CloudError, ProviderReading, normalise_gpu_name
from gpuspend.collectors.clouds.task import configured
from gpuspend.errors import GpuspendError
from gpuspend.store import get_meta, set_meta, transaction

if TYPE_CHECKING:
    from gpuspend.config import Config

PROVIDERS: dict[str, tuple[Callable[[CloudClient], ProviderReading], str]] = {
    "runpod": (runpod.fetch, "clouds.runpod.api_key (e.g. ${RUNPOD_API_KEY})"),
    "lambda": (lambda_cloud.fetch, "clouds.lambda.api_key (e.g. ${LAMBDA_API_KEY})"),
    "vast": (vast.fetch, "clouds.vast.api_key (e.g. ${VAST_API_KEY})"),
}
CHARGES_EVERY_MS = 3_600_000        # Vast charges change slowly; the API allows ~1 request/s
META_LAST_POLL = "clouds.last_poll_ms"


@dataclass
class PollResult:
    readings: dict[str, ProviderReading] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _client(name: str, cfg: Config, client: httpx.Client | None, backoff_s: float, timeout: float) -> CloudClient:
    section = cfg.clouds[name]
    url = section.get("url") or ""
    if name == "vast":
        url = vast.base_url(url)
    return CloudClient(name, url, section["api_key"], key_hint=PROVIDERS[name][1], client=client,
                       backoff_s=backoff_s, timeout=timeout)


def poll_clouds(conn: sqlite3.Connection, cfg: Config, now_ms: int, *, client: httpx.Client | None = None,
                backoff_s: float = 1.0, timeout: float = 15.0) -> PollResult:
    """Poll every configured provider; one failing provider does not stop the others. Errors are one line
    each (no API key in them) in the result; nothing is written for a provider that failed."""
    result = PollResult()
    for name in configured(cfg):
        fetch = PROVIDERS[name][0]
        try:
            with _client(name, cfg, client, backoff_s, timeout) as api:
                reading = fetch(api)
                charges = None
                if name == "vast" and _charges_due(conn, now_ms):
                    start, end = _month_bounds(now_ms)
                    charges = vast.fetch_charges(api, start, end)
        except GpuspendError as exc:
            result.errors.append(exc.line())
            continue
        with transaction(conn):
            write_reading(conn, reading, now_ms)
            if charges is not None:
                write_vast_charges(conn, charges, reading, now_ms)
        result.readings[name] = reading
    return result


def poll_task(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> None:
    """Collector periodic task: polls at most every clouds.interval; raises one line if a provider failed."""
    if not configured(cfg):
        return
    last = get_meta(conn, META_LAST_POLL)
    if last is not None and now_ms - int(last) < float(cfg.clouds.interval) * 1000:
        return
    result = poll_clouds(conn, cfg, now_ms)
    with transaction(conn):
        set_meta(conn, META_LAST_POLL, str(now_ms))
    if result.errors:
        more = f" (+{len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise CloudError(result.errors[0] + more)


def write_reading(conn: sqlite3.Connection, reading: ProviderReading, now_ms: int) -> None:
    """Inside the caller's transaction."""
    p = reading.provider
    seen = set()
    for inst in reading.instances:
        seen.add(inst.instance_id)
        model = normalise_gpu_name(inst.gpu_name)
        conn.execute(
            "INSERT INTO cloud_instances (provider, instance_id, name, gpu_model, gpu_count, price_per_hour, currency, "
            "status, util, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(provider, instance_id) DO UPDATE SET name = excluded.name, gpu_model = excluded.gpu_model, "
            "gpu_count = excluded.gpu_count, price_per_hour = COALESCE(excluded.price_per_hour, price_per_hour), "
            "currency = excluded.currency, status = excluded.status, util = excluded.util, "
            "last_seen = excluded.last_seen",
            (p, inst.instance_id, inst.name, model, inst.gpu_count, inst.price_per_hour, inst.currency, inst.status,
             _mean(inst.util), now_ms, now_ms))
        price = inst.price_per_hour
        if price is None:
            row = conn.execute("SELECT price_per_hour FROM cloud_instances WHERE provider = ? AND instance_id = ?",
                               (p, inst.instance_id)).fetchone()
            price = row[0] if row else None
        if price is not None:
            conn.execute("INSERT OR REPLACE INTO cloud_spend (provider, instance_id, ts, price_per_hour, running) "
                         "VALUES (?, ?, ?, ?, ?)", (p, inst.instance_id, now_ms, price, int(inst.running)))
        if inst.running:
            _write_gpus(conn, p, inst, model, now_ms)
    # Instances the provider no longer lists are gone (terminated): stop their meter once.
    for instance_id, price in conn.execute(
            "SELECT instance_id, price_per_hour FROM cloud_instances WHERE provider = ? AND status != 'gone'",
            (p,)).fetchall():
        if instance_id in seen:
            continue
        conn.execute("UPDATE cloud_instances SET status = 'gone' WHERE provider = ? AND instance_id = ?",
                     (p, instance_id))
        if price is not None:
            conn.execute("INSERT OR REPLACE INTO cloud_spend (provider, instance_id, ts, price_per_hour, running) "
                         "VALUES (?, ?, ?, ?, 0)", (p, instance_id, now_ms, price))
    spend = reading.spend_per_hour
    if spend is None:
        spend = sum(i.price_per_hour or 0.0 for i in reading.instances if i.running)
    set_meta(conn, f"clouds.{p}.spend_per_hour", json.dumps({"ts": now_ms, "value": spend,
                                                              "currency": reading.currency,
                                                              "reported": reading.spend_per_hour is not None}))


def _write_gpus(conn: sqlite3.Connection, provider: str, inst: Any, model: str | None, now_ms: int) -> None:
    for i in range(max(1, int(inst.gpu_count or 0))):
        uuid = f"{provider}:{inst.instance_id}:{i}"
        gpu_id = conn.execute(
            "INSERT INTO gpus (uuid, host, idx, name, model, source, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(uuid) DO UPDATE SET host = excluded.host, "
            "name = excluded.name, model = excluded.model, last_seen = excluded.last_seen, lost_at = NULL "
            "RETURNING id", (uuid, inst.name, i, inst.gpu_name, model, provider, now_ms, now_ms)).fetchone()[0]
        util = inst.util[i] if i < len(inst.util) else None
        # one sample per poll: a one-sample row (n 1, span 0 by default; gpuspend.samples), polls minutes apart
        conn.execute("INSERT OR REPLACE INTO gpu_samples (gpu_id, ts, util) VALUES (?, ?, ?)", (gpu_id, now_ms, util))


def _mean(values: tuple[float | None, ...]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _month_bounds(now_ms: int) -> tuple[int, int]:
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return int(start.timestamp()), int(nxt.timestamp()) - 1


def _charges_due(conn: sqlite3.Connection, now_ms: int) -> bool:
    last = get_meta(conn, "clouds.vast.charges_ms")
    return last is None or now_ms - int(last) >= CHARGES_EVERY_MS


def write_vast_charges(conn: sqlite3.Connection, charges: list[vast.Charge], reading: ProviderReading,
                       now_ms: int) -> int:
    """Replace this month's Vast.ai charges in `cloud_charges`. Inside the caller's transaction.

    Not written as a billing import on purpose: costing takes the imports' coverage end as the point after
    which local GPUs are metered, and a live API's "now" would wrongly end metering for every other GPU."""
    start, _end = _month_bounds(now_ms)
    models = {f"instance-{i.instance_id}": normalise_gpu_name(i.gpu_name) for i in reading.instances}
    conn.execute("DELETE FROM cloud_charges WHERE provider = 'vast' AND period_start = ?", (start,))
    conn.executemany(
        "INSERT INTO cloud_charges (provider, period_start, source, kind, start, end, amount, currency, description, "
        "label, gpu_model, fetched) VALUES ('vast', ?, ?, ?, ?, ?, ?, 'USD', ?, ?, ?, ?)",
        [(start, c.source, c.kind, c.start_s, c.end_s, c.amount, c.description, c.label,
          models.get(c.source) if c.kind == "gpu" else None, now_ms) for c in charges])
    set_meta(conn, "clouds.vast.charges_ms", str(now_ms))
    return len(charges)

