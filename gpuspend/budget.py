"""Budget crossing: the one home of the rule (DESIGN.md "Month": thresholds in % with basis actual/forecast).

Every surface asks this module, from the same config and month view: the alert engine (which thresholds fire,
with hysteresis), the report (`thresholds_crossed`, `--fail-on budget`), the TUI's alert panel (which crossings
to show) and header (the colour level of a percentage), and /metrics.

- `pcts`: the month's budget and the spent / forecast percentages of it (None without a budget in that currency);
- `uncompared`: why a budget in a currency with no spend (while others have spend) has no percentage;
- `crossings`: every (threshold, basis) of the configured bases with its state: True crossed, False clear,
  None inside the hysteresis band (a crossed threshold clears only HYSTERESIS_PCT points below it);
- `crossed`: the crossings that fire now;
- `level`: ok | warning | error for a percentage against the configured thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpuspend.snapshot import MonthView

if TYPE_CHECKING:
    from gpuspend.config import Config

ACTUAL = "actual"
FORECAST = "forecast"
BASES = (ACTUAL, FORECAST)
HYSTERESIS_PCT = 5.0

OK = "ok"
WARNING = "warning"
ERROR = "error"


@dataclass(frozen=True)
class Crossing:
    threshold: float
    basis: str                  # actual | forecast
    pct: float                  # the month's percentage of the budget on this basis
    amount: float | None        # month to date (actual) or projection (forecast)
    firing: bool | None         # True crossed, False clear, None inside the hysteresis band: keep state


def _section(cfg: Config) -> Any:
    return getattr(cfg, "budget", None)


def _get(section: Any, key: str, default: Any = None) -> Any:
    if section is None:
        return default
    if isinstance(section, dict):
        return section.get(key, default)
    return getattr(section, key, default)


def thresholds(cfg: Config) -> tuple[float, ...]:
    """The configured thresholds (%), ascending."""
    return tuple(sorted(float(t) for t in (_get(_section(cfg), "thresholds") or ())))


def bases(cfg: Config) -> tuple[str, ...]:
    """The configured bases, in BASES order; an empty list turns budget crossings off."""
    wanted = {str(b).strip().lower() for b in (_get(_section(cfg), "basis") or ())}
    return tuple(b for b in BASES if b in wanted)


def pcts(cfg: Config, currency: str, mtd: float,
         projection: float | None) -> tuple[float | None, float | None, float | None]:
    """(budget, % spent, % forecast) of a month in `currency`; all None without a budget in that currency."""
    section = _section(cfg)
    monthly = _get(section, "monthly")
    if not monthly or (_get(section, "currency") or "USD") != currency:
        return None, None, None
    amount = float(monthly)
    return (amount, 100.0 * mtd / amount,
            None if projection is None else 100.0 * projection / amount)


def uncompared(cfg: Config, spent: set[str] | frozenset[str]) -> str | None:
    """Why the budget is not compared this month, or None: a budget in a currency with no spend while the money
    goes out in others (0% of a EUR budget against USD spend would read as "all is well"). Currencies are never
    converted or summed, so such a budget has no percentage; every surface shows this line instead."""
    section = _section(cfg)
    if not _get(section, "monthly"):
        return None
    cur = _get(section, "currency") or "USD"
    if cur in spent or not spent:
        return None
    return f"no spend in {cur} this month (spend is in {', '.join(sorted(spent))}): the {cur} budget is not compared"


def state(pct: float, threshold: float) -> bool | None:
    """Hysteresis: crossed at or above the threshold, clear more than HYSTERESIS_PCT below, else undecided."""
    if pct >= threshold:
        return True
    if pct < threshold - HYSTERESIS_PCT:
        return False
    return None


def crossings(cfg: Config, view: MonthView) -> list[Crossing]:
    """Every configured (threshold, basis) with a known percentage, with its hysteresis state."""
    if view.budget is None:
        return []
    out = []
    for thr in thresholds(cfg):
        for basis in bases(cfg):
            pct = view.budget_pct_actual if basis == ACTUAL else view.budget_pct_forecast
            if pct is None:
                continue
            amount = view.mtd if basis == ACTUAL else view.projection
            out.append(Crossing(thr, basis, float(pct), amount, state(float(pct), thr)))
    return out


def crossed(cfg: Config, view: MonthView) -> list[Crossing]:
    """The crossings that fire now (ascending threshold, actual before forecast)."""
    return [c for c in crossings(cfg, view) if c.firing]


def highest(cfg: Config, view: MonthView) -> list[Crossing]:
    """Per basis, the highest threshold crossed now: what a one-line surface shows."""
    top: dict[str, Crossing] = {}
    for c in crossed(cfg, view):
        top[c.basis] = c
    return [top[b] for b in BASES if b in top]


def level(pct: float | None, levels: tuple[float, ...] | list[float]) -> str | None:
    """ok under the first threshold, warning at or past it, error at or past the last; None when unknown."""
    if pct is None or not levels:
        return None
    ts = sorted(float(t) for t in levels)
    if pct >= ts[-1]:
        return ERROR
    if pct >= ts[0]:
        return WARNING
    return OK
