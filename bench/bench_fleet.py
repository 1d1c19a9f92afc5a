"""Fleet report time for N simulated nodes x 8 GPUs against a real Prometheus: this version, an earlier one (from
git) and a raw single PromQL query, all in the same run against the same Prometheus.

Each node's exposition is rendered once by gpuspend's exporter (gpuspend.metrics, fed a constructed snapshot)
and served by one small HTTP server, per page through a scrape parameter (`__param_node`, own `instance`
label; 10 nodes a page beyond 100 nodes: every node keeps its own `host` label, so the series Prometheus
answers with are the same), so 1,000 nodes need neither 1,000 ports nor 1,000 renders per scrape; a real
Prometheus (the `prometheus` binary) scrapes them. Then, for each fleet size, interleaved run by run:

  baseline   one instant query returning every GPU's cost series (what any dashboard pays at minimum)
  before     gpuspend.fleet as of --before (git), fetch_fleet + render, in this process
  after      this checkout's gpuspend.fleet, fetch_fleet + render, in this process
  command    the whole `gpuspend --report --fleet URL` in a fresh interpreter (start-up, imports, queries,
             rendering, the stale-view cache write), for both versions

with medians, Prometheus's CPU per report (from /proc, so Prometheus's own share of the work shows), and the size
and server-side time of each query. Target (issue 16): the report under 2 s at 1,000 x 8. Bounded for a small
machine: Prometheus gets GOMEMLIMIT (--prom-mem-mb) and a longer scrape interval beyond 100 nodes (one Python
process renders every exporter).

    python bench/bench_fleet.py [--nodes 100,1000] [--gpus 8] [--runs 5] [--before REV] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpuspend import fleet, metrics  # noqa: E402
from gpuspend.snapshot import GpuNow, MonthView, ProcessNow, Rate, Snapshot  # noqa: E402

TARGET_S = 2.0
NOW_MS = 1794744000_000
# The last commit before the fleet view read one status series per GPU (issue 16's first fleet figures).
BEFORE_REV = "0b725c9"


def node_snapshot(n: int, gpus: int) -> Snapshot:
    host = f"node-{n:03d}"
    rate = Rate(6.88, "USD", "catalog", "catalog: aws H100 $6.88/h (as of 2026-11-09)", "2026-11-09")
    gs, procs = [], []
    for i in range(gpus):
        idle = (n + i) % 5 == 0
        g = GpuNow(uuid=f"GPU-{n:03d}-{i}", index=i, host=host, name="NVIDIA H100 80GB HBM3", model="H100",
                   source="demo", state="held-idle" if idle else "busy", util=0.0 if idle else 93.0,
                   mem_used=60 << 30, mem_total=80 << 30, power=80.0 if idle else 640.0, temperature=55.0,
                   rate=rate, cost_per_hour=6.88, idle_for_s=3600.0 if idle else 0.0, episode_open=idle,
                   episode_waste=6.88 if idle else 0.0, last_sample_ms=NOW_MS)
        gs.append(g)
        procs.append(ProcessNow(pid=1000 + i, user=f"user{(n + i) % 7}", command="python train.py", gpu_uuid=g.uuid,
                                gpu_index=i, used_memory=60 << 30, sm_util=None, cost_today=40.0))
    idle_cost = 6.88 * sum(1 for g in gs if g.state == "held-idle")
    month = MonthView("2026-11", "USD", 50_000.0, 30_000.0, 20_000.0, NOW_MS, 110_000.0, 100_000.0, 120_000.0,
                      "80% interval from 14 daily totals", None, None, None)
    return Snapshot(now_ms=NOW_MS, host=host, currency="USD", gpus=tuple(gs), processes=tuple(procs),
                    cost_per_hour=6.88 * gpus,
                    cost_per_hour_by_state=(("busy", 6.88 * gpus - idle_cost), ("held-idle", idle_cost)),
                    today_cost=800.0, idle_waste_today=25.0, months=(month,), alerts=(), catalog_as_of="2026-11-09",
                    last_sample_ms=NOW_MS)


def serve_pages(pages: dict[str, bytes]) -> ThreadingHTTPServer:
    """/metrics?node=N -> that node's pre-rendered exposition text, from a thread."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = pages.get(parse_qs(urlsplit(self.path).query).get("node", [""])[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 4096         # 1,000 targets: the default backlog (5) drops scrapes
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass                          # a scrape cut off by Prometheus's timeout: it retries next interval

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_before(rev: str, tmp: Path) -> Path | None:
    """gpuspend/fleet.py as of `rev`, written to a file (None when git or the revision is not there)."""
    try:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:gpuspend/fleet.py"], capture_output=True,
                              check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    path = tmp / "fleet_before.py"
    path.write_bytes(text)
    return path


