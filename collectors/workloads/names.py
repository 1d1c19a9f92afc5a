"""Optional names for workloads, each from a source a node may or may not have, each time-bounded.

  Docker       `GET /containers/<id>/json` over the Docker unix socket (httpx's UDS transport): name, GPU
               device requests, NVIDIA_VISIBLE_DEVICES
  Kubernetes   the kubelet's log folders `/var/log/pods/<namespace>_<pod>_<uid>/` (no API server needed)
  Slurm        `scontrol show job -d`: job name, user, account, partition, per-node GRES `IDX`
  Jupyter      the server's runtime files (`jpserver-*.json`, `nbserver-*.json`) next to the kernel's connection
               file, then `GET <url>api/sessions` on 127.0.0.1 only: notebook path and kernel state

A source that is missing, slow or refuses us is skipped with one note (kept for `doctor`) and not asked again
for a while, so a node without Docker or Slurm pays nothing after the first look.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gpuspend.fmt import clean

RETRY_S = 300.0                 # a source that failed is not asked again for 5 minutes
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Source:
    """Failure bookkeeping shared by every name source: one note per failure, a back-off before retrying."""

    label = "source"

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.note: str | None = None
        self._retry_at = 0.0

    def available(self) -> bool:
        return time.monotonic() >= self._retry_at

    def failed(self, why: str) -> None:
        self.note = f"{self.label}: {clean(why, 200)}; skipped"
        self._retry_at = time.monotonic() + RETRY_S

    def ok(self) -> None:
        self.note = None


# -- Docker ----------------------------------------------------------------------------------------------------
class Docker(Source):
    label = "docker names"

    def __init__(self, socket_path: str, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.socket_path = socket_path
        self._client: Any = None

    def _get(self, path: str) -> Any:
        import httpx

        if self._client is None:
            self._client = httpx.Client(transport=httpx.HTTPTransport(uds=self.socket_path),
                                        base_url="http://docker", timeout=self.timeout_s)
        resp = self._client.get(path)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def _call(self, path: str) -> Any:
        if not self.available():
            return None
        if not os.path.exists(self.socket_path):
            self.failed(f"no Docker socket at {self.socket_path}")
            return None
        try:
            out = self._get(path)
        except Exception as exc:       # refused, permission denied, timeout, not JSON: names are optional
            self.failed(f"Docker API at {self.socket_path} did not answer ({type(exc).__name__})")
            return None
        self.ok()
        return out

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        if not re.fullmatch(r"[0-9a-f]{12,64}", container_id):
            return None
        doc = self._call(f"/containers/{container_id}/json")
        return doc if isinstance(doc, dict) else None

    def running(self) -> list[dict[str, Any]]:
        """Running containers with the GPUs each was given: [{id, name, gpus: [uuid or index text, 'all']}]."""
        listing = self._call("/containers/json")
        if not isinstance(listing, list):
            return []
        out = []
        for item in listing[:500]:
            cid = item.get("Id") if isinstance(item, dict) else None
            if not isinstance(cid, str):
                continue
            doc = self.inspect(cid)
            if doc is None:
                continue
            gpus = container_gpus(doc)
            if gpus:
                out.append({"id": cid, "name": container_name(doc), "gpus": gpus})
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def container_name(doc: dict[str, Any]) -> str | None:
    name = doc.get("Name")
    return clean(name.lstrip("/"), 200) if isinstance(name, str) and name else None


def container_gpus(doc: dict[str, Any]) -> list[str]:
    """GPUs a container was given: `HostConfig.DeviceRequests[].DeviceIDs` (`Count: -1` = all), else the
    NVIDIA runtime's `NVIDIA_VISIBLE_DEVICES` (`all`, `none`, `void`, or a list of indices/UUIDs)."""
    out: list[str] = []
    host = doc.get("HostConfig") or {}
    for req in host.get("DeviceRequests") or []:
        if not isinstance(req, dict):
            continue
        caps = [c for group in (req.get("Capabilities") or []) for c in (group or [])]
        if req.get("Driver") not in (None, "", "nvidia") and "gpu" not in caps:
            continue
        ids = req.get("DeviceIDs") or []
        if ids:
            out.extend(str(i) for i in ids)
        elif req.get("Count") == -1:
            out.append("all")
        elif isinstance(req.get("Count"), int) and req["Count"] > 0:
            out.extend(str(i) for i in range(req["Count"]))   # docker hands out the first N
    if not out:
        for env in (doc.get("Config") or {}).get("Env") or []:
            if isinstance(env, str) and env.startswith("NVIDIA_VISIBLE_DEVICES="):
                value = env.split("=", 1)[1].strip()
                if value and value not in ("none", "void"):
                    out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


