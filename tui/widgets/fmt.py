"""Dashboard formatting: bars, state labels, and outside text as inert `rich.text.Text`.

Money, durations, sizes and text cleaning are gpuspend.fmt's (the one spelling every surface shares); the
dashboard only asks for the compact money form. Everything returns plain `str` or `rich.text.Text` built with
`Text(...)` (never `Text.from_markup`), so a process called "[red]x" is shown as those five characters.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text

from gpuspend import fmt
from gpuspend.fmt import clean, duration, share, size

__all__ = ["bar", "clean", "duration", "fit", "money", "plain", "share", "size", "state", "wraps_alike"]


def plain(text: object, style: str = "", *, ascii_only: bool = False) -> Text:
    """Outside text as a Text that is never parsed for markup, cleaned by gpuspend.fmt.clean. Cut by a
    narrow column it ends in `…` (cropped with --ascii: nothing outside ASCII on screen)."""
    return Text(clean(text), style=style, no_wrap=True, overflow="crop" if ascii_only else "ellipsis")


def fit(text: object, width: int, *, ascii_only: bool = False) -> str:
    """Outside text cut to `width` characters, ending in `…` (`...` with --ascii) when cut."""
    return clean(text, max(width, 1), ascii=ascii_only)


def money(amount: float | None, currency: str = "USD", *, decimals: int | None = None,
          stated: str | None = None) -> str:
    """gpuspend.fmt.money in its compact form (no cents from 10,000 up). `stated`: the currency the line or
    column header names once (fmt.mark): an amount in it is written bare, unless it is USD (its `$` is as
    short as nothing, and a USD dashboard reads as it always has); an amount in another keeps its own sign."""
    bare = stated is not None and stated != "USD" and currency == stated
    return fmt.money(amount, currency, decimals=decimals, compact=True, bare=bare)


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
STATE_STYLE = {"busy": "#5fd75f", "held-idle": "bold #ff5f5f", "free-idle": "#ffd75f", "lost": "#d787ff", "stale": "dim",
               "unknown": "dim"}


def state(name: str) -> Text:
    return Text(name, style=STATE_STYLE.get(name, ""), no_wrap=True)


def wraps_alike(old: Text | None, new: Text) -> bool:
    """True when `new` lays out exactly as `old` did: the same length, its spaces and line ends where they were (wrapping breaks only there)
    and every changed character as wide as the one it replaced, so it wraps into the same lines at any width. A
    Static updated with such a text needs no layout pass (Static.update lays the whole screen out again by
    default: ~1 ms, where the repaint alone is a few cells); a minute ticking over in "idle 2h03m" is the usual
    change."""
    if old is None:
        return False
    a, b = old.plain, new.plain
    if len(a) != len(b):
        return False
    changed = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    if any(x.isspace() or y.isspace() for x, y in changed):       # where a line may break, or breaks
        return False
    return a.isascii() and b.isascii() or all(cell_len(x) == cell_len(y) for x, y in changed)
