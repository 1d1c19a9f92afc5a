"""What one GPU costs per hour, and where that number comes from (DESIGN.md "Cost semantics").

Sources, first that applies: config `rates:` -> billing-derived (this machine's resource in the imported
exports) -> on-prem (capex amortised + measured power x PUE x electricity) -> the shipped catalog for
`provider:` and model (dated; stale entries flagged) -> none ("no rate", never $0). GPUs rented from GPU
clouds (RunPod, Lambda, Vast) take the price their API reports (source "provider").
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuspend import clock
from gpuspend.fmt import count, money
from gpuspend.fmt import rate as rate_label
from gpuspend.gpu_models import family, match_order, normalise_model
from gpuspend.rollup import REMOTE_SOURCES
from gpuspend.snapshot import Rate
from gpuspend.store import resource_match

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
    gpus_per_instance: float
    usd_per_hour: float
    region: str | None
    as_of: str
    source: str
    kind: str = "list"              # list | market (a median of marketplace offers: Vast.ai)
    fetched_at: int | None = None   # epoch ms when fetched by `gpuspend prices --refresh`; None = shipped
    note: str | None = None         # the shipped catalog's own warning (e.g. not re-verified since ...)

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.usd_per_hour / self.gpus_per_instance

    @property
    def origin(self) -> str:
        return "shipped" if self.fetched_at is None else "fetched"


@dataclass(frozen=True)
class CatalogMatch:
    """A catalog price for a GPU and how it was found: `wanted` is the GPU's key; `entry.gpu` differs when
    the family (or a sibling form factor) stood in because the provider has no price for the GPU's own."""

    entry: PriceEntry
    wanted: str

    @property
    def exact(self) -> bool:
        return self.entry.gpu.upper() == self.wanted.upper()

    def describe(self) -> str:
        """The match as the rate label writes it: '' when exact."""
        if self.exact:
            return ""
        own = self.wanted.upper()
        if family(own) == own:
            return f"for {own}, form factor unknown"
        return f"for {own}: no {own} price"


def _best(entries: list[PriceEntry]) -> PriceEntry:
    # Newest first (a fetched price beats an older shipped one), then the cheapest per GPU-hour: several
    # instance sizes of one GPU (p5.4xlarge, p5.48xlarge) carry nearly the same per-GPU price.
    return min(entries, key=lambda e: (-_day(e.as_of), e.usd_per_gpu_hour, e.sku))


def _day(as_of: str) -> int:
    try:
        return int(as_of.replace("-", ""))
    except ValueError:
        return 0


@dataclass(frozen=True)
class Catalog:
    as_of: str
    stale_after_days: float
    entries: tuple[PriceEntry, ...]

    @cached_property
    def _index(self) -> dict[tuple[str, str], PriceEntry]:
        """(provider, key) -> its best entry; built once per catalog (rates are resolved per GPU per frame)."""
        groups: dict[tuple[str, str], list[PriceEntry]] = {}
        for e in self.entries:
            groups.setdefault((e.provider, e.gpu.upper()), []).append(e)
        return {k: _best(v) for k, v in groups.items()}

    def match(self, provider: str | None, model: str | None) -> CatalogMatch | None:
        """The provider's price for a model key, in `gpu_models.match_order` (own form factor, then family,
        then the family's other form factors), or None."""
        if not provider or not model:
            return None
        p = provider.lower()
        for key in match_order(model):
            hit = self._index.get((p, key))
            if hit is not None:
                return CatalogMatch(hit, model.upper())
        return None

    def lookup(self, provider: str | None, model: str | None) -> PriceEntry | None:
        m = self.match(provider, model)
        return m.entry if m else None

    def for_model(self, model: str | None) -> list[PriceEntry]:
        """Each provider's price for this model, by provider, for comparisons ("cheaper elsewhere"): its own
        form factor or a family price, never another form factor's (an SXM price is no offer for an NVL)."""
        out = []
        own = (model or "").upper()
        for p in self.providers():
            m = self.match(p, model)
            if m is not None and (m.exact or m.entry.gpu.upper() == family(own) or family(own) == own):
                out.append(m.entry)
        return out

    def providers(self) -> list[str]:
        return sorted({e.provider for e in self.entries})


