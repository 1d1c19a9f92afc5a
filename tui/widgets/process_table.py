"""Processes on the GPUs, keyed by (pid, GPU): sortable (cost, memory, GPU, user), filtered by text, user and a
GPU subset; a `workload` column appears when the collector reports workloads."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text

from gpuspend.fmt import mark
from gpuspend.snapshot import ProcessNow
from gpuspend.tui.widgets.fmt import clean, fit, money, plain, size
from gpuspend.tui.widgets.keyed_table import LaidOutTable, cell_width


def workload_of(p: ProcessNow) -> str:
    """The process's workload (issue 14 adds it to the snapshot); empty when unknown."""
    return clean(getattr(p, "workload", None) or "")


def process_cells(p: ProcessNow, currency: str, command_width: int = 72, *, no_rate: bool = False,
                  workload: bool = False, ascii_only: bool = False, stated: str | None = None) -> list[Any]:
    """`currency`: the process's GPU's; `stated`: the one the `idle $` header names (fmt.mark), bare when the
    same. `no_rate`: no GPU has a rate, so a process's cost is unknown (shown as such, never as $0)."""
    unknown = no_rate and not p.cost_today
    cost = Text("no rate", justify="right", style="dim") if unknown \
        else Text(money(p.cost_today, currency, stated=stated), justify="right")
    idle = Text("", justify="right") if unknown or not p.idle_cost_today \
        else Text(money(p.idle_cost_today, currency, stated=stated), justify="right", style="#ff5f5f")
    cells: list[Any] = [
        Text(str(p.pid), justify="right"),
        plain(p.user),
        Text("-" if p.gpu_index is None else str(p.gpu_index), justify="right"),
        Text(size(p.used_memory), justify="right"),
        cost,
        idle,
    ]
    if workload:
        cells.append(Text(fit(workload_of(p), 24, ascii_only=ascii_only), no_wrap=True))
    cells.append(Text(fit(p.command, command_width, ascii_only=ascii_only), no_wrap=True))
    return cells


def shown_as(p: ProcessNow, currency: str) -> tuple:
    """What a row of process_cells is made of, money as shown: the cost today grows every sample, but its cents
    move every few seconds, so a table whose rows show the same again does no work (and keeps its order)."""
    return (p.pid, p.user, p.command, p.gpu_uuid, p.gpu_index, p.used_memory, p.workload,
            bool(p.cost_today), money(p.cost_today, currency), bool(p.idle_cost_today),
            money(p.idle_cost_today, currency))


def matches(p: ProcessNow, needle: str) -> bool:
    if not needle:
        return True
    n = needle.lower()
    return (n in clean(p.command).lower() or n in clean(p.user).lower() or n in str(p.pid)
            or n in workload_of(p).lower() or (p.gpu_index is not None and n == f"gpu{p.gpu_index}"))


# sort key -> (label, key function); every order ends on (GPU, pid) so equal rows keep a stable place
_GPU = float("inf")
SORTS: dict[str, tuple[str, Callable[[ProcessNow], tuple]]] = {
    "cost": ("cost today", lambda p: (-p.cost_today, -p.idle_cost_today)),
    "memory": ("memory", lambda p: (-(p.used_memory or 0),)),
    "gpu": ("GPU", lambda p: ()),
    "user": ("user", lambda p: (clean(p.user).lower(),)),
}
SORT_ORDER = tuple(SORTS)


GROUP_LABEL = "workload (most expensive first)"


def group_by_workload(procs: Iterable[ProcessNow]) -> list[ProcessNow]:
    """The rows of one workload together, workloads by their cost today (most first), then by cost inside
    each; a process with no workload is its own group."""
    rows = list(procs)
    totals: dict[str, float] = {}
    for p in rows:
        w = workload_of(p) or f"pid {p.pid}"
        totals[w] = totals.get(w, 0.0) + (p.cost_today or 0.0)

    def key(p: ProcessNow) -> tuple:
        w = workload_of(p) or f"pid {p.pid}"
        return (-totals[w], w, -(p.cost_today or 0.0), _GPU if p.gpu_index is None else p.gpu_index, p.pid)

    return sorted(rows, key=key)


def sort_processes(procs: Iterable[ProcessNow], key: str, reverse: bool = False, *,
                   grouped: bool = False, idle: frozenset[str] = frozenset()) -> list[ProcessNow]:
    """Rows in the chosen order. In the default one (cost today, most first), the processes holding a GPU
    that sits idle now (`idle`: Snapshot.idle_now) come first: at 80x24 only the first rows show, and the
    holder is who to ask; a cheap notebook holding an idle H100 would otherwise sort last."""
    if grouped:
        out = group_by_workload(procs)
    else:
        fn = SORTS[key][1]
        pin = bool(key == "cost" and not reverse and idle)
        out = sorted(procs, key=lambda p: (pin and p.gpu_uuid not in idle, *fn(p),
                                           _GPU if p.gpu_index is None else p.gpu_index, p.pid))
    return out[::-1] if reverse else out


