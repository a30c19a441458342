"""Proof of exactness: the engine's tables do not depend on pass, batch layout, threads, kernel path or ISA."""
from __future__ import annotations

import hashlib
import random
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lmcodec.engine import fused as fz
from lmcodec import models
from lmcodec.engine import TOTAL, Engine
from lmcodec.engine.intmodel import IntModel
from lmcodec.pipeline.tokens import ByteTokenizer

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "data" / "tiny-llama")
TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light."
).encode()


@pytest.fixture(scope="module", params=[1, 2], ids=["engine1", "engine2"])
def tiny(request) -> IntModel:
    """The tiny model converted for each engine: streams made with either must keep decoding."""
    from lmcodec.models.registry import _from_path

    return _from_path(Path(TINY), request.param)


def seqs(model: IntModel, n: int) -> list[list[int]]:
    """n token sequences of different lengths, each starting with BOS."""
    ids = ByteTokenizer(model).encode(TEXT)
    bos = model.config["bos_id"]
    return [[bos] + ids[(7 * i) % 11: (7 * i) % 11 + 20 + 3 * i] for i in range(n)]


def padded(engine: Engine, rows: list[list[int]], block: int = 64, lengths: bool = False) -> np.ndarray:
    """The tables (B, T, V) of a full-sequence pass over rows padded with an arbitrary token; with lengths, the
    pass is told where each row's padding starts."""
    width = max(map(len, rows))
    x = np.full((len(rows), width), 5, np.int64)
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
    parts = [t for _, t in engine.full_tables(x, block=block, lengths=[len(r) for r in rows] if lengths else None)]
    return np.concatenate(parts, 1)


def full(engine: Engine, rows: list[list[int]], block: int = 64) -> list[np.ndarray]:
    """Per row, the tables of its real positions from a padded full-sequence pass."""
    tables = padded(engine, rows, block)
    return [tables[i, : len(r)] for i, r in enumerate(rows)]


@pytest.mark.parametrize("fused", [True, False])
def test_padding_told_is_skipped(tiny, monkeypatch, fused):
    """Told the rows' lengths, the pass gives the same tables for every real position (row blocks that end at each
    row's length, a table block that some rows end inside) and zeros for the padding."""
    from lmcodec.engine import passes

    monkeypatch.setattr(passes, "ROW_BLOCK", 8)
    e = Engine(tiny, fused=fused)
    rows = seqs(tiny, 3)
    plain, told = padded(e, rows, block=5), padded(e, rows, block=5, lengths=True)
    assert told.shape == plain.shape
    for i, r in enumerate(rows):
        assert np.array_equal(told[i, : len(r)], plain[i, : len(r)])
        assert len(r) == told.shape[1] or (told[i, len(r):] == 0).all()
    assert min(map(len, rows)) < told.shape[1]


def incremental(engine: Engine, rows: list[list[int]]) -> list[np.ndarray]:
    st = engine.start(len(rows))
    width = max(map(len, rows))
    out = []
    for t in range(width):
        out.append(st.step(np.array([r[t] if t < len(r) else 5 for r in rows])))
    tables = np.stack(out, 1)
    return [tables[i, : len(r)] for i, r in enumerate(rows)]


