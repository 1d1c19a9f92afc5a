"""The collector: lease, one sample per tick, heartbeat, and a small registry of periodic tasks.

Used by `gpuspend collect` (owner "daemon") and by the TUI in a worker thread (owner "tui"); each Collector
opens its own SQLite connection, so it is safe to drive from a thread other than the one that made it.

Periodic tasks: add one line to PERIODIC_TASKS: (name, every_s, "module:function") where the function is
`fn(conn, cfg, now_ms)`. Modules load lazily on first run; a task that raises logs one line to stderr and
the collector carries on.

In `run()` (the daemon) the tasks run in a worker thread with its own connection, so sampling never waits on
a billing re-import, a rollup or a slow webhook: a 1M-row import used to stop sampling for seconds (unmetered
time) and let a second collector take the lease. While a task holds SQLite's write lock the sampling thread
keeps reading NVML on schedule and holds the readings back (a short busy timeout, never the 15 s one), writing
them with the next heartbeat. The worker announces each task in the lease (table collector_task: "busy, not
stalled, until ...") and beats the heartbeat when it ends, so a second collector never takes the lease over
from a collector that is only busy importing. A lone `tick(now)` (tests,
`collect --once`) still runs due tasks inline. The report's one fresh sample runs no task at all: it must
never deliver a notification (only `--notify` and the daemon do).
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
from gpuspend.rollup import INTERVAL_KEY
from gpuspend.store import BUSY_TIMEOUT_MS, connect, set_meta, transaction

if TYPE_CHECKING:
    from gpuspend.config import Config

TaskFn = Callable[[Any, Any, int], None]
SAMPLE_BUSY_MS = 200        # worker mode: how long a tick may wait for the write lock before holding its reading
MAX_HELD = 1800             # readings held back at most (an hour at 2 s)
META_CONFIG = "collector.config"   # config.identity() of the collector holding the lease
TASK_GRACE_MS = 15 * 60_000        # a task may hold the write lock this long before the lease counts as stalled
WORKER_NAP_MS = 30_000             # the task worker sleeps at most this long between looks at its tasks

PERIODIC_TASKS: list[tuple[str, float, str | TaskFn]] = [
    ("rollup", 60.0, "gpuspend.rollup:rollup_task"),
    ("alerts", 30.0, "gpuspend.alerts:alerts_task"),
    ("clouds", 60.0, "gpuspend.collectors.clouds.task:poll_task"),   # polls every clouds.interval (itself)
    ("billing", 60.0, "gpuspend.collectors.billing.sources:reimport_task"),  # billing.sources, in a child
    ("prices", 60.0, "gpuspend.collectors.prices.task:refresh_task"),  # every prices.refresh (off: 0)
]
# Tasks run on the clock's whole periods (UTC), one sampling interval and a second after each (the period's
# last sample is written by then), instead of a period after the collector started. The rollup moves the
# watermark to the newest sample's minute, and every reader walks the raw samples after it one by one: run
# just after the minute turns, that tail is half a minute long on average instead of a whole one (every
# snapshot, every alert evaluation, half the Python work).
ON_THE_PERIOD = frozenset({"rollup"})


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
                 interval_s: float | None = None, source: Any | None = None, seed: int = 42,
                 periodic: bool | None = None) -> None:
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
        # The report's one fresh sample runs no periodic task (no rollup, no delivery, no cloud poll).
        self.periodic = owner != "report" if periodic is None else periodic
        self._tasks = [_Task(name, every, target) for name, every, target in PERIODIC_TASKS] if self.periodic else []
        self._held = False
        self._worker: threading.Thread | None = None
        self._worker_stop = threading.Event()
        self._pending: list[Any] = []          # readings taken while the write lock was busy
        # In-app (the dashboard): its newest full snapshot of this database, or None. A task marked
        # `takes_snapshot` (alerts) is handed it instead of building one of its own.
        self.recent_snapshot: Callable[[], Any] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def open(self) -> Collector:
        from gpuspend.collectors.sampler import Sampler

        try:
            # The source first: without a driver we fail before creating or touching the database.
            if self.source is None:
                self.source = self._make_source()
            self.source.open()
            if self.demo:       # simulated rows go only into a demo database, never into real data
                from gpuspend.demo import claim_for_demo

                claim_for_demo(self.db_path)
            else:               # and real rows never into a demo database
                from gpuspend.demo import refuse_real_data_into_demo

                refuse_real_data_into_demo(self.db_path, "this box's GPUs")
            self.conn = connect(self.db_path)
            if not lease.try_acquire(self.conn, self.owner, self.interval_s):
                info = lease.holder(self.conn)
                who = info.describe() if info else "another collector"
                raise LeaseHeld(f"another collector is already writing to {self.db_path}: {who}",
                                hint="stop it first, or let it collect; a stale lease is taken over after "
                                     f"{lease.STALE_INTERVALS} missed intervals")
            self._held = True
            if self.periodic:    # which config this collector runs on: doctor compares it with its own
                from gpuspend.config import identity

                with transaction(self.conn):
                    set_meta(self.conn, META_CONFIG, identity(self.cfg))
                    set_meta(self.conn, INTERVAL_KEY, repr(self.interval_s))   # read on once it has stopped
        except BaseException:
            self.close()
            raise
        self.sampler = Sampler(self.conn, self.interval_s)
        return self

    def _make_source(self) -> Any:
        if self.demo:   # always its own host name, so demo rows never pass for this machine's GPUs
            from gpuspend.collectors.simulated import SimulatedSource

            return SimulatedSource(self.seed)
        from gpuspend.collectors.nvml import NvmlSource

        return NvmlSource(getattr(self.cfg, "host", None), workloads=getattr(self.cfg, "workloads", None))

    def close(self) -> None:
        self.stop_worker()
        self._flush_held()
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
        if self._worker is not None:
            return self._write_or_hold(reading, now)
        n = self._write([reading], now)
        self.ticks += 1
        self.run_due_tasks(now)
        return n

    def _write(self, readings: list[Any], now: int) -> int:
        with transaction(self.conn):
            if not lease.heartbeat(self.conn, now):
                self._held = False
                info = lease.holder(self.conn, now)
                raise LeaseHeld(f"lost the collector lease to {info.describe() if info else 'nobody'}",
                                hint="this collector stalled for more than "
                                     f"{lease.STALE_INTERVALS} intervals; restart it")
            try:
                return sum(self.sampler.write_rows(r) for r in readings)
            except BaseException:
                self.sampler.forget()
                raise

    def _write_or_hold(self, reading: Any, now: int) -> int:
        """Worker mode: write this reading (and any held back); if the worker holds the write lock, keep it
        for the next tick instead of waiting (bounded: past MAX_HELD the oldest go, and that time is a gap)."""
        self._pending.append(reading)
        del self._pending[:-MAX_HELD]
        try:
            n = self._write(self._pending, now)
        except sqlite3.OperationalError as exc:
            if self.conn is not None and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            self.ticks += 1
            return 0
        self._pending.clear()
        self.ticks += 1
        return n

    # -- the task worker ----------------------------------------------------------------------------------
    def start_worker(self) -> None:
        """Run periodic tasks in a thread with its own connection from now on; tick() then only samples."""
        if self._worker is not None or not self._tasks or self.conn is None:
            return
        self._worker_stop.clear()
        self.conn.execute(f"PRAGMA busy_timeout = {SAMPLE_BUSY_MS}")   # sampling never waits long
        self._worker = threading.Thread(target=self._work, name="gpuspend-tasks", daemon=True)
        self._worker.start()

    def stop_worker(self, timeout: float = 30.0) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._worker_stop.set()
        worker.join(timeout)
        if self.conn is not None:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _work(self) -> None:
        conn = connect(self.db_path)
        try:
            while not self._worker_stop.is_set():
                now = clock.now_ms()
                self.run_due_tasks(now, conn, announce=True)
                # Asleep until the next task is due (stop_worker wakes it), not every second: an idle
                # dashboard's in-app collector pays for this thread's wake-ups. At most WORKER_NAP_MS, so a
                # wall clock set back (tasks are due by it: run_due_tasks) is noticed within that.
                due = min((t.next_ms for t in self._tasks), default=now + WORKER_NAP_MS)
                self._worker_stop.wait(min(max(due - clock.now_ms(), 50), WORKER_NAP_MS) / 1000)
        finally:
            conn.close()

    def run_due_tasks(self, now_ms: int, conn: sqlite3.Connection | None = None, *, announce: bool = False) -> int:
        """Run every due task on `conn` (default: the sampling connection). Returns how many ran.
        `announce` (the worker): each task is announced in the lease first, since while it holds the write lock
        the sampler cannot beat the heartbeat, and a second collector must not take the lease meanwhile."""
        conn = conn or self.conn
        ran = 0
        for task in self._tasks:
            # Never more than two periods ahead unless the wall clock was set back (an NTP step, a VM restored):
            # then the task is due now, not once the clock has caught up (rollups and alerts stalled that long).
            if now_ms < task.next_ms <= now_ms + 2 * max(1, int(task.every_s * 1000)):
                continue
            task.next_ms = self._next_run(task, now_ms)
            ran += 1
            try:
                if announce:
                    lease.task_begin(conn, clock.now_ms() + TASK_GRACE_MS)
                try:
                    fn = task.resolve()
                    if self.recent_snapshot is not None and getattr(fn, "takes_snapshot", False):
                        fn(conn, self.cfg, now_ms, snapshot=self.recent_snapshot())
                    else:
                        fn(conn, self.cfg, now_ms)
                finally:
                    if announce:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        lease.task_end(conn)
                task.failures = 0
            except Exception as exc:  # a broken task must never stop sampling
                task.failures += 1
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
                text = exc.line() if isinstance(exc, GpuspendError) else f"{type(exc).__name__}: {exc}"
                _log(f"task {task.name} failed: {text.splitlines()[0] if text else ''}")
        return ran

    def _next_run(self, task: _Task, now_ms: int) -> int:
        """When a task that ran at `now_ms` is next due: a period later, or for ON_THE_PERIOD tasks the lag after
        the next whole period."""
        every = max(1, int(task.every_s * 1000))
        if task.name not in ON_THE_PERIOD:
            return now_ms + every
        lag = min(int(self.interval_s * 1000) + 1000, every // 2)
        return (now_ms // every + 1) * every + lag

    def run(self, interval_s: float | None = None, stop: threading.Event | None = None) -> None:
        """Sample every interval until `stop` is set. Sleeps to a fixed schedule (no drift)."""
        interval = float(interval_s or self.interval_s)
        if interval != self.interval_s and self.conn is not None:
            self.interval_s = interval     # staleness is judged against the interval we really use
            with transaction(self.conn):
                self.conn.execute("UPDATE collector_lease SET interval_s = ? WHERE id = 1", (interval,))
                if self.periodic:
                    set_meta(self.conn, INTERVAL_KEY, repr(interval))
        stop = stop or threading.Event()
        self.start_worker()
        try:
            self._loop(interval, stop)
        finally:
            self.stop_worker()
            self._flush_held()

    def _flush_held(self) -> None:
        """On the way out: readings held back while the worker had the lock are written, not dropped."""
        if not self._pending or self.conn is None or not self._held:
            return
        try:
            self._write(self._pending, clock.now_ms())
            self._pending.clear()
        except (sqlite3.Error, LeaseHeld) as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            _log(f"{len(self._pending)} held samples not written: {exc}")

    def _loop(self, interval: float, stop: threading.Event) -> None:
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
