"""Rate resolution: each source in DESIGN.md order, with its label; the catalog's coverage and dates."""

from __future__ import annotations

import pytest

from gpuspend import pricing
from gpuspend.costing import load_gpus
from tests.costing.builders import NOW_MS, add_charge, add_gpus, add_import, cfg_from, new_store


@pytest.fixture
def store(db_path):
    conn = new_store(db_path)
    add_gpus(conn, 8, model="H100", host="box1")
    yield conn
    conn.close()


def gpu(conn, i=0):
    return load_gpus(conn)[i]


def test_catalog_covers_models_and_providers_with_dates():
    cat = pricing.load_catalog()
    from gpuspend.gpu_models import family

    models = {family(e.gpu) for e in cat.entries}     # keys are by form factor (H100-SXM): check families
    for m in ("A100-40GB", "A100-80GB", "H100", "H200", "L4", "A10G", "T4", "L40S", "B200"):
        assert m in models, m
    assert set(cat.providers()) >= {"aws", "gcp", "azure", "lambda", "coreweave", "runpod"}
    for e in cat.entries:
        assert len(e.as_of) == 10 and e.source and e.usd_per_gpu_hour > 0
    p5 = cat.lookup("aws", "H100")
    assert p5.sku == "p5.48xlarge" and p5.usd_per_gpu_hour == pytest.approx(55.04 / 8)


def test_no_provider_means_no_rate_not_zero(store, tmp_path):
    rate = pricing.resolve_rate(cfg_from(tmp_path), store, gpu(store))
    assert rate.per_gpu_hour is None and rate.source == "none"
    assert "no rate" in rate.label


def test_catalog_rate_for_provider_and_model(store, tmp_path):
    rate = pricing.resolve_rate(cfg_from(tmp_path, "provider: aws\n"), store, gpu(store))
    assert rate.source == "catalog" and rate.per_gpu_hour == pytest.approx(6.88)
    assert rate.as_of == "2026-11-09" and "as of 2026-11-09" in rate.label and "STALE" not in rate.label


def test_catalog_rate_is_flagged_stale_when_old(store, tmp_path):
    cfg = cfg_from(tmp_path, "provider: coreweave\n")       # CoreWeave prices are from 2026-02
    rate = pricing.resolve_rate(cfg, store, gpu(store), now_ms=NOW_MS)
    assert rate.per_gpu_hour == pytest.approx(49.24 / 8)
    assert "STALE" in rate.label and pricing.is_stale(rate.as_of, cfg, NOW_MS)
    fresh = cfg_from(tmp_path, "provider: coreweave\nalerts: {stale_catalog: 400d}\n")
    assert not pricing.is_stale(rate.as_of, fresh, NOW_MS)


def test_unknown_model_in_catalog_is_no_rate(db_path, tmp_path):
    conn = new_store(db_path)
    add_gpus(conn, 1, model="RTX-4090")
    rate = pricing.resolve_rate(cfg_from(tmp_path, "provider: aws\n"), conn, gpu(conn))
    assert rate.per_gpu_hour is None and "RTX-4090" in rate.label


@pytest.mark.parametrize(("text", "expected", "needle"), [
    ("rates: {per_gpu: {GPU-box1-0: 3.5}}\n", 3.5, "per_gpu GPU-box1-0"),
    ("rates: {per_gpu: {'0': 2.25}}\n", 2.25, "per_gpu 0"),
    ("rates: {per_host: {box1: 1.75}}\n", 1.75, "per_host box1"),
    ("rates: {per_model: {h100: 2.5}}\n", 2.5, "per_model"),
    ("rates: {instance: {usd_per_hour: 40, gpus: 8}}\n", 5.0, "instance"),
])
def test_config_rates(store, tmp_path, text, expected, needle):
    rate = pricing.resolve_rate(cfg_from(tmp_path, "provider: aws\n" + text), store, gpu(store))
    assert rate.source == "config" and rate.per_gpu_hour == pytest.approx(expected) and needle in rate.label


def test_a_one_gpu_instance_reads_per_gpu_and_says_1_gpu(store, tmp_path):
    """A g5.xlarge-style box (one A10G): $1.006/h for the instance is $1.006 a GPU-hour, "/ 1 GPU"."""
    cfg = cfg_from(tmp_path, "provider: aws\nrates: {instance: {usd_per_hour: 1.006, gpus: 1}}\n")
    rate = pricing.resolve_rate(cfg, store, gpu(store))
    assert rate.per_gpu_hour == pytest.approx(1.006)
    assert rate.label.endswith("/ 1 GPU"), rate.label
    cfg = cfg_from(tmp_path, "provider: aws\nrates: {instance: {usd_per_hour: 40, gpus: 8}}\n")
    assert pricing.resolve_rate(cfg, store, gpu(store)).label.endswith("/ 8 GPUs")


