"""Refresh prices: run each configured source, validate, and append what it returned to the store's price
history in one transaction per source. A source that fails (HTTP error, timeout, malformed answer, nothing
plausible) writes only a failed `price_fetches` row: its previous rows stay the current ones.

Network first, then the write: no HTTP request is ever made while holding the database's write lock, and a
kill at any instant leaves either the whole fetch or none of it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpuspend import clock
from gpuspend.collectors.prices import azure, lambda_cloud, runpod, skypilot, vast
from gpuspend.collectors.prices.common import FetchedPrice, Http, SourceError
from gpuspend.errors import GpuspendError
from gpuspend.store import PRICES_GENERATION, bump_generation, get_meta, set_meta, transaction

if TYPE_CHECKING:
    from gpuspend.config import Config

LAST_REFRESH = "prices.last_refresh"     # epoch ms of the last refresh attempt (the collector's schedule)


@dataclass
class SourceResult:
    source: str
    url: str
    rows: list[FetchedPrice] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None    # not configured (no URL, no key): neither success nor failure

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None


class PriceSourcesView:
    """`prices.sources` with `off` (or an empty value) read as no source."""

    def __init__(self, cfg: Config) -> None:
        for name in ("azure", "skypilot", "runpod", "vast", "lambda_"):
            url = getattr(cfg.prices.sources, name)
            setattr(self, name, None if not url or str(url).strip().lower() in OFF else str(url).strip())


OFF = {"off", "none", "false", "no"}


def plan(cfg: Config) -> list[tuple[str, str | None, Callable[[Http], list[FetchedPrice]] | None, str | None]]:
    """(source name, URL, fetch, reason skipped) for every source, in a fixed order."""
    src = PriceSourcesView(cfg)
    out: list[tuple[str, str | None, Any, str | None]] = []
    if src.azure:
        out.append((azure.SOURCE, src.azure, lambda h, u=src.azure: azure.fetch(h, u), None))
    if src.skypilot:
        for cloud in cfg.prices.skypilot_clouds:
            url = f"{src.skypilot.rstrip('/')}/{cloud}/vms.csv"
            out.append((skypilot.source_name(cloud), url,
                        lambda h, u=src.skypilot, c=cloud: skypilot.fetch(h, u, c), None))
    if src.runpod:
        key = cfg.clouds.runpod.api_key
        out.append((runpod.SOURCE, src.runpod, lambda h, u=src.runpod, k=key: runpod.fetch(h, u, k), None))
    if src.vast:
        out.append((vast.SOURCE, src.vast, lambda h, u=src.vast: vast.fetch(h, u), None))
    if src.lambda_:
        key = cfg.clouds["lambda"].api_key
        if key:
            out.append((lambda_cloud.SOURCE, src.lambda_,
                        lambda h, u=src.lambda_, k=key: lambda_cloud.fetch(h, u, k), None))
        else:
            out.append((lambda_cloud.SOURCE, src.lambda_, None, "needs clouds.lambda.api_key"))
    return out


def fetch_all(cfg: Config, http: Http | None = None) -> list[SourceResult]:
    """Ask every source; never raises for one source's failure."""
    own = http is None
    h = http or Http(float(cfg.prices.timeout))
    results: list[SourceResult] = []
    try:
        for name, url, fn, skipped in plan(cfg):
            res = SourceResult(name, url or "")
            if fn is None:
                res.skipped = skipped
            else:
                try:
                    res.rows = _dedupe(fn(h))
                    if not res.rows:
                        res.error = "no plausible GPU prices in the answer"
                except SourceError as exc:
                    res.error = exc.message
                except GpuspendError as exc:
                    res.error = exc.line()
            results.append(res)
    finally:
        if own:
            h.close()
    return results


def _dedupe(rows: list[FetchedPrice]) -> list[FetchedPrice]:
    seen: dict[tuple, FetchedPrice] = {}
    for r in rows:
        seen.setdefault((r.provider, r.gpu, r.sku, r.region), r)
    return list(seen.values())


def store_results(conn: sqlite3.Connection, results: list[SourceResult], now_ms: int) -> None:
    """The sources that gave prices, each in its own transaction (a kill between two leaves the first whole
    and the second absent). A failed source writes nothing: the database stays as it was for it."""
    for res in results:
        if not res.ok:
            continue
        with transaction(conn):
            cur = conn.execute("INSERT INTO price_fetches (source, url, fetched_at, rows) VALUES (?,?,?,?)",
                               (res.source, res.url, now_ms, len(res.rows)))
            conn.executemany(
                "INSERT INTO price_history (fetch_id, provider, gpu, sku, region, gpus_per_instance, "
                "usd_per_hour, kind, source_url, fetched_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(cur.lastrowid, r.provider, r.gpu, r.sku, r.region, r.gpus_per_instance, r.usd_per_hour,
                  r.kind, r.source_url, now_ms) for r in res.rows])
            bump_generation(conn, PRICES_GENERATION)
            set_meta(conn, LAST_REFRESH, str(now_ms))


def refresh(conn: sqlite3.Connection, cfg: Config, now_ms: int | None = None,
            http: Http | None = None) -> list[SourceResult]:
    now = clock.now_ms() if now_ms is None else now_ms
    results = fetch_all(cfg, http)
    store_results(conn, results, now)
    return results


# When the collector last tried, per database (in memory: a refresh that failed everywhere writes nothing, and
# must still wait a full period before it asks the sources again).
_attempted: dict[str, int] = {}


def _db_key(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row else ""


def refresh_task(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> None:
    """The collector's periodic task: off unless `prices.refresh` is set; due by the last refresh recorded in
    the database (a restarted collector does not refetch at once) and the last attempt of this process."""
    every_ms = float(cfg.prices.refresh or 0) * 1000
    if every_ms <= 0:
        return
    last = max(int(get_meta(conn, LAST_REFRESH) or 0), _attempted.get(_db_key(conn), 0))
    if last and now_ms - last < every_ms:
        return
    _attempted[_db_key(conn)] = now_ms
    results = refresh(conn, cfg, now_ms)
    failed = [r for r in results if r.error]
    if failed:   # the daemon logs one line per failed task; name every failed source in it
        raise SourceError("price refresh: " + "; ".join(f"{r.source}: {r.error}" for r in failed)
                          + ("" if any(r.ok for r in results) else " (every source failed)"))
