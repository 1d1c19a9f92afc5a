"""The fleet view read from a real Prometheus that scrapes two gpuspend exporters and two dcgm-exporter-like
nodes (static exposition text over real HTTP)."""

from __future__ import annotations

import calendar
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from pytest_httpserver import HTTPServer

from gpuspend import fleet, metrics
from gpuspend.config import load_config
from gpuspend.pricing import load_catalog

from ..conftest import ROOT
from .conftest import make_gpu, make_snapshot, start_prometheus

pytestmark = pytest.mark.prometheus

# dcgm-a: two A100 80GB, one idle; one extra series for a GPU node-a already exports (must not count twice).
# dcgm-b: only the profiling metric (a ratio), with a hostile host name.
DCGM_A = """# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-dcgm-a-0",device="nvidia0",modelName="NVIDIA A100-SXM4-80GB",Hostname="dcgm-a"} 0
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-dcgm-a-1",device="nvidia1",modelName="NVIDIA A100-SXM4-80GB",Hostname="dcgm-a"} 97
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-node-a-0000",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-a"} 88
"""
EVIL_HOST = "dcgm-b|[bold]\x1b[2J"
DCGM_B = f"""# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="0",UUID="GPU-dcgm-b-0",modelName="NVIDIA L4",Hostname="{EVIL_HOST}"}} 0.02
DCGM_FI_PROF_GR_ENGINE_ACTIVE{{gpu="1",UUID="GPU-dcgm-b-1",modelName="NVIDIA L4",Hostname="{EVIL_HOST}"}} 0.75
"""


def _node_a():
    return make_snapshot("node-a", (make_gpu("node-a", 0, rate=6.88),
                                    make_gpu("node-a", 1, state="held-idle", util=0.0, rate=6.88,
                                             idle_for_s=3600, episode_waste=6.88)),
                         mtd=1500.0, projection=3000.0, waste_today=20.0)


def _node_b():
    return make_snapshot("node-b", (make_gpu("node-b", 0, rate=2.0, model="A100-80GB"),
                                    make_gpu("node-b", 1, rate=2.0, model="A100-80GB", state="free-idle", util=1.0,
                                             idle_for_s=1800, episode_waste=1.0),
                                    make_gpu("node-b", 2, rate=None, util=40.0)),
                         mtd=700.0, projection=1400.0, waste_today=3.5)


@pytest.fixture(scope="module")
def fleet_env(tmp_path_factory):
    """One Prometheus scraping 4 nodes, shared by this module's tests (start-up costs seconds)."""
    tmp = tmp_path_factory.mktemp("fleet")
    a, b = metrics.serve("127.0.0.1", 0), metrics.serve("127.0.0.1", 0)
    a.update(_node_a())
    b.update(_node_b())
    dcgm = []
    for text in (DCGM_A, DCGM_B):
        srv = HTTPServer(host="127.0.0.1", port=0)
        srv.expect_request("/metrics").respond_with_data(text, content_type="text/plain; version=0.0.4")
        srv.start()
        dcgm.append(srv)
    targets = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"] + [f"127.0.0.1:{s.port}" for s in dcgm]
    prom = start_prometheus(tmp / "prom", targets)
    cfg_path = tmp / "config.yaml"
    cfg_path.write_text("provider: aws\nrates:\n  per_host:\n    'dcgm-b|[bold]': 1.5\n")
    try:
        prom.wait_for('{__name__=~"gpuspend_cost_per_hour|DCGM_FI_.*"}', 2 + 3 + 2)
        yield prom, load_config(cfg_path)
    finally:
        prom.stop()
        for s in dcgm:
            s.stop()
        a.close()
        b.close()


@pytest.fixture(scope="module")
def view(fleet_env):
    prom, cfg = fleet_env
    return fleet.fetch_fleet(prom.url, cfg)


def test_nodes_from_gpuspend_and_dcgm(view):
    by = {n.name: n for n in view.nodes}
    assert sorted(by) == sorted(["node-a", "node-b", "dcgm-a", "dcgm-b|[bold]"])
    assert [by[k].source for k in ("node-a", "node-b", "dcgm-a")] == ["gpuspend", "gpuspend", "dcgm"]
    assert len(by["node-a"].gpus) == 2          # the dcgm series of node-a's GPU is not counted again
    assert len(by["dcgm-a"].gpus) == 2
    assert view.gpu_count == 2 + 3 + 2 + 2


