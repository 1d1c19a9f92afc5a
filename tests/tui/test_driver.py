"""The dashboard's terminal driver (tui/driver.py): its input thread sleeps while nothing is typed (Textual's
polls ten times a second), still reads every key, still tells a lone Esc from an escape sequence, and stops at
once when the app quits, in-process and as the real program on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from textual import events
from textual.drivers.linux_driver import LinuxDriver

from gpuspend.tui import driver as driver_mod
from gpuspend.tui.app import GpuspendApp
from gpuspend.tui.driver import QuietLinuxDriver, terminal_driver
from gpuspend.tui.fleet_app import FleetApp
from tests.tui.terminal import dashboard_on_pty, drain, read_until


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


class _Probe(QuietLinuxDriver):
    """The driver's input loop on a pipe instead of the terminal, recording what it would post."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.got: list[Any] = []

    def process_message(self, message: Any) -> None:
        self.got.append(message)


def test_the_input_thread_sleeps_while_idle_and_still_reads_keys_and_a_lone_esc(monkeypatch) -> None:
    timeouts: list[float | None] = []
    real_select = selectors.SelectSelector.select

    def select(self, timeout=None):
        timeouts.append(timeout)
        return real_select(self, timeout)

    monkeypatch.setattr(selectors.SelectSelector, "select", select)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTSTP, signal.SIGCONT)}
    read_fd, write_fd = os.pipe()

    async def run() -> None:
        d = _Probe(object())
        d.fileno = read_fd
        thread = threading.Thread(target=d.run_input_thread, daemon=True)
        thread.start()
        try:
            _wait_for(lambda: timeouts == [None], "a first select without a timeout")
            time.sleep(0.5)                          # Textual's loop would have woken 5 times by now
            assert timeouts == [None], "the idle input thread woke up"
            os.write(write_fd, b"q")
            _wait_for(lambda: any(isinstance(m, events.Key) for m in d.got), "the key")
            assert [m.key for m in d.got if isinstance(m, events.Key)] == ["q"]
            os.write(write_fd, b"\x1b")              # a lone Esc: only the parser's timeout tells it apart
            _wait_for(lambda: [m.key for m in d.got if isinstance(m, events.Key)] == ["q", "escape"], "escape")
            assert driver_mod.POLL_S in timeouts     # polled while the parser waited
            _wait_for(lambda: timeouts[-1] is None, "asleep again after the input")
        finally:
            d.exit_event.set()                       # what disable_input() does when the app quits
            thread.join(5)
            alive = thread.is_alive()
            d.close()
        assert not alive, "the input thread did not stop when the driver stopped"

    try:
        asyncio.run(run())
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        os.close(read_fd)
        os.close(write_fd)


def test_the_apps_run_on_it_unless_the_user_chose_a_driver(monkeypatch, make_app, demo_db) -> None:
    import textual.constants

    assert terminal_driver(LinuxDriver) is QuietLinuxDriver
    monkeypatch.setattr(textual.constants, "DRIVER", None)
    assert make_app(demo_db).driver_class is QuietLinuxDriver
    assert FleetApp("http://127.0.0.1:9").driver_class is QuietLinuxDriver
    monkeypatch.setattr(textual.constants, "DRIVER", "textual.drivers.linux_driver:LinuxDriver")   # TEXTUAL_DRIVER
    assert GpuspendApp.get_driver_class(make_app(demo_db)) is LinuxDriver


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux pseudo-terminal")
def test_keys_reach_the_real_dashboard_and_q_quits_at_once(demo_db) -> None:
    with dashboard_on_pty(demo_db, 24, 80) as term:
        read_until(term.fd, b"busy", 30)
        os.write(term.fd, b"?")
        read_until(term.fd, b"binding", 15)             # the help screen's key table
        os.write(term.fd, b"\x1b")                      # a lone Esc closes it: told apart by time alone,
        drain(term.fd, 0.5)                             # so a key typed with it would read as Alt+key
        os.write(term.fd, b"q")
        deadline = time.monotonic() + 15
        while term.proc.poll() is None:                 # a terminal keeps reading what the app writes
            assert time.monotonic() < deadline, "q did not quit the dashboard"
            drain(term.fd, 0.1)
        assert term.proc.returncode == 0


def test_the_exit_flag_never_writes_to_a_file_that_reused_its_pipe_after_close(tmp_path) -> None:
    """Textual disables input once more after Driver.close(): by then the pipe's fd numbers may be another
    file's (the database's), which must not get a stray byte."""
    flag = driver_mod._WakingEvent()
    flag.set()                                   # the first disable_input(): wakes the thread
    flag.clear()
    pipe = {flag.read_fd, flag.write_fd}
    flag.close()                                 # Driver.close()
    fds = [os.open(tmp_path / f"g{i}", os.O_RDWR | os.O_CREAT) for i in range(4)]   # the lowest free numbers
    assert pipe <= set(fds)                      # the files now hold the pipe's old numbers
    try:
        flag.set()                               # stop_application_mode()'s disable_input()
        flag.clear()
        assert flag.is_set() is False
        assert [os.path.getsize(tmp_path / f"g{i}") for i in range(4)] == [0, 0, 0, 0]
    finally:
        for fd in fds:
            os.close(fd)