def test_per_gpu_beats_per_host_beats_model(store, tmp_path):
    cfg = cfg_from(tmp_path, "rates: {per_gpu: {'1': 9}, per_host: {box1: 7}, per_model: {H100: 5}}\n")
    assert pricing.resolve_rate(cfg, store, gpu(store, 1)).per_gpu_hour == 9
    assert pricing.resolve_rate(cfg, store, gpu(store, 0)).per_gpu_hour == 7


def _billing(conn, rid="i-0abc123def4567890"):
    period = (NOW_MS // 1000) - 14 * 86400
    imp = add_import(conn, period_start_s=period, period_end_s=period + 30 * 86400, coverage_end_s=NOW_MS // 1000)
    # 24 hourly line items of a p5.48xlarge at an effective $40/h (a savings plan), billed $55.04/h
    for h in range(24):
        add_charge(conn, imp, start_s=NOW_MS // 1000 - (24 - h) * 3600, hours=1, cost=55.04, effective=40.0,
                   period_start_s=period, resource_id=rid, instance_type="p5.48xlarge", is_gpu=True, gpu_count=8)
    return rid


def test_billing_derived_rate_from_configured_resource(store, tmp_path):
    rid = _billing(store)
    cfg = cfg_from(tmp_path, f"provider: aws\nbilling: {{resource_id: {rid}}}\n")
    rate = pricing.resolve_rate(cfg, store, gpu(store))
    assert rate.source == "billing" and rate.per_gpu_hour == pytest.approx(40.0 / 8)
    assert rid in rate.label


def test_billing_derived_rate_from_detected_asset_tag(store, tmp_path):
    rid = _billing(store)
    tag = tmp_path / "board_asset_tag"
    tag.write_text(rid + "\n")
    rate = pricing.resolve_rate(cfg_from(tmp_path, "provider: aws\n"), store, gpu(store), asset_tag_path=tag)
    assert rate.source == "billing" and rate.per_gpu_hour == pytest.approx(5.0)
    # a machine whose tag matches nothing in the exports falls through to the catalog
    tag.write_text("i-0000000000000000\n")
    rate = pricing.resolve_rate(cfg_from(tmp_path, "provider: aws\n"), store, gpu(store), asset_tag_path=tag)
    assert rate.source == "catalog"


def test_config_beats_billing(store, tmp_path):
    rid = _billing(store)
    cfg = cfg_from(tmp_path, f"billing: {{resource_id: {rid}}}\nrates: {{per_model: {{H100: 1.0}}}}\n")
    assert pricing.resolve_rate(cfg, store, gpu(store)).source == "config"


def test_onprem_capex_plus_measured_energy(store, tmp_path):
    # $35,040 over 4 years = $1.00/h; 500 W x PUE 1.5 x $0.20/kWh = $0.15/h
    cfg = cfg_from(tmp_path, "onprem: {purchase_price: 35040, amortise_years: 4, electricity_per_kwh: 0.2, pue: 1.5}\n")
    g = dict(gpu(store), power=500.0)
    rate = pricing.resolve_rate(cfg, store, g)
    assert rate.source == "onprem" and rate.per_gpu_hour == pytest.approx(1.15)
    assert "500 W" in rate.label


def test_gpu_cloud_instance_uses_provider_price(db_path, tmp_path):
    conn = new_store(db_path)
    add_gpus(conn, 2, model="H100", host="pod-abc", source="runpod")
    conn.execute("UPDATE gpus SET uuid = 'runpod:pod-abc:' || idx")     # as the cloud collector names them
    conn.execute("INSERT INTO cloud_instances (provider, instance_id, gpu_model, gpu_count, price_per_hour, "
                 "first_seen, last_seen) VALUES ('runpod', 'pod-abc', 'H100', 2, 7.98, 0, 1)")
    rate = pricing.resolve_rate(cfg_from(tmp_path, "provider: aws\n"), conn, gpu(conn))
    assert rate.source == "provider" and rate.per_gpu_hour == pytest.approx(3.99)


def test_billing_resource_recorded_in_the_database_is_the_last_resort(store, tmp_path):
    """The demo records its EC2 instance in meta; config and a detected asset tag still come first."""
    from gpuspend.store import set_meta, transaction

    rid = _billing(store)
    no_tag = tmp_path / "no_asset_tag"
    cfg = cfg_from(tmp_path, "provider: aws\n")
    assert pricing.resolve_rate(cfg, store, gpu(store), asset_tag_path=no_tag).source == "catalog"
    with transaction(store):
        set_meta(store, pricing.META_RESOURCE_ID, rid)
    rate = pricing.resolve_rate(cfg, store, gpu(store), asset_tag_path=no_tag)
    assert rate.source == "billing" and rate.per_gpu_hour == pytest.approx(5.0) and rid in rate.label
    tag = tmp_path / "board_asset_tag"
    tag.write_text("i-0000000000000000\n")            # this box's own tag wins (and matches no charges)
    assert pricing.resolve_rate(cfg, store, gpu(store), asset_tag_path=tag).source == "catalog"
