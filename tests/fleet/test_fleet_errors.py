"""`gpuspend --report --fleet URL` when Prometheus is unreachable, slow or answering errors: one clear line,
exit 3, and the last good view (if any) printed marked stale. The server here is a real HTTP server on loopback
that answers like the Prometheus HTTP API (or refuses to)."""

from __future__ import annotations

import json
import time

import pytest
from werkzeug import Request, Response

from gpuspend import fleet

from .conftest import free_port


def vector(*samples: tuple[dict, float]) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": m, "value": [1794744000.0, repr(v)]} for m, v in samples]}}


# Which of the view's queries returns a series of this name (values are filtered on the server: callers list only
# the series Prometheus would return, e.g. no idle time of 0).
_QUERY_OF = {"gpuspend_gpu_status": "gpu_status", "gpuspend_gpu_cost_per_hour": "gpu_cost",
             "gpuspend_gpu_utilization_ratio": "gpu_util", "gpuspend_gpu_idle_for_seconds": "gpu_idle_for",
             "gpuspend_gpu_idle_episode_waste": "gpu_waste"}


def answers(*samples: tuple[dict, float]) -> dict[str, dict]:
    """What Prometheus answers to each of the view's gpuspend queries, from the series it holds."""
    routed: dict[str, list] = {}
    for m, v in samples:
        part = _QUERY_OF.get(m["__name__"], "node")
        routed.setdefault(fleet.Q_GPUSPEND_PARTS[part], []).append((m, v))
    return {q: vector(*s) for q, s in routed.items()}


GPU = {"host": "node-a", "gpu": "0", "uuid": "U0", "model": "H100"}
# One node with one idle GPU whose idle episode is open.
GOOD = answers(
    ({"__name__": "gpuspend_cost_per_hour", "host": "node-a", "currency": "USD"}, 13.76),
    ({"__name__": "gpuspend_up", "host": "node-a"}, 1.0),
    ({"__name__": "gpuspend_month_projection", "host": "node-a", "currency": "USD", "month": "2026-11"}, 4000.0),
    ({"__name__": "gpuspend_gpu_status", **GPU, "state": "free-idle", "source": "catalog", "episode": "open"}, 1.0),
    ({"__name__": "gpuspend_gpu_cost_per_hour", **GPU, "currency": "USD"}, 6.88),
)
EMPTY = vector()


def answer_good(request: Request) -> Response:
    body = GOOD.get(request.args.get("query", ""), EMPTY)
    return Response(json.dumps(body), content_type="application/json")


def test_unreachable_prometheus_is_one_line_and_exit_3(cli):
    url = f"http://127.0.0.1:{free_port()}"
    r = cli("--report", "--fleet", url)
    assert r.returncode == 3
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"gpuspend: {url}: Prometheus unreachable" in r.stderr
    assert "check the --fleet URL" in r.stderr


def test_bad_url_is_a_usage_error(cli):
    r = cli("--report", "--fleet", "prometheus:9090")
    assert r.returncode == 2
    assert "expected a Prometheus URL like http://prometheus:9090" in r.stderr


def test_prometheus_error_answer_is_explained(cli, httpserver):
    httpserver.expect_request("/api/v1/query").respond_with_json(
        {"status": "error", "errorType": "bad_data", "error": "1:1: parse error: \x1b[31mboom"}, status=400)
    r = cli("--report", "--fleet", httpserver.url_for("/").rstrip("/"))
    assert r.returncode == 3
    assert "Prometheus query failed: bad_data: 1:1: parse error: boom" in r.stderr     # the escape removed whole
    assert "\x1b" not in r.stderr


def test_not_prometheus_at_all(cli, httpserver):
    httpserver.expect_request("/api/v1/query").respond_with_data("<html>login</html>", status=200)
    r = cli("--report", "--fleet", httpserver.url_for("/").rstrip("/"))
    assert r.returncode == 3
    assert "Prometheus query failed: HTTP 200 OK" in r.stderr


def test_slow_prometheus_times_out(cli, httpserver, tmp_path):
    def slow(request: Request) -> Response:
        time.sleep(3)
        return answer_good(request)

    httpserver.expect_request("/api/v1/query").respond_with_handler(slow)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("fleet:\n  timeout: 500ms\n")
    started = time.monotonic()
    r = cli("--config", str(cfg), "--report", "--fleet", httpserver.url_for("/").rstrip("/"))
    assert r.returncode == 3
    assert "Prometheus did not answer within 0.5s" in r.stderr
    assert time.monotonic() - started < 30     # bounded by the timeout, not by the server