def digest(tables: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for t in tables:
        h.update(np.ascontiguousarray(t).tobytes())
    return h.hexdigest()


def test_tables_are_valid(tiny):
    (t,) = full(Engine(tiny), seqs(tiny, 1))
    assert t.dtype == np.int64
    assert (t >= 1).all()
    assert (t.sum(-1) == TOTAL).all()


@pytest.mark.parametrize("fused", [True, False])
def test_full_equals_incremental(tiny, monkeypatch, fused):
    from lmcodec.engine import passes

    monkeypatch.setattr(passes, "CACHE_STEP", 8)  # the KV caches grow on these short rows (16, then 32 slots)
    monkeypatch.setattr(passes, "SLOT_BLOCK", 16)
    e = Engine(tiny, fused=fused)
    rows = seqs(tiny, 3)
    a, b = full(e, rows), incremental(e, rows)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_batch_layout_and_padding(tiny):
    e = Engine(tiny)
    rows = seqs(tiny, 16)
    ref = [full(e, [r])[0] for r in rows]  # batch size 1, no padding
    for size in (3, 16):
        got = []
        for s in range(0, len(rows), size):
            got += full(e, rows[s: s + size], block=5)
        assert all(np.array_equal(x, y) for x, y in zip(ref, got))
    # reordered batch: row content, not row position, decides the tables
    rev = full(e, rows[::-1])[::-1]
    assert all(np.array_equal(x, y) for x, y in zip(ref, rev))


def test_fast_path_equals_exact_fallback(tiny):
    rows = seqs(tiny, 4)
    assert digest(full(Engine(tiny, fast=True), rows)) == digest(full(Engine(tiny, fast=False), rows))


def test_fused_kernels_equal_torch_path(tiny):
    """The numba kernels (fused.py) and the torch reference compute the same integers, in both passes."""
    rows = seqs(tiny, 5)
    ref = Engine(tiny, fused=False)
    fused = Engine(tiny, fused=True)
    assert fused.fused and not ref.fused
    assert digest(full(fused, rows, block=7)) == digest(full(ref, rows))
    assert digest(incremental(fused, rows)) == digest(incremental(ref, rows))


def test_fused_row_split_over_threads(tiny, monkeypatch, torch_threads_unchanged):
    """Rows split over the kernel threads (forced even for tiny work) give the same tables."""

    rows = seqs(tiny, 3)
    one = Engine(tiny, threads=1)
    ref = digest(full(one, rows)), digest(incremental(one, rows))
    monkeypatch.setattr(fz, "PARALLEL_WORK", 1)
    e = Engine(tiny, threads=3)
    assert (digest(full(e, rows)), digest(incremental(e, rows))) == ref


def test_caller_float_settings_do_not_matter(tiny):
    rows = seqs(tiny, 2)
    ref = digest(full(Engine(tiny), rows))
    prec = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")  # TF32 / bf16 for float32 matmuls, where available
        assert digest(full(Engine(tiny), rows)) == ref
    finally:
        torch.set_float32_matmul_precision(prec)


def test_threads(tiny, torch_threads_unchanged):
    rows = seqs(tiny, 3)
    assert len({digest(full(Engine(tiny, threads=n), rows)) for n in (1, 2, 0)}) == 1


def test_decoding_steps_wide_and_narrow(tiny, monkeypatch, torch_threads_unchanged):
    """Whatever OpenMP width the pacer picks for each step, the tables are the same."""
    from lmcodec.engine.threads import Pacer

    rows = seqs(tiny, 3)
    e = Engine(tiny, threads=2)
    ref = digest(incremental(e, rows))
    widths = iter([1, 2, 2, 1] * 1000)
    monkeypatch.setattr(Pacer, "choose", lambda self: next(widths))
    assert digest(incremental(e, rows)) == ref


def test_pacer_choice():
    """The pacer goes wide when a wide trial is faster, back to narrow when a narrow trial is, and spaces out
    trials that lose (fed times, no clock)."""
    from lmcodec.engine.threads import Pacer

    def run(p: Pacer, steps: int, wide: float, narrow: float) -> list[int]:
        used = []
        for _ in range(steps):
            w = p.choose()
            used.append(w)
            p.record(wide if w > 1 else narrow)
        return used

    p = Pacer(4)
    used = run(p, 20, wide=0.02, narrow=0.03)  # quiet: wide wins its first trial
    assert used[:3] == [1, 1, 1] and used[3] == 4 and p.current == 4 and used[-1] == 4
    used = run(p, 2000, wide=0.4, narrow=0.03)  # busy: the next narrow trial wins, wide trials grow rare
    assert p.current == 1
    trials = [i for i, w in enumerate(used) if w > 1 and i > used.index(1)]
    gaps = [b - a for a, b in zip(trials, trials[1:])]
    assert gaps and all(g >= Pacer.FIRST_INTERVAL for g in gaps) and max(gaps) == Pacer.LONGEST_INTERVAL + 1
    assert sum(w > 1 for w in used) < 0.05 * len(used)
    assert run(Pacer(1), 50, wide=0.01, narrow=0.03) == [1] * 50  # one thread: nothing to choose


_CHILD = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_engine import TINY, digest, full, incremental, seqs
from pathlib import Path
from lmcodec.engine import Engine
from lmcodec.engine.exact import int_mm_is_exact
from lmcodec.models.registry import _from_path
m = _from_path(Path(TINY), {engine})
e = Engine(m, threads={threads})
rows = seqs(m, 3)
print(digest(full(e, rows)), digest(incremental(e, rows)), int_mm_is_exact(torch.device("cpu")))
"""


@pytest.mark.parametrize("isa", ["SSE41", "AVX2", "AVX512_CORE", None])
def test_cpu_isa_paths(tiny, isa):
    """oneDNN's older kernels saturate int16 pair sums; the self-test must catch that, and tables must match."""
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    code = _CHILD.format(tests=str(ROOT / "tests" / "engine"), threads=1 if isa else 2, engine=tiny.engine)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    f, i, _ = out.stdout.split()
    rows = seqs(tiny, 3)
    e = Engine(tiny)
    assert f == i == digest(full(e, rows)) == digest(incremental(e, rows))


def test_self_test_rejects_a_wrong_kernel(monkeypatch):
    from lmcodec.engine import exact

    real = torch._int_mm
    monkeypatch.setattr(exact, "_verified", {})
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: real(a, b) + (a[:, :1].int() == 127))
    assert not exact.int_mm_is_exact(torch.device("cpu"))
    a = torch.full((20, 64), 127, dtype=torch.int8)
    b = torch.ones((64, 8), dtype=torch.int8)
    assert torch.equal(exact.matmul_i8(a, b).long(), a.long() @ b.long())  # the fallback is used


