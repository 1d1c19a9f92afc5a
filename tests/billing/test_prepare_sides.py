"""A batch is prepared for the insert (collectors/billing/prepared.py) by the reader process when the importing
process has no slack, else by the importing process: either way the same rows, lines, totals and bad lines are
stored as by the plain thread path. A large file's reader starts before the file is hashed: an unchanged
re-import stops it and leaves no process behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gpuspend.collectors.billing import pipeline, reader
from gpuspend.store import connect
from tests.billing.helpers import stored_charges
from tests.billing.test_import_pipeline import _big_focus, _import, _in_a_fresh_process

FORK = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reader process is used on Linux only")


@FORK
def test_either_side_prepares_the_same_rows(tmp_path: Path) -> None:
    _in_a_fresh_process("case_either_side_prepares_the_same_rows", tmp_path, __name__)


def case_either_side_prepares_the_same_rows(tmp_path: Path) -> None:
    reader.BLOCK_SIZE, reader.BATCH_BYTES = 4096, 16384          # many batches
    for bad_at in (None, 57):
        src = _big_focus(tmp_path, bad_at=bad_at)
        kw = {"skip_bad_rows": bad_at is not None}
        pipeline.CHILD_MIN_ROWS = 10**12
        [plain] = _import(tmp_path / f"thread{bad_at}.db", src, **kw)
        pipeline.CHILD_MIN_ROWS = 0
        assert pipeline.usable(1)
        for side, behind_s in (("child", -1.0), ("parent", 1e9)):
            pipeline.BEHIND_S = behind_s          # -1: every handover counts as waited (child prepares)
            db = tmp_path / f"{side}{bad_at}.db"
            [res] = _import(db, src, **kw)
            assert res.as_json() == plain.as_json(), side
            assert stored_charges(db) == stored_charges(tmp_path / f"thread{bad_at}.db"), side
            if bad_at is not None:
                assert res.bad_lines == [bad_at] and res.skipped_rows == 1


@FORK
def test_an_unchanged_large_file_stops_its_early_reader(tmp_path: Path) -> None:
    _in_a_fresh_process("case_an_unchanged_large_file_stops_its_early_reader", tmp_path, __name__)


def case_an_unchanged_large_file_stops_its_early_reader(tmp_path: Path) -> None:
    import multiprocessing

    reader.BLOCK_SIZE, reader.BATCH_BYTES = 4096, 16384
    pipeline.CHILD_MIN_ROWS = 0
    src = _big_focus(tmp_path)
    db = tmp_path / "g.db"
    [first] = _import(db, src)
    assert first.status == "imported" and not multiprocessing.active_children()
    started: list[object] = []
    real = pipeline.ReaderProcess.__init__

    def spy(self, *a, **k) -> None:
        started.append(self)
        real(self, *a, **k)

    pipeline.ReaderProcess.__init__ = spy
    [again] = _import(db, src)
    assert again.status == "unchanged" and again.rows == first.rows
    assert len(started) == 1, "the reader was not started before hashing"
    assert not multiprocessing.active_children()
    conn = connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == first.rows
    finally:
        conn.close()
