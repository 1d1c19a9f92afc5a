"""Configuration: YAML with every key validated against the typed sections below, errors as file:line:column.

Values may reference environment variables (`${SLACK_WEBHOOK_URL}`) so secrets stay out of the file.
Durations accept `30s`, `15m`, `4h`, `7d` (or plain seconds).

The sections are dataclasses (one per YAML section, `Config` at the root); SCHEMA and DEFAULTS are derived from
them, so a key, its kind and its default have one home. A section also reads as a read-only mapping
(`cfg.clouds["lambda"]`, `section.get("url")`) for keys that are not Python names.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import platformdirs
import yaml

from gpuspend.errors import ConfigError

APP = "gpuspend"


# -- typed sections --------------------------------------------------------------------------------------------
# Leaf kinds: "int", "number", "str", "bool", "duration", "list:number", "list:str", "map:number", "map:str",
# "any". A nested dataclass is a section; a list of dataclasses is a list of sections.

def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def _leaf(kind: str, default: Any = None, *, key: str | None = None) -> Any:
    meta = {"kind": kind, "key": key}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: _deep_copy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _section(cls: type, *, key: str | None = None) -> Any:
    return field(default_factory=cls, metadata={"kind": "section", "cls": cls, "key": key})


def _sections(cls: type) -> Any:
    return field(default_factory=list, metadata={"kind": "sections", "cls": cls, "key": None})


def _key(f: Any) -> str:
    return f.metadata.get("key") or f.name


_NAMES: dict[type, dict[str, str]] = {}


class _Section:
    """Mapping-style reads for a typed section (keys as written in YAML, e.g. clouds["lambda"])."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @classmethod
    def _names(cls) -> dict[str, str]:   # YAML key -> attribute
        names = _NAMES.get(cls)
        if names is None:
            names = _NAMES[cls] = {_key(f): f.name for f in fields(cls) if "kind" in f.metadata}  # type: ignore[arg-type]
        return names

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, self._names()[key])
        except KeyError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        name = self._names().get(key)
        return default if name is None else getattr(self, name)

    def __contains__(self, key: object) -> bool:
        return key in self._names()

    def keys(self) -> list[str]:
        return list(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def values(self) -> list[Any]:
        return [getattr(self, n) for n in self._names().values()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, n)) for k, n in self._names().items()]

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists, keyed as in YAML."""
        return {k: _plain(v) for k, v in self.items()}


def _plain(v: Any) -> Any:
    if isinstance(v, _Section):
        return v.to_dict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


@dataclass
class InstanceRate(_Section):
    usd_per_hour: float | None = _leaf("number")
    gpus: int | None = _leaf("int")


@dataclass
class RatesConfig(_Section):
    per_gpu: dict[str, float] = _leaf("map:number", {})
    per_model: dict[str, float] = _leaf("map:number", {})
    per_host: dict[str, float] = _leaf("map:number", {})
    instance: InstanceRate = _section(InstanceRate)


@dataclass
class OnpremConfig(_Section):
    purchase_price: float | None = _leaf("number")
    amortise_years: float = _leaf("number", 4.0)
    electricity_per_kwh: float | None = _leaf("number")
    pue: float = _leaf("number", 1.4)


@dataclass
class BillingConfig(_Section):
    resource_id: str | None = _leaf("str")
    sources: list[str] = _leaf("list:str", [])


@dataclass
class IdleConfig(_Section):
    util_pct: float = _leaf("number", 5.0)
    after: float = _leaf("duration", 900.0)
    busy_for: float = _leaf("duration", 30.0)
    low_util_pct: float = _leaf("number", 20.0)


@dataclass
class RetentionConfig(_Section):
    raw: float = _leaf("duration", 7 * 86400.0)


@dataclass
class ForecastConfig(_Section):
    window: float = _leaf("duration", 86400.0)


@dataclass
class BudgetConfig(_Section):
    monthly: float | None = _leaf("number")
    currency: str = _leaf("str", "USD")
    thresholds: list[float] = _leaf("list:number", [50.0, 80.0, 100.0])
    basis: list[str] = _leaf("list:str", ["actual", "forecast"])


@dataclass
class AlertsConfig(_Section):
    repeat: float = _leaf("duration", 4 * 3600.0)
    spike_pct: float = _leaf("number", 50.0)
    stale_billing: float = _leaf("duration", 3 * 86400.0)
    stale_catalog: float = _leaf("duration", 90 * 86400.0)
    collector_stopped: float = _leaf("duration", 300.0)


@dataclass
class NotifyTarget(_Section):
    name: str | None = _leaf("str")
    kind: str = _leaf("str", "webhook")
    url: str | None = _leaf("str")
    topic: str | None = _leaf("str")
    token: str | None = _leaf("str")
    kinds: list[str] = _leaf("list:str", [])
    min_dollars: float = _leaf("number", 0.0)
    timeout: float = _leaf("duration", 10.0)
    retries: int = _leaf("int", 3)


@dataclass
class NotifyConfig(_Section):
    targets: list[NotifyTarget] = _sections(NotifyTarget)


@dataclass
class CloudAccount(_Section):
    api_key: str | None = _leaf("str")
    url: str | None = _leaf("str")


def _account(url: str) -> Any:
    return field(default_factory=lambda: CloudAccount(url=url), metadata={"kind": "section", "cls": CloudAccount})


@dataclass
class CloudsConfig(_Section):
    runpod: CloudAccount = _account("https://api.runpod.io/graphql")
    lambda_: CloudAccount = field(default_factory=lambda: CloudAccount(url="https://cloud.lambda.ai/api/v1"),
                                  metadata={"kind": "section", "cls": CloudAccount, "key": "lambda"})
    vast: CloudAccount = _account("https://console.vast.ai/api/v0")
    interval: float = _leaf("duration", 300.0)


@dataclass
class TuiConfig(_Section):
    interval: float = _leaf("number", 1.0)
    keymap: dict[str, str] = _leaf("map:str", {})
    ascii: bool = _leaf("bool", False)
    color_system: str | None = _leaf("str")


@dataclass
class MetricsConfig(_Section):
    listen: str | None = _leaf("str")


@dataclass
class FleetConfig(_Section):
    timeout: float = _leaf("duration", 5.0)


@dataclass
class Config(_Section):
    """The whole configuration: defaults, overridden by the file. `path` is None when no file was read."""

    database: str | None = _leaf("str")
    interval: float = _leaf("number", 2.0)
    host: str | None = _leaf("str")
    provider: str | None = _leaf("str")
    currency: str = _leaf("str", "USD")
    rates: RatesConfig = _section(RatesConfig)
    onprem: OnpremConfig = _section(OnpremConfig)
    billing: BillingConfig = _section(BillingConfig)
    idle: IdleConfig = _section(IdleConfig)
    retention: RetentionConfig = _section(RetentionConfig)
    forecast: ForecastConfig = _section(ForecastConfig)
    budget: BudgetConfig = _section(BudgetConfig)
    alerts: AlertsConfig = _section(AlertsConfig)
    notify: NotifyConfig = _section(NotifyConfig)
    clouds: CloudsConfig = _section(CloudsConfig)
    tui: TuiConfig = _section(TuiConfig)
    metrics: MetricsConfig = _section(MetricsConfig)
    fleet: FleetConfig = _section(FleetConfig)
    # Not keys of the file: where it came from and what loading it found.
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    has_secrets: bool = False

    @property
    def data(self) -> dict[str, Any]:
        """The settings as plain nested dicts (a copy: change a setting through its attribute)."""
        return self.to_dict()


def _schema(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(cls):
        kind = f.metadata.get("kind")
        if kind == "section":
            out[_key(f)] = _schema(f.metadata["cls"])
        elif kind == "sections":
            out[_key(f)] = [_schema(f.metadata["cls"])]
        elif kind:
            out[_key(f)] = kind
    return out


def _build(cls: type, data: dict[str, Any]) -> Any:
    """A typed section from the validated, defaults-merged dict of it."""
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        kind = f.metadata.get("kind")
        if not kind or _key(f) not in data:
            continue
        value = data[_key(f)]
        if kind == "section":
            value = _build(f.metadata["cls"], value) if isinstance(value, dict) else f.default_factory()
        elif kind == "sections":
            value = [_build(f.metadata["cls"], v) for v in value or []]
        kwargs[f.name] = value
    return cls(**kwargs)


def default_config() -> Config:
    """Built-in defaults, no file."""
    return Config()


SCHEMA: dict[str, Any] = _schema(Config)
DEFAULTS: dict[str, Any] = Config().to_dict()
TARGET_DEFAULTS: dict[str, Any] = NotifyTarget().to_dict()

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


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.yaml"


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "gpuspend.db"


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
        return _build(Config, data)
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
    cfg: Config = _build(Config, data)
    cfg.path, cfg.warnings, cfg.has_secrets = p, warnings, loader.has_secrets
    return cfg


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
