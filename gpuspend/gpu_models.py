"""GPU model keys: the one rule that turns a marketing name (NVML, a cloud API, dcgm labels) into the key
that pricing and the catalog use. Pure: collectors call it when they write, the fleet when it reads.

Keys carry the form factor where it changes the price: an H100 NVL rents for about half an SXM H100 (Azure
NC40ads vs ND96isr), so `H100-SXM`, `H100-PCIE`, `H100-NVL`, `H200-SXM`, `H200-NVL`, `A100-80GB-SXM`,
`A100-80GB-PCIE`, `A100-40GB-SXM`, `A100-40GB-PCIE`. A name that does not say its form factor keeps the family
key (`H100`, `A100-80GB`); `match_order` is the one rule for falling back from one to the other."""

from __future__ import annotations

import re
from functools import lru_cache

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


# Families sold in more than one form factor, and the form factors, in the order a fallback tries them.
FORM_FACTORS = ("SXM", "PCIE", "NVL")
_SPLIT_FAMILIES: dict[str, tuple[str, ...]] = {
    "H100": FORM_FACTORS, "H200": ("SXM", "NVL"), "A100-80GB": ("SXM", "PCIE"), "A100-40GB": ("SXM", "PCIE"),
}
_NVL = re.compile(r"\bNVL\b")
_PCIE = re.compile(r"PCI-?E")
# 'HBM3' is how NVML names the SXM H100 ('NVIDIA H100 80GB HBM3'); PCIe and NVL boards say so in the name.
_SXM = re.compile(r"\bSXM\d?\b|SXM\d?-|\bHBM3\b|\bHGX\b")


def _form_factor(text: str) -> str | None:
    if _NVL.search(text):
        return "NVL"
    if _PCIE.search(text):
        return "PCIE"
    if _SXM.search(text):
        return "SXM"
    return None


@lru_cache(maxsize=512)
def normalise_model(name: str | None) -> str | None:
    """NVML marketing name -> the model key pricing uses: 'NVIDIA H100 80GB HBM3' -> 'H100-SXM',
    'NVIDIA H100 NVL' -> 'H100-NVL', 'NVIDIA A100-SXM4-80GB' -> 'A100-80GB-SXM', 'NVIDIA L4' -> 'L4'.
    A plain 'NVIDIA H200' is the SXM board (the NVL says NVL). Unknown names pass through, tidied."""
    if not name:
        return None
    text = name.upper().replace("NVIDIA", "").replace("TESLA", "").strip()
    text = re.sub(r"(\d+)\s+GB", r"\1GB", text)     # cloud APIs write '80 GB'
    if "A100" in text:
        family = "A100-80GB" if "80G" in text else "A100-40GB"
        ff = _form_factor(text)
        return f"{family}-{ff}" if ff in ("SXM", "PCIE") else family
    if "RTX" in text and "6000" in text and "ADA" in text:
        return "RTX-6000-ADA"
    for pattern, model in _MODEL_PATTERNS:
        if pattern.search(text):
            if model == "H100":
                ff = _form_factor(text)
                return f"H100-{ff}" if ff else "H100"
            if model == "H200":     # sold as SXM and NVL only; a plain name is the SXM board
                ff = _form_factor(text)
                return "H200-NVL" if ff == "NVL" else "H200" if ff == "PCIE" else "H200-SXM"
            return model
    return re.sub(r"\s+", "-", text) or None


def split_model(key: str | None) -> tuple[str, str | None]:
    """'H100-NVL' -> ('H100', 'NVL'); 'A100-80GB' -> ('A100-80GB', None); 'L4' -> ('L4', None)."""
    k = (key or "").upper()
    for fam, kinds in _SPLIT_FAMILIES.items():
        for ff in kinds:
            if k == f"{fam}-{ff}":
                return fam, ff
    return k, None


def family(key: str | None) -> str:
    """The family of a model key: 'H100-NVL' -> 'H100'."""
    return split_model(key)[0]


def match_order(key: str | None) -> list[str]:
    """Catalog keys to try for a GPU, best first: its own form factor, then the family (a price that does not
    say its form factor), then the family's other form factors. A caller that takes anything but the first
    says so in the rate label ('priced as H100-SXM: no H100-NVL price')."""
    k = (key or "").upper()
    fam, ff = split_model(k)
    if fam not in _SPLIT_FAMILIES:
        return [k] if k else []
    out = [k] if ff else []
    out.append(fam)
    others = [f for f in _SPLIT_FAMILIES[fam] if f != ff]
    if ff in ("PCIE", "NVL"):       # both are PCIe cards: the other one is closer in price than an SXM board
        others.sort(key=lambda f: f == "SXM")
    out += [f"{fam}-{f}" for f in others]
    return out
