"""The Textual dashboard. Reads SQLite through gpuspend.costing on every tick; never calls NVML itself.

State lives on the App as `var`s (no repaint); leaf widgets repaint only what changed (see
shared/reference/textual-practices.md §3.1). Snapshots are built in one long-lived loader thread so a slow
query never blocks input (a Textual worker per tick costs more than the tick's drawing when little changed);
the in-app collector (tui.collect) runs in its own thread and only writes SQLite.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import termios
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import Notify
from textual.reactive import var
from textual.screen import Screen
from textual.scrollbar import ScrollBarRender
from textual.timer import Timer

from gpuspend import clock, forecast
from gpuspend.snapshot import BillingSummary, MonthView, Snapshot
from gpuspend.tui.collect import InAppCollector
from gpuspend.tui.driver import QuietInput
from gpuspend.tui.prefetch import Prefetch
from gpuspend.tui.screens.billing import BillingScreen
from gpuspend.tui.screens.dashboard import DashboardScreen
from gpuspend.tui.screens.help import HelpScreen
from gpuspend.tui.widgets.alerts import AlertLine, alert_lines

if TYPE_CHECKING:
    from gpuspend.config import Config
    from gpuspend.options import DashboardOptions

INTERVALS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
WATCHDOG_S = 2.0
# With no new commit in the database, rebuild the snapshot only this often (ages and "idle for" move on).
UNCHANGED_REBUILD_MS = 10_000
# Money (cost today, waste, idle for, month, chart, process costs) is rebuilt at most this often; ticks in between
# refresh only what the newest samples say (util, memory, power, temperature), a few reads instead of the whole
# cost engine. A GPU changing state, a process starting or ending, or an alert rebuilds everything at once.
MONEY_REFRESH_MS = 5_000
# Once the dashboard is up (this many snapshots shown), what start-up built is kept out of the garbage
# collector's full passes (see _freeze_startup_objects).
FREEZE_AFTER = 3


def _freeze_startup_objects() -> None:
    """What start-up built (Textual's widgets, styles and caches, the imported modules: most of the process's
    objects) lives as long as the app, yet every full collection walked all of it again: about 80,000 objects,
    ~90 ms on the UI thread every half a minute or so of an idle dashboard, about a tenth of its CPU. Collect
    once (start-up's own garbage is not kept), then move the survivors to the permanent generation (gc.freeze):
    later collections walk only what was made since. Freed by reference counting as before, only never by a
    cyclic collection (a cycle among them that becomes garbage stays: a one-off, nothing that grows)."""
    import gc

    gc.collect()
    gc.freeze()


class AsciiScrollBarRender(ScrollBarRender):
    """--ascii: a scrollbar thumb in whole cells (no eighth-block ends)."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "] * 8
    HORIZONTAL_BARS: ClassVar[list[str]] = [" "] * 8


