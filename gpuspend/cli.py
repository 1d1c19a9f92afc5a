"""Composition root: parses the command line, loads config, opens the store, dispatches.

Subcommands are loaded lazily (each lives in gpuspend/commands/) so `gpuspend --report` imports only
what it needs, and never textual.

Each mode has its own typed options (DashboardOptions, ReportOptions, FleetOptions, FleetReportOptions; the
subcommands get the common Options). A root flag that does not apply to the chosen mode is refused with exit 2
and one line, never ignored. The common options (--db, --config, --debug, --demo) are accepted before or after
a subcommand.
"""

from __future__ import annotations

import functools
import importlib
import math
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import click
from click.core import ParameterSource

from gpuspend.errors import EXIT_DATA, EXIT_USAGE, GpuspendError, UsageError
from gpuspend.fmt import clean
from gpuspend.options import (
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    DashboardOptions,
    FleetOptions,
    FleetReportOptions,
    Options,
    ReportOptions,
)

__all__ = ["DashboardOptions", "FleetOptions", "FleetReportOptions", "Options", "ReportOptions", "common_options",
           "main", "root"]

# name -> "module:attribute" of a click.Command
SUBCOMMANDS: dict[str, str] = {
    "collect": "gpuspend.commands.collect:collect",
    "import": "gpuspend.commands.import_cmd:import_cmd",
    "doctor": "gpuspend.commands.doctor:doctor",
    "prices": "gpuspend.commands.prices:prices",
    "idle": "gpuspend.commands.idle:idle",
    "rollup": "gpuspend.commands.rollup:rollup",
}


# Root flags that choose or tune a mode: parameter name -> (flag as typed, modes it applies to, what it is).
_DASHBOARD, _REPORT, _FLEET, _FLEET_REPORT, _SUBCOMMAND = "dashboard", "report", "fleet", "fleet-report", "subcommand"
_MODE_FLAGS: dict[str, tuple[str, frozenset[str], str]] = {
    "db": ("--db", frozenset({_DASHBOARD, _REPORT, _SUBCOMMAND}), "fleet modes read Prometheus, not a database"),
    "demo": ("--demo", frozenset({_DASHBOARD, _REPORT, _SUBCOMMAND}), "fleet modes read Prometheus, not the demo"),
    "auto_demo": ("--auto-demo", frozenset({_DASHBOARD, _REPORT, _SUBCOMMAND}),
                  "fleet modes read Prometheus, not the demo"),
    "report": ("--report", frozenset({_REPORT, _FLEET_REPORT}), "it chooses the headless report"),
    "once": ("-1/--once", frozenset({_REPORT, _FLEET_REPORT}),
             "the root -1/--once prints the report once; write `gpuspend collect --once` for one sample"),
    "fmt": ("--format", frozenset({_REPORT, _FLEET_REPORT}), "it is a --report option"),
    "fail_on": ("--fail-on", frozenset({_REPORT, _FLEET_REPORT}), "it is a --report option"),
    "since": ("--since", frozenset({_REPORT}), "it is an option of the local report"),
    "month": ("--month", frozenset({_REPORT}), "it is an option of the local report"),
    "no_sample": ("--no-sample", frozenset({_REPORT}), "it is an option of the local report"),
    "notify": ("--notify", frozenset({_REPORT}), "it is an option of the local report"),
    "by": ("--by", frozenset({_REPORT}), "it is an option of the local report"),
    "fleet_url": ("--fleet", frozenset({_FLEET, _FLEET_REPORT}), "it chooses the fleet view"),
    "interval": ("--interval", frozenset({_DASHBOARD, _FLEET}), "it is a dashboard option"),
    "color_system": ("--color-system", frozenset({_DASHBOARD}), "it is a dashboard option"),
    "ascii_only": ("--ascii", frozenset({_DASHBOARD}), "it is a dashboard option"),
    "no_color": ("--no-color", frozenset({_DASHBOARD}), "it is a dashboard option (the report has no colours)"),
    "only": ("--only", frozenset({_DASHBOARD}), "it is a dashboard option"),
    "user": ("--user", frozenset({_DASHBOARD}), "it is a dashboard option"),
}
_MODE_NAMES = {_DASHBOARD: "the dashboard", _REPORT: "--report", _FLEET: "--fleet",
               _FLEET_REPORT: "--report --fleet"}