def _count(v: Any) -> float:
    """A GPU count as written: 8 stays 8 (an int), a fractional GPU (SkyPilot's 0.125 x L4) stays 0.125."""
    f = float(v)
    return int(f) if f.is_integer() else f


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The shipped catalog (gpuspend/data/prices.yaml), parsed once per process."""
    return parse_catalog(resources.files("gpuspend").joinpath("data/prices.yaml").read_text(encoding="utf-8"))


def parse_catalog(text: str) -> Catalog:
    """A catalog file's text (the shipped format, or what `dump_catalog` wrote)."""
    import yaml

    # libyaml's C loader when PyYAML has it: the pure-Python parser took ~70 ms of the dashboard's first frame.
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    entries = tuple(
        PriceEntry(provider=str(r["provider"]).lower(), gpu=str(r["gpu"]), sku=str(r["sku"]),
                   gpus_per_instance=_count(r.get("gpus_per_instance") or 1), usd_per_hour=float(r["usd_per_hour"]),
                   region=r.get("region"), as_of=str(r["as_of"]), source=str(r["source"]),
                   kind=str(r.get("kind") or "list"), note=r.get("note"))
        for r in raw["prices"])
    return Catalog(as_of=str(raw["catalog_as_of"]), stale_after_days=float(raw.get("stale_after_days", 90)),
                   entries=entries)


_CURRENT_SQL = (
    "SELECT h.provider, h.gpu, h.sku, h.region, h.gpus_per_instance, h.usd_per_hour, h.kind, h.source_url, "
    "h.fetched_at, f.source FROM price_history h JOIN price_fetches f ON f.id = h.fetch_id "
    "WHERE f.id IN (SELECT MAX(id) FROM price_fetches GROUP BY source) "
    "ORDER BY h.provider, h.gpu, h.sku")


def dump_catalog(cat: Catalog) -> str:
    """The catalog in the shipped file's format (gpuspend/data/prices.yaml), so the offline fallback is
    refreshed by the same code that fetches: `gpuspend prices --refresh --write-catalog FILE`."""
    def q(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False)     # a JSON string is a valid YAML flow scalar

    lines = ["# gpuspend price catalog: on-demand $/GPU-hour. Written by `gpuspend prices --write-catalog`;",
             "# every row carries its as_of date and source (see gpuspend/gpu_models.py for the model keys).",
             f"catalog_as_of: {q(cat.as_of)}", f"stale_after_days: {cat.stale_after_days:g}", "prices:"]
    for e in sorted(cat.entries, key=lambda e: (e.provider, e.gpu, e.sku)):
        fields = [f"provider: {q(e.provider)}", f"gpu: {q(e.gpu)}", f"sku: {q(e.sku)}",
                  f"gpus_per_instance: {e.gpus_per_instance:g}", f"usd_per_hour: {e.usd_per_hour!r}"]
        if e.region:
            fields.append(f"region: {q(e.region)}")
        fields += [f"as_of: {q(e.as_of)}", f"source: {q(e.source)}"]
        if e.kind != "list":
            fields.append(f"kind: {q(e.kind)}")
        if e.note:
            fields.append(f"note: {q(e.note)}")
        lines.append("  - {" + ", ".join(fields) + "}")
    return "\n".join(lines) + "\n"


def _iso_day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def fetched_entries(conn: sqlite3.Connection) -> list[PriceEntry]:
    """The current fetched prices: every source's last successful fetch (a failed one keeps the previous)."""
    try:
        rows = conn.execute(_CURRENT_SQL).fetchall()
    except sqlite3.OperationalError:      # a database older than the price history (opened unmigrated)
        return []
    return [PriceEntry(provider=r[0], gpu=r[1], sku=r[2], gpus_per_instance=_count(r[4]), usd_per_hour=float(r[5]),
                       region=r[3], as_of=_iso_day(r[8]), source=r[7], kind=r[6], fetched_at=int(r[8]))
            for r in rows]


