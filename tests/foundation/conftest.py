"""Foundation fixtures: a fake NVML injected as the `pynvml` module, and a migrated store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gpuspend.store import connect
from tests.fake_pynvml import FakeNvml


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """8 fake H100s; `collectors.nvml` imports pynvml lazily, so it gets this module."""
    fake = FakeNvml.h100_box()
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake


@pytest.fixture
def conn(db_path: Path):
    c = connect(db_path)
    yield c
    c.close()
