"""Money by workload on the fake node: each workload's cost and idle cost worked out by hand, allocated-idle
GPUs charged to their holder, and the lines plus `unattributed` equal to the node total to the cent, from raw
samples and from rollups alike."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from gpuspend import costing, rollup
from gpuspend.collectors.nvml import NvmlSource
from gpuspend.collectors.sampler import Sampler
from gpuspend.config import load_config
from gpuspend.costing.workloads import group_by, workload_attribution
from gpuspend.store import connect
from tests.conftest import FIXED_NOW_S, ROOT, run_cli
from tests.workloads.conftest import HOST, IDLE_CONTAINER, Node
from tests.workloads.fakes import HEX_A, KERNEL, POD_UID

NOW = FIXED_NOW_S * 1000
STEP = 2000
TICKS = 300                   # 10 minutes of 2 s samples, the last one 2 s before now


def _collect(node: Node, tmp_path: Path, db: Path):
    p = tmp_path / "c.yaml"
    p.write_text(node.config_text)
    cfg = load_config(p)
    src = NvmlSource(HOST, nvml=node.fake.module, workloads=cfg.workloads).open()
    conn = connect(db)
    s = Sampler(conn)
    for i in range(TICKS):
        s.write(src.read(NOW - (TICKS - i) * STEP))
    return conn, cfg, p


def _by_kind(split) -> dict[tuple[str, str], tuple]:
    return {(r.kind, r.id): (r.cost, r.idle_waste, r.gpu_hours, r.name, r.namespace, r.owner) for r in split.rows}


@pytest.mark.parametrize("rolled", [False, True])
def test_each_workload_and_unattributed_add_up_to_the_node(node: Node, tmp_path: Path, db_path: Path,
                                                            rolled: bool) -> None:
    conn, cfg, _ = _collect(node, tmp_path, db_path)
    if rolled:
        rollup.roll_up(conn, interval_s=2.0, now_ms=NOW)
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn), NOW)
    split = workload_attribution(conn, cfg, rates, NOW - 3600_000, NOW + 1, NOW)
    got = _by_kind(split)
    # $3.60/GPU-h = $0.001 a second; every GPU was covered 600 s (300 samples x 2 s): $0.60 each, $4.80 node
    busy = (0.6, 0.0, round(600 / 3600, 4))
    idle = (0.6, 0.6, round(600 / 3600, 4))
    assert got[("docker", HEX_A)][:4] == (*busy, "llm-serve")
    assert got[("k8s-pod", POD_UID)][:5] == (*busy, "trainer-7d9f", "ml-team")
    assert got[("slurm-job", "1392969")][:6] == (*busy, "train-llama", "nlp", "alice")
    assert got[("jupyter-kernel", KERNEL)][:4] == (*busy, "notebooks/explore.ipynb")
    assert got[("process", "105")][:4] == (*busy, "./bench --size 8192")
    # allocated-idle: GPU 5 given to a container, GPU 6 to a Slurm job, neither running anything
    assert got[("docker", IDLE_CONTAINER)][:4] == (*idle, "idle-box")
    assert got[("slurm-job", "777")][:6] == (*idle, "reserved-idle", "vision", "bob")
    # GPU 7: nobody held it
    assert got[("unattributed", "-")][:2] == (0.6, 0.6)
    assert split.totals == {"USD": (4.8, 1.8, round(8 * 600 / 3600, 4))}
    assert round(sum(r.cost for r in split.rows), 4) == 4.8
    assert round(sum(r.idle_waste for r in split.rows), 4) == 1.8
    # the meter the rest of gpuspend shows says the same node total
    assert round(costing.metered_total(conn, cfg, rates, NOW - 3600_000, NOW + 1, NOW)["USD"], 4) == 4.8
    conn.close()


def test_group_by_namespace_and_user(node: Node, tmp_path: Path, db_path: Path) -> None:
    conn, cfg, _ = _collect(node, tmp_path, db_path)
    rates = costing.resolve_rates(conn, cfg, costing.load_gpus(conn), NOW)
    split = workload_attribution(conn, cfg, rates, NOW - 3600_000, NOW + 1, NOW)
    ns = {n: c for n, _cur, c, _i, _h in group_by(split, "namespace")}
    assert ns["ml-team"] == 0.6 and ns["nlp"] == 0.6 and ns["vision"] == 0.6
    assert ns["(unattributed)"] == 0.6
    users = {n: c for n, _cur, c, _i, _h in group_by(split, "user")}
    assert users["alice"] == 0.6 and users["bob"] == 0.6
    conn.close()


def test_report_json_text_and_by_workload(node: Node, tmp_path: Path, db_path: Path) -> None:
    conn, _cfg, cfg_path = _collect(node, tmp_path, db_path)
    conn.close()
    r = run_cli("--report", "--format", "json", "--no-sample", "--since", "1h", "--db", str(db_path),
                "--config", str(cfg_path))
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)
    rows = doc["workloads"]
    assert {"kind", "id", "name", "namespace", "owner", "cost", "idle_waste", "currency"} <= set(rows[0])
    assert round(sum(w["cost"] for w in rows), 4) == doc["workloads_total"]["USD"]["cost"] == 4.8
    pod = next(w for w in rows if w["kind"] == "k8s-pod")
    assert (pod["name"], pod["namespace"], pod["cost"], pod["currency"]) == ("trainer-7d9f", "ml-team", 0.6, "USD")
    t = run_cli("--report", "--no-sample", "--since", "1h", "--by", "workload", "--db", str(db_path),
                "--config", str(cfg_path))
    assert t.returncode in (0, 1), t.stderr
    assert "Workloads" in t.stdout
    assert "pod ml-team/trainer-7d9f" in t.stdout and "job 777 reserved-idle" in t.stdout
    assert "container idle-box" in t.stdout and "notebook notebooks/explore.ipynb" in t.stdout
    md = run_cli("--report", "--no-sample", "--since", "1h", "--format", "markdown", "--by", "namespace",
                 "--db", str(db_path), "--config", str(cfg_path))
    assert "## Workloads" in md.stdout and "| pod ml-team/trainer-7d9f | k8s-pod | ml-team |" in md.stdout
    assert "| By namespace | Cost | Idle cost |" in md.stdout
    jsonschema.Draft202012Validator(json.loads((ROOT / "gpuspend/data/report.schema.json").read_text())).validate(doc)
    bad = run_cli("--report", "--no-sample", "--by", "team", "--db", str(db_path))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
