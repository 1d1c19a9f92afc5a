"""What one GPU costs per hour, and where that number comes from (DESIGN.md "Cost semantics").

Sources, first that applies: config `rates:` -> billing-derived (this machine's resource in the imported
exports) -> on-prem (capex amortised + measured power x PUE x electricity) -> the shipped catalog for
`provider:` and model (dated; stale entries flagged) -> none ("no rate", never $0). GPUs rented from GPU
clouds (RunPod, Lambda, Vast) take the price their API reports (source "provider").
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuspend import clock
from gpuspend.fmt import money
from gpuspend.fmt import rate as rate_label
from gpuspend.rollup import REMOTE_SOURCES
from gpuspend.snapshot import Rate

if TYPE_CHECKING:
    from gpuspend.config import Config

# EC2 (and some other clouds) put the instance id here; readable without root.
DMI_ASSET_TAG = Path("/sys/devices/virtual/dmi/id/board_asset_tag")
CLOUD_SOURCES = REMOTE_SOURCES     # GPUs rented from GPU clouds: priced by the provider's API
# The simulated demo box prices itself like an AWS p5 when no provider is configured, so the demo has money.
DEMO_PROVIDER = "aws"
BILLING_WINDOW_S = 7 * 86400     # billing-derived rate: effective cost over the last week of charges
# The resource id of the machine the database describes, when neither config nor the platform names it:
# written by the demo for its simulated p5 (so demo GPUs are priced from its billing like a real EC2 box).
META_RESOURCE_ID = "billing.resource_id"


@dataclass(frozen=True)
class PriceEntry:
    provider: str
    gpu: str
    sku: str
    gpus_per_instance: int
    usd_per_hour: float
    region: str | None
    as_of: str
    source: str

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.usd_per_hour / self.gpus_per_instance


@dataclass(frozen=True)
class Catalog:
    as_of: str
    stale_after_days: float
    entries: tuple[PriceEntry, ...]

    def lookup(self, provider: str | None, model: str | None) -> PriceEntry | None:
        if not provider or not model:
            return None
        p, m = provider.lower(), model.upper()
        for e in self.entries:
            if e.provider == p and e.gpu.upper() == m:
                return e
        return None

    def for_model(self, model: str | None) -> list[PriceEntry]:
        m = (model or "").upper()
        return [e for e in self.entries if e.gpu.upper() == m]

    def providers(self) -> list[str]:
        return sorted({e.provider for e in self.entries})


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The shipped catalog (gpuspend/data/prices.yaml), parsed once per process."""
    import yaml

    text = resources.files("gpuspend").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    # libyaml's C loader when PyYAML has it: the pure-Python parser took ~70 ms of the dashboard's first frame.
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    entries = tuple(
        PriceEntry(provider=str(r["provider"]).lower(), gpu=str(r["gpu"]), sku=str(r["sku"]),
                   gpus_per_instance=int(r.get("gpus_per_instance") or 1), usd_per_hour=float(r["usd_per_hour"]),
                   region=r.get("region"), as_of=str(r["as_of"]), source=str(r["source"]))
        for r in raw["prices"])
    return Catalog(as_of=str(raw["catalog_as_of"]), stale_after_days=float(raw.get("stale_after_days", 90)),
                   entries=entries)


def age_days(as_of: str, now_ms: int | None = None) -> float:
    now = clock.now_ms() if now_ms is None else now_ms
    d = datetime.strptime(as_of, "%Y-%m-%d").replace(tzinfo=UTC)
    return (now / 1000 - d.timestamp()) / 86400


def is_stale(as_of: str | None, cfg: Config, now_ms: int | None = None) -> bool:
    if not as_of:
        return False
    return age_days(as_of, now_ms) * 86400 > float(cfg.alerts.stale_catalog)


def _get(gpu: Any, key: str) -> Any:
    try:
        return gpu[key]
    except (KeyError, IndexError, TypeError):
        return getattr(gpu, key, None)


# -- the sources, in order -----------------------------------------------------------------------------
def _from_config(cfg: Config, gpu: Any) -> Rate | None:
    rates = cfg.rates
    cur = cfg.currency or "USD"
    uuid, idx, host, model = _get(gpu, "uuid"), _get(gpu, "idx"), _get(gpu, "host"), _get(gpu, "model")
    per_gpu = rates.per_gpu or {}
    for key in (uuid, str(idx) if idx is not None else None):
        if key is not None and key in per_gpu:
            return Rate(float(per_gpu[key]), cur, "config", f"config: per_gpu {key} {rate_label(per_gpu[key], cur)}")
    per_host = rates.per_host or {}
    if host and host in per_host:
        return Rate(float(per_host[host]), cur, "config", f"config: per_host {host} {rate_label(per_host[host], cur)}")
    per_model = rates.per_model or {}
    for key, value in per_model.items():
        if model and key.upper() == str(model).upper():
            return Rate(float(value), cur, "config", f"config: per_model {key} {rate_label(value, cur)}")
    inst = rates.instance or {}
    if inst.get("usd_per_hour") is not None:
        n = inst.get("gpus") or 1
        v = float(inst["usd_per_hour"]) / n
        return Rate(v, cur, "config", f"config: instance {rate_label(inst['usd_per_hour'], cur)} / {n} GPUs")
    return None


