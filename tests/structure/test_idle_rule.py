"""One home per rule: the idle boundary, alert kinds / --fail-on, and a MIG slice's rate.

Each test pins what used to disagree between surfaces: a GPU at exactly `idle.util_pct` (idle locally, busy in the
fleet's dcgm view), `--fail-on idel` (exit 2 locally, 0 with --fleet), and a MIG slice ($6.88/h in
`gpuspend prices`, "counted on the physical GPU" in the report).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gpuspend import costing, fleet, idle
from gpuspend.config import load_config
from gpuspend.store import connect, transaction
from tests.conftest import run_cli
from tests.costing.builders import HOUR, MIN, NOW_MS, add_gpus, add_samples, set_watermark

THRESHOLD = 5.0


def _cfg(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path, load_config(path)


# -- the idle boundary ---------------------------------------------------------------------------------------------
def test_the_boundary_is_at_or_below_the_threshold():
    assert idle.is_idle(THRESHOLD, THRESHOLD) and idle.is_idle(0.0, THRESHOLD)
    assert not idle.is_idle(THRESHOLD + 0.01, THRESHOLD) and not idle.is_idle(None, THRESHOLD)
    assert idle.sample_state(THRESHOLD, False, THRESHOLD) == "free-idle"
    assert idle.sample_state(THRESHOLD, True, THRESHOLD) == "held-idle"
    assert idle.sample_state(THRESHOLD + 0.01, True, THRESHOLD) == "busy"
    import sqlite3

    with sqlite3.connect(":memory:") as db:                   # the SQL form reads the same boundary
        for util in (THRESHOLD - 1, THRESHOLD, THRESHOLD + 0.01):
            db.execute("DROP TABLE IF EXISTS s")
            db.execute("CREATE TABLE s (u REAL)")
            db.execute("INSERT INTO s VALUES (?)", (util,))
            busy = db.execute(f"SELECT {idle.busy_sql('u')} FROM s", (THRESHOLD,)).fetchone()[0]
            assert bool(busy) == (not idle.is_idle(util, THRESHOLD))


def _local_state(tmp_path, util: float) -> str:
    _, cfg = _cfg(tmp_path, f"idle: {{util_pct: {THRESHOLD:g}}}\nrates: {{per_model: {{H100: 2.0}}}}\n")
    conn = connect(tmp_path / "local.db")
    try:
        (gid,) = add_gpus(conn, 1)
        start = NOW_MS - 20 * MIN
        add_samples(conn, gid, start, NOW_MS, 2000, util)
        set_watermark(conn, start)
        snap = costing.build_snapshot(conn, cfg, NOW_MS)
    finally:
        conn.close()
    (g,) = snap.gpus
    return g.state


def _dcgm_view(tmp_path, util: float) -> tuple[fleet.FleetGpu, list[str]]:
    """fetch_fleet over an in-process Prometheus answer holding one dcgm-exporter GPU at `util`."""
    _, cfg = _cfg(tmp_path, f"idle: {{util_pct: {THRESHOLD:g}}}\nrates: {{per_model: {{H100: 2.0}}}}\n")
    labels = {"Hostname": "dcgm-node", "gpu": "0", "UUID": "GPU-dcgm-0", "modelName": "NVIDIA H100 80GB HBM3"}
    queries: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        q = parse_qs(urlsplit(str(request.url)).query)["query"][0]
        queries.append(q)
        result = []
        if q == fleet.Q_DCGM:
            result = [{"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", **labels}, "value": [0, f"{util:g}"]}]
        elif q.startswith("max_over_time(DCGM_FI_DEV_GPU_UTIL"):
            result = [{"metric": labels, "value": [0, f"{util:g}"]}]
        body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        view = fleet.fetch_fleet("http://prometheus.test:9090", cfg, client=client)
    (node,) = view.nodes
    (g,) = node.gpus
    return g, queries


def test_util_exactly_at_the_threshold_is_idle_locally_and_for_a_dcgm_node(tmp_path):
    local = _local_state(tmp_path, THRESHOLD)
    remote, queries = _dcgm_view(tmp_path, THRESHOLD)
    assert local in idle.IDLE_STATES
    assert remote.source == "dcgm" and remote.idle and remote.state == "idle"
    assert remote.episode_open            # highest utilisation over idle.after is at the threshold too
    # the idle minutes Prometheus counts use the same boundary
    assert any("DCGM_FI_DEV_GPU_UTIL <= 5)" in q for q in queries), queries
    assert not any("< 5" in q for q in queries), queries


def test_util_just_above_the_threshold_is_busy_on_both(tmp_path):
    assert _local_state(tmp_path, THRESHOLD + 0.5) == "busy"
    remote, _ = _dcgm_view(tmp_path, THRESHOLD + 0.5)
    assert not remote.idle and remote.state == "busy"


# -- alert kinds and --fail-on -------------------------------------------------------------------------------------
@pytest.mark.parametrize("fleet_mode", [False, True], ids=["local", "fleet"])
def test_an_unknown_fail_on_kind_is_a_usage_error_locally_and_for_the_fleet(tmp_path, fleet_mode):
    # port 9 (discard) on loopback: nothing answers, so a report that asked Prometheus would exit 3
    where = ("--fleet", "http://127.0.0.1:9") if fleet_mode else ("--no-sample", "--db", str(tmp_path / "x.db"))
    r = run_cli("--report", "--fail-on", "idel", *where)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "idel" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""                 # refused before any report (or Prometheus query) is made


def test_both_reports_parse_fail_on_with_the_one_parser():
    from gpuspend import alert_kinds, report

    assert report.parse_fail_on is alert_kinds.parse_fail_on is fleet.parse_fail_on
    assert alert_kinds.parse_fail_on("all") == set(alert_kinds.KINDS)


# -- a MIG slice's rate --------------------------------------------------------------------------------------------
def _mig_store(tmp_path):
    path = tmp_path / "mig.db"
    conn = connect(path)
    try:
        (parent,) = add_gpus(conn, 1)
        with transaction(conn):
            conn.execute("INSERT INTO gpus (uuid, host, idx, name, model, parent_id, mig_gi, source, first_seen, "
                         "last_seen) VALUES ('MIG-slice-1', 'box1', 0, 'NVIDIA H100 80GB HBM3 MIG 1g.10gb', "
                         "'H100', ?, 1, 'nvml', ?, ?)", (parent, NOW_MS - HOUR, NOW_MS))
    finally:
        conn.close()
    return path


def test_a_mig_slice_has_the_same_rate_in_prices_and_in_the_report(tmp_path):
    db = _mig_store(tmp_path)
    cfg_path, _ = _cfg(tmp_path, "provider: aws\n")
    prices = run_cli("--db", str(db), "--config", str(cfg_path), "prices", "--json")
    assert prices.returncode == 0, prices.stderr
    by_uuid = {g["uuid"]: g for g in json.loads(prices.stdout)["local_gpus"]}
    rep = run_cli("--report", "--format", "json", "--no-sample", "--db", str(db), "--config", str(cfg_path))
    assert rep.returncode in (0, 1), rep.stderr
    report_rates = {g["uuid"]: g["rate"] for g in json.loads(rep.stdout)["now"]["gpus"]}
    slice_p, slice_r = by_uuid["MIG-slice-1"], report_rates["MIG-slice-1"]
    # the physical GPU is what is paid for: the slice has no money of its own, and says where it is counted
    assert slice_p["per_gpu_hour"] is None and slice_r["per_gpu_hour"] is None
    assert slice_p["label"] == slice_r["label"] and "physical GPU" in slice_p["label"]
    assert (slice_p["source"], slice_r["source"]) == ("none", "none")
    # the physical GPU is priced the same on both surfaces
    parent_p, parent_r = by_uuid["GPU-box1-0"], report_rates["GPU-box1-0"]
    assert parent_p["per_gpu_hour"] is not None and parent_p["per_gpu_hour"] == pytest.approx(parent_r["per_gpu_hour"])
