"""`gpuspend doctor`: one line per check, exit 0 when nothing fails (2 when a check fails).

A missing NVIDIA driver is reported but is not a failure (the demo and billing imports still work).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gpuspend.cli import common_options
from gpuspend.errors import EXIT_USAGE, GpuspendError
from gpuspend.options import Options

if TYPE_CHECKING:
    from gpuspend.config import Config

OK, INFO, FAIL = "ok", "info", "FAIL"


def _line(status: str, check: str, text: str) -> None:
    click.echo(f"{status:<4}  {check:<10} {text}")


def _gpus_from_source(opts: Options, cfg: Config) -> tuple[list[dict], bool]:
    """GPUs as NVML (or the simulator with --demo) sees them now; second value: source usable."""
    if opts.demo:
        from gpuspend.collectors.simulated import SimulatedSource

        src = SimulatedSource()
        reading = src.read()
        _line(OK, "nvml", f"demo mode: {src.driver_version()}, {len(reading.gpus)} simulated GPUs")
    else:
        from gpuspend.collectors.nvml import NvmlSource

        src = NvmlSource(cfg.host)
        try:
            src.open()
        except GpuspendError as exc:
            _line(INFO, "nvml", f"{exc.message} (no local GPUs will be sampled; `gpuspend --demo` shows "
                                "the demo)")
            return [], False
        try:
            reading = src.read()
            _line(OK, "nvml", f"driver {src.driver_version() or 'unknown'}, {len(reading.gpus)} GPU"
                              f"{'s' if len(reading.gpus) != 1 else ''}")
        finally:
            src.close()
    from gpuspend.gpu_models import normalise_model

    return [{"uuid": g.uuid, "host": reading.host, "idx": g.index, "name": g.name,
             "model": normalise_model(g.name), "memory_total": g.memory_total, "power_limit": g.power_limit,
             "source": reading.source, "lost": g.lost} for g in reading.gpus], True


def _check_db(path: Path) -> tuple[sqlite3.Connection | None, bool]:
    from gpuspend.store import connect, transaction

    try:
        conn = connect(path)
        with transaction(conn):
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('doctor.last_check', '1')")
            conn.execute("DELETE FROM meta WHERE key = 'doctor.last_check'")
    except (GpuspendError, sqlite3.Error, OSError) as exc:
        text = exc.line() if isinstance(exc, GpuspendError) else str(exc)
        _line(FAIL, "database", f"{path}: not writable: {text}")
        return None, False
    if not os.access(path, os.W_OK):
        _line(FAIL, "database", f"{path}: not writable by this user")
        return conn, False
    _line(OK, "database", f"{path} writable")
    return conn, True


def _rate_line(cfg: Config, conn: sqlite3.Connection | None, gpu: dict) -> str:
    from gpuspend.pricing import resolve_rate

    if conn is not None:    # the stored row (with its id, for history-based sources) when we have one
        cur = conn.execute("SELECT * FROM gpus WHERE uuid = ?", (gpu["uuid"],))
        row = cur.fetchone()
        if row is not None:
            gpu = {**dict(zip([d[0] for d in cur.description], row, strict=True)), **gpu}
    rate = resolve_rate(cfg, conn, gpu)
    label = getattr(rate, "label", None) or str(rate)
    return f"rate: {label}"


@click.command()
@common_options
@click.pass_obj
def doctor(opts: Options) -> None:
    """Check NVML, the database, the config, the collector lease and each GPU's rate source."""
    from gpuspend import lease

    failed = False
    try:
        cfg = opts.load_config()
        _line(OK, "config", f"{cfg.path} parses" if cfg.path else "no config file: using defaults")
    except GpuspendError as exc:
        _line(FAIL, "config", exc.line())
        cfg = _defaults()       # keep checking the rest with the defaults
        failed = True
    gpus, _ = _gpus_from_source(opts, cfg)
    conn, db_ok = _check_db(opts.db_path(cfg))
    failed |= not db_ok
    if conn is not None:
        info = lease.holder(conn)
        if info is None:
            _line(OK, "collector", "no collector running (the TUI samples in-app; `gpuspend collect` runs one)")
        elif info.stale:
            _line(INFO, "collector", f"stale lease: {info.describe()} (last heartbeat missed; will be taken over)")
        else:
            _line(OK, "collector", f"{info.describe()}, every {info.interval_s:g} s")
        if not gpus:   # no local GPUs: the ones this database knows about
            gpus = [dict(zip(("uuid", "host", "idx", "name", "model", "memory_total", "power_limit", "source"),
                             row, strict=True))
                    for row in conn.execute("SELECT uuid, host, idx, name, model, memory_total, power_limit, "
                                            "source FROM gpus WHERE parent_id IS NULL ORDER BY host, idx")]
    for gpu in gpus:
        label = f"gpu {gpu['idx']}" if gpu.get("idx") is not None else "gpu"
        try:
            text = _rate_line(cfg, conn, gpu)
        except Exception as exc:  # one bad GPU must not hide the others
            text = f"rate: error: {exc}"
            failed = True
        _line(OK if not text.startswith("rate: error") else FAIL, label,
              f"{gpu.get('name') or gpu['uuid']} ({gpu.get('model') or '?'}) {text}")
    if conn is not None:
        conn.close()
    if failed:
        raise click.exceptions.Exit(EXIT_USAGE)


def _defaults() -> Config:
    from gpuspend.config import default_config

    return default_config()