class ProcessTable(LaidOutTable):
    """Processes on the GPUs. A LaidOutTable: each row's cost changes every sample."""

    BASE_FIELDS = (("pid", "pid"), ("user", "user"), ("gpu", "GPU"), ("mem", "mem"), ("cost", "today"),
                   ("idle", "idle $"))
    FIELDS = (*BASE_FIELDS, ("cmd", "command"))

    filter_text = ""
    user_filter: str | None = None
    only_gpus: frozenset[int] | None = None      # --only 0,3
    sort_key = "cost"
    sort_reverse = False
    grouped = False                              # `w`: rows grouped by workload
    ascii_only = False
    shown: tuple[ProcessNow, ...] = ()           # the rows in screen order (the detail view reads them)
    _shown_key: tuple | None = None              # what they were made from

    def visible(self, procs: Iterable[ProcessNow]) -> list[ProcessNow]:
        return [p for p in procs if matches(p, self.filter_text)
                and (self.user_filter is None or p.user == self.user_filter)
                and (self.only_gpus is None or p.gpu_index in self.only_gpus)]

    def show(self, procs: tuple[ProcessNow, ...], currency_of: Callable[[str], str], *, no_rate: bool = False,
             currency: str = "USD", idle: frozenset[str] = frozenset()) -> bool:
        """`currency_of`: a GPU uuid's currency (Snapshot.currency_of): each row's money is its GPU's.
        `currency`: the dashboard's, which the money columns' header names (`idle JPY`), its amounts bare.
        `idle`: the GPUs idle now (Snapshot.idle_now), whose holders the default order puts first."""
        box = self.parent if self.parent is not None and self.parent.size.width else self   # a table is as wide as its rows
        total = box.size.width or (self.app.size.width if self.is_attached else 120)
        key = (tuple(shown_as(p, currency_of(p.gpu_uuid)) for p in procs), no_rate, self.filter_text, self.user_filter,
               self.only_gpus, self.sort_key, self.sort_reverse, self.grouped, self.ascii_only, total, currency, idle)
        if key == self._shown_key and self.columns:
            # the same rows, order and width as on screen; what the detail view reads is still the newest
            fresh = {(p.pid, p.gpu_uuid): p for p in procs}
            self.shown = tuple(fresh[(p.pid, p.gpu_uuid)] for p in self.shown)
            return False
        self._shown_key = key
        rows = sort_processes(self.visible(procs), self.sort_key, self.sort_reverse, grouped=self.grouped, idle=idle)
        workload = any(workload_of(p) for p in procs)
        base = tuple((f, f"idle {mark(currency)}") if f == "idle" else (f, label) for f, label in self.BASE_FIELDS)
        fields = (*base, *((("workload", "workload"),) if workload else ()), ("cmd", "command"))
        if fields != self.FIELDS:
            self.FIELDS = fields
            self._widths = ()                # a new column: lay the table out again
        self.shown = tuple(rows)
        cells = [process_cells(p, currency_of(p.gpu_uuid), 10_000, no_rate=no_rate, workload=workload,
                               ascii_only=self.ascii_only, stated=currency) for p in rows]
        # the command gets what the other columns leave (two spaces between, a cell of padding each side and
        # the scrollbar), so no horizontal scrollbar eats a row
        others = sum(max([cell_width(label), *(cell_width(c[i]) for c in cells)])
                     for i, (_f, label) in enumerate(fields[:-1]))
        width = max(16, total - others - 2 * (len(fields) - 1) - 4)
        for p, c in zip(rows, cells, strict=True):
            c[-1] = Text(fit(p.command, width, ascii_only=self.ascii_only), no_wrap=True)
        keyed = [(f"{p.pid}:{p.gpu_uuid}", c) for p, c in zip(rows, cells, strict=True)]
        current = [k.value for k in self.rows] if self.columns else []
        if current and current != [k for k, _c in keyed]:
            self._widths = ()                # the order changed: lay out again, the cursor follows its row
        return self.show_rows(keyed)

    def selected(self) -> ProcessNow | None:
        if not self.shown or self.row_count == 0:
            return None
        row = min(max(self.cursor_row, 0), len(self.shown) - 1)
        return self.shown[row]
