"""The alert kinds: their names, their Alertmanager-style names, their severity, and `--fail-on` parsing.

One home for every surface: the alert engine, the report (local and `--fleet`), the TUI's alert panel,
notifications and /metrics all use these names, and both reports parse `--fail-on` with `parse_fail_on`.
"""

from __future__ import annotations

from gpuspend.errors import UsageError

IDLE = "idle"
BUDGET = "budget"
SPIKE = "spike"
COLLECTOR = "collector"
STALE = "stale"

KINDS = (IDLE, BUDGET, SPIKE, COLLECTOR, STALE)

ALERTNAMES = {IDLE: "GpuIdle", BUDGET: "BudgetThreshold", SPIKE: "SpendSpike",
              COLLECTOR: "CollectorStopped", STALE: "StaleData"}

# A budget threshold fires once per month (like AWS Budgets): never a reminder.
NO_REPEAT = frozenset({BUDGET})

_ERRORS = frozenset({BUDGET, COLLECTOR})


def severity(kind: str) -> str:
    """error | warning: how loudly a surface shows an open alert of this kind."""
    return "error" if kind in _ERRORS else "warning"


def parse_fail_on(text: str | None) -> frozenset[str]:
    """`--fail-on idle,budget` (or `all`) -> the kinds whose active alerts make the report exit 1.

    An unknown kind is a usage error (exit 2, one line), whatever the report's source."""
    kinds = {k.strip().lower() for k in (text or "").split(",") if k.strip()}
    if "all" in kinds:
        return frozenset(KINDS)
    bad = sorted(kinds - set(KINDS))
    if bad:
        raise UsageError(f"--fail-on: unknown alert kind '{bad[0]}'", hint=f"choose from {','.join(KINDS)},all")
    return frozenset(kinds)
