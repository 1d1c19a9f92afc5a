"""Configuration: YAML with every key validated against SCHEMA, errors as file:line:column.

Values may reference environment variables (`${SLACK_WEBHOOK_URL}`) so secrets stay out of the file.
Durations accept `30s`, `15m`, `4h`, `7d` (or plain seconds).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from gpuspend.errors import ConfigError

APP = "gpuspend"

# Leaf types: "int", "number", "str", "bool", "duration", "list:number", "list:str", "map:number", "map:str",
# "any". A nested dict is a section; a list with one dict is a list of sections.
SCHEMA: dict[str, Any] = {
    "database": "str",
    "interval": "number",
    "host": "str",
    "provider": "str",
    "currency": "str",
    "rates": {
        "per_gpu": "map:number",
        "per_model": "map:number",
        "per_host": "map:number",
        "instance": {"usd_per_hour": "number", "gpus": "int"},
    },
    "onprem": {
        "purchase_price": "number",
        "amortise_years": "number",
        "electricity_per_kwh": "number",
        "pue": "number",
    },
    "billing": {"resource_id": "str", "sources": "list:str"},
    "idle": {
        "util_pct": "number",
        "after": "duration",
        "busy_for": "duration",
        "low_util_pct": "number",
    },
    "retention": {"raw": "duration"},
    "forecast": {"window": "duration"},
    "budget": {
        "monthly": "number",
        "currency": "str",
        "thresholds": "list:number",
        "basis": "list:str",
    },
    "alerts": {
        "repeat": "duration",
        "spike_pct": "number",
        "stale_billing": "duration",
        "stale_catalog": "duration",
        "collector_stopped": "duration",
    },
    "notify": {
        "targets": [
            {
                "name": "str",
                "kind": "str",
                "url": "str",
                "topic": "str",
                "token": "str",
                "kinds": "list:str",
                "min_dollars": "number",
                "timeout": "duration",
                "retries": "int",
            }
        ]
    },
    "clouds": {
        "runpod": {"api_key": "str", "url": "str"},
        "lambda": {"api_key": "str", "url": "str"},
        "vast": {"api_key": "str", "url": "str"},
        "interval": "duration",
    },
    "tui": {"interval": "number", "keymap": "map:str", "ascii": "bool", "color_system": "str"},
    "metrics": {"listen": "str"},
    "fleet": {"timeout": "duration"},
}

DEFAULTS: dict[str, Any] = {
    "database": None,
    "interval": 2.0,
    "host": None,
    "provider": None,
    "currency": "USD",
    "rates": {"per_gpu": {}, "per_model": {}, "per_host": {}, "instance": {"usd_per_hour": None, "gpus": None}},
    "onprem": {"purchase_price": None, "amortise_years": 4.0, "electricity_per_kwh": None, "pue": 1.4},
    "billing": {"resource_id": None, "sources": []},
    "idle": {"util_pct": 5.0, "after": 900.0, "busy_for": 30.0, "low_util_pct": 20.0},
    "retention": {"raw": 7 * 86400.0},
    "forecast": {"window": 86400.0},
    "budget": {"monthly": None, "currency": "USD", "thresholds": [50.0, 80.0, 100.0], "basis": ["actual", "forecast"]},
    "alerts": {
        "repeat": 4 * 3600.0,
        "spike_pct": 50.0,
        "stale_billing": 3 * 86400.0,
        "stale_catalog": 90 * 86400.0,
        "collector_stopped": 300.0,
    },
    "notify": {"targets": []},
    "clouds": {
        "runpod": {"api_key": None, "url": "https://api.runpod.io/graphql"},
        "lambda": {"api_key": None, "url": "https://cloud.lambda.ai/api/v1"},
        "vast": {"api_key": None, "url": "https://console.vast.ai/api/v0"},
        "interval": 300.0,
    },
    "tui": {"interval": 1.0, "keymap": {}, "ascii": False, "color_system": None},
    "metrics": {"listen": None},
    "fleet": {"timeout": 5.0},
}

TARGET_DEFAULTS: dict[str, Any] = {
    "name": None,
    "kind": "webhook",
    "url": None,
    "topic": None,
    "token": None,
    "kinds": [],
    "min_dollars": 0.0,
    "timeout": 10.0,
    "retries": 3,
}

SECRET_KEYS = {"api_key", "token"}


def _is_secret_key(key: str) -> bool:
    """API keys and tokens anywhere; webhook URLs (which embed their secret) under notify.targets."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf in SECRET_KEYS or (key.startswith("notify.targets") and leaf == "url")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str | float | int) -> float:
    """'15m' -> 900.0; numbers are seconds. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError("expected a duration like 30s, 15m, 4h, 7d")
    if isinstance(text, int | float):
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"expected a duration like 30s, 15m, 4h, 7d, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


class Section(dict):
    """A dict that also reads as attributes: cfg.idle.util_pct."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _sectionize(value: Any) -> Any:
    if isinstance(value, dict):
        return Section({k: _sectionize(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_sectionize(v) for v in value]
    return value


@dataclass
class Config:
    data: Section
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    has_secrets: bool = False

    def __getattr__(self, name: str) -> Any:
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.yaml"


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "gpuspend.db"


def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.warnings: list[str] = []
        self.has_secrets = False

    def where(self, node: yaml.Node) -> str:
        m = node.start_mark
        return f"{self.path}:{m.line + 1}:{m.column + 1}"

    def fail(self, node: yaml.Node, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{key}: {msg}", where=self.where(node))

    def env(self, node: yaml.Node, key: str, text: str) -> str | None:
        missing: list[str] = []

        def sub(m: re.Match[str]) -> str:
            val = os.environ.get(m.group(1))
            if val is None:
                missing.append(m.group(1))
                return ""
            return val

        if _ENV.search(text):
            self.has_secrets = True
        out = _ENV.sub(sub, text)
        if missing:
            self.warnings.append(
                f"{self.where(node)}: {key}: environment variable {missing[0]} is not set; the value is ignored"
            )
            return None
        return out

    def scalar(self, node: yaml.Node, key: str, kind: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, f"expected a {kind.split(':')[-1]} value, got a {type(node).__name__[:-4].lower()}")
        value = yaml.safe_load(yaml.serialize(node))
        if value is None:
            return None
        if isinstance(value, str):
            value = self.env(node, key, value)
            if value is None:
                return None
        if value and _is_secret_key(key):
            self.has_secrets = True
        try:
            if kind == "str":
                return str(value)
            if kind == "bool":
                if isinstance(value, bool):
                    return value
                raise ValueError("expected true or false")
            if kind == "int":
                if isinstance(value, bool) or not isinstance(value, int | str):
                    raise ValueError("expected a whole number")
                return int(value)
            if kind == "number":
                if isinstance(value, bool):
                    raise ValueError("expected a number")
                return float(value)
            if kind == "duration":
                return parse_duration(value)
            if kind == "any":
                return value
        except (TypeError, ValueError) as exc:
            msg = str(exc) if "expected" in str(exc) else f"expected a {kind}, got {value!r}"
            raise self.fail(node, key, msg) from None
        raise AssertionError(kind)

    def value(self, node: yaml.Node, key: str, spec: Any) -> Any:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return None
        if isinstance(spec, dict):
            return self.section(node, key, spec)
        if isinstance(spec, list):
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, key, "expected a list")
            return [self.section(item, f"{key}[{i}]", spec[0], TARGET_DEFAULTS) for i, item in enumerate(node.value)]
        if spec.startswith("list:"):
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, key, "expected a list")
            return [self.scalar(item, key, spec[5:]) for item in node.value]
        if spec.startswith("map:"):
            if not isinstance(node, yaml.MappingNode):
                raise self.fail(node, key, "expected a mapping")
            return {str(k.value): self.scalar(v, f"{key}.{k.value}", spec[4:]) for k, v in node.value}
        return self.scalar(node, key, spec)

    def section(self, node: yaml.Node, prefix: str, spec: dict[str, Any], defaults: dict | None = None) -> dict:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, prefix or "config", "expected a mapping of keys")
        out: dict[str, Any] = _deep_copy(defaults) if defaults else {}
        for knode, vnode in node.value:
            name = str(knode.value)
            full = f"{prefix}.{name}" if prefix else name
            if name not in spec:
                close = difflib.get_close_matches(name, list(spec), n=1)
                hint = f"did you mean '{(prefix + '.') if prefix else ''}{close[0]}'?" if close else (
                    f"valid keys: {', '.join(sorted(spec))}")
                raise ConfigError(f"unknown key '{full}'", where=self.where(knode), hint=hint)
            out[name] = self.value(vnode, full, spec[name])
        return out


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict) and k not in ("per_gpu", "per_model", "per_host", "keymap"):
            _merge(base[k], v)
        elif v is not None or k not in base:
            base[k] = v
    return base


