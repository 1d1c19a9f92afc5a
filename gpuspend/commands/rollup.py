"""`gpuspend rollup`: the idle thresholds the per-minute rollups were made with, and `--rebuild` to re-roll the
minutes whose raw samples are still retained (after changing `idle.util_pct`, which applies to new minutes
only: older waste was decided with the threshold of its time)."""

from __future__ import annotations

import click

from gpuspend.cli import common_options
from gpuspend.options import Options


@click.command()
@click.option("--rebuild", is_flag=True,
              help="Re-roll every minute whose raw samples are still retained, with the current idle.util_pct.")
@common_options
@click.pass_obj
def rollup(opts: Options, rebuild: bool) -> None:
    """Idle thresholds in the rollups; --rebuild re-derives past idle from retained raw samples."""
    from gpuspend import clock
    from gpuspend import rollup as ru
    from gpuspend.fmt import duration
    from gpuspend.store import connect

    cfg = opts.load_config()
    conn = connect(opts.db_path(cfg), create=False)
    try:
        now = clock.now_ms()
        pct = float(cfg.idle.util_pct)
        if rebuild:
            interval = ru.collector_interval(conn, cfg.interval)
            start, rows = ru.rebuild(conn, interval_s=interval, idle_util_pct=pct, now_ms=now,
                                     remote_interval_s=ru.cloud_interval(cfg))
            if start is None:
                click.echo("no raw samples retained: nothing to rebuild")
            else:
                click.echo(f"rebuilt {rows} GPU-minutes from {ru.iso_minute(start)} on with idle.util_pct {pct:g}% "
                           f"({duration((now - start) / 1000)} of raw samples retained)")
        found = ru.thresholds_in(conn, 0, now + 1)
        first_raw = conn.execute("SELECT MIN(ts) FROM gpu_samples").fetchone()[0]
    finally:
        conn.close()
    shown = ", ".join(f"{t:g}%" for t in found) or "none recorded"
    click.echo(f"idle.util_pct now {pct:g}%; thresholds in the rollups: {shown}")
    if first_raw is not None:
        click.echo(f"raw samples retained from {ru.iso_minute(first_raw)}: `gpuspend rollup --rebuild` re-derives "
                   "idle from there on")
