"""Composition root: parses the command line, loads config, opens the store, dispatches.

Subcommands are loaded lazily (each lives in gpuspend/commands/) so `gpuspend --report` imports only
what it needs, and never textual.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from gpuspend.errors import EXIT_USAGE, GpuspendError

# name -> "module:attribute" of a click.Command
SUBCOMMANDS: dict[str, str] = {
    "collect": "gpuspend.commands.collect:collect",
    "import": "gpuspend.commands.import_cmd:import_cmd",
    "doctor": "gpuspend.commands.doctor:doctor",
    "prices": "gpuspend.commands.prices:prices",
}


@dataclass
class Options:
    """Root options, shared with subcommands through click's context object."""

    db: str | None
    config: str | None
    debug: bool
    demo: bool
    extra: dict[str, Any]

    def load_config(self):  # -> gpuspend.config.Config
        from gpuspend.config import load_config, warn

        cfg = load_config(self.config, explicit=self.config is not None)
        warn(cfg.warnings)
        return cfg

    def db_path(self, cfg=None) -> Path:
        """--db, then GPUSPEND_DB, then config `database`, then the XDG data dir (demo: its own file)."""
        from gpuspend.config import default_db_path

        if self.db:
            return Path(self.db)
        if os.environ.get("GPUSPEND_DB"):
            return Path(os.environ["GPUSPEND_DB"])
        if self.demo:
            return default_db_path().with_name("demo.db")
        if cfg is not None and cfg.database:
            return Path(os.path.expanduser(cfg.database))
        return default_db_path()


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
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file (env GPUSPEND_CONFIG).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--demo", is_flag=True, help="Simulated 8x H100 box with a month of history and billing.")
@click.option("--auto-demo", is_flag=True, help="Run the demo when this machine has no NVIDIA driver.")
@click.option("--report", is_flag=True, help="Headless report (for cron) instead of the dashboard.")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
@click.option("--fail-on", default="", metavar="KINDS", help="Exit 1 when these alerts are active: idle,budget,stale,...")
@click.option("--since", default=None, metavar="WHEN", help="Report window start (ISO date/time or a duration like 24h).")
@click.option("--month", default=None, metavar="YYYY-MM", help="Report on this month.")
@click.option("--no-sample", is_flag=True, help="Do not take a fresh sample before reporting.")
@click.option("--notify", is_flag=True, help="With --report: evaluate alerts and deliver notifications.")
@click.option("--fleet", "fleet_url", default=None, metavar="URL", help="Show a fleet from this Prometheus.")
@click.option("--interval", type=float, default=None, help="Dashboard refresh interval in seconds.")
@click.option("--color-system", type=click.Choice(["auto", "standard", "256", "truecolor"]), default=None)
@click.option("--ascii", "ascii_only", is_flag=True, help="No box-drawing or braille characters.")
@click.version_option(package_name="gpuspend")
@click.pass_context
def root(ctx: click.Context, db: str | None, config_path: str | None, debug: bool, demo: bool, auto_demo: bool,
         report: bool, **extra: Any) -> None:
    """gpuspend: what your GPUs cost right now, what idle GPUs burn, where the month will end."""
    if auto_demo and not demo:
        from gpuspend.collectors.nvml import nvml_available

        demo = not nvml_available()
    ctx.obj = Options(db=db, config=config_path, debug=debug, demo=demo, extra=extra)
    if ctx.invoked_subcommand is not None:
        return
    if report:
        if extra.get("fleet_url"):
            from gpuspend.fleet import run_fleet_report

            ctx.exit(run_fleet_report(ctx.obj))
        from gpuspend.report import run_report

        ctx.exit(run_report(ctx.obj))
    if extra.get("fleet_url"):
        from gpuspend.tui.fleet_app import run_fleet_app

        ctx.exit(run_fleet_app(ctx.obj))
    # The database is read in a thread started before Textual is imported: the two overlap (first frame sooner).
    from gpuspend.tui import prefetch

    cfg = ctx.obj.load_config()
    first = prefetch.start(ctx.obj, cfg)
    from gpuspend.tui.app import run_app

    ctx.exit(run_app(ctx.obj, cfg, first))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # standalone_mode=False: click *returns* the code of a ctx.exit(n) / Exit(n) instead of raising it.
        rc = root.main(args=args, prog_name="gpuspend", standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc:
            sys.exit(rc)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except GpuspendError as exc:
        if debug:
            raise
        click.echo(f"gpuspend: {exc.line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(0)


if __name__ == "__main__":
    main()
