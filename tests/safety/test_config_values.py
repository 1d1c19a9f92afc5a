"""Every config value is validated: one line with file:line:column, exit 2, no traceback, nothing written."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_cli

BAD = [
    ("interval: -1\n", "1:11", "interval: must be at least 0.1, got -1"),          # used to busy-loop
    ("interval: 0\n", "1:11", "interval: must be at least 0.1, got 0"),
    ("interval: .nan\n", "1:11", "interval: expected a finite number, got nan"),
    ("interval: .inf\n", "1:11", "interval: expected a finite number, got inf"),
    ("alerts:\n  repeat: .inf\n", "2:11", "alerts.repeat: expected a finite number, got inf"),
    ("idle:\n  util_pct: 150\n", "2:13", "idle.util_pct: must be at most 100, got 150"),
    ("budget:\n  thresholds: [50, -3]\n", "2:20", "budget.thresholds: must be greater than 0, got -3"),
    ("budget:\n  basis: [actuals]\n", "2:11", "budget.basis: unknown value 'actuals' (did you mean 'actual'?"),
    ("notify:\n  targets:\n    - kind: slak\n      url: http://127.0.0.1:9/x\n", "3:13",
     "notify.targets[0].kind: unknown value 'slak' (did you mean 'slack'? use slack, ntfy, webhook)"),
    ("notify:\n  targets:\n    - kind: webhook\n      kinds: [idel]\n      url: http://127.0.0.1:9/x\n", "4:15",
     "notify.targets[0].kinds: unknown value 'idel'"),
    ('host: "node\\x1b[31m"\n', "1:7", "host: contains control characters"),
    ("host: a\x01b\n", "1:8", "control character '\\x01' in the file"),
    ("x: " + "[" * 3000 + "]" * 3000 + "\n", "1:35", "nested more than 32 levels deep"),
    # YAML keeps the last of two keys silently: a budget of 100 became one of 100000, --fail-on budget green
    ("budget:\n  monthly: 100\n  monthly: 100000\n", "3:3", "'budget.monthly' is set twice in one mapping"),
    ("budget:\n  monthly: 100\nbudget:\n  monthly: 5\n", "3:1", "'budget' is set twice in one mapping"),
    ("rates:\n  per_model:\n    H100: 2.5\n    H100: 3\n", "4:5", "'rates.per_model.H100' is set twice in one mapping"),
]


@pytest.mark.parametrize(("text", "where", "message"), BAD, ids=[m[:30] for _, _, m in BAD])
def test_bad_value_is_one_line_with_file_line_column_and_exit_2(tmp_path, text, where, message):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    db = tmp_path / "box.db"
    r = run_cli("--config", str(cfg), "--db", str(db), "--report", "--no-sample")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"gpuspend: {cfg}:{where}: ") or f"{cfg}:{where}: " in lines[0], lines[0]
    assert message in lines[0]
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", r.stderr)       # the bad bytes are never echoed raw
    assert not db.exists()                                              # refused before the database


def test_collector_refuses_a_negative_interval_instead_of_busy_looping(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("interval: -1\n")
    r = run_cli("--config", str(cfg), "--db", str(tmp_path / "box.db"), "collect", "--demo", timeout=30)
    assert r.returncode == 2 and f"{cfg}:1:11: interval: must be at least 0.1" in r.stderr
    assert not (tmp_path / "box.db").exists()


def test_doctor_does_not_say_parses_for_an_unknown_target_kind(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("notify:\n  targets:\n    - kind: slak\n      url: http://127.0.0.1:9/x\n")
    r = run_cli("--config", str(cfg), "--db", str(tmp_path / "box.db"), "doctor", "--demo")
    assert r.returncode == 2
    config_lines = [line for line in r.stdout.splitlines() if " config " in f" {line[6:17]} "]
    assert config_lines and config_lines[0].startswith("FAIL")
    assert "parses" not in r.stdout
    assert f"{cfg}:3:13: notify.targets[0].kind: unknown value 'slak'" in config_lines[0]


def test_good_values_still_load(tmp_path):
    from gpuspend.config import load_config

    cfg = tmp_path / "config.yaml"
    cfg.write_text("interval: 0.5\nidle:\n  util_pct: 0\nnotify:\n  targets:\n    - kind: ntfy\n      topic: t\n"
                   "      kinds: [idle, stale]\n")
    c = load_config(cfg)
    assert c.interval == 0.5 and c.idle.util_pct == 0.0