@pytest.mark.parametrize("engine", [1, 2])
def test_conversion_is_deterministic(tmp_path, tiny, engine):
    from lmcodec.models.registry import _converter, _load_hf_dir

    convert = _converter(engine)[1]
    state, cfg, tok = _load_hf_dir(Path(TINY))(engine)
    convert(state, cfg, tok, tiny.model_id, "test", tmp_path / "a.safetensors")
    convert(state, cfg, tok, tiny.model_id, "test", tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_default_model_full_equals_incremental():
    """The real model on a short text: both passes agree, and it predicts English far better than uniform."""
    m = models.resolve("default")
    e = Engine(m)
    ids = [m.config["bos_id"]] + ByteTokenizer(m).encode(TEXT)[:48]
    a, b = full(e, [ids]), incremental(e, [ids])
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[0], full(Engine(m, fused=False), [ids])[0])  # real bounds: both requant branches
    bits = -np.log2(a[0][np.arange(len(ids) - 1), ids[1:]] / TOTAL).sum()
    assert bits / len(TEXT[: len(ByteTokenizer(m).decode(ids[1:]))]) < 2.0  # bits per byte


def test_kv_round_is_the_spec_rounding():
    """Spec §5 step 2's 8-bit rounding of key and value vectors, the kernel's and the reference's, against the
    spec's words in Python integers, at the edges of each scale; rounding twice changes nothing."""
    from lmcodec.engine.exact import kv_round

    def spec(z: list[int]) -> list[int]:
        s = max(0, max(abs(x) for x in z).bit_length() - 7)
        return z if s == 0 else [min(max((x + (1 << (s - 1))) >> s, -127), 127) << s for x in z]

    rnd = random.Random(5)
    edges = [0, 1, -1, 63, 64, 127, -127, 128, -128, 129, 255, -255, 256, 383, -383, 16383, 16384, 32767, -32767]
    vecs = [[rnd.choice(edges) for _ in range(8)] for _ in range(300)]
    vecs += [[rnd.randint(-(1 << b), 1 << b) for _ in range(64)] for b in range(1, 16) for _ in range(20)]
    for z in vecs:
        want = spec(z)
        assert kv_round(torch.tensor([z]))[0].tolist() == want
        got = np.array(z, np.int64)
        s = fz.kv_round(got)
        assert got.tolist() == want and s == max(0, max(map(abs, z)).bit_length() - 7)
        assert spec(want) == want
        assert all(x % (1 << s) == 0 and abs(x >> s) <= 127 for x in want)