def import_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module              # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def prom_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Fleet:
    """N nodes x G GPUs behind one page server, scraped by a real Prometheus."""

    def __init__(self, binary: str, nodes: int, gpus: int, tmp: Path, mem_mb: int) -> None:
        self.nodes, self.gpus, self.want = nodes, gpus, nodes * gpus
        self.scrape = 1.0 if nodes <= 100 else 10.0
        self.exporter = metrics.serve("127.0.0.1", 0)
        per = 1 if nodes <= 100 else 10
        pages: dict[str, bytes] = {}
        for n in range(nodes):
            self.exporter.update(node_snapshot(n, gpus))
            text = generate_latest(self.exporter.registry)
            if n % per:             # the comments once per page; series of a family may repeat (classic format)
                text = b"".join(line for line in text.splitlines(keepends=True) if not line.startswith(b"#"))
            pages[str(n // per)] = pages.get(str(n // per), b"") + text
        self.targets = len(pages)
        self.server = serve_pages(pages)
        page_port = self.server.server_address[1]
        port = free_port()
        cfg = tmp / f"prometheus-{nodes}.yml"
        cfg.write_text(f"global:\n  scrape_interval: {self.scrape:g}s\n  scrape_timeout: {self.scrape:g}s\n"
                       "scrape_configs:\n  - job_name: gpuspend\n    static_configs:\n"
                       + "".join(f"      - targets: ['127.0.0.1:{page_port}']\n        labels: {{__param_node: '{n}', "
                                 f"instance: 'page-{n:03d}'}}\n" for n in range(len(pages))))
        self.proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / f'data-{nodes}'}",
                                      f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "GOMEMLIMIT": f"{mem_mb}MiB"})
        self.url = f"http://127.0.0.1:{port}"

    def wait_scraped(self, client: httpx.Client) -> bool:
        wait_s = 90 + 3 * self.scrape
        deadline = time.monotonic() + wait_s
        have = 0
        while time.monotonic() < deadline:
            try:
                r = client.get(f"{self.url}/api/v1/query", params={"query": "count(gpuspend_gpu_status)"})
                res = r.json()["data"]["result"]
                have = int(float(res[0]["value"][1])) if res else 0
            except (httpx.HTTPError, KeyError, ValueError):
                have = 0
            if have >= self.want:
                time.sleep(self.scrape + 1)          # every target scraped at least once more
                return True
            time.sleep(0.5)
        print(f"bench_fleet: only {have}/{self.want} GPUs scraped after {wait_s:g} s", file=sys.stderr)
        errors: dict[str, int] = {}
        for t in client.get(f"{self.url}/api/v1/targets").json()["data"]["activeTargets"]:
            key = f"{t['health']}: {t.get('lastError', '')[:80]}"
            errors[key] = errors.get(key, 0) + 1
        print(f"  targets: {errors}", file=sys.stderr)
        return False

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.exporter.close()
        self.server.shutdown()


def query_table(client: httpx.Client, url: str, module: ModuleType) -> str:
    """Each of a version's queries alone: series, answer size, Prometheus's own evaluation time."""
    parts = []
    total_ms = 0.0
    for name, q in module.fleet_queries(module.default_config()).items():
        r = client.get(f"{url}/api/v1/query", params={"query": q, "stats": "all"}).json().get("data", {})
        ms = 1000 * float(r.get("stats", {}).get("timings", {}).get("execTotalTime", 0.0))
        total_ms += ms
        n = len(r.get("result", []))
        if n or ms >= 1:
            parts.append(f"{name} {n}/{ms:.0f} ms")
    return f"{len(module.fleet_queries(module.default_config()))} queries, server {total_ms:.0f} ms in all: " + \
        ", ".join(parts)


def command(url: str, env: dict[str, str], config: Path, before: Path | None) -> Callable[[], None]:
    """The whole `gpuspend --report --fleet URL` in a fresh interpreter (with `before`: that fleet module)."""
    args = ["--config", str(config), "--report", "--fleet", url]
    if before is None:
        argv = [sys.executable, "-m", "gpuspend", *args]
    else:
        code = ("import importlib.util, sys\n"
                f"spec = importlib.util.spec_from_file_location('gpuspend.fleet', {str(before)!r})\n"
                "mod = importlib.util.module_from_spec(spec); sys.modules['gpuspend.fleet'] = mod\n"
                "spec.loader.exec_module(mod)\n"
                "from gpuspend.cli import main\n"
                f"main({args!r})\n")
        argv = [sys.executable, "-c", code]

    def run() -> None:
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
    return run