class GpuspendApp(QuietInput, App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "gpuspend"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("p", "pause", "Pause", id="pause"),
        Binding("plus", "faster", "Faster", key_display="+", id="faster"),
        Binding("minus", "slower", "Slower", key_display="-", id="slower"),
        Binding("b", "billing", "Billing", id="billing"),
        Binding("question_mark,h,f1", "help", "Help", key_display="?", id="help"),
        Binding("r", "refresh_now", "Refresh now", show=False, id="refresh"),
    ]

    snapshot: var[Snapshot | None] = var(None)
    paused: var[bool] = var(False)
    interval: var[float] = var(1.0)
    collector_text: var[str] = var("starting")
    nvml_error: var[str | None] = var(None)

    def __init__(self, db_path: str | Path, cfg: Config, *, demo: bool = False, interval: float | None = None,
                 ascii_only: bool = False, collect: bool = True, keymap: dict[str, str] | None = None,
                 watchdog: bool = False, prefetch: Prefetch | None = None, only_gpus: frozenset[int] | None = None,
                 user: str | None = None, no_color: bool = False, freeze_gc: bool = False) -> None:
        super().__init__()
        if no_color and not self.no_color:
            # --no-color: what Textual does itself under NO_COLOR (https://no-color.org): greyscale only
            from textual.filter import Monochrome

            self.no_color = True
            self._filters.append(Monochrome())
        self.only_gpus = only_gpus
        self.user = user
        # the process is this app's (run_app): start-up's objects may leave the collector's full passes
        self.freeze_gc = freeze_gc
        self.db_path = Path(db_path)
        self.cfg = cfg
        self.demo = demo
        self.ascii_only = ascii_only
        self.collect = collect
        self.watchdog = watchdog
        self._keymap = dict(keymap or {})
        self._toasts: dict[str, object] = {}
        self.set_reactive(GpuspendApp.interval, float(interval or cfg.tui.interval or 1.0))
        self.set_reactive(GpuspendApp.collector_text, "starting" if collect else "off (read-only)")
        self.alert_lines: list[AlertLine] = []
        self.snapshots_applied = 0
        self._seen_alerts: set[str] | None = None
        self._timer: Timer | None = None
        self._loading = False
        self._data_version: int | None = None
        self._full: Snapshot | None = None     # the newest full build (the in-app alerts task evaluates it)
        self._conn: sqlite3.Connection | None = None
        self._prefetch = prefetch
        self._db_lock = threading.Lock()
        self._data_ready = threading.Event()
        # The in-app collector starts after the first frame: its start-up work would compete for the GIL.
        self._first_shown = threading.Event()
        self._collector: InAppCollector | None = None
        # the loader thread: _tick asks (_load_wanted), it builds and posts the snapshot to the UI thread
        self._load_wanted = threading.Event()
        self._loader_stop = threading.Event()
        self._load_force = False
        self.animation_level = "none"
        self._scrollbar_renderer: type | None = None
        if ascii_only:
            self.add_class("-ascii")

    # -- lifecycle -------------------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.ascii_only:
            # scrollbars end in eighth blocks (▁..▇); under --ascii they are whole cells. Textual has one
            # renderer for every scrollbar of the process: set while this app runs, put back on exit.
            from textual.scrollbar import ScrollBar

            self._scrollbar_renderer = ScrollBar.renderer
            ScrollBar.renderer = AsciiScrollBarRender
        if self._keymap:
            self.apply_keymap(self._keymap)
        # the first start says what it is doing (building the demo takes seconds), not a bare "loading"
        what = "building the demo database (first start only)" if self.demo and not self.db_path.exists() \
            else f"reading {self.db_path.name} and computing today's costs"
        self.push_screen(DashboardScreen(ascii_only=self.ascii_only, only_gpus=self.only_gpus, user=self.user,
                                         loading=what + "..."))
        self._timer = self.set_interval(self.interval, self._tick)
        if self.collect:
            self._collector = InAppCollector(self.db_path, self.cfg, demo=self.demo, report=self._report_collector,
                                             ready=self._first_shown, recent_snapshot=lambda: self._full)
            threading.Thread(target=self._collector.run, name="gpuspend-collector", daemon=True).start()
        if self.watchdog:
            self.set_interval(WATCHDOG_S, self._check_terminal)
        threading.Thread(target=self._loader, name="gpuspend-snapshot", daemon=True).start()
        self._tick()

    def on_unmount(self) -> None:
        self._loader_stop.set()
        self._load_wanted.set()
        if self._scrollbar_renderer is not None:
            from textual.scrollbar import ScrollBar

            ScrollBar.renderer = self._scrollbar_renderer
        if self._collector is not None:
            self._collector.close()        # releases the lease so a daemon can take over at once
        if self._conn is not None:
            with self._db_lock:
                self._conn.close()
                self._conn = None

    def apply_keymap(self, keymap: dict[str, str]) -> list[str]:
        """Config `tui.keymap` ({binding id: keys}); returns unknown ids (reported as a notification)."""
        known = {b.id for b in self._all_bindings() if b.id}
        unknown = sorted(k for k in keymap if k not in known)
        self.set_keymap({k: v for k, v in keymap.items() if k in known})
        if unknown:
            self.notify(f"tui.keymap: unknown binding id(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                        severity="warning", markup=False, timeout=8)
        return unknown

    @staticmethod
    def _all_bindings() -> list[Binding]:
        out: list[Binding] = []
        from gpuspend.tui.screens.process import ProcessScreen

        for cls in (GpuspendApp, DashboardScreen, BillingScreen, HelpScreen, ProcessScreen):
            out += [b for b in cls.BINDINGS if isinstance(b, Binding)]
        return out

    def describe_keys(self) -> list[tuple[str, str, str]]:
        """(keys, description, binding id for `tui.keymap`) for the help screen, after keymap overrides."""
        rows = []
        for b in self._all_bindings():
            if not b.id or not b.description or b.id in ("clear_filter", "help_close", "billing_back",
                                                           "process_close"):
                continue
            keys = self._keymap.get(b.id, ",".join(k.strip() for k in b.key.split(",")) if "," in b.key
                                    else b.key_display or b.key)
            keys = keys.replace("question_mark", "?").replace("left_square_bracket", "[") \
                .replace("right_square_bracket", "]")
            rows.append((keys, b.description, b.id))
        rows.append(("enter", "process: details; GPU: only its processes (again: all)", ""))
        rows.append(("esc", "close a screen / clear the filter", ""))
        return rows

    # -- terminal watchdog -----------------------------------------------------------------------------
    def _check_terminal(self) -> None:
        """A dropped SSH link without SIGHUP leaves Textual's input thread spinning on EOF (Textual PR #6690):
        when stdin is no longer a terminal, end the process. app.exit() can hang writing to the dead pty."""
        try:
            fd = sys.__stdin__.fileno()
            termios.tcgetattr(fd)          # EIO once the pty's master side is gone
            alive = os.isatty(fd)
        except (OSError, ValueError, AttributeError, termios.error):
            alive = False
        if not alive:
            if self._collector is not None:
                self._collector.close(2.0)
            os._exit(1)

    # -- data ------------------------------------------------------------------------------------------
    def _tick(self, force: bool = False) -> None:
        if self.paused or self._loading or not isinstance(self.screen, DashboardScreen):
            return                         # nobody is looking, or a load is still running: skip
        if not force and self._nothing_new():
            return
        self._loading = True
        self._load_force = force
        self._load_wanted.set()

    def _nothing_new(self) -> bool:
        """No commit since the shown snapshot, and it is recent: skip this tick without waking the loader
        (the collector writes every `interval`, often less often than the dashboard ticks)."""
        last, conn = self.snapshot, self._conn
        if last is None or conn is None or self._prefetch is not None:
            return False
        if not self._db_lock.acquire(blocking=False):
            return False                   # the loader is reading: let the normal path decide
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return False
        finally:
            self._db_lock.release()
        return version == self._data_version and clock.now_ms() - last.now_ms < UNCHANGED_REBUILD_MS

    def _connection(self) -> sqlite3.Connection:
        from gpuspend.store import connect

        if self._conn is None:
            self._conn = connect(self.db_path)
        return self._conn

    def _prepare(self) -> None:
        if not self._data_ready.is_set():
            if self.demo:
                from gpuspend.demo import ensure_demo_db

                ensure_demo_db(self.db_path, background=True)   # recent window now, the month after
            self._data_ready.set()

    def _loader(self) -> None:
        """The loader thread: one snapshot per request from _tick, until the app unmounts."""
        while True:
            self._load_wanted.wait()
            self._load_wanted.clear()
            if self._loader_stop.is_set():
                return
            self._load_snapshot(self._load_force)

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        """Run callback(*args) on the UI thread, from the loader thread, without waiting for it (nothing to
        wait for, and nothing left hanging when the app exits meanwhile)."""
        loop = self._loop
        if loop is None or self._loader_stop.is_set():
            return

        def run() -> None:
            if self._loader_stop.is_set():
                return
            with self._context():
                try:
                    callback(*args)
                except Exception as exc:  # shown, not raised: the dashboard keeps running
                    self._load_failed(exc)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:
            pass                           # the loop is closed: the app is gone

    def _load_snapshot(self, force: bool = False) -> None:
        """On the loader thread: build a snapshot (unless nothing changed) and post it to the UI thread."""
        from gpuspend.costing import build_snapshot, refresh_live

        try:
            if self._prefetch is not None:      # the first snapshot, built while Textual started
                prefetch, self._prefetch = self._prefetch, None
                snap, self._conn, self._data_version = prefetch.result()
                self._full = snap
                self._data_ready.set()
                self._post(self.apply_snapshot, snap)
                return
            self._prepare()
            with self._db_lock:
                conn = self._connection()
                # data_version changes only when another connection (a collector) commits
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                last = self.snapshot
                if (not force and last is not None and version == self._data_version
                        and clock.now_ms() - last.now_ms < UNCHANGED_REBUILD_MS):
                    self._post(self._unchanged)
                    return
                self._data_version = version
                snap = None
                if not force and last is not None and clock.now_ms() - last.now_ms < MONEY_REFRESH_MS:
                    snap = refresh_live(conn, self.cfg, last)
                if snap is None:
                    snap = self._full = build_snapshot(conn, self.cfg)
        except Exception as exc:  # shown, not raised: the dashboard keeps running on a bad tick
            self._post(self._load_failed, exc)
            return
        self._post(self.apply_snapshot, snap)

    def _unchanged(self) -> None:
        self._loading = False

    def _load_failed(self, exc: Exception) -> None:
        self._loading = False
        self._first_shown.set()
        line = exc.line() if hasattr(exc, "line") else f"{type(exc).__name__}: {exc}"
        self.notify(line, title="cannot read the database", severity="error", markup=False)

    def load_billing(self, month: str) -> tuple[BillingSummary, tuple[MonthView, ...]]:
        """Called from the billing screen's worker thread: the month's summary and its MonthViews (month to
        date, projection, budget), computed by the cost engine as the header's are."""
        from gpuspend import costing

        self._prepare()
        now = clock.now_ms()
        with self._db_lock:
            conn = self._connection()
            summary = costing.billing_summary(conn, self.cfg, month, now)
            with costing.reading(conn, self.cfg, now):
                rates = costing.resolve_rates(conn, self.cfg, costing.load_gpus(conn), now)
                views, _cov = costing.month_views_for(conn, self.cfg, month, now, rates)
        return summary, views

    def apply_snapshot(self, snap: Snapshot) -> None:
        """On the UI thread: hand the snapshot to the dashboard; notify alerts that just opened."""
        dash = self._dashboard()
        if not dash.ready:                 # the first snapshot can be faster than the screen's first layout
            dash.call_after_refresh(self.apply_snapshot, snap)
            return
        self._loading = False
        self._first_shown.set()
        self.snapshot = snap
        self.snapshots_applied += 1
        if self.snapshots_applied == FREEZE_AFTER and self.freeze_gc:
            _freeze_startup_objects()
        self.alert_lines = alert_lines(snap, self.cfg, stale_after_s=float(self.cfg.alerts.collector_stopped))
        self._dashboard().show_snapshot(snap, self.collector_text, self.alert_lines)
        keys = {a.key for a in self.alert_lines}
        if self._seen_alerts is not None:
            for a in self.alert_lines:
                if a.key not in self._seen_alerts and a.kind != "stale":
                    self.announce(a)
        self._seen_alerts = keys

    def _on_notify(self, event: Notify) -> None:
        """Replace, don't stack: a toast of the same kind ("refresh every ...", "processes by ...") or the same
        alert again takes the place of the one on screen."""
        n = event.notification
        key = f"{n.title}\0{n.message}" if n.title else " ".join(n.message.split(" ", 2)[:2])
        old = self._toasts.get(key)
        if old is not None and old in self._notifications:
            self._unnotify(old, refresh=False)       # type: ignore[arg-type]
        self._toasts[key] = n
        super()._on_notify(event)

    def announce(self, alert: AlertLine) -> None:
        self.notify(alert.text, title=f"{alert.kind} alert", severity="error" if alert.severity == "error"
                    else "warning", markup=False, timeout=15)

    def _dashboard(self) -> DashboardScreen:
        return next(s for s in self.screen_stack if isinstance(s, DashboardScreen))

    def _report_collector(self, text: str, nvml_error: str | None) -> None:
        try:
            self.call_from_thread(self._set_collector, text, nvml_error)
        except RuntimeError:
            pass                           # the app is shutting down

    def _set_collector(self, text: str, nvml_error: str | None) -> None:
        if text == self.collector_text and (nvml_error is None or nvml_error == self.nvml_error):
            return                         # nothing new to show: no redraw
        self.collector_text = text
        if nvml_error is not None:
            self.nvml_error = nvml_error
        self._update_banner()
        if self.snapshot is not None:
            self._dashboard().show_snapshot(self.snapshot, self.collector_text, self.alert_lines)

    def _update_banner(self) -> None:
        parts = []
        if self.nvml_error:
            parts.append(f"NVML unavailable: showing stored data only ({self.nvml_error})")
        if self.paused:
            parts.append(f"PAUSED: press {self._keymap.get('pause', 'p')} to resume")
        self._dashboard().set_banner("  |  ".join(parts) or None)

    # -- actions ---------------------------------------------------------------------------------------
    def action_pause(self) -> None:
        self.paused = not self.paused
        if self._timer is not None:
            (self._timer.pause if self.paused else self._timer.resume)()
        self._update_banner()
        if not self.paused:
            self._tick()

    def _set_interval(self, seconds: float) -> None:
        self.interval = seconds
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(seconds, self._tick, pause=self.paused)
        self.notify(f"refresh every {seconds:g} s", timeout=2, markup=False)

    def action_faster(self) -> None:
        smaller = [i for i in INTERVALS if i < self.interval]
        self._set_interval(smaller[-1] if smaller else self.interval)

    def action_slower(self) -> None:
        larger = [i for i in INTERVALS if i > self.interval]
        self._set_interval(larger[0] if larger else self.interval)

    def dashboard_resumed(self) -> None:
        self._tick()                       # catch up after billing/help (ticks were skipped meanwhile)

    def action_refresh_now(self) -> None:
        self._tick(force=True)

    def action_billing(self) -> None:
        if isinstance(self.screen, BillingScreen):
            return
        now = self.snapshot.now_ms if self.snapshot else clock.now_ms()
        month = forecast.month_of(now)
        self.push_screen(BillingScreen(month, ascii_only=self.ascii_only, now_month=month))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_command_palette(self) -> None:
        """Textual's palette; under --ascii without its emoji icon and `…` placeholder (the CSS drops its
        half-block borders)."""
        if not self.ascii_only:
            super().action_command_palette()
            return
        from textual.command import CommandPalette, SearchIcon

        class AsciiPalette(CommandPalette):
            def on_mount(self) -> None:
                for icon in self.query(SearchIcon):
                    icon.icon = ">"

        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(AsciiPalette(placeholder="Search for commands...", id="--command-palette"))

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """The palette's "Save screenshot": into the current directory when it is writable, else the XDG state
        dir (Textual's default, ~/Downloads, rarely exists on a GPU node), and say where."""
        import platformdirs
        from textual.app import generate_datetime_filename

        try:
            folder = Path(path) if path else Path.cwd()
        except OSError:                    # the current directory was removed under us
            folder = Path(platformdirs.user_state_dir("gpuspend"))
        if not os.access(folder, os.W_OK):
            folder = Path(platformdirs.user_state_dir("gpuspend"))
        name = filename or generate_datetime_filename(self.title, ".svg", None)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / name
            target.write_text(self.export_screenshot(), encoding="utf-8")
        except OSError as exc:
            self.notify(f"cannot save the screenshot in {folder}: {exc.strerror or exc}", title="screenshot",
                        severity="error", markup=False)
            return
        self.notify(f"saved {target}", title="screenshot", markup=False, timeout=8)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Pause / resume refresh", "Freeze the dashboard (collection continues)",
                            self.action_pause)
        yield SystemCommand("Billing", "Month by day, top services and SKUs, cheaper elsewhere",
                            self.action_billing)
        yield SystemCommand("Refresh faster", "Shorter refresh interval", self.action_faster)
        yield SystemCommand("Refresh slower", "Longer refresh interval", self.action_slower)
        yield SystemCommand("Refresh now", "Read the database now", self.action_refresh_now)
        yield SystemCommand("Keys and columns", "What everything means", self.action_help)


