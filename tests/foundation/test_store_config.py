"""Store migrations from every earlier schema version, and the config file rules a user meets first."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from gpuspend import store
from gpuspend.config import load_config
from gpuspend.errors import ConfigError, DataError
from tests.old_schema import schema_at


def _build_version(path: Path, k: int) -> None:
    """A database exactly as schema version k left it (MIGRATIONS[:k]), with a few rows in the v1 tables."""
    conn = schema_at(path, k)
    conn.execute("INSERT INTO gpus (uuid, host, idx, source, first_seen, last_seen) VALUES ('GPU-old', 'h', 0, 'nvml', 1, 2)")
    conn.execute("INSERT INTO gpu_samples (gpu_id, ts, util, power) VALUES (1, 1000, 50, 300)")
    conn.execute("INSERT INTO gpu_minutes (gpu_id, minute, samples, covered_s, busy_s) VALUES (1, 0, 30, 60, 60)")
    conn.execute("INSERT INTO meta VALUES ('rollup.watermark_ms', '60000')")
    conn.close()


@pytest.mark.parametrize("k", range(1, store.SCHEMA_VERSION))
def test_every_earlier_version_migrates_keeping_rows(tmp_path: Path, k: int) -> None:
    path = tmp_path / f"v{k}.db"
    _build_version(path, k)
    conn = store.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert conn.execute("SELECT uuid, first_seen FROM gpus").fetchall() == [("GPU-old", 1)]
    assert conn.execute("SELECT gpu_id, ts, util FROM gpu_samples").fetchall() == [(1, 1000, 50.0)]
    assert conn.execute("SELECT samples, busy_s FROM gpu_minutes").fetchall() == [(30, 60.0)]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    fresh = store.connect(tmp_path / "fresh.db")
    expected = {r[0] for r in fresh.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == expected
    conn.close()
    fresh.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    c = sqlite3.connect(path)
    c.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(DataError, match="newer than this gpuspend"):
        store.connect(path)


def test_store_is_wal_with_busy_timeout(db_path: Path) -> None:
    conn = store.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == store.BUSY_TIMEOUT_MS
    conn.close()


def test_bad_yaml_is_exit_2_with_file_line_column(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("interval: 2\nidle:\n  util_pct: [5\n")
    r = cli("--config", str(cfg), "collect", "--demo", "--once", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2
    assert r.stderr.startswith(f"gpuspend: {cfg}:4:1: YAML syntax error")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "x.db").exists()


def test_unknown_key_names_the_closest_valid_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("retention:\n  raww: 7d\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert info.value.line() == f"{cfg}:2:3: unknown key 'retention.raww' (did you mean 'retention.raw'?)"


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("interval: fast\n")
    with pytest.raises(ConfigError, match=r"config.yaml:1:11: interval: expected a number"):
        load_config(cfg)


def test_a_currency_is_an_iso_code_written_as_the_exports_write_it(cli, tmp_path: Path, db_path: Path) -> None:
    """`jpy` is JPY (a budget in `eur` compares with the exports' EUR rows, never "no spend in eur"); a word
    that is no currency code is a config error on its line, not a currency nothing is ever billed in."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("currency: jpy\nbudget:\n  monthly: 100\n  currency: eur\n")
    loaded = load_config(cfg)
    assert (loaded.currency, loaded.budget.currency) == ("JPY", "EUR")
    cfg.write_text("budget:\n  monthly: 100\n  currency: euros\n")
    r = cli("--config", str(cfg), "--db", str(db_path), "--report", "--no-sample")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith(f"gpuspend: {cfg}:3:13: budget.currency: expected a 3-letter ISO 4217 currency code")


def test_environment_variables_are_substituted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_URL", "https://hooks.example/T000/B000")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("notify:\n  targets:\n    - name: slack\n      kind: slack\n      url: ${HOOK_URL}\n"
                   "retention:\n  raw: 3d\n")
    os.chmod(cfg, 0o600)
    c = load_config(cfg)
    assert c.notify.targets[0].url == "https://hooks.example/T000/B000"
    assert c.retention.raw == 3 * 86400
    assert c.warnings == []


def test_missing_environment_variable_is_a_warning_not_a_value(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("clouds:\n  runpod:\n    api_key: ${NOPE_TOKEN}\n")
    os.chmod(cfg, 0o600)
    c = load_config(cfg)
    assert c.clouds.runpod.api_key is None
    assert c.warnings == [f"{cfg}:3:14: clouds.runpod.api_key: environment variable NOPE_TOKEN is not set; "
                          "the value is ignored"]


def test_world_readable_config_with_secrets_warns(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("clouds:\n  lambda:\n    api_key: secret-inline-key\n")
    os.chmod(cfg, 0o644)
    r = cli("--config", str(cfg), "collect", "--demo", "--once", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 0
    assert f"gpuspend: warning: {cfg}: holds secrets but is readable by other users (run: chmod 600 {cfg})" \
        in r.stderr
    os.chmod(cfg, 0o600)
    r = cli("--config", str(cfg), "collect", "--demo", "--once", "--db", str(tmp_path / "x.db"))
    assert "warning" not in r.stderr
