"""`gpuspend doctor`: one line per check, exit 0 when nothing fails (2 when a check fails).

Each line starts with its level: `ok`; `info` (a fact, nothing to do: no driver, no exports yet); `warn`
(working, but a number on screen rests on something old or mismatched: the newest sample or an export older
than its alert threshold, a stale collector lease, a collector reading another config); `FAIL` (exit 2).
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
from gpuspend.fmt import count
from gpuspend.options import Options

if TYPE_CHECKING:
    from gpuspend.config import Config

OK, INFO, WARN, FAIL = "ok", "info", "warn", "FAIL"


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

        src = NvmlSource(cfg.host, workloads=getattr(cfg, "workloads", None))
        try:
            src.open()
        except GpuspendError as exc:
            _line(INFO, "nvml", f"{exc.message} (no local GPUs will be sampled; `gpuspend --demo` shows "
                                "the demo)")
            return [], False
        try:
            reading = src.read()
            _line(OK, "nvml", f"driver {src.driver_version() or 'unknown'}, {count(len(reading.gpus), 'GPU')}")
            _workloads_line(src, reading)
        finally:
            src.close()
    from gpuspend.gpu_models import normalise_model

    return [{"uuid": g.uuid, "host": reading.host, "idx": g.index, "name": g.name,
             "model": normalise_model(g.name), "memory_total": g.memory_total, "power_limit": g.power_limit,
             "source": reading.source, "lost": g.lost} for g in reading.gpus], True


def _workloads_line(src: object, reading: object) -> None:
    """Which workloads the GPU processes belong to, which name sources were skipped, and whether this collector
    sees the host's processes at all (in a container without the host PID namespace it does not)."""
    res = getattr(src, "workloads", None)
    if res is None:
        return
    procs = [p for g in getattr(reading, "gpus", []) for p in g.processes]
    kinds = sorted({p.workload.kind for p in procs if p.workload is not None})
    found = ", ".join(kinds) if kinds else "plain processes only"
    _line(OK, "workloads", f"{len(procs)} GPU processes: {found}")
    for note in res.notes():
        _line(INFO, "workloads", note)


def _check_db(path: Path) -> tuple[sqlite3.Connection | None, bool]:
    """Open the database as it is, without creating it (doctor never leaves an empty database behind) and
    without migrating or writing it; say whether the collector will be able to write it."""
    from gpuspend.store import SCHEMA_VERSION, connect

    if not path.exists():
        folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
        if folder is None or not os.access(folder, os.W_OK):
            _line(FAIL, "database", f"{path} does not exist and {folder or path.parent} is not writable "
                                    "(pass --db or set GPUSPEND_DB to a writable place)")
            return None, False
        _line(INFO, "database", f"{path} does not exist yet: the first `gpuspend collect` or dashboard creates it")
        return None, True
    try:
        conn = connect(path, create=False, migrate_schema=False)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except (GpuspendError, sqlite3.Error, OSError) as exc:
        text = exc.line() if isinstance(exc, GpuspendError) else str(exc)
        _line(FAIL, "database", f"{path}: cannot be read: {text}")
        return None, False
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        _line(FAIL, "database", f"{path}: not writable by this user (it and its folder must be, for SQLite's WAL)")
        return conn, False
    if version > SCHEMA_VERSION:       # every other command refuses it (store.migrate): so must the check
        _line(FAIL, "database", f"{path}: schema v{version} is newer than this gpuspend understands "
                                f"(v{SCHEMA_VERSION}): upgrade gpuspend")
        conn.close()                  # nothing below reads a schema it does not know
        return None, False
    if version < SCHEMA_VERSION:
        _line(INFO, "database", f"{path} writable; schema v{version}, migrated to v{SCHEMA_VERSION} by the next "
                                "collector or dashboard")
    else:
        _line(OK, "database", f"{path} writable")
    return conn, True


def _ago(seconds: float) -> str:
    from gpuspend.fmt import duration

    return f"{duration(max(seconds, 0.0))} ago"


