"""Configuration: YAML with every key validated against the typed sections below, errors as file:line:column.

Values may reference environment variables (`${SLACK_WEBHOOK_URL}`) so secrets stay out of the file.
Durations accept `30s`, `15m`, `4h`, `7d` (or plain seconds).

The sections are dataclasses (one per YAML section, `Config` at the root); SCHEMA and DEFAULTS are derived from
them, so a key, its kind and its default have one home. A section also reads as a read-only mapping
(`cfg.clouds["lambda"]`, `section.get("url")`) for keys that are not Python names.
"""

from __future__ import annotations

import difflib
import math
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

from gpuspend.alert_kinds import ALIASES as ALERT_ALIASES
from gpuspend.alert_kinds import KINDS as ALERT_KINDS
from gpuspend.errors import ConfigError
from gpuspend.fmt import currency_code
from gpuspend.options import MAX_INTERVAL_S, MIN_INTERVAL_S

APP = "gpuspend"
TARGET_KINDS = ("slack", "ntfy", "webhook")      # notify target kinds (gpuspend.notify sends each)
MAX_DEPTH = 32                                   # nesting beyond this is a mistake, not a config


# -- typed sections --------------------------------------------------------------------------------------------
# Leaf kinds: "int", "number", "str", "bool", "duration", "currency", "list:number", "list:str", "map:number",
# "map:str", "any". A nested dataclass is a section; a list of dataclasses is a list of sections.

def _deep_copy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deep_copy(v) for v in d]
    return d


def _leaf(kind: str, default: Any = None, *, key: str | None = None, lo: float | None = None,
          hi: float | None = None, above: float | None = None, choices: tuple[str, ...] = ()) -> Any:
    """`lo`/`hi`: inclusive bounds, `above`: exclusive lower bound (an interval of 0 busy-loops), `choices`:
    the only words accepted (for a list, each item)."""
    meta = {"kind": kind, "key": key, "lo": lo, "hi": hi, "above": above, "choices": choices}
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
    usd_per_hour: float | None = _leaf("number", lo=0)
    gpus: int | None = _leaf("int", lo=1, hi=1024)


@dataclass
class RatesConfig(_Section):
    per_gpu: dict[str, float] = _leaf("map:number", {}, lo=0)
    per_model: dict[str, float] = _leaf("map:number", {}, lo=0)
    per_host: dict[str, float] = _leaf("map:number", {}, lo=0)
    instance: InstanceRate = _section(InstanceRate)


@dataclass
class OnpremConfig(_Section):
    purchase_price: float | None = _leaf("number", lo=0)
    amortise_years: float = _leaf("number", 4.0, above=0)
    electricity_per_kwh: float | None = _leaf("number", lo=0)
    pue: float = _leaf("number", 1.4, lo=1, hi=10)


@dataclass
class BillingConfig(_Section):
    resource_id: str | None = _leaf("str")
    sources: list[str] = _leaf("list:str", [])


@dataclass
class IdleConfig(_Section):
    util_pct: float = _leaf("number", 5.0, lo=0, hi=100)
    after: float = _leaf("duration", 900.0, lo=0)
    busy_for: float = _leaf("duration", 30.0, lo=0)
    low_util_pct: float = _leaf("number", 20.0, lo=0, hi=100)


@dataclass
class RetentionConfig(_Section):
    raw: float = _leaf("duration", 7 * 86400.0, above=0)


@dataclass
class ForecastConfig(_Section):
    window: float = _leaf("duration", 30 * 86400.0, lo=0)   # days before the month for the forecast; 0 = none


@dataclass
class BudgetConfig(_Section):
    monthly: float | None = _leaf("number", above=0)
    currency: str = _leaf("currency", "USD")
    thresholds: list[float] = _leaf("list:number", [50.0, 80.0, 100.0], above=0, hi=10_000)
    basis: list[str] = _leaf("list:str", ["actual", "forecast"], choices=("actual", "forecast"))


