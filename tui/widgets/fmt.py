"""Pure formatting for the dashboard: money, durations, bars, and making outside text safe to show.

Everything returns plain `str` or `rich.text.Text` built with `Text(...)` (never `Text.from_markup`), so a
process called "[red]x" is shown as those five characters.
"""

from __future__ import annotations

import re

from rich.text import Text

# CSI / OSC / other ESC sequences, then any remaining C0/C1 control character except tab.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|[\x00-\x08\x0a-\x1f\x7f-\x9f]")

CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def clean(text: object) -> str:
    """Outside text (process names, commands, users, billing descriptions) as one printable line."""
    return _ESCAPES.sub("", str(text)).replace("\t", " ")


def plain(text: object, style: str = "") -> Text:
    """A Text that is never parsed for markup."""
    return Text(clean(text), style=style, no_wrap=True, overflow="ellipsis")


def money(amount: float | None, currency: str = "USD", *, decimals: int | None = None) -> str:
    if amount is None:
        return "no rate"
    sign = CURRENCY_SIGNS.get(currency)
    if decimals is None:
        decimals = 2 if abs(amount) < 10_000 else 0
    body = f"{abs(amount):,.{decimals}f}"
    neg = "-" if amount < 0 else ""
    return f"{neg}{sign}{body}" if sign else f"{neg}{body} {currency}"


def duration(seconds: float) -> str:
    """Compact: 45s, 12m, 3h05m, 2d04h."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    gib = n / 2**30
    return f"{gib:.1f}G" if gib < 100 else f"{gib:.0f}G"


_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(pct: float | None, width: int = 10, *, ascii_only: bool = False, style: str = "#5fd75f") -> Text:
    """A horizontal bar with the percentage after it, e.g. `█████▌     55%`."""
    if pct is None:
        return Text(" " * width + "   -", no_wrap=True)
    p = min(max(pct, 0.0), 100.0)
    if ascii_only:
        full = round(p / 100 * width)
        body = "#" * full + "." * (width - full)
    else:
        eighths = round(p / 100 * width * 8)
        full, part = divmod(eighths, 8)
        body = "█" * full + (_EIGHTHS[part] if part else "")
        body = body.ljust(width)
    t = Text(no_wrap=True)
    t.append(body, style=style)
    t.append(f"{p:4.0f}%")
    return t


# Colours are exact xterm-256 palette entries (203/77/221/81/177): identical over SSH at 256 colours, and
# light enough to stay readable under NO_COLOR's greyscale.
STATE_STYLE = {"busy": "#5fd75f", "held-idle": "bold #ff5f5f", "free-idle": "#ffd75f", "lost": "#d787ff", "stale": "dim"}


def state(name: str) -> Text:
    return Text(name, style=STATE_STYLE.get(name, ""), no_wrap=True)
