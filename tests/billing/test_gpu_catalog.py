"""GPU marking from the data catalog: one search rules out a text that names no GPU, and never drops one that
does (the answer is the first matching entry, exactly as searching every entry in order)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gpuspend.collectors.billing import gpu_catalog
from tests.billing.helpers import FIXTURES

SHARED = Path(__file__).resolve().parents[3] / "shared" / "billing-samples"
# What the clouds write in instance-type, SKU, usage-type and description columns, GPU or not.
TEXTS = [
    "p5.48xlarge", "ml.p4d.24xlarge", "USE1-BoxUsage:p5e.48xlarge", "g6e.12xlarge", "gr6.4xlarge", "g4dn.metal",
    "a3-highgpu-8g", "a3-highgpu-2g", "a2-ultragpu-4g", "g2-standard-24", "Standard_ND96isr_H100_v5",
    "Standard_NC24ads_A100_v4", "NC24rs v3", "Nvidia H100 80GB GPU running in Americas", "Nvidia Tesla T4 GPU",
    "$98.32 per On Demand Linux p5.48xlarge Instance Hour", "NVIDIA A100 80GB SXM4", "RTX 4090",
    # not GPUs: near misses included (a longer token, a CPU family, storage and fees)
    "xp5.48xlargex", "m5.large", "c7g.16xlarge", "Standard_D4s_v5", "n2-standard-8", "EBS:VolumeUsage.gp3",
    "Tax", "Support fee", "p5.48xlargeX", "", "   ",
]


def _by_every_entry(text: str) -> gpu_catalog.GpuMatch | None:
    """The catalog's answer without the one-search shortcut: every entry in order, the first that matches."""
    for e in gpu_catalog._entries():
        m = gpu_catalog._bounded(e.match).search(text)
        if m:
            gpus = e.gpus
            if e.gpus_group is not None:
                gpus = float(m.group(e.gpus_group))
            elif e.gpus_by is not None:
                gpus = e.gpus_by.get(m.group(1))
            return gpu_catalog.GpuMatch(e.model, float(gpus) if gpus is not None else None, m.group(0))
    return None


def _cells() -> set[str]:
    """Every text cell of the shipped fixtures and, where present, the public export samples."""
    out: set[str] = set()
    files = [*FIXTURES.glob("*.csv"), *(SHARED.rglob("*.csv") if SHARED.is_dir() else [])]
    for path in files:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            for row in csv.reader(fh):
                out.update(c for c in row if c and len(c) < 300)
    return out


def test_known_gpu_texts_are_marked_and_the_others_are_not() -> None:
    gpu = {t for t in TEXTS if gpu_catalog.lookup(t) is not None}
    assert gpu == set(TEXTS[:TEXTS.index("xp5.48xlargex")])
    assert gpu_catalog.lookup("a3-highgpu-2g").gpus == 2.0
    assert gpu_catalog.lookup("Standard_ND96isr_H100_v5").model == "H100"


@pytest.mark.parametrize("source", ["known texts", "export cells"])
def test_the_one_search_shortcut_never_changes_an_answer(source: str) -> None:
    texts = TEXTS if source == "known texts" else sorted(_cells())
    assert len(texts) > 20
    gpu_catalog.lookup.cache_clear()
    assert [gpu_catalog.lookup(t) for t in texts] == [_by_every_entry(t) if t else None for t in texts]