def test_gpuspend_nodes_carry_their_own_figures(view):
    by = {n.name: n for n in view.nodes}
    a, b = by["node-a"], by["node-b"]
    assert a.cost_per_hour == {"USD": pytest.approx(_node_a().cost_per_hour)}
    assert b.cost_per_hour == {"USD": pytest.approx(4.0)}
    assert (a.mtd, a.projection, a.waste_today) == ({"USD": 1500.0}, {"USD": 3000.0}, {"USD": 20.0})
    assert b.unpriced == 1 and view.unpriced == 1
    assert [g.cost_per_hour for g in b.gpus] == [2.0, 2.0, None]
    # the GPU without a rate is in no total, and the fleet report says so rather than hiding it
    assert "1 GPU with no rate: in none of the totals above" in fleet.render(view, "text")
    assert a.waste_per_hour == {"USD": pytest.approx(6.88)}
    assert [(g.gpu, g.state, g.idle_for_s) for g in a.gpus] == [("0", "busy", 0.0), ("1", "held-idle", 3600.0)]


def test_dcgm_nodes_priced_from_catalog_and_config(view):
    by = {n.name: n for n in view.nodes}
    a100 = load_catalog().lookup("aws", "A100-80GB").usd_per_gpu_hour
    dcgm_a = by["dcgm-a"]
    assert [(g.gpu, g.idle, g.cost_per_hour, g.rate_source) for g in dcgm_a.gpus] == [
        ("0", True, a100, "catalog"), ("1", False, a100, "catalog")]
    assert dcgm_a.cost_per_hour == {"USD": pytest.approx(2 * a100)}
    # dcgm-b reports only DCGM_FI_PROF_GR_ENGINE_ACTIVE (0..1): 2% is idle, 75% is busy; per_host rate wins
    dcgm_b = by["dcgm-b|[bold]"]
    assert [(g.util_pct, g.idle, g.cost_per_hour, g.rate_source) for g in dcgm_b.gpus] == [
        (pytest.approx(2.0), True, 1.5, "config"), (pytest.approx(75.0), False, 1.5, "config")]
    # idle for seconds only (Prometheus has no data from idle.after ago): no open episode yet
    assert [g.episode_open for g in dcgm_a.gpus + dcgm_b.gpus] == [False, False, False, False]
    # no history for dcgm nodes: the month is estimated at today's rate, and says so
    now = datetime.now(UTC)
    month_h = calendar.monthrange(now.year, now.month)[1] * 24
    assert dcgm_b.estimated and dcgm_b.projection == {"USD": pytest.approx(3.0 * month_h)}
    # the idle GPU's waste today is whole idle minutes x rate (Prometheus has seconds of data here)
    assert dcgm_a.gpus[0].waste / a100 * 60 in (0.0, 1.0)


def test_fleet_totals_and_idle_list(view):
    t = view.totals()["USD"]
    assert t["cost_per_hour"] == pytest.approx(sum(n.cost_per_hour.get("USD", 0.0) for n in view.nodes))
    assert t["projection"] == pytest.approx(sum(n.projection.get("USD", 0.0) for n in view.nodes))
    assert t["waste_today"] >= 20.0 + 3.5
    idle = view.idle_gpus()
    assert view.idle_count == len(idle) == 4
    assert (idle[0].node, idle[0].gpu, idle[0].waste) == ("node-a", "1", 6.88)     # biggest waste first


def test_render_formats_keep_outside_text_inert(view):
    text = fleet.render(view, "text")
    assert "\x1b" not in text and "node-a" in text and "Idle GPUs (4)" in text
    md = fleet.render(view, "markdown")
    assert "dcgm-b\\|[bold]" in md             # a | in a label cannot break the markdown table
    text = fleet.render(view, "json")
    assert text == json.dumps(view.to_json(), indent=2, sort_keys=True)    # the standard encoding, to the byte
    data = json.loads(text)
    assert data["gpus"] == 9 and data["idle_gpus"] == 4 and data["stale"] is False
    back = fleet.FleetView.from_json(data)
    assert back.totals()["USD"] == pytest.approx(view.totals()["USD"])
    assert [n.name for n in back.nodes] == [n.name for n in view.nodes]


def test_missing_node_is_reported_after_it_stops(fleet_env, tmp_path_factory):
    """An exporter that went away is listed as not reporting, not silently dropped."""
    prom, cfg = fleet_env
    extra = metrics.serve("127.0.0.1", 0)
    extra.update(make_snapshot("node-gone"))
    # Prometheus only scrapes configured targets: a second Prometheus with this one target shows it going away.
    tmp = tmp_path_factory.mktemp("gone")
    p2 = start_prometheus(tmp / "prom", [f"127.0.0.1:{extra.port}"])
    try:
        p2.wait_for("gpuspend_up", 1)
        extra.close()
        deadline = time.monotonic() + 20
        view = fleet.fetch_fleet(p2.url, cfg)
        while "node-gone" not in view.missing and time.monotonic() < deadline:
            time.sleep(0.5)
            view = fleet.fetch_fleet(p2.url, cfg)
        assert view.missing == ["node-gone"]
        assert "node-gone" not in [n.name for n in view.nodes]
        assert "Not reporting now (seen in the last hour): node-gone" in fleet.render(view)
    finally:
        p2.stop()