@dataclass
class AlertsConfig(_Section):
    repeat: float = _leaf("duration", 4 * 3600.0, above=0)
    spike_pct: float = _leaf("number", 50.0, above=0)
    stale_billing: float = _leaf("duration", 3 * 86400.0, above=0)
    stale_catalog: float = _leaf("duration", 90 * 86400.0, above=0)
    collector_stopped: float = _leaf("duration", 300.0, above=0)


@dataclass
class NotifyTarget(_Section):
    name: str | None = _leaf("str")
    kind: str = _leaf("str", "webhook", choices=TARGET_KINDS)
    url: str | None = _leaf("str")
    topic: str | None = _leaf("str")
    token: str | None = _leaf("str")
    kinds: list[str] = _leaf("list:str", [], choices=(*ALERT_KINDS, *ALERT_ALIASES))
    min_dollars: float = _leaf("number", 0.0, lo=0)
    timeout: float = _leaf("duration", 10.0, above=0, hi=600)
    retries: int = _leaf("int", 3, lo=0, hi=20)


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
    interval: float = _leaf("duration", 300.0, lo=10)   # a cloud API polled faster than this is abuse


@dataclass
class PriceSources(_Section):
    """Where `gpuspend prices --refresh` reads each source (a mirror for tests and air-gapped sites); `off`
    turns a source off. Azure keeps its query parameters; SkyPilot is the catalogs/v<N> folder."""

    azure: str | None = _leaf("str", "https://prices.azure.com/api/retail/prices")
    skypilot: str | None = _leaf(
        "str", "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v7")
    runpod: str | None = _leaf("str", "https://api.runpod.io/graphql")
    vast: str | None = _leaf("str", "https://console.vast.ai/api/v0")
    lambda_: str | None = _leaf("str", "https://cloud.lambda.ai/api/v1", key="lambda")


@dataclass
class PricesConfig(_Section):
    sources: PriceSources = _section(PriceSources)
    skypilot_clouds: list[str] = _leaf("list:str", ["aws", "gcp", "lambda"])
    refresh: float = _leaf("duration", 0.0)      # the collector refreshes prices this often; 0 = never
    timeout: float = _leaf("duration", 20.0)


@dataclass
class TuiConfig(_Section):
    interval: float = _leaf("number", 1.0, lo=MIN_INTERVAL_S, hi=MAX_INTERVAL_S)
    keymap: dict[str, str] = _leaf("map:str", {})
    ascii: bool = _leaf("bool", False)
    color_system: str | None = _leaf("str")


@dataclass
class MetricsConfig(_Section):
    listen: str | None = _leaf("str")


@dataclass
class FleetConfig(_Section):
    timeout: float = _leaf("duration", 5.0, above=0, hi=600)


@dataclass
class WorkloadsConfig(_Section):
    """Which pod, Slurm job, container or notebook a GPU process belongs to (gpuspend.collectors.workloads)."""

    names: bool = _leaf("bool", True)             # ask Docker / kubelet folders / scontrol / Jupyter for names
    timeout: float = _leaf("duration", 0.5, above=0, hi=30)   # per name lookup: never holds up a sample
    docker_socket: str = _leaf("str", "/var/run/docker.sock")
    pods_log_dir: str = _leaf("str", "/var/log/pods")
    allocations: bool = _leaf("bool", True)       # GPUs held by a container or Slurm job with no process on them
    tag_uids: list[float] = _leaf("list:number", [])   # UIDs whose GPUSPEND_TEAM / GPUSPEND_PROJECT is trusted
    metrics_max: int = _leaf("int", 50, lo=1, hi=10_000)  # workload series on /metrics; the rest are `other`


