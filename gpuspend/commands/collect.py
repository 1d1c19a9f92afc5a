"""`gpuspend collect`: the sampling daemon (or one sample with --once)."""

from __future__ import annotations

import importlib.util
import signal
import threading
from typing import TYPE_CHECKING, Any

import click

from gpuspend.cli import SECONDS, common_options
from gpuspend.errors import UsageError
from gpuspend.fmt import count
from gpuspend.options import Options

if TYPE_CHECKING:
    from pathlib import Path

    from gpuspend.config import Config


def _parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--metrics {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9840")
    return host.strip("[]") or "127.0.0.1", int(port)


def _start_metrics(listen: str, db_path: Path, cfg: Config) -> Any:
    host, port = _parse_listen(listen)
    if importlib.util.find_spec("gpuspend.metrics") is None:
        raise UsageError("metrics export not available in this build", hint="run without --metrics")
    from gpuspend import metrics

    return metrics.serve(host, port, db_path=db_path, cfg=cfg)


@click.command()
@click.option("-i", "--interval", type=SECONDS, default=None,
              help="Seconds between samples (default: config `interval`, 2).")
@click.option("-1", "--once", is_flag=True, help="Take one sample and exit.")
@click.option("--metrics", "metrics_listen", default=None, metavar="HOST:PORT",
              help="Also serve Prometheus metrics here (e.g. 127.0.0.1:9840).")
@common_options
@click.pass_obj
def collect(opts: Options, interval: float | None, once: bool, metrics_listen: str | None) -> None:
    """Sample every GPU into the database (daemon; --once for one sample; --demo: the simulated box)."""
    from gpuspend.daemon import Collector

    cfg = opts.load_config()
    demo = opts.demo
    interval = interval or float(cfg.interval or 2.0)
    listen = metrics_listen or (cfg.metrics.listen if not once else None)
    if listen:
        _parse_listen(listen)                      # bad address: fail before touching anything
    db_path = opts.db_path(cfg)
    collector = Collector(db_path, cfg, demo=demo, owner="daemon", interval_s=interval).open()
    server = None
    try:
        if once:
            n = collector.tick()
            click.echo(f"gpuspend: collect: {count(n, 'GPU sample')} written to {db_path}")
            return
        if listen:
            server = _start_metrics(listen, db_path, cfg)
        what = "the simulated demo box" if demo else "every GPU"
        click.echo(f"gpuspend: collect: sampling {what} every {interval:g} s into {db_path}"
                   + (f", metrics on {listen}" if listen else ""))
        stop = threading.Event()

        def _stop(signum: int, frame: Any) -> None:
            stop.set()

        # SIGTERM (systemd stop) and SIGINT (Ctrl-C): finish the current tick, release the lease, exit 0.
        old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        if hasattr(signal, "SIGHUP"):
            old[signal.SIGHUP] = signal.signal(signal.SIGHUP, _stop)  # dropped SSH session
        try:
            collector.run(interval, stop)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
    finally:
        stop_server = getattr(server, "close", None) or getattr(server, "shutdown", None)
        if stop_server is not None:
            try:
                stop_server()
            except Exception:
                pass
        collector.close()
