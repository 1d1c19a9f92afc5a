"""Prometheus exporter for one node: the same Snapshot the TUI and `--report` show, as metrics.

Served by prometheus-client on its own CollectorRegistry (never the global one, so tests and the bench can run
many exporters in one process). A custom collector renders the latest snapshot on each scrape, so a GPU that
disappears drops its series at once and one scrape never mixes two snapshots.

Naming (documented in the README, "Fleet"): every metric starts `gpuspend_`; units are in the name (`_seconds`,
`_watts`, `_bytes`, `_ratio`); money carries a `currency` label (never summed across currencies), so money
metrics have no unit suffix; counters end in `_total`. GPU series carry host/gpu/uuid/model labels.

Counters (idle seconds, waste, per-user cost) are accumulated here from successive snapshots: the snapshot holds
resettable per-episode / per-day figures, and the counter adds their increases (a drop means a new episode or a
new day, so the new value is all increase). They start from the figures of the first snapshot.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from gpuspend import clock
from gpuspend.errors import UsageError
from gpuspend.fmt import clean
from gpuspend.snapshot import Snapshot, gpu_currency

if TYPE_CHECKING:
    from gpuspend.config import Config

STATES = ("busy", "held-idle", "free-idle", "lost", "stale")
GPU_LABELS = ["host", "gpu", "uuid", "model"]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("gpuspend")
    except Exception:
        return "unknown"


def node_label(host: str | None) -> str:
    """The node's `host` label: outside text (a host name, config `host:`), so never raw escapes or newlines."""
    return clean(host or "", 120).strip() or "unknown"


def _gpu_key(g: Any, host: str) -> list[str]:
    # `host` is the exporting node (Snapshot.host) on every series, so a fleet groups GPUs by node even when a
    # GPU row still carries another name (demo history, cloud instance ids).
    return [node_label(host), "" if g.index is None else str(g.index), clean(g.uuid, 120),
            clean(g.model or g.name or "", 120)]