@dataclass
class Config(_Section):
    """The whole configuration: defaults, overridden by the file. `path` is None when no file was read."""

    database: str | None = _leaf("str")
    interval: float = _leaf("number", 2.0, lo=MIN_INTERVAL_S, hi=MAX_INTERVAL_S)
    host: str | None = _leaf("str")
    provider: str | None = _leaf("str")
    currency: str = _leaf("currency", "USD")
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
    prices: PricesConfig = _section(PricesConfig)
    tui: TuiConfig = _section(TuiConfig)
    metrics: MetricsConfig = _section(MetricsConfig)
    fleet: FleetConfig = _section(FleetConfig)
    workloads: WorkloadsConfig = _section(WorkloadsConfig)
    # Not keys of the file: where it came from and what loading it found.
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    has_secrets: bool = False

    @property
    def data(self) -> dict[str, Any]:
        """The settings as plain nested dicts (a copy: change a setting through its attribute)."""
        return self.to_dict()


class _Kind(str):
    """A leaf's kind as the schema writes it ("number", "list:str"...), carrying the leaf's bounds and choices."""

    lo: float | None = None
    hi: float | None = None
    above: float | None = None
    choices: tuple[str, ...] = ()

    @classmethod
    def of(cls, meta: Any) -> _Kind:
        k = cls(meta["kind"])
        k.lo, k.hi, k.above, k.choices = meta.get("lo"), meta.get("hi"), meta.get("above"), meta.get("choices", ())
        return k


