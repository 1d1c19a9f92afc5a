"""The real program on a real pseudo-terminal, for the tests that need a terminal only a user has."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT


@dataclass
class Pty:
    fd: int                     # the terminal's side
    proc: subprocess.Popen

    def hang_up(self) -> None:
        """The link drops: the terminal's side closes (once; the number is not closed again later)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


@contextmanager
def dashboard_on_pty(db: Path, rows: int, cols: int) -> Iterator[Pty]:
    """`gpuspend --demo --db DB --interval 1` on a fresh pty of that size.
    start_new_session: the pty is not the process's controlling terminal, so hanging up sends no SIGHUP.
    The process is killed and the terminal closed on the way out."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = dict(os.environ, TERM="xterm-256color")
    # Textual draws on stderr
    term = Pty(master, subprocess.Popen([sys.executable, "-m", "gpuspend", "--demo", "--db", str(db),
                                         "--interval", "1"], stdin=slave, stdout=slave, stderr=slave, env=env,
                                        cwd=ROOT, start_new_session=True))
    os.close(slave)
    try:
        yield term
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.proc.wait()
        term.hang_up()


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} on the terminal; got {buf[-400:]!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
    return buf


def drain(fd: int, seconds: float) -> None:
    """Read (and drop) what the app writes for `seconds`, as a terminal does: an app whose output nobody
    reads blocks once the pty's buffer is full."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            try:
                os.read(fd, 65536)
            except OSError:                             # the app closed its side
                return
