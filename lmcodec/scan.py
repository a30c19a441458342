"""Scans over a frequency table's ~50,000 entries that the engine and the mixer share.

numba lets an index below 0 count from the end of an array, so a loop from a start it cannot prove >= 0 reads
one element at a time (a gather a vector): loops here run over slices, from 0, and vectorize (measured 4-5x).
"""
from __future__ import annotations

from .jit import jit

SCAN = 64  # entries taken as one block: compared or summed as vectors, then searched one by one


@jit
def first_max(x, n):
    """The first index of the largest of x[0 .. n-1] (n >= 1): the first block holding it, then the entry."""
    best, at = x[0], 0
    for b0 in range(0, n, SCAN):
        block = x[b0: min(n, b0 + SCAN)]
        m = block[0]
        for i in range(block.shape[0]):
            m = max(m, block[i])
        if m > best:
            best, at = m, b0
    block = x[at: min(n, at + SCAN)]
    for i in range(block.shape[0]):
        if block[i] == best:
            return at + i
    return at