def _check_data(conn: sqlite3.Connection, cfg: Config, sampler: bool = True) -> None:
    """How old the newest sample and the billing exports' coverage are (what every number on screen rests on)."""
    from gpuspend import clock

    now_s = clock.now_ms() / 1000
    try:
        from gpuspend.samples import last_sample_ms

        last = last_sample_ms(conn)
    except sqlite3.Error:
        last = None
    if last is None:
        # without NVML neither takes any: pointing at them would send a new user round in a circle
        _line(INFO, "data", "no GPU samples yet (`gpuspend collect` or the dashboard takes them)" if sampler else
              "no GPU samples: nothing here can take them without NVML (billing imports still work; "
              "`gpuspend --demo` shows the demo)")
    else:
        age = now_s - last / 1000
        limit = float(cfg.alerts.collector_stopped)
        status = OK if age <= limit else WARN
        more = "" if age <= limit else f": older than alerts.collector_stopped ({_ago(limit)[:-4]}); is the " \
                                       "collector running?"
        _line(status, "data", f"last sample {_ago(age)}{more}")
    try:
        from gpuspend.costing import export_coverage

        # each export (source and account) by the rule the `outdated` alert and the report judge freshness by
        rows = export_coverage(conn, cfg)
    except sqlite3.Error:
        rows = ()
    if not rows:
        _line(INFO, "billing", "no billing exports imported: month to date is metered from local samples "
                               "(`gpuspend import FILE`)")
    stale = float(cfg.alerts.stale_billing)
    for fmt, export, end_ms, n in rows:
        from gpuspend.fmt import clean

        if end_ms is None:
            _line(INFO, "billing", f"{clean(export)} ({fmt}): {count(n, 'row')}, no daily or hourly usage rows "
                                   "(monthly, fee or tax rows only): nothing to judge freshness by")
            continue
        age = now_s - end_ms / 1000
        status = OK if age <= stale else WARN
        more = "" if age <= stale else f": older than alerts.stale_billing ({_ago(stale)[:-4]}); import a newer export"
        when = clock.to_datetime(end_ms).strftime("%Y-%m-%d %H:%M UTC")
        _line(status, "billing", f"{clean(export)} ({fmt}): covered up to {when} ({_ago(age)}), {count(n, 'row')}{more}")


def _check_notify(cfg: Config) -> bool:
    """Each notify target: configured right and its host reachable (TCP, and TLS for https), without sending
    anything. Only host:port is printed: a webhook's path is its secret. Returns False when one fails."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    from gpuspend.notify import configured_targets, target_problems

    ok = True
    targets = configured_targets(cfg)
    if not targets:
        _line(INFO, "notify", "no notify targets (alerts show in the dashboard and the report only)")
        return True
    for problem in target_problems(targets):
        _line(FAIL, "notify", problem)
        ok = False
    bad = {p.split(":")[0].removeprefix("notify target ") for p in target_problems(targets)}
    for t in targets:
        if t.name in bad or not t.endpoint:
            continue
        parts = urlsplit(t.endpoint)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        timeout = min(float(t.timeout), 5.0)
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                if parts.scheme == "https":
                    with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                        pass
            tls = ", TLS ok" if parts.scheme == "https" else ""
            _line(OK, "notify", f"{t.name} ({t.kind}): {host}:{port} reachable{tls}; nothing sent")
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else (str(exc) or type(exc).__name__)
            _line(FAIL, "notify", f"{t.name} ({t.kind}): {host}:{port} not reachable: {why}")
            ok = False
    return ok


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
    """Check NVML, the database (never created here), notify targets (nothing sent), data age, billing
    coverage, the collector lease and each GPU's rate source."""
    from gpuspend import lease

    failed = False
    try:
        cfg = opts.load_config()
        _line(OK, "config", f"{cfg.path} parses" if cfg.path else "no config file: using defaults")
    except GpuspendError as exc:
        _line(FAIL, "config", exc.line())
        cfg = _defaults()       # keep checking the rest with the defaults
        failed = True
    gpus, sampler = _gpus_from_source(opts, cfg)
    conn, db_ok = _check_db(opts.db_path(cfg))
    failed |= not db_ok
    failed |= not _check_notify(cfg)
    if conn is not None:
        _check_data(conn, cfg, sampler)
        info = lease.holder(conn)
        if info is None:
            _line(OK, "collector", "no collector running (the TUI samples in-app; `gpuspend collect` runs one)")
        elif info.stale:
            _line(WARN, "collector", f"stale lease: {info.describe()} (last heartbeat missed; will be taken over)")
        else:
            _line(OK, "collector", f"{info.describe()}, every {info.interval_s:g} s")
            _config_match(conn, cfg)
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


def _config_match(conn: sqlite3.Connection, cfg: Config) -> None:
    """The running collector evaluates alerts with its config, the report with this one: say when they differ
    (a budget removed from one still alerts through the other)."""
    from gpuspend.config import identity
    from gpuspend.daemon import META_CONFIG
    from gpuspend.store import get_meta

    theirs, mine = get_meta(conn, META_CONFIG), identity(cfg)
    if theirs is None:
        return
    if theirs == mine:
        _line(OK, "config", f"the collector reads the same config: {mine}")
    else:
        _line(WARN, "config", f"the collector reads {theirs}, this command reads {mine}: pass the same "
                              "--config to both (see README, Collector as a service)")


def _defaults() -> Config:
    from gpuspend.config import default_config

    return default_config()
