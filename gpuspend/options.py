"""Typed options per mode, filled by the CLI (gpuspend.cli) and read by each mode's entry point.

`Options` holds what every mode and subcommand shares (--db, --config, --debug, --demo); each mode adds its own
(DashboardOptions, ReportOptions, FleetOptions, FleetReportOptions). A flag a mode does not read is refused by
the CLI before the mode runs, so an entry point never sees one it would ignore.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuspend.config import Config

# Sampling and refresh intervals, on the command line and in the config alike: below 0.1 s the collector would
# busy-loop; above an hour nothing on screen or in the store is current.
MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 3600.0


@dataclass
class Options:
    """Options common to every mode and subcommand (shared with subcommands through click's context object)."""

    db: str | None = None
    config: str | None = None
    debug: bool = False
    demo: bool = False

    def load_config(self) -> Config:
        from gpuspend.config import load_config, warn

        cfg = load_config(self.config, explicit=self.config is not None)
        warn(cfg.warnings)
        return cfg

    def db_path(self, cfg: Config | None = None) -> Path:
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


@dataclass
class DashboardOptions(Options):
    """`gpuspend [--demo]`: the Textual dashboard."""

    interval: float | None = None
    color_system: str | None = None
    ascii_only: bool = False
    no_color: bool = False
    only: str | None = None         # --only 0,3: GPU indexes shown
    user: str | None = None         # --user NAME: processes of this user


@dataclass
class ReportOptions(Options):
    """`gpuspend --report`: the headless report."""

    fmt: str = "text"
    fail_on: str = ""
    since: str | None = None
    month: str | None = None
    no_sample: bool = False
    notify: bool = False
    by: str = "user"            # the top table: by user, workload (pod/job/container/notebook) or namespace


@dataclass
class FleetOptions(Options):
    """`gpuspend --fleet URL`: the fleet dashboard (reads Prometheus, not a database)."""

    fleet_url: str = ""
    interval: float | None = None


@dataclass
class FleetReportOptions(Options):
    """`gpuspend --report --fleet URL`: the headless fleet report."""

    fleet_url: str = ""
    fmt: str = "text"
    fail_on: str = ""