def measure(fleet_env: Fleet, client: httpx.Client, versions: dict[str, ModuleType], commands: dict[str, Callable],
            runs: int, profile: bool, timeout_s: float) -> dict[str, tuple[list[float], list[float]]]:
    """Interleaved runs: name -> (wall seconds, Prometheus CPU seconds) per run."""
    url, want = fleet_env.url, fleet_env.want

    def baseline() -> None:
        r = client.get(f"{url}/api/v1/query", params={"query": "gpuspend_gpu_cost_per_hour"})
        assert len(r.json()["data"]["result"]) == want

    def report(module: ModuleType) -> Callable[[], None]:
        def run() -> None:
            view = module.fetch_fleet(url, client=client, timeout_s=timeout_s)
            assert view.gpu_count == want, view.gpu_count
            module.render(view, "text")
        return run

    jobs: dict[str, Callable[[], None]] = {"baseline": baseline}
    jobs.update({name: report(m) for name, m in versions.items()})
    jobs.update(commands)
    for job in jobs.values():               # warm-up: imports, connections, Prometheus's caches
        job()
    if profile:
        prof = cProfile.Profile()
        prof.runcall(jobs["after"])
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in jobs}
    for _ in range(runs):
        for name, job in jobs.items():
            cpu = prom_cpu_s(fleet_env.proc.pid)
            t = time.perf_counter()
            job()
            out[name][0].append(time.perf_counter() - t)
            after = prom_cpu_s(fleet_env.proc.pid)
            if cpu is not None and after is not None:
                out[name][1].append(after - cpu)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="100,1000", help="fleet sizes, comma-separated (default 100,1000)")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--before", default=BEFORE_REV, help=f"git revision to compare with (default {BEFORE_REV}); "
                    "'none' to skip")
    ap.add_argument("--prom-mem-mb", type=int, default=4096, help="Prometheus GOMEMLIMIT")
    ap.add_argument("--timeout-s", type=float, default=60.0, help="fleet.timeout for every version (default 60)")
    ap.add_argument("--profile", action="store_true", help="print where one fleet report spends its time")
    args = ap.parse_args()
    sizes = [int(n) for n in args.nodes.split(",") if n.strip()]
    binary = shutil.which("prometheus")
    if binary is None:
        print("bench_fleet: the prometheus binary is not installed (apt-get install prometheus)", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="gpuspend-bench-fleet-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "XDG_CONFIG_HOME": str(tmp / "config")}
    os.environ["XDG_CACHE_HOME"] = env["XDG_CACHE_HOME"]     # the in-process runs' cache too
    # a loaded machine can take longer than the default 5 s: time it rather than fail (the same for each version)
    config = tmp / "bench.yaml"
    config.write_text(f"fleet:\n  timeout: {args.timeout_s:g}s\n")
    before_path = None if args.before == "none" else load_before(args.before, tmp)
    if args.before != "none" and before_path is None:
        print(f"bench_fleet: no gpuspend/fleet.py at {args.before!r} (not a git checkout?): after only",
              file=sys.stderr)
    versions: dict[str, ModuleType] = {}
    if before_path is not None:
        versions["before"] = import_file(before_path, "gpuspend_fleet_before")
    versions["after"] = fleet
    rows: list[str] = []
    ok = True
    try:
        for nodes in sizes:
            fleet_env = Fleet(binary, nodes, args.gpus, tmp, args.prom_mem_mb)
            client = httpx.Client(timeout=args.timeout_s)
            try:
                if not fleet_env.wait_scraped(client):
                    return 1
                commands = {f"command {name}": command(fleet_env.url, env, config,
                                                       before_path if name == "before" else None)
                            for name in versions}
                print(f"\n{nodes} nodes x {args.gpus} GPUs = {fleet_env.want} GPUs ({fleet_env.targets} scrape "
                      f"targets, every {fleet_env.scrape:g} s), {args.runs} runs each, interleaved")
                for name, module in versions.items():
                    print(f"  {name}: {query_table(client, fleet_env.url, module)}")
                res = measure(fleet_env, client, versions, commands, args.runs, args.profile, args.timeout_s)
            finally:
                client.close()
                fleet_env.close()
            base = statistics.median(res["baseline"][0])
            for name, (walls, cpus) in res.items():
                med = statistics.median(walls)
                cpu = f"  Prometheus CPU {statistics.median(cpus) * 1000:6.0f} ms" if cpus else ""
                line = (f"  {name:16s} median {med * 1000:8.1f} ms (min {min(walls) * 1000:7.1f}, max "
                        f"{max(walls) * 1000:7.1f}){cpu}" + ("" if name == "baseline" else f"  {med / base:5.1f}x "
                                                              "baseline"))
                print(line)
                rows.append(f"{nodes:5d} nodes  {line.strip()}")
            if nodes >= 1000:
                got = statistics.median(res["command after"][0])
                ok = ok and got < TARGET_S
                print(f"  target: whole command < {TARGET_S:g} s at {nodes} nodes: {'PASS' if got < TARGET_S else 'FAIL'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(sizes) > 1:
        print("\nscaling (same run):")
        print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
