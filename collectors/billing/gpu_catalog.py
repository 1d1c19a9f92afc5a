"""GPU line items: instance type / VM size / SKU text -> (GPU model, GPUs per instance), from data.

The mapping lives in gpuspend/data/gpu_instances.yaml so adding a new instance family is a data change.
Lookups are cached per distinct text: a month of billing has millions of rows but a few hundred distinct
instance types and descriptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import yaml

# Loaded through importlib.resources: works the same from a wheel, an editable install or a zip.
DATA = resources.files("gpuspend").joinpath("data/gpu_instances.yaml")


@dataclass(frozen=True)
class GpuMatch:
    model: str
    gpus: float | None
    text: str            # the matched text (an instance type when the entry names one)


@dataclass(frozen=True)
class _Entry:
    match: str           # the entry's own expression, without the token boundaries (compiled by _bounded)
    model: str
    gpus: float | None
    gpus_group: int | None
    gpus_by: dict[str, float] | None


@lru_cache(maxsize=1)
def _entries() -> tuple[_Entry, ...]:
    raw = yaml.load(DATA.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["entries"]
    out = []
    for e in raw:
        out.append(_Entry(str(e["match"]), str(e["model"]), e.get("gpus"), e.get("gpus_group"),
                          {str(k): float(v) for k, v in e["gpus_by"].items()} if e.get("gpus_by") else None))
    return tuple(out)


@cache
def _bounded(expr: str) -> re.Pattern[str]:
    # Compiled when first needed: a text that names no GPU never gets past _any_entry.
    # Boundaries: never match inside a longer token (p5.48xlarge is not in xp5.48xlargex).
    return re.compile(r"(?<![a-z0-9])(?:ml\.)?(?:" + expr + r")(?![a-z0-9])", re.IGNORECASE)


@lru_cache(maxsize=1)
def _any_entry() -> re.Pattern[str]:
    """Matches wherever some entry does. Most texts of an export (storage, network, CPU instances, fees) name
    no GPU: one search rules such a text out, instead of one search per entry (~70, most of a large import's
    first-batch cost in a fresh reader process)."""
    return _bounded("|".join(f"(?:{e.match})" for e in _entries()))


@lru_cache(maxsize=65536)
def lookup(text: str | None) -> GpuMatch | None:
    """First catalog entry found in `text`, or None."""
    if not text or not _any_entry().search(text):
        return None
    for e in _entries():
        m = _bounded(e.match).search(text)
        if not m:
            continue
        gpus = e.gpus
        if e.gpus_group is not None:
            gpus = float(m.group(e.gpus_group))
        elif e.gpus_by is not None:
            gpus = e.gpus_by.get(m.group(1))
        return GpuMatch(e.model, float(gpus) if gpus is not None else None, m.group(0))
    return None


def classify(*texts: str | None) -> GpuMatch | None:
    """The first of `texts` (most specific first: instance type, usage type, SKU, description) that matches,
    preferring a match that knows the GPU count (a machine type) over one that only names the model."""
    first = None
    for t in texts:
        hit = lookup(t)
        if hit is not None:
            if hit.gpus is not None:
                return hit
            first = first or hit
    return first
