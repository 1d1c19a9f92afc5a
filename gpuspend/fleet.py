"""The fleet view: many nodes through Prometheus (gpuspend's own exporters, and nodes that run only NVIDIA's
dcgm-exporter), read with a handful of instant queries over the HTTP API, run in parallel, filtered on the
server (only current, non-zero series come back; dcgm idle minutes and episode windows are computed there).
Prometheus's work grows with the series a query reads, so a gpuspend GPU is read from three series (status,
cost, utilisation) plus two more only while it is idle.

Numbers for gpuspend nodes are the nodes' own snapshot figures (per-host gauges), so the fleet total equals the
sum of the nodes' own reports. dcgm-only nodes are priced here from configured rates or the price catalog, and
their month figures are run-rate estimates (marked as such).

When Prometheus is unreachable, slow or answers an error, the last good view (cached per URL under the XDG cache
dir) is returned marked stale, with the reason; `run_fleet_report` then exits 3.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gpuspend.alert_kinds import IDLE, parse_fail_on
from gpuspend.errors import EXIT_ALERTS, EXIT_OK, DataError, UsageError
from gpuspend.fmt import clean, count, duration, money
from gpuspend.idle import IDLE_STATES, is_idle, promql_idle

if TYPE_CHECKING:
    import httpx

    from gpuspend.config import Config
    from gpuspend.options import FleetReportOptions
# The gpuspend series the view needs, as separate instant queries run in parallel (Prometheus evaluates them
# on several cores; a regex over every series' name is what timed out at 1,000 nodes). Prometheus's cost is
# per series it reads, so each GPU is read from as few series as there are numbers: its state, rate source and
# idle episode come from one `gpuspend_gpu_status` series (not the five-series state enum, the rate info and the
# episode flag), and the idle time and episode waste only where non-zero (absent means 0: the exporter always
# writes them). Per-node money is each node's own gauges.
Q_GPUSPEND_PARTS = {
    "gpu_status": "gpuspend_gpu_status",
    "gpu_cost": "gpuspend_gpu_cost_per_hour",
    "gpu_util": "gpuspend_gpu_utilization_ratio",
    "gpu_idle_for": "gpuspend_gpu_idle_for_seconds != 0",
    "gpu_waste": "gpuspend_gpu_idle_episode_waste != 0",
    "node": '{__name__=~"gpuspend_(cost_per_hour|idle_waste_today|month_to_date|month_projection|up)"}',
}
# Exporters from before gpuspend_gpu_status: the same three facts from the older series, asked in a second round
# only when a GPU came back without a status series, and only for the hosts that export none.
Q_LEGACY = {
    "legacy_state": "gpuspend_gpu_state == 1 unless on(host) gpuspend_gpu_status",
    "legacy_rate": "group without(label, as_of) (gpuspend_gpu_rate_info) unless on(host) gpuspend_gpu_status",
    "legacy_open": "gpuspend_gpu_idle_episode_open == 1 unless on(host) gpuspend_gpu_status",
}
Q_DCGM = '{__name__=~"DCGM_FI_DEV_GPU_UTIL|DCGM_FI_PROF_GR_ENGINE_ACTIVE"}'
# Nodes that exported in the last hour but not now: shown as missing rather than silently dropped.
Q_MISSING = "last_over_time(gpuspend_up[1h]) unless on(instance, job) gpuspend_up"


class FleetError(DataError):
    """Prometheus unreachable, too slow, or answering an error (exit 3)."""


@dataclass
class FleetGpu:
    node: str
    gpu: str
    uuid: str
    model: str
    source: str                      # gpuspend | dcgm
    state: str                       # busy | held-idle | free-idle | idle (dcgm) | lost | stale | unknown
    util_pct: float | None
    cost_per_hour: float | None      # None = no rate
    currency: str
    rate_source: str
    idle: bool
    idle_for_s: float | None
    episode_open: bool
    waste: float                     # gpuspend: open episode's waste; dcgm: idle minutes today x rate
    workload: str | None = None      # dcgm: from its pod/namespace/container/hpc_job/user labels


@dataclass
class FleetNode:
    name: str
    source: str                      # gpuspend | dcgm
    up: bool = True
    gpus: list[FleetGpu] = field(default_factory=list)
    cost_per_hour: dict[str, float] = field(default_factory=dict)     # currency -> amount
    waste_per_hour: dict[str, float] = field(default_factory=dict)    # $/h of GPUs idle now
    waste_today: dict[str, float] = field(default_factory=dict)
    mtd: dict[str, float] = field(default_factory=dict)
    projection: dict[str, float] = field(default_factory=dict)
    estimated: bool = False          # month figures are run-rate estimates (dcgm)
    unpriced: int = 0                # GPUs with no rate

    @property
    def idle_gpus(self) -> int:
        return sum(1 for g in self.gpus if g.idle)


@dataclass
class FleetView:
    url: str
    fetched_s: float
    nodes: list[FleetNode]
    missing: list[str] = field(default_factory=list)    # nodes seen in the last hour, not now
    stale: bool = False
    error: str | None = None

    def totals(self) -> dict[str, dict[str, float]]:
        """Per currency (never summed across): cost_per_hour, waste_per_hour, waste_today, mtd, projection."""
        out: dict[str, dict[str, float]] = {}
        for n in self.nodes:
            for key in ("cost_per_hour", "waste_per_hour", "waste_today", "mtd", "projection"):
                for cur, v in getattr(n, key).items():
                    out.setdefault(cur, {k: 0.0 for k in ("cost_per_hour", "waste_per_hour", "waste_today",
                                                          "mtd", "projection")})[key] += v
        return out

    @property
    def gpu_count(self) -> int:
        return sum(len(n.gpus) for n in self.nodes)

    @property
    def idle_count(self) -> int:
        return sum(n.idle_gpus for n in self.nodes)

    @property
    def unpriced(self) -> int:
        """GPUs with no rate: in none of the money totals, so every total must say so."""
        return sum(n.unpriced for n in self.nodes)

    def idle_gpus(self) -> list[FleetGpu]:
        """Idle GPUs across nodes, biggest waste first."""
        gpus = [g for n in self.nodes for g in n.gpus if g.idle]
        return sorted(gpus, key=lambda g: (-g.waste, -(g.cost_per_hour or 0.0), g.node, g.gpu))

    def to_json(self) -> dict[str, Any]:
        # what dataclasses.asdict gives, built directly (asdict deep-copies field by field: 8,000 GPUs took
        # 0.1 s, and the stale-view cache writes this after every fetch)
        nodes = []
        for n in self.nodes:
            d = {k: get(n) for k, get in _NODE_FIELDS}
            d["gpus"] = [dict(zip(_GPU_NAMES, _gpu_values(g), strict=True)) for g in n.gpus]
            for key in _MONEY_KEYS:
                d[key] = dict(d[key])
            d["idle_gpus"] = n.idle_gpus
            nodes.append(d)
        return {"url": self.url, "fetched_at": _iso(self.fetched_s), "stale": self.stale, "error": self.error,
                "nodes": nodes, "missing_nodes": self.missing, "gpus": self.gpu_count,
                "idle_gpus": self.idle_count, "totals": self.totals()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetView:
        nodes = []
        for d in data.get("nodes", []):
            d = dict(d)
            d.pop("idle_gpus", None)
            gpus = [FleetGpu(**g) for g in d.pop("gpus", [])]
            nodes.append(FleetNode(gpus=gpus, **d))
        fetched = datetime.fromisoformat(data["fetched_at"]).timestamp()
        return cls(url=data["url"], fetched_s=fetched, nodes=nodes, missing=list(data.get("missing_nodes", [])))


_MONEY_KEYS = ("cost_per_hour", "waste_per_hour", "waste_today", "mtd", "projection")
_NODE_FIELDS = tuple((f.name, attrgetter(f.name)) for f in fields(FleetNode))
_GPU_NAMES = tuple(f.name for f in fields(FleetGpu))
_gpu_values = attrgetter(*_GPU_NAMES)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Prometheus HTTP API ---------------------------------------------------------------------------------------

def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--fleet {url!r}: expected a Prometheus URL like http://prometheus:9090")
    return url.strip().rstrip("/")


class Prometheus:
    """Instant queries against /api/v1/query with one timeout for connect, read and the server's evaluation.

    With an httpx client (tests, callers with their own transport) or where httpx's handling matters (https,
    credentials in the URL, an HTTP proxy in the environment), queries go through httpx; a plain http URL goes
    through the standard library's http.client, one connection per querying thread: importing httpx was 80 ms of a
    `--report --fleet` run's start-up."""

    def __init__(self, url: str, timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        self.url = check_url(url)
        self.timeout_s = float(timeout_s)
        self.client = client
        self._plain = None if client is not None else _PlainHttp.for_url(self.url, self.timeout_s)
        if client is None and self._plain is None:
            import httpx

            self.client = httpx.Client(timeout=self.timeout_s)

    def close(self) -> None:
        if self._plain is not None:
            self._plain.close()
        if self.client is not None:
            self.client.close()

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant vector: [{"metric": {...}, "value": [ts, "v"]}, ...]. Raises FleetError."""
        # Prometheus durations take integer units: send the evaluation timeout in ms.
        params = {"query": promql, "timeout": f"{max(1, int(self.timeout_s * 1000))}ms"}
        if self._plain is not None:
            status, body_bytes = self._plain.get("/api/v1/query", params, self._timed_out, self._unreachable)
        else:
            status, body_bytes = self._httpx_get(params)
        try:
            body = json.loads(body_bytes)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = ""
            if isinstance(body, dict):
                detail = f"{body.get('errorType', '')}: {body.get('error', '')}".strip(": ")
            detail = detail or f"HTTP {status} {_reason(status)}"
            raise FleetError(f"Prometheus query failed: {clean(detail, 200)}", where=self.url,
                             hint="is this URL a Prometheus server (…/api/v1/query)?")
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise FleetError(f"unexpected Prometheus answer (resultType {data.get('resultType')!r})", where=self.url)
        return data.get("result") or []

    def _httpx_get(self, params: dict[str, str]) -> tuple[int, bytes]:
        import httpx

        assert self.client is not None
        try:
            resp = self.client.get(f"{self.url}/api/v1/query", params=params)
        except httpx.TimeoutException:
            raise self._timed_out() from None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return resp.status_code, resp.content

    def _timed_out(self) -> FleetError:
        return FleetError(f"Prometheus did not answer within {self.timeout_s:g}s", where=self.url,
                          hint="is it overloaded? raise fleet.timeout in the config")

    def _unreachable(self, exc: BaseException) -> FleetError:
        return FleetError(f"Prometheus unreachable: {_first_line(exc) or type(exc).__name__}", where=self.url,
                          hint="check the --fleet URL and that Prometheus is running")


_PROXY_VARS = ("http_proxy", "all_proxy")


class _PlainHttp:
    """GET over http.client for a plain http:// URL, a keep-alive connection per thread."""

    def __init__(self, host: str, port: int, prefix: str, timeout_s: float) -> None:
        self.host, self.port, self.prefix, self.timeout_s = host, port, prefix, timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[Any] = []

    @classmethod
    def for_url(cls, url: str, timeout_s: float) -> _PlainHttp | None:
        """None where httpx should do it: https, credentials in the URL, a proxy in the environment."""
        parts = urlsplit(url)
        if parts.scheme != "http" or "@" in parts.netloc or parts.query or parts.fragment:
            return None
        if any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS):
            return None
        try:
            port = parts.port or 80
        except ValueError:
            return None
        return cls(parts.hostname or "", port, parts.path.rstrip("/"), timeout_s)

    def get(self, path: str, params: dict[str, str], timed_out: Any, unreachable: Any) -> tuple[int, bytes]:
        import http.client
        from urllib.parse import urlencode

        target = f"{self.prefix}{path}?{urlencode(params)}"
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            fresh = conn is None
            if fresh:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
                self._local.conn = conn
                with self._lock:
                    self._conns.append(conn)
            try:
                # compressed as httpx asks for it: 30x fewer bytes on the wire for a few ms of Prometheus's CPU
                conn.request("GET", target, headers={"Accept": "application/json", "Accept-Encoding": "gzip"})
                resp = conn.getresponse()
                body = resp.read()
                if (resp.getheader("Content-Encoding") or "").strip().lower() == "gzip":
                    body = _gunzip(body)
                return resp.status, body
            except TimeoutError:
                conn.close()
                self._local.conn = None
                raise timed_out() from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._local.conn = None
                if fresh or attempt:          # a kept-alive connection the server closed: once more, anew
                    raise unreachable(exc) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


