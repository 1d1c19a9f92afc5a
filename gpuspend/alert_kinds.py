"""The alert kinds: their names, their Alertmanager-style names, their severity, and `--fail-on` parsing.

One home for every surface: the alert engine, the report (local and `--fleet`), the TUI's alert panel,
notifications and /metrics all use these names, and both reports parse `--fail-on` with `parse_fail_on`.
"""

from __future__ import annotations

from gpuspend.errors import UsageError

IDLE = "idle"
BUDGET = "budget"
SPIKE = "spike"
COLLECTOR = "collector"       # no fresh GPU sample: the collector stopped (or never ran)
OUTDATED = "outdated"         # old billing exports or an old price catalog

KINDS = (IDLE, BUDGET, SPIKE, COLLECTOR, OUTDATED)

# "stale" once named both "no fresh GPU sample" and "old billing or prices". Those are now `collector` and
# `outdated`; the word is still accepted by --fail-on and a target's `kinds:` (meaning both), and it names a
# GPU whose samples are not fresh (its state, and the TUI's "stale: last sample" line).
STALE = "stale"
ALIASES = {STALE: (COLLECTOR, OUTDATED)}

ALERTNAMES = {IDLE: "GpuIdle", BUDGET: "BudgetThreshold", SPIKE: "SpendSpike",
              COLLECTOR: "CollectorStopped", OUTDATED: "OutdatedData"}


def expand(kinds: set[str] | frozenset[str] | tuple[str, ...] | list[str]) -> frozenset[str]:
    """Kind names as written (aliases included) -> the alert kinds they select."""
    out: set[str] = set()
    for k in kinds:
        out.update(ALIASES.get(k, (k,)))
    return frozenset(out)

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
    bad = sorted(kinds - set(KINDS) - set(ALIASES))
    if bad:
        raise UsageError(f"--fail-on: unknown alert kind '{bad[0]}'", hint=f"choose from {','.join(KINDS)},all")
    return expand(kinds)
