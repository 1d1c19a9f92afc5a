"""GPU-cloud collectors against a real HTTP server on 127.0.0.1 answering like the public API specs."""

from __future__ import annotations

import json
import threading
import time

import pytest
from werkzeug import Request, Response

from gpuspend import costing
from gpuspend.collectors.clouds import poll
from gpuspend.collectors.clouds.common import CloudAuthError, CloudError
from gpuspend.config import load_config
from gpuspend.errors import EXIT_DATA, EXIT_USAGE
from gpuspend.store import connect, get_meta

T0 = 1794744000000
KEY = "rpa_SECRETKEY123"


@pytest.fixture
def conn(db_path):
    c = connect(db_path)
    yield c
    c.close()


def cfg_for(tmp_path, httpserver, **providers: str):
    """providers: name -> path under the test server; keys come from the environment like a user's would."""
    lines = ["clouds:"]
    for name, path in providers.items():
        lines += [f"  {name}:", f"    api_key: ${{{name.upper()}_API_KEY}}", f"    url: {httpserver.url_for(path)}"]
    p = tmp_path / "config.yaml"
    p.write_text("\n".join(lines) + "\n")
    p.chmod(0o600)
    return load_config(p)


def metered(conn, cfg, lo_ms, hi_ms):
    """{currency: GPU-cloud spend in [lo, hi)} from the meter the dashboard, report and metrics show."""
    return {cur: sum(days.values()) for cur, days in costing.cloud_daily(conn, cfg, lo_ms, hi_ms, hi_ms).items()}


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for name in ("RUNPOD", "LAMBDA", "VAST"):
        monkeypatch.setenv(f"{name}_API_KEY", KEY)


def runpod_answer(spend=1.23):
    return {"data": {"myself": {"currentSpendPerHr": spend, "pods": [
        {"id": "pod1", "name": "train-llm", "costPerHr": 5.38, "desiredStatus": "RUNNING", "gpuCount": 2,
         "machine": {"gpuDisplayName": "H100 SXM"},
         "runtime": {"uptimeInSeconds": 100, "gpus": [{"id": "g0", "gpuUtilPercent": 97},
                                                       {"id": "g1", "gpuUtilPercent": 0}]}},
        {"id": "pod2", "name": "notebook", "costPerHr": 0.34, "desiredStatus": "EXITED", "gpuCount": 1,
         "machine": {"gpuDisplayName": "RTX 3090"}, "runtime": None}]}}}


def lambda_instance(iid="0920582c", status="active", price=3592, gpus=8, with_type=True):
    itype = {"name": "gpu_8x_h100_sxm5gdr"}
    if with_type:
        itype |= {"description": "8x H100 (80 GB SXM5)", "gpu_description": "H100 (80 GB SXM5)",
                  "price_cents_per_hour": price, "specs": {"vcpus": 208, "memory_gib": 1800, "storage_gib": 24780,
                                                           "gpus": gpus}}
    return {"id": iid, "name": "big-box", "ip": "198.51.100.2", "status": status,
            "region": {"name": "us-east-1", "description": "Virginia"}, "instance_type": itype}


def vast_instance(i):
    return {"id": 1000 + i, "actual_status": "running" if i % 2 == 0 else "exited", "label": f"job-{i}",
            "gpu_name": "RTX 4090", "num_gpus": 1, "dph_base": 0.35, "dph_total": 0.40, "gpu_util": 12.0}


