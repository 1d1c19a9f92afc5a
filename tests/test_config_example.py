"""config.example.yaml documents every key, and the defaults it shows are the defaults the code uses."""

from __future__ import annotations

import re

from gpuspend.config import DEFAULTS, iter_keys, load_config
from tests.conftest import ROOT

EXAMPLE = ROOT / "config.example.yaml"


def test_example_parses_to_the_code_defaults() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.warnings == []
    assert dict(cfg.data) == DEFAULTS


def test_every_key_is_documented() -> None:
    text = EXAMPLE.read_text()
    documented = set(re.findall(r"^[#\s-]*([a-z_]+):", text, flags=re.M))
    missing = sorted({k for k in iter_keys() if k.rsplit(".", 1)[-1].rstrip("[]") not in documented})
    assert missing == []
