"""GPU model keys: the one rule that turns a marketing name (NVML, a cloud API, dcgm labels) into the key
that pricing and the catalog use. Pure: collectors call it when they write, the fleet when it reads."""

from __future__ import annotations

import re

_MODEL_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bGH200\b"), "GH200"),
    (re.compile(r"\bH200\b"), "H200"),
    (re.compile(r"\bH100\b"), "H100"),
    (re.compile(r"\bH800\b"), "H800"),
    (re.compile(r"\bB200\b"), "B200"),
    (re.compile(r"\bB100\b"), "B100"),
    (re.compile(r"\bL40S\b"), "L40S"),
    (re.compile(r"\bL40\b"), "L40"),
    (re.compile(r"\bL4\b"), "L4"),
    (re.compile(r"\bA10G\b"), "A10G"),
    (re.compile(r"\bA10\b"), "A10"),
    (re.compile(r"\bA30\b"), "A30"),
    (re.compile(r"\bA40\b"), "A40"),
    (re.compile(r"\bT4\b"), "T4"),
    (re.compile(r"\bV100\b"), "V100"),
    (re.compile(r"\bP100\b"), "P100"),
]


def normalise_model(name: str | None) -> str | None:
    """NVML marketing name -> the model key pricing uses: 'NVIDIA H100 80GB HBM3' -> 'H100',
    'NVIDIA A100-SXM4-80GB' -> 'A100-80GB', 'NVIDIA L4' -> 'L4'. Unknown names pass through, tidied."""
    if not name:
        return None
    text = name.upper().replace("NVIDIA", "").replace("TESLA", "").strip()
    if "A100" in text:
        return "A100-80GB" if "80G" in text else "A100-40GB"
    if "RTX" in text and "6000" in text and "ADA" in text:
        return "RTX-6000-ADA"
    for pattern, model in _MODEL_PATTERNS:
        if pattern.search(text):
            return model
    return re.sub(r"\s+", "-", text) or None