def merge(base: Catalog, fetched: list[PriceEntry]) -> Catalog:
    """The shipped catalog with fetched prices over it: for a (provider, GPU) that has fetched rows, those
    replace the shipped ones unless the shipped row is newer; everything else stays as shipped."""
    if not fetched:
        return base
    got = {(e.provider, e.gpu.upper()) for e in fetched}
    newest = {k: max(_day(e.as_of) for e in fetched if (e.provider, e.gpu.upper()) == k) for k in got}
    kept = [e for e in base.entries
            if (e.provider, e.gpu.upper()) not in got or _day(e.as_of) > newest[(e.provider, e.gpu.upper())]]
    drop = {(e.provider, e.gpu.upper()) for e in kept} & got
    fresh = [e for e in fetched if (e.provider, e.gpu.upper()) not in drop]
    as_of = max([base.as_of, *(e.as_of for e in fresh)])
    return Catalog(as_of=as_of, stale_after_days=base.stale_after_days, entries=tuple(kept + fresh))


def catalog_for(conn: sqlite3.Connection | None) -> Catalog:
    """The catalog the rates use: shipped, with this database's fetched prices over it. Cached in the cost
    engine's read cache until a refresh bumps the prices generation (one meta read per call otherwise)."""
    base = load_catalog()
    if conn is None:
        return base
    from gpuspend.store import PRICES_GENERATION, get_meta

    gen = get_meta(conn, PRICES_GENERATION)
    if gen is None:
        return base
    from gpuspend.costing.context import cache_for

    return cache_for(conn).get("price_catalog", gen, lambda: merge(base, fetched_entries(conn)), durable=True)


@dataclass(frozen=True)
class PriceChange:
    """How a fetched price moved: `previous` (and when it was seen last) is the last different price in the
    history of the same provider, GPU, SKU and region; None when it never changed (`since` = first seen)."""

    entry: PriceEntry
    previous: float | None
    since: str
    first: bool = False             # no earlier fetch of this price at all

    @property
    def pct(self) -> float | None:
        if self.previous is None or self.previous == 0:
            return None
        return (self.entry.usd_per_hour - self.previous) / self.previous * 100.0

    def describe(self) -> str:
        pct = self.pct
        if self.first:
            return "first fetch"
        if pct is None:
            return f"unchanged since {self.since}"
        return f"{pct:+.0f}% since {self.since}"


def price_changes(conn: sqlite3.Connection) -> dict[tuple[str, str, str, str | None], PriceChange]:
    """For every current fetched price, its change against the history (keyed provider, gpu, sku, region)."""
    out: dict[tuple[str, str, str, str | None], PriceChange] = {}
    for e in fetched_entries(conn):
        hist = conn.execute(
            "SELECT usd_per_hour, fetched_at FROM price_history WHERE provider = ? AND gpu = ? AND sku = ? "
            "AND region IS ? AND fetched_at < ? ORDER BY fetched_at DESC",
            (e.provider, e.gpu, e.sku, e.region, e.fetched_at)).fetchall()
        prev = next(((p, t) for p, t in hist if abs(p - e.usd_per_hour) > 1e-9), None)
        if prev is not None:
            out[(e.provider, e.gpu, e.sku, e.region)] = PriceChange(e, float(prev[0]), _iso_day(int(prev[1])))
        else:
            first = min([t for _p, t in hist] + [e.fetched_at or 0])
            out[(e.provider, e.gpu, e.sku, e.region)] = PriceChange(e, None, _iso_day(int(first)), first=not hist)
    return out


