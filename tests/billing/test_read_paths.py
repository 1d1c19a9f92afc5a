"""The reading shortcuts of the importer change nothing a user can see: columns a format never reads are not
converted, Parquet timestamps and numbers are read typed (no text round trip), repeated texts share one
object, and GPU marking looks only at the rows whose texts name a GPU."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from gpuspend.collectors.billing import detect as detect_mod
from gpuspend.collectors.billing import gpu_catalog
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.collectors.billing.normalise import NOT_READ, Cols, columns_read
from gpuspend.collectors.billing.reader import Table
from gpuspend.collectors.billing.values import pylist
from gpuspend.errors import DataError
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES

FILES = ["aws_cur2.csv", "aws_cur_legacy.csv", "azure_ea_actualcost.csv", "azure_ea_amortizedcost.csv",
         "azure_mca_actual.csv", "azure_payg_german.csv", "focus_gpu.csv", "gcp_export.jsonl"]


def _normalised(path: Path, prune: bool) -> list[tuple]:
    table = Table(path)
    v = detect_mod.detect(table.header, str(path), None)
    mod = detect_mod.module(v.fmt)
    ctx = {"path": str(path), "dataset": None, "currency": None}
    cols = columns_read(mod.normalise, v.keys, table.header, ctx) if prune else None
    out = []
    for b in table.batches(cols):
        r = mod.normalise(Cols(v.keys, table.header, b.columns, b.num_rows), ctx)
        out.append((r.data, r.source, [(x.row, x.column, x.value) for x in r.bad], r.export_time, r.notes))
    return out


@pytest.mark.parametrize("name", FILES)
def test_columns_a_format_never_reads_are_skipped_with_the_same_rows(name: str) -> None:
    assert _normalised(FIXTURES / name, prune=True) == _normalised(FIXTURES / name, prune=False)


def test_focus_reads_about_half_of_its_columns_and_a_skipped_one_is_never_empty_silently() -> None:
    path = FIXTURES / "focus_gpu.csv"
    table = Table(path)
    v = detect_mod.detect(table.header, str(path), None)
    cols = columns_read(detect_mod.module(v.fmt).normalise, v.keys, table.header, {"path": str(path)})
    assert cols is not None and v.keys.index("billedcost") in cols and len(cols) < len(table.header)
    arrays = [NOT_READ] * len(table.header)
    with pytest.raises(RuntimeError, match="not read"):
        Cols(v.keys, table.header, arrays, 0).get("billedcost")


def _cur2_table(costs: list[float], ts_type: pa.DataType) -> pa.Table:
    src = pacsv.read_csv(FIXTURES / "aws_cur2.csv", convert_options=pacsv.ConvertOptions(
        column_types={"line_item_usage_start_date": pa.string(), "line_item_usage_end_date": pa.string()}))
    n = src.num_rows
    start = 1793491200                                   # 2026-11-01T00:00:00Z
    t = src.drop_columns(["line_item_usage_start_date", "line_item_usage_end_date", "line_item_unblended_cost",
                          "line_item_net_unblended_cost"])
    t = t.append_column("line_item_usage_start_date",
                        pa.array([(start + 3600 * i) * 10**9 for i in range(n)], pa.int64()).cast(ts_type))
    t = t.append_column("line_item_usage_end_date",
                        pa.array([(start + 3600 * (i + 1)) * 10**9 for i in range(n)], pa.int64()).cast(ts_type))
    return t.append_column("line_item_unblended_cost", pa.array(costs, pa.float64()))


@pytest.mark.parametrize("ts_type", [pa.timestamp("ns"), pa.timestamp("ns", tz="UTC"),
                                     pa.timestamp("ns", tz="America/New_York")])
def test_typed_parquet_timestamps_are_read_as_utc_instants(db_path: Path, tmp_path: Path, ts_type) -> None:
    path = tmp_path / "cur2.parquet"
    pq.write_table(_cur2_table([1.25, 2.5, 4.0], ts_type), path)
    conn = connect(db_path)
    try:
        import_paths(conn, [path])
        rows = conn.execute("SELECT charge_period_start, charge_period_end, billed_cost FROM charges "
                            "ORDER BY charge_period_start").fetchall()
    finally:
        conn.close()
    start = 1793491200                                   # naive ones are UTC by convention; aware ones are instants
    assert rows == [(start, start + 3600, 1.25), (start + 3600, start + 7200, 2.5),
                    (start + 7200, start + 10800, 4.0)]


def test_infinite_amount_in_typed_parquet_is_a_bad_number(db_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "cur2.parquet"
    pq.write_table(_cur2_table([1.0, math.inf, 2.0], pa.timestamp("ms", tz="UTC")), path)
    conn = connect(db_path)
    try:
        with pytest.raises(DataError, match="finite (number|amount)") as exc:
            import_paths(conn, [path])
        assert exc.value.where == f"{path}:2"            # Parquet: the row number
        assert conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 0
    finally:
        conn.close()


def test_shared_objects_list_equals_to_pylist() -> None:
    a = pa.array(["USD", None, "EUR", "USD"] * 50 + [None] * 10, pa.string())
    assert pylist(a) == a.to_pylist()
    distinct = pa.array([f"i-{k}" for k in range(100)], pa.string())
    assert pylist(distinct) == distinct.to_pylist()
    assert pylist(pa.nulls(70, pa.string())) == [None] * 70


def test_gpu_marking_of_a_batch_equals_classifying_every_row() -> None:
    """The shortcut (look only at rows holding a GPU text) against the rule applied to each row."""
    path = FIXTURES / "focus_gpu.csv"
    table = Table(path)
    v = detect_mod.detect(table.header, str(path), None)
    mod = detect_mod.module(v.fmt)
    [b] = list(table.batches())
    rows = mod.normalise(Cols(v.keys, table.header, b.columns, b.num_rows), {"path": str(path)})
    d = rows.data
    texts = list(zip(*[d["instance_type"], *rows.gpu_texts, d["sku"], d["sku_description"]], strict=True))
    expected = [gpu_catalog.classify(*t) for t in texts]
    assert d["is_gpu"] == [int(h is not None) for h in expected] and sum(d["is_gpu"]) > 0
    assert d["gpu_model"] == [h.model if h else None for h in expected]
    assert d["gpu_count"] == [h.gpus if h else None for h in expected]