def _doc_queries() -> list[str]:
    """The PromQL examples in the README: lines between comments, joined."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```promql\n", 1)[1].split("```", 1)[0]
    queries, current = [], []
    for line in block.splitlines() + [""]:
        if line.startswith("#") or not line.strip():
            if current:
                queries.append(" ".join(current))
                current = []
        else:
            current.append(line.strip())
    return queries


def test_documented_promql_and_grafana_panel_run(fleet_env):
    prom, _ = fleet_env
    queries = _doc_queries()
    panel = json.loads((ROOT / "contrib" / "grafana-panel.json").read_text())
    queries += [t["expr"] for t in panel["targets"]]
    assert len(queries) >= 10
    for q in queries:
        resp = httpx.get(f"{prom.url}/api/v1/query", params={"query": q}, timeout=5)
        assert resp.status_code == 200 and resp.json()["status"] == "success", (q, resp.text)
    # the idle-burn example: node-a's held-idle GPU ($6.88/h) + node-b's free-idle GPU ($2/h)
    burn = prom.query(panel["targets"][1]["expr"])
    assert float(burn[0]["value"][1]) == pytest.approx(8.88)
    by_node = prom.query('topk(10, sum by (host) (gpuspend_cost_per_hour{currency="USD"}))')
    assert {r["metric"]["host"]: float(r["value"][1]) for r in by_node} == pytest.approx(
        {"node-a": 13.76, "node-b": 4.0})


def test_dcgm_idle_episode_opens_after_idle_after(fleet_env, tmp_path):
    """With idle.after = 3 s, dcgm-a's idle GPU opens an episode once Prometheus holds 3 s of its history."""
    prom, _ = fleet_env
    cfg_path = tmp_path / "short.yaml"
    cfg_path.write_text("provider: aws\nidle:\n  after: 3s\n")
    cfg = load_config(cfg_path)
    deadline = time.monotonic() + 20
    while True:
        by = {n.name: n for n in fleet.fetch_fleet(prom.url, cfg).nodes}
        opened = {name: [g.episode_open for g in by[name].gpus] for name in ("dcgm-a", "dcgm-b|[bold]")}
        if all(o[0] for o in opened.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # GPU_UTIL 0% and GR_ENGINE_ACTIVE 2% are idle; the busy GPUs never open one
    assert list(opened.values()) == [[True, False], [True, False]]


def test_a_node_on_an_older_exporter_reads_the_same(tmp_path):
    """A node whose exporter predates gpuspend_gpu_status (rolling upgrades) shows the same GPU rows as a current
    one: its state, rate source and open episode come from the older series, asked only for that host."""
    from prometheus_client import generate_latest

    def gpus(host):
        return (make_gpu(host, 0, rate=6.88),
                make_gpu(host, 1, state="held-idle", util=0.0, idle_for_s=3600, episode_waste=6.88),
                make_gpu(host, 2, state="free-idle", util=1.0, rate=None, idle_for_s=120),
                make_gpu(host, 3, state="lost"))

    new, old = metrics.serve("127.0.0.1", 0), metrics.serve("127.0.0.1", 0)
    new.update(make_snapshot("node-new", gpus("node-new")))
    old.update(make_snapshot("node-old", gpus("node-old")))
    text = generate_latest(old.registry).decode()
    assert "gpuspend_gpu_status{" in text
    older = "".join(line for line in text.splitlines(keepends=True) if "gpuspend_gpu_status" not in line)
    page = HTTPServer(host="127.0.0.1", port=0)
    page.expect_request("/metrics").respond_with_data(older, content_type="text/plain; version=0.0.4")
    page.start()
    prom = start_prometheus(tmp_path / "prom", [f"127.0.0.1:{new.port}", f"127.0.0.1:{page.port}"])
    try:
        prom.wait_for("gpuspend_gpu_cost_per_hour", 2 + 2)
        prom.wait_for("gpuspend_gpu_state", 2 * 4 * 5)
        view = fleet.fetch_fleet(prom.url)
    finally:
        prom.stop()
        page.stop()
        new.close()
        old.close()
    by = {n.name: n for n in view.nodes}
    assert sorted(by) == ["node-new", "node-old"]

    def rows(node):
        return [(g.gpu, g.state, g.idle, g.rate_source, g.cost_per_hour, g.episode_open, g.idle_for_s, g.waste)
                for g in node.gpus]

    assert rows(by["node-old"]) == rows(by["node-new"]) == [
        ("0", "busy", False, "catalog", 6.88, False, 0.0, 0.0),
        ("1", "held-idle", True, "catalog", 6.88, True, 3600.0, 6.88),
        ("2", "free-idle", True, "none", None, False, 120.0, 0.0),
        ("3", "lost", False, "catalog", 6.88, False, 0.0, 0.0)]
    assert by["node-old"].waste_per_hour == by["node-new"].waste_per_hour == {"USD": 6.88}
    assert by["node-old"].unpriced == by["node-new"].unpriced == 1
