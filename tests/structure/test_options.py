"""Typed options per mode and a typed config.

A flag that does not apply to the chosen mode is refused (exit 2, one line, nothing done), never ignored; the
common options (--db, --config, --debug, --demo) work after a subcommand as well as before it; the config is
typed sections and its errors still say file:line:column.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspend import cli as cli_module
from gpuspend.config import BudgetConfig, Config, IdleConfig, NotifyTarget, load_config
from gpuspend.errors import ConfigError
from gpuspend.options import DashboardOptions, FleetOptions, FleetReportOptions, Options, ReportOptions
from tests.billing.helpers import FIXTURES

FLEET = "http://127.0.0.1:9"   # never asked: the refusal comes first

REFUSED = [
    (["--report", "--ascii"], "--ascii", "--report"),
    (["--report", "--interval", "2"], "--interval", "--report"),
    (["--report", "--color-system", "256"], "--color-system", "--report"),
    (["--report", "--fleet", FLEET, "--since", "24h"], "--since", "--report --fleet"),
    (["--report", "--fleet", FLEET, "--month", "2026-11"], "--month", "--report --fleet"),
    (["--report", "--fleet", FLEET, "--no-sample"], "--no-sample", "--report --fleet"),
    (["--report", "--fleet", FLEET, "--notify"], "--notify", "--report --fleet"),
    (["--fleet", FLEET, "--ascii"], "--ascii", "--fleet"),
    (["--fleet", FLEET, "--format", "json"], "--format", "--fleet"),
    (["--format", "json"], "--format", "the dashboard"),
    (["--fail-on", "idle"], "--fail-on", "the dashboard"),
    (["--notify"], "--notify", "the dashboard"),
    (["--report", "doctor"], "--report", "gpuspend doctor"),
    (["--interval", "3", "collect", "--once"], "--interval", "gpuspend collect"),
]


@pytest.mark.parametrize(("args", "flag", "mode"), REFUSED, ids=[" ".join(a) for a, _, _ in REFUSED])
def test_a_flag_the_mode_does_not_use_is_refused_in_one_line(cli, tmp_path: Path, args: list[str], flag: str,
                                                             mode: str) -> None:
    db = tmp_path / "untouched.db"
    full = args if "--fleet" in args else ["--db", str(db), *args]
    r = cli(*full)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"gpuspend: {flag} does not apply to ")
    assert mode in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert not db.exists()          # refused before anything was read, sampled or written


def test_each_mode_gets_its_own_typed_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import gpuspend.fleet
    import gpuspend.report

    seen: list[Options] = []
    monkeypatch.setattr(gpuspend.report, "run_report", lambda opts: seen.append(opts) or 0)
    monkeypatch.setattr(gpuspend.fleet, "run_fleet_report", lambda opts: seen.append(opts) or 0)
    for argv in (["--report", "--format", "json", "--since", "24h", "--no-sample", "--db", "x.db"],
                 ["--report", "--fleet", FLEET, "--fail-on", "idle", "--format", "markdown"]):
        with pytest.raises(SystemExit) as exc:
            cli_module.main(argv)
        assert exc.value.code == 0
    report, fleet = seen
    assert type(report) is ReportOptions
    assert (report.fmt, report.since, report.no_sample, report.db, report.notify) == ("json", "24h", True, "x.db",
                                                                                      False)
    assert type(fleet) is FleetReportOptions
    assert (fleet.fleet_url, fleet.fail_on, fleet.fmt) == (FLEET, "idle", "markdown")
    assert not hasattr(report, "extra") and not hasattr(fleet, "since")
    assert {"interval", "ascii_only", "color_system"} <= set(DashboardOptions.__dataclass_fields__)
    assert set(FleetOptions.__dataclass_fields__) - set(Options.__dataclass_fields__) == {"fleet_url", "interval"}


def test_doctor_demo_after_the_subcommand(cli, tmp_path: Path) -> None:
    r = cli("doctor", "--demo", "--db", str(tmp_path / "d.db"))
    assert r.returncode == 0, r.stderr
    assert "demo mode" in r.stdout and "8 simulated GPUs" in r.stdout
    # doctor never creates an empty database as a side effect (issue 17)
    assert f"{tmp_path / 'd.db'} does not exist yet" in r.stdout and not (tmp_path / "d.db").exists()


def test_collect_config_and_prices_db_after_the_subcommand(cli, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    cfg = tmp_path / "gpuspend.yaml"
    cfg.write_text("interval: 1\n")
    r = cli("collect", "--config", str(cfg), "--once", "--demo", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert f"8 GPU samples written to {db}" in r.stdout
    # the same options before the subcommand mean the same
    before = cli("--config", str(cfg), "--demo", "--db", str(db), "collect", "--once")
    assert before.returncode == 0 and f"written to {db}" in before.stdout, before.stderr
    doctor = cli("doctor", "--config", str(cfg), "--demo", "--db", str(db))
    assert f"{cfg} parses" in doctor.stdout, doctor.stderr

    r = cli("prices", "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "GPU 0 H100-SXM on gpu-demo-01" in r.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("idle:\n  after: soon\n")
    r = cli("collect", "--config", str(bad), "--once", "--demo", "--db", str(db))
    assert r.returncode == 2
    assert r.stderr.strip() == (f"gpuspend: {bad}:2:10: idle.after: expected a duration like 30s, 15m, 4h, 7d, "
                                "got 'soon'")


def test_import_debug_after_the_subcommand(cli, tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    r = cli("import", "--debug", str(FIXTURES / "focus_gpu.csv"), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "imported" in r.stdout and db.exists()
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    quiet = cli("import", str(junk), "--db", str(db))
    loud = cli("import", str(junk), "--debug", "--db", str(db))
    assert quiet.returncode == 3 and len(quiet.stderr.strip().splitlines()) == 1
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_config_is_typed_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("idle:\n  after: 10m\nbudget:\n  monthly: 5000\nnotify:\n  targets:\n"
                    "    - kind: slack\n      url: https://hooks.example/x\nclouds:\n  lambda:\n    api_key: k\n")
    cfg = load_config(path)
    assert isinstance(cfg, Config) and isinstance(cfg.idle, IdleConfig) and isinstance(cfg.budget, BudgetConfig)
    assert cfg.idle.after == 600.0 and cfg.idle.util_pct == 5.0 and cfg.budget.monthly == 5000.0
    assert isinstance(cfg.notify.targets[0], NotifyTarget) and cfg.notify.targets[0].retries == 3
    assert cfg.clouds.lambda_.api_key == "k" and cfg.clouds["lambda"]["api_key"] == "k"   # YAML keys read too
    assert cfg.path == path and cfg.has_secrets
    assert Config().idle == IdleConfig()


@pytest.mark.parametrize(("text", "where", "message"), [
    ("idle:\n  util_pct: high\n", "2:13", "idle.util_pct: expected a number, got 'high'"),
    ("budget:\n  tresholds: [50]\n", "2:3", "unknown key 'budget.tresholds' (did you mean 'budget.thresholds'?)"),
    ("tui:\n  ascii: maybe\n", "2:10", "tui.ascii: expected true or false"),
])
def test_typed_config_errors_keep_file_line_column(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.line() == f"{path}:{where}: {message}"


def test_a_config_error_through_the_report_is_one_line(cli, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("alerts:\n  repeat: often\n")
    r = cli("--config", str(path), "--db", str(tmp_path / "r.db"), "--report", "--no-sample")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"gpuspend: {path}:2:11: alerts.repeat: expected a duration like 30s, 15m, 4h, 7d, got 'often'"]