def test_last_good_view_is_shown_stale_when_prometheus_fails(cli, httpserver):
    url = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request("/api/v1/query").respond_with_handler(answer_good)
    ok = cli("--report", "--fleet", url, "--format", "json")
    assert ok.returncode == 0, ok.stderr
    good = json.loads(ok.stdout)
    assert good["totals"]["USD"]["cost_per_hour"] == 13.76 and good["stale"] is False

    httpserver.clear()
    httpserver.expect_request("/api/v1/query").respond_with_data("overloaded", status=503)
    r = cli("--report", "--fleet", url)
    assert r.returncode == 3
    assert r.stdout.splitlines()[2].startswith("STALE: Prometheus failed (Prometheus query failed: HTTP 503")
    assert "$13.76" in r.stdout                              # last known values, marked stale
    assert "printed the last good view from" in r.stderr and r.stderr.count("\n") == 1

    js = cli("--report", "--fleet", url, "--format", "json")
    assert js.returncode == 3
    stale = json.loads(js.stdout)
    assert stale["stale"] is True and stale["totals"] == good["totals"]


def test_fail_on_idle_exits_1_when_an_idle_episode_is_open(cli, httpserver):
    httpserver.expect_request("/api/v1/query").respond_with_handler(answer_good)
    url = httpserver.url_for("/").rstrip("/")
    assert cli("--report", "--fleet", url).returncode == 0
    r = cli("--report", "--fleet", url, "--fail-on", "idle")
    assert r.returncode == 1
    assert "Idle GPUs (1)" in r.stdout


def test_fleet_view_without_cache_raises(tmp_path):
    with pytest.raises(fleet.FleetError) as exc:
        fleet.fleet_view(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    assert exc.value.exit_code == 3


def test_fleet_report_does_not_import_textual():
    import subprocess
    import sys

    code = ("import sys; import gpuspend.fleet, gpuspend.metrics; "
            "sys.exit(1 if any(m == 'textual' or m.startswith(('textual.', 'tui')) for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@pytest.mark.parametrize("transport", ["http.client", "httpx"])
def test_both_transports_read_and_fail_alike(httpserver, transport):
    """A plain http URL is read with the standard library, a caller's httpx client with httpx: same view, same
    one-line errors."""
    import httpx

    def view(url: str, timeout: float = 2.0) -> fleet.FleetView:
        if transport == "httpx":
            with httpx.Client(timeout=timeout) as client:
                return fleet.fetch_fleet(url, timeout_s=timeout, client=client)
        return fleet.fetch_fleet(url, timeout_s=timeout)

    url = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request("/api/v1/query").respond_with_handler(answer_good)
    got = view(url)
    assert [(n.name, len(n.gpus), n.idle_gpus, n.cost_per_hour) for n in got.nodes] == [
        ("node-a", 1, 1, {"USD": 13.76})]
    httpserver.clear()
    httpserver.expect_request("/api/v1/query").respond_with_data("overloaded", status=503)
    with pytest.raises(fleet.FleetError) as exc:
        view(url)
    assert exc.value.message == "Prometheus query failed: HTTP 503 Service Unavailable"
    httpserver.clear()

    def slow(request: Request) -> Response:
        time.sleep(2)
        return answer_good(request)

    httpserver.expect_request("/api/v1/query").respond_with_handler(slow)
    with pytest.raises(fleet.FleetError) as exc:
        view(url, timeout=0.5)
    assert exc.value.message == "Prometheus did not answer within 0.5s"
    with pytest.raises(fleet.FleetError) as exc:
        view(f"http://127.0.0.1:{free_port()}")
    assert exc.value.message.startswith("Prometheus unreachable: ") and "refused" in exc.value.message


def test_an_http_proxy_in_the_environment_is_used(httpserver, monkeypatch):
    """HTTP_PROXY applies to the fleet's queries as to any httpx request (the proxy here answers for Prometheus)."""
    httpserver.expect_request("/api/v1/query").respond_with_handler(answer_good)
    monkeypatch.setenv("HTTP_PROXY", httpserver.url_for("/").rstrip("/"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    got = fleet.fetch_fleet("http://prometheus.invalid:9090", timeout_s=5)
    assert [n.name for n in got.nodes] == ["node-a"]
