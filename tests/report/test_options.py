"""Report options parsed as a cron user writes them; the renderers keep outside text inert."""

from __future__ import annotations

import pytest

from gpuspend import fmt, report
from gpuspend.alert_kinds import KINDS, parse_fail_on
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
    assert parse_fail_on("") == set()
    assert parse_fail_on("idle, Budget") == {"idle", "budget"}
    assert parse_fail_on("all") == set(KINDS)
    with pytest.raises(UsageError, match="'idel'"):
        parse_fail_on("idel")


def test_clean_and_markdown_escape():
    # the report writes outside text with gpuspend.fmt.clean, like every surface
    assert fmt.clean("a\x1b[2Jb\u202ec\nd") == "ab?c d"
    assert fmt.clean("x" * 10, 5) == "xxxx…"
    assert fmt.clean("x" * 10, 5, ascii=True) == "xx..."
    assert report._md("a|b*c_[d](e)") == "a\\|b\\*c\\_\\[d\\](e)"


def test_money_and_durations():
    assert fmt.money(1234.5, "USD") == "$1,234.50"
    assert fmt.money(12.0, "EUR") == "12.00 EUR"
    assert fmt.money(None, "USD") == "no rate"
    assert [fmt.duration(s) for s in (45, 900, 7500, 200000)] == ["45s", "15m", "2h05m", "2d07h"]
