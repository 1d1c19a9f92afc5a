"""`gpuspend import PATH...`: load billing exports (FOCUS, AWS CUR / CUR 2.0, GCP, Azure) into the database."""

from __future__ import annotations

import json
from typing import Any

import click

from gpuspend.cli import common_options
from gpuspend.errors import GpuspendError
from gpuspend.options import Options

FORMAT_CHOICES = ("focus", "aws-cur", "aws-cur2", "gcp", "azure")


@click.command("import")
# No click.Path(exists=True): click would call an unreadable file a usage error (exit 2); the importer says
# `file: cannot read the file (Permission denied)` and exits 3, and a missing path is still a usage error.
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("--format", "fmt", type=click.Choice(FORMAT_CHOICES), default=None,
              help="Skip detection and read the files as this format.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing what was imported.")
@click.option("--skip-bad-rows", is_flag=True, help="Import the readable rows and report the bad ones.")
@click.option("--dataset", type=click.Choice(("actual", "amortized")), default=None,
              help="Azure: which cost dataset the files are (default: from the file name, else actual).")
@common_options
@click.pass_obj
def import_cmd(opts: Options, paths: tuple[str, ...], fmt: str | None, as_json: bool, skip_bad_rows: bool,
               dataset: str | None) -> None:
    """Import billing export files or export folders (CSV, CSV.gz, Parquet, JSONL); exit 3 on bad input."""
    try:
        from gpuspend.collectors.billing.importer import import_paths
    except ImportError as exc:   # pyarrow is a dependency, but a platform without its wheels can lack it
        raise GpuspendError(f"billing import needs pyarrow, which cannot be loaded here ({exc})",
                            hint="pip install pyarrow") from None
    from gpuspend.store import connect

    cfg = opts.load_config()
    path = opts.db_path(cfg)
    if not opts.demo:
        from gpuspend.demo import refuse_real_data_into_demo

        refuse_real_data_into_demo(path, "these exports")
    conn = connect(path)
    try:
        results = import_paths(conn, list(paths), fmt=fmt, skip_bad_rows=skip_bad_rows, dataset=dataset,
                               currency=cfg.currency)
    finally:
        conn.close()
    if as_json:
        from gpuspend.collectors.billing.importer import summary_json

        click.echo(json.dumps(summary_json(results), allow_nan=False))
        return
    for r in results:
        click.echo(_line(r))
    if results and all(r.status != "imported" for r in results):
        click.echo("nothing changed: the database already holds these exports or newer versions of them")


def _line(r: Any) -> str:
    from time import gmtime, strftime

    from gpuspend.fmt import clean, count, money

    if r.status == "unchanged":
        state = "unchanged, already imported"
    elif r.status == "superseded":
        state = ("not imported: an older version of this billing period (superseded by "
                 f"{', '.join(clean(p, 200) for p in sorted(set(r.superseded_by)))})")
    elif r.status == "incomplete":
        state = ("not imported: part of a newer export run whose other parts are missing (the older run is kept "
                 f"whole: {', '.join(clean(p, 200) for p in sorted(set(r.held_by)))})")
    else:
        state = "imported"
    text = f"{clean(r.path, 200)}: {r.format}, {count(r.rows, 'row')} ({r.gpu_rows} GPU) {state}"
    for old in sorted(set(r.supersedes)):
        text += f"; replaces the older version {clean(old, 200)}"
    if r.status == "imported" and r.superseded_by:
        text += f"; some periods superseded by {', '.join(clean(p, 200) for p in sorted(set(r.superseded_by)))}"
    if r.skipped_rows:
        more = "…" if r.skipped_rows > len(r.bad_lines) else ""
        word = "line" if len(r.bad_lines) == 1 and not more else "lines"
        text += f"; skipped {count(r.skipped_rows, 'bad row')} ({word} {', '.join(map(str, r.bad_lines))}{more})"
    for why in r.why:
        text += f"\n  why: {clean(why, 300)}"
    for note in r.notes:
        text += f"\n  note: {clean(note, 200)}"
    for p in r.periods:
        cur = clean(p.currency or "?", 12)
        billed = money(p.billed, cur) if p.has_billed else "none (amortized dataset)"
        text += (f"\n  period {strftime('%Y-%m', gmtime(p.start))} {cur}: billed {billed}, "
                 f"effective {money(p.effective, cur)}, {count(p.rows, 'row')}")
    return text
