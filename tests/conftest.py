"""Shared fixtures: a fixed clock, a real SQLite file per test, and a CLI runner in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
# 2026-11-15 12:00:00 UTC: mid-month, so month-to-date and projections are both non-trivial.
FIXED_NOW = "2026-11-15T12:00:00+00:00"
FIXED_NOW_S = 1794744000


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never touch the user's real config/data dirs; fixed clock unless a test changes it."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("GPUSPEND_NOW", FIXED_NOW)
    monkeypatch.delenv("GPUSPEND_DB", raising=False)
    monkeypatch.delenv("GPUSPEND_CONFIG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gpuspend.db"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present (conformance samples live there)")
    return SHARED


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m gpuspend ARGS` as a user would, with this test's environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "gpuspend", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, input=input, cwd=ROOT)


@pytest.fixture
def cli():
    return run_cli
