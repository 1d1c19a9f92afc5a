"""`gpuspend prices --refresh` against recorded answers on 127.0.0.1: dated rows with their source, the change
since the previous fetch, per-source failure, validation, and the collector's schedule.

Expected prices are the recorded answers divided by hand: Azure ND96isr_H100_v5 $98.32 / 8 GPUs = $12.29,
NC40ads_H100_v5 (one H100 NVL) $6.98; SkyPilot AWS p5.48xlarge $98.32 / 8 = $12.29, then $55.04 / 8 = $6.88
(-44.0%); RunPod secure H100 SXM $2.99; Vast H100 SXM offers $17.07/8, $1.80/1, $4.40/2 -> median $2.13375.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from gpuspend import pricing
from gpuspend.collectors.prices import refresh as prices_refresh
from gpuspend.collectors.prices.common import Http
from gpuspend.config import load_config
from gpuspend.store import connect
from tests.conftest import FIXED_NOW_S, run_cli
from tests.prices.conftest import loopback_only, query_of, recorded

NOW_MS = FIXED_NOW_S * 1000
DAY_MS = 86_400_000
FETCH_DAY = "2026-11-15"          # the fixed clock's date: every fetched row is dated by it


def _refresh(db: Path, cfg_path: Path, *args: str, now: str | None = None) -> tuple[int, dict, str]:
    env = {"GPUSPEND_NOW": now} if now else None
    r = run_cli("--db", str(db), "--config", str(cfg_path), "prices", "--refresh", "--json", *args, env=env)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else {}), r.stderr


def _row(doc: dict, provider: str, gpu: str, sku: str | None = None) -> dict:
    (row,) = [p for p in doc["prices"] if p["provider"] == provider and p["gpu"] == gpu
              and p["origin"] == "fetched" and (sku is None or p["sku"] == sku)]
    return row


def _history(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT provider, gpu, sku, usd_per_hour, fetched_at, source_url FROM price_history "
                            "ORDER BY provider, gpu, sku, fetched_at").fetchall()
    finally:
        conn.close()


def test_refresh_stores_dated_rows_with_their_source(sources: HTTPServer, write_config, db_path: Path) -> None:
    rc, doc, err = _refresh(db_path, write_config(sources))
    assert rc == 0, err
    base = sources.url_for("").rstrip("/")
    nvl, sxm = _row(doc, "azure", "H100-NVL"), _row(doc, "azure", "H100-SXM")
    assert nvl["usd_per_gpu_hour"] == pytest.approx(6.98) and nvl["sku"] == "Standard_NC40ads_H100_v5"
    assert sxm["usd_per_gpu_hour"] == pytest.approx(98.32 / 8)         # Linux pay-as-you-go, not Windows/Spot
    assert _row(doc, "azure", "A100-80GB-PCIE")["usd_per_gpu_hour"] == pytest.approx(3.673)  # not Low Priority
    assert _row(doc, "aws", "H100-SXM")["sku"] == "p5.48xlarge"
    assert _row(doc, "aws", "A10G")["usd_per_gpu_hour"] == pytest.approx(1.006)     # us-east-1, not us-west-2
    assert _row(doc, "runpod", "H100-NVL")["usd_per_gpu_hour"] == pytest.approx(2.79)
    vast = _row(doc, "vast", "H100-SXM")
    assert vast["kind"] == "market" and vast["usd_per_gpu_hour"] == pytest.approx(2.13375)
    assert vast["sku"] == "median of 3 on-demand offers"
    for row in (nvl, sxm, vast):
        assert row["as_of"] == FETCH_DAY and row["source"].startswith(base)
    # every stored price carries the fetch time and the URL it came from
    hist = _history(db_path)
    assert hist and all(h[4] == NOW_MS and h[5].startswith(base) for h in hist)
    lam = [s for s in doc["refresh"] if s["source"] == "lambda"]
    assert lam == [{"source": "lambda", "url": f"{base}/lambda/api/v1", "ok": False, "rows": 0, "error": None,
                    "skipped": "needs clouds.lambda.api_key"}]


def test_prices_are_validated_never_believed(sources: HTTPServer, write_config, db_path: Path) -> None:
    rc, doc, err = _refresh(db_path, write_config(sources))
    assert rc == 0, err
    fetched = {(p["provider"], p["gpu"]) for p in doc["prices"] if p["origin"] == "fetched"}
    assert ("azure", "T4") not in fetched            # retailPrice 1e999: not finite
    assert ("aws", "T4") not in fetched              # Price -0.526: not positive
    assert ("vast", "GEFORCE-RTX-4090") not in fetched   # dph_total "NaN"
    assert ("vast", "A100-40GB-SXM") not in fetched  # one offer is not a market
    assert ("runpod", "UNKNOWN") not in fetched      # $0 is not a price
    assert all(0 < p["usd_per_gpu_hour"] < 100 for p in doc["prices"])


def test_a_lower_price_on_the_second_fetch_shows_the_change(sources: HTTPServer, write_config,
                                                            db_path: Path) -> None:
    cfg = write_config(sources)
    assert _refresh(db_path, cfg)[0] == 0
    sources.clear()
    page = json.loads(recorded("azure_retail.json"))
    from tests.prices.conftest import azure_handler

    sources.expect_request("/azure/api/retail/prices").respond_with_handler(azure_handler(page))
    sources.expect_request("/skypilot/catalogs/v7/aws/vms.csv").respond_with_data(
        recorded("skypilot_aws_vms.csv").replace(",98.32,", ",55.04,"), content_type="text/csv")
    sources.expect_request("/runpod/graphql", method="POST").respond_with_data(recorded("runpod_gpu_types.json"))
    sources.expect_request("/vast/api/v0/bundles/").respond_with_data(recorded("vast_bundles.json"))
    rc, doc, err = _refresh(db_path, cfg, now="2026-11-22T12:00:00+00:00")
    assert rc == 0, err
    p5 = _row(doc, "aws", "H100-SXM")
    assert p5["usd_per_gpu_hour"] == pytest.approx(6.88) and p5["previous_usd_per_hour"] == pytest.approx(98.32)
    assert p5["change_pct"] == pytest.approx((55.04 - 98.32) / 98.32 * 100, abs=0.01)   # -44.02%
    assert p5["change"] == "-44% since 2026-11-15" and p5["as_of"] == "2026-11-22"
    assert _row(doc, "azure", "H100-NVL")["change"] == "unchanged since 2026-11-15"
    text = run_cli("--db", str(db_path), "--config", str(cfg), "prices", "--model", "H100",
                   env={"GPUSPEND_NOW": "2026-11-22T12:00:00+00:00"}).stdout
    (line,) = [ln for ln in text.splitlines() if ln.startswith("aws ") and "p5.48xlarge" in ln]
    assert "6.880" in line and "-44% since 2026-11-15" in line
    assert len(_history(db_path)) == 2 * len([h for h in _history(db_path) if h[4] == NOW_MS])   # kept both


def test_a_failing_source_keeps_its_previous_rows(sources: HTTPServer, write_config, db_path: Path) -> None:
    cfg = write_config(sources)
    assert _refresh(db_path, cfg)[0] == 0
    before = _history(db_path)
    sources.clear()
    sources.expect_request("/azure/api/retail/prices").respond_with_data("upstream down", status=503)
    sources.expect_request("/skypilot/catalogs/v7/aws/vms.csv").respond_with_data("<html>not a catalog</html>")
    sources.expect_request("/runpod/graphql", method="POST").respond_with_data("{not json")
    sources.expect_request("/vast/api/v0/bundles/").respond_with_data(
        recorded("vast_bundles.json").replace("17.07", "16.00"), content_type="application/json")
    r = run_cli("--db", str(db_path), "--config", str(cfg), "prices", "--refresh",
                env={"GPUSPEND_NOW": "2026-11-16T12:00:00+00:00"})
    assert r.returncode == 0, r.stderr                      # vast answered: exit 0
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 3 and "Traceback" not in r.stderr
    assert any("azure" in ln and "HTTP 503" in ln and "previous prices are kept" in ln for ln in err)
    assert any("skypilot-aws" in ln and "column" in ln for ln in err)
    assert any("runpod" in ln and "not JSON" in ln for ln in err)
    after = _history(db_path)
    assert set(before) <= set(after) and {h[0] for h in after if h not in before} == {"vast"}
    doc = json.loads(run_cli("--db", str(db_path), "--config", str(cfg), "prices", "--json",
                             env={"GPUSPEND_NOW": "2026-11-16T12:00:00+00:00"}).stdout)
    assert _row(doc, "azure", "H100-NVL")["as_of"] == FETCH_DAY          # the old fetch is still current
    assert _row(doc, "vast", "H100-SXM")["as_of"] == "2026-11-16"


def test_every_source_failing_exits_3_and_leaves_the_database(httpserver: HTTPServer, write_config,
                                                              db_path: Path) -> None:
    httpserver.expect_request("/azure/api/retail/prices").respond_with_data("", status=500)
    httpserver.expect_request("/runpod/graphql", method="POST").respond_with_data("[]")
    httpserver.expect_request("/vast/api/v0/bundles/").respond_with_data('{"offers": "none"}')
    # (no SkyPilot handler: the server answers 500 for an unexpected request)
    cfg = write_config(httpserver)
    r = run_cli("--db", str(db_path), "--config", str(cfg), "prices", "--refresh")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 4 and "Traceback" not in r.stderr
    assert not db_path.exists()                             # nothing fetched: no database made for it
    connect(db_path).close()
    before = _dump(db_path)
    r = run_cli("--db", str(db_path), "--config", str(cfg), "prices", "--refresh", "--json")
    assert r.returncode == 3 and not [s for s in json.loads(r.stdout)["refresh"] if s["ok"]]
    assert _dump(db_path) == before                         # an existing one is left exactly as it was


def _dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_the_azure_mirror_url_keeps_the_query(sources: HTTPServer, write_config, db_path: Path) -> None:
    cfg = load_config(write_config(sources))
    conn = connect(db_path)
    try:
        prices_refresh.refresh(conn, cfg, NOW_MS, http=Http(5.0, loopback_only()))
    finally:
        conn.close()
    azure_urls = [str(req.url) for req, _resp in sources.log if "/azure/" in req.path]
    assert azure_urls, "the Azure mirror was not asked"
    q = query_of(azure_urls[0])
    assert q["api-version"] == ["2023-01-01-preview"]
    assert "serviceName eq 'Virtual Machines'" in q["$filter"][0] and "armRegionName eq 'eastus'" in q["$filter"][0]
    assert "priceType eq 'Consumption'" in q["$filter"][0]


def test_lambda_uses_the_users_key(httpserver: HTTPServer, write_config, db_path: Path) -> None:
    body = {"data": {
        "gpu_1x_h100_pcie": {"instance_type": {"name": "gpu_1x_h100_pcie", "description": "1x H100 (80 GB PCIe)",
                                               "gpu_description": "H100 (80 GB PCIe)", "price_cents_per_hour": 249,
                                               "specs": {"vcpus": 26, "memory_gib": 200, "gpus": 1}},
                             "regions_with_capacity_available": []},
        "gpu_8x_h100_sxm5": {"instance_type": {"name": "gpu_8x_h100_sxm5", "description": "8x H100 (80 GB SXM5)",
                                               "gpu_description": "H100 (80 GB SXM5)", "price_cents_per_hour": 2392,
                                               "specs": {"vcpus": 208, "memory_gib": 1800, "gpus": 8}},
                             "regions_with_capacity_available": []}}}
    httpserver.expect_request("/lambda/api/v1/instance-types",
                              headers={"Authorization": "Bearer sk-test-123"}).respond_with_json(body)
    cfg = load_config(write_config(httpserver, "clouds:\n  lambda:\n    api_key: sk-test-123\n"))
    for name in ("azure", "skypilot", "runpod", "vast"):       # only Lambda: `off` skips a source
        setattr(cfg.prices.sources, name, "off")
    conn = connect(db_path)
    try:
        results = prices_refresh.refresh(conn, cfg, NOW_MS, http=Http(5.0, loopback_only()))
        (res,) = [r for r in results if r.source == "lambda"]
        assert res.ok, res.error
        cat = pricing.catalog_for(conn)
    finally:
        conn.close()
    assert cat.lookup("lambda", "H100-PCIE").usd_per_gpu_hour == pytest.approx(2.49)
    assert cat.lookup("lambda", "H100-SXM").usd_per_gpu_hour == pytest.approx(23.92 / 8)


def test_the_collector_refreshes_on_its_schedule_only(sources: HTTPServer, tmp_path: Path, write_config,
                                                      db_path: Path) -> None:
    conn = connect(db_path)
    try:
        from gpuspend.collectors.prices.task import refresh_task  # what the daemon's worker runs

        off = load_config(write_config(sources))                        # default: never
        refresh_task(conn, off, NOW_MS)
        assert len(sources.log) == 0
        on = load_config(write_config(sources, "  refresh: 1d\n", name="on.yaml"))
        prices_refresh._attempted.clear()
        refresh_task(conn, on, NOW_MS)
        asked = len(sources.log)
        assert asked > 0
        refresh_task(conn, on, NOW_MS + 3600_000)                       # an hour later: not due
        assert len(sources.log) == asked
        refresh_task(conn, on, NOW_MS + DAY_MS)                         # a day later: due
        assert len(sources.log) == 2 * asked
        fetched = conn.execute("SELECT DISTINCT fetched_at FROM price_fetches ORDER BY 1").fetchall()
        assert fetched == [(NOW_MS,), (NOW_MS + DAY_MS,)]
    finally:
        conn.close()


def test_the_daemon_runs_the_refresh_as_a_task() -> None:
    from gpuspend.daemon import PERIODIC_TASKS

    assert ("prices", 60.0, "gpuspend.collectors.prices.task:refresh_task") in PERIODIC_TASKS


def test_fetched_prices_rate_the_gpus_and_say_where_they_come_from(sources: HTTPServer, write_config,
                                                                   tmp_path: Path, db_path: Path) -> None:
    from gpuspend.costing import load_gpus
    from gpuspend.store import transaction

    conn = connect(db_path)
    try:
        with transaction(conn):
            for i, name in enumerate(("NVIDIA H100 NVL", "NVIDIA H100 80GB HBM3")):
                conn.execute("INSERT INTO gpus (uuid, host, idx, name, model, source, first_seen, last_seen) "
                             "VALUES (?, 'box1', ?, ?, NULL, 'nvml', 0, ?)", (f"GPU-{i}", i, name, NOW_MS))
        gpus = load_gpus(conn)
        runpod_cfg = load_config(write_config(sources, "provider: runpod\n", name="runpod.yaml"))
        before = [pricing.resolve_rate(runpod_cfg, conn, g, now_ms=NOW_MS) for g in gpus]
        # shipped: RunPod has no NVL row, so the NVL borrows the SXM price and says so
        assert before[0].per_gpu_hour == pytest.approx(3.99) and "no H100-NVL price" in before[0].label
        prices_refresh.refresh(conn, runpod_cfg, NOW_MS, http=Http(5.0, loopback_only()))
        after = [pricing.resolve_rate(runpod_cfg, conn, g, now_ms=NOW_MS) for g in gpus]
        assert after[0].per_gpu_hour == pytest.approx(2.79) and after[1].per_gpu_hour == pytest.approx(2.99)
        assert after[0].label == f"catalog: runpod H100-NVL $2.79/h (as of {FETCH_DAY}, fetched)"
        vast_cfg = load_config(write_config(sources, "provider: vast\n", name="vast.yaml"))
        vast = pricing.resolve_rate(vast_cfg, conn, gpus[1], now_ms=NOW_MS)
        assert vast.per_gpu_hour == pytest.approx(2.13375) and "market median" in vast.label
    finally:
        conn.close()


def test_the_shipped_catalog_is_refreshed_by_the_same_code(sources: HTTPServer, write_config, tmp_path: Path,
                                                          db_path: Path) -> None:
    out = tmp_path / "prices.yaml"
    r = run_cli("--db", str(db_path), "--config", str(write_config(sources)), "prices", "--refresh",
                "--write-catalog", str(out))
    assert r.returncode == 0, r.stderr
    cat = pricing.parse_catalog(out.read_text(encoding="utf-8"))
    assert cat.lookup("azure", "H100-NVL").as_of == FETCH_DAY          # fetched rows, dated, with their URL
    assert cat.lookup("azure", "H100-NVL").source.startswith(sources.url_for("").rstrip("/"))
    assert cat.lookup("coreweave", "H100-SXM") == pricing.load_catalog().lookup("coreweave", "H100-SXM")  # kept
    assert cat.lookup("vast", "H100-SXM").kind == "market"
    shipped = pricing.load_catalog()
    assert pricing.parse_catalog(pricing.dump_catalog(shipped)).entries == tuple(
        sorted(shipped.entries, key=lambda e: (e.provider, e.gpu, e.sku)))


def test_gcp_instances_are_host_plus_their_gpus(httpserver: HTTPServer, write_config, db_path: Path) -> None:
    """SkyPilot's GCP catalog prices a3-highgpu-1g's host ($1.18251) apart from its H100 ($9.79749): the
    instance is $10.98/h; a3-highgpu-8g is $9.46006 + 8 x $9.79749 = $87.83998/h ($10.98/GPU-h)."""
    httpserver.expect_request("/skypilot/catalogs/v7/gcp/vms.csv").respond_with_data(
        recorded("skypilot_gcp_vms.csv"), content_type="text/csv")
    cfg = load_config(write_config(httpserver))
    cfg.prices.skypilot_clouds = ["gcp"]
    for name in ("azure", "runpod", "vast", "lambda_"):
        setattr(cfg.prices.sources, name, "off")
    conn = connect(db_path)
    try:
        (res,) = prices_refresh.refresh(conn, cfg, NOW_MS, http=Http(5.0, loopback_only()))
        assert res.ok, res.error
        by_sku = {r.sku: r for r in res.rows}
    finally:
        conn.close()
    assert set(by_sku) == {"a3-highgpu-1g", "a3-highgpu-8g", "a2-highgpu-1g"}
    assert by_sku["a3-highgpu-1g"].gpu == "H100-SXM" and by_sku["a3-highgpu-1g"].usd_per_hour == pytest.approx(10.98)
    assert by_sku["a3-highgpu-8g"].usd_per_hour == pytest.approx(9.46006 + 8 * 9.79749)
    assert by_sku["a2-highgpu-1g"].gpu == "A100-40GB-SXM"
    assert by_sku["a2-highgpu-1g"].usd_per_hour == pytest.approx(0.73948 + 2.933908)


def test_a_first_fetch_says_so(sources: HTTPServer, write_config, db_path: Path) -> None:
    rc, doc, err = _refresh(db_path, write_config(sources))
    assert rc == 0, err
    assert _row(doc, "azure", "H100-NVL")["change"] == "first fetch"
    assert _row(doc, "azure", "H100-NVL")["change_pct"] is None


def test_azure_paging_stays_on_the_mirror(httpserver: HTTPServer, write_config, db_path: Path) -> None:
    """NextPageLink names the real API; behind a mirror, paging continues there by $skip instead."""
    page = json.loads(recorded("azure_retail.json"))
    nvl = [i for i in page["Items"] if i["armSkuName"] == "Standard_NC40ads_H100_v5"]
    older = {**nvl[0], "retailPrice": 7.50, "effectiveStartDate": "2023-01-01T00:00:00Z"}

    def handle(request):
        from werkzeug import Response

        flt = request.args.get("$filter", "")
        if "Standard_NC40ads_H100_v5" not in flt:
            return Response(json.dumps({"Items": [], "NextPageLink": None}), content_type="application/json")
        if request.args.get("$skip") == "1":
            return Response(json.dumps({"Items": nvl, "NextPageLink": None}), content_type="application/json")
        body = {"Items": [older], "NextPageLink": "https://prices.azure.com/api/retail/prices?$skip=1"}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/azure/api/retail/prices").respond_with_handler(handle)
    cfg = load_config(write_config(httpserver))
    for name in ("skypilot", "runpod", "vast", "lambda_"):
        setattr(cfg.prices.sources, name, "off")
    conn = connect(db_path)
    try:
        (res,) = prices_refresh.refresh(conn, cfg, NOW_MS, http=Http(5.0, loopback_only()))
    finally:
        conn.close()
    assert res.ok, res.error
    (row,) = res.rows
    assert row.sku == "Standard_NC40ads_H100_v5" and row.usd_per_hour == pytest.approx(6.98)  # the newest meter


def test_a_source_that_times_out_keeps_its_previous_rows(httpserver: HTTPServer, write_config,
                                                         db_path: Path) -> None:
    import threading

    release = threading.Event()

    def slow(_request):
        release.wait(5)                       # answers only after the client has given up
        from werkzeug import Response

        return Response(recorded("vast_bundles.json"), content_type="application/json")

    cfg = load_config(write_config(httpserver))
    for name in ("azure", "skypilot", "runpod", "lambda_"):
        setattr(cfg.prices.sources, name, "off")
    httpserver.expect_ordered_request("/vast/api/v0/bundles/").respond_with_data(recorded("vast_bundles.json"))
    httpserver.expect_ordered_request("/vast/api/v0/bundles/").respond_with_handler(slow)
    conn = connect(db_path)
    try:
        (first,) = prices_refresh.refresh(conn, cfg, NOW_MS, http=Http(5.0, loopback_only()))
        assert first.ok
        try:
            (second,) = prices_refresh.refresh(conn, cfg, NOW_MS + DAY_MS, http=Http(0.2, loopback_only()))
        finally:
            release.set()
        assert not second.ok and "no answer within 0.2s" in (second.error or "")
        current = pricing.fetched_entries(conn)
    finally:
        conn.close()
    assert current and {e.fetched_at for e in current} == {NOW_MS}      # the first fetch is still current
