"""What every price fetcher shares: the row it returns, one GET/POST with a timeout, and validation.

Prices are data: a value is kept only when it is a finite, positive, plausible $/GPU-hour, and the names that
come with it are stored as text (cleaned), never interpreted beyond the model key."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import httpx

from gpuspend.errors import DataError
from gpuspend.fmt import clean

# Plausible on-demand $/GPU-hour: a T4 market offer is ~$0.10, a B200 list price ~$15; anything outside is
# a unit mistake (cents, per-month, per-second) or a broken answer, and is dropped rather than believed.
MIN_GPU_HOUR = 0.02
MAX_GPU_HOUR = 100.0


class SourceError(DataError):
    """One source failed (HTTP error, timeout, malformed answer): its previous rows stay current."""


@dataclass(frozen=True)
class FetchedPrice:
    provider: str
    gpu: str                  # model key (gpuspend.gpu_models)
    sku: str
    region: str | None
    gpus_per_instance: float
    usd_per_hour: float       # the whole instance / offer
    source_url: str
    kind: str = "list"        # list | market

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.usd_per_hour / self.gpus_per_instance


def number(value: Any) -> float | None:
    """A finite float from a JSON/CSV value, else None (no bools, no NaN/inf, no '1e999')."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def plausible(usd_per_hour: float | None, gpus: float | None) -> bool:
    if usd_per_hour is None or gpus is None or gpus <= 0 or usd_per_hour <= 0:
        return False
    return MIN_GPU_HOUR <= usd_per_hour / gpus <= MAX_GPU_HOUR


def make(provider: str, gpu: str | None, sku: Any, region: Any, gpus: Any, usd_per_hour: Any, url: str,
         kind: str = "list") -> FetchedPrice | None:
    """A validated row, or None when any part is missing or implausible."""
    n, price = number(gpus), number(usd_per_hour)
    if not gpu or not plausible(price, n):
        return None
    return FetchedPrice(provider, clean(str(gpu), 40), clean(str(sku), 80),
                        clean(str(region), 40) if region else None, float(n or 1), float(price or 0), url, kind)


class Http:
    """One httpx client per refresh; every failure is a SourceError naming the source and URL."""

    def __init__(self, timeout: float, client: httpx.Client | None = None) -> None:
        self.timeout = timeout
        self.http = client or httpx.Client(follow_redirects=True, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _send(self, source: str, method: str, url: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, url, timeout=self.timeout, **kw)
        except httpx.TimeoutException:
            raise SourceError(f"no answer within {self.timeout:g}s", where=f"{source} {url}") from None
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach it ({type(exc).__name__})", where=f"{source} {url}") from None
        if resp.status_code >= 400:
            raise SourceError(f"HTTP {resp.status_code}", where=f"{source} {url}")
        return resp

    def json(self, source: str, method: str, url: str, **kw: Any) -> Any:
        resp = self._send(source, method, url, **kw)
        try:
            return resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise SourceError("malformed answer: not JSON", where=f"{source} {url}") from None

    def text(self, source: str, url: str) -> str:
        resp = self._send(source, "GET", url)
        try:
            return resp.content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SourceError("malformed answer: not UTF-8 text", where=f"{source} {url}") from None
