"""What every GPU-cloud collector shares: one httpx client with the auth header, timeouts, retries with
backoff (429 honouring Retry-After, 5xx, connection errors), clear errors for bad keys and malformed JSON,
cursor pagination, and an API key that never appears in any message.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from gpuspend.errors import ConfigError, DataError
from gpuspend.fmt import clean
from gpuspend.retry_after import parse_retry_after

MAX_RETRY_AFTER_S = 60.0


class CloudError(DataError):
    """A provider's API could not be read (unreachable, rate limited, malformed answer). Exit 3."""


class CloudAuthError(ConfigError):
    """The provider rejected the API key. Exit 2: a configuration problem, fixed by the user."""


@dataclass(frozen=True)
class RemoteInstance:
    """One instance as a provider reports it, normalised."""
    provider: str
    instance_id: str
    name: str
    gpu_name: str | None
    gpu_count: float
    price_per_hour: float | None      # whole instance, provider's currency
    status: str
    running: bool                     # billed right now
    util: tuple[float | None, ...] = ()   # per GPU, when the API gives it (percent)
    currency: str = "USD"

    def __post_init__(self) -> None:
        """An API answer is data: bound it before anything is written (a pod claiming `gpuCount: 1e9` once made
        the collector write a billion GPU rows; `costPerHr: 1e400` made the cost per hour infinite)."""
        name = _inert(self.name, 120) or _inert(self.instance_id, 120)
        where = f"{self.provider} instance {name}"
        count = self.gpu_count
        if not isinstance(count, int | float) or isinstance(count, bool) or not math.isfinite(count) \
                or not 0 <= count <= MAX_GPUS_PER_INSTANCE or count != int(count):
            raise CloudError(f"unexpected answer: GPU count {_shown(count)} is not a whole number from 0 to "
                             f"{MAX_GPUS_PER_INSTANCE}", where=where, hint="this poll was not recorded")
        price = self.price_per_hour
        if price is not None and (not math.isfinite(price) or not 0 <= price <= MAX_PRICE_PER_HOUR):
            raise CloudError(f"unexpected answer: price per hour {_shown(price)} is not a price from 0 to "
                             f"{MAX_PRICE_PER_HOUR:g}", where=where, hint="this poll was not recorded")
        fix = object.__setattr__      # frozen: normalise in place, once
        fix(self, "gpu_count", float(int(count)))
        fix(self, "instance_id", _inert(self.instance_id, 200))
        fix(self, "name", name)
        fix(self, "gpu_name", _inert(self.gpu_name, 120) or None)
        fix(self, "status", _inert(self.status, 40))
        fix(self, "currency", _inert(self.currency, 8) or "USD")
        fix(self, "util", tuple(u if u is not None and math.isfinite(u) and 0 <= u <= 100 else None
                                for u in self.util[:MAX_GPUS_PER_INSTANCE]))


MAX_GPUS_PER_INSTANCE = 64        # the largest real machines have 16; anything near a billion is garbage
MAX_PRICE_PER_HOUR = 100_000.0    # per instance, any currency


def _inert(text: Any, limit: int) -> str:
    return clean(str(text), limit).strip() if text is not None else ""


def _shown(value: Any) -> str:
    return _inert(repr(value), 40)


@dataclass(frozen=True)
class ProviderReading:
    provider: str
    instances: tuple[RemoteInstance, ...]
    spend_per_hour: float | None      # the provider's own burn rate when it has one (RunPod)
    currency: str = "USD"


def normalise_gpu_name(name: str | None) -> str | None:
    """Provider GPU names -> the pricing model key ('H100 (80 GB SXM5)' -> 'H100-SXM', 'RTX 4090' -> 'RTX-4090')."""
    from gpuspend.gpu_models import normalise_model

    if not name:
        return None
    return normalise_model(re.sub(r"(\d+)\s+GB", r"\1GB", name))


