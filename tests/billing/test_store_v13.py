"""Store v13 (billing text stored once): an import keeps repeated texts (tags, descriptions, services, SKUs,
regions, instance types, sub-accounts) as ids into `charge_texts`, and `charges` reads exactly what was in the
file. A v12 database keeps its rows as they are (texts inline), reads the same after the step, and a newer
export imported on top replaces the rows stored before it, never adds to them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gpuspend import store
from gpuspend.collectors.billing import importer, prepared
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.errors import DataError
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES, csv_rows, dump, store_copy_at
from tests.billing.test_replacement import focus_file

NOW_S = 1794744000          # 2026-11-15 12:00 UTC


def _charges(conn: sqlite3.Connection) -> list[tuple]:
    return conn.execute("SELECT * FROM charges ORDER BY id").fetchall()


def _repeated(tmp_path: Path, name: str, times: int) -> Path:
    """A fixture's rows `times` over: each text repeats, as in a real month's export."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    out = tmp_path / f"{times}x-{name}"
    out.write_text(lines[0] + "".join(lines[1:] * times), encoding="utf-8")
    return out


def _v12_copy_of(ref: sqlite3.Connection, path: Path) -> None:
    """A database as schema v12 left it (texts inline in a `charges` table), holding the reference's rows."""
    store_copy_at(12, path, ref, ("imports", "charges", "meta"))


def test_an_import_stores_repeated_texts_once_and_reads_back_what_the_file_says(tmp_path: Path) -> None:
    src = _repeated(tmp_path, "focus_gpu.csv", 10)
    rows = csv_rows(FIXTURES / "focus_gpu.csv")
    conn = connect(tmp_path / "g.db")
    try:
        import_paths(conn, [src], now_s=NOW_S)
        stored = conn.execute("SELECT sub_account, service, sku, sku_description, region FROM charges "
                              "ORDER BY id").fetchall()
        cols = ("SubAccountId", "ServiceName", "SkuId", "ChargeDescription", "RegionId")
        assert stored == [tuple(None if r[c] in ("", "NULL") else r[c] for c in cols) for r in rows * 10]
        # the rows hold ids, no text; each distinct text is stored once
        inline, ids = conn.execute("SELECT COUNT(service), COUNT(service_tid) FROM charge_rows").fetchone()
        assert (inline, ids) == (0, len(rows) * 10)
        services = {r["ServiceName"] for r in rows}
        assert conn.execute("SELECT COUNT(*) FROM charge_texts WHERE text IN "
                            f"({', '.join('?' * len(services))})", sorted(services)).fetchone()[0] == len(services)
        n_texts = conn.execute("SELECT COUNT(*) FROM charge_texts").fetchone()[0]
        # importing another file with the same texts adds no text
        again = tmp_path / "focus-copy.csv"
        again.write_text(src.read_text(encoding="utf-8").replace("2024-09", "2024-08"), encoding="utf-8")
        import_paths(conn, [again], now_s=NOW_S)
        assert conn.execute("SELECT COUNT(*) FROM charge_texts").fetchone()[0] == n_texts
    finally:
        conn.close()


def test_texts_stored_as_ids_or_inline_read_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A column of mostly distinct texts stays inline (an id would only add a lookup); either way `charges` reads
    the same rows, and the month figures are the same."""
    src = _repeated(tmp_path, "aws_cur2.csv", 8)
    conn = connect(tmp_path / "ids.db")
    import_paths(conn, [src], now_s=NOW_S)
    monkeypatch.setattr(importer, "TEXTS_CACHED", 0)               # every batch looks its texts up again
    uncached = connect(tmp_path / "uncached.db")
    import_paths(uncached, [src], now_s=NOW_S)
    assert _charges(uncached) == _charges(conn)
    assert uncached.execute("SELECT * FROM charge_texts").fetchall() == \
        conn.execute("SELECT * FROM charge_texts").fetchall()
    uncached.close()
    monkeypatch.setattr(prepared, "INTERN_MAX_SHARE", 0.0)
    monkeypatch.setattr(prepared, "INTERN_ALWAYS", 0)
    inline = connect(tmp_path / "inline.db")
    import_paths(inline, [src], now_s=NOW_S)
    try:
        assert _charges(conn) == _charges(inline)
        assert inline.execute("SELECT COUNT(*) FROM charge_texts").fetchone()[0] == 0
        assert inline.execute("SELECT COUNT(*) FROM charge_rows WHERE service IS NOT NULL").fetchone()[0] > 0
        assert conn.execute("SELECT COUNT(*) FROM charge_rows WHERE service IS NOT NULL").fetchone()[0] == 0
    finally:
        conn.close()
        inline.close()


def test_a_v12_database_migrates_without_rewriting_and_a_newer_export_replaces_its_rows(tmp_path: Path) -> None:
    monkey = pytest.MonkeyPatch()
    monkey.setattr(prepared, "INTERN_MAX_SHARE", 0.0)             # the reference as v12 stored it: texts inline
    monkey.setattr(prepared, "INTERN_ALWAYS", 0)
    ref = connect(tmp_path / "ref.db")
    import_paths(ref, [focus_file(tmp_path / "mtd-day5.csv", 5)], now_s=NOW_S)
    import_paths(ref, [FIXTURES / "focus_gpu.csv"], now_s=NOW_S)
    monkey.undo()
    _v12_copy_of(ref, tmp_path / "old.db")
    conn = connect(tmp_path / "old.db")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        assert _charges(conn) == _charges(ref)
        assert conn.execute("SELECT COUNT(*) FROM charge_rows WHERE service_tid IS NOT NULL").fetchone()[0] == 0
        # day 9 of the same month, stored as ids: the same line items as the inline day-5 rows, so a version
        assert import_paths(conn, [focus_file(tmp_path / "mtd-day9.csv", 9)], now_s=NOW_S)[0].status == "imported"
        ec2 = conn.execute("SELECT COUNT(*), SUM(billed_cost) FROM charges WHERE billing_account = 'A1'").fetchone()
        assert ec2 == (9, 90.0)                                   # not 14 rows / $140
        assert conn.execute("SELECT COUNT(*) FROM charge_rows r JOIN charges c ON c.id = r.id WHERE "
                            "c.billing_account = 'A1' AND r.service IS NULL AND r.service_tid IS NOT NULL"
                            ).fetchone()[0] == 9
        # and the inline rows of the other file are as they were
        assert conn.execute("SELECT COUNT(*) FROM charges WHERE billing_account != 'A1'").fetchone()[0] == \
            ref.execute("SELECT COUNT(*) FROM charges WHERE billing_account != 'A1'").fetchone()[0]
    finally:
        conn.close()
        ref.close()


def test_a_failed_import_leaves_no_texts_behind(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    conn = connect(db)
    import_paths(conn, [focus_file(tmp_path / "ok.csv", 3)], now_s=NOW_S)
    before = dump(db)
    bad = tmp_path / "bad.csv"
    text = focus_file(tmp_path / "b.csv", 40, account="B2").read_text()
    lines = text.splitlines(keepends=True)
    lines[-1] = lines[-1].replace(",10.0,10.0,", ",ten,10.0,")       # the last row: after the first batch
    bad.write_text("".join(lines).replace("EC2", "Amazon SageMaker"))
    with pytest.raises(DataError):
        import_paths(conn, [bad], now_s=NOW_S)
    conn.close()
    assert dump(db) == before
