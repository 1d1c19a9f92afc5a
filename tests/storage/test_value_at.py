"""The dashboard reads each GPU's newest sample every tick with samples.value_at (one value out of a packed
run): it must give exactly what decoding the whole run gives, for every codec, NULLs and both "big" units."""

from __future__ import annotations

import random

import pytest

from gpuspend.samples import Column, unpack, value_at

MIB = 1 << 20


def _values(rng: random.Random, code: str) -> list:
    if code == "big":                               # memory in bytes: whole MiB (unit 1) or any byte count
        whole = rng.random() < 0.5
        base = rng.randrange(0, 80 << 30)
        return [None if rng.random() < 0.1 else
                (base // MIB + rng.randrange(-2000, 2000)) * MIB if whole else base + rng.randrange(-10**6, 10**6)
                for _ in range(rng.randrange(1, 61))]
    lo, hi = {"B": (0, 100), "b": (-40, 110), "H": (0, 65000)}[code]
    return [None if rng.random() < 0.1 else rng.randrange(lo, hi) for _ in range(rng.randrange(1, 61))]


@pytest.mark.parametrize("code", ["B", "b", "H", "big"])
@pytest.mark.parametrize("real", [False, True])
def test_value_at_equals_the_whole_run_decoded(code, real):
    rng = random.Random(f"{code}{real}")
    for _ in range(200):
        vals = _values(rng, code)
        col = Column(code, vals[0])
        for v in vals[1:]:
            if not col.joins(v):                    # a value the run cannot hold starts the next run
                break
            col.add(v)
        stored = col.stored()
        whole = unpack(code, stored, col.n, real)
        assert [value_at(code, stored, col.n, real, k) for k in range(col.n)] == whole
        if isinstance(stored, bytes):
            assert whole[: col.n] == [None if v is None else (float(v) if real else v) for v in vals[: col.n]]
