"""Delivery to real HTTP servers on 127.0.0.1: payloads, retries, timeouts, 429, redaction, de-duplication."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

from gpuspend import alerts, notify
from gpuspend.store import connect
from tests.alerts.snapshots import HOUR_MS, MIN_MS, config, gpu, proc, snapshot
from tests.conftest import ROOT

T0 = 1794744000000
SECRET_PATH = "/services/T000/B000/s3cr3tXYZ"


@pytest.fixture
def conn(db_path):
    c = connect(db_path)
    yield c
    c.close()


def slack_target(httpserver, **extra):
    return {"name": "team", "kind": "slack", "url": httpserver.url_for(SECRET_PATH), "retries": 2, **extra}


def open_idle_alert(conn, cfg, t=T0, minutes=75.0, procs=None):
    g = gpu(idle_for_s=minutes * 60, episode_open=True, waste=minutes / 30, state="held-idle")
    return alerts.evaluate(conn, cfg, snapshot(t, gpus=[g], processes=procs or [proc()]), t)


def bodies(httpserver) -> list[dict]:
    return [json.loads(req.data) for req, _ in httpserver.log]


def status(conn) -> list[tuple]:
    return conn.execute("SELECT event, status, attempts FROM notifications ORDER BY id").fetchall()


def test_slack_message_is_readable_blocks(conn, tmp_path, httpserver):
    httpserver.expect_request(SECRET_PATH, method="POST").respond_with_data("ok")
    cfg = config(tmp_path, [slack_target(httpserver)])
    open_idle_alert(conn, cfg, procs=[proc(user="alice", command="jupyter-lab <notebook> & *fun*")])
    result = notify.deliver_pending(conn, cfg, T0)
    assert (result.sent, result.errors) == (1, [])
    msg = bodies(httpserver)[0]
    fields = {f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1]
              for b in msg["blocks"] if "fields" in b for f in b["fields"]}
    assert fields["GPU"] == "GPU 3 NVIDIA H100 80GB HBM3 on node-1"
    assert fields["Held by"].startswith("alice (jupyter-lab &lt;notebook&gt; &amp; ")   # Slack escaping
    assert "<" not in fields["Held by"] and fields["Idle for"] == "1h15m"
    assert fields["Wasted so far"] == "$2.50"
    assert msg["text"].startswith("Alert: GPU 3")
    assert status(conn) == [("open", "sent", 1)]


def test_ntfy_message_with_title_priority_tags_and_token(conn, tmp_path, httpserver):
    httpserver.expect_request("/", method="POST").respond_with_json({"id": "x"})
    cfg = config(tmp_path, [{"name": "phone", "kind": "ntfy", "url": httpserver.url_for("/"), "topic": "gpus",
                             "token": "tk_secret"}])
    open_idle_alert(conn, cfg)
    assert notify.deliver_pending(conn, cfg, T0).sent == 1
    req = httpserver.log[0][0]
    body = json.loads(req.data)
    assert req.headers["Authorization"] == "Bearer tk_secret"
    assert body["topic"] == "gpus" and body["priority"] == 4 and "warning" in body["tags"]
    assert body["title"].startswith("Alert: GPU 3") and "Wasted so far: $2.50" in body["message"]


def test_generic_webhook_is_alertmanager_shaped_and_resolves(conn, tmp_path, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    cfg = config(tmp_path, [{"name": "ops", "kind": "webhook", "url": httpserver.url_for("/hook")}])
    open_idle_alert(conn, cfg)
    alerts.evaluate(conn, cfg, snapshot(T0 + HOUR_MS, gpus=[gpu(state="busy")]), T0 + HOUR_MS)
    assert notify.deliver_pending(conn, cfg, T0 + HOUR_MS).sent == 2
    firing, resolved = bodies(httpserver)
    assert firing["version"] == "4" and firing["status"] == "firing" and firing["receiver"] == "ops"
    a = firing["alerts"][0]
    assert a["labels"]["alertname"] == "GpuIdle" and a["labels"]["gpu"] == "GPU-aaaa"
    assert a["startsAt"] == "2026-11-15T10:45:00Z"       # when the GPU went idle (75 min before) and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["annotations"]["dollars"] == "2.50"
    r = resolved["alerts"][0]
    assert resolved["status"] == "resolved" and r["endsAt"] == "2026-11-15T13:00:00Z"
    assert r["fingerprint"] == a["fingerprint"]


def test_retry_on_500_then_delivered(conn, tmp_path, httpserver):
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("oops", status=503)
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("ok")
    cfg = config(tmp_path, [slack_target(httpserver)])
    open_idle_alert(conn, cfg)
    result = notify.deliver_pending(conn, cfg, T0, backoff_s=0.01)
    assert result.sent == 1 and len(httpserver.log) == 3
    assert status(conn) == [("open", "sent", 1)]


def test_no_retry_on_400_and_the_url_is_never_in_the_error(conn, tmp_path, httpserver):
    httpserver.expect_request(SECRET_PATH).respond_with_data(f"invalid_payload for {SECRET_PATH}", status=400)
    cfg = config(tmp_path, [slack_target(httpserver)])
    open_idle_alert(conn, cfg)
    result = notify.deliver_pending(conn, cfg, T0, backoff_s=0.01)
    assert (result.sent, result.failed) == (0, 1) and len(httpserver.log) == 1
    assert status(conn) == [("open", "failed", 1)]
    stored = conn.execute("SELECT last_error FROM notifications").fetchone()[0]
    for text in (stored, *result.errors):
        assert "HTTP 400" in text and "s3cr3t" not in text and str(httpserver.port) not in text
    # a failed (4xx) row is not retried later
    assert notify.deliver_pending(conn, cfg, T0 + HOUR_MS).sent == 0 and len(httpserver.log) == 1


def test_timeout_keeps_the_message_and_a_later_run_delivers_it(conn, tmp_path, httpserver):
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    httpserver.expect_ordered_request(SECRET_PATH).respond_with_handler(slow)
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("ok")
    cfg = config(tmp_path, [slack_target(httpserver, timeout=0.2, retries=0)])
    open_idle_alert(conn, cfg)
    first = notify.deliver_pending(conn, cfg, T0)
    assert first.sent == 0 and first.retrying == 1
    assert "no answer within 0.2s" in first.errors[0] and "s3cr3t" not in first.errors[0]
    row = conn.execute("SELECT status, next_attempt, claimed_by FROM notifications").fetchone()
    assert row == ("pending", T0 + 60_000, None)
    assert notify.deliver_pending(conn, cfg, T0 + 30_000).sent == 0            # not due yet
    time.sleep(0.5)                                                             # let the slow handler finish
    assert notify.deliver_pending(conn, cfg, T0 + 60_000).sent == 1
    assert status(conn) == [("open", "sent", 2)]


def test_connection_refused_is_retried_later_without_printing_the_url(conn, tmp_path):
    cfg = config(tmp_path, [{"name": "team", "kind": "slack", "url": f"http://127.0.0.1:9{SECRET_PATH}",
                             "retries": 1}])
    two = [gpu(uuid=f"GPU-{i}", idle_for_s=3600, episode_open=True, waste=2.0) for i in range(2)]
    alerts.evaluate(conn, cfg, snapshot(T0, gpus=two), T0)
    result = notify.deliver_pending(conn, cfg, T0, backoff_s=0.01)
    assert result.retrying == 2 and len(result.errors) == 1 and "connection failed" in result.errors[0]
    assert "s3cr3t" not in result.errors[0] and "127.0.0.1" not in result.errors[0]
    # the second message is not tried against a target that just failed: it waits with the first
    assert status(conn) == [("open", "pending", 1), ("open", "pending", 0)]
    assert {r[0] for r in conn.execute("SELECT next_attempt FROM notifications")} == {T0 + 60_000}


def test_429_honours_a_short_retry_after_in_process(conn, tmp_path, httpserver):
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("slow down", status=429,
                                                                     headers={"Retry-After": "1"})
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("ok")
    cfg = config(tmp_path, [slack_target(httpserver)])
    open_idle_alert(conn, cfg)
    start = time.monotonic()
    assert notify.deliver_pending(conn, cfg, T0, backoff_s=0.01).sent == 1
    assert time.monotonic() - start >= 0.9                                      # waited as asked
    assert len(httpserver.log) == 2


def test_429_with_a_long_retry_after_is_scheduled_not_slept(conn, tmp_path, httpserver):
    httpserver.expect_request(SECRET_PATH).respond_with_data("slow down", status=429, headers={"Retry-After": "120"})
    cfg = config(tmp_path, [slack_target(httpserver)])
    open_idle_alert(conn, cfg)
    result = notify.deliver_pending(conn, cfg, T0, backoff_s=0.01)
    assert result.retrying == 1 and len(httpserver.log) == 1
    assert conn.execute("SELECT next_attempt FROM notifications").fetchone()[0] == T0 + 120_000


def test_messages_for_one_alert_keep_their_order(conn, tmp_path, httpserver):
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("down", status=500)
    cfg = config(tmp_path, [slack_target(httpserver, retries=0)])
    open_idle_alert(conn, cfg)
    alerts.evaluate(conn, cfg, snapshot(T0 + MIN_MS, gpus=[gpu(state="busy")]), T0 + MIN_MS)
    result = notify.deliver_pending(conn, cfg, T0 + MIN_MS)
    assert len(httpserver.log) == 1 and result.retrying == 2     # 'resolved' waits for 'open'
    httpserver.clear()
    httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
    assert notify.deliver_pending(conn, cfg, T0 + 5 * MIN_MS).sent == 2
    assert [b["text"].split(":")[0] for b in bodies(httpserver)] == ["Alert", "Resolved"]


def test_two_processes_evaluating_and_delivering_at_once_send_each_message_once(db_path, tmp_path, httpserver):
    httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
    cfg_path = tmp_path / "config.yaml"
    config(tmp_path, [slack_target(httpserver)])
    connect(db_path).close()                                      # schema in place before the race
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def race(t: int, minutes: float, tag: str) -> list[str]:
        go = tmp_path / f"go-{tag}"
        procs = [subprocess.Popen([sys.executable, "-m", "tests.alerts.race_worker", str(db_path), str(cfg_path),
                                   str(go), str(t), str(minutes)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(1.5)                                           # both imported and waiting
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
        return [o for o, _ in outs]

    race(T0, 20, "open")
    race(T0 + 10 * MIN_MS, 30, "again")
    race(T0 + 5 * HOUR_MS, 320, "repeat")
    race(T0 + 6 * HOUR_MS, 0, "resolved")
    texts = [b["text"].split(":")[0] for b in bodies(httpserver)]
    assert texts == ["Alert", "Still open", "Resolved"]


def test_broken_targets_are_reported_without_secrets(conn, tmp_path):
    cfg = config(tmp_path, [{"name": "a", "kind": "ntfy"}, {"name": "c", "kind": "slack"}])
    open_idle_alert(conn, cfg)
    result = notify.deliver_pending(conn, cfg, T0)
    assert result.errors == ["notify target a: ntfy needs a topic",
                             "notify target c: no url (is its environment variable set?)"]
    # an unknown kind never gets this far: the config itself is refused (tests/safety/test_config_values.py)


def test_webhook_url_from_the_environment(conn, tmp_path, httpserver, monkeypatch):
    httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", httpserver.url_for(SECRET_PATH))
    path = tmp_path / "env.yaml"
    path.write_text("notify:\n  targets:\n    - name: team\n      kind: slack\n      url: ${SLACK_WEBHOOK_URL}\n")
    path.chmod(0o600)
    from gpuspend.config import load_config

    cfg = load_config(path)
    open_idle_alert(conn, cfg)
    assert notify.deliver_pending(conn, cfg, T0).sent == 1
    assert Path(path).read_text().count("s3cr3t") == 0