def load_config(path: str | Path | None = None, *, explicit: bool = False) -> Config:
    """Load config from `path` (or GPUSPEND_CONFIG, or the XDG path). A missing default file is fine."""
    if path is None and os.environ.get("GPUSPEND_CONFIG"):
        path, explicit = os.environ["GPUSPEND_CONFIG"], True
    p = Path(path) if path else default_config_path()
    data = _deep_copy(DEFAULTS)
    if not p.exists():
        if explicit or path:
            raise ConfigError(f"config file {p} does not exist", hint="check --config / GPUSPEND_CONFIG")
        return Config(_sectionize(data), None)
    loader = _Loader(p)
    try:
        text = p.read_text(encoding="utf-8")
        root = yaml.compose(text)
    except UnicodeDecodeError:
        raise ConfigError("config is not UTF-8 text", where=str(p)) from None
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark
        where = f"{p}:{m.line + 1}:{m.column + 1}" if m else str(p)
        raise ConfigError(f"YAML syntax error: {exc.problem}", where=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", where=str(p)) from None
    if root is not None:
        _merge(data, loader.section(root, "", SCHEMA))
    warnings = list(loader.warnings)
    if loader.has_secrets:
        try:
            mode = p.stat().st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                warnings.append(f"{p}: holds secrets but is readable by other users (run: chmod 600 {p})")
        except OSError:
            pass
    return Config(_sectionize(data), p, warnings, loader.has_secrets)


def iter_keys(spec: dict[str, Any] = SCHEMA, prefix: str = "") -> Iterator[str]:
    """Every documented key, dotted (used by the test that checks config.example.yaml)."""
    for k, v in spec.items():
        full = f"{prefix}.{k}" if prefix else k
        yield full
        if isinstance(v, dict):
            yield from iter_keys(v, full)
        elif isinstance(v, list):
            yield from iter_keys(v[0], full + "[]")


def warn(lines: list[str]) -> None:
    for line in lines:
        print(f"gpuspend: warning: {line}", file=sys.stderr)
