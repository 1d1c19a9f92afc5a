"""Errors a user sees as one line with a meaningful exit code (see DESIGN.md, CLI)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ALERTS = 1
EXIT_USAGE = 2
EXIT_DATA = 3


class GpuspendError(Exception):
    """An expected failure: printed as one line (no traceback unless --debug)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class UsageError(GpuspendError):
    exit_code = EXIT_USAGE


class ConfigError(GpuspendError):
    exit_code = EXIT_USAGE


class NvmlUnavailable(GpuspendError):
    """No driver / library: not a crash, an environment fact (exit 2)."""

    exit_code = EXIT_USAGE


class DataError(GpuspendError):
    """Bad input data (billing file, database contents): exit 3, nothing written."""

    exit_code = EXIT_DATA


class LeaseHeld(GpuspendError):
    exit_code = EXIT_USAGE
