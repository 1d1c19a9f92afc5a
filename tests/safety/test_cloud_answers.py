"""GPU-cloud answers are data: bounded, validated, cleaned and redacted before anything is written or printed.
A real HTTP server on 127.0.0.1 answers like RunPod's GraphQL API."""

from __future__ import annotations

import re

import pytest

from gpuspend.collectors.clouds import poll
from gpuspend.config import load_config
from gpuspend.store import connect

T0 = 1794744000000
KEY = "rpa_SAFETYKEY987"


@pytest.fixture
def conn(db_path):
    c = connect(db_path)
    yield c
    c.close()


def _cfg(tmp_path, url: str):
    p = tmp_path / "config.yaml"
    p.write_text(f"clouds:\n  runpod:\n    api_key: ${{RUNPOD_API_KEY}}\n    url: {url}\n")
    p.chmod(0o600)
    return load_config(p)


def _pod(**over) -> dict:
    pod = {"id": "pod1", "name": "train", "costPerHr": 5.38, "desiredStatus": "RUNNING", "gpuCount": 2,
           "machine": {"gpuDisplayName": "H100 SXM"}, "runtime": {"uptimeInSeconds": 1, "gpus": []}}
    return pod | over


def _answer(*pods: dict) -> dict:
    return {"data": {"myself": {"currentSpendPerHr": 5.38, "pods": list(pods)}}}


def _counts(conn) -> tuple[int, int]:
    return (conn.execute("SELECT COUNT(*) FROM gpus").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM cloud_instances").fetchone()[0])


@pytest.mark.parametrize(("pod", "said"), [
    (_pod(gpuCount=1e9), "GPU count 1000000000.0 is not a whole number from 0 to 64"),
    (_pod(gpuCount=2.5), "GPU count 2.5 is not a whole number from 0 to 64"),
    (_pod(gpuCount=-1), "GPU count -1.0 is not a whole number from 0 to 64"),
    (_pod(costPerHr=-3), "price per hour -3.0 is not a price from 0 to 100000"),
])
def test_an_impossible_pod_is_one_error_and_nothing_is_written(conn, tmp_path, httpserver, monkeypatch, pod, said):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    httpserver.expect_request("/graphql", method="POST").respond_with_json(_answer(pod))
    result = poll.poll_clouds(conn, _cfg(tmp_path, httpserver.url_for("/graphql")), T0, backoff_s=0)
    assert len(result.errors) == 1 and said in result.errors[0], result.errors
    assert "runpod instance train" in result.errors[0]
    assert _counts(conn) == (0, 0)              # a billion GPU rows once filled the WAL


def test_cost_per_hour_1e400_is_refused_not_infinite(conn, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    body = '{"data": {"myself": {"currentSpendPerHr": 1, "pods": [{"id": "p", "name": "x", "costPerHr": 1e400, ' \
           '"desiredStatus": "RUNNING", "gpuCount": 1, "machine": {"gpuDisplayName": "H100"}}]}}}'
    httpserver.expect_request("/graphql", method="POST").respond_with_data(body, content_type="application/json")
    result = poll.poll_clouds(conn, _cfg(tmp_path, httpserver.url_for("/graphql")), T0, backoff_s=0)
    assert len(result.errors) == 1 and "price per hour inf is not a price" in result.errors[0]
    assert _counts(conn) == (0, 0)


def test_names_are_stored_without_control_characters(conn, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    httpserver.expect_request("/graphql", method="POST").respond_with_json(
        _answer(_pod(name="evil\x1b]0;pwned\x07\nname", machine={"gpuDisplayName": "H100\x1b[31m"})))
    result = poll.poll_clouds(conn, _cfg(tmp_path, httpserver.url_for("/graphql")), T0, backoff_s=0)
    assert result.errors == []
    names = [r[0] for r in conn.execute("SELECT name FROM cloud_instances")]
    names += [r[0] for r in conn.execute("SELECT host FROM gpus")]
    assert names and not any(re.search(r"[\x00-\x1f\x7f]", n) for n in names), names


def test_graphql_error_text_reaches_stderr_inert_and_the_url_key_never_shows(conn, tmp_path, httpserver,
                                                                              monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    httpserver.expect_request("/graphql", method="POST").respond_with_json(
        {"errors": [{"message": "boom\x1b[2J\x07 internal\r\nerror"}]})
    url = httpserver.url_for("/graphql") + "?api_key=URLKEY555"
    result = poll.poll_clouds(conn, _cfg(tmp_path, url), T0, backoff_s=0)
    (error,) = result.errors
    assert "GraphQL error: boom" in error
    assert not re.search(r"[\x00-\x1f\x7f]", error), repr(error)
    assert "URLKEY555" not in error and "api_key" not in error and KEY not in error


def test_http_errors_never_print_a_key_carried_in_the_url(conn, tmp_path, httpserver, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    httpserver.expect_request("/graphql", method="POST").respond_with_data("down", status=503)
    url = httpserver.url_for("/graphql").replace("http://", "http://user:PASSWD1@") + "?api_key=URLKEY555"
    result = poll.poll_clouds(conn, _cfg(tmp_path, url), T0, backoff_s=0)
    (error,) = result.errors
    assert "server error (HTTP 503)" in error
    assert "URLKEY555" not in error and "PASSWD1" not in error and KEY not in error
