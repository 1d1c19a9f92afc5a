"""What every part of the cost engine shares: time units, the states a GPU is shown in, the small result
types (idle episodes, per-process spend) and money = rate x seconds / 3600."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuspend.snapshot import Rate

DAY_MS = 86_400_000


HOUR_MS = 3_600_000


STATES = ("busy", "held-idle", "free-idle", "unknown", "lost", "stale")   # unknown: no utilisation, never idle


@dataclass
class Episode:
    gpu_id: int
    uuid: str
    start_ms: int
    end_ms: int | None               # None while open
    idle_s: float = 0.0
    held_s: float = 0.0
    waste: float | None = 0.0        # None when the GPU has no rate
    currency: str = "USD"
    by_day: dict[str, float] = field(default_factory=dict)   # waste by UTC day
    by_hour: dict[int, float] = field(default_factory=dict)  # waste by hour start (ms), for report windows
    last_ms: int = 0                 # end of the last idle second seen
    # Seconds inside the episode with no samples (a collector gap, idle on both sides) or unknown utilisation:
    # the episode spans them (nobody saw work) but they are not money, so "idle for" exceeds what waste counts.
    unseen_s: float = 0.0

    @property
    def open(self) -> bool:
        return self.end_ms is None


@dataclass
class GpuTimeline:
    """What the episode scan leaves behind for one GPU."""
    episodes: list[Episode]
    idle_for_s: float                # current continuous idle run (0 when busy)
    run_start_ms: int | None


@dataclass(frozen=True)
class Spend:
    """Attributed money for one process (cost, and of it the idle part)."""
    proc_id: int
    pid: int
    user: str
    command: str
    cost: float
    idle_cost: float
    currency: str


def day_start(ms: int) -> int:
    return ms // DAY_MS * DAY_MS


def money(rate: Rate, seconds: float) -> float:
    return (rate.per_gpu_hour or 0.0) * seconds / 3600.0