# -- Kubernetes ------------------------------------------------------------------------------------------------
class KubeletPods(Source):
    label = "kubernetes pod names"

    def __init__(self, log_dir: str, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.log_dir = Path(log_dir)
        self._by_uid: dict[str, tuple[str, str]] = {}
        self._read_at = -1e9

    def lookup(self, pod_uid: str) -> tuple[str, str] | None:
        """(namespace, pod name) for a pod UID; the folder list is re-read at most every 10 s, or on a miss."""
        hit = self._by_uid.get(pod_uid)
        if hit is not None:
            return hit
        if not self.available() or time.monotonic() - self._read_at < 10.0:
            return None
        self._read_at = time.monotonic()
        try:
            names = os.listdir(self.log_dir)
        except OSError as exc:
            self.failed(f"cannot list {self.log_dir} ({exc.strerror})")
            return None
        self.ok()
        for entry in names:
            parts = entry.split("_")
            if len(parts) >= 3:
                # namespace and pod names are DNS labels (no `_`), the uid is the last part
                self._by_uid[parts[-1].lower()] = (clean(parts[0], 253), clean("_".join(parts[1:-1]), 253))
        return self._by_uid.get(pod_uid)


# -- Slurm -----------------------------------------------------------------------------------------------------
class Slurm(Source):
    label = "slurm job names"

    def __init__(self, timeout_s: float, scontrol: str = "scontrol") -> None:
        super().__init__(timeout_s)
        self.scontrol = scontrol

    def _run(self, *args: str) -> str | None:
        if not self.available():
            return None
        exe = shutil.which(self.scontrol)
        if exe is None:
            self.failed("scontrol is not on PATH")
            return None
        try:
            proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=self.timeout_s,
                                  env={**os.environ, "SLURM_TIME_FORMAT": "standard"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.failed(f"scontrol did not answer ({type(exc).__name__})")
            return None
        if proc.returncode != 0:
            # an unknown (finished) job is not a broken source: no back-off, just no name
            if "Invalid job id" in proc.stderr:
                return None
            self.failed(f"scontrol exited {proc.returncode}: {proc.stderr.strip()[:120]}")
            return None
        self.ok()
        return proc.stdout

    def job(self, job_id: str) -> dict[str, Any] | None:
        if not job_id.isdigit():
            return None
        out = self._run("show", "job", "-d", job_id)
        jobs = parse_scontrol(out) if out else []
        return jobs[0] if jobs else None

    def jobs(self, host: str | None = None) -> list[dict[str, Any]]:
        """Running jobs with their per-node GRES. With `squeue` on PATH only this node's jobs are asked for (a
        big cluster's full job list is not fetched every refresh); else every job, filtered by the caller."""
        squeue = shutil.which("squeue") if host else None
        if squeue is not None and self.available():
            try:
                proc = subprocess.run([squeue, "--noheader", "--states=RUNNING", "--format=%i",
                                       f"--nodelist={host}"], capture_output=True, text=True, timeout=self.timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                proc = None
            if proc is not None and proc.returncode == 0:
                ids = [i.strip() for i in proc.stdout.split() if i.strip().isdigit()][:64]
                return [j for i in ids if (j := self.job(i)) is not None]
        out = self._run("show", "job", "-d")
        return parse_scontrol(out) if out else []


_KV = re.compile(r"(\w[\w:/]*)=(\S*)")


def parse_scontrol(text: str) -> list[dict[str, Any]]:
    """`scontrol show job -d` records: {JobId, JobName, UserId, Account, Partition, JobState, nodes: [(nodes
    expression, [GPU indices])]}. Per-node detail lines (`Nodes=... GRES=gpu:h100:2(IDX:0-1)`) become `nodes`."""
    jobs: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("JobId="):
            cur = {"nodes": []}
            jobs.append(cur)
        if cur is None:
            continue
        pairs = dict(_KV.findall(stripped))
        if stripped.startswith("Nodes=") and "GRES" in pairs:
            cur["nodes"].append((pairs["Nodes"], gres_indices(pairs["GRES"])))
            continue
        if stripped.startswith("Nodes="):
            continue
        for key in ("JobId", "JobName", "UserId", "Account", "Partition", "JobState", "NodeList"):
            if key in pairs and key not in cur:
                cur[key] = pairs[key]
    return jobs


def gres_indices(gres: str) -> list[int]:
    """`gpu:h100:2(IDX:0-1)`, `gpu:2(IDX:0,2-3)`, `gpu:a100:1(IDX:3),gpu:...`: the GPU indices on this node."""
    out: list[int] = []
    for m in re.finditer(r"gpu[^()]*\(IDX:([0-9,\-]+)\)", gres):
        for part in m.group(1).split(","):
            lo, _, hi = part.partition("-")
            if lo.isdigit() and (not hi or hi.isdigit()):
                out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def expand_hostlist(expr: str) -> list[str]:
    """Slurm hostlist `gpu[01-03,07],login1` -> [gpu01, gpu02, gpu03, gpu07, login1] (one bracket level)."""
    out: list[str] = []
    for m in re.finditer(r"([^,\[]+)(?:\[([^\]]+)\])?([^,\[]*)", expr):
        prefix, ranges, suffix = m.group(1), m.group(2), m.group(3)
        if not ranges:
            out.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            if not lo.isdigit():
                continue
            for n in range(int(lo), int(hi or lo) + 1):
                out.append(f"{prefix}{str(n).zfill(len(lo))}{suffix}")
    return [h for h in out if h]


def user_of(user_id: str | None) -> str | None:
    """`alice(2101171)` -> alice."""
    if not user_id:
        return None
    return clean(user_id.split("(", 1)[0], 64) or None


# -- Jupyter ---------------------------------------------------------------------------------------------------
class Jupyter(Source):
    label = "jupyter notebook names"

    def __init__(self, timeout_s: float) -> None:
        super().__init__(timeout_s)
        self._sessions: dict[str, dict[str, Any]] = {}
        self._read_at: dict[str, float] = {}

    def kernel(self, kernel_id: str, runtime_dir: str | None) -> dict[str, Any] | None:
        """{path, state, last_activity} of a kernel from the servers that share its runtime folder."""
        hit = self._sessions.get(kernel_id)
        dirs = [d for d in (runtime_dir, os.environ.get("JUPYTER_RUNTIME_DIR")) if d]
        for d in dirs:
            if hit is None and time.monotonic() - self._read_at.get(d, -1e9) >= 10.0:
                self._read_at[d] = time.monotonic()
                self._load(Path(d))
                hit = self._sessions.get(kernel_id)
        return hit

    def _load(self, runtime: Path) -> None:
        import httpx

        try:
            files = sorted(p for p in runtime.iterdir() if re.fullmatch(r"(jp|nb)server-\d+\.json", p.name))
        except OSError as exc:
            self.failed(f"cannot list {runtime} ({exc.strerror})")
            return
        for f in files[:20]:
            try:
                info = json.loads(f.read_text(encoding="utf-8"))
                url, token = str(info.get("url") or ""), str(info.get("token") or "")
            except (OSError, ValueError, AttributeError):
                continue
            if not url or urlsplit(url).hostname not in LOOPBACK:
                continue         # only ever a server on this machine: the token must not leave it
            try:
                resp = httpx.get(url.rstrip("/") + "/api/sessions", timeout=self.timeout_s,
                                 headers={"Authorization": f"token {token}"} if token else {})
                resp.raise_for_status()
                sessions = resp.json()
            except Exception as exc:
                self.failed(f"Jupyter server {urlsplit(url).netloc} did not answer ({type(exc).__name__})")
                continue
            self.ok()
            for s in sessions if isinstance(sessions, list) else []:
                k = s.get("kernel") if isinstance(s, dict) else None
                if isinstance(k, dict) and isinstance(k.get("id"), str):
                    self._sessions[k["id"]] = {"path": clean(s.get("path") or s.get("name") or "", 300) or None,
                                               "state": clean(k.get("execution_state") or "", 32) or None,
                                               "last_activity": clean(k.get("last_activity") or "", 40) or None}
