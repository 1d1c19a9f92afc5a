"""Recorded price-source answers served on 127.0.0.1 (pytest-httpserver), and a config pointing every source
there. Nothing in these tests may reach past loopback: `loopback_only` fails any request that tries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def azure_handler(page: dict[str, Any]) -> Callable[[Request], Response]:
    """The Retail Prices API answers the items its $filter names (armSkuName eq '...'), like the real one."""
    def handle(request: Request) -> Response:
        flt = request.args.get("$filter", "")
        items = [i for i in page["Items"] if f"armSkuName eq '{i['armSkuName']}'" in flt]
        body = {**page, "Items": items, "Count": len(items)}
        return Response(json.dumps(body), content_type="application/json")
    return handle


@pytest.fixture
def sources(httpserver: HTTPServer) -> HTTPServer:
    """Every source answering from its recorded response."""
    page = json.loads(recorded("azure_retail.json"))
    httpserver.expect_request("/azure/api/retail/prices").respond_with_handler(azure_handler(page))
    httpserver.expect_request("/skypilot/catalogs/v7/aws/vms.csv").respond_with_data(
        recorded("skypilot_aws_vms.csv"), content_type="text/csv")
    httpserver.expect_request("/runpod/graphql", method="POST").respond_with_data(
        recorded("runpod_gpu_types.json"), content_type="application/json")
    httpserver.expect_request("/vast/api/v0/bundles/").respond_with_data(
        recorded("vast_bundles.json"), content_type="application/json")
    return httpserver


def config_text(server: HTTPServer, extra: str = "") -> str:
    base = server.url_for("").rstrip("/")
    return (f"prices:\n  sources:\n    azure: {base}/azure/api/retail/prices\n"
            f"    skypilot: {base}/skypilot/catalogs/v7\n    runpod: {base}/runpod/graphql\n"
            f"    vast: {base}/vast/api/v0\n    lambda: {base}/lambda/api/v1\n"
            f"  skypilot_clouds: [aws]\n  timeout: 5s\n{extra}")


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    def write(server: HTTPServer, extra: str = "", name: str = "config.yaml") -> Path:
        p = tmp_path / name
        p.write_text(config_text(server, extra), encoding="utf-8")
        return p
    return write


def loopback_only() -> httpx.Client:
    """An httpx client that refuses (and so fails the test on) any request not addressed to 127.0.0.1."""
    def check(request: httpx.Request) -> None:
        host = urlparse(str(request.url)).hostname
        assert host in ("127.0.0.1", "localhost"), f"request left loopback: {request.url}"
    return httpx.Client(event_hooks={"request": [check]}, follow_redirects=True)


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)
