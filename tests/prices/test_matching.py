"""Form factors: an H100 NVL, an H100 PCIe and an SXM H100 each take their own price; the family stands in
only when a provider has no price for the form factor, and the rate label says so. The shipped catalog is
dated, and no row is past its staleness limit on the day it ships without saying so."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpuspend import pricing
from gpuspend.config import load_config
from gpuspend.costing import load_gpus
from gpuspend.gpu_models import match_order, normalise_model
from gpuspend.store import connect, transaction
from tests.conftest import FIXED_NOW_S, run_cli

NOW_MS = FIXED_NOW_S * 1000
SHIPS_ON_MS = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)

NAMES = {"sxm": "NVIDIA H100 80GB HBM3", "pcie": "NVIDIA H100 PCIe", "nvl": "NVIDIA H100 NVL"}


@pytest.mark.parametrize(("name", "key"), [
    ("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIE"), ("NVIDIA H100 NVL", "H100-NVL"),
    ("NVIDIA H200", "H200-SXM"), ("NVIDIA H200 NVL", "H200-NVL"), ("NVIDIA A100-SXM4-80GB", "A100-80GB-SXM"),
    ("NVIDIA A100 80GB PCIe", "A100-80GB-PCIE"), ("NVIDIA A100-SXM4-40GB", "A100-40GB-SXM"),
    ("NVIDIA A100-PCIE-40GB", "A100-40GB-PCIE"), ("H100 (80 GB SXM5)", "H100-SXM"), ("NVIDIA L4", "L4"),
    ("NVIDIA H100", "H100"),                       # says no form factor: the family key
])
def test_marketing_names_become_form_factor_keys(name: str, key: str) -> None:
    assert normalise_model(name) == key


def test_the_family_comes_right_after_the_form_factor() -> None:
    assert match_order("H100-NVL")[:2] == ["H100-NVL", "H100"]
    assert match_order("L4") == ["L4"]


def _store(db: Path, names: dict[str, str], *, stored_model: str | None = None) -> sqlite3.Connection:
    conn = connect(db)
    with transaction(conn):
        for i, (tag, name) in enumerate(names.items()):
            conn.execute("INSERT INTO gpus (uuid, host, idx, name, model, memory_total, source, first_seen, "
                         "last_seen) VALUES (?, 'box1', ?, ?, ?, 0, 'nvml', 0, ?)",
                         (f"GPU-{tag}", i, name, stored_model or normalise_model(name), NOW_MS))
    return conn


def _rates(tmp_path: Path, conn: sqlite3.Connection, cfg_text: str) -> dict[str, pricing.Rate]:
    p = tmp_path / "config.yaml"
    p.write_text(cfg_text, encoding="utf-8")
    cfg = load_config(p)
    return {g["uuid"].removeprefix("GPU-"): pricing.resolve_rate(cfg, conn, g, now_ms=NOW_MS) for g in load_gpus(conn)}


def test_nvl_pcie_and_sxm_h100s_take_their_own_prices(tmp_path: Path, db_path: Path) -> None:
    conn = _store(db_path, NAMES)
    try:
        azure = _rates(tmp_path, conn, "provider: azure\n")
        lam = _rates(tmp_path, conn, "provider: lambda\n")
    finally:
        conn.close()
    # Azure: NC40ads_H100_v5 $6.98 for one NVL; ND96isr_H100_v5 $98.32 / 8 = $12.29 per SXM GPU
    assert azure["nvl"].per_gpu_hour == pytest.approx(6.98) and "azure H100-NVL" in azure["nvl"].label
    assert azure["sxm"].per_gpu_hour == pytest.approx(12.29) and "azure H100-SXM" in azure["sxm"].label
    assert "no " not in azure["nvl"].label and "no " not in azure["sxm"].label      # exact matches
    # Lambda sells the PCIe at $3.29 and the SXM at $4.29
    assert lam["pcie"].per_gpu_hour == pytest.approx(3.29) and lam["sxm"].per_gpu_hour == pytest.approx(4.29)


def test_a_missing_form_factor_falls_back_and_says_so(tmp_path: Path, db_path: Path) -> None:
    conn = _store(db_path, {"pcie": NAMES["pcie"]})
    try:
        rate = _rates(tmp_path, conn, "provider: azure\n")["pcie"]
    finally:
        conn.close()
    # Azure has no H100 PCIe size: the closest board it prices (the NVL, also a PCIe card) stands in, labelled
    assert rate.per_gpu_hour == pytest.approx(6.98)
    assert "azure H100-NVL" in rate.label and "for H100-PCIE: no H100-PCIE price" in rate.label


def test_a_database_written_before_form_factors_is_priced_by_the_gpu_name(tmp_path: Path, db_path: Path) -> None:
    conn = _store(db_path, NAMES, stored_model="H100")        # what the old normalisation stored for all three
    try:
        azure = _rates(tmp_path, conn, "provider: azure\n")
    finally:
        conn.close()
    assert azure["nvl"].per_gpu_hour == pytest.approx(6.98) and azure["sxm"].per_gpu_hour == pytest.approx(12.29)


def test_a_family_rate_in_config_covers_every_form_factor(tmp_path: Path, db_path: Path) -> None:
    conn = _store(db_path, NAMES)
    try:
        rates = _rates(tmp_path, conn, "rates: {per_model: {H100: 2.0, H100-NVL: 1.5}}\n")
    finally:
        conn.close()
    assert rates["sxm"].per_gpu_hour == 2.0 and rates["pcie"].per_gpu_hour == 2.0
    assert rates["nvl"].per_gpu_hour == 1.5 and "per_model H100-NVL" in rates["nvl"].label


def test_no_shipped_row_is_past_its_limit_unmarked_on_the_day_it_ships() -> None:
    cat = pricing.load_catalog()
    for e in cat.entries:
        old = pricing.age_days(e.as_of, SHIPS_ON_MS) > cat.stale_after_days
        assert not old or (e.note and e.as_of in e.note), (e.provider, e.gpu, e.as_of)
        assert e.source.startswith(("https://", "Cloud Billing Catalog API")), e.source   # no "code comment"
    keys = {(e.provider, e.gpu) for e in cat.entries}
    assert {("azure", "H100-NVL"), ("azure", "H100-SXM"), ("lambda", "H100-PCIE"), ("aws", "H100-SXM")} <= keys


def test_an_unknown_model_is_a_usage_error(db_path: Path) -> None:
    r = run_cli("--db", str(db_path), "prices", "--model", "Z9000")
    assert r.returncode == 2 and "no such GPU model: Z9000" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""
    ok = run_cli("--db", str(db_path), "prices", "--model", "NVIDIA H100 NVL")
    assert ok.returncode == 0, ok.stderr
    table = ok.stdout.split("\n\n")[0]
    assert "Standard_NC40ads_H100_v5" in table and "p5.48xlarge" not in table


def test_a_wider_model_name_lists_every_size_and_form_factor(db_path: Path) -> None:
    r = run_cli("--db", str(db_path), "prices", "--model", "a100")
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("\n\n")[0]
    assert {"A100-40GB-SXM", "A100-80GB-SXM", "A100-80GB-PCIE"} <= set(table.split())
    assert " A10 " not in table and "H100" not in table
