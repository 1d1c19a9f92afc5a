"""Real stand-ins for a node's workload sources: a procfs tree on disk, a Docker API on a unix socket, an
`scontrol` on PATH. Each is what the real thing serves, reduced to the fields gpuspend reads."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HEX_A = "4f3c9d2e1b0a" + "9" * 52          # 64 hex: a Docker container id
HEX_K = "a1b2c3d4e5f6" + "0" * 52          # 64 hex: a containerd container in a pod
HEX_C = "c0ffee00c0ffee00" + "1" * 48      # 64 hex: a cri-o container in a pod
POD_UID = "0c2e8f3a-1b4d-4c5e-9f6a-7b8c9d0e1f2a"
POD_UID2 = "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6"
KERNEL = "5f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"

# Public line forms (reference: workloads-and-prices.md), one per workload kind.
CGROUPS: dict[str, str] = {
    "slurm-v2": "0::/system.slice/slurmstepd.scope/job_1392969/step_0/user/task_0\n",
    "slurm-v1": ("12:memory:/slurm/uid_2101171/job_280678/step_interactive/task_0\n"
                 "10:devices:/slurm/uid_2101171/job_280678/step_interactive/task_0\n"
                 "1:name=systemd:/user.slice/user-2101171.slice/session-4.scope\n"),
    "k8s-containerd": ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                       f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{HEX_K}.scope\n"),
    "k8s-crio": ("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
                 f"{POD_UID2.replace('-', '_')}.slice/crio-{HEX_C}.scope\n"),
    "k8s-cgroupfs": f"11:devices:/kubepods/burstable/pod{POD_UID}/{HEX_K}\n",
    "docker-systemd": f"0::/system.slice/docker-{HEX_A}.scope\n",
    "docker-cgroupfs": f"4:devices:/docker/{HEX_A}\n3:cpu,cpuacct:/docker/{HEX_A}\n",
    "plain": "0::/user.slice/user-1000.slice/session-3.scope\n",
}


def add_proc(root: Path, pid: int, *, cgroup: str, cmdline: list[str], uid: int = 1000,
             environ: dict[str, str] | None = None, start_ticks: int = 5000, name: str = "python") -> None:
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup").write_text(cgroup)
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmdline) + b"\0")
    (d / "status").write_text(f"Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    (d / "stat").write_text(f"{pid} ({name}) S 1 {pid} {pid} 0 -1 4194560 " + "0 " * 13 + f"{start_ticks} 0 0\n")
    if environ is not None:
        (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in environ.items()) + b"\0")


def container_doc(cid: str, name: str, *, device_ids: list[str] | None = None, count: int | None = None,
                  env: list[str] | None = None) -> dict[str, Any]:
    reqs = []
    if device_ids is not None or count is not None:
        reqs.append({"Driver": "", "Count": count or 0, "DeviceIDs": device_ids, "Capabilities": [["gpu"]]})
    return {"Id": cid, "Name": "/" + name, "HostConfig": {"DeviceRequests": reqs or None},
            "Config": {"Env": env or ["PATH=/usr/bin"]}}


@contextmanager
def docker_api(sock: Path, containers: list[dict[str, Any]]) -> Iterator[list[str]]:
    """The Docker Engine API over a unix socket: GET /containers/json and /containers/<id>/json."""
    seen: list[str] = []
    by_id = {c["Id"]: c for c in containers}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            path = self.path.split("?", 1)[0]
            if path.endswith("/containers/json"):
                body: Any = [{"Id": c["Id"], "Names": [c["Name"]]} for c in containers]
            elif path.startswith("/containers/") and path.endswith("/json"):
                body = by_id.get(path.split("/")[2])
            else:
                body = None
            data = json.dumps(body if body is not None else {"message": "No such container"}).encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

        def address_string(self) -> str:
            return "unix"

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    server = Server(str(sock), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


SCONTROL = """#!/bin/sh
# fake scontrol: `show job -d [ID]` from files next to this script
dir=$(dirname "$0")
if [ "$1 $2 $3" != "show job -d" ]; then echo "usage" >&2; exit 2; fi
if [ -n "$4" ]; then
  if [ -f "$dir/job_$4.txt" ]; then cat "$dir/job_$4.txt"; exit 0; fi
  echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1
fi
cat "$dir"/job_*.txt 2>/dev/null
exit 0
"""


def slurm_job(job_id: int, name: str, user: str, uid: int, account: str, node: str, idx: str,
              state: str = "RUNNING") -> str:
    return (f"JobId={job_id} JobName={name}\n"
            f"   UserId={user}({uid}) GroupId={user}({uid}) MCS_label=N/A\n"
            f"   Priority=4294901758 Nice=0 Account={account} QOS=normal\n"
            f"   JobState={state} Reason=None Dependency=(null)\n"
            f"   Partition=gpu AllocNode:Sid=login1:12345\n"
            f"   NodeList={node}\n"
            f"   NumNodes=1 NumCPUs=16 NumTasks=1 CPUs/Task=16 ReqB:S:C:T=0:0:*:*\n"
            f"     Nodes={node} CPU_IDs=0-15 Mem=64000 GRES=gpu:h100:2(IDX:{idx})\n"
            f"   MinCPUsNode=16 MinMemoryNode=64000M MinTmpDiskNode=0\n"
            f"   Command=/home/{user}/train.sh\n\n")


def install_scontrol(bin_dir: Path, jobs: dict[int, str]) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "scontrol"
    exe.write_text(SCONTROL)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for jid, text in jobs.items():
        (bin_dir / f"job_{jid}.txt").write_text(text)


def prepend_path(monkeypatch: Any, bin_dir: Path) -> None:
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
