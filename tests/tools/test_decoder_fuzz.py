"""A short seeded run of tools/fuzz_decoder.py: mutated streams with lm frames through decompress, LmzFile
seeks, the CLI and fsspec end in a documented error or the original bytes (the tool runs 10^4 cases)."""
from __future__ import annotations

from tools import fuzz_decoder


def test_mutated_streams_end_in_documented_errors_or_the_truth():
    report = fuzz_decoder.fuzz(cases=180, seed=7, case_seconds=60)
    assert report["undocumented"] == 0, "\n".join(report["lines"])
    assert report["wrong"] == 0, "\n".join(report["lines"])
    outcomes = report["outcomes"]
    assert outcomes["ChecksumError"] > 0 and outcomes["exit 1"] > 0  # lm payload damage was reached and caught
    assert len(outcomes) >= 4
