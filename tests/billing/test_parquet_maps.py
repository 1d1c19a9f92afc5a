"""CUR 2.0 Parquet keeps a row's tags as a map<string, string>. The reader turns such a column into JSON text once
per distinct map (a month repeats each resource's tags on every hourly row): the texts are those of converting
every row on its own, for null maps, empty maps, null values, quotes and non-ASCII, and in a slice of a batch."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from gpuspend.collectors.billing import reader
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.store import connect

MAP = pa.map_(pa.string(), pa.string())


def _maps(n: int) -> list:
    rnd = random.Random(5)
    values = [None, "", "llm", "é", 'a "quoted" name', "back\\slash", "1"]
    out: list = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.1:
            out.append(None)
        elif r < 0.2:
            out.append([])
        else:
            out.append([(k, rnd.choice(values)) for k in rnd.sample(["user_team", "user_env", "owner", "coût"],
                                                                     rnd.randint(1, 3))])
    return out


def test_distinct_maps_read_as_every_row_on_its_own() -> None:
    col = pa.array(_maps(3000), MAP)
    for part in (col, col.slice(7, 2000), col.slice(0, 1), col.slice(2999)):
        once = reader._map_as_text(part)
        assert once is not None
        assert once.to_pylist() == [reader._json_cell(v) for v in part.to_pylist()]


def test_a_map_holding_a_separator_is_read_row_by_row() -> None:
    col = pa.array([[("user_team", "a\x1fb")], [("user_team", "a")]], MAP)
    assert reader._map_as_text(col) is None
    assert reader._as_text(col).to_pylist() == ['{"user_team": "a\\u001fb"}', '{"user_team": "a"}']


def test_map_tags_of_a_cur2_parquet_month_are_stored_as_objects(tmp_path: Path) -> None:
    n = 600
    ts = pa.timestamp("ms", tz="UTC")
    start = 1793491200_000
    tags = [[("user_team", "llm"), ("user_env", "prod")] if i % 3 else [] for i in range(n)]
    tags[5] = None
    table = pa.table({
        "bill_billing_period_start_date": pa.array([start] * n, ts),
        "bill_billing_period_end_date": pa.array([start + 30 * 86_400_000] * n, ts),
        "bill_payer_account_id": ["555566667777"] * n,
        "line_item_line_item_type": ["Usage"] * n,
        "line_item_usage_start_date": pa.array([start + i // 3 * 3_600_000 for i in range(n)], ts),
        "line_item_usage_end_date": pa.array([start + (i // 3 + 1) * 3_600_000 for i in range(n)], ts),
        "line_item_product_code": ["AmazonEC2"] * n,
        "line_item_resource_id": [f"i-{i % 3}" for i in range(n)],
        "line_item_currency_code": ["USD"] * n,
        "line_item_unblended_cost": pa.array([1.25] * n, pa.float64()),
        "resource_tags": pa.array(tags, MAP),
    })
    path = tmp_path / "cur2.parquet"
    pq.write_table(table, path, row_group_size=256)
    conn = connect(tmp_path / "g.db")
    try:
        [res] = import_paths(conn, [path], now_s=1794744000)
    finally:
        conn.close()
    assert res.rows == n
    db = sqlite3.connect(tmp_path / "g.db")
    try:
        got = [None if t is None else json.loads(t) for (t,) in db.execute("SELECT tags FROM charges ORDER BY id")]
    finally:
        db.close()
    assert got == [None if i == 5 or i % 3 == 0 else {"user_env": "prod", "user_team": "llm"} for i in range(n)]
