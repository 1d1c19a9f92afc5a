"""`gpuspend --report` as cron runs it: golden text/markdown on demo data, JSON schema, exit codes, sampling,
hostile text, and no textual import.

Golden files live in tests/report/golden/. After an intended change to the report (or to the demo data),
regenerate them with:   GPUSPEND_UPDATE_GOLDEN=1 python -m pytest tests/report
and review the diff before committing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import jsonschema
import pytest

from gpuspend.store import connect
from tests.conftest import ROOT, run_cli
from tests.costing.builders import NOW_MS, add_gpus, add_process, add_samples, set_watermark

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = ROOT / "gpuspend" / "data" / "report.schema.json"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo database, built once for the module with the fixed clock (reports with --no-sample only
    read it; tests that write take a copy)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    env = {"GPUSPEND_NOW": "2026-11-15T12:00:00+00:00"}
    r = run_cli("--demo", "--db", str(path), "--report", "--no-sample", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    return path


def report(db: Path, *args: str, env: dict[str, str] | None = None):
    return run_cli("--db", str(db), "--report", *args, env=env)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GPUSPEND_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with GPUSPEND_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("fmt", "name"), [("text", "demo.txt"), ("markdown", "demo.md")])
def test_golden_reports_on_demo_data(demo_db, fmt, name):
    r = report(demo_db, "--demo", "--no-sample", "--format", fmt)
    assert r.returncode == 0, r.stderr
    check_golden(name, r.stdout)


def test_demo_gpus_are_priced_from_the_demo_billing(demo_db):
    """The demo imports a billing export for its p5.48xlarge: its GPUs take the billing-derived rate (the
    export's effective $55.04/h over 8 GPUs), like a real EC2 box, not the catalog."""
    doc = json.loads(report(demo_db, "--demo", "--no-sample", "--format", "json").stdout)
    assert len(doc["now"]["gpus"]) == 8
    assert {g["rate"]["source"] for g in doc["now"]["gpus"]} == {"billing"}
    assert [g["rate"]["per_gpu_hour"] for g in doc["now"]["gpus"]] == [pytest.approx(55.04 / 8)] * 8
    assert all("i-0demo0p5h100box1" in g["rate"]["label"] for g in doc["now"]["gpus"])


def test_text_is_plain_and_fits_80_columns(demo_db):
    r = report(demo_db, "--demo", "--no-sample")
    assert "\x1b" not in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    for section in ("Now (", "Today (UTC, ", "Month 2026-11", "Idle waste (window)", "Top spenders (window)",
                    "Data freshness"):
        assert f"\n{section}" in r.stdout


def test_json_matches_schema_and_is_consistent(demo_db):
    r = report(demo_db, "--demo", "--no-sample", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(doc)
    assert doc["schema_version"] == 2
    gpus = doc["now"]["gpus"]
    assert len(gpus) == 8
    assert doc["now"]["cost_per_hour"] == pytest.approx(sum(g["cost_per_hour"] for g in gpus), abs=1e-3)
    assert doc["now"]["cost_per_hour"] == pytest.approx(sum(doc["now"]["by_state"].values()), abs=1e-3)
    for m in doc["month"]:
        assert m["mtd"] == pytest.approx(m["billed"] + m["metered"], abs=1e-3)
        assert m["projection"] >= m["mtd"]
    # the demo's notebook GPU sits idle: an open episode, and "idle" is active (not failing: no --fail-on)
    assert any(e["open"] for e in doc["idle"]["episodes"])
    assert "idle" in doc["active"] and doc["failing"] == []
    assert doc["freshness"]["sampled"] is False and "--no-sample" in doc["freshness"]["sample_note"]


def test_fail_on_selected_alerts_exits_1(demo_db, tmp_path):
    r = report(demo_db, "--demo", "--no-sample", "--fail-on", "idle")
    assert r.returncode == 1 and "failing: idle" in r.stdout and r.stderr.count("Traceback") == 0
    r = report(demo_db, "--demo", "--no-sample", "--fail-on", "budget")
    assert r.returncode == 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text("budget: {monthly: 1000, currency: USD}\n")
    r = report(demo_db, "--demo", "--no-sample", "--fail-on", "budget", "--config", str(cfg), "--format", "json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["failing"] == ["budget"] and doc["month"][0]["thresholds_crossed"]


@pytest.mark.parametrize(("args", "needle"), [
    (("--fail-on", "idle,bogus"), "unknown alert kind 'bogus'"),
    (("--month", "2026-13"), "YYYY-MM"),
    (("--since", "last tuesday"), "--since"),
    (("--format", "yaml"), "yaml"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, args, needle):
    r = report(tmp_path / "x.db", "--no-sample", *args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_config_error_exits_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("idle:\n  util_pc: 5\n")
    r = run_cli("--config", str(cfg), "--db", str(tmp_path / "x.db"), "--report", "--no-sample")
    assert r.returncode == 2 and "c.yaml:2" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_corrupt_database_exits_3_and_is_left_alone(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    before = bad.read_bytes()
    r = report(bad, "--no-sample")
    assert r.returncode == 3 and r.stdout == "" and "Traceback" not in r.stderr
    assert bad.read_bytes() == before


def test_empty_database_reports_without_gpus(tmp_path):
    r = report(tmp_path / "empty.db", "--no-sample")
    assert r.returncode == 0, r.stderr
    assert "no cost data for this month" in r.stdout and "last sample: none" in r.stdout


def test_gpus_without_a_rate_are_never_totalled_as_zero(tmp_path):
    """A bare GPU box with no `provider:` or `rates:` (as a real H200 node first reports): the totals are
    unknown, said as "no rate", not $0.00; with one GPU rated, the total names the GPU left out."""
    db = tmp_path / "bare.db"
    conn = connect(db)
    ids = add_gpus(conn, 2, model="H200")
    set_watermark(conn, NOW_MS - 3600_000)
    for gid in ids:
        add_samples(conn, gid, NOW_MS - 3600_000, NOW_MS + 1, 60_000, 95.0, [])
    conn.close()
    text = report(db, "--no-sample").stdout
    assert "cost per hour: no rate" in text and "cost so far: no rate" in text and "$0.00/h" not in text
    doc = json.loads(report(db, "--no-sample", "--format", "json").stdout)
    assert doc["now"]["cost_per_hour"] is None and doc["now"]["unrated_gpus"] == 2
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert "Cost per hour: **no rate**" in report(db, "--no-sample", "--format", "markdown").stdout

    cfg = tmp_path / "c.yaml"
    cfg.write_text("rates: {per_gpu: {GPU-box1-0: 4.0}}\n")
    text = report(db, "--no-sample", "--config", str(cfg)).stdout
    assert "cost per hour: $4.00/h (+1 GPU with no rate)" in text
    doc = json.loads(report(db, "--no-sample", "--config", str(cfg), "--format", "json").stdout)
    assert doc["now"]["cost_per_hour"] == 4.0 and doc["now"]["unrated_gpus"] == 1


def test_report_never_imports_textual(tmp_path):
    code = ("import sys\nfrom gpuspend.cli import main\n"
            f"try:\n    main(['--db', {str(tmp_path / 'e.db')!r}, '--report', '--no-sample'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui', 'rich'))\n"
            "print('IMPORTED', bad, file=sys.stderr)\n")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "IMPORTED []" in r.stderr, r.stderr


def test_sampling_with_no_driver_is_skipped_and_said(tmp_path):
    r = report(tmp_path / "e.db", "--format", "json")
    assert r.returncode == 0, r.stderr
    fr = json.loads(r.stdout)["freshness"]
    assert fr["sampled"] is False and fr["sample_note"].startswith("no fresh sample")


def test_demo_takes_one_fresh_sample(demo_db, tmp_path):
    db = tmp_path / "demo.db"
    shutil.copy(demo_db, db)
    r = report(db, "--demo", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["freshness"]["sampled"] is True
    conn = connect(db)
    assert conn.execute("SELECT COUNT(*) FROM collector_lease").fetchone()[0] == 0    # lease given back
    conn.close()


def test_sampling_skipped_while_a_daemon_holds_the_lease(demo_db, tmp_path):
    db = tmp_path / "demo.db"
    shutil.copy(demo_db, db)
    conn = connect(db)
    with conn:
        conn.execute("INSERT INTO collector_lease (id, pid, host, owner, started, heartbeat, interval_s) "
                     "VALUES (1, ?, ?, 'daemon', ?, ?, 3600)", (os.getpid(), socket.gethostname(), NOW_MS, NOW_MS))
    conn.close()
    r = report(db, "--demo", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["freshness"]["sampled"] is False and "daemon" in doc["freshness"]["sample_note"]
    assert "daemon pid" in doc["freshness"]["collector"]


def test_outside_text_is_inert(tmp_path):
    db = tmp_path / "h.db"
    conn = connect(db)
    (gid,) = add_gpus(conn, 1)
    evil = add_process(conn, 666, "mallory|x", "\x1b[31mred\x1b[0m [bold]boom[/bold] | `rm` \u202e")
    set_watermark(conn, NOW_MS - 3600_000)
    add_samples(conn, gid, NOW_MS - 3600_000, NOW_MS + 1, 60_000, 0.0, [(evil, 2**30, None)])
    conn.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rates: {per_model: {H100: 2.0}}\n")
    text = report(db, "--no-sample", "--config", str(cfg))
    assert text.returncode == 0, text.stderr
    assert "\x1b" not in text.stdout and "\u202e" not in text.stdout and "[bold]boom[/bold]" in text.stdout
    md = report(db, "--no-sample", "--config", str(cfg), "--format", "markdown").stdout
    assert "mallory\\|x" in md and "\\`rm\\`" in md and "\x1b" not in md
    doc = json.loads(report(db, "--no-sample", "--config", str(cfg), "--format", "json").stdout)
    assert doc["top"]["processes"][0]["command"].startswith("red [bold]boom[/bold]")   # the escape removed whole


def test_month_option_reports_that_month(demo_db):
    r = report(demo_db, "--demo", "--no-sample", "--month", "2026-10", "--format", "json")
    assert r.returncode == 0, r.stderr
    (oct_,) = json.loads(r.stdout)["month"]
    assert oct_["month"] == "2026-10" and oct_["interval_note"] == "month closed"
    assert oct_["projection"] == oct_["mtd"] > 0


def test_prices_command(demo_db):
    r = run_cli("--demo", "--db", str(demo_db), "prices", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {p["provider"] for p in doc["prices"]} >= {"aws", "gcp", "azure", "lambda", "coreweave", "runpod"}
    assert all(p["as_of"] and p["age_days"] >= 0 for p in doc["prices"])
    assert len(doc["local_gpus"]) == 8 and doc["local_gpus"][0]["source"] == "billing"   # the demo p5's export
    text = run_cli("--demo", "--db", str(demo_db), "prices", "--model", "h100").stdout
    assert "p5.48xlarge" in text and "GPU 0 H100-SXM on gpu-demo-01: billing: i-0demo0p5h100box1 $55.04/h / 8 GPUs" in text
    assert "L4" not in text.split("\n\n")[0]


def test_a_box_without_gpus_has_no_money_today_in_json_as_in_text(tmp_path):
    """Billing only, no GPU: the text said "cost so far: no GPU" and JSON `today.cost` 0.0 (unknown is null,
    never 0, as `now.cost_per_hour` already was)."""
    db = tmp_path / "billing.db"
    assert run_cli("--db", str(db), "import", str(ROOT / "tests" / "fixtures" / "billing" / "focus_gpu.csv"),
                   ).returncode == 0
    r = report(db, "--no-sample", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["now"]["cost_per_hour"] is None
    assert doc["today"]["cost"] is None and doc["today"]["idle_waste"] is None
    jsonschema.validate(doc, json.loads((ROOT / "gpuspend" / "data" / "report.schema.json").read_text()))
    text = report(db, "--no-sample").stdout
    assert "cost so far: no GPU" in text


def test_a_month_that_has_not_started_is_refused_as_the_billing_screen_refuses_it(tmp_path):
    """`--month 2027-01` on 2026-11-15 printed a window ending before it began, "nothing observed: no GPU" beside
    an open idle episode, and exited 0."""
    db = tmp_path / "box.db"
    r = report(db, "--no-sample", "--month", "2027-01")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("gpuspend: --month 2027-01 has not started: nothing is recorded there yet (pick "
                                "2026-11 or an earlier month)")
    assert not db.exists()


def test_the_markdown_month_heading_of_an_empty_database_has_no_trailing_space(tmp_path):
    connect(tmp_path / "empty.db").close()
    r = report(tmp_path / "empty.db", "--no-sample", "--format", "markdown")
    assert r.returncode == 0, r.stderr
    assert "## Month\n" in r.stdout and "## Month \n" not in r.stdout
