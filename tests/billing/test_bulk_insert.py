"""The fast insert path (multi-row INSERTs, line items bound once per batch and joined to their rows, nulls bound
as NaN, empty columns left out, GPU verdicts cached across batches) stores exactly what a plain row-by-row insert
of the same file would."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspend.collectors.billing import importer, normalise
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.collectors.billing.normalise import FIELDS
from gpuspend.store import INTERNED_FIELDS, connect
from tests.billing.helpers import FIXTURES, csv_rows, num, stored_charges

REPEAT = 9      # 90 rows: several 32-row statements plus a remainder


def _big_focus(tmp_path: Path) -> Path:
    lines = (FIXTURES / "focus_gpu.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    out = tmp_path / "focus_big.csv"
    out.write_text(lines[0] + "".join(lines[1:] * REPEAT), encoding="utf-8")
    return out


class _PlainInsert:
    """The reference: each row on its own through the `charges` view, every column named, its texts inline (the
    view's trigger stores an item per row), None bound as None."""

    def __init__(self) -> None:
        self.items: dict[int, dict] = {}

    def item_ids(self, slices, fields, items, sids) -> list[int]:
        w = len(fields)
        ids = []
        for k in range(len(sids)):
            values = dict(zip(fields, items[k * w:(k + 1) * w], strict=True))
            for f in INTERNED_FIELDS:         # a text id back to its text
                if f + "_tid" in values:
                    tid = values.pop(f + "_tid")
                    values[f] = None if tid is None or tid != tid else slices.conn.execute(
                        "SELECT text FROM charge_texts WHERE id = ?", (tid,)).fetchone()[0]
            ids.append(len(self.items))
            self.items[ids[-1]] = values
        return ids

    def rows_in(self, conn, fields, flat, n) -> None:
        width = len(fields) + 3
        sql = f"INSERT INTO charges (import_id, line, {', '.join(FIELDS)}) VALUES ({', '.join('?' * (len(FIELDS) + 2))})"
        for i in range(0, n * width, width):
            sid, line, item, *values = flat[i:i + width]
            row = {**self.items[item], **dict(zip(fields, values, strict=True))}
            conn.execute(sql, [sid, line, *(None if isinstance(v, float) and v != v else v
                                            for v in (row.get(f) for f in FIELDS))])


def test_fast_path_stores_the_same_rows_as_a_plain_insert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _big_focus(tmp_path)
    fast_db, plain_db = tmp_path / "fast.db", tmp_path / "plain.db"
    conn = connect(fast_db)
    [fast] = import_paths(conn, [src])
    conn.close()
    plain_insert = _PlainInsert()
    monkeypatch.setattr(importer._Slices, "item_ids", lambda slices, *a: plain_insert.item_ids(slices, *a))
    monkeypatch.setattr(importer, "_insert_rows", plain_insert.rows_in)
    monkeypatch.setattr(normalise, "ITEM_MAX_SHARE", -1)      # every column bound on every row
    conn = connect(plain_db)
    [plain] = import_paths(conn, [src])
    conn.close()
    assert fast.as_json() == plain.as_json()
    rows = stored_charges(fast_db)
    assert rows == stored_charges(plain_db)
    assert [r[0] for r in rows] == list(range(2, 2 + 10 * REPEAT))        # file order and line numbers kept
    expected = sum(num(r["BilledCost"]) for r in csv_rows(src))
    assert sum(r[1 + FIELDS.index("billed_cost")] for r in rows) == pytest.approx(expected)


def test_missing_values_are_sql_null_never_nan(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    conn = connect(db)
    import_paths(conn, [_big_focus(tmp_path)])
    types = {f: {t for (t,) in conn.execute(f"SELECT DISTINCT typeof({f}) FROM charges")} for f in FIELDS}
    conn.close()
    assert types["charge_type"] == {"null"}                    # absent from the file: left out of the INSERT
    assert types["charge_class"] == {"null", "text"}           # NULL / (null) cells, bound as NaN
    assert types["tags"] == {"null", "text"}
    assert types["quantity"] == {"null", "real"}
    assert types["gpu_count"] == {"null", "real"}
    assert types["billed_cost"] == {"real"}


def test_gpu_verdicts_do_not_depend_on_what_was_imported_before(tmp_path: Path) -> None:
    """The GPU catalog verdicts are cached per process: a different import order gives the same rows."""
    files = [FIXTURES / "aws_cur_legacy.csv", FIXTURES / "focus_gpu.csv", FIXTURES / "azure_mca_actual.csv"]
    dumps = []
    for name, order in (("a", files), ("b", files[::-1])):
        db = tmp_path / f"{name}.db"
        conn = connect(db)
        for f in order:
            import_paths(conn, [f])
        gpu = conn.execute("SELECT resource_id, sku_description, instance_type, is_gpu, gpu_model, gpu_count "
                           "FROM charges ORDER BY resource_id, sku_description, line").fetchall()
        conn.close()
        dumps.append(gpu)
    assert dumps[0] == dumps[1]
    assert any(r[3] == 1 for r in dumps[0])
