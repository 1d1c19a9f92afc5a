"""Reading one process from a procfs tree: `/proc` on a real node, any folder laid out like it in tests
(`GPUSPEND_PROC_ROOT`). Every read is best effort: a process that left, another PID namespace, hidepid or an
owner-only file (`environ` is mode 400) gives None, never an exception."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

DEFAULT_ROOT = "/proc"
ENV_ROOT = "GPUSPEND_PROC_ROOT"
_MAX_READ = 256 * 1024      # environ/cmdline of a huge process: enough for the keys we want, bounded memory


def proc_root() -> Path:
    return Path(os.environ.get(ENV_ROOT) or DEFAULT_ROOT)


def is_default_root(root: Path) -> bool:
    return str(root) == DEFAULT_ROOT


class ProcFS:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else proc_root()

    def _read(self, pid: int, name: str) -> bytes | None:
        try:
            with open(self.root / str(pid) / name, "rb") as fh:
                return fh.read(_MAX_READ)
        except OSError:
            return None

    def exists(self, pid: int) -> bool:
        return (self.root / str(pid)).is_dir()

    def cgroup(self, pid: int) -> str | None:
        raw = self._read(pid, "cgroup")
        return None if raw is None else raw.decode("utf-8", "replace")

    def cmdline(self, pid: int) -> list[str] | None:
        raw = self._read(pid, "cmdline")
        if raw is None:
            return None
        return [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]

    def environ(self, pid: int) -> dict[str, str] | None:
        raw = self._read(pid, "environ")
        if raw is None:
            return None
        out: dict[str, str] = {}
        for item in raw.split(b"\0"):
            key, sep, value = item.partition(b"=")
            if sep:
                out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        return out

    def uid(self, pid: int) -> int | None:
        raw = self._read(pid, "status")
        if raw is None:
            return None
        for line in raw.decode("utf-8", "replace").splitlines():
            if line.startswith("Uid:"):
                fields = line.split()
                if len(fields) > 1 and fields[1].isdigit():
                    return int(fields[1])      # the real uid
        return None

    def name(self, pid: int) -> str | None:
        raw = self._read(pid, "status")
        if raw is None:
            return None
        for line in raw.decode("utf-8", "replace").splitlines():
            if line.startswith("Name:"):
                return line[5:].strip()
        return None

    def start_ticks(self, pid: int) -> int | None:
        """Field 22 of `stat` (start time in clock ticks since boot): with the pid, names one process lifetime."""
        raw = self._read(pid, "stat")
        if raw is None:
            return None
        text = raw.decode("utf-8", "replace")
        rest = text[text.rfind(")") + 2:].split()     # the command may hold spaces and parentheses
        try:
            return int(rest[19])
        except (IndexError, ValueError):
            return None


def user_name(uid: int | None) -> str:
    if uid is None:
        return "unknown"
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)
