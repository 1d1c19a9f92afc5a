"""The cost engine: functions over store rows, shared by the TUI, `--report`, alerts, notifications and metrics.

Split by concern, with data flowing down this list (a module imports only those above it):
  context      the read context of one snapshot (connection, now, config) and the one read cache, keyed by
               database file and content version, correct across connections, processes and databases
  common       time units, GPU states, result types (Episode, Spend), money = rate x seconds / 3600
  store_read   reading the store: GPUs, rates, the rollup watermark, raw and rollup segments, covered time
  episodes     idle episodes, waste, underutilisation (the domain rules of idle money)
  attribution  the split of a GPU's cost among its processes
  metering     covered time x rate: by day, window and hour
  observed     how much of a window the samples cover (every total says so)
  cloud        GPU-cloud spend from the poll log (the one GPU-cloud meter)
  month        month-to-date, billing coverage, projection inputs for gpuspend.forecast, billing summary
  build        the Snapshot every reader shows

Callers use the names re-exported here (`from gpuspend import costing; costing.build_snapshot(...)`).
"""

from __future__ import annotations

from gpuspend import forecast
from gpuspend.costing import context
from gpuspend.costing.attribution import attribution, by_user
from gpuspend.costing.build import build_snapshot, refresh_live
from gpuspend.costing.cloud import cloud_daily
from gpuspend.costing.common import DAY_MS, HOUR_MS, STATES, Episode, GpuTimeline, Spend, day_start, money
from gpuspend.costing.context import ReadContext, cache_for, reading
from gpuspend.costing.episodes import (
    MAX_LOOKBACK_MS,
    EpisodeScan,
    gap_ms_for,
    idle_episodes,
    is_remote,
    run_start_bound,
    scan_episodes,
    underutilised,
    waste_in,
    waste_since,
)
from gpuspend.costing.metering import hourly, metered_daily, metered_total
from gpuspend.costing.month import add_daily, alternatives, billing_summary, export_coverage, month_views_for
from gpuspend.costing.store_read import (
    covered_by_day,
    covered_totals,
    load_gpus,
    local_rates,
    minute_sums,
    open_alerts,
    raw_segments,
    resolve_rates,
    segments,
    watermark,
)


def reset_caches() -> None:
    """Forget every cached value (tests and benchmarks that want a cold computation)."""
    context.reset()
    forecast.clear_caches()


__all__ = [
    "DAY_MS", "HOUR_MS", "MAX_LOOKBACK_MS", "STATES", "Episode", "EpisodeScan", "GpuTimeline", "ReadContext", "Spend",
    "add_daily", "alternatives", "attribution", "billing_summary", "build_snapshot", "by_user", "cache_for",
    "cloud_daily", "export_coverage", "covered_by_day", "covered_totals", "day_start", "gap_ms_for", "hourly",
    "idle_episodes", "is_remote", "load_gpus", "local_rates", "metered_daily", "metered_total", "minute_sums",
    "money", "month_views_for", "open_alerts", "raw_segments", "reading", "refresh_live", "reset_caches", "resolve_rates",
    "run_start_bound", "scan_episodes", "segments", "underutilised", "waste_in", "waste_since", "watermark",
]
