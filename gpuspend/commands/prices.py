"""`gpuspend prices`: the price catalog (shipped, with fetched prices over it), each entry's age and change
since the previous fetch, and what each local GPU resolves to. `--refresh` fetches from the primary sources."""

from __future__ import annotations

import json
from typing import Any

import click

from gpuspend.cli import common_options
from gpuspend.options import Options


def _known_key(model: str, keys: set[str]) -> str | None:
    """`--model` as a catalog key: the key itself (any case), a family ('h100' = every H100), or a marketing
    name ('NVIDIA H100 NVL' -> H100-NVL). None when nothing in the catalog or on this box is that model."""
    from gpuspend.gpu_models import normalise_model

    for cand in (model.strip().upper(), normalise_model(model)):
        if cand and any(_is(k, cand) for k in keys):
            return cand
    return None


def _is(key: str, wanted: str) -> bool:
    """A catalog key answers `--model wanted`: itself, its family ('H100'), or a wider name ('A100')."""
    from gpuspend.gpu_models import family

    k = key.upper()
    return k == wanted or family(k) == wanted or k.startswith(wanted + "-")


def _refresh_lines(results: list[Any], *, quiet: bool = False) -> int:
    """One line per source (a failed one on stderr, also with --json); the exit code: 0 when any source gave
    prices, 3 when every one failed."""
    from gpuspend.errors import EXIT_DATA, EXIT_OK, UsageError
    from gpuspend.fmt import clean

    tried = [r for r in results if not r.skipped]
    if not tried:
        raise UsageError("no price source to refresh from", hint="set prices.sources in the config")
    for r in results:
        if r.skipped:
            if not quiet:
                click.echo(f"{r.source}: skipped ({r.skipped})")
        elif r.ok:
            if not quiet:
                click.echo(clean(f"{r.source}: {len(r.rows)} prices from {r.url}", 160))
        else:
            click.echo(clean(f"gpuspend: prices: {r.source} {r.url}: {r.error}; its previous prices are kept", 200),
                       err=True)
    return EXIT_OK if any(r.ok for r in tried) else EXIT_DATA


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--model", default=None, help="Only this GPU model: a key (H100-NVL), a family (H100) or a name.")
@click.option("--refresh", is_flag=True, help="Fetch current prices from the primary sources first.")
@click.option("--write-catalog", "write_catalog", type=click.Path(dir_okay=False), default=None,
              help="Write the catalog (shipped + fetched) in the shipped file's format to this file.")
@common_options
@click.pass_obj
def prices(opts: Options, as_json: bool, model: str | None, refresh: bool, write_catalog: str | None) -> None:
    """Price catalog ($/GPU-hour, dated, with changes) and the rate each local GPU resolves to."""
    from gpuspend import clock, pricing
    from gpuspend.costing import load_gpus
    from gpuspend.errors import UsageError
    from gpuspend.fmt import clean, count
    from gpuspend.store import connect

    cfg = opts.load_config()
    now = clock.now_ms()
    path = opts.db_path(cfg)
    if opts.demo:
        from gpuspend.demo import ensure_demo_db

        ensure_demo_db(path, now)
    rc = 0
    results: list[Any] = []
    if refresh:
        from gpuspend.collectors.prices.refresh import fetch_all, store_results

        results = fetch_all(cfg)        # network first: a refresh where every source failed writes nothing
        if any(r.ok for r in results):
            conn = connect(path)
            try:
                store_results(conn, results, now)
            finally:
                conn.close()
        rc = _refresh_lines(results, quiet=as_json)
        if not as_json:
            click.echo("")
    local: list[dict[str, Any]] = []
    cat = pricing.load_catalog()
    changes: dict = {}
    if path.exists():
        conn = connect(path)
        try:
            cat = pricing.catalog_for(conn)
            changes = pricing.price_changes(conn)
            for g in load_gpus(conn):
                r = pricing.resolve_rate(cfg, conn, g, now_ms=now)
                local.append({"index": g["idx"], "uuid": g["uuid"], "host": g["host"],
                              "model": pricing.gpu_model_key(g), "per_gpu_hour": r.per_gpu_hour,
                              "currency": r.currency, "source": r.source, "label": r.label, "as_of": r.as_of})
        finally:
            conn.close()
    if write_catalog:
        from pathlib import Path

        try:
            Path(write_catalog).write_text(pricing.dump_catalog(cat), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the catalog: {exc.strerror}", where=write_catalog) from None
    entries = list(cat.entries)
    if model is not None:
        key = _known_key(model, {e.gpu.upper() for e in entries} | {str(g["model"]).upper() for g in local})
        if key is None:
            raise UsageError(f"no such GPU model: {clean(model, 40)}",
                             hint="see `gpuspend prices` for the models it knows (e.g. H100-SXM, H100-NVL, L4)")
        entries = [e for e in entries if _is(e.gpu, key)]
        local = [g for g in local if g["model"] and _is(str(g["model"]), key)]
    entries.sort(key=lambda e: (e.provider, e.gpu, e.sku))
    rows = []
    for e in entries:
        ch = changes.get((e.provider, e.gpu, e.sku, e.region)) if e.fetched_at is not None else None
        rows.append({"provider": e.provider, "gpu": e.gpu, "usd_per_gpu_hour": round(e.usd_per_gpu_hour, 6),
                     "sku": e.sku, "gpus_per_instance": e.gpus_per_instance, "usd_per_hour": e.usd_per_hour,
                     "region": e.region, "as_of": e.as_of, "age_days": round(pricing.age_days(e.as_of, now), 1),
                     "stale": pricing.is_stale(e.as_of, cfg, now), "source": e.source, "kind": e.kind,
                     "origin": e.origin, "note": e.note,
                     "previous_usd_per_hour": ch.previous if ch else None,
                     "change_pct": round(ch.pct, 2) if ch and ch.pct is not None else None,
                     "change_since": ch.since if ch else None,
                     "change": ch.describe() if ch else None})
    if as_json:
        doc: dict[str, Any] = {"catalog_as_of": cat.as_of, "prices": rows, "local_gpus": local}
        if refresh:
            doc["refresh"] = [{"source": r.source, "url": r.url, "ok": r.ok, "rows": len(r.rows),
                               "error": r.error, "skipped": r.skipped} for r in results]
        click.echo(json.dumps(doc, indent=2))
        if rc:
            raise click.exceptions.Exit(rc)
        return
    click.echo(f"price catalog as of {cat.as_of} (on-demand $/GPU-hour; stale after "
               f"{count(round(cfg.alerts.stale_catalog / 86400), 'day')})")
    click.echo(f"{'provider':<10} {'gpu':<14} {'$/GPU-h':>8}  {'sku':<26} {'as of':<10} {'age':>5}  change")
    for r in rows:
        flag = " STALE" if r["stale"] else ""
        tail = r["change"] or ("shipped" if r["origin"] == "shipped" else "")
        if r["kind"] == "market":
            tail += ", market median"
        click.echo(clean(f"{r['provider']:<10} {r['gpu']:<14} {r['usd_per_gpu_hour']:>8.3f}  {r['sku'][:26]:<26} "
                         f"{r['as_of']:<10} {r['age_days']:>4.0f}d  {tail}{flag}", 160))
    click.echo("")
    if not local:
        click.echo("no local GPUs recorded in the database yet (run `gpuspend collect --once`)")
    for g in local:
        idx = "?" if g["index"] is None else g["index"]
        click.echo(clean(f"GPU {idx} {g['model'] or '?'} on {g['host']}: {g['label']}", 120))
    if rc:
        raise click.exceptions.Exit(rc)