def _schema(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(cls):
        kind = f.metadata.get("kind")
        if kind == "section":
            out[_key(f)] = _schema(f.metadata["cls"])
        elif kind == "sections":
            out[_key(f)] = [_schema(f.metadata["cls"])]
        elif kind:
            out[_key(f)] = _Kind.of(f.metadata)
    return out


class _Invalid(ValueError):
    """A value of the right kind outside what the key allows: its message is the whole explanation."""


def parse_currency(value: Any) -> str:
    """An ISO 4217 code as the exports write it (`JPY`): `jpy` is JPY, so it matches the billing rows' currency
    and the budget compares with them; anything else is an error, never a currency that matches nothing."""
    code = currency_code(str(value))
    if code is None:
        raise _Invalid(f"expected a 3-letter ISO 4217 currency code such as USD, EUR or JPY, got {value!r}")
    return code


def _check(value: Any, spec: Any) -> None:
    """Bounds and choices of one scalar (raises ValueError with the sentence the user sees)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(f"expected a finite number, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi, above = getattr(spec, "lo", None), getattr(spec, "hi", None), getattr(spec, "above", None)
        if above is not None and not value > above:
            raise _Invalid(f"must be greater than {above:g}, got {value:g}")
        if lo is not None and value < lo:
            raise _Invalid(f"must be at least {lo:g}, got {value:g}")
        if hi is not None and value > hi:
            raise _Invalid(f"must be at most {hi:g}, got {value:g}")
    choices = getattr(spec, "choices", ())
    if choices and isinstance(value, str) and value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        raise _Invalid(f"unknown value {value!r} ({guess}use {', '.join(choices)})")
    if isinstance(value, str) and _CONTROL.search(value):
        raise _Invalid("contains control characters (write text, not escapes like \\x1b)")


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
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
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

        # a `${VAR}` reference keeps the secret out of the file (what the README recommends): not a secret here
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
        literal = not (isinstance(value, str) and _ENV.search(value))
        if isinstance(value, str):
            value = self.env(node, key, value)
            if value is None:
                return None
        if value and literal and _is_secret_key(key):
            self.has_secrets = True     # only a secret written in the file itself
        try:
            out: Any
            if kind == "str":
                out = str(value)
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError("expected true or false")
                out = value
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int | str):
                    raise ValueError("expected a whole number")
                out = int(value)
            elif kind == "number":
                if isinstance(value, bool):
                    raise ValueError("expected a number")
                out = float(value)
            elif kind == "duration":
                out = parse_duration(value)
            elif kind == "currency":
                out = parse_currency(value)
            elif kind == "any":
                return value
            else:
                raise AssertionError(kind)
            _check(out, kind)
            return out
        except (TypeError, ValueError) as exc:
            msg = str(exc) if isinstance(exc, _Invalid) or "expected" in str(exc) else (
                f"expected a {kind}, got {value!r}")
            raise self.fail(node, key, msg) from None

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
            return [self.scalar(item, key, _item_kind(spec, 5)) for item in node.value]
        if spec.startswith("map:"):
            if not isinstance(node, yaml.MappingNode):
                raise self.fail(node, key, "expected a mapping")
            seen: set[str] = set()
            return {self.once(seen, k, f"{key}.{k.value}"): self.scalar(v, f"{key}.{k.value}", _item_kind(spec, 4))
                    for k, v in node.value}
        return self.scalar(node, key, spec)

    def once(self, seen: set[str], knode: yaml.Node, full: str) -> str:
        """A key written twice in one mapping is an error: YAML loaders keep the last one silently, and a
        budget of 100 followed by one of 100000 is not a config anyone meant."""
        name = str(knode.value)
        if name in seen:
            raise ConfigError(f"'{full}' is set twice in one mapping", where=self.where(knode),
                              hint="keep one of them")
        seen.add(name)
        return name

    def section(self, node: yaml.Node, prefix: str, spec: dict[str, Any], defaults: dict | None = None) -> dict:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, prefix or "config", "expected a mapping of keys")
        out: dict[str, Any] = _deep_copy(defaults) if defaults else {}
        seen: set[str] = set()
        for knode, vnode in node.value:
            name = str(knode.value)
            full = f"{prefix}.{name}" if prefix else name
            self.once(seen, knode, full)
            if name not in spec:
                close = difflib.get_close_matches(name, list(spec), n=1)
                hint = f"did you mean '{(prefix + '.') if prefix else ''}{close[0]}'?" if close else (
                    f"valid keys: {', '.join(sorted(spec))}")
                raise ConfigError(f"unknown key '{full}'", where=self.where(knode), hint=hint)
            out[name] = self.value(vnode, full, spec[name])
        return out


def _item_kind(spec: Any, cut: int) -> Any:
    """The kind of one item of a list:/map: leaf, with the leaf's bounds and choices."""
    item = _Kind(spec[cut:])
    item.lo, item.hi = getattr(spec, "lo", None), getattr(spec, "hi", None)
    item.above, item.choices = getattr(spec, "above", None), getattr(spec, "choices", ())
    return item


def _depth_error(text: str, path: Path) -> ConfigError | None:
    """YAML nested deeper than MAX_DEPTH, found with the (iterative) event parser before the (recursive)
    composer could overflow Python's stack."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                m = event.start_mark
                return ConfigError(f"nested more than {MAX_DEPTH} levels deep", where=f"{path}:{m.line + 1}:"
                                   f"{m.column + 1}", hint="a gpuspend config is a few levels of keys")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def _reader_where(text: str, path: Path, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"{path}:{line}:{column}"


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
        deep = _depth_error(text, p)
        if deep is not None:
            raise deep
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise ConfigError("config is not UTF-8 text", where=str(p)) from None
    except yaml.reader.ReaderError as exc:     # a control byte in the file: PyYAML gives only its offset
        ch = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ConfigError(f"control character {ch!r} in the file", where=_reader_where(
            text, p, exc.position), hint="remove it; write text, not raw bytes") from None
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


def identity(cfg: Config) -> str:
    """Which configuration this process runs on, comparable across processes: the file's resolved path and a
    hash of its text (or "defaults"). The collector records it so `doctor` can say when the collector and the
    report read different configs (then their budgets, rates and alerts disagree)."""
    import hashlib

    path = getattr(cfg, "path", None)
    if path is None:
        return "defaults (no config file)"
    path = Path(path)
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        digest = "unreadable"
    return f"{path.resolve()} (sha256 {digest})"
