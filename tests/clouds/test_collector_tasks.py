"""The collector runs the clouds poll and the alerts evaluation as periodic tasks (daemon and in-app)."""

from __future__ import annotations

from gpuspend.daemon import Collector
from gpuspend.store import connect
from tests.alerts.snapshots import config
from tests.clouds.test_clouds import KEY, lambda_instance

NOW = 1_794_744_000_000


def test_collector_polls_clouds_on_schedule_and_evaluates_alerts(db_path, tmp_path, httpserver, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("LAMBDA_API_KEY", KEY)
    httpserver.expect_request("/api/v1/instances").respond_with_json({"data": [lambda_instance()]})
    cfg = config(tmp_path, [], clouds={"lambda": {"api_key": "${LAMBDA_API_KEY}",
                                                  "url": httpserver.url_for("/api/v1")}, "interval": "5m"},
                 alerts={"collector_stopped": "5m"})
    with Collector(db_path, cfg, demo=True, interval_s=60) as col:
        for k in range(7):                                 # 6 minutes, one tick a minute
            col.tick(NOW + k * 60_000)
    assert len(httpserver.log) == 2                        # at 0 and at 5 min
    conn = connect(db_path)
    assert conn.execute("SELECT COUNT(*) FROM cloud_spend").fetchone()[0] == 2
    assert conn.execute("SELECT COUNT(*) FROM gpus WHERE source = 'lambda'").fetchone()[0] == 8
    # the alerts task ran: the baseline for spend spikes is being recorded
    assert conn.execute("SELECT SUM(n) FROM run_rate_hours").fetchone()[0] >= 1
    conn.close()
    assert KEY not in capsys.readouterr().err
