"""The idle boundary and the gap rule: the one home of both (DESIGN.md "Cost semantics").

Idle means utilisation at or below `idle.util_pct`; busy means above it. Every surface (rollup, cost engine,
fleet view for gpuspend and dcgm nodes, simulator) decides a sample's state through these functions.

A gap longer than GAP_INTERVALS sample intervals is a gap, not money: the sample before it covers one interval
and the rest is time nobody can account for. A gap is unknown time: it neither ends an idle episode (one that is
idle on both sides of it spans it) nor counts as waste; only work seen after it ends the episode.

Unknown utilisation (NVML NotSupported: MIG devices and MIG-enabled parents without GPM) is the state `unknown`:
never idle, never waste. A MIG slice with a process on it is in use (busy). A MIG-enabled GPU without a
utilisation of its own takes its state from its slices (`parent_state`).
"""

from __future__ import annotations

GAP_INTERVALS = 3

BUSY = "busy"
HELD_IDLE = "held-idle"
FREE_IDLE = "free-idle"
UNKNOWN = "unknown"
IDLE_STATES = (HELD_IDLE, FREE_IDLE)


def is_idle(util: float | None, threshold: float) -> bool:
    """Utilisation at or below the threshold (percent). Unknown utilisation is never idle."""
    return util is not None and float(util) <= float(threshold)


def sample_state(util: float | None, holds_memory: bool, idle_util_pct: float) -> str:
    """busy | held-idle | free-idle | unknown. Unknown utilisation with a process on the device counts as in use
    (busy: its cost goes to that process); without one it is `unknown`: we never call money waste on a guess."""
    if util is None:
        return BUSY if holds_memory else UNKNOWN
    if not is_idle(util, idle_util_pct):
        return BUSY
    return HELD_IDLE if holds_memory else FREE_IDLE


def parent_state(slice_states: list[str]) -> str:
    """The state of a MIG-enabled GPU with no utilisation of its own, from its slices' states at the same
    instant: in use when any slice is; idle only when every slice is known to be idle; else unknown."""
    if not slice_states:
        return UNKNOWN
    if BUSY in slice_states:
        return BUSY
    if all(s in IDLE_STATES for s in slice_states):
        return HELD_IDLE if HELD_IDLE in slice_states else FREE_IDLE
    return UNKNOWN


def state_of(util: float | None, holds_memory: bool, idle_util_pct: float,
             slice_states: list[str] | None = None) -> str:
    """A sample's state: its own when its utilisation is known, else its slices' (a MIG-enabled parent)."""
    if util is None and slice_states:
        return parent_state(slice_states)
    return sample_state(util, holds_memory, idle_util_pct)


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