def test_runpod_pods_spend_and_gpus_are_stored(conn, tmp_path, httpserver):
    httpserver.expect_request("/graphql", method="POST", headers={"Authorization": f"Bearer {KEY}"}) \
        .respond_with_json(runpod_answer())
    result = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, runpod="/graphql"), T0)
    assert result.errors == []
    query = json.loads(httpserver.log[0][0].data)["query"]
    assert "currentSpendPerHr" in query and "costPerHr" in query and "gpuUtilPercent" in query
    assert conn.execute("SELECT instance_id, name, gpu_model, gpu_count, price_per_hour, status, util "
                        "FROM cloud_instances ORDER BY instance_id").fetchall() == [
        ("pod1", "train-llm", "H100-SXM", 2.0, 5.38, "running", 48.5),   # 'H100 SXM': its form factor
        ("pod2", "notebook", "RTX-3090", 1.0, 0.34, "exited", None)]
    assert conn.execute("SELECT instance_id, ts, price_per_hour, running FROM cloud_spend ORDER BY 1").fetchall() == [
        ("pod1", T0, 5.38, 1), ("pod2", T0, 0.34, 0)]
    gpus = conn.execute("SELECT g.uuid, g.host, g.model, g.source, s.util FROM gpus g JOIN gpu_samples s "
                        "ON s.gpu_id = g.id ORDER BY g.uuid").fetchall()
    assert gpus == [("runpod:pod1:0", "train-llm", "H100-SXM", "runpod", 97.0),
                    ("runpod:pod1:1", "train-llm", "H100-SXM", "runpod", 0.0)]
    assert json.loads(get_meta(conn, "clouds.runpod.spend_per_hour"))["value"] == 1.23


def test_runpod_auth_failure_is_clear_and_never_echoes_the_key(conn, tmp_path, httpserver):
    httpserver.expect_request("/graphql").respond_with_json(
        {"errors": [{"message": f"Unauthorized: bad api key {KEY}"}]}, status=401)
    result = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, runpod="/graphql"), T0)
    assert len(result.errors) == 1
    err = result.errors[0]
    assert "runpod rejected the API key (HTTP 401" in err and "RUNPOD_API_KEY" in err
    assert KEY not in err and "[redacted]" in err
    assert conn.execute("SELECT COUNT(*) FROM cloud_instances").fetchone()[0] == 0


def test_runpod_graphql_unauthorized_with_http_200(conn, tmp_path, httpserver):
    httpserver.expect_request("/graphql").respond_with_json({"data": {"myself": None}})
    err = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, runpod="/graphql"), T0).errors[0]
    assert "no account for this API key" in err and KEY not in err


def test_lambda_instances_prices_and_local_metering(conn, tmp_path, httpserver):
    cfg = cfg_for(tmp_path, httpserver, **{"lambda": "/api/v1"})
    httpserver.expect_ordered_request("/api/v1/instances").respond_with_json({"data": [lambda_instance()]})
    httpserver.expect_ordered_request("/api/v1/instances").respond_with_json({"data": [lambda_instance()]})
    httpserver.expect_ordered_request("/api/v1/instances").respond_with_json(
        {"data": [lambda_instance(status="terminated")]})
    for k in range(3):
        assert poll.poll_clouds(conn, cfg, T0 + k * 300_000).errors == []
    assert conn.execute("SELECT gpu_model, gpu_count, price_per_hour, status FROM cloud_instances").fetchone() == (
        "H100-SXM", 8.0, 35.92, "terminated")                               # 'H100 (80 GB SXM5)'
    assert conn.execute("SELECT COUNT(*) FROM gpus WHERE source = 'lambda'").fetchone()[0] == 8
    # billed from the first poll to the poll that saw it terminated: 10 minutes at $35.92/h
    assert metered(conn, cfg, T0, T0 + 3_600_000) == {"USD": pytest.approx(35.92 * 10 / 60)}


def test_lambda_price_from_instance_types_when_the_instance_lacks_it(conn, tmp_path, httpserver):
    httpserver.expect_request("/api/v1/instances").respond_with_json({"data": [lambda_instance(with_type=False)]})
    httpserver.expect_request("/api/v1/instance-types").respond_with_json({"data": {"gpu_8x_h100_sxm5gdr": {
        "instance_type": lambda_instance()["instance_type"], "regions_with_capacity_available": []}}})
    assert poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, **{"lambda": "/api/v1"}), T0).errors == []
    assert conn.execute("SELECT price_per_hour, gpu_count FROM cloud_instances").fetchone() == (35.92, 8.0)


def test_lambda_instance_that_disappears_stops_its_meter(conn, tmp_path, httpserver):
    cfg = cfg_for(tmp_path, httpserver, **{"lambda": "/api/v1"})
    httpserver.expect_ordered_request("/api/v1/instances").respond_with_json({"data": [lambda_instance()]})
    httpserver.expect_ordered_request("/api/v1/instances").respond_with_json({"data": []})
    poll.poll_clouds(conn, cfg, T0)
    poll.poll_clouds(conn, cfg, T0 + 600_000)
    assert conn.execute("SELECT status FROM cloud_instances").fetchone() == ("gone",)
    assert metered(conn, cfg, T0, T0 + 7_200_000) == {"USD": pytest.approx(35.92 / 6)}


