"""/metrics counts a user's money once per process, in the currency it is in, under this node's own host name
(sanitised); the node's host is never a cloud pod's name. Scraped over real HTTP."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpuspend import metrics
from gpuspend.costing.build import node_host
from gpuspend.snapshot import ProcessNow, Rate
from tests.fleet.conftest import make_gpu, make_snapshot


def scrape(exporter: metrics.Exporter) -> list[tuple[str, dict, float]]:
    resp = httpx.get(exporter.url, timeout=5)
    assert resp.status_code == 200
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(resp.text) for s in fam.samples]


@pytest.fixture
def exporter():
    ex = metrics.serve("127.0.0.1", 0)
    yield ex
    ex.close()


def _proc(gpu, cost: float) -> ProcessNow:
    # costing gives each (process, GPU) row that GPU's share of the process's cost today
    return ProcessNow(pid=77, user="alice", command="torchrun", gpu_uuid=gpu.uuid, gpu_index=gpu.index,
                      used_memory=1 << 30, sm_util=None, cost_today=cost)


def test_a_process_on_two_gpus_is_counted_once(exporter):
    g0, g1 = make_gpu("node-a", 0), make_gpu("node-a", 1)
    exporter.update(make_snapshot("node-a", (g0, g1), processes=(_proc(g0, 4.0), _proc(g1, 4.0))))
    users = [(lab, v) for name, lab, v in scrape(exporter) if name == "gpuspend_user_cost_total"]
    assert users == [({"host": "node-a", "user": "alice", "currency": "USD"}, 8.0)]      # its two shares, once


def test_the_user_counter_carries_the_currency_of_the_money(exporter):
    eur = Rate(per_gpu_hour=3.0, currency="EUR", source="config", label="config: EUR 3.00/GPU-hour")
    g0 = dataclasses.replace(make_gpu("node-a", 0), rate=eur)
    exporter.update(make_snapshot("node-a", (g0,), processes=(_proc(g0, 4.5),)))     # snapshot currency: USD
    users = [(lab["currency"], v) for name, lab, v in scrape(exporter) if name == "gpuspend_user_cost_total"]
    assert users == [("EUR", 4.5)]


def test_host_label_is_sanitised(exporter):
    nasty = "node\x1b[31m-a\nx"
    exporter.update(make_snapshot(nasty, (make_gpu(nasty, 0),)))
    hosts = {lab["host"] for _, lab, _ in scrape(exporter) if "host" in lab}
    assert hosts == {"node-a x"}                 # the escape removed, the line break a space


def test_node_host_is_the_local_host_not_a_cloud_pod(monkeypatch):
    import socket

    from gpuspend.config import default_config

    monkeypatch.setattr(socket, "gethostname", lambda: "train-box")
    gpus = [{"host": "aaa-runpod-pod", "source": "runpod"}, {"host": "train-box", "source": "nvml"}]
    assert node_host(default_config(), gpus) == "train-box"           # the pod sorts first; it is not us
    cfg = default_config()
    cfg.host = "rack7-node3"
    assert node_host(cfg, gpus) == "rack7-node3"
    assert node_host(default_config(), [{"host": "aaa-runpod-pod", "source": "runpod"}]) == "train-box"
