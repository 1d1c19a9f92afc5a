"""Dashboard fixtures: the app on a real SQLite file, a fixed clock, no collector thread unless asked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gpuspend.config import load_config
from tests.conftest import FIXED_NOW_S

NOW_MS = FIXED_NOW_S * 1000


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deterministic 8-GPU demo (seed 42) at the fixed clock, built once per session (~8 s)."""
    from gpuspend.demo import build_demo_db

    path = tmp_path_factory.mktemp("demo") / "demo.db"
    build_demo_db(path, NOW_MS)
    return path


@pytest.fixture
def demo_db(demo_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "demo.db"
    shutil.copy(demo_template, target)
    return target


@pytest.fixture
def cfg():
    return load_config(None)


@pytest.fixture
def make_app(cfg):
    from gpuspend.tui.app import GpuspendApp

    def factory(db_path: Path, **kw):
        kw.setdefault("collect", False)
        kw.setdefault("interval", 3600)     # the timer never fires: tests refresh explicitly
        app = GpuspendApp(db_path, kw.pop("cfg", cfg), **kw)
        app.theme = "textual-dark"
        return app

    return factory


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on anyio's pytest plugin (already a dependency of httpx), on asyncio."""
    return "asyncio"