def test_vast_pagination_and_charges(conn, tmp_path, httpserver):
    page1 = {"success": True, "instances": [vast_instance(i) for i in range(25)], "next_token": "tok-2"}
    page2 = {"success": True, "instances": [vast_instance(i) for i in range(25, 30)], "next_token": None}

    def instances(request: Request) -> Response:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        body = page2 if request.args.get("after_token") == "tok-2" else page1
        return Response(json.dumps(body), content_type="application/json")

    def charges(request: Request) -> Response:
        filters = json.loads(request.args["select_filters"])
        assert filters["day"] == {"gte": 1793491200, "lte": 1796083199}       # November 2026, UTC
        rows = [{"start": 1793491200, "end": 1794744000, "type": "instance", "source": "instance-1000",
                 "description": "Instance 1000 Charges - 14 days", "amount": 134.4, "metadata": {"label": "job-0"},
                 "items": [{"type": "gpu", "description": "336.000 hours at $0.350/hour", "amount": 117.6,
                            "start": 1793491200, "end": 1794744000},
                           {"type": "disk", "description": "storage", "amount": 16.8,
                            "start": 1793491200, "end": 1794744000}]}]
        return Response(json.dumps({"success": True, "results": rows, "next_token": None}),
                        content_type="application/json")

    httpserver.expect_request("/api/v1/instances/").respond_with_handler(instances)
    httpserver.expect_request("/api/v0/charges/").respond_with_handler(charges)
    cfg = cfg_for(tmp_path, httpserver, vast="/api/v0")                  # the config names the v0 root
    assert poll.poll_clouds(conn, cfg, T0).errors == []
    assert conn.execute("SELECT COUNT(*), SUM(status = 'running') FROM cloud_instances").fetchone() == (30, 15)
    assert conn.execute("SELECT COUNT(*) FROM gpus WHERE source = 'vast'").fetchone()[0] == 15
    assert json.loads(get_meta(conn, "clouds.vast.spend_per_hour"))["value"] == pytest.approx(15 * 0.40)
    rows = conn.execute("SELECT kind, amount, gpu_model, source, label FROM cloud_charges ORDER BY rowid").fetchall()
    assert rows == [("gpu", 117.6, "RTX-4090", "instance-1000", "job-0"), ("disk", 16.8, None, "instance-1000", "job-0")]
    assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 0     # not a billing export
    # a second poll within the hour does not re-read charges; after an hour it replaces them, not duplicates
    poll.poll_clouds(conn, cfg, T0 + 60_000)
    poll.poll_clouds(conn, cfg, T0 + 3_600_000)
    assert conn.execute("SELECT COUNT(*) FROM cloud_charges").fetchone()[0] == 2
    assert sum(1 for r, _ in httpserver.log if r.path == "/api/v0/charges/") == 2


def test_vast_unknown_key_answer_is_an_auth_error(conn, tmp_path, httpserver):
    httpserver.expect_request("/api/v1/instances/").respond_with_json(
        {"success": False, "error": "auth_error", "msg": "Invalid user key"}, status=404)
    err = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, vast="/"), T0).errors[0]
    assert "vast rejected the API key (HTTP 404: Invalid user key)" in err and "VAST_API_KEY" in err


def test_rate_limited_429_backs_off_as_told_then_succeeds(conn, tmp_path, httpserver):
    httpserver.expect_ordered_request("/graphql").respond_with_json(
        {"detail": "API requests too frequent endpoint threshold=1.0"}, status=429, headers={"Retry-After": "1"})
    httpserver.expect_ordered_request("/graphql").respond_with_json({"detail": "again"}, status=429)
    httpserver.expect_ordered_request("/graphql").respond_with_json(runpod_answer())
    start = time.monotonic()
    result = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, runpod="/graphql"), T0, backoff_s=0.05)
    assert result.errors == [] and len(httpserver.log) == 3
    assert time.monotonic() - start >= 1.0
    assert conn.execute("SELECT COUNT(*) FROM cloud_instances").fetchone()[0] == 2


