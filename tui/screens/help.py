"""`?`: what the keys do (after keymap overrides) and what the states and columns mean."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

STATES = [
    ("busy", "utilisation above idle.util_pct"),
    ("held-idle", "idle but a process holds memory (a notebook or server left open)"),
    ("free-idle", "idle and nothing running: release the GPU or stop the instance"),
    ("unknown", "no utilisation from NVML (MIG without GPM) and no process: never idle, never waste"),
    ("lost", "the GPU fell off the bus (XID 79 / GPU lost)"),
    ("stale", "no recent sample (collector stopped?)"),
]


def help_text(keys: list[tuple[str, str, str]]) -> Text:
    """`keys`: (keys, what, binding id); the id is what `tui.keymap` remaps."""
    t = Text()
    t.append("gpuspend dashboard\n\n", style="bold")
    t.append("Keys", style="bold underline")
    t.append("  (binding id in brackets: remap it with tui.keymap)\n", style="dim")
    for key, what, bid in keys:
        t.append(f"  {key:<14}", style="bold")
        t.append(what)
        if bid:
            t.append(f"  [{bid}]", style="dim")
        t.append("\n")
    t.append("  ctrl+p        command palette (also: save a screenshot)\n\n")
    t.append("GPU states\n", style="bold underline")
    for name, what in STATES:
        t.append(f"  {name:<12}", style="bold")
        t.append(f"{what}\n")
    t.append("\nColumns\n", style="bold underline")
    t.append("  $/h         the GPU's rate and where it comes from (header line: rates)\n"
             "  idle        continuous idle time; an episode opens after idle.after\n"
             "  wasted      money spent on this GPU during the open idle episode\n"
             "  today       process cost today (UTC day), split by SM share, else memory share, on shared GPUs\n"
             "  idle $      of today: the part spent while the process held an idle GPU\n"
             "  chart       $/h per hour over the last 24 h (scale on the left, hours ago below): useful\n"
             "              (busy GPUs) at the bottom, idle on top\n\n")
    t.append("Header\n", style="bold underline")
    t.append("  now $/h, today, month-to-date (billed up to the exports' coverage, metered after),\n"
             "  projected month with its 80% interval, vs the budget (yellow/red past the thresholds),\n"
             "  idle waste today. In another currency than USD, the line starts with it (JPY) and its\n"
             "  amounts are bare, as the GPU table's JPY/h and wasted columns.\n\n")
    t.append("Command line: -i SECONDS, --only 0,3, --user NAME, --ascii, --no-color (or NO_COLOR=1).\n"
             "Keys can be remapped in the config: tui.keymap: {pause: space, billing: f2}\n", style="dim")
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help_close"),
        Binding("question_mark,h,f1", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        keys = self.app.describe_keys() if hasattr(self.app, "describe_keys") else []
        with VerticalScroll(id="help-box"):
            yield Static(help_text(keys), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-box").border_title = "help (esc to close)"

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
