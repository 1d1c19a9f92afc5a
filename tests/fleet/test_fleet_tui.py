"""The fleet dashboard (Pilot, headless): the node table, idle GPUs, totals, and the stale banner when
Prometheus starts failing. Prometheus here is a real HTTP server on loopback answering the query API."""

from __future__ import annotations

import asyncio
import json

from rich.text import Text
from textual.widgets import DataTable, Static
from werkzeug import Request, Response

from gpuspend.tui.fleet_app import FleetApp

from .test_fleet_errors import EMPTY, answers

LABELS = {"host": "gpu[bold]01", "gpu": "0", "uuid": "U0", "model": "H100"}
ANSWER = answers(
    ({"__name__": "gpuspend_cost_per_hour", "host": "gpu[bold]01", "currency": "USD"}, 13.76),
    ({"__name__": "gpuspend_up", "host": "gpu[bold]01"}, 1.0),
    ({"__name__": "gpuspend_gpu_cost_per_hour", **LABELS, "currency": "USD"}, 6.88),
    ({"__name__": "gpuspend_gpu_status", **LABELS, "state": "held-idle", "source": "catalog", "episode": "closed"},
     1.0),
    ({"__name__": "gpuspend_gpu_idle_for_seconds", **LABELS}, 5400.0),
    ({"__name__": "gpuspend_gpu_idle_episode_waste", **LABELS, "currency": "USD"}, 10.32),
    ({"__name__": "gpuspend_gpu_cost_per_hour", **LABELS, "gpu": "1", "uuid": "U1", "currency": "USD"}, 6.88),
    ({"__name__": "gpuspend_gpu_status", **LABELS, "gpu": "1", "uuid": "U1", "state": "busy", "source": "catalog",
      "episode": "closed"}, 1.0),
    ({"__name__": "gpuspend_month_projection", "host": "gpu[bold]01", "currency": "USD", "month": "2026-11"},
     9000.0),
)


def serve(httpserver, state: dict) -> str:
    def handler(request: Request) -> Response:
        if state["fail"]:
            return Response("overloaded", status=503)
        body = ANSWER.get(request.args.get("query", ""), EMPTY)
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/api/v1/query").respond_with_handler(handler)
    return httpserver.url_for("/").rstrip("/")


def plain(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Text) else str(content)


def cells(table: DataTable) -> list[list[str]]:
    return [[c.plain if isinstance(c, Text) else str(c) for c in table.get_row(rk)] for rk in table.rows]


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def test_fleet_table_then_stale_banner(httpserver):
    state = {"fail": False}
    url = serve(httpserver, state)

    async def scenario() -> None:
        app = FleetApp(url, interval_s=3600)            # timer never fires: the test drives refreshes
        async with app.run_test(size=(120, 30)) as pilot:
            await _settle(pilot)
            screen = app.screen
            nodes = screen.query_one("#nodes", DataTable)
            assert cells(nodes) == [["gpu[bold]01", "gpuspend", "2", "1", "$13.76", "$6.88", "-", "-",
                                     "$9,000.00"]]
            idle = screen.query_one("#idle", DataTable)
            assert cells(idle) == [["gpu[bold]01", "0", "H100", "held-idle", "1h30m", "$6.88", "$10.32"]]
            summary = plain(screen.query_one("#summary", Static))
            assert "1 node, 2 GPUs, 1 idle" in summary and "$13.76/h" in summary
            assert not screen.query_one("#banner").has_class("shown")
            nodes.move_cursor(row=0)

            state["fail"] = True
            await pilot.press("r")
            await _settle(pilot)
            banner = screen.query_one("#banner", Static)
            assert banner.has_class("shown")
            assert plain(banner).startswith("STALE: Prometheus failed (Prometheus query failed: HTTP 503")
            assert cells(nodes)[0][4] == "$13.76"           # last known values stay on screen
            assert app.polls == 2

            state["fail"] = False
            await pilot.press("r")
            await _settle(pilot)
            assert not banner.has_class("shown")
            assert nodes.cursor_row == 0 and len(cells(nodes)) == 1

    asyncio.run(scenario())


def test_unreachable_from_the_start_says_so(tmp_path):
    from .conftest import free_port

    async def scenario() -> None:
        app = FleetApp(f"http://127.0.0.1:{free_port()}", interval_s=3600, timeout_s=1)
        async with app.run_test(size=(100, 24)) as pilot:
            await _settle(pilot)
            banner = app.screen.query_one("#banner", Static)
            assert banner.has_class("shown")
            assert "Prometheus unreachable" in plain(banner)
            assert "no earlier fleet view to show" in plain(banner)
            assert app.screen.query_one("#nodes", DataTable).row_count == 0

    asyncio.run(scenario())
