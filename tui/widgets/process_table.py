"""Processes on the GPUs, keyed by (pid, GPU), with a substring filter."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from gpuspend.snapshot import ProcessNow
from gpuspend.tui.widgets.fmt import clean, money, plain, size
from gpuspend.tui.widgets.keyed_table import LaidOutTable


def _command(command: str, width: int) -> Text:
    t = plain(command)
    t.truncate(width, overflow="ellipsis")
    return t


def process_cells(p: ProcessNow, currency: str, command_width: int = 72, *, no_rate: bool = False) -> list[Any]:
    """`no_rate`: no GPU has a rate, so a process's cost is unknown (shown as such, never as $0)."""
    cost = Text("no rate", justify="right", style="dim") if no_rate and not p.cost_today \
        else Text(money(p.cost_today, currency), justify="right")
    return [
        Text(str(p.pid), justify="right"),
        plain(p.user),
        Text("-" if p.gpu_index is None else str(p.gpu_index), justify="right"),
        Text(size(p.used_memory), justify="right"),
        cost,
        _command(p.command, command_width),
    ]


def matches(p: ProcessNow, needle: str) -> bool:
    if not needle:
        return True
    n = needle.lower()
    return (n in clean(p.command).lower() or n in clean(p.user).lower() or n in str(p.pid)
            or (p.gpu_index is not None and n == f"gpu{p.gpu_index}"))


class ProcessTable(LaidOutTable):
    """Processes on the GPUs. A LaidOutTable: each row's cost changes every sample."""

    FIELDS = (("pid", "pid"), ("user", "user"), ("gpu", "GPU"), ("mem", "mem"), ("cost", "today"),
              ("cmd", "command"))

    filter_text = ""

    def show(self, procs: tuple[ProcessNow, ...], currency: str, *, no_rate: bool = False) -> bool:
        # the command gets what the other columns leave, so no horizontal scrollbar eats a row
        width = max(16, (self.size.width or 120) - 40)
        return self.show_rows([(f"{p.pid}:{p.gpu_uuid}", process_cells(p, currency, width, no_rate=no_rate))
                               for p in procs if matches(p, self.filter_text)])