def detect_resource_id(asset_tag_path: Path | None = None) -> str | None:
    """The cloud instance id of this machine, if the platform exposes it (EC2: i-0123456789abcdef0)."""
    path = DMI_ASSET_TAG if asset_tag_path is None else asset_tag_path
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return text if text.startswith("i-") and len(text) <= 32 else None


def _host_gpu_count(conn: sqlite3.Connection, host: str | None) -> int:
    row = conn.execute("SELECT COUNT(*) FROM gpus WHERE host = ? AND parent_id IS NULL", (host,)).fetchone()
    return int(row[0]) if row and row[0] else 1


def machine_resource_id(cfg: Config, conn: sqlite3.Connection | None, asset_tag_path: Path | None = None) -> str | None:
    """This machine's billing resource id: `billing.resource_id` from config, else the platform's asset tag,
    else the one recorded in the database (meta billing.resource_id)."""
    rid = cfg.billing.resource_id or detect_resource_id(asset_tag_path)
    if not rid and conn is not None:
        from gpuspend.store import get_meta

        rid = get_meta(conn, META_RESOURCE_ID)
    return rid or None


def _from_billing(cfg: Config, conn: sqlite3.Connection | None, gpu: Any, asset_tag_path: Path | None) -> Rate | None:
    if conn is None:
        return None
    rid = machine_resource_id(cfg, conn, asset_tag_path)
    if not rid:
        return None
    # Charges change only with an import, which bumps the billing generation in its transaction: the scan
    # below (resource ids are not indexed, and may be matched by suffix) is done once per generation, not once
    # per GPU per snapshot (a durable entry of the cost engine's read cache, gpuspend.costing.context).
    from gpuspend.costing.context import cache_for
    from gpuspend.store import BILLING_GENERATION, get_meta

    key = (rid, get_meta(conn, BILLING_GENERATION),
           tuple(conn.execute("SELECT COUNT(*), MAX(id), MAX(imported_at) FROM imports").fetchone()))
    found = cache_for(conn).get("billing_window", key, lambda: _billing_window(conn, rid), durable=True)
    if found is None:
        return None
    cur, total, start, stop, gpus, provider = found
    hours = max((stop - start) / 3600.0, 1 / 60)
    n = int(gpus) if gpus else _host_gpu_count(conn, _get(gpu, "host"))
    per_gpu = (total or 0.0) / hours / max(n, 1)
    return Rate(per_gpu, cur or "USD", "billing",
                f"billing: {rid} {rate_label(total / hours, cur or 'USD')} / {n} GPUs",
                provider=provider or (cfg.provider.lower() if cfg.provider else None))


def _billing_window(conn: sqlite3.Connection, rid: str) -> tuple | None:
    """(currency, effective cost, first start, last end, GPU count, catalog provider) of this resource's last
    week of charges; the provider is read from the import's source (e.g. 'focus:AWS' -> aws)."""
    # Resource ids are instance ids in EC2 CUR but ARNs/paths elsewhere: match the id or a suffix of it.
    row = conn.execute(
        "SELECT MAX(charge_period_end) FROM charges WHERE resource_id = ? OR resource_id LIKE ?",
        (rid, "%/" + rid)).fetchone()
    if not row or row[0] is None:
        return None
    end = row[0]
    rows = conn.execute(
        "SELECT currency, SUM(COALESCE(effective_cost, billed_cost)), MIN(charge_period_start), "
        "MAX(charge_period_end), MAX(gpu_count), MAX(import_id) FROM charges "
        "WHERE (resource_id = ? OR resource_id LIKE ?) AND charge_period_end > ? "
        "GROUP BY currency ORDER BY COUNT(*) DESC",
        (rid, "%/" + rid, end - BILLING_WINDOW_S)).fetchall()
    if not rows:
        return None
    *head, import_id = rows[0]
    src = conn.execute("SELECT source, format FROM imports WHERE id = ?", (import_id,)).fetchone()
    words = set(re.split(r"[^a-z0-9]+", " ".join(str(v) for v in (src or ()) if v).lower()))
    provider = next((p for p in load_catalog().providers() if p in words), None)
    return (*head, provider)


def _measured_power(conn: sqlite3.Connection | None, gpu: Any) -> float | None:
    p = _get(gpu, "power")
    if p is not None:
        return float(p)
    if conn is None or _get(gpu, "id") is None:
        return None
    row = conn.execute("SELECT AVG(power_avg) FROM (SELECT power_avg FROM gpu_minutes WHERE gpu_id = ? "
                       "ORDER BY minute DESC LIMIT 60)", (_get(gpu, "id"),)).fetchone()
    return float(row[0]) if row and row[0] is not None else None