@lru_cache(maxsize=256)
def _day_start_s(as_of: str) -> float:
    # strptime is most of a catalog rate's cost, and a catalog holds a few dozen distinct dates
    return datetime.strptime(as_of, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


def age_days(as_of: str, now_ms: int | None = None) -> float:
    now = clock.now_ms() if now_ms is None else now_ms
    return (now / 1000 - _day_start_s(as_of)) / 86400


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
    per_model = {k.upper(): (k, v) for k, v in (rates.per_model or {}).items()}
    # The GPU's own key first, then its family: `per_model: {H100: 2}` prices every H100 form factor, and
    # `H100-NVL: 1.5` beside it wins for the NVLs.
    own = str(gpu_model_key(gpu) or model or "").upper()
    for want in dict.fromkeys((own, family(own))):
        if want in per_model:
            key, value = per_model[want]
            return Rate(float(value), cur, "config", f"config: per_model {key} {rate_label(value, cur)}")
    inst = rates.instance or {}
    if inst.get("usd_per_hour") is not None:
        n = inst.get("gpus") or 1
        v = float(inst["usd_per_hour"]) / n
        return Rate(v, cur, "config", f"config: instance {rate_label(inst['usd_per_hour'], cur)} / {count(n, 'GPU')}")
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
    cur, total, hours, gpus, provider, billed = found
    n = int(gpus) if gpus else _host_gpu_count(conn, _get(gpu, "host"))
    per_gpu = (total or 0.0) / hours / max(n, 1)
    # Usage a commitment covers is billed less than it costs ($0 under a Savings Plan, the plan's fee billing
    # it): the month meters at what the invoice bills, or it would count the fee and the usage both.
    invoiced = billed / hours / max(n, 1)
    differs = abs(invoiced - per_gpu) > max(0.005 * abs(per_gpu), 1e-6)
    note = f"; invoiced {rate_label(billed / hours, cur or 'USD')}" if differs else ""
    note += ": a commitment's fee bills the rest" if differs and billed < total else ""
    return Rate(per_gpu, cur or "USD", "billing",
                f"billing: {rid} {rate_label(total / hours, cur or 'USD')} / {count(n, 'GPU')} "
                f"(usage over {hours:.0f} billed h{note})",
                provider=provider or (cfg.provider.lower() if cfg.provider else None),
                invoice_per_gpu_hour=invoiced if differs else None)


# Usage quantities in time units (AWS "Hrs", Azure "1 Hour" / "10 Hours", GCP "seconds"): hours per unit.
_TIME_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*(hrs?|hours?|h|seconds?|secs?|s)\s*$", re.IGNORECASE)


def unit_hours(unit: str | None) -> float | None:
    """Hours in one unit of a usage quantity, None when the unit is not time (GB, requests...)."""
    m = _TIME_UNIT.match(unit or "")
    if not m:
        return None
    per = float(m.group(1) or 1.0)
    return per / 3600.0 if m.group(2).lower().startswith("s") else per


def _billing_window(conn: sqlite3.Connection, rid: str) -> tuple | None:
    """(currency, usage cost, billed hours, GPU count, catalog provider) of this resource's last week of usage
    rows; the provider is read from the import's source (e.g. 'focus:AWS' -> aws).

    Billed hours, not elapsed time: an instance stopped half the week is billed for the hours it ran. Per
    charge period, the hours are the usage quantity in time units where the export carries one (the largest
    of its rows, at most the period: a GCP VM bills cores, memory and GPUs in seconds for the same time),
    else the period itself; hours without a usage row were not billed. Fees, taxes and purchases of the
    resource are the month's, never part of its hourly rate."""
    usage = "LOWER(COALESCE(charge_category, 'usage')) = 'usage'"
    match, margs = resource_match(rid)
    row = conn.execute(f"SELECT MAX(charge_period_end) FROM charge_rows WHERE {match} AND {usage}", margs).fetchone()
    if not row or row[0] is None:
        return None
    end = row[0]
    periods: dict[str, dict[tuple[int, int], list[float]]] = {}
    totals: dict[str, list[float]] = {}
    for cur, a, b, cost, billed, qty, unit, gpus, imp in conn.execute(
            "SELECT COALESCE(currency, 'USD'), charge_period_start, charge_period_end, "
            "COALESCE(effective_cost, billed_cost), COALESCE(billed_cost, effective_cost), quantity, unit, "
            f"gpu_count, import_id FROM charge_rows "
            f"WHERE {match} AND {usage} AND charge_period_end > ? AND charge_period_start IS NOT NULL",
            (*margs, end - BILLING_WINDOW_S)):
        t = totals.setdefault(cur, [0.0, 0.0, 0.0, 0.0, 0.0])     # cost, rows, gpus, import id, billed
        t[0] += float(cost or 0.0)
        t[1] += 1
        t[2] = max(t[2], float(gpus or 0.0))
        t[3] = max(t[3], float(imp or 0))
        t[4] += float(billed or 0.0)
        slot = periods.setdefault(cur, {}).setdefault((int(a), int(b)), [0.0])
        per = unit_hours(unit)
        if per is not None and qty is not None:
            slot[0] = max(slot[0], float(qty) * per)
        elif slot[0] == 0.0:
            slot[0] = -1.0                                     # no time quantity: the period is the time
    if not totals:
        return None
    cur = max(totals, key=lambda c: totals[c][1])             # the currency most of its rows are in
    hours = 0.0
    for (a, b), (q,) in periods[cur].items():
        length = max(0.0, (b - a) / 3600.0)
        if q < 0:
            hours += length
        else:
            hours += min(q, length) if length > 0 else q
    if hours <= 0:
        return None
    cost, _rows, gpus, import_id, billed = totals[cur]
    src = conn.execute("SELECT source, format FROM imports WHERE id = ?", (int(import_id),)).fetchone()
    words = set(re.split(r"[^a-z0-9]+", " ".join(str(v) for v in (src or ()) if v).lower()))
    provider = next((p for p in load_catalog().providers() if p in words), None)
    return (cur, cost, hours, gpus or None, provider, billed)


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
    per_kwh = None
    if op.electricity_per_kwh is not None:
        # Money is the energy of each interval (gpuspend.costing.metering); the $/h shown is at current power.
        per_kwh = float(op.pue or 1.0) * float(op.electricity_per_kwh)
        watts = _measured_power(conn, gpu)
        now_w = f", now {watts:.0f} W" if watts is not None else ""
        if watts is not None:
            energy = watts / 1000.0 * per_kwh
        parts.append(f"measured energy x PUE {float(op.pue or 1.0):g} x {rate_label(op.electricity_per_kwh, cur, 'kWh')}"
                     f"{now_w}")
    if not parts:
        return None
    return Rate(capex + energy, cur, "onprem", f"on-prem: {' + '.join(parts)}", capex_per_hour=capex,
                energy_per_kwh=per_kwh)


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
                f"{source}: {row[0]} {rate_label(row[1], row[3] or 'USD')} / {count(n, 'GPU')}", provider=source)


