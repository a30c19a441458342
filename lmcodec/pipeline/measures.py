"""What the measurement tools read of a Codec's work (tools/, and tests of the coder's efficiency)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Measures:
    """Attach one to a codec (codec.measures = Measures()) and it adds up its work there; without one, nothing
    is kept. seconds: time in the engine's passes and in coding; ideal_bits: the sum of -log2 p over the coded
    symbols; counts: decoding's model steps and the speculative guesses fed and kept ("steps", "guessed",
    "kept")."""

    seconds: dict[str, float] = field(default_factory=lambda: {"engine": 0.0, "coding": 0.0})
    ideal_bits: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