def _clean(text: str, secret: str | None) -> str:
    """An API answer as inert text (gpuspend.fmt.clean) with the API key redacted, before and after cleaning
    (an escape sequence inside the key must not let it through)."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = clean(text).strip()
    return text.replace(secret, "[redacted]") if secret else text


def _retry_after(resp: httpx.Response) -> float | None:
    return parse_retry_after(resp.headers)


def _error_text(data: Any) -> str | None:
    """The provider's own words: Lambda {"error": {"message"}}, Vast {"msg"}, GraphQL {"errors": [...]}."""
    if not isinstance(data, dict):
        return None
    err = data.get("error")
    if isinstance(err, dict):
        return " ".join(str(err[k]) for k in ("message", "suggestion") if err.get(k))
    if data.get("errors") and isinstance(data["errors"], list):
        first = data["errors"][0]
        return str(first.get("message")) if isinstance(first, dict) else str(first)
    for key in ("msg", "detail", "message", "error"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


class CloudClient:
    """One provider's API. `key_hint` names where the key comes from, for error messages."""

    def __init__(self, provider: str, base_url: str, api_key: str, *, key_hint: str, timeout: float = 15.0,
                 retries: int = 3, backoff_s: float = 1.0, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.key_hint = key_hint
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self._own = client is None
        self.http = client or httpx.Client(follow_redirects=True)
        self.requests = 0

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _where(self, path: str) -> str:
        # Host and path only: never the query string (RunPod accepts ?api_key=...) nor the key.
        return f"{self.provider} {redact_url(self.base_url + path, self.api_key)}"

    def request(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None) -> Any:
        """JSON from one call, with retries; raises CloudAuthError / CloudError with one clear line."""
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json",
                   "User-Agent": "gpuspend"}
        where = self._where(path)
        last = "no answer"
        for attempt in range(self.retries + 1):
            wait = self.backoff_s * (2 ** attempt)
            self.requests += 1
            try:
                resp = self.http.request(method, self.base_url + path, params=params, json=json_body,
                                         headers=headers, timeout=self.timeout)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout:g}s"
            except httpx.TransportError as exc:
                last = f"cannot connect ({type(exc).__name__})"
            else:
                if resp.status_code in (401, 403) or (resp.status_code == 404 and self._says_bad_key(resp)):
                    said = _error_text(self._maybe_json(resp))
                    raise CloudAuthError(
                        f"{self.provider} rejected the API key (HTTP {resp.status_code}"
                        f"{': ' + _clean(said, self.api_key)[:120] if said else ''})",
                        where=where, hint=f"check {self.key_hint}")
                if resp.status_code == 429:
                    last = "rate limited (HTTP 429)"
                    after = _retry_after(resp)
                    if after is not None:
                        if after > MAX_RETRY_AFTER_S:
                            raise CloudError(f"rate limited: the API asks to wait {after:.0f}s", where=where,
                                             hint="it is polled again at the next interval")
                        wait = after
                elif resp.status_code >= 500:
                    last = f"server error (HTTP {resp.status_code})"
                elif resp.status_code >= 400:
                    said = _error_text(self._maybe_json(resp))
                    raise CloudError(f"request refused (HTTP {resp.status_code}"
                                     f"{': ' + _clean(said, self.api_key)[:160] if said else ''})", where=where)
                else:
                    return self._parse(resp, where)
            if attempt < self.retries:
                self.sleep(wait)
        raise CloudError(f"{last} after {self.retries + 1} attempts", where=where,
                         hint="it is polled again at the next interval")

    def _says_bad_key(self, resp: httpx.Response) -> bool:
        # Vast answers an unknown key with 404 {"error": "auth_error", "msg": "Invalid user key"}.
        data = self._maybe_json(resp)
        return isinstance(data, dict) and data.get("error") == "auth_error"

    @staticmethod
    def _maybe_json(resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            return None

    def _parse(self, resp: httpx.Response, where: str) -> Any:
        try:
            return resp.json()
        except (ValueError, UnicodeDecodeError) as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
            start = _clean(resp.text[:40], self.api_key)
            raise CloudError(f"malformed JSON in the answer ({detail}; starts with {start!r})", where=where,
                             hint="the API may be down or changed; it is polled again at the next interval") from None

    def get(self, path: str, params: dict | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json_body=body)

    def paginate(self, path: str, params: dict | None, items_key: str, *, token_key: str = "next_token",
                 cursor_param: str = "after_token", max_pages: int = 1000) -> Iterator[dict]:
        """Keyset pagination (Vast: `next_token` -> `after_token`) until the cursor is null."""
        params = dict(params or {})
        seen: set[str] = set()
        for _ in range(max_pages):
            data = self.get(path, params)
            items = expect(data, items_key, list, self._where(path))
            yield from items
            token = data.get(token_key)
            if not token:
                return
            if token in seen:
                raise CloudError("the API returned the same page cursor twice", where=self._where(path))
            seen.add(token)
            params[cursor_param] = token
        raise CloudError(f"more than {max_pages} pages", where=self._where(path))


def expect(data: Any, key: str, kind: type, where: str) -> Any:
    """data[key] of the given type, else a clear error naming what was missing."""
    if not isinstance(data, dict) or key not in data or not isinstance(data[key], kind):
        got = type(data.get(key)).__name__ if isinstance(data, dict) and key in data else "nothing"
        raise CloudError(f"unexpected answer: expected '{key}' to be a {kind.__name__}, got {got}", where=where)
    return data[key]


def number(value: Any) -> float | None:
    """A JSON number as a float; None when absent or not a number. Non-finite values (1e400 parses as inf)
    are kept so that the instance check names them rather than silently dropping a price."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def redact_url(url: str, secret: str | None = None) -> str:
    """A URL fit for an error line: no query string (RunPod accepts ?api_key=...), no user:password@, and the
    key redacted wherever else it hides."""
    text = _clean(url, secret).split("?", 1)[0].split("#", 1)[0]
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", text, flags=re.I)
