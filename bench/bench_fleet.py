"""Fleet report time for N simulated nodes x 8 GPUs, against a raw single PromQL query in the same run.

Each node's exposition is rendered once by gpuspend's exporter (gpuspend.metrics, fed a constructed snapshot)
and served by one small HTTP server, per page through a scrape parameter (`__param_node`, own `instance`
label; 10 nodes a page beyond 100 nodes: every node keeps its own `host` label, so the series Prometheus
answers with are the same), so 1,000 nodes need neither 1,000 ports nor 1,000 renders per scrape; a real Prometheus (the `prometheus` binary) scrapes them every second; then we time

  baseline  one instant query returning every GPU's cost series (what any dashboard pays at minimum)
  fleet     gpuspend.fleet.fetch_fleet + render (all of gpuspend's queries, parsing, building the view)

and print medians, the ratio, and the size of gpuspend's answers. Target (issue 16): fleet report under 2 s at
1,000 x 8. Bounded for a small machine: Prometheus gets GOMEMLIMIT (--prom-mem-mb) and a longer scrape interval
at 1,000 nodes (one Python process renders every exporter), and the whole run a deadline.

    python bench/bench_fleet.py [--nodes 1000] [--gpus 8] [--runs 5] [--scrape-s 10] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpuspend import fleet, metrics  # noqa: E402
from gpuspend.snapshot import GpuNow, MonthView, ProcessNow, Rate, Snapshot  # noqa: E402

TARGET_S = 2.0
NOW_MS = 1794744000_000


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
    month = MonthView("2026-11", "USD", 50_000.0, 30_000.0, 20_000.0, NOW_MS, 110_000.0, 100_000.0, 120_000.0,
                      "80% interval from 14 daily totals", None, None, None)
    return Snapshot(now_ms=NOW_MS, host=host, currency="USD", gpus=tuple(gs), processes=tuple(procs),
                    cost_per_hour=6.88 * gpus, cost_per_hour_by_state=(("busy", 6.88 * gpus),),
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


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scrape-s", type=float, default=None, help="default: 1 s up to 100 nodes, else 10 s")
    ap.add_argument("--nodes-per-target", type=int, default=None,
                    help="nodes per scrape target (default 1 up to 100 nodes, else 10: one Python server)")
    ap.add_argument("--prom-mem-mb", type=int, default=4096, help="Prometheus GOMEMLIMIT")
    ap.add_argument("--profile", action="store_true", help="print where one fleet report spends its time")
    args = ap.parse_args()
    scrape = args.scrape_s or (1.0 if args.nodes <= 100 else 10.0)
    binary = shutil.which("prometheus")
    if binary is None:
        print("bench_fleet: the prometheus binary is not installed (apt-get install prometheus)", file=sys.stderr)
        return 2

    exporter = None
    server = None
    tmp = Path(tempfile.mkdtemp(prefix="gpuspend-bench-fleet-"))
    prom = None
    try:
        exporter = metrics.serve("127.0.0.1", 0)
        per = args.nodes_per_target or (1 if args.nodes <= 100 else 10)
        pages: dict[str, bytes] = {}
        for n in range(args.nodes):
            exporter.update(node_snapshot(n, args.gpus))
            text = generate_latest(exporter.registry)
            if n % per:             # the comments once per page; series of a family may repeat (classic format)
                text = b"".join(line for line in text.splitlines(keepends=True) if not line.startswith(b"#"))
            pages[str(n // per)] = pages.get(str(n // per), b"") + text
        server = serve_pages(pages)
        page_port = server.server_address[1]
        port = free_port()
        cfg = tmp / "prometheus.yml"
        cfg.write_text(f"global:\n  scrape_interval: {scrape:g}s\n  scrape_timeout: {scrape:g}s\nscrape_configs:\n"
                       "  - job_name: gpuspend\n    static_configs:\n"
                       + "".join(f"      - targets: ['127.0.0.1:{page_port}']\n        labels: {{__param_node: '{n}', "
                                 f"instance: 'page-{n:03d}'}}\n" for n in range(len(pages))))
        prom = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "GOMEMLIMIT": f"{args.prom_mem_mb}MiB"})
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(timeout=30)
        want = args.nodes * args.gpus
        wait_s = 90 + 3 * scrape
        deadline = time.monotonic() + wait_s
        have = 0
        while time.monotonic() < deadline:
            try:
                r = client.get(f"{url}/api/v1/query", params={"query": "count(gpuspend_gpu_cost_per_hour)"})
                res = r.json()["data"]["result"]
                have = int(float(res[0]["value"][1])) if res else 0
            except (httpx.HTTPError, KeyError, ValueError):
                have = 0
            if have >= want:
                break
            time.sleep(0.5)
        else:
            print(f"bench_fleet: only {have}/{want} GPU series scraped after {wait_s:g} s", file=sys.stderr)
            errors: dict[str, int] = {}
            for t in client.get(f"{url}/api/v1/targets").json()["data"]["activeTargets"]:
                key = f"{t['health']}: {t.get('lastError', '')[:80]}"
                errors[key] = errors.get(key, 0) + 1
            print(f"  targets: {errors}", file=sys.stderr)
            return 1
        time.sleep(scrape + 1)          # every target scraped at least once more

        def baseline() -> None:
            r = client.get(f"{url}/api/v1/query", params={"query": "gpuspend_gpu_cost_per_hour"})
            assert len(r.json()["data"]["result"]) == want

        def report() -> None:
            view = fleet.fetch_fleet(url, client=client)
            assert view.gpu_count == want, view.gpu_count
            fleet.render(view, "text")

        sizes = {}
        for name, q in fleet.fleet_queries(fleet.default_config()).items():     # one at a time, each timed
            t = time.perf_counter()
            r = client.get(f"{url}/api/v1/query", params={"query": q})
            sizes[name] = (len(r.json().get("data", {}).get("result", [])), len(r.content), time.perf_counter() - t)
        print(f"gpuspend's queries ({len(sizes)}; here one at a time, in the report in parallel; scrape every "
              f"{scrape:g} s): " + ", ".join(f"{k} {n} series/{b / 1e6:.2f} MB/{t * 1000:.0f} ms"
                                             for k, (n, b, t) in sizes.items()))
        timed(report, 1)        # warm-up (imports, connection)
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(report)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(18)
        base = timed(baseline, args.runs)
        full = timed(report, args.runs)
        mb, mf = statistics.median(base), statistics.median(full)
        print(f"fleet bench: {args.nodes} nodes x {args.gpus} GPUs = {want} GPUs, {args.runs} runs each "
              f"({len(pages)} scrape targets)")
        print(f"  baseline (1 raw instant query, {want} series): median {mb * 1000:8.1f} ms  "
              f"(min {min(base) * 1000:.1f}, max {max(base) * 1000:.1f})")
        print(f"  fleet report (fetch_fleet + render):        median {mf * 1000:8.1f} ms  "
              f"(min {min(full) * 1000:.1f}, max {max(full) * 1000:.1f})")
        print(f"  ratio fleet/baseline: {mf / mb:.1f}x   target < {TARGET_S:g} s: {'PASS' if mf < TARGET_S else 'FAIL'}")
        return 0 if mf < TARGET_S else 1
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prom.kill()
        if exporter is not None:
            exporter.close()
        if server is not None:
            server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
