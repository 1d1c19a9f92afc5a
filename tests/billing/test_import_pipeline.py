"""The import's speed and memory machinery stores exactly what the plain path stores: the reader process
(large files), small CSV blocks glued into batches, timestamps parsed once per distinct text, column-wise
coalesce. Expected values are computed by hand or by the plain path on the same file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from gpuspend.collectors.billing import pipeline, reader
from gpuspend.collectors.billing.importer import import_paths
from gpuspend.collectors.billing.normalise import FIELDS, coalesce
from gpuspend.collectors.billing.values import BadValue, ts_col
from gpuspend.errors import DataError
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES, csv_rows, dump, num, stored_charges
from tests.conftest import ROOT

FORK = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reader process is used on Linux only")
REPEAT = 40          # 400 rows, ~100 KB: many 4 KB blocks, several glued batches


def _big_focus(tmp_path: Path, bad_at: int | None = None) -> Path:
    lines = (FIXTURES / "focus_gpu.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    body = lines[1:] * REPEAT
    if bad_at is not None:                      # file line bad_at (header is line 1): a cost that is no number
        row = body[bad_at - 2].split(",")
        header = lines[0].rstrip("\n").split(",")
        row[header.index("BilledCost")] = "twelve"
        body[bad_at - 2] = ",".join(row)
    out = tmp_path / "focus_big.csv"
    out.write_text(lines[0] + "".join(body), encoding="utf-8")
    return out


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "BLOCK_SIZE", 4096)
    monkeypatch.setattr(reader, "BATCH_BYTES", 16384)


def _in_a_fresh_process(case: str, tmp_path: Path, module: str = __name__) -> None:
    """Run `module.case(tmp_path)` in a new interpreter. The reader process is forked only from a
    single-threaded process (pipeline.usable), and earlier tests in this one may have left threads (servers,
    exporters) running: in a fresh interpreter the fork path is the one under test, every time."""
    code = (f"from pathlib import Path\nimport {module} as t\n"
            f"t.{case}(Path({str(tmp_path)!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def _fork_setup() -> None:
    reader.BLOCK_SIZE, reader.BATCH_BYTES = 4096, 16384          # many small blocks, glued into batches
    pipeline.CHILD_MIN_ROWS = 0
    assert pipeline.usable(1), "the reader process would not be used"


def _import(db: Path, src: Path, **kw) -> list:
    conn = connect(db)
    try:
        return import_paths(conn, [src], now_s=1794744000, **kw)
    finally:
        conn.close()


@FORK
def test_reader_process_stores_what_the_thread_stores(tmp_path: Path) -> None:
    _in_a_fresh_process("case_reader_process_stores_what_the_thread_stores", tmp_path)


def case_reader_process_stores_what_the_thread_stores(tmp_path: Path) -> None:
    reader.BLOCK_SIZE, reader.BATCH_BYTES = 4096, 16384
    src = _big_focus(tmp_path)
    [threaded] = _import(tmp_path / "thread.db", src)          # below CHILD_MIN_ROWS: the plain path
    _fork_setup()
    [forked] = _import(tmp_path / "fork.db", src)
    assert forked.as_json() == threaded.as_json()
    rows = stored_charges(tmp_path / "fork.db")
    assert rows == stored_charges(tmp_path / "thread.db")
    assert [r[0] for r in rows] == list(range(2, 2 + 10 * REPEAT))       # file order and line numbers
    expected = sum(num(r["BilledCost"]) for r in csv_rows(src))
    assert sum(r[1 + FIELDS.index("billed_cost")] for r in rows) == pytest.approx(expected)


@FORK
def test_reader_process_bad_row_names_its_line_and_writes_nothing(tmp_path: Path) -> None:
    _in_a_fresh_process("case_reader_process_bad_row_names_its_line_and_writes_nothing", tmp_path)


def case_reader_process_bad_row_names_its_line_and_writes_nothing(tmp_path: Path) -> None:
    _fork_setup()
    src = _big_focus(tmp_path, bad_at=333)
    db = tmp_path / "g.db"
    connect(db).close()
    before = dump(db)
    with pytest.raises(DataError) as err:
        _import(db, src)
    assert err.value.where == f"{src}:333" and "twelve" in err.value.message
    assert dump(db) == before
    [res] = _import(db, src, skip_bad_rows=True)                          # the rest, with the line reported
    assert res.rows == 10 * REPEAT - 1 and res.bad_lines == [333]
    assert 333 not in {r[0] for r in stored_charges(db)}


def test_glued_batches_keep_every_row_and_line_across_blocks(tmp_path: Path, small_blocks: None) -> None:
    src = _big_focus(tmp_path)
    table = reader.Table(src)
    batches = list(table.batches())
    assert len(batches) > 2 and all(b.num_rows > 0 for b in batches)
    lines = [n for b in batches for n in b.line_numbers()]
    assert lines == list(range(2, 2 + 10 * REPEAT))
    first = [pa.concat_arrays([b.columns[0] for b in batches]).to_pylist()]
    assert first == [[r[next(iter(r))] for r in csv_rows(src)]]


def test_timestamps_parsed_once_per_text_give_the_same_seconds() -> None:
    # 2026-11-12T00:00:00Z = 1794441600 (days since 1970: 20769 x 86400); one hour later + 3600.
    cells = ["2026-11-12T00:00:00Z", "2026-11-12T01:00:00Z", "NULL"] * 50
    bad: list[BadValue] = []
    assert ts_col(pa.array(cells), len(cells), "ChargePeriodStart", bad) == [1794441600, 1794445200, None] * 50
    assert bad == []
    cells[100] = "yesterday"                                             # a bad cell still names its own row
    out = ts_col(pa.array(cells), len(cells), "ChargePeriodStart", bad)
    assert [b.row for b in bad] == [100] and out[100] is None and out[99] == 1794441600


def test_coalesce_takes_the_first_present_value_per_row() -> None:
    assert coalesce([None, 1, None, None], [2, 3, None, None], [4, 5, 6, None]) == [2, 1, 6, None]
    assert coalesce([0, "", None], [9, 9, 9]) == [0, "", 9]             # falsy values are values
    assert coalesce([1, 2]) == [1, 2]


@FORK
def test_parquet_through_the_reader_process_matches_the_csv(tmp_path: Path) -> None:
    _in_a_fresh_process("case_parquet_through_the_reader_process_matches_the_csv", tmp_path)


def case_parquet_through_the_reader_process_matches_the_csv(tmp_path: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    src = FIXTURES / "aws_cur2.csv"
    pq_path = tmp_path / "cur2-00001.snappy.parquet"
    pq.write_table(pacsv.read_csv(src), pq_path)             # typed columns (timestamps, doubles)
    [a] = _import(tmp_path / "csv.db", src)
    pipeline.CHILD_MIN_ROWS = 0
    assert pipeline.usable(1), "the reader process would not be used"
    [b] = _import(tmp_path / "pq.db", pq_path)
    assert b.as_json()["periods"] == a.as_json()["periods"] and b.rows == a.rows == 3
    cols = "charge_period_start, charge_period_end, billed_cost, effective_cost, resource_id, tags, is_gpu"
    q = f"SELECT {cols} FROM charges ORDER BY charge_period_start, resource_id"
    assert sqlite3.connect(tmp_path / "pq.db").execute(q).fetchall() == \
        sqlite3.connect(tmp_path / "csv.db").execute(q).fetchall()


@FORK
def test_the_reader_process_ends_when_the_import_is_killed(tmp_path: Path) -> None:
    """kill -9 of `gpuspend import` left its reader process blocked on a full pipe forever (it held the pipe's
    read end too), an orphan holding the database files open; one more per kill."""
    import psutil

    code = (f"from pathlib import Path\nimport {__name__} as t\n"
            f"t.case_killed_mid_import(Path({str(tmp_path)!r}))\n")
    with open(tmp_path / "stderr.txt", "w") as err:     # not a pipe: an orphan would hold it open
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, timeout=300)
    assert r.returncode == -9, (tmp_path / "stderr.txt").read_text()[-3000:]
    pid = int((tmp_path / "reader.pid").read_text())
    try:
        proc = psutil.Process(pid)
        proc.wait(timeout=20)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        if proc.status() != psutil.STATUS_ZOMBIE:        # exited, not yet reaped by whoever adopted it
            proc.kill()
            raise AssertionError("the reader process outlived the killed import") from None


def case_killed_mid_import(tmp_path: Path) -> None:
    import multiprocessing
    import os
    import signal

    from gpuspend.collectors.billing import importer

    _fork_setup()
    lines = (FIXTURES / "focus_gpu.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    src = tmp_path / "focus_many.csv"
    src.write_text(lines[0] + "".join(lines[1:] * 4000), encoding="utf-8")   # 40k rows: far more than a pipe holds

    def killed(*_a: object, **_k: object) -> None:
        [child] = multiprocessing.active_children()
        (tmp_path / "reader.pid").write_text(str(child.pid))
        os.kill(os.getpid(), signal.SIGKILL)              # as `kill -9` does: no cleanup of any kind

    importer._insert_batch = killed
    _import(tmp_path / "k.db", src)
