"""Workloads on the other surfaces: /metrics counters with a cardinality cap and `other`, dcgm-exporter's
workload labels on the fleet view, and the dashboard's process rows naming their workload."""

from __future__ import annotations

from pathlib import Path

import httpx

from gpuspend import costing, metrics
from gpuspend.collectors.nvml import NvmlSource
from gpuspend.collectors.sampler import Sampler
from gpuspend.config import load_config
from gpuspend.fleet import FleetView, _dcgm_nodes, render, workload_waste
from gpuspend.store import connect
from tests.conftest import FIXED_NOW_S
from tests.workloads.conftest import HOST, Node

NOW = FIXED_NOW_S * 1000


def _collect(node: Node, tmp_path: Path, db: Path, extra: str = ""):
    p = tmp_path / "c.yaml"
    p.write_text(node.config_text + extra)
    cfg = load_config(p)
    src = NvmlSource(HOST, nvml=node.fake.module, workloads=cfg.workloads).open()
    conn = connect(db)
    s = Sampler(conn)
    for i in range(300):
        s.write(src.read(NOW - (300 - i) * 2000))
    conn.close()
    return cfg


def _series(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            out[labels[len(name):]] = float(value)
    return out


def test_metrics_workload_counters_cap_and_other(node: Node, tmp_path: Path, db_path: Path) -> None:
    cfg = _collect(node, tmp_path, db_path, "  metrics_max: 3\n")
    with metrics.serve("127.0.0.1", 0, db_path=db_path, cfg=cfg, refresh_s=3600) as ex:
        ex.refresh()
        ex.refresh()                     # the same figures again add nothing: counters count once
        text = httpx.get(ex.url, timeout=10).text
    cost = _series(text, "gpuspend_workload_cost_total")
    waste = _series(text, "gpuspend_workload_idle_waste_total")
    named = [k for k in cost if 'kind="other"' not in k and 'kind="unattributed"' not in k]
    assert len(named) == 3                                           # the cap
    other = next(v for k, v in cost.items() if 'workload="other"' in k)
    unattributed = next(v for k, v in cost.items() if 'kind="unattributed"' in k)
    # 7 workloads at $0.60 each today: 3 named, 4 in `other`; GPU 7 is unattributed
    assert round(other, 4) == 2.4 and round(unattributed, 4) == 0.6
    assert round(sum(cost.values()), 4) == 4.8
    assert round(sum(waste.values()), 4) == 1.8                      # GPUs 5, 6 (held, idle) and 7


def test_dashboard_rows_name_the_workload(node: Node, tmp_path: Path, db_path: Path) -> None:
    cfg = _collect(node, tmp_path, db_path)
    conn = connect(db_path)
    try:
        snap = costing.build_snapshot(conn, cfg, NOW)
    finally:
        conn.close()
    by_pid = {p.pid: (p.workload_kind, p.workload) for p in snap.processes}
    assert by_pid[102] == ("k8s-pod", "pod ml-team/trainer-7d9f")
    assert by_pid[103] == ("slurm-job", "job 1392969 train-llama")
    assert by_pid[104] == ("jupyter-kernel", "notebook notebooks/explore.ipynb")
    assert by_pid[101] == ("docker", "container llm-serve")
    assert by_pid[105] == ("process", "")
    held = {g.index: g.workload for g in snap.gpus}
    assert held[5] == "container idle-box" and held[6] == "job 777 reserved-idle" and held[7] == ""
    # the idle alert names who holds the GPU: the workload, not only the user
    from gpuspend import alerts

    fields = {c.subject: dict(c.fields) for c in alerts._idle_conditions(snap)}
    assert fields["GPU-node1-5"]["Held by"] == "container idle-box (allocated, no process)"
    assert fields["GPU-node1-1"]["Held by"].startswith("pod ml-team/trainer-7d9f: ")


def test_dcgm_labels_name_the_workload_on_the_fleet(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    base = {"__name__": "DCGM_FI_DEV_GPU_UTIL", "Hostname": "dcgm-1", "modelName": "NVIDIA H100 80GB HBM3"}
    samples = [
        {"metric": {**base, "gpu": "0", "UUID": "GPU-d0", "pod": "trainer-0", "namespace": "ml",
                    "container": "main"}, "value": [0, "0"]},
        {"metric": {**base, "gpu": "1", "UUID": "GPU-d1", "hpc_job": "4242", "user": "alice"}, "value": [0, "0"]},
        {"metric": {**base, "gpu": "2", "UUID": "GPU-d2"}, "value": [0, "97"]},
    ]
    idle_min = [{"metric": {**base, "gpu": g, "UUID": f"GPU-d{g}"}, "value": [0, "60"]} for g in ("0", "1")]
    nodes = _dcgm_nodes(samples, idle_min, [], cfg, 5.0, set(), set(), float(FIXED_NOW_S))
    gpus = {g.gpu: g for g in nodes[0].gpus}
    assert gpus["0"].workload == "pod ml/trainer-0"
    assert gpus["1"].workload == "job 4242 (alice)"
    assert gpus["2"].workload is None
    view = FleetView(url="http://127.0.0.1:9090", fetched_s=float(FIXED_NOW_S), nodes=nodes)
    wl = {w: waste for w, _n, _c, _cph, waste in workload_waste(view)}
    assert wl == {"pod ml/trainer-0": 2.0, "job 4242 (alice)": 2.0}   # 60 idle minutes x $2.00/h each
    text = render(view)
    assert "Workloads (from dcgm-exporter labels)" in text and "pod ml/trainer-0" in text
    assert FleetView.from_json(view.to_json()).nodes[0].gpus[0].workload == "pod ml/trainer-0"


def _cfg(tmp_path: Path):
    p = tmp_path / "fleet.yaml"
    p.write_text("rates:\n  per_host: {dcgm-1: 2.0}\n")
    return load_config(p)


def test_doctor_names_workloads_and_a_foreign_pid_namespace(node: Node, tmp_path: Path, db_path: Path,
                                                            monkeypatch, capsys) -> None:
    import pytest

    from gpuspend.cli import main

    cfg = tmp_path / "d.yaml"
    cfg.write_text(node.config_text)
    with pytest.raises(SystemExit):
        main(["doctor", "--db", str(db_path), "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "workloads  5 GPU processes: docker, jupyter-kernel, k8s-pod, slurm-job" in out
    assert "host PID namespace" not in out
    monkeypatch.setenv("GPUSPEND_PROC_ROOT", str(tmp_path / "empty-proc"))   # none of NVML's pids visible
    with pytest.raises(SystemExit):
        main(["doctor", "--db", str(db_path), "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "run the collector with the host PID namespace (docker --pid=host" in out