def test_persistent_429_gives_up_with_a_clear_line(conn, tmp_path, httpserver):
    httpserver.expect_request("/graphql").respond_with_json({"detail": "slow"}, status=429,
                                                            headers={"Retry-After": "3600"})
    err = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, runpod="/graphql"), T0, backoff_s=0.01).errors[0]
    assert "rate limited: the API asks to wait 3600s" in err and len(httpserver.log) == 1


def test_malformed_json_is_a_data_error_and_writes_nothing(conn, tmp_path, httpserver):
    httpserver.expect_request("/api/v1/instances").respond_with_data('{"data": [ {"id": ', content_type="application/json")
    cfg = cfg_for(tmp_path, httpserver, **{"lambda": "/api/v1"})
    with pytest.raises(CloudError) as info:
        poll.poll_task(conn, cfg, T0)
    assert info.value.exit_code == EXIT_DATA
    assert "malformed JSON in the answer" in info.value.line() and "/api/v1/instances" in info.value.line()
    assert conn.execute("SELECT COUNT(*) FROM cloud_instances").fetchone()[0] == 0


def test_unexpected_shape_is_a_clear_error(conn, tmp_path, httpserver):
    httpserver.expect_request("/api/v1/instances").respond_with_json({"instances": []})
    err = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, **{"lambda": "/api/v1"}), T0).errors[0]
    assert "expected 'data' to be a list, got nothing" in err


def test_timeout_then_retry_exhaustion(conn, tmp_path, httpserver):
    done = threading.Event()

    def slow(request: Request) -> Response:
        done.wait(0.4)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/graphql").respond_with_handler(slow)
    err = poll.poll_clouds(conn, cfg_for(tmp_path, httpserver, runpod="/graphql"), T0, backoff_s=0.01,
                           timeout=0.1).errors[0]
    assert "no answer within 0.1s after 4 attempts" in err and KEY not in err
    done.set()
    time.sleep(0.3)                   # let the server drain the abandoned requests before the next test


def test_one_failing_provider_does_not_stop_the_others(conn, tmp_path, httpserver):
    httpserver.expect_request("/graphql").respond_with_data("down", status=502)
    httpserver.expect_request("/api/v1/instances").respond_with_json({"data": [lambda_instance()]})
    cfg = cfg_for(tmp_path, httpserver, runpod="/graphql", **{"lambda": "/api/v1"})
    with pytest.raises(CloudError) as info:
        poll.poll_task(conn, cfg, T0)
    assert "server error (HTTP 502) after 4 attempts" in info.value.line()
    assert conn.execute("SELECT provider FROM cloud_instances").fetchall() == [("lambda",)]


def test_poll_task_honours_the_interval(conn, tmp_path, httpserver):
    httpserver.expect_request("/api/v1/instances").respond_with_json({"data": [lambda_instance()]})
    cfg = cfg_for(tmp_path, httpserver, **{"lambda": "/api/v1"})          # clouds.interval: 5m
    poll.poll_task(conn, cfg, T0)
    poll.poll_task(conn, cfg, T0 + 60_000)
    poll.poll_task(conn, cfg, T0 + 300_000)
    assert len(httpserver.log) == 2


def test_auth_error_exit_code_is_a_config_error(conn, tmp_path, httpserver):
    httpserver.expect_request("/api/v1/instances").respond_with_json(
        {"error": {"code": "global/invalid-api-key", "message": "API key was invalid, expired, or deleted.",
                   "suggestion": "Check your API key or create a new one, then try again."}}, status=401)
    with pytest.raises(CloudError) as info:       # the task reports the first provider error
        poll.poll_task(conn, cfg_for(tmp_path, httpserver, **{"lambda": "/api/v1"}), T0)
    assert "API key was invalid, expired, or deleted." in info.value.line()
    from gpuspend.collectors.clouds.common import CloudClient

    client = CloudClient("lambda", httpserver.url_for("/api/v1"), KEY, key_hint="LAMBDA_API_KEY")
    with pytest.raises(CloudAuthError) as auth:
        client.get("/instances")
    assert auth.value.exit_code == EXIT_USAGE and KEY not in auth.value.line()
