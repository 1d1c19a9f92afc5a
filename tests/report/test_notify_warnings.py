"""`gpuspend --report --notify` tells cron when a notification could not be delivered (a warning on
stderr, without the webhook URL), and the exit code still means what --fail-on says."""

from __future__ import annotations

from gpuspend.rollup import COLLECTOR_SEEN_KEY
from gpuspend.store import set_meta, transaction
from tests.conftest import run_cli
from tests.costing.builders import (
    DAY0_MS,
    MIN,
    NOW_MS,
    add_gpus,
    add_minutes,
    add_samples,
    new_store,
    set_watermark,
)

HOOK = "/hooks/secretToken77"


def _idle_box(path) -> None:
    """One H100 free-idle for the last 2 hours: an open idle episode, so an idle alert to deliver."""
    conn = new_store(path)
    (gid,) = add_gpus(conn, 1)
    add_minutes(conn, gid, DAY0_MS, 600)
    add_minutes(conn, gid, NOW_MS - 2 * 3600_000, 110, busy=0, free=60, util=0)
    set_watermark(conn, NOW_MS - 10 * MIN)
    add_samples(conn, gid, NOW_MS - 10 * MIN, NOW_MS + 1, 2000, 0.0)     # the live tail, still idle
    with transaction(conn):                                               # ... written by a running collector
        set_meta(conn, COLLECTOR_SEEN_KEY, str(NOW_MS))
    conn.close()


def test_delivery_errors_are_warnings_and_keep_the_exit_code(tmp_path, httpserver):
    httpserver.expect_request(HOOK, method="POST").respond_with_data("no such hook", status=400)
    db = tmp_path / "box.db"
    _idle_box(db)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("rates: {per_model: {H100: 2.0}}\nnotify:\n  targets:\n"
                   "    - name: team\n      kind: webhook\n      url: ${HOOK_URL}\n")
    cfg.chmod(0o600)
    env = {"HOOK_URL": httpserver.url_for(HOOK)}
    base = ("--db", str(db), "--config", str(cfg), "--report", "--no-sample")
    r = run_cli(*base, "--notify", env=env)
    assert r.returncode == 0, r.stderr                      # the report itself is fine
    assert len(httpserver.log) == 1                          # it was tried (400: not retried)
    warnings = [line for line in r.stderr.splitlines() if line.startswith("gpuspend: warning: --notify:")]
    assert len(warnings) == 1 and "400" in warnings[0], r.stderr
    assert "secretToken77" not in r.stderr + r.stdout
    assert "Now" in r.stdout                                 # the report still went to stdout
    failing = run_cli(*base, "--notify", "--fail-on", "idle", env=env)
    assert failing.returncode == 1                           # alerts active: 1, as without --notify
