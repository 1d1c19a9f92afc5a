"""The Linux terminal driver, with an input thread that sleeps while nothing is typed.

Textual's LinuxDriver polls stdin ten times a second for its whole life (a `select` timeout, so that it can
notice the exit flag and time out a lone Esc). On a dashboard left open for days that poll is a quarter of
gpuspend's idle CPU. Here the thread blocks until a key arrives or the driver stops (a pipe wakes it), and
polls at Textual's pace only for a moment after input, while the parser may be waiting to tell a lone Esc
from the start of an escape sequence. Everything else, the parsing and the messages included, is Textual's.
Textual is pinned (pyproject); tests/tui/test_driver.py drives this loop through a real pseudo-terminal.
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from codecs import getincrementaldecoder
from typing import Any

from textual import constants
from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

POLL_S = 0.1            # Textual's own select timeout, kept while the parser may hold a partial sequence
AFTER_INPUT_S = 1.0     # how long after the last input that lasts (far longer than Textual's Esc delay)


class _WakingEvent(threading.Event):
    """The driver's exit flag: setting it also wakes the input thread's select through a pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def set(self) -> None:
        super().set()
        if self.write_fd < 0:         # closed: no thread is left to wake
            return
        try:
            os.write(self.write_fd, b"x")
        except BlockingIOError:       # a wake-up is already pending
            pass

    def clear(self) -> None:
        super().clear()
        if self.read_fd < 0:
            return
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close the pipe. Textual calls disable_input() again after Driver.close(), so set() and clear() must
        never reach the numbers afterwards: by then they may be another file's (the database's)."""
        fds, (self.read_fd, self.write_fd) = (self.read_fd, self.write_fd), (-1, -1)
        for fd in fds:
            if fd >= 0:
                os.close(fd)


class QuietLinuxDriver(LinuxDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_event = _WakingEvent()

    def close(self) -> None:
        super().close()
        self.exit_event.close()

    def run_input_thread(self) -> None:
        """LinuxDriver.run_input_thread, but blocking (no timeout) while no input is recent."""
        selector = selectors.SelectSelector()
        fileno, wake = self.fileno, self.exit_event.read_fd
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        last_input = 0.0

        def process(events: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            nonlocal last_input
            for key, mask in events:
                if key.fd != fileno or not mask & selectors.EVENT_READ:
                    continue
                last_input = time.monotonic()
                data = decode(os.read(fileno, 1024 * 4), final=final)
                if not data:          # stdin piped and at its end
                    break
                for event in parser.feed(data):
                    self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                recent = time.monotonic() - last_input < AFTER_INPUT_S
                process(selector.select(POLL_S if recent else None))
            selector.unregister(fileno)
            process(selector.select(POLL_S), final=True)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass


def terminal_driver(default: type[Driver]) -> type[Driver]:
    """`default` (App.get_driver_class()'s choice) with Textual's LinuxDriver swapped for QuietLinuxDriver; a
    TEXTUAL_DRIVER the user set is kept."""
    return QuietLinuxDriver if default is LinuxDriver and constants.DRIVER is None else default


class QuietInput:
    """Mixed into both apps (before App): their terminal's input thread sleeps when nothing is typed."""

    def get_driver_class(self) -> type[Driver]:
        return terminal_driver(super().get_driver_class())     # type: ignore[misc]