def gpu_model_key(gpu: Any) -> str | None:
    """The model key of a `gpus` row. A database written before form-factor keys stored an NVL as 'H100': when
    the marketing name refines the stored family, the name's key wins (priced by what the GPU is); any other
    stored key stands as written."""
    stored, name = _get(gpu, "model"), _get(gpu, "name")
    if not name or is_mig_slice(gpu):
        return stored
    key = normalise_model(name)
    if not stored or (key and family(key) == str(stored).upper()):
        return key or stored
    return stored


def catalog_label(m: CatalogMatch, cfg: Config, now_ms: int | None) -> str:
    """'catalog: azure H100-NVL $6.98/h (as of 2026-12-01, fetched)', with the match when not exact
    ('catalog: aws H100-SXM $6.88/h for H100-NVL: no H100-NVL price (...)') and STALE when old."""
    e = m.entry
    stale = " STALE" if is_stale(e.as_of, cfg, now_ms) else ""
    match = f" {m.describe()}" if not m.exact else ""
    kind = ", market median" if e.kind == "market" else ""
    origin = ", fetched" if e.fetched_at is not None else ""
    return (f"catalog: {e.provider} {e.gpu} {rate_label(e.usd_per_gpu_hour, 'USD')}{match} "
            f"(as of {e.as_of}{stale}{kind}{origin})")


def _from_catalog(cfg: Config, conn: sqlite3.Connection | None, gpu: Any, now_ms: int | None) -> Rate | None:
    provider = cfg.provider or (DEMO_PROVIDER if _get(gpu, "source") == "demo" else None)
    m = catalog_for(conn).match(provider, gpu_model_key(gpu))
    if m is None:
        return None
    entry = m.entry
    return Rate(entry.usd_per_gpu_hour, "USD", "catalog", catalog_label(m, cfg, now_ms), as_of=entry.as_of,
                provider=entry.provider)


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
        _from_catalog(cfg, conn, gpu, now_ms),
    ):
        if rate is not None:
            return rate
    model = _get(gpu, "model") or "unknown model"
    hint = "set `provider:` or `rates:` in the config" if not cfg.provider else f"no catalog price for {model}"
    return Rate(None, cfg.currency or "USD", "none", f"no rate ({hint})")
