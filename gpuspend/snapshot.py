"""What costing hands to every reader (TUI, report, notify, metrics): frozen values, so an unchanged
snapshot compares equal and the TUI can skip repainting. Money is always paired with its currency.

Fields may be added; existing names are a contract between gpuspend.costing and its readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property


@dataclass(frozen=True)
class Rate:
    per_gpu_hour: float | None      # None = "no rate" (never shown as $0)
    currency: str
    source: str                     # config | billing | onprem | catalog | provider | none
    label: str                      # human text, e.g. "catalog: aws H100 $6.88 (as of 2026-01-21)"
    as_of: str | None = None        # catalog date (YYYY-MM-DD) when source == catalog
    provider: str | None = None     # catalog provider this money goes to when known (aws, runpod, ...)
    # On-prem with an electricity price: money per interval = capex_per_hour x time + the interval's measured
    # energy (kWh) x energy_per_kwh (price x PUE); per_gpu_hour is then the rate at the current power.
    capex_per_hour: float | None = None
    energy_per_kwh: float | None = None
    # What the invoice bills per GPU-hour where it differs from per_gpu_hour, the effective (amortised) rate:
    # usage a Savings Plan or reservation covers bills $0, its commitment being billed as a fee. The month
    # (to date, projection, budget) meters at this, so the fee and the covered usage are not both counted;
    # the GPU's $/h, today and idle waste stay effective. None: the same as per_gpu_hour.
    invoice_per_gpu_hour: float | None = None

    def invoiced(self) -> Rate:
        """This rate as the month meters it (invoice_per_gpu_hour where set)."""
        if self.invoice_per_gpu_hour is None:
            return self
        return replace(self, per_gpu_hour=self.invoice_per_gpu_hour, invoice_per_gpu_hour=None)


def gpu_currency(rate: Rate | None, default: str) -> str:
    """The currency of a GPU's money (its cost, its idle waste, its processes' share): its rate's, else the
    snapshot's. A GPU rated in EUR on a USD box shows EUR, never a "$" on euros."""
    return (rate.currency if rate is not None else None) or default


def unknown_so_far(amount: float | None, *, gpus: bool, rated: bool) -> str | None:
    """The word for money accrued so far (today's cost, today's idle waste) when it is not a figure: with
    nothing accrued, "no GPU" on a box with no GPU and "no rate" when no GPU has a rate (never $0); else None,
    and `amount` is written as money. The dashboard and the report both ask this."""
    if amount:
        return None
    if not gpus:
        return "no GPU"
    return None if rated else "no rate"


@dataclass(frozen=True)
class GpuNow:
    uuid: str
    index: int | None
    host: str
    name: str
    model: str | None
    source: str                     # nvml | demo | runpod | lambda | vast
    state: str                      # busy | held-idle | free-idle | lost | stale
    util: float | None
    mem_used: int | None            # bytes
    mem_total: int | None
    power: float | None             # watts
    temperature: float | None
    rate: Rate
    cost_per_hour: float | None     # rate (+ energy where configured); None when no rate
    idle_for_s: float               # continuous idle so far (0 when busy)
    episode_open: bool              # idle longer than idle.after
    episode_waste: float | None     # money wasted in the current episode (0 when none, None: no rate)
    last_sample_ms: int | None
    parent_uuid: str | None = None  # MIG parent
    workload: str = ""              # workloads holding this GPU (container DeviceRequests, Slurm GRES), ", "-joined
    episode_unseen_s: float = 0.0   # of the open episode's span: no samples or unknown utilisation, not money


@dataclass(frozen=True)
class ProcessNow:
    pid: int
    user: str
    command: str
    gpu_uuid: str
    gpu_index: int | None
    used_memory: int | None
    sm_util: float | None
    cost_today: float               # attributed cost today on this GPU (a row is one process on one GPU)
    idle_cost_today: float = 0.0    # of cost_today: while its GPU was idle (held-idle)
    workload: str = ""              # "pod ns/name", "job 123 train", "container web", "notebook x.ipynb"; "" = none
    workload_kind: str = "process"  # k8s-pod | slurm-job | docker | jupyter-kernel | process


@dataclass(frozen=True)
class MonthView:
    month: str                      # YYYY-MM
    currency: str
    mtd: float                      # billed up to coverage end + metered after it
    billed: float
    metered: float
    coverage_end_ms: int | None     # end of the billing exports' coverage
    projection: float | None
    low: float | None               # 80% interval, None with < 3 days of data
    high: float | None
    interval_note: str              # e.g. "80% interval from 12 daily totals" or "not enough data (<3 days)"
    budget: float | None
    budget_pct_actual: float | None
    budget_pct_forecast: float | None
    cloud: float = 0.0              # of `metered`: spend on GPU-cloud instances (RunPod, Lambda, Vast.ai)


@dataclass(frozen=True)
class AlertView:
    kind: str                       # idle | budget | spike | collector | stale
    subject: str
    state: str                      # open | resolved
    started_ms: int
    dollars: float | None
    message: str
    currency: str | None = None     # of `dollars` (a EUR budget's, a EUR-rated GPU's); None: the snapshot's


