"""`--demo` never replaces a real database, and a plain `--report` never delivers a notification."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tests.conftest import ROOT, run_cli

FOCUS = ROOT / "tests" / "fixtures" / "billing" / "focus_gpu.csv"
HOOK = "/services/T0/B0/neverFromReport"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _billing_db(tmp_path: Path) -> Path:
    db = tmp_path / "billing.db"
    r = run_cli("--db", str(db), "import", str(FOCUS))
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def _charges(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT COUNT(*) FROM charges").fetchone()[0]


def test_demo_refuses_a_database_of_imported_billing_and_leaves_it_as_it_was(tmp_path):
    db = _billing_db(tmp_path)
    before, rows = _sha(db), _charges(db)
    assert rows > 0
    for args, env in ((("--demo", "--db", str(db), "--report"), None),
                      (("--demo", "--report"), {"GPUSPEND_DB": str(db)}),
                      (("collect", "--demo", "--once", "--db", str(db)), None)):
        r = run_cli(*args, env=env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"--demo: {db} holds other data, not the demo" in lines[0]
        assert "pass another --db" in lines[0]
        assert _sha(db) == before and _charges(db) == rows


def test_demo_refuses_a_file_that_is_not_a_database(tmp_path):
    notes = tmp_path / "notes.db"
    notes.write_text("my notes, not SQLite\n")
    r = run_cli("--demo", "--db", str(notes), "--report")
    assert r.returncode == 2 and "is not a gpuspend demo database" in r.stderr
    assert notes.read_text() == "my notes, not SQLite\n"


def test_demo_database_is_marked_and_reused(tmp_path):
    db = tmp_path / "demo.db"
    first = run_cli("--demo", "--db", str(db), "--report", "--no-sample")
    assert first.returncode in (0, 1), first.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'demo.database'").fetchone() == ("1",)
    again = run_cli("--demo", "--db", str(db), "--report", "--no-sample")
    assert again.returncode == first.returncode, again.stderr


def test_report_without_notify_sends_nothing_even_with_a_fresh_sample(tmp_path, httpserver):
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("notify:\n  targets:\n    - name: team\n      kind: slack\n      url: ${HOOK_URL}\n"
                   "budget:\n  monthly: 20000\n  thresholds: [80]\n  basis: [forecast]\n")
    cfg.chmod(0o600)
    env = {"HOOK_URL": httpserver.url_for(HOOK)}
    base = ("--demo", "--db", str(tmp_path / "demo.db"), "--config", str(cfg), "--report")
    # the fresh sample runs through the real collector: it used to run the alerts task, which delivered
    plain = run_cli(*base, env=env)
    assert plain.returncode in (0, 1), plain.stderr
    assert httpserver.log == []
    with sqlite3.connect(tmp_path / "demo.db") as c:
        assert c.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 0
    notified = run_cli(*base, "--notify", env=env)
    assert notified.returncode == plain.returncode, notified.stderr
    assert len(httpserver.log) >= 1                           # only --notify delivers


def test_demo_collector_never_writes_simulated_gpus_into_real_samples(tmp_path):
    from gpuspend.collectors.reading import GpuReading, Reading
    from gpuspend.collectors.sampler import Sampler
    from gpuspend.store import connect

    db = tmp_path / "node.db"
    conn = connect(db)
    gpu = GpuReading(uuid="GPU-real-0", index=0, name="NVIDIA H100 80GB HBM3", memory_total=80 << 30, util=50.0,
                     mem_used=1 << 30, power=300.0, processes=[])
    Sampler(conn).write(Reading(ts_ms=1794744000000, host="node-7", source="nvml", gpus=[gpu]))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = _sha(db)
    r = run_cli("collect", "--demo", "--once", "--db", str(db))
    assert r.returncode == 2 and "holds other data, not the demo" in r.stderr, r.stderr
    assert _sha(db) == before


def test_simulated_history_alone_may_become_a_demo_database(tmp_path):
    from gpuspend.collectors.simulated import generate_history
    from gpuspend.store import connect

    db = tmp_path / "sim.db"
    conn = connect(db)
    generate_history(conn, 1794744000000 - 3600_000, 1794744000000, 42)
    conn.close()
    r = run_cli("collect", "--demo", "--once", "--db", str(db))
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT value FROM meta WHERE key = 'demo.database'").fetchone() == ("1",)


def _demo_db(tmp_path: Path) -> Path:
    db = tmp_path / "was-empty.db"          # a new --db given to --demo becomes a demo database
    r = run_cli("collect", "--demo", "--once", "--db", str(db))
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db


def test_an_import_without_demo_is_refused_by_a_demo_database(tmp_path):
    """Real billing imported into the demo's file was summed with the demo's simulated month, unmarked."""
    db = _demo_db(tmp_path)
    before = _sha(db)
    r = run_cli("import", str(FOCUS), "--db", str(db))
    assert r.returncode == 2
    assert f"{db} is a demo database (made by --demo): its GPUs and billing are simulated" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert _sha(db) == before
    assert run_cli("--demo", "import", str(FOCUS), "--db", str(db)).returncode == 0     # said as meant


def test_a_real_collector_is_refused_by_a_demo_database(tmp_path):
    from gpuspend.collectors.simulated import SimulatedSource
    from gpuspend.config import load_config
    from gpuspend.daemon import Collector
    from gpuspend.errors import UsageError

    db = _demo_db(tmp_path)
    before = _sha(db)
    try:
        with Collector(db, load_config(), demo=False, source=SimulatedSource()):
            raise AssertionError("a real collector opened a demo database")
    except UsageError as exc:
        assert "is a demo database" in exc.message and "this box's GPUs" in exc.message
    assert _sha(db) == before
