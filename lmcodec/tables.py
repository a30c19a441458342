"""The one number the engine and the coding layer share: every frequency table the engine makes, the mixer
mixes and the range coder codes with sums to exactly TOTAL = 2**TOTAL_BITS, every entry >= 1 (spec/engine.md,
spec/coder.md)."""

TOTAL_BITS = 28
TOTAL = 1 << TOTAL_BITS