def _from_onprem(cfg: Config, conn: sqlite3.Connection | None, gpu: Any) -> Rate | None:
    op = cfg.onprem
    if op.purchase_price is None and op.electricity_per_kwh is None:
        return None
    cur = cfg.currency or "USD"
    capex = 0.0
    parts = []
    if op.purchase_price is not None:
        years = float(op.amortise_years or 4.0)
        capex = float(op.purchase_price) / (years * 365 * 24)
        parts.append(f"{money(op.purchase_price, cur)} over {years:g} y")
    energy = 0.0
    if op.electricity_per_kwh is not None:
        watts = _measured_power(conn, gpu)
        if watts is not None:
            energy = watts / 1000.0 * float(op.pue or 1.0) * float(op.electricity_per_kwh)
            parts.append(f"{watts:.0f} W x PUE {float(op.pue or 1.0):g}")
    if not parts:
        return None
    return Rate(capex + energy, cur, "onprem", f"on-prem: {' + '.join(parts)}")


def remote_instance_id(provider: str, uuid: str) -> str | None:
    """The instance id in a remote GPU's uuid, which the cloud collectors write as exactly
    '{provider}:{instance_id}:{n}'. Exact, never a substring: instance '1' is not 'vast:1000:0'."""
    head, sep, n = uuid.rpartition(":")
    prefix = provider + ":"
    if not sep or not n.isdigit() or not head.startswith(prefix) or len(head) == len(prefix):
        return None
    return head[len(prefix):]


def _from_provider(conn: sqlite3.Connection | None, gpu: Any) -> Rate | None:
    source = _get(gpu, "source")
    if conn is None or source not in CLOUD_SOURCES:
        return None
    instance_id = remote_instance_id(source, str(_get(gpu, "uuid") or ""))
    if instance_id is None:
        return None
    row = conn.execute(
        "SELECT instance_id, price_per_hour, gpu_count, currency FROM cloud_instances WHERE provider = ? "
        "AND instance_id = ?", (source, instance_id)).fetchone()
    if not row or row[1] is None:
        return None
    n = row[2] or 1
    return Rate(float(row[1]) / n, row[3] or "USD", "provider",
                f"{source}: {row[0]} {rate_label(row[1], row[3] or 'USD')} / {n:g} GPUs", provider=source)


def _from_catalog(cfg: Config, gpu: Any, now_ms: int | None) -> Rate | None:
    provider = cfg.provider or (DEMO_PROVIDER if _get(gpu, "source") == "demo" else None)
    entry = load_catalog().lookup(provider, _get(gpu, "model"))
    if entry is None:
        return None
    stale = " STALE" if is_stale(entry.as_of, cfg, now_ms) else ""
    return Rate(entry.usd_per_gpu_hour, "USD", "catalog",
                f"catalog: {entry.provider} {entry.gpu} {rate_label(entry.usd_per_gpu_hour, 'USD')} "
                f"(as of {entry.as_of}{stale})", as_of=entry.as_of, provider=entry.provider)


MIG_LABEL = "MIG slice: its cost is counted on the physical GPU"


def is_mig_slice(gpu: Any) -> bool:
    """A MIG device (a `gpus` row with a parent)."""
    return bool(_get(gpu, "parent_id"))


def mig_slice_rate(cfg: Config) -> Rate:
    """The one rule for a MIG slice's rate: the physical GPU is what is paid for, so the slice carries no money
    of its own (pricing both would count it twice); it says so instead of a price. Every surface (the cost
    engine, `gpuspend prices`, doctor) gets it through `resolve_rate`."""
    return Rate(None, cfg.currency or "USD", "none", MIG_LABEL)


def counted_on_parent(rate: Rate) -> bool:
    """True for a MIG slice's rate: no money of its own, and not a GPU that is missing a rate."""
    return rate.per_gpu_hour is None and rate.label == MIG_LABEL


def resolve_rate(cfg: Config, conn: sqlite3.Connection | None, gpu: Any, *, asset_tag_path: Path | None = None,
                 now_ms: int | None = None) -> Rate:
    """The rate of one GPU (a `gpus` row as dict/sqlite3.Row), in DESIGN.md order, with its source label.
    A MIG slice has no rate of its own (see `mig_slice_rate`)."""
    if is_mig_slice(gpu):
        return mig_slice_rate(cfg)
    for rate in (
        _from_config(cfg, gpu),
        _from_provider(conn, gpu),
        _from_billing(cfg, conn, gpu, asset_tag_path),
        _from_onprem(cfg, conn, gpu),
        _from_catalog(cfg, gpu, now_ms),
    ):
        if rate is not None:
            return rate
    model = _get(gpu, "model") or "unknown model"
    hint = "set `provider:` or `rates:` in the config" if not cfg.provider else f"no catalog price for {model}"
    return Rate(None, cfg.currency or "USD", "none", f"no rate ({hint})")
