"""`gpuspend prices`: the shipped price catalog (with each entry's age) and what each local GPU resolves to."""

from __future__ import annotations

import json

import click

from gpuspend.cli import common_options
from gpuspend.options import Options


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--model", default=None, help="Only this GPU model (e.g. H100, A100-80GB).")
@common_options
@click.pass_obj
def prices(opts: Options, as_json: bool, model: str | None) -> None:
    """Price catalog ($/GPU-hour, dated) and the rate each local GPU resolves to."""
    from gpuspend import clock, pricing
    from gpuspend.costing import load_gpus
    from gpuspend.fmt import clean
    from gpuspend.store import connect

    cfg = opts.load_config()
    now = clock.now_ms()
    cat = pricing.load_catalog()
    entries = [e for e in cat.entries if model is None or e.gpu.upper() == model.upper()]
    local = []
    path = opts.db_path(cfg)
    if opts.demo:
        from gpuspend.demo import ensure_demo_db

        ensure_demo_db(path, now)
    if path.exists():
        conn = connect(path)
        try:
            for g in load_gpus(conn):
                r = pricing.resolve_rate(cfg, conn, g, now_ms=now)
                local.append({"index": g["idx"], "uuid": g["uuid"], "host": g["host"], "model": g["model"],
                              "per_gpu_hour": r.per_gpu_hour, "currency": r.currency, "source": r.source,
                              "label": r.label, "as_of": r.as_of})
        finally:
            conn.close()
    rows = [{"provider": e.provider, "gpu": e.gpu, "usd_per_gpu_hour": round(e.usd_per_gpu_hour, 6),
             "sku": e.sku, "gpus_per_instance": e.gpus_per_instance, "usd_per_hour": e.usd_per_hour,
             "region": e.region, "as_of": e.as_of, "age_days": round(pricing.age_days(e.as_of, now), 1),
             "stale": pricing.is_stale(e.as_of, cfg, now), "source": e.source} for e in entries]
    if as_json:
        click.echo(json.dumps({"catalog_as_of": cat.as_of, "prices": rows, "local_gpus": local}, indent=2))
        return
    click.echo(f"price catalog as of {cat.as_of} (on-demand $/GPU-hour; stale after "
               f"{cfg.alerts.stale_catalog / 86400:.0f} days)")
    click.echo(f"{'provider':<10} {'gpu':<10} {'$/GPU-h':>8}  {'sku':<26} {'as of':<10} {'age':>5}")
    for r in rows:
        flag = " STALE" if r["stale"] else ""
        click.echo(f"{r['provider']:<10} {r['gpu']:<10} {r['usd_per_gpu_hour']:>8.3f}  {r['sku'][:26]:<26} "
                   f"{r['as_of']:<10} {r['age_days']:>4.0f}d{flag}")
    click.echo("")
    if not local:
        click.echo("no local GPUs recorded in the database yet (run `gpuspend collect --once`)")
    for g in local:
        idx = "?" if g["index"] is None else g["index"]
        click.echo(clean(f"GPU {idx} {g['model'] or '?'} on {g['host']}: {g['label']}", 100))
