"""Cell parsing: every timestamp and null spelling seen in real exports."""

from __future__ import annotations

import pyarrow as pa
import pytest

from gpuspend.collectors.billing.values import BadValue, num_col, parse_ts, tags_json, text_col, ts_col

NOV1 = 1793491200  # 2026-11-01T00:00:00Z


@pytest.mark.parametrize("text", [
    "2026-11-01T00:00:00Z", "2026-11-01T00:00:00.000Z", "2026-11-01 00:00:00", "2026-11-01 00:00:00+00:00",
    "2026-11-01 00:00:00 UTC", "11/01/2026", "11/1/2026", "11/1/26", "2026-11-01", "20261101T000000.000Z",
    "2026-10-31T17:00:00-07:00",
])
def test_timestamp_spellings_are_utc(text: str) -> None:
    assert parse_ts(text) == NOV1


def test_timestamp_column_fast_and_slow_paths_agree() -> None:
    bad: list[BadValue] = []
    fast = ts_col(pa.array(["2026-11-01 00:00:00", "NULL", ""]), 3, "X", bad)
    slow = ts_col(pa.array(["11/1/2026", "2026-11-01 00:00:00 UTC", "(null)"]), 3, "X", bad)
    assert fast == [NOV1, None, None]
    assert slow == [NOV1, NOV1, None]
    assert bad == []


def test_bad_cells_are_reported_with_their_row() -> None:
    bad: list[BadValue] = []
    ts_col(pa.array(["2026-11-01", "yesterday"]), 2, "ChargePeriodStart", bad)
    num_col(pa.array(["1.5", "12,3x"]), 2, "BilledCost", bad)
    assert [(b.row, b.column) for b in bad] == [(1, "ChargePeriodStart"), (1, "BilledCost")]


def test_null_markers_become_null() -> None:
    assert text_col(pa.array(["", "NULL", "null", "(null)", " x "]), 5) == [None, None, None, None, "x"]
    assert num_col(pa.array(["NULL", "35.2E-7"]), 2, "c", []) == [None, pytest.approx(3.52e-6)]


def test_tags_without_braces_and_label_lists() -> None:
    assert tags_json('"CostCenter": "1234","env": "prod"') == '{"CostCenter": "1234", "env": "prod"}'
    assert tags_json('[{"key": "team", "value": "llm"}]') == '{"team": "llm"}'
    assert tags_json("[]") is None
    with pytest.raises(ValueError):
        tags_json("not tags at all")


def test_a_long_repetitive_column_reads_as_its_cells_do() -> None:
    """A month's column repeats a few values (each distinct value is cleaned and parsed once): every cell still
    reads as it would alone, whitespace and null spellings included, and a bad cell is named by its own row."""
    cells = ["  EC2", "EC2", "NULL", "", "ec2 ", None, "(null)", "S3"] * 40
    want = [None if c is None or c.strip() in ("", "NULL", "(null)") else c.strip() for c in cells]
    assert text_col(pa.array(cells, pa.string()), len(cells)) == want
    times = ["2026-11-01T00:00:00Z", " 2026-11-01T00:00:00Z", "NULL", None] * 50
    bad: list[BadValue] = []
    assert ts_col(pa.array(times, pa.string()), len(times), "ChargePeriodStart", bad) == \
        [None if t is None or t == "NULL" else NOV1 for t in times]
    assert bad == []
    times[137] = "not a time"
    assert ts_col(pa.array(times, pa.string()), len(times), "ChargePeriodStart", bad)[137] is None
    assert [(b.row, b.value) for b in bad] == [(137, "not a time")]
