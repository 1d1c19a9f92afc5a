"""The collector's periodic GPU-cloud task, kept import-light: httpx and the provider clients are loaded only
when a cloud API key is configured, so a plain GPU box never pays their start-up time and memory."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuspend.config import Config

PROVIDER_NAMES = ("runpod", "lambda", "vast")


def configured(cfg: Config) -> list[str]:
    """The GPU clouds with an API key in the config."""
    clouds = getattr(cfg, "clouds", None) or {}
    return [name for name in PROVIDER_NAMES if (clouds.get(name) or {}).get("api_key")]


def poll_task(conn: sqlite3.Connection, cfg: Config, now_ms: int) -> None:
    if not configured(cfg):
        return
    from gpuspend.collectors.clouds.poll import poll_task as poll

    poll(conn, cfg, now_ms)