def _mode_name(mode: str, subcommand: str | None) -> str:
    return f"`gpuspend {subcommand}`" if mode == _SUBCOMMAND else _MODE_NAMES[mode]


def _refuse_foreign_flags(ctx: click.Context, mode: str, given: set[str]) -> None:
    """Exit 2 with one line for the first flag given on the command line that the mode would not use."""
    for name, (flag, modes, why) in _MODE_FLAGS.items():
        if name in given and mode not in modes:
            where = _mode_name(mode, ctx.invoked_subcommand)
            if mode == _SUBCOMMAND and name == "interval" and ctx.invoked_subcommand == "collect":
                why = "the root --interval is the dashboard's; write `gpuspend collect --interval SECONDS`"
            raise UsageError(f"{flag} does not apply to {where} ({why})")


def _given(ctx: click.Context) -> set[str]:
    """Parameters the user typed (not defaults)."""
    return {p.name for p in ctx.command.params
            if p.name and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)}


def _build(cls: type[Options], values: dict[str, Any]) -> Options:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


class Seconds(click.ParamType):
    """A finite number of seconds in the config's interval range. click's FloatRange let `nan` through (no
    comparison fails) and `inf`: a lease row that could not be written, an overflow, a dashboard spinning."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if not (MIN_INTERVAL_S <= v <= MAX_INTERVAL_S):     # NaN fails this too
            self.fail(f"expected a number of seconds from {MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g}, got {value}",
                      param, ctx)
        return v


SECONDS = Seconds()


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --db/--config/--debug/--demo to a subcommand; given there, they override the root's (same meaning)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        opts = ctx.find_object(Options)
        if opts is None:
            opts = ctx.ensure_object(Options)
        db, config = kwargs.pop("common_db"), kwargs.pop("common_config")
        debug, demo = kwargs.pop("common_debug"), kwargs.pop("common_demo")
        if db:
            opts.db = db
        if config:
            opts.config = config
        opts.debug = opts.debug or debug
        opts.demo = opts.demo or demo
        return f(*args, **kwargs)

    for option in reversed([
        click.option("--db", "common_db", type=click.Path(dir_okay=False), default=None,
                     help="SQLite database (same as the root --db; env GPUSPEND_DB)."),
        click.option("--config", "common_config", type=click.Path(dir_okay=False), default=None,
                     help="Config file (same as the root --config; env GPUSPEND_CONFIG)."),
        click.option("--debug", "common_debug", is_flag=True, help="Show tracebacks."),
        click.option("--demo", "common_demo", is_flag=True,
                     help="Use the simulated 8x H100 box and its own database (same as the root --demo)."),
    ]):
        wrapper = option(wrapper)
    return wrapper


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", type=click.Path(dir_okay=False), help="SQLite database (default: XDG data dir; env GPUSPEND_DB).")
@click.option("--config", "config", type=click.Path(dir_okay=False), help="Config file (env GPUSPEND_CONFIG).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--demo", is_flag=True, help="Simulated 8x H100 box with a month of history and billing.")
@click.option("--auto-demo", is_flag=True, help="Run the demo when this machine has no NVIDIA driver.")
@click.option("--report", is_flag=True, help="Headless report (for cron) instead of the dashboard.")
@click.option("-1", "--once", is_flag=True, help="Print the report once to the terminal and exit (as nvitop --once).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="With --report: output format.")
@click.option("--fail-on", default="", metavar="KINDS",
              help="With --report: exit 1 when these alerts are active: idle,budget,stale,...")
@click.option("--since", default=None, metavar="WHEN",
              help="With --report: window start (ISO date/time or a duration like 24h).")
@click.option("--month", default=None, metavar="YYYY-MM", help="With --report: report on this month.")
@click.option("--no-sample", is_flag=True, help="With --report: do not take a fresh sample first.")
@click.option("--notify", is_flag=True, help="With --report: evaluate alerts and deliver notifications.")
@click.option("--by", type=click.Choice(["user", "workload", "namespace"]), default="user", show_default=True,
              help="With --report: group the top spenders by user, workload (pod/job/container/notebook) or namespace.")
@click.option("--fleet", "fleet_url", default=None, metavar="URL", help="Show a fleet from this Prometheus.")
@click.option("-i", "--interval", type=SECONDS, default=None, help="Dashboard refresh interval in seconds.")
@click.option("--color-system", type=click.Choice(["auto", "standard", "256", "truecolor"]), default=None,
              help="Dashboard colours.")
@click.option("--ascii", "ascii_only", is_flag=True, help="Dashboard: nothing outside ASCII on screen.")
@click.option("--no-color", "no_color", is_flag=True, help="Dashboard: no colours (as the NO_COLOR variable).")
@click.option("--only", default=None, metavar="0,3", help="Dashboard: show only these GPU indexes.")
@click.option("--user", default=None, metavar="NAME", help="Dashboard: show only this user's processes.")
@click.version_option(package_name="gpuspend")
@click.pass_context
def root(ctx: click.Context, auto_demo: bool, report: bool, once: bool, **values: Any) -> None:
    """gpuspend: what your GPUs cost right now, what idle GPUs burn, where the month will end."""
    fleet = bool(values.get("fleet_url"))
    report = report or once             # -1/--once: the report, once, to the terminal
    if ctx.invoked_subcommand is not None:
        mode = _SUBCOMMAND
    elif report:
        mode = _FLEET_REPORT if fleet else _REPORT
    else:
        mode = _FLEET if fleet else _DASHBOARD
    _refuse_foreign_flags(ctx, mode, _given(ctx))
    if auto_demo and not values["demo"]:
        from gpuspend.collectors.nvml import nvml_available

        values["demo"] = not nvml_available()
    cls = {_SUBCOMMAND: Options, _REPORT: ReportOptions, _FLEET_REPORT: FleetReportOptions,
           _FLEET: FleetOptions, _DASHBOARD: DashboardOptions}[mode]
    opts = _build(cls, values)
    ctx.obj = opts
    if isinstance(opts, FleetReportOptions):
        from gpuspend.fleet import run_fleet_report

        ctx.exit(run_fleet_report(opts))
    if isinstance(opts, ReportOptions):
        from gpuspend.report import run_report

        ctx.exit(run_report(opts))
    if isinstance(opts, FleetOptions):
        from gpuspend.tui.fleet_app import run_fleet_app

        ctx.exit(run_fleet_app(opts))
    if isinstance(opts, DashboardOptions):
        # The database is read in a thread started before Textual is imported: the two overlap (first frame sooner).
        from gpuspend.tui import prefetch

        cfg = opts.load_config()
        first = prefetch.start(opts, cfg)
        from gpuspend.tui.app import run_app

        ctx.exit(run_app(opts, cfg, first))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args       # before or after the subcommand: tracebacks for errors raised anywhere
    try:
        # standalone_mode=False: click *returns* the code of a ctx.exit(n) / Exit(n) instead of raising it.
        rc = root.main(args=args, prog_name="gpuspend", standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc:
            sys.exit(rc)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # One line, as every error (a file name in it is outside text, cleaned), and where to read more.
        where = exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx is not None else "gpuspend"
        click.echo(f"gpuspend: {clean(exc.format_message())} (see '{where} --help')", err=True)
        sys.exit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except GpuspendError as exc:
        if debug:
            raise
        click.echo(f"gpuspend: {clean(exc.line())}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except sqlite3.Error as exc:         # read-only file or folder, a full disk: the database said no
        if debug:
            raise
        click.echo(f"gpuspend: the database refused: {clean(exc)} (check the file's and its folder's permissions "
                   "and free space; the database is as it was)", err=True)
        sys.exit(EXIT_DATA)
    except Exception as exc:  # noqa: BLE001 - one line, as every error; the traceback is one flag away
        if debug:
            raise
        click.echo(f"gpuspend: unexpected error: {type(exc).__name__}: {clean(exc, 300)} (run again with --debug "
                   "for the traceback, and report it)", err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