def _catalog_age_s(as_of: str | None, now_ms: int) -> float | None:
    if not as_of:
        return None
    try:
        day = datetime.strptime(as_of[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return max(0.0, now_ms / 1000 - day.timestamp())


def _advance(old_value: float, old_total: float, new_value: float) -> float:
    """New counter total from a resettable figure: increases add, a drop restarts from the new value."""
    if new_value >= old_value:
        return old_total + (new_value - old_value)
    return old_total + max(0.0, new_value)


@dataclass
class _Counters:
    # key -> (last figure seen, counter total)
    idle_s: dict[tuple, tuple[float, float]] = field(default_factory=dict)
    waste: dict[tuple, tuple[float, float]] = field(default_factory=dict)
    proc_cost: dict[tuple, float] = field(default_factory=dict)     # process -> last cost_today
    user_cost: dict[tuple, float] = field(default_factory=dict)   # (host, user, currency) -> total
    # workloads: today's figure last seen per workload, counter totals per series, and which workloads have a
    # series of their own (sticky, at most workloads.metrics_max; the rest add to workload="other", so every
    # series only ever grows)
    wl_last: dict[tuple, tuple[float, float]] = field(default_factory=dict)
    wl_total: dict[tuple, list[float]] = field(default_factory=dict)
    wl_named: set[tuple] = field(default_factory=set)

    def feed_workloads(self, host: str, rows: Any, cap: int) -> None:
        """Per-workload cost/idle figures since UTC midnight (gpuspend.costing.workloads) into counters."""
        host = node_label(host)
        for r in rows:
            key = (r.kind, r.id, r.currency)
            cost, idle = float(r.cost or 0.0), float(r.idle_waste or 0.0)
            last_cost, last_idle = self.wl_last.get(key, (0.0, 0.0))
            d_cost = cost - last_cost if cost >= last_cost else cost       # a drop: a new day began
            d_idle = idle - last_idle if idle >= last_idle else idle
            self.wl_last[key] = (cost, idle)
            if r.kind == "unattributed" or key in self.wl_named or len(self.wl_named) < cap:
                if r.kind != "unattributed":
                    self.wl_named.add(key)
                series = (host, r.kind, clean(r.name or r.id, 120), clean(r.namespace or "", 120), r.currency)
            else:
                series = (host, "other", "other", "", r.currency)
            t = self.wl_total.setdefault(series, [0.0, 0.0])
            t[0] += max(0.0, d_cost)
            t[1] += max(0.0, d_idle)

    def feed(self, snap: Snapshot) -> None:
        live_gpus = {(*_gpu_key(g, snap.host), gpu_currency(g.rate, snap.currency)) for g in snap.gpus}
        for table in (self.idle_s, self.waste):     # a vanished GPU drops its series (a return restarts them)
            for gone in [k for k in table if k not in live_gpus]:
                del table[gone]
        for g in snap.gpus:
            key = (*_gpu_key(g, snap.host), gpu_currency(g.rate, snap.currency))
            idle = float(g.idle_for_s or 0.0)
            last, total = self.idle_s.get(key, (0.0, 0.0))
            self.idle_s[key] = (idle, _advance(last, total, idle))
            waste = float(g.episode_waste or 0.0)
            last, total = self.waste.get(key, (0.0, 0.0))
            self.waste[key] = (waste, _advance(last, total, waste))
        host = node_label(snap.host)
        # A process row is one process on one GPU and carries that GPU's share of its cost (a process on two
        # GPUs is two rows adding up to its total: counted once, 8.0 and never 16.0), in the currency of that
        # GPU's rate, not the snapshot's (money in EUR is never labelled USD).
        currency_of = {g.uuid: gpu_currency(g.rate, snap.currency) for g in snap.gpus}
        procs: dict[tuple, tuple[float, str]] = {}
        for p in snap.processes:
            key = (host, p.pid, p.user, p.gpu_uuid)
            procs[key] = (float(p.cost_today or 0.0), currency_of.get(p.gpu_uuid) or snap.currency)
        for pkey, (cost, currency) in procs.items():
            # cost_today resets at midnight (a drop).
            last = self.proc_cost.get(pkey, 0.0)
            inc = cost - last if cost >= last else cost
            self.proc_cost[pkey] = cost
            ukey = (host, pkey[2], currency)
            self.user_cost[ukey] = self.user_cost.get(ukey, 0.0) + max(0.0, inc)
        live = set(procs)
        for gone in [k for k in self.proc_cost if k not in live]:
            del self.proc_cost[gone]


class _SnapshotCollector:
    """Renders the exporter's current state at scrape time (prometheus-client custom collector)."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def describe(self) -> list[Metric]:
        return []           # unchecked collector: families vary with the snapshot

    def collect(self) -> Iterator[Metric]:
        ex = self.exporter
        with ex._lock:
            snap, counters, up, host = ex._snapshot, ex._counters, ex._up, ex._host
            idle_s = {k: v[1] for k, v in counters.idle_s.items()}
            waste = {k: v[1] for k, v in counters.waste.items()}
            user_cost = dict(counters.user_cost)
            wl_total = {k: list(v) for k, v in counters.wl_total.items()}
        host = node_label(snap.host if snap is not None else host)
        m = GaugeMetricFamily("gpuspend_up", "1 when the last snapshot was built from the database, 0 when it failed",
                              labels=["host"])
        m.add_metric([host], 1.0 if up else 0.0)
        yield m
        info = InfoMetricFamily("gpuspend_build", "gpuspend version", labels=["host"])
        info.add_metric([host], {"version": _version()})
        yield info
        if snap is None:
            return
        yield from _snapshot_families(snap)
        c_idle = CounterMetricFamily("gpuspend_gpu_idle_seconds",
                                     "Seconds this GPU was seen idle (at or below idle.util_pct)", labels=GPU_LABELS)
        c_waste = CounterMetricFamily("gpuspend_gpu_idle_waste",
                                      "Money wasted by idle episodes (rate x idle time), in `currency`",
                                      labels=[*GPU_LABELS, "currency"])
        for key, total in idle_s.items():
            c_idle.add_metric(list(key[:4]), total)
        for key, total in waste.items():
            c_waste.add_metric(list(key), total)
        yield c_idle
        yield c_waste
        c_user = CounterMetricFamily("gpuspend_user_cost", "Cost attributed to a user's processes, in `currency`",
                                     labels=["host", "user", "currency"])
        for (h, user, cur), total in sorted(user_cost.items()):
            c_user.add_metric([h, user, cur], total)
        yield c_user
        if wl_total:
            labels = ["host", "kind", "workload", "namespace", "currency"]
            c_wl = CounterMetricFamily("gpuspend_workload_cost", "Cost attributed to a workload (pod, Slurm job, "
                                       "container, notebook, process; `other` past workloads.metrics_max), in "
                                       "`currency`", labels=labels)
            c_wl_idle = CounterMetricFamily("gpuspend_workload_idle_waste", "Of the workload's cost, the part spent "
                                            "while its GPUs were idle, in `currency`", labels=labels)
            for key, (cost, idle) in sorted(wl_total.items()):
                c_wl.add_metric(list(key), cost)
                c_wl_idle.add_metric(list(key), idle)
            yield c_wl
            yield c_wl_idle


def _snapshot_families(snap: Snapshot) -> Iterator[Metric]:
    host, cur = node_label(snap.host), snap.currency
    cost = GaugeMetricFamily("gpuspend_gpu_cost_per_hour", "Cost of this GPU per hour now, in `currency`",
                             labels=[*GPU_LABELS, "currency"])
    rate = GaugeMetricFamily("gpuspend_gpu_rate_per_hour", "Price of this GPU per GPU-hour, in `currency`",
                             labels=[*GPU_LABELS, "currency", "source"])
    rate_info = InfoMetricFamily("gpuspend_gpu_rate", "Where this GPU's rate comes from",
                                 labels=[*GPU_LABELS])
    state = GaugeMetricFamily("gpuspend_gpu_state", "1 for the GPU's current state", labels=[*GPU_LABELS, "state"])
    # One series per GPU naming its current state, rate source and idle episode (readers such as the fleet
    # view ask for this one series instead of the five-series state enum plus the rate info and episode flag)
    status = GaugeMetricFamily("gpuspend_gpu_status", "1; labels: the GPU's current state, where its rate comes "
                               "from, and whether an idle episode is open", labels=[*GPU_LABELS, "state", "source",
                                                                                   "episode"])
    util = GaugeMetricFamily("gpuspend_gpu_utilization_ratio", "GPU utilisation, 0..1", labels=GPU_LABELS)
    power = GaugeMetricFamily("gpuspend_gpu_power_watts", "Power draw", labels=GPU_LABELS)
    mem = GaugeMetricFamily("gpuspend_gpu_memory_used_bytes", "Memory used", labels=GPU_LABELS)
    mem_total = GaugeMetricFamily("gpuspend_gpu_memory_total_bytes", "Memory size", labels=GPU_LABELS)
    idle_for = GaugeMetricFamily("gpuspend_gpu_idle_for_seconds", "Continuous idle time so far (0 when busy)",
                                 labels=GPU_LABELS)
    episode = GaugeMetricFamily("gpuspend_gpu_idle_episode_waste",
                                "Money wasted in the open idle episode (0 when none), in `currency`",
                                labels=[*GPU_LABELS, "currency"])
    episode_open = GaugeMetricFamily("gpuspend_gpu_idle_episode_open", "1 while idle longer than idle.after",
                                     labels=GPU_LABELS)
    under = GaugeMetricFamily("gpuspend_gpu_underutilised",
                              "1 when average utilisation over 24 h is below idle.low_util_pct", labels=GPU_LABELS)
    low = set(getattr(snap, "underutilised", ()) or ())
    for g in snap.gpus:
        key = _gpu_key(g, host)
        if g.cost_per_hour is not None:
            cost.add_metric([*key, gpu_currency(g.rate, cur)], g.cost_per_hour)
        if g.rate.per_gpu_hour is not None:
            rate.add_metric([*key, g.rate.currency, g.rate.source], g.rate.per_gpu_hour)
        rate_info.add_metric(key, {"source": g.rate.source, "label": g.rate.label, "as_of": g.rate.as_of or ""})
        for s in STATES if g.state in STATES else (*STATES, g.state):
            state.add_metric([*key, s], 1.0 if g.state == s else 0.0)
        status.add_metric([*key, g.state, g.rate.source, "open" if g.episode_open else "closed"], 1.0)
        if g.util is not None:
            util.add_metric(key, g.util / 100.0)
        if g.power is not None:
            power.add_metric(key, g.power)
        if g.mem_used is not None:
            mem.add_metric(key, float(g.mem_used))
        if g.mem_total is not None:
            mem_total.add_metric(key, float(g.mem_total))
        idle_for.add_metric(key, float(g.idle_for_s or 0.0))
        if g.episode_waste is not None:         # no rate: unknown money has no sample, never 0
            episode.add_metric([*key, gpu_currency(g.rate, cur)], float(g.episode_waste))
        episode_open.add_metric(key, 1.0 if g.episode_open else 0.0)
        under.add_metric(key, 1.0 if g.uuid in low else 0.0)
    yield from (cost, rate, rate_info, state, status, util, power, mem, mem_total, idle_for, episode, episode_open,
                under)

    node_cost = GaugeMetricFamily("gpuspend_cost_per_hour", "Cost of all GPUs on this host per hour, in `currency`",
                                  labels=["host", "currency"])
    node_cost.add_metric([host, cur], snap.cost_per_hour)
    yield node_cost
    by_state = GaugeMetricFamily("gpuspend_cost_per_hour_by_state", "Cost per hour split by GPU state",
                                 labels=["host", "state", "currency"])
    for s, v in snap.cost_per_hour_by_state_known():
        if v is not None:                       # unknown money has no sample, never 0
            by_state.add_metric([host, s, cur], v)
    yield by_state
    today = GaugeMetricFamily("gpuspend_today_cost", "Cost since UTC midnight, in `currency`",
                              labels=["host", "currency"])
    if snap.today_cost_known is not None:
        today.add_metric([host, cur], snap.today_cost_known)
    yield today
    observed_today = GaugeMetricFamily("gpuspend_today_observed_ratio",
                                       "Share of today (since UTC midnight) the samples cover, over the GPUs, 0..1: "
                                       "today's money counts only observed time", labels=["host"])
    if snap.today_observed is not None:
        observed_today.add_metric([host], snap.today_observed)
    yield observed_today
    waste_today = GaugeMetricFamily("gpuspend_idle_waste_today", "Money wasted by idle GPUs since UTC midnight",
                                    labels=["host", "currency"])
    if snap.idle_waste_today_known is not None:
        waste_today.add_metric([host, cur], snap.idle_waste_today_known)
    yield waste_today

    month_labels = ["host", "currency", "month"]
    fams = {name: GaugeMetricFamily(f"gpuspend_month_{name}", text, labels=month_labels) for name, text in (
        ("to_date", "Month to date: billed up to the exports' coverage end + metered after it"),
        ("billed", "Billed charges this month"),
        ("metered", "Metered local cost after the billing coverage end"),
        ("projection", "Projected month total (MTD + run rate x hours left)"),
        ("projection_low", "Low end of the 80% projection interval"),
        ("projection_high", "High end of the 80% projection interval"),
        ("budget", "Monthly budget"),
    )}
    for mv in snap.months:
        lab = [host, mv.currency, mv.month]
        for name, value in (("to_date", mv.mtd), ("billed", mv.billed), ("metered", mv.metered),
                            ("projection", mv.projection), ("projection_low", mv.low),
                            ("projection_high", mv.high), ("budget", mv.budget)):
            if value is not None:
                fams[name].add_metric(lab, value)
    yield from fams.values()

    alerts = GaugeMetricFamily("gpuspend_alerts_open", "Open alerts by kind", labels=["host", "kind"])
    counts: dict[str, int] = {}
    for a in snap.alerts:
        if a.state == "open":
            counts[a.kind] = counts.get(a.kind, 0) + 1
    for kind, n in sorted(counts.items()):
        alerts.add_metric([host, kind], float(n))
    yield alerts

    age = _catalog_age_s(snap.catalog_as_of, snap.now_ms)
    cat = GaugeMetricFamily("gpuspend_price_catalog_age_seconds", "Age of the shipped price catalog in use",
                            labels=["host", "as_of"])
    if age is not None:
        cat.add_metric([host, snap.catalog_as_of or ""], age)
    yield cat
    ts = GaugeMetricFamily("gpuspend_snapshot_timestamp_seconds", "When the exported snapshot was computed",
                           labels=["host"])
    ts.add_metric([host], snap.now_ms / 1000)
    yield ts
    if snap.last_sample_ms is not None:
        last = GaugeMetricFamily("gpuspend_last_sample_timestamp_seconds", "Time of the newest GPU sample",
                                 labels=["host"])
        last.add_metric([host], snap.last_sample_ms / 1000)
        yield last


class Exporter:
    """A running /metrics endpoint. `update(snapshot)` publishes a snapshot; `close()` stops serving.

    With `db_path`, a background thread builds a snapshot from the database every `refresh_s` seconds with
    gpuspend.costing.build_snapshot (the code behind the TUI and `--report`), so no caller has to feed it.
    """

    def __init__(self, host: str, port: int, *, db_path: str | Path | None = None, cfg: Config | None = None,
                 refresh_s: float | None = None, node: str = "") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._counters = _Counters()
        self._up = db_path is None
        # the host label before the first snapshot: config `host:`, else this machine's name
        self._host = node or (getattr(cfg, "host", None) if cfg is not None else None) or socket.gethostname()
        self._db_path = Path(db_path) if db_path is not None else None
        self._cfg = cfg
        self._refresh_s = float(refresh_s or (getattr(cfg, "interval", None) if cfg is not None else None) or 2.0)
        self._stop = threading.Event()
        self._last_error: str | None = None
        self.registry.register(_SnapshotCollector(self))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise UsageError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                             hint="choose a free port with --metrics HOST:PORT") from None
        self.host, self.port = self._server.server_address[:2]
        self._refresher: threading.Thread | None = None
        if self._db_path is not None:
            self._refresher = threading.Thread(target=self._refresh_loop, name="gpuspend-metrics", daemon=True)
            self._refresher.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/metrics"

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._counters.feed(snapshot)
            self._snapshot = snapshot
            self._host = snapshot.host
            self._up = True

    def mark_down(self) -> None:
        """Keep the last values but say they are not current (gpuspend_up 0)."""
        with self._lock:
            self._up = False

    def refresh(self) -> None:
        """Build one snapshot from the database and publish it (what the background thread does)."""
        from gpuspend.costing import build_snapshot
        from gpuspend.store import connect

        conn = connect(self._db_path)
        try:
            now = clock.now_ms()
            snap = build_snapshot(conn, self._cfg, now)
            rows = self._workloads_today(conn, now)
        finally:
            conn.close()
        self.update(snap)
        if rows is not None:
            with self._lock:
                cap = int(getattr(getattr(self._cfg, "workloads", None), "metrics_max", 50) or 50)
                self._counters.feed_workloads(snap.host, rows, cap)

    def _workloads_today(self, conn: Any, now: int) -> Any:
        """Money by workload since UTC midnight, for the workload counters (None when it cannot be read)."""
        from gpuspend import costing
        from gpuspend.costing.workloads import workload_attribution

        if self._cfg is None:
            return None
        try:
            with costing.reading(conn, self._cfg, now):
                rates = costing.resolve_rates(conn, self._cfg, costing.load_gpus(conn), now)
                return workload_attribution(conn, self._cfg, rates, costing.day_start(now), now + 1, now).rows
        except Exception:       # a store without the workload tables yet: the other metrics still export
            return None

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                self._last_error = None
            except Exception as exc:    # never kill the daemon for an export problem; say so once
                self.mark_down()
                text = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if text != self._last_error:
                    print(f"gpuspend: metrics: snapshot failed: {text}", file=sys.stderr, flush=True)
                    self._last_error = text
            self._stop.wait(self._refresh_s)

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._refresher is not None:
            self._refresher.join(timeout=self._refresh_s + 5)

    shutdown = close          # what `gpuspend collect` calls

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(host: str = "127.0.0.1", port: int = 9840, *, db_path: str | Path | None = None, cfg: Config | None = None,
          refresh_s: float | None = None) -> Exporter:
    """Serve /metrics on host:port (port 0 = any free port; see Exporter.port)."""
    return Exporter(host or "127.0.0.1", port, db_path=db_path, cfg=cfg, refresh_s=refresh_s)
