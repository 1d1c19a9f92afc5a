"""`gpuspend --report --notify` from cron, as a user runs it: the demo box, a Slack-shaped server on
127.0.0.1; running it again sends nothing twice, and the webhook URL is never printed."""

from __future__ import annotations

import json

from tests.conftest import run_cli

HOOK = "/services/TDEMO/BDEMO/cronSecret42"


def test_report_notify_sends_each_alert_once_across_runs(tmp_path, httpserver):
    httpserver.expect_request(HOOK, method="POST").respond_with_data("ok")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("notify:\n  targets:\n    - name: team\n      kind: slack\n      url: ${HOOK_URL}\n"
                   "budget:\n  monthly: 20000\n  thresholds: [80, 100]\n  basis: [forecast]\n")
    cfg.chmod(0o600)
    env = {"HOOK_URL": httpserver.url_for(HOOK)}
    args = ("--demo", "--db", str(tmp_path / "demo.db"), "--config", str(cfg), "--report", "--notify")
    first = run_cli(*args, env=env)
    assert first.returncode in (0, 1), first.stderr
    texts = [json.loads(req.data)["text"] for req, _ in httpserver.log]
    # the demo month is past both thresholds at once: one message for the budget, carrying the highest
    assert any(t.startswith("Alert: Budget 100% forecast") for t in texts)
    assert not any(t.startswith("Alert: Budget 80% forecast") for t in texts)
    assert any(" idle for " in t for t in texts)                    # the demo box has idle GPUs
    assert len(texts) == len(set(texts))
    second = run_cli(*args, env=env)
    assert second.returncode == first.returncode
    assert len(httpserver.log) == len(texts)                        # nothing sent twice
    for out in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert "cronSecret42" not in out
