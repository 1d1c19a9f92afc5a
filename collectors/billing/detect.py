"""Which export format a header is, and a useful message when it is none of them."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from gpuspend.collectors.billing import aws_cur, azure, focus, gcp
from gpuspend.errors import DataError, UsageError

FORMATS = ("focus", "aws-cur", "aws-cur2", "gcp", "azure")
_MODULES: dict[str, ModuleType] = {"focus": focus, "aws-cur": aws_cur, "aws-cur2": aws_cur, "gcp": gcp,
                                   "azure": azure}


def module(fmt: str) -> ModuleType:
    return _MODULES[fmt]


def _groups(fmt: str) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(required, signature) as lists of alternatives."""
    mod = _MODULES[fmt]
    if mod is azure:
        return list(azure.REQUIRED), list(azure.SIGNATURE_ANY)
    return [(k,) for k in mod.REQUIRED], [(k,) for k in mod.SIGNATURE]


@dataclass(frozen=True)
class Verdict:
    fmt: str
    keys: list[str]              # normalised header keys for that format
    missing: list[str]           # required columns absent (display names)
    score: float


def _assess(fmt: str, header: list[str]) -> Verdict:
    keys = _MODULES[fmt].keys(header)
    present = set(keys)
    required, signature = _groups(fmt)
    missing = [alts[0] for alts in required if not present.intersection(alts)]
    hits = sum(1 for alts in signature if present.intersection(alts))
    return Verdict(fmt, keys, missing, hits / len(signature))


def _display(fmt: str, key: str) -> str:
    """Column names as the user would see them in that format's documentation."""
    names = {
        "focus": {"billedcost": "BilledCost", "billingperiodstart": "BillingPeriodStart",
                  "chargeperiodstart": "ChargePeriodStart", "chargecategory": "ChargeCategory"},
        "aws-cur": {"line_item_unblended_cost": "lineItem/UnblendedCost",
                    "line_item_usage_start_date": "lineItem/UsageStartDate"},
        "azure": {"costinbillingcurrency": "CostInBillingCurrency (or Cost, PreTaxCost)",
                  "date": "Date (or UsageDateTime)", "billingcurrency": "BillingCurrency (or Currency)"},
    }
    return names.get(fmt, {}).get(key, key)


def _is_cur2(header: list[str]) -> bool:
    return not any("/" in h for h in header) and not any(h.startswith("resource_tags_") for h in header)


def detect(header: list[str], where: str, forced: str | None = None) -> Verdict:
    """The format of `header` (or `forced`); DataError naming the closest format and what it lacks."""
    if forced is not None:
        if forced not in _MODULES:
            raise UsageError(f"unknown format {forced!r}", hint=f"use one of {', '.join(FORMATS)}")
        v = _assess(forced, header)
        if v.missing:
            article = "an" if forced[0] in "aeiou" else "a"          # an azure / aws-cur export
            raise DataError(f"not {article} {forced} export: missing required column(s) "
                            f"{', '.join(_display(forced, m) for m in v.missing)}", where=where,
                            hint="check the export settings, or drop --format to detect the format")
        return v
    verdicts = [_assess(f, header) for f in ("focus", "aws-cur", "gcp", "azure")]
    ok = [v for v in verdicts if not v.missing]
    if ok:
        best = max(ok, key=lambda v: v.score)
        if best.fmt == "aws-cur" and _is_cur2(header):
            return Verdict("aws-cur2", best.keys, [], best.score)
        return best
    closest = max(verdicts, key=lambda v: (v.score, -len(v.missing)))
    raise DataError(f"unknown billing export format; closest is {closest.fmt} but it lacks "
                    f"{', '.join(_display(closest.fmt, m) for m in closest.missing)}", where=where,
                    hint=f"pass --format ({'|'.join(FORMATS)}) if the file is one of these")