COLOR_SYSTEMS = ("auto", "standard", "256", "truecolor")


def _color_system(choice: str | None) -> None:
    """--color-system / tui.color_system -> Textual's colour system (read when the App is created)."""
    if not choice:
        return
    if choice not in COLOR_SYSTEMS:
        from gpuspend.errors import ConfigError

        raise ConfigError(f"tui.color_system must be one of {', '.join(COLOR_SYSTEMS)}, got {choice!r}")
    import textual.constants

    os.environ["TEXTUAL_COLOR_SYSTEM"] = choice
    textual.constants.COLOR_SYSTEM = choice  # type: ignore[misc]  # already read at import time


def parse_only(text: str | None) -> frozenset[int] | None:
    """`--only 0,3` (as nvitop): the GPU indexes to show."""
    if not text:
        return None
    from gpuspend.errors import UsageError

    try:
        out = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--only takes GPU indexes separated by commas, like 0,3; got {text!r}") from None
    if not out or min(out) < 0:
        raise UsageError(f"--only takes GPU indexes separated by commas, like 0,3; got {text!r}")
    return out


def run_app(opts: DashboardOptions, cfg: Config | None = None, prefetch: Prefetch | None = None) -> int:
    """`gpuspend` / `gpuspend --demo`: open the dashboard. Returns the exit code. `cfg` and `prefetch` come from
    the CLI, which starts reading the database before importing this module (tui.prefetch)."""
    from gpuspend.errors import UsageError

    cfg = cfg if cfg is not None else opts.load_config()
    interval = opts.interval
    if interval is not None and interval <= 0:
        raise UsageError(f"--interval must be positive, got {interval:g}")
    only = parse_only(getattr(opts, "only", None))     # a typo is reported before anything else
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UsageError("the dashboard needs a terminal", hint="use `gpuspend --report` in scripts and cron")
    _color_system(opts.color_system or cfg.tui.color_system)
    db_path = opts.db_path(cfg)
    app = GpuspendApp(db_path, cfg, demo=opts.demo, interval=interval,
                      ascii_only=bool(opts.ascii_only or cfg.tui.ascii),
                      keymap=dict(cfg.tui.keymap or {}), watchdog=True,
                      prefetch=prefetch or Prefetch(db_path, cfg, opts.demo),
                      only_gpus=only, user=getattr(opts, "user", None) or None,
                      no_color=bool(getattr(opts, "no_color", False)), freeze_gc=True)
    # Never ignore SIGHUP: its default action is what ends us when an SSH session drops.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    app.run()
    return app.return_code or 0