@pytest.mark.parametrize("scale", [1, 1 << 20, 1 << 40], ids=["int16", "int32", "int64"])
def test_silu_gate_is_the_spec_gate(scale):
    """MLP steps 1-3 (spec §6) from fused.silu_deltas, whatever type holds the deltas, against the spec's words
    on the table itself: sigma = g past the table's top, 0 below its bottom, else silu[g + half]; h = sigma u, g
    and u clamped to GU_LIMIT. At the table's edges and beyond, and across it."""
    half = 16 << 4
    g = np.arange(-half, half + 1)
    silu = np.rint(g / (1.0 + np.exp(-g / 16.0))).astype(np.int64)
    silu += np.random.default_rng(0).integers(-scale, scale + 1, 2 * half + 1)  # the ends too: past them, g or 0
    deltas = fz.silu_deltas(silu)
    assert deltas.dtype == {1: np.int16, 1 << 20: np.int32, 1 << 40: np.int64}[scale]
    lim = fz.GU_LIMIT
    gs = [-lim - 5, -lim, -half - 2, -half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1, lim, lim + 9]
    gs += list(range(-half - 3, half + 4, 7))
    us = [lim + 3, -lim - 3, 1, -1, 12345, 0]
    y = np.array([gs + [us[j % len(us)] for j in range(len(gs))]], np.int64)
    n = len(gs)
    lin = (np.zeros(2 * n, np.int64), np.zeros(2 * n, np.int64), np.zeros(2 * n, np.int64), np.zeros(2 * n), 0, 1)
    h = np.zeros((1, n), np.int64)
    fz._gate_up(y, y[:0], np.zeros(1, np.int64), lin, deltas, h, 0, n)

    def spec(gv: int, uv: int) -> int:
        gv, uv = min(max(gv, -lim), lim), min(max(uv, -lim), lim)
        sigma = gv if gv > half else 0 if gv < -half else int(silu[gv + half])
        return sigma * uv

    assert h[0].tolist() == [spec(gv, uv) for gv, uv in zip(y[0, :n].tolist(), y[0, n:].tolist())]


