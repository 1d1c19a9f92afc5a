"""Report options parsed as a cron user writes them; the renderers keep outside text inert."""

from __future__ import annotations

import pytest

from gpuspend import report
from gpuspend.errors import UsageError
from tests.costing.builders import NOW_MS


def test_since_accepts_durations_dates_and_times():
    assert report.parse_since(None, NOW_MS) == NOW_MS - 86_400_000
    assert report.parse_since("6h", NOW_MS) == NOW_MS - 6 * 3600_000
    assert report.parse_since("2026-11-15", NOW_MS) == NOW_MS - 12 * 3600_000
    assert report.parse_since("2026-11-15T10:00", NOW_MS) == NOW_MS - 2 * 3600_000
    assert report.parse_since("2026-11-15T11:00+01:00", NOW_MS) == NOW_MS - 2 * 3600_000
    with pytest.raises(UsageError, match="future"):
        report.parse_since("2026-12-01", NOW_MS)


def test_fail_on_kinds():
    assert report.parse_fail_on("") == set()
    assert report.parse_fail_on("idle, Budget") == {"idle", "budget"}
    assert report.parse_fail_on("all") == set(report.FAIL_KINDS)
    with pytest.raises(UsageError, match="'idel'"):
        report.parse_fail_on("idel")


def test_clean_and_markdown_escape():
    assert report.clean("a\x1b[2Jb\u202ec\nd") == "a?[2Jb?c?d"
    assert report.clean("x" * 10, 5) == "xxxx~"
    assert report._md("a|b*c_[d](e)") == "a\\|b\\*c\\_\\[d\\](e)"


def test_money_and_durations():
    assert report.money(1234.5, "USD") == "$1,234.50"
    assert report.money(12.0, "EUR") == "12.00 EUR"
    assert report.money(None, "USD") == "n/a"
    assert [report.dur(s) for s in (45, 900, 7500, 200000)] == ["45s", "15m", "2h05m", "2d7h"]
