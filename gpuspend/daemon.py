"""The collector: lease, one sample per tick, heartbeat, and a small registry of periodic tasks.

Used by `gpuspend collect` (owner "daemon") and by the TUI in a worker thread (owner "tui"); each Collector
opens its own SQLite connection, so it is safe to drive from a thread other than the one that made it.

Periodic tasks: add one line to PERIODIC_TASKS: (name, every_s, "module:function") where the function is
`fn(conn, cfg, now_ms)`. Modules load lazily on first run; a task that raises logs one line to stderr and
the collector carries on.
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpuspend import clock, lease
from gpuspend.errors import GpuspendError, LeaseHeld
from gpuspend.store import connect, transaction

if TYPE_CHECKING:
    from gpuspend.config import Config

TaskFn = Callable[[Any, Any, int], None]

PERIODIC_TASKS: list[tuple[str, float, str | TaskFn]] = [
    ("rollup", 60.0, "gpuspend.rollup:rollup_task"),
    ("alerts", 30.0, "gpuspend.alerts:alerts_task"),
    ("clouds", 60.0, "gpuspend.collectors.clouds.task:poll_task"),   # polls every clouds.interval (itself)
    ("billing", 60.0, "gpuspend.collectors.billing.sources:reimport_changed"),  # billing.sources folders
]


def register_task(name: str, every_s: float, fn: str | TaskFn) -> None:
    """Add a periodic task at runtime (tests, plugins). Module-level tasks belong in PERIODIC_TASKS."""
    PERIODIC_TASKS.append((name, every_s, fn))


@dataclass
class _Task:
    name: str
    every_s: float
    target: str | TaskFn
    next_ms: int = 0
    fn: TaskFn | None = None
    failures: int = 0

    def resolve(self) -> TaskFn:
        if self.fn is None:
            if callable(self.target):
                self.fn = self.target
            else:
                module, attr = self.target.split(":")
                self.fn = getattr(importlib.import_module(module), attr)
        return self.fn


def _log(msg: str) -> None:
    print(f"gpuspend: collect: {msg}", file=sys.stderr, flush=True)


class Collector:
    def __init__(self, db_path: str | Path, cfg: Config, *, demo: bool, owner: str = "daemon",
                 interval_s: float | None = None, source: Any | None = None, seed: int = 42) -> None:
        self.db_path = Path(db_path)
        self.cfg = cfg
        self.demo = demo
        self.owner = owner
        self.interval_s = float(interval_s or cfg.interval or 2.0)
        self.seed = seed
        self.source = source
        self.conn = None
        self.sampler = None
        self.ticks = 0
        self._tasks = [_Task(name, every, target) for name, every, target in PERIODIC_TASKS]
        self._held = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def open(self) -> Collector:
        from gpuspend.collectors.sampler import Sampler

        try:
            # The source first: without a driver we fail before creating or touching the database.
            if self.source is None:
                self.source = self._make_source()
            self.source.open()
            self.conn = connect(self.db_path)
            if not lease.try_acquire(self.conn, self.owner, self.interval_s):
                info = lease.holder(self.conn)
                who = info.describe() if info else "another collector"
                raise LeaseHeld(f"another collector is already writing to {self.db_path}: {who}",
                                hint="stop it first, or let it collect; a stale lease is taken over after "
                                     f"{lease.STALE_INTERVALS} missed intervals")
            self._held = True
        except BaseException:
            self.close()
            raise
        self.sampler = Sampler(self.conn)
        return self

    def _make_source(self) -> Any:
        if self.demo:   # always its own host name, so demo rows never pass for this machine's GPUs
            from gpuspend.collectors.simulated import SimulatedSource

            return SimulatedSource(self.seed)
        from gpuspend.collectors.nvml import NvmlSource

        return NvmlSource(getattr(self.cfg, "host", None))

    def close(self) -> None:
        if self.source is not None:
            try:
                self.source.close()
            except Exception:
                pass
        if self.conn is not None:
            if self._held:
                try:
                    lease.release(self.conn)
                except Exception:
                    pass
                self._held = False
            self.conn.close()
            self.conn = None

    def __enter__(self) -> Collector:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- work ------------------------------------------------------------------------------------------
    def tick(self, now_ms: int | None = None) -> int:
        """One sample (written with the heartbeat in one transaction), then any periodic task that is due.
        Returns the number of GPU samples written."""
        if self.conn is None or self.sampler is None:
            raise RuntimeError("Collector.open() first")
        now = clock.now_ms() if now_ms is None else now_ms
        reading = self.source.read(now)
        with transaction(self.conn):
            if not lease.heartbeat(self.conn, now):
                self._held = False
                info = lease.holder(self.conn, now)
                raise LeaseHeld(f"lost the collector lease to {info.describe() if info else 'nobody'}",
                                hint="this collector stalled for more than "
                                     f"{lease.STALE_INTERVALS} intervals; restart it")
            try:
                n = self.sampler.write_rows(reading)
            except BaseException:
                self.sampler.forget()
                raise
        self.ticks += 1
        self.run_due_tasks(now)
        return n

    def run_due_tasks(self, now_ms: int) -> None:
        for task in self._tasks:
            if now_ms < task.next_ms:
                continue
            task.next_ms = now_ms + int(task.every_s * 1000)
            try:
                task.resolve()(self.conn, self.cfg, now_ms)
                task.failures = 0
            except Exception as exc:  # a broken task must never stop sampling
                task.failures += 1
                if self.conn is not None and self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                text = exc.line() if isinstance(exc, GpuspendError) else f"{type(exc).__name__}: {exc}"
                _log(f"task {task.name} failed: {text.splitlines()[0] if text else ''}")

    def run(self, interval_s: float | None = None, stop: threading.Event | None = None) -> None:
        """Sample every interval until `stop` is set. Sleeps to a fixed schedule (no drift)."""
        interval = float(interval_s or self.interval_s)
        if interval != self.interval_s and self.conn is not None:
            self.interval_s = interval     # staleness is judged against the interval we really use
            with transaction(self.conn):
                self.conn.execute("UPDATE collector_lease SET interval_s = ? WHERE id = 1", (interval,))
        stop = stop or threading.Event()
        next_at = time.monotonic()
        while not stop.is_set():
            try:
                self.tick()
            except sqlite3.OperationalError as exc:
                # disk full, locked past the busy timeout...: skip this tick, keep the daemon alive
                if self.conn is not None and self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                _log(f"sample skipped: {exc}")
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:                       # we fell behind (suspend, slow disk): do not burst
                next_at = time.monotonic()
                delay = 0
            if stop.wait(delay):
                break
