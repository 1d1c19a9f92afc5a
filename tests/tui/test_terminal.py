"""The real program on a real pseudo-terminal: it draws, and it ends when the terminal goes away."""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time

from tests.conftest import ROOT


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
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


def test_dropped_terminal_without_sighup_ends_the_process(demo_db):
    """An SSH drop where SIGHUP never arrives (no controlling terminal here, like nohup'd wrappers):
    the watchdog notices the dead pty and exits instead of spinning."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = dict(os.environ, TERM="xterm-256color")
    # Textual draws on stderr; start_new_session: the pty is not our controlling terminal, so no SIGHUP
    proc = subprocess.Popen([sys.executable, "-m", "gpuspend", "--demo", "--db", str(demo_db), "--interval", "1"],
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True)
    os.close(slave)
    try:
        screen = _read_until(master, b"busy", 30)       # a GPU row: the first snapshot is on screen
        assert b"wasted" in screen and b"Traceback" not in screen
        os.close(master)                     # the link drops
        proc.wait(timeout=15)                # the watchdog checks every 2 s
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dashboard_refuses_without_a_terminal(cli, demo_db):
    r = cli("--db", str(demo_db))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("gpuspend:") and "--report" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_interval_is_one_clear_line(cli, demo_db):
    r = cli("--db", str(demo_db), "--interval", "0")
    assert r.returncode == 2
    assert r.stderr.strip() == "gpuspend: --interval must be positive, got 0"


def test_color_system_option_reaches_textual(monkeypatch, make_app, demo_db):
    import textual.constants

    from gpuspend.tui.app import _color_system

    monkeypatch.setattr(textual.constants, "COLOR_SYSTEM", textual.constants.COLOR_SYSTEM)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "auto")
    _color_system("256")
    assert make_app(demo_db).console.color_system == "256"
    _color_system("standard")
    assert make_app(demo_db).console.color_system == "standard"
