"""How gpuspend writes things: money, rates, durations, counts, sizes, and outside text.

The one home for these spellings. The dashboard, `--report`, notifications, the fleet view, `gpuspend prices`
and the collectors' error messages all call these functions, so 3,900 s of idle is `1h05m` everywhere and unknown
money is `no rate` everywhere. A surface may ask for a shorter form (`compact=True`), never spell its own.

Pure standard library: no textual, no rich (the report and the collectors import this).
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Context, Decimal
from typing import Any

NO_RATE = "no rate"          # unknown money: no rate, unknown state, not a number; never "$0", never "n/a"
UNKNOWN = "unknown"          # an unknown duration
ELLIPSIS = "…"
ASCII_ELLIPSIS = "..."       # --ascii and the cron report

# -- money ---------------------------------------------------------------------------------------------------


def _finite(amount: Any) -> float | None:
    if amount is None:
        return None
    try:
        v = float(amount)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# ISO 4217 minor units where they are not 2: a yen has no cents, so an invoice in JPY reads `1,234 JPY`, never
# `1,234.00 JPY` (nor a bill in KWD `1.235 KWD` rounded to 1.24). Every other code is written with 2 decimals.
MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}


_CODE = re.compile(r"[A-Za-z]{3}")


def currency_code(text: str) -> str | None:
    """An ISO 4217 code as exports write it (`JPY`), or None where `text` is not one. `jpy` is JPY, so that
    rows, budgets and configured rates compare: one currency is never two buckets of a month."""
    s = text.strip()
    return s.upper() if _CODE.fullmatch(s) else None


def minor_units(currency: str | None) -> int:
    """Decimals an amount of `currency` is written with (ISO 4217): 0 for JPY, 3 for KWD, else 2."""
    return MINOR_UNITS.get((currency or "USD").upper(), 2)


def money(amount: float | None, currency: str | None = "USD", *, decimals: int | None = None,
          compact: bool = False, bare: bool = False) -> str:
    """`$1,234.56` for USD, `1,234.56 EUR` for any other currency; None, NaN and infinities are `no rate`.

    Always fixed-point with thousands separators (never `1e+04`), to the currency's minor units (`1,234 JPY`).
    `compact` (the dashboard) drops the cents from 10,000 up; `decimals` fixes the number of decimals; `bare`
    leaves the currency out, for a surface that names it once (a column header `JPY/h`, a line's start).
    """
    v = _finite(amount)
    if v is None:
        return NO_RATE
    if decimals is None:
        decimals = 0 if compact and abs(v) >= 10_000 else minor_units(currency)
    body = _fixed(abs(v), decimals)
    neg = "-" if v < 0 and any(c in "123456789" for c in body) else ""
    cur = currency or "USD"
    if bare:
        return f"{neg}{body}"
    return f"{neg}${body}" if cur == "USD" else f"{neg}{body} {cur}"


def mark(currency: str | None) -> str:
    """How a column header names its currency: `$` for USD (`$/h`), else the ISO code (`JPY/h`)."""
    cur = currency or "USD"
    return "$" if cur == "USD" else cur


# Every finite float's digits: the default context's 28 digits failed to quantize an amount of 1e26 or more
# (and a share of a tiny budget), a traceback where a number belongs.
_EXACT = Context(prec=400)


def rounded(amount: float, decimals: int = 2) -> Decimal:
    """`amount` to `decimals` places as a person rounds it by hand: half away from zero on the decimal number
    the float stands for ($8.545 is $8.55 and $0.125 is $0.13, where binary formatting gives $8.54 and $0.12).

    The float is read to 9 places first, which drops the noise a sum of floats leaves (8.544999999999998 is
    the 8.545 it adds up to), then rounded once.
    """
    return Decimal(repr(round(amount, 9))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP,
                                                     context=_EXACT)


def _fixed(v: float, decimals: int) -> str:
    """`v` (>= 0) to `decimals` places, half up (`rounded`). Away from a tie, binary formatting rounds the
    same way and costs a third as much: the dashboard writes money many times a second."""
    scaled = v * 10.0 ** decimals
    if abs(scaled % 1.0 - 0.5) > 1e-4 + scaled * 1e-15:
        return f"{v:,.{decimals}f}"
    return f"{rounded(v, decimals):,.{decimals}f}"


def share_cut(pct: float, places: int = 0) -> float:
    """A percentage of a budget cut to `places` decimals, never rounded up: 79.996 is 79.99 (79 at 0 places).
    A threshold must not read as reached ("80%") while budget.state says it is not, nor 100% while under."""
    cut = Decimal(repr(pct)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN, context=_EXACT)
    return float(cut) + 0.0    # no -0


def share(pct: float | None) -> str:
    """A percentage of a budget as every surface writes it: whole percent, cut (share_cut); `unknown` if None."""
    v = _finite(pct)
    return UNKNOWN if v is None else f"{share_cut(v):.0f}%"


def rate(amount: float | None, currency: str | None = "USD", unit: str = "h") -> str:
    """A price per unit of time, `$4.00/h`; keeps up to 4 decimals below 1 ($0.0125/h), `no rate` when unknown."""
    v = _finite(amount)
    if v is None:
        return NO_RATE
    decimals = 2
    if abs(v) < 1:
        while decimals < 4 and round(v, decimals) != round(v, 4):
            decimals += 1
    return f"{money(v, currency, decimals=decimals)}/{unit}"


# -- durations, counts, sizes --------------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """`45s`, `12m`, `1h05m`, `6d02h`; None (or not a number) is `unknown`; negative is 0s."""
    v = _finite(seconds)
    if v is None:
        return UNKNOWN
    s = int(max(v, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def unseen(seconds: float) -> str:
    """What an idle span's waste leaves out, said beside the waste: `22m unseen, not counted` when a minute
    or more of the span had no samples or unknown utilisation (an episode spans a collector gap, money does
    not), else ""."""
    v = _finite(seconds)
    return f"{duration(v)} unseen, not counted" if v is not None and v >= 60 else ""


def count(n: float, noun: str, plural: str | None = None) -> str:
    """`1 GPU`, `3 GPUs`, `2 processes`, `0.5 GPUs` (a float as written with :g, an int as it is)."""
    num = f"{n:g}" if isinstance(n, float) else str(n)
    if n == 1:
        return f"{num} {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
    return f"{num} {plural}"


def size(n: int | None) -> str:
    """Bytes as GiB, `72.0G` (no decimal from 100 G); `-` when unknown."""
    v = _finite(n)
    if v is None:
        return "-"
    gib = v / 2**30
    return f"{gib:.1f}G" if gib < 100 else f"{gib:,.0f}G"


# -- outside text --------------------------------------------------------------------------------------------

# Terminal escape sequences, removed whole (their parameters too): CSI (7- and 8-bit), OSC / DCS / SOS / PM /
# APC strings up to their terminator, any other two-character ESC sequence, a lone ESC.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
# Line breaks and tabs: outside text is one line.
_SPACES = re.compile(r"[\t\n\v\f\r\x85\u2028\u2029]")
# Invisible format characters (zero-width space/joiners, word joiner, BOM, invisible operators): removed.
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060-\u2064\ufeff\u180e\u00ad]")
# Everything else that is not text: C0/DEL/C1 controls, bidi marks/embeddings/overrides/isolates, lone
# surrogates. Shown as `?`, so tampering stays visible.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def clean(text: Any, limit: int | None = None, *, ascii: bool = False) -> str:
    """Outside text (other users' process names and command lines, billing descriptions, tags, API answers,
    label values) as one inert printable line: escapes removed, line breaks become spaces, zero-width
    characters removed, control and bidi characters become `?`. Longer than `limit` characters, it is cut
    and ends in `…` (`...` with `ascii`). None is the empty string. Markup (`[bold]`) is left as the
    characters it is: a surface that parses markup must not parse this (the TUI puts it in `rich.text.Text`).
    """
    if text is None:
        return ""
    s = str(text)
    if limit is not None:
        s = s[: limit * 4 + 64]         # a long command line is cut before it is scanned (escapes can shorten it)
    if not s.isprintable():
        s = _ESCAPES.sub("", s)
        s = _SPACES.sub(" ", s)
        s = _INVISIBLE.sub("", s)
        s = _CONTROLS.sub("?", s)
    if limit is not None and len(s) > limit:
        mark = ASCII_ELLIPSIS if ascii else ELLIPSIS
        s = s[: max(0, limit - len(mark))] + mark if limit >= len(mark) else s[:limit]
    return s