@dataclass(frozen=True)
class Snapshot:
    now_ms: int
    host: str
    currency: str
    gpus: tuple[GpuNow, ...]
    processes: tuple[ProcessNow, ...]
    cost_per_hour: float                     # sum over GPUs with a rate
    cost_per_hour_by_state: tuple[tuple[str, float], ...]  # (state, $/h)
    today_cost: float
    idle_waste_today: float
    months: tuple[MonthView, ...]            # one per currency
    alerts: tuple[AlertView, ...]
    hourly: tuple[tuple[int, float, float], ...] = ()  # (hour start ms, useful $, idle $) last 24 h
    rate_sources: tuple[str, ...] = ()       # distinct Rate.label summaries, for the header
    nvml_available: bool | None = None
    collector: str = ""                      # "daemon pid 123 on host", "in-app", "none"
    last_sample_ms: int | None = None
    billing_coverage_end_ms: int | None = None  # the month's exports' end, else the newest import's
    billing_coverage_export: str = ""           # the export that reaches least, when the month has several
    catalog_as_of: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. "3 GPUs have no rate"
    underutilised: tuple[str, ...] = ()      # uuids averaging < idle.low_util_pct over 24 h
    today_observed: float | None = None      # share of today (0..1) the samples cover, over the physical GPUs
    # When the live fields (util, memory, power, temperature, state, processes' memory) were read, if later than
    # now_ms: a live refresh (costing.refresh_live) between full builds; the money is as of now_ms.
    live_ms: int | None = None

    def idle_now(self) -> frozenset[str]:
        """The GPUs in an open idle episode now (the ones the alerts name as idle): their holders are pinned at
        the top of the process table's default order."""
        return frozenset(g.uuid for g in self.gpus if g.episode_open and g.state in ("held-idle", "free-idle"))

    def currency_of(self, gpu_uuid: str) -> str:
        """The currency of one GPU's money and of its processes' (gpu_currency)."""
        return self._currencies.get(gpu_uuid, self.currency)

    @cached_property
    def _currencies(self) -> dict[str, str]:
        # asked for every process row on every dashboard tick: one lookup, not a scan of the GPUs
        return {g.uuid: gpu_currency(g.rate, self.currency) for g in self.gpus}

    def so_far_word(self, amount: float | None) -> str | None:
        """unknown_so_far for this snapshot's GPUs."""
        return unknown_so_far(amount, gpus=any(g.parent_uuid is None for g in self.gpus),
                              rated=not self.no_rate_at_all)

    @property
    def unrated_gpus(self) -> int:
        """Physical GPUs with no rate: their hours are in no total, so every total must say so."""
        return sum(1 for g in self.gpus if g.cost_per_hour is None and g.parent_uuid is None)

    @property
    def no_rate_at_all(self) -> bool:
        """Every GPU lacks a rate: the totals are unknown, shown as "no rate", never as $0."""
        physical = sum(1 for g in self.gpus if g.parent_uuid is None)
        return physical > 0 and self.unrated_gpus == physical

    # Unknown money is null, never 0 (DESIGN.md "Cost semantics"): the one rule for every surface that writes
    # these totals (report JSON/text/markdown, /metrics). A total that has known money in it stays a number
    # (and `unrated_gpus` says that it leaves GPUs out); one made only of unpriced GPUs is None.
    def cost_per_hour_by_state_known(self) -> tuple[tuple[str, float | None], ...]:
        """(state, $/h); None for a state whose GPUs all lack a rate (unknown, not $0/h)."""
        unknown = {g.state for g in self.gpus if g.parent_uuid is None and g.cost_per_hour is None} - \
            {g.state for g in self.gpus if g.cost_per_hour is not None}
        return tuple((s, None if s in unknown else v) for s, v in self.cost_per_hour_by_state)

    @property
    def today_cost_known(self) -> float | None:
        """Today's cost; None when no GPU has a rate (or there is no GPU: the text says "no GPU", as for $/h)
        and nothing known was spent."""
        return None if (self.no_rate_at_all or not self.gpus) and not self.today_cost else self.today_cost

    @property
    def idle_waste_today_known(self) -> float | None:
        """Today's idle waste; None when what was wasted is only on GPUs without a rate."""
        unpriced_idle = any(g.episode_open and g.episode_waste is None for g in self.gpus)
        if not self.idle_waste_today and (self.no_rate_at_all or unpriced_idle or not self.gpus):
            return None
        return self.idle_waste_today


@dataclass(frozen=True)
class DayTotal:
    day: str                        # YYYY-MM-DD (UTC)
    billed: float                   # from imported exports
    metered: float                  # local metered cost (after the exports' coverage end)


@dataclass(frozen=True)
class Spender:
    name: str                       # service / SKU / user / process
    amount: float
    is_gpu: bool = False


@dataclass(frozen=True)
class Alternative:
    provider: str
    gpu_model: str
    per_gpu_hour: float
    as_of: str
    cost_same_hours: float          # what this box's GPU-hours this month would cost there
    saving: float                   # current - alternative (negative = more expensive)
    # The GPU-hours compared: those the collector observed this month, which on a box watched part of the
    # month are fewer than the invoice's (every surface says so, with the number).
    gpu_hours: float = 0.0


def observed_hours_label(hours_by_model: dict[str, float]) -> str:
    """"the 4,511 GPU-hours observed this month": what the comparison is of, said wherever it is shown."""
    n = round(sum(hours_by_model.values()))
    return f"the {n:,} GPU-hour{'' if n == 1 else 's'} observed this month"


@dataclass(frozen=True)
class BillingSummary:
    month: str
    currency: str
    days: tuple[DayTotal, ...]
    services: tuple[Spender, ...]
    gpu_skus: tuple[Spender, ...]
    coverage: tuple[tuple[str, str, int | None, int], ...]  # (format, source/account, coverage_end_ms, rows)
    alternatives: tuple[Alternative, ...]
