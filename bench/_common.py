"""Small helpers shared by the benchmarks (run from the repository root: `python bench/<name>.py`)."""

from __future__ import annotations

import compileall
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def as_installed(checkout: Path = ROOT) -> None:
    """Measure a checkout of gpuspend as a user runs it: pip compiles an installed package's bytecode once, at
    install. A shell with PYTHONDONTWRITEBYTECODE (some containers and CI images set it) would make every
    measured start compile all of gpuspend's modules again (~55 ms a start), which no user's start pays. The
    measured processes inherit this environment; the bytecode goes in the usual (git-ignored) __pycache__
    folders. Benchmarks call it again for a --before checkout, so both sides start alike."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for package in ("gpuspend", "collectors", "tui"):
        if (checkout / package).is_dir():
            compileall.compile_dir(checkout / package, quiet=1)


as_installed()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} GB"
