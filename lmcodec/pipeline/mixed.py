"""Coder 1 version 2 (spec/mixer.md): lm frames of symbols, each coded with the model's table mixed with the
frame's online models (lmcodec.coding.mixer), the model attending to a bounded window.

Encoding runs the engine's full pass over each frame's fed symbols (the tokens the model sees) and codes every
symbol with the table of the last fed one; decoding runs the incremental pass, one fed symbol at a time, each
frame at its own pace (a frame in a run of repeats or raw bytes needs no model step).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

import lmz

from ..coding import mixer as mx
from ..coding import rangecoder
from ..engine import SPEC_SLOTS, Engine
from .tokens import ByteTokenizer


def encode_batch(engine: Engine, symbol_lists: list[list[int]], seconds: dict[str, float],
                 progress: Callable[[float], None] | None = None,
                 variants: tuple[int, ...] = (mx.ALL,)) -> tuple[list[list[bytes]], list[float]]:
    """(lm payloads of the frames, ideal code length in bits of them all), one of each per variant: the mixer
    flags to code with. Variants share the engine's pass (the model sees the same tokens whatever the online
    models do), so the ablation benchmark measures several at the cost of one; any but mixer.ALL leave online
    models out and are not decodable."""
    nv = engine.vocab_size
    syms = [np.asarray(s, dtype=np.int64) for s in symbol_lists]
    fed = [s[mx.fed_mask(s, nv)] for s in syms]
    width = max(len(f) for f in fed) + 1
    seq = torch.full((len(syms), width), engine.bos_id, dtype=torch.long)
    for i, f in enumerate(fed):
        seq[i, 1: 1 + len(f)] = torch.from_numpy(f)
    coders = [[_FrameCoder(len(s), flags) for s in syms] for flags in variants]
    bits = [np.zeros(1, dtype=np.int64) for _ in variants]
    passes = engine.full_tables(seq, progress=progress, lengths=[len(f) + 1 for f in fed])
    while True:
        t = time.perf_counter()
        j0, tables = next(passes, (None, None))
        seconds["engine"] += time.perf_counter() - t
        if j0 is None:
            break
        t = time.perf_counter()
        tables = tables.cpu().numpy()
        j1 = j0 + tables.shape[1]
        for v, row in enumerate(coders):
            for i, (s, c) in enumerate(zip(syms, row)):
                st = c.state
                while st.sc[mx.S_T] < len(s) and j0 <= st.sc[mx.S_FED] < j1:
                    mx.encode_run(tables[i, st.sc[mx.S_FED] - j0], nv, s, len(s), c.enc, c.out, st, bits[v])
        seconds["coding"] += time.perf_counter() - t
    return [[c.finish() for c in row] for row in coders], [b[0] / 65536 for b in bits]


class _FrameCoder:
    """One frame's online models and range encoder."""

    def __init__(self, symbols: int, flags: int) -> None:
        self.state = mx.new_frame(symbols, flags)
        self.enc = rangecoder.encoder_state()
        self.out = rangecoder.output_buffer(symbols)

    def finish(self) -> bytes:
        return bytes(self.out[: rangecoder.finish(self.enc, self.out)])


def decode_batch(engine: Engine, tokenizer: ByteTokenizer, frames: list[lmz.Frame],
                 seconds: dict[str, float], progress: Callable[[int], None] | None = None,
                 speculate: bool = True, counts: dict[str, int] | None = None) -> list[bytes | lmz.LmzError]:
    """The content of lm frames decoded side by side (not yet verified against their checks); in place of a
    frame whose payload does not decode to its length, the error that says so (the others are still given).

    With speculate, a frame whose match model is following a repeat it trusts (mixer.draft) feeds the model the
    tokens the repeat goes on with, as guesses, in the same step as its next token: each right guess's table is
    then at hand without a step of its own. The tables are the same either way (the engine's passes agree on
    every position), so the output is too; only the number of steps changes (counts, if given, gets the model
    steps, the guesses fed and the guesses kept added to "steps", "guessed" and "kept")."""
    nv = engine.vocab_size
    lens = tokenizer.symbol_lengths
    n = len(frames)
    states = [mx.new_frame(f.raw_length) for f in frames]
    payloads = [np.frombuffer(f.payload, dtype=np.uint8) for f in frames]
    decs = [rangecoder.decoder_state() for _ in frames]
    for d, p in zip(decs, payloads):
        rangecoder.start(d, p)
    need = [f.raw_length for f in frames]
    state = engine.start(n)
    t = time.perf_counter()
    tables = state.step(torch.full((n,), engine.bos_id, dtype=torch.long)).cpu().numpy()
    seconds["engine"] += time.perf_counter() - t
    current = [tables[i] for i in range(n)]  # each frame's model table for its next symbol
    ahead: list[list[tuple[int, np.ndarray]]] = [[] for _ in frames]  # guesses fed, with their tables
    guess = np.zeros(SPEC_SLOTS, dtype=np.int64)
    steps = guessed = kept = 0
    todo = list(range(n))
    while todo:
        t = time.perf_counter()
        ent_rows, ent_toks, back_rows, back_pos = [], [], [], []
        for i in todo:
            st = states[i]
            while mx.decode_run(current[i], nv, payloads[i], decs[i], lens, need[i], st):
                tok = int(st.hist[st.sc[mx.S_T] - 1])  # fed to the model: its table comes next
                if ahead[i] and ahead[i][0][0] == tok:
                    current[i] = ahead[i].pop(0)[1]  # guessed right: that table is the one
                    kept += 1
                    continue
                if ahead[i]:  # guessed wrong: the positions from this one on are fed again
                    back_rows.append(i)
                    back_pos.append(int(state.pos[i]) - len(ahead[i]))
                    ahead[i] = []
                k = mx.draft(st, nv, guess) if speculate else 0
                ent_rows += [i] * (1 + k)
                ent_toks += [tok] + guess[:k].tolist()
                break
        if progress is not None:
            progress(sum(int(st.sc[mx.S_BYTES]) for st in states))
        seconds["coding"] += time.perf_counter() - t
        if not ent_rows:
            break
        t = time.perf_counter()
        if back_rows:
            state.rewind(np.array(back_rows), np.array(back_pos))
        tables = state.step(torch.tensor(ent_toks, dtype=torch.long), np.array(ent_rows)).cpu().numpy()
        seconds["engine"] += time.perf_counter() - t
        steps += 1
        todo = list(dict.fromkeys(ent_rows))
        j = 0
        for i in todo:
            k = ent_rows.count(i) - 1
            current[i] = tables[j]
            ahead[i] = list(zip(ent_toks[j + 1: j + 1 + k], tables[j + 1: j + 1 + k]))
            guessed += k
            j += 1 + k
    if counts is not None:
        for key, v in (("steps", steps), ("guessed", guessed), ("kept", kept)):
            counts[key] = counts.get(key, 0) + v
    out: list[bytes | lmz.LmzError] = []
    for f, st in zip(frames, states):
        raw = tokenizer.decode(st.hist[: st.sc[mx.S_T]].tolist())
        out.append(raw if len(raw) == f.raw_length else lmz.ChecksumError(
            f"{f.where}: lm payload does not decode to {f.raw_length} bytes"))
    return out
