"""`gpuspend doctor` (issue 17): notify targets checked without sending, data age, billing coverage, no database
created as a side effect, and the secrets warning only for secrets written in the file."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from pytest_httpserver import HTTPServer

from tests.conftest import run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctor_does_not_create_a_database(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "never.db"
    r = run_cli("doctor", "--db", str(db))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{db} does not exist yet" in r.stdout
    assert not db.exists() and not db.parent.exists()


def test_doctor_checks_notify_targets_without_sending(tmp_path: Path, httpserver: HTTPServer) -> None:
    dead = _free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("notify:\n  targets:\n"
                   f"    - name: team\n      kind: webhook\n      url: {httpserver.url_for('/hook/SECRETPATH')}\n"
                   f"    - name: gone\n      kind: slack\n      url: http://127.0.0.1:{dead}/services/SECRET2\n",
                   encoding="utf-8")
    os.chmod(cfg, 0o600)
    r = run_cli("--config", str(cfg), "doctor", "--db", str(tmp_path / "g.db"))
    lines = r.stdout.splitlines()
    assert any(ln.startswith("ok") and "team (webhook)" in ln and f":{httpserver.port} reachable" in ln
               and "nothing sent" in ln for ln in lines), r.stdout
    assert any(ln.startswith("FAIL") and "gone (slack)" in ln and "not reachable" in ln for ln in lines), r.stdout
    assert r.returncode == 2                          # a target that cannot be reached is a failed check
    assert len(httpserver.log) == 0                   # nothing was sent
    assert "SECRETPATH" not in r.stdout and "SECRET2" not in r.stdout   # a webhook's path is its secret


def test_doctor_says_data_age_and_billing_coverage(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    env = {"GPUSPEND_NOW": "2026-11-15T12:00:00+00:00"}
    assert run_cli("--demo", "--db", str(db), "--report", "--no-sample", "--format", "json", env=env).returncode == 0
    r = run_cli("doctor", "--demo", "--db", str(db), env={"GPUSPEND_NOW": "2026-11-15T12:10:00+00:00"})
    lines = r.stdout.splitlines()
    # the demo's last sample is at 12:00; its export covers up to 2026-11-14 00:00 (1 day 12 h 10 min before)
    assert any(ln.startswith("warn") and "last sample 10m" in ln and "collector running?" in ln
               for ln in lines), r.stdout
    assert any("billing" in ln and "covered up to 2026-11-14 00:00 UTC (1d12h ago)" in ln for ln in lines), r.stdout


def test_secrets_warning_only_for_literal_secrets(tmp_path: Path) -> None:
    refs = tmp_path / "refs.yaml"
    refs.write_text("notify:\n  targets:\n    - kind: slack\n      url: ${P17_SLACK_URL}\n"
                    "clouds:\n  lambda:\n    api_key: ${P17_LAMBDA_KEY}\n", encoding="utf-8")
    os.chmod(refs, 0o644)
    env = {"P17_SLACK_URL": "http://127.0.0.1:9/services/x", "P17_LAMBDA_KEY": "k"}
    r = run_cli("--config", str(refs), "doctor", "--db", str(tmp_path / "x.db"), env=env)
    assert "holds secrets" not in r.stderr + r.stdout
    literal = tmp_path / "literal.yaml"
    literal.write_text("clouds:\n  lambda:\n    api_key: inline-key\n", encoding="utf-8")
    os.chmod(literal, 0o644)
    assert stat.S_IMODE(literal.stat().st_mode) & stat.S_IROTH
    r = run_cli("--config", str(literal), "doctor", "--db", str(tmp_path / "x.db"))
    assert "holds secrets but is readable by other users" in r.stderr


def test_doctor_fails_a_database_from_a_newer_gpuspend(tmp_path: Path) -> None:
    """Every other command refuses such a database (exit 3); doctor said `ok database writable`, exit 0."""
    import sqlite3

    db = tmp_path / "newer.db"
    r = run_cli("--db", str(db), "collect", "--demo", "--once")
    assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    r = run_cli("doctor", "--db", str(db))
    assert r.returncode == 2
    [line] = [ln for ln in r.stdout.splitlines() if " database " in ln]
    assert line.startswith("FAIL") and "schema v999 is newer than this gpuspend understands" in line
    assert run_cli("--db", str(db), "--report", "--no-sample").returncode == 3


def test_doctor_without_nvml_does_not_send_a_new_user_to_commands_that_cannot_sample(tmp_path: Path, monkeypatch,
                                                                                     capsys) -> None:
    """No driver: doctor said "no GPU samples yet (`gpuspend collect` or the dashboard takes them)", and
    `collect` then exits 2 on the same missing library."""
    import sys

    import pynvml
    import pytest

    from gpuspend import cli
    from tests.fake_pynvml import FakeNvml

    db = tmp_path / "billing.db"
    assert run_cli("--db", str(db), "import", str(Path(__file__).parent / "fixtures" / "billing" / "aws_cur2.csv")
                   ).returncode == 0
    fake = FakeNvml([])
    fake.init_error = pynvml.NVMLError_LibraryNotFound
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--db", str(db)])
    [line] = [ln for ln in capsys.readouterr().out.splitlines() if " data " in ln]
    assert "nothing here can take them without NVML" in line and "`gpuspend collect`" not in line
