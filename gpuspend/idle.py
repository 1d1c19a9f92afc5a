"""The idle boundary and the gap rule: the one home of both (DESIGN.md "Cost semantics").

Idle means utilisation at or below `idle.util_pct`; busy means above it. Every surface (rollup, cost engine,
fleet view for gpuspend and dcgm nodes, simulator) decides a sample's state through these functions.

A gap longer than GAP_INTERVALS sample intervals is a gap, not money: the sample before it covers one interval
and the rest is time nobody can account for.
"""

from __future__ import annotations

GAP_INTERVALS = 3

BUSY = "busy"
HELD_IDLE = "held-idle"
FREE_IDLE = "free-idle"
IDLE_STATES = (HELD_IDLE, FREE_IDLE)


def is_idle(util: float | None, threshold: float) -> bool:
    """Utilisation at or below the threshold (percent). Unknown utilisation is never idle."""
    return util is not None and float(util) <= float(threshold)


def sample_state(util: float | None, holds_memory: bool, idle_util_pct: float) -> str:
    """busy | held-idle | free-idle. Unknown utilisation (MIG devices, NotSupported) with a process on the
    GPU counts as busy: we never call money waste on a guess."""
    if util is None:
        return BUSY if holds_memory else FREE_IDLE
    if not is_idle(util, idle_util_pct):
        return BUSY
    return HELD_IDLE if holds_memory else FREE_IDLE


def promql_idle(expr: str, threshold: float) -> str:
    """The same boundary as a PromQL filter over a utilisation series in percent."""
    return f"{expr} <= {float(threshold):g}"


def gap_cap_ms(interval_ms: float) -> float:
    """The longest distance between two samples that is still continuous coverage."""
    return GAP_INTERVALS * interval_ms


def covered_ms(dt_ms: float, interval_ms: float) -> float:
    """How much of the time up to the next sample one sample covers: all of it, or one interval after a gap."""
    return dt_ms if dt_ms <= gap_cap_ms(interval_ms) else interval_ms


def busy_sql(column: str = "util") -> str:
    """The busy side of the boundary as an SQL condition with one parameter (the threshold)."""
    return f"{column} > ?"