def test_default_model_window_full_equals_incremental():
    """The real model's head size (64) under a window: decoding goes through the SIMD attention blocks."""
    m = models.resolve("default")
    e = Engine(m, window=16, sink=4)
    ids = [m.config["bos_id"]] + ByteTokenizer(m).encode(TEXT)[:40]
    e8 = Engine(m, window=16, sink=4, kv8=True)  # coder 1 version 3: the decoder keeps 8-bit codes
    assert (e8.start(1).k_all.dtype, e8.start(1).v_all.dtype) == (np.int8, np.int8)
    assert np.array_equal(full(e8, [ids])[0], incremental(e8, [ids])[0])
    codes = incremental(e8, [ids])[0]
    e8.code_cache = False  # the rounded keys and values kept in int16 caches instead: the same tables
    assert e8.start(1).k_all.dtype == np.int16 and np.array_equal(incremental(e8, [ids])[0], codes)
    assert not np.array_equal(codes, full(e, [ids])[0])  # the rounding does change them
    state = e.start(1)
    assert fz.simd_fits(state.k[0], state.v[0], e.exp_np)
    assert np.array_equal(full(e, [ids])[0], incremental(e, [ids])[0])
    for t in ids:
        state.step(np.array([t]))
    # the keys as the decoder keeps them (woven: fused.woven_shapes) and the blocks' squared norms that choose
    # the scores' path: a bound below a key's norm would take int32 sums that can wrap. The ring has not wrapped
    # (41 positions in 64 slots), so each bound is its block's largest norm
    layers, rows, nkv, blocks, pairs, lanes = state.k_all.shape
    k = state.k_all.reshape(layers, rows, nkv, blocks, pairs, lanes // 2, 2).transpose(0, 1, 2, 3, 5, 4, 6)
    k = k.reshape(layers, rows, nkv, blocks, lanes // 2, 2 * pairs).astype(np.float64)
    assert np.array_equal(state.kn_all, (k * k).sum(-1).max(-1))
    assert (state.kn_all > 0).sum() == layers * nkv * -(-len(ids) // (lanes // 2))


# ---- attention windows, rows at their own pace, positions past the model's RoPE table (coder 1 version 2) ----

def long_rows(model: IntModel, n: int) -> list[list[int]]:
    ids = ByteTokenizer(model).encode(TEXT * 2)
    bos = model.config["bos_id"]
    return [[bos] + ids[3 * i: 3 * i + 40 + 9 * i] for i in range(n)]


def uneven(engine: Engine, rows: list[list[int]], seed: int = 0) -> list[np.ndarray]:
    """The incremental pass with the rows advancing in a random interleaving, a few rows per step."""
    import random

    rnd = random.Random(seed)
    st = engine.start(len(rows))
    got: list[list[np.ndarray]] = [[] for _ in rows]
    while any(len(g) < len(r) for g, r in zip(got, rows)):
        live = [i for i, (g, r) in enumerate(zip(got, rows)) if len(g) < len(r)]
        pick = sorted(rnd.sample(live, rnd.randint(1, len(live))))
        tables = st.step(np.array([rows[i][len(got[i])] for i in pick]), pick)
        for j, i in enumerate(pick):
            got[i].append(tables[j])
    return [np.stack(g) for g in got]


@pytest.mark.parametrize("window, sink", [(1, 0), (2, 1), (5, 0), (5, 4), (16, 4)])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kv8", [False, True], ids=["kv16", "kv8"])
def test_window_full_equals_incremental(tiny, window, sink, fused, kv8):
    e = Engine(tiny, fused=fused, window=window, sink=sink, kv8=kv8)
    rows = long_rows(tiny, 3)
    a = full(e, rows, block=7)
    b = uneven(e, rows)
    assert digest(a) == digest(b)
    assert digest(a) != digest(full(Engine(tiny, fused=fused), rows))  # the window does change the tables
    if kv8 and window > 1:  # and so does rounding the keys and values (one key alone has weight 1 whatever it is)
        assert digest(a) != digest(full(Engine(tiny, fused=fused, window=window, sink=sink), rows))


def test_window_fused_equals_torch_and_wide_window_is_none(tiny):
    rows = long_rows(tiny, 2)
    for sink in (0, 1, 3):
        for kv8 in (False, True):
            assert digest(full(Engine(tiny, fused=True, window=6, sink=sink, kv8=kv8), rows)) == \
                digest(full(Engine(tiny, fused=False, window=6, sink=sink, kv8=kv8), rows))
    longest = max(map(len, rows))
    assert digest(full(Engine(tiny, window=longest), rows)) == digest(full(Engine(tiny), rows))


def test_positions_past_the_rope_table(tiny, monkeypatch):
    """Rows past the model file's RoPE table are made by the spec's rule; full and incremental agree there."""
    e = Engine(tiny, window=8)
    c = 16
    e.cfg = dict(e.cfg, context=c)
    true_cos, true_sin = e.cos_np[:200].astype(np.int64), e.sin_np[:200].astype(np.int64)
    e.cos_np, e.sin_np = e.cos_np[:c].copy(), e.sin_np[:c].copy()
    rows = long_rows(tiny, 2)
    assert digest(full(e, rows)) == digest(uneven(e, rows, seed=3))
    n = e.cos_np.shape[0]
    assert n >= max(map(len, rows))
    # the made rows are rotations by p * theta to within a few units of 2**-14
    assert np.abs(e.cos_np[:n] - true_cos[:n]).max() <= 8
    assert np.abs(e.sin_np[:n] - true_sin[:n]).max() <= 8
    assert np.array_equal(e.cos_np[:c], true_cos[:c])


@pytest.mark.parametrize("fused", [True, False])
def test_k_clamp_after_rope_is_the_same_in_every_pass(tiny, fused):
    """With a window, rotated k is clamped (to fit the decoder's int16 cache). A low limit makes the clamp bite on
    the tiny model: full and incremental passes, fused and torch, still agree, and the tables change."""
    rows = long_rows(tiny, 3)

    def engine(f: bool, limit: int | None = 200) -> Engine:
        e = Engine(tiny, fused=f, window=16, sink=4)
        if limit is not None:
            e.k_limit = limit
        return e

    a = full(engine(fused), rows, block=7)
    assert digest(a) == digest(uneven(engine(fused), rows))
    assert digest(a) == digest(full(engine(not fused), rows))
    assert digest(a) != digest(full(engine(fused, None), rows))
    assert engine(fused, None).k_limit == 32767 and Engine(tiny).k_limit > 46341  # version 1: no clamp


def speculative(engine: Engine, rows: list[list[int]], seed: int) -> list[np.ndarray]:
    """Tables from steps that feed each row its next token and up to SPEC_SLOTS guesses (right or wrong, at
    random), keeping the tables up to the first wrong guess and rewinding the rest, as a speculative decoder
    does."""
    from lmcodec.engine import SPEC_SLOTS

    rng = random.Random(seed)
    st = engine.start(len(rows))
    got: list[list[np.ndarray]] = [[] for _ in rows]
    fed = [0] * len(rows)
    while any(f < len(r) for f, r in zip(fed, rows)):
        plan, ent_rows, ent_toks = [], [], []
        for i, r in enumerate(rows):
            if fed[i] >= len(r):
                continue
            toks = [r[fed[i]]]
            for j in range(1, rng.randint(1, SPEC_SLOTS + 1)):
                if fed[i] + j < len(r):
                    toks.append(r[fed[i] + j] if rng.random() < 0.7 else rng.randrange(engine.vocab_size))
            plan.append((i, toks))
            ent_rows += [i] * len(toks)
            ent_toks += toks
        tables = st.step(np.array(ent_toks), np.array(ent_rows))
        j = 0
        for i, toks in plan:
            ok = 1
            while ok < len(toks) and toks[ok] == rows[i][fed[i] + ok]:
                ok += 1
            got[i] += list(tables[j: j + ok])
            j += len(toks)
            fed[i] += ok
            if ok < len(toks):
                st.rewind(np.array([i]), np.array([fed[i]]))
    return [np.stack(g) for g in got]


@pytest.mark.parametrize("window, sink, kv8", [(None, 0, False), (5, 4, False), (16, 4, False), (16, 4, True)])
@pytest.mark.parametrize("fused", [True, False])
def test_speculative_steps_give_the_incremental_tables(tiny, window, sink, kv8, fused):
    """Several positions of a row in one step, and positions taken back, leave every kept table as the full
    pass has it: guesses can speed decoding up, never change it."""
    e = Engine(tiny, fused=fused, window=window, sink=sink, kv8=kv8)
    rows = long_rows(tiny, 3)
    want = digest(full(e, rows))
    for seed in range(3):
        assert digest(speculative(e, rows, seed)) == want


@pytest.mark.parametrize("kv8", [False, True], ids=["kv16", "kv8"])
def test_one_call_layers_give_the_same_tables(tiny, monkeypatch, torch_threads_unchanged, kv8):
    """Engine 2's decoding step with each layer one compiled call (layerstep.py) gives the tables of the layer
    run piece by piece, for plain and speculative steps; with engine 1 it is never used."""
    from lmcodec.engine import layerstep, passes

    calls = []
    layer = layerstep.layer
    monkeypatch.setattr(layerstep, "layer", lambda *a: (calls.append(1), layer(*a)))
    e = Engine(tiny, threads=1, window=16, sink=4, kv8=kv8)
    rows = long_rows(tiny, 3)
    one = digest(uneven(e, rows)), digest(speculative(e, rows, 0))
    assert bool(calls) == (tiny.engine >= 2)
    monkeypatch.setattr(passes.DecodeState, "_one_call", lambda self: False)
    calls.clear()
    assert (digest(uneven(e, rows)), digest(speculative(e, rows, 0))) == one
    assert not calls


@pytest.mark.parametrize("kv8", [False, True], ids=["kv16", "kv8"])
def test_layers_side_by_side_give_the_same_tables(tiny, monkeypatch, torch_threads_unchanged, kv8):
    """Engine 2's decoding step with each layer and the tables run by 2 or 3 threads side by side
    (layerstep.layer_part, tables_part: shared matmul outputs, attention heads and rows of tables, the threads
    meeting between stages) gives the tables of one thread, for plain and speculative steps, batches of one row
    and of several (fewer rows than threads: a thread with no rows of tables)."""
    from lmcodec.engine import layerstep
    from lmcodec.engine.threads import Pacer

    if tiny.engine < 2:
        pytest.skip("engine 1 has no one-call layers")
    rows = long_rows(tiny, 3)
    narrow = Engine(tiny, threads=1, window=16, sink=4, kv8=kv8)
    one = [digest(uneven(narrow, rows)), digest(speculative(narrow, rows, 0)), digest(uneven(narrow, rows[1:2]))]
    parts = []
    part = layerstep.layer_part
    monkeypatch.setattr(layerstep, "layer_part", lambda *a: (parts.append(a[1]), part(*a))[1])
    tables_part, table_parts = layerstep.tables_part, []
    monkeypatch.setattr(layerstep, "tables_part", lambda *a: (table_parts.append(a[1]), tables_part(*a))[1])
    monkeypatch.setattr(Pacer, "choose", lambda self: self.threads)  # always wide
    for threads in (2, 3):
        e = Engine(tiny, threads=threads, window=16, sink=4, kv8=kv8)
        assert [digest(uneven(e, rows)), digest(speculative(e, rows, 0)), digest(uneven(e, rows[1:2]))] == one
    assert set(parts) == set(table_parts) == {2, 3}


def test_a_failing_part_stops_the_others():
    """Where one of the threads side by side fails, the others stop at their next meeting instead of waiting
    for it, and its error comes out of threads.side_by_side; partners running another caller's jobs say so."""
    from lmcodec.engine import barrier
    from lmcodec.engine import threads as th
    from lmcodec.jit import jit

    @jit
    def meetings(sync, t, n, rounds):
        for k in range(1, rounds + 1):
            if not barrier.meet(sync, t, n, k):
                return k
        return 0

    sync = barrier.new(3)
    stopped = []

    def fails() -> None:
        meetings(sync, 0, 3, 5)  # the others are there for these
        raise MemoryError("no room")

    with pytest.raises(MemoryError):
        th.side_by_side([fails] + [lambda t=t: stopped.append(meetings(sync, t, 3, 10**6)) for t in (1, 2)],
                        lambda: barrier.fail(sync))
    assert len(stopped) == 2 and set(stopped) <= {5, 6}  # gave up as soon as it failed, not after 10**6 rounds

    inner = []
    assert th.side_by_side([lambda: inner.append(th.side_by_side([lambda: None, lambda: None], lambda: None)),
                            lambda: None], lambda: None)
    assert inner == [False]


def test_a_failing_task_stops_the_pool():
    """Once a task of threads.parallel raises (an interrupt, an error), no thread starts another: an interrupted
    pass ends at once instead of computing the rest of its blocks first; the error comes out."""
    from lmcodec.engine import threads as th

    ran = []

    def task(i: int) -> None:
        ran.append(i)
        if i == 0:
            raise KeyboardInterrupt
        time.sleep(0.01)

    with th.scope(2, 1), pytest.raises(KeyboardInterrupt):
        th.parallel([lambda i=i: task(i) for i in range(200)])
    assert 0 in ran and len(ran) < 50  # not the other thread going on through the 199 others