def _gunzip(body: bytes) -> bytes:
    import zlib

    try:
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    except zlib.error:
        return b""              # not JSON then: reported as the HTTP status it came with


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def _value(sample: dict[str, Any]) -> float | None:
    try:
        v = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return None if v != v else v        # NaN -> None


# -- building the view -------------------------------------------------------------------------------------------

def _cfg_get(cfg: Config, section: str, key: str, default: Any) -> Any:
    try:
        value = getattr(getattr(cfg, section), key)
    except AttributeError:
        return default
    return default if value is None else value


def fleet_queries(cfg: Config, wall: float | None = None) -> dict[str, str]:
    """The instant queries one fleet view runs (in parallel), by name; `wall` is Prometheus's evaluation time."""
    util_pct = float(_cfg_get(cfg, "idle", "util_pct", 5.0))
    after_s = int(_cfg_get(cfg, "idle", "after", 900.0))
    wall = time.time() if wall is None else wall
    since_midnight = max(60, int(wall - wall // 86400 * 86400))
    window = max(after_s, 1)
    return {
        **Q_GPUSPEND_PARTS,
        "dcgm": Q_DCGM,
        "missing": Q_MISSING,
        # minutes idle since UTC midnight, and the highest utilisation over idle.after (episode open if low),
        # only for series that already existed idle.after ago (else we cannot know the GPU idled that long);
        # the profiling metric (0..1) separately, for nodes without DCGM_FI_DEV_GPU_UTIL
        "dcgm_idle_min": f"count_over_time(({promql_idle('DCGM_FI_DEV_GPU_UTIL', util_pct)})"
                         f"[{since_midnight}s:1m])",
        "dcgm_max": f"max_over_time(DCGM_FI_DEV_GPU_UTIL[{window}s]) and DCGM_FI_DEV_GPU_UTIL offset {window}s",
        "gr_idle_min": f"count_over_time(({promql_idle('DCGM_FI_PROF_GR_ENGINE_ACTIVE * 100', util_pct)})"
                       f"[{since_midnight}s:1m])",
        "gr_max": f"max_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE[{window}s]) * 100 "
                  f"and DCGM_FI_PROF_GR_ENGINE_ACTIVE offset {window}s",
    }


def fetch_fleet(url: str, cfg: Config | None = None, *, timeout_s: float | None = None,
                client: httpx.Client | None = None) -> FleetView:
    """Query Prometheus and build the fleet view. Raises FleetError (exit 3) when Prometheus fails."""
    cfg = cfg if cfg is not None else default_config()
    timeout = float(timeout_s or _cfg_get(cfg, "fleet", "timeout", 5.0))
    prom = Prometheus(url, timeout, client)
    util_pct = float(_cfg_get(cfg, "idle", "util_pct", 5.0))
    wall = time.time()    # Prometheus evaluates at its own (real) time; windows are measured in that clock
    queries = fleet_queries(cfg, wall)
    try:
        results = _run_parallel(prom, queries)
        legacy = _needs_legacy(results)
        if legacy:
            results.update(_run_parallel(prom, Q_LEGACY))
    finally:
        if client is None:
            prom.close()
    nodes = _gpuspend_nodes(results)
    known_uuids = {g.uuid for n in nodes.values() for g in n.gpus}
    for node in _dcgm_nodes(results["dcgm"], results["gr_idle_min"] + results["dcgm_idle_min"],
                            results["gr_max"] + results["dcgm_max"], cfg, util_pct, known_uuids, set(nodes), wall):
        nodes[node.name] = node
    missing = sorted({clean(s["metric"].get("host") or s["metric"].get("instance", "?"))
                      for s in results["missing"]} - set(nodes))
    return FleetView(url=prom.url, fetched_s=wall, nodes=[nodes[k] for k in sorted(nodes)], missing=missing)


def _run_parallel(prom: Prometheus, queries: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        futures = {k: pool.submit(prom.query, q) for k, q in queries.items()}
        return {k: f.result() for k, f in futures.items()}


def _host(m: dict[str, Any]) -> str:
    return m.get("host") or m.get("instance") or "?"


def _needs_legacy(results: dict[str, list[dict[str, Any]]]) -> bool:
    """A GPU (by its cost or utilisation series) on a host that exports no gpuspend_gpu_status: an older exporter."""
    with_status = {_host(s["metric"]) for s in results["gpu_status"]}
    return any(_host(s["metric"]) not in with_status for k in ("gpu_cost", "gpu_util") for s in results[k])


def _gpuspend_nodes(results: dict[str, list[dict[str, Any]]]) -> dict[str, FleetNode]:
    """gpuspend nodes from the answers to Q_GPUSPEND_PARTS (and Q_LEGACY, when asked): one pass per answer."""
    nodes: dict[str, FleetNode] = {}
    gpus: dict[tuple[str, str], dict[str, Any]] = {}             # by the labels as they came
    months: dict[tuple[str, str, str], tuple[str, float]] = {}    # (host, cur, metric) -> (month, v)
    seen: dict[Any, str] = {}

    def text(v: Any) -> str:
        # the same host, model, state and currency labels come back on every GPU's series: clean each value once
        got = seen.get(v)
        if got is None:
            got = seen[v] = clean(v)
        return got

    def gpu(m: dict[str, Any]) -> dict[str, Any]:
        key = (m.get("host") or m.get("instance") or "?", m.get("uuid", ""))
        g = gpus.get(key)
        if g is None:
            g = gpus[key] = {"node": text(key[0]), "gpu": text(m.get("gpu", "")), "uuid": clean(key[1]),
                             "model": text(m.get("model", ""))}
        return g

    def node(name: str) -> FleetNode:
        got = nodes.get(name)
        if got is None:
            got = nodes[name] = FleetNode(name=name, source="gpuspend")
        return got

    get = results.get
    for s in get("gpu_status", ()):
        m = s["metric"]
        g = gpu(m)
        g["state"] = text(m.get("state") or "unknown")
        g["rate_source"] = text(m.get("source", ""))
        g["open"] = m.get("episode") == "open"
    for s in get("legacy_state", ()):
        gpu(s["metric"])["state"] = text(s["metric"].get("state") or "unknown")
    for s in get("legacy_rate", ()):
        gpu(s["metric"])["rate_source"] = text(s["metric"].get("source", ""))
    for s in get("legacy_open", ()):
        gpu(s["metric"])["open"] = True                   # filtered on the server: == 1
    for s in get("gpu_cost", ()):
        g = gpu(s["metric"])
        g["cost"] = _value(s)
        g["currency"] = text(s["metric"].get("currency", ""))
    for s in get("gpu_util", ()):
        v = _value(s)
        if v is not None:
            gpu(s["metric"])["util"] = v * 100.0
    for s in get("gpu_idle_for", ()):
        gpu(s["metric"])["idle_for"] = _value(s)
    for s in get("gpu_waste", ()):
        g = gpu(s["metric"])
        g["waste"] = _value(s) or 0.0
        if "currency" not in g:
            g["currency"] = text(s["metric"].get("currency", ""))
    for s in get("node", ()):
        m = s["metric"]
        name = m.get("__name__", "")
        host, v = text(m.get("host") or m.get("instance") or "?"), _value(s)
        if name == "gpuspend_up":
            node(host).up = v == 1.0
        elif name == "gpuspend_cost_per_hour":
            node(host).cost_per_hour[text(m.get("currency", ""))] = v or 0.0
        elif name == "gpuspend_idle_waste_today":
            node(host).waste_today[text(m.get("currency", ""))] = v or 0.0
        elif name in ("gpuspend_month_to_date", "gpuspend_month_projection"):
            key = (host, text(m.get("currency", "")), name)
            month = m.get("month", "")
            if v is not None and (key not in months or month > months[key][0]):
                months[key] = (month, v)
    for (host, cur, name), (_, v) in months.items():
        target = node(host).mtd if name == "gpuspend_month_to_date" else node(host).projection
        target[cur] = v
    by_gpu: dict[tuple[str, str], dict[str, Any]] = {}
    for g in gpus.values():          # labels that differ only in what clean() removed are one GPU
        key = (g["node"], g["uuid"])
        if key in by_gpu:
            by_gpu[key].update(g)
        else:
            by_gpu[key] = g
    for g in sorted(by_gpu.values(), key=lambda g: (g["node"], _gpu_sort(g["gpu"]), g["uuid"])):
        host, state, cost = g["node"], g.get("state", "unknown"), g.get("cost")
        idle = state in IDLE_STATES
        fg = FleetGpu(node=host, gpu=g["gpu"], uuid=g["uuid"], model=g["model"], source="gpuspend", state=state,
                      util_pct=g.get("util"), cost_per_hour=cost, currency=g.get("currency", ""),
                      rate_source=g.get("rate_source", "none" if cost is None else ""),
                      # no series: filtered out on the server as 0 (see Q_GPUSPEND_PARTS)
                      idle=idle, idle_for_s=g.get("idle_for", 0.0), episode_open=g.get("open", False),
                      waste=g.get("waste", 0.0))
        n = nodes.get(host) or node(host)
        n.gpus.append(fg)
        if cost is None:
            n.unpriced += 1
        elif idle:
            n.waste_per_hour[fg.currency] = n.waste_per_hour.get(fg.currency, 0.0) + cost
    return nodes


def _gpu_sort(index: str) -> tuple[int, str]:
    return (int(index), "") if index.isdigit() else (1 << 30, index)


def _dcgm_key(m: dict[str, Any]) -> tuple[str, str, str]:
    node = clean(m.get("Hostname") or m.get("hostname") or m.get("instance") or "?")
    return node, clean(m.get("gpu", "")), clean(m.get("UUID") or m.get("uuid") or "")


def _dcgm_nodes(util_samples: list[dict[str, Any]], idle_min: list[dict[str, Any]], max_util: list[dict[str, Any]],
                cfg: Config, util_pct: float, known_uuids: set[str], known_nodes: set[str],
                wall: float) -> list[FleetNode]:
    per_gpu: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in util_samples:
        m = s.get("metric", {})
        key = _dcgm_key(m)
        if key[2] in known_uuids or key[0] in known_nodes:
            continue            # the node runs gpuspend too: its own figures win
        v = _value(s)
        g = per_gpu.setdefault(key, {"model": clean(m.get("modelName", ""))})
        g.setdefault("workload", dcgm_workload(m))
        if v is None:
            continue
        if m.get("__name__") == "DCGM_FI_DEV_GPU_UTIL":
            g["util"] = v
        else:
            g.setdefault("util_gr", v * 100.0)
    # later entries win: DCGM_FI_DEV_GPU_UTIL figures come after the profiling metric's
    idle_minutes = {_dcgm_key(s.get("metric", {})): _value(s) or 0.0 for s in idle_min}
    max_over = {_dcgm_key(s.get("metric", {})): _value(s) for s in max_util}
    now = datetime.fromtimestamp(wall, tz=UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    month_h = days * 24.0
    elapsed_h = (wall - datetime(now.year, now.month, 1, tzinfo=UTC).timestamp()) / 3600.0
    nodes: dict[str, FleetNode] = {}
    for key in sorted(per_gpu, key=lambda k: (k[0], _gpu_sort(k[1]), k[2])):
        g = per_gpu[key]
        node_name, index, uuid = key
        util = g.get("util", g.get("util_gr"))
        rate, currency, source = dcgm_rate(cfg, node_name, uuid, g["model"])
        idle = is_idle(util, util_pct)
        mx = max_over.get(key)
        episode = idle and is_idle(mx, util_pct)
        waste = (idle_minutes.get(key, 0.0) / 60.0 * rate) if rate is not None else 0.0
        fg = FleetGpu(node=node_name, gpu=index, uuid=uuid, model=g["model"], source="dcgm",
                      state="idle" if idle else ("busy" if util is not None else "unknown"), util_pct=util,
                      cost_per_hour=rate, currency=currency, rate_source=source, idle=idle,
                      idle_for_s=None, episode_open=episode, waste=waste, workload=g.get("workload"))
        n = nodes.setdefault(node_name, FleetNode(name=node_name, source="dcgm", estimated=True))
        n.gpus.append(fg)
        if rate is None:
            n.unpriced += 1
            continue
        n.cost_per_hour[currency] = n.cost_per_hour.get(currency, 0.0) + rate
        n.waste_today[currency] = n.waste_today.get(currency, 0.0) + waste
        if idle:
            n.waste_per_hour[currency] = n.waste_per_hour.get(currency, 0.0) + rate
        # No history for these nodes: assume the GPU is billed all month at today's rate.
        n.mtd[currency] = n.mtd.get(currency, 0.0) + rate * elapsed_h
        n.projection[currency] = n.projection.get(currency, 0.0) + rate * month_h
    return list(nodes.values())


def dcgm_workload(m: dict[str, Any]) -> str | None:
    """The workload dcgm-exporter names on a GPU series (its Kubernetes pod-resources or HPC job mapping), written
    the way every gpuspend surface writes workloads (gpuspend.costing.workloads.workload_label)."""
    from gpuspend.costing.workloads import workload_label

    pod, ns, job = m.get("pod") or m.get("exported_pod"), m.get("namespace") or m.get("exported_namespace"), \
        m.get("hpc_job")
    user = m.get("user") or m.get("hpc_user") or m.get("UserName")
    if pod:
        label = workload_label("k8s-pod", str(m.get("pod_uid") or pod), str(pod), str(ns) if ns else None)
    elif job:
        label = workload_label("slurm-job", str(job), None)
    elif m.get("container"):
        label = workload_label("docker", str(m["container"]), str(m["container"]))
    else:
        return None
    return clean(f"{label} ({user})" if user else label, 160)


def workload_waste(view: FleetView) -> list[tuple[str, str, str, float, float]]:
    """[(workload, node, currency, cost per hour, waste today)] over the fleet's GPUs that name a workload,
    biggest waste first (dcgm nodes: from the exporter's labels)."""
    acc: dict[tuple[str, str, str], list[float]] = {}
    for n in view.nodes:
        for g in n.gpus:
            if not g.workload or g.cost_per_hour is None:
                continue
            a = acc.setdefault((g.workload, n.name, g.currency), [0.0, 0.0])
            a[0] += g.cost_per_hour
            a[1] += g.waste
    return sorted(((w, node, c, v[0], v[1]) for (w, node, c), v in acc.items()), key=lambda r: (-r[4], r[0]))


def _normal_model(name: str) -> str:
    try:
        from gpuspend.gpu_models import normalise_model

        return normalise_model(name) or name
    except ImportError:
        return name


def default_config() -> Config:
    """Built-in defaults (no file): for callers that have no config, such as the bench."""
    from gpuspend.config import default_config as defaults

    return defaults()


def dcgm_rate(cfg: Config, node: str, uuid: str, model_name: str) -> tuple[float | None, str, str]:
    """(per GPU-hour, currency, source) for a GPU known only from dcgm-exporter, through the same resolver as
    local GPUs: configured rates (per uuid, per host, per model), on-prem, then the catalog for `provider:`.
    Index keys of rates.per_gpu mean this machine's GPUs, so they are not applied to remote ones."""
    from gpuspend.pricing import resolve_rate

    gpu = {"uuid": uuid, "idx": None, "host": node, "model": _normal_model(model_name), "source": "dcgm",
           "power": None, "id": None}
    rate = resolve_rate(cfg, None, gpu)
    return rate.per_gpu_hour, rate.currency, rate.source


# -- stale cache -------------------------------------------------------------------------------------------------

def cache_path(url: str) -> Path:
    import platformdirs

    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("gpuspend")) / f"fleet-{digest}.json"


def save_cache(view: FleetView) -> None:
    path = cache_path(view.url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(view.to_json()), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass        # a cache we cannot write only costs us the stale fallback


def load_cache(url: str) -> FleetView | None:
    try:
        return FleetView.from_json(json.loads(cache_path(url).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fleet_view(url: str, cfg: Config | None = None, *, timeout_s: float | None = None,
               client: httpx.Client | None = None) -> FleetView:
    """Fresh view (cached for later), or on FleetError the last good one marked stale with the reason.
    Raises FleetError only when there is nothing cached to fall back to."""
    url = check_url(url)
    try:
        view = fetch_fleet(url, cfg, timeout_s=timeout_s, client=client)
    except FleetError as exc:
        cached = load_cache(url)
        if cached is None:
            raise
        cached.stale, cached.error = True, exc.message
        return cached
    save_cache(view)
    return view


# -- rendering ---------------------------------------------------------------------------------------------------

def _money_map(values: dict[str, float]) -> str:
    """Per-currency amounts side by side (never summed across currencies)."""
    return " + ".join(money(v, c) for c, v in sorted(values.items())) or "-"


NODE_HEADER = ("Node", "Source", "GPUs", "Idle", "Cost/h", "Idle burn/h", "Waste today", "MTD", "Projection")


def node_rows(view: FleetView) -> list[tuple[str, ...]]:
    rows = []
    for n in view.nodes:
        mark = "" if n.up else " (down)"
        est = " (est.)" if n.estimated else ""
        cost = "no rate" if n.unpriced and not n.cost_per_hour else _money_map(n.cost_per_hour)
        rows.append((n.name + mark, n.source, str(len(n.gpus)), str(n.idle_gpus), cost,
                     _money_map(n.waste_per_hour), _money_map(n.waste_today), _money_map(n.mtd) + est,
                     _money_map(n.projection) + est))
    return rows


def idle_rows(view: FleetView) -> list[tuple[str, ...]]:
    return [(g.node, g.gpu, g.model or "?", g.state + (f" {g.workload}" if g.workload else ""), duration(g.idle_for_s),
             money(g.cost_per_hour, g.currency or "USD"), money(g.waste, g.currency or "USD"))
            for g in view.idle_gpus()]


IDLE_HEADER = ("Node", "GPU", "Model", "State", "Idle for", "Cost/h", "Waste")


def banner(view: FleetView) -> str | None:
    if not view.stale:
        return None
    return f"STALE: Prometheus failed ({view.error}); showing the last good view from {_iso(view.fetched_s)}"


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], markdown: bool, left: int) -> list[str]:
    """Plain or markdown table; the first `left` columns are text (left-aligned), the rest numbers."""
    if markdown:
        esc = [tuple(c.replace("|", "\\|") for c in r) for r in [header, *rows]]
        return ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" for _ in header) + "|",
                *("| " + " | ".join(r) + " |" for r in esc[1:])]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i < left else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def render(view: FleetView, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(view.to_json(), indent=2, sort_keys=True)
    md = fmt == "markdown"
    out: list[str] = []
    title = (f"Fleet: {count(len(view.nodes), 'node')}, {count(view.gpu_count, 'GPU')} "
             f"({view.idle_count} idle) from {view.url}")
    out.append(("# " if md else "") + title)
    out.append(f"As of {_iso(view.fetched_s)}")
    if (b := banner(view)) is not None:
        out.append(f"**{b}**" if md else b)
    out.append("")
    out.extend(_table(NODE_HEADER, node_rows(view), md, 2))
    for cur, t in sorted(view.totals().items()):
        out.append("")
        out.append(("## " if md else "") + f"Fleet total ({cur})")
        out.append(f"Cost per hour: {money(t['cost_per_hour'], cur)}   Idle burn: {money(t['waste_per_hour'], cur)}/h"
                   f"   Waste today: {money(t['waste_today'], cur)}")
        out.append(f"Month to date: {money(t['mtd'], cur)}   Projected month: {money(t['projection'], cur)}")
    if view.unpriced:
        out.append("")
        out.append(f"{count(view.unpriced, 'GPU')} with no rate: in none of the totals above "
                   "(set `rates:` or `provider:` on those nodes)")
    if any(n.estimated for n in view.nodes):
        out.append("(est.) dcgm-exporter nodes: month figures assume today's rate for the whole month")
    idle = idle_rows(view)
    out.append("")
    out.append(("## " if md else "") + f"Idle GPUs ({len(idle)})")
    if idle:
        out.extend(_table(IDLE_HEADER, idle, md, 4))
    else:
        out.append("none")
    wl = workload_waste(view)
    if wl:
        out.append("")
        out.append(("## " if md else "") + "Workloads (from dcgm-exporter labels)")
        out.extend(_table(("Workload", "Node", "Cost/h", "Waste today"),
                          [(w, node, money(cph, c), money(waste, c)) for w, node, c, cph, waste in wl], md, 2))
    if view.missing:
        out.append("")
        out.append("Not reporting now (seen in the last hour): " + ", ".join(view.missing))
    return "\n".join(out)


def run_fleet_report(opts: FleetReportOptions) -> int:
    """`gpuspend --report --fleet URL`: 0 ok, 1 with --fail-on idle and an open idle episode, 2 usage,
    3 Prometheus unreachable or erroring (the last good view is still printed, marked stale)."""
    url = check_url(opts.fleet_url)
    kinds = parse_fail_on(opts.fail_on)     # a usage error before Prometheus is asked
    fmt = opts.fmt
    cfg = opts.load_config()
    view = fleet_view(url, cfg)          # raises FleetError (exit 3) when nothing is cached
    sys.stdout.write(render(view, fmt) + "\n")
    if view.stale:
        raise FleetError(view.error or "Prometheus failed", where=view.url,
                         hint=f"printed the last good view from {_iso(view.fetched_s)}, marked stale")
    if IDLE in kinds and any(g.episode_open for g in view.idle_gpus()):
        return EXIT_ALERTS
    return EXIT_OK

