"""Property-based fuzzing of the decoder (a few hundred examples; python -m tools.fuzz_container runs more)."""

from __future__ import annotations

from collections import Counter

from tools import fuzz_container as fuzz


def test_mutated_vectors_only_raise_lmz_errors() -> None:
    counter: Counter = Counter()
    fuzz.make_test(400, counter)()
    assert sum(counter.values()) >= 100
    assert len(counter) >= 3  # several distinct outcomes were reached


def test_unmutated_vectors_pass() -> None:
    for _, blob, truth in fuzz.load_bases():
        assert fuzz.check(blob, truth, pipe=False) == "ok"
        assert fuzz.check(blob, truth, pipe=True) == "ok"


import pytest


@pytest.mark.parametrize("name", ["good-1-many-frames.lmz", "good-v2-1-bulk.lmz"])
def test_huge_fields_with_valid_crc_hit_limits(name: str) -> None:
    bases = {name: (blob, truth) for name, blob, truth in fuzz.load_bases()}
    blob, truth = bases[name]
    outcomes = set()
    for f in fuzz.fields(blob):
        for v in fuzz.HUGE:
            outcomes.add(fuzz.check(fuzz.set_field(blob, f, v), truth, pipe=False))
    assert "LimitError" in outcomes and "FormatError" in outcomes
