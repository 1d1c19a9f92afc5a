"""The billing screen on an amortized-only dataset: it shows the month, never stays at "loading..."."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuspend.collectors.billing.importer import import_paths
from gpuspend.config import load_config
from gpuspend.store import connect
from tests.billing.helpers import FIXTURES

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_billing_screen_loads_an_amortized_only_month(db_path: Path) -> None:
    from gpuspend.tui.app import GpuspendApp
    from gpuspend.tui.screens.billing import BillingScreen

    conn = connect(db_path)
    import_paths(conn, [FIXTURES / "azure_ea_amortizedcost.csv"])
    conn.close()
    app = GpuspendApp(db_path, load_config(None), collect=False, interval=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await app.push_screen(BillingScreen("2026-11"))
        await pilot.pause()
        title = app.screen.query_one("#billing-title")
        for _ in range(200):                   # the worker thread: wait for it, no timing assertion
            if "loading" not in str(title.render()):
                break
            await pilot.pause(0.05)
        text = str(title.render())
        assert "so far" in text and "could not be read" not in text, text
