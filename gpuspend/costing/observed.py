"""Observed time: how much of a window the samples cover (DESIGN.md "Every total says how much of its window was
observed"). Unobserved time is not free: a total over a window the collector watched for 80 s of 140 s is a total
over 57% of it, and says so ("observed 57% of today").

Per physical GPU (MIG slices are counted on their GPU; a GPU-cloud GPU counts once per poll like its meter), the
covered seconds in [lo, hi) come from the same covered-time reader the meter uses (rollup minutes + raw tail),
so the observed seconds and the money are always computed from the same rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from gpuspend.costing.store_read import covered_totals, load_gpus


@dataclass(frozen=True)
class Observed:
    window_s: float                            # length of the window (per GPU)
    per_gpu: tuple[tuple[str, float], ...]     # (uuid, observed seconds), physical GPUs only

    @property
    def seconds(self) -> float:
        """Observed GPU-seconds over every GPU."""
        return sum(s for _u, s in self.per_gpu)

    @property
    def possible_s(self) -> float:
        """GPU-seconds the window holds (GPUs x window)."""
        return self.window_s * len(self.per_gpu)

    @property
    def fraction(self) -> float | None:
        """Observed share of the window, 0..1; None when there is no GPU or no window."""
        possible = self.possible_s
        return min(1.0, self.seconds / possible) if possible > 0 else None


def observed(conn: sqlite3.Connection, cfg: Any, lo_ms: int, hi_ms: int, now_ms: int,
             gpus: list[dict[str, Any]] | None = None) -> Observed:
    """Observed seconds per physical GPU over [lo, hi) (hi at most now)."""
    hi = min(hi_ms, now_ms)
    window_s = max(0.0, (hi - lo_ms) / 1000.0)
    gpus = load_gpus(conn) if gpus is None else gpus
    cov: dict[int, float] = {}
    if window_s > 0:
        for (gid, _b), (seconds, _busy, _idle) in covered_totals(conn, cfg, lo_ms, hi, now_ms).items():
            cov[gid] = cov.get(gid, 0.0) + seconds
    per_gpu = tuple((g["uuid"], min(window_s, round(cov.get(g["id"], 0.0), 3)))
                    for g in gpus if not g.get("parent_id"))
    return Observed(window_s, per_gpu)


def observed_phrase(obs: Observed, what: str) -> str:
    """The label every total carries: "observed 57% of today" (or "nothing observed: no GPU")."""
    frac = obs.fraction
    if frac is None:
        return "nothing observed: no GPU"
    return f"observed {observed_pct(frac)} of {what}"


def observed_pct(fraction: float) -> str:
    """`57%`; never rounds a partial observation up to 100% or down to 0%: both would hide the gap."""
    pct = fraction * 100.0
    text = f"{pct:.0f}" if 1.0 <= pct <= 99.0 or pct in (0.0, 100.0) else ("<1" if pct < 1.0 else ">99")
    return f"{text}%"
