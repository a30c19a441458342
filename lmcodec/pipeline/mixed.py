"""Coder 1 versions 2 and 3 (spec/mixer.md): lm frames of symbols, each coded with the model's table mixed with the
frame's online models (lmcodec.coding.mixer), the model attending to a bounded window.

Encoding runs the engine's full pass over each frame's fed symbols (the tokens the model sees) and codes every
symbol with the table of the last fed one; decoding runs the incremental pass, one fed symbol at a time, each
frame at its own pace (a frame in a run of repeats or raw bytes needs no model step).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np

import lmz

from ..coding import mixer as mx
from ..coding import rangecoder
from ..engine import SPEC_SLOTS, DecodeState, Engine
from ..engine import threads as th
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
    seq = np.full((len(syms), width), engine.bos_id, np.int64)
    for i, f in enumerate(fed):
        seq[i, 1: 1 + len(f)] = f
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


class _Frame:
    """One lm frame being decoded: its online models, range decoder, the model's table for its next symbol, and
    the guesses fed to the model after that symbol (each with its table)."""

    def __init__(self, index: int, frame: lmz.Frame) -> None:
        self.index, self.frame = index, frame
        self.st = mx.new_frame(frame.raw_length)
        self.payload = np.frombuffer(frame.payload, dtype=np.uint8)
        self.dec = rangecoder.decoder_state()
        rangecoder.start(self.dec, self.payload)
        self.current: np.ndarray | None = None
        self.ahead: list[tuple[int, np.ndarray]] = []

    def content(self, tokenizer: ByteTokenizer) -> bytes | lmz.LmzError:
        """The decoded bytes (not yet verified against the frame's checks), or the error that says they are not
        the frame's length."""
        raw = tokenizer.decode(self.st.hist[: self.st.sc[mx.S_T]].tolist())
        return raw if len(raw) == self.frame.raw_length else lmz.ChecksumError(
            f"{self.frame.where}: lm payload does not decode to {self.frame.raw_length} bytes")


class _Group:
    """Frames decoded side by side over one DecodeState, frame self.frames[r] in its row r; self.todo: the rows
    whose frames await a model step (all but the complete ones)."""

    def __init__(self, engine: Engine, frames: list[_Frame], state: DecodeState | None = None) -> None:
        self.engine, self.frames = engine, frames
        self.state = state
        self.todo = list(range(len(frames))) if state is not None else []
        self.seconds = {"engine": 0.0, "coding": 0.0}
        self.counts = {"steps": 0, "guessed": 0, "kept": 0}
        self.wide = False  # running alone: its steps may use every kernel thread (_Board.offer says)
        self.handed = False  # handed its frames over to another group (_Board.offer): its run stops

    def split(self) -> "_Group":
        """A new group of the later half of the frames that await steps, with their rows of the caches; this one
        keeps the others. Frames are independent, so where a frame decodes does not change its tables."""
        half = len(self.todo) // 2
        give, keep = self.todo[half:], self.todo[:half]
        other = _Group(self.engine, [self.frames[r] for r in give], self.state.take(give))
        self.state.keep(keep)
        self.frames, self.todo = [self.frames[r] for r in keep], list(range(len(keep)))
        return other

    def merge(self, other: "_Group") -> None:
        """Take in the frames of another group that await steps, with their rows of the caches, after this one's
        (those whose frames are complete are dropped from both)."""
        for g in (self, other):
            g.state.keep(g.todo)
            g.frames, g.todo = [g.frames[r] for r in g.todo], list(range(len(g.todo)))
        self.state.absorb(other.state)
        self.todo += [len(self.frames) + r for r in other.todo]
        self.frames += other.frames
        other.frames, other.todo, other.state = [], [], None  # its measures stay its own: it ran (decode_batch)

    def run(self, tokenizer: ByteTokenizer, speculate: bool, report: Callable[["_Group"], None] | None = None,
            offer: Callable[["_Group"], None] | None = None) -> None:
        """Decode until every frame is complete. Between steps, report(self) (if given) sees the bytes decoded,
        and offer(self) (if given) may split frames off (split()); it returns False when the decoding failed in
        another group, and this one stops."""
        e, frames = self.engine, self.frames
        nv, lens = e.vocab_size, tokenizer.symbol_lengths
        if self.state is None:  # a new group: every frame starts with the model's table after BOS
            n = len(frames)
            self.state = e.start(n)
            t = time.perf_counter()
            tables = self.state.step(np.full(n, e.bos_id, np.int64))
            self.seconds["engine"] += time.perf_counter() - t
            for r, f in enumerate(frames):
                f.current = tables[r]
            self.todo = list(range(n))
        guess = np.zeros(SPEC_SLOTS, dtype=np.int64)
        while self.todo:
            if offer is not None:
                if not offer(self) or self.handed:
                    return
                frames = self.frames
            t = time.perf_counter()
            ent_rows, ent_toks, back_rows, back_pos = [], [], [], []
            for i in self.todo:
                f = frames[i]
                st = f.st
                while mx.decode_run(f.current, nv, f.payload, f.dec, lens, f.frame.raw_length, st):
                    tok = int(st.hist[st.sc[mx.S_T] - 1])  # fed to the model: its table comes next
                    if f.ahead and f.ahead[0][0] == tok:
                        f.current = f.ahead.pop(0)[1]  # guessed right: that table is the one
                        self.counts["kept"] += 1
                        continue
                    if f.ahead:  # guessed wrong: the positions from this one on are fed again
                        back_rows.append(i)
                        back_pos.append(int(self.state.pos[i]) - len(f.ahead))
                        f.ahead = []
                    k = mx.draft(st, nv, guess) if speculate else 0
                    ent_rows += [i] * (1 + k)
                    ent_toks += [tok] + guess[:k].tolist()
                    break
            if report is not None:
                report(self)
            self.seconds["coding"] += time.perf_counter() - t
            if not ent_rows:
                break
            t = time.perf_counter()
            if back_rows:
                self.state.rewind(np.array(back_rows), np.array(back_pos))
            with th.released() if self.wide else nullcontext():
                tables = self.state.step(np.array(ent_toks, np.int64), np.array(ent_rows))
            self.seconds["engine"] += time.perf_counter() - t
            self.counts["steps"] += 1
            self.todo = list(dict.fromkeys(ent_rows))
            j = 0
            for i in self.todo:
                k = ent_rows.count(i) - 1
                frames[i].current = tables[j]
                frames[i].ahead = list(zip(ent_toks[j + 1: j + 1 + k], tables[j + 1: j + 1 + k]))
                self.counts["guessed"] += k
                j += 1 + k
        self.todo, self.state = [], None  # the caches go now, not when the last group is done


class _Board:
    """Where the threads decoding groups side by side meet.

    A thread whose group is complete waits here, and a group with two frames or more to go, offered between its
    steps, splits off half of them for it (else one core would idle while the last group finishes its longest
    frames). Once MERGE_AT frames or fewer are left over all groups, the groups merge into one instead, handing
    their frames to the first that comes along after them, and that group's steps use every thread (side by
    side in each layer, layerstep.layer_part): a step over all the frames left then costs less than a step
    over each part of them on a thread of its own (2 cores, context 1,024: 10.2 ms for 2 frames side by side,
    13.9 ms for 2 on one thread; 8 frames on one thread 26.9, on both 18.3)."""

    WAIT = 0.05  # seconds an idle thread sleeps between looks at the groups still running
    MERGE_AT = 5

    def __init__(self, groups: list[_Group]) -> None:
        self.cond = threading.Condition()
        self.idle = 0
        self.waiting: list[_Group] = []  # split off, not yet taken
        self.handed: list[_Group] = []  # handed over for merging, not yet taken in
        self.running = set(groups)
        self.merging = False
        self.failed = False

    def _left(self) -> int:
        return sum(len(g.todo) for g in self.running)

    def offer(self, group: _Group) -> bool:
        """_Group.run's offer, under the lock only when something may change: the group takes in the frames
        handed over, hands its own over, or splits for a waiting thread. False once a group has failed."""
        if self.handed or (self.merging or self._left() <= self.MERGE_AT) and not group.wide or (
                self.idle > len(self.waiting) and len(group.todo) >= 2 and not self.merging):
            with self.cond:
                if self.failed:
                    return False
                self.merging = self.merging or self._left() <= self.MERGE_AT
                if self.handed:
                    for other in self.handed:
                        group.merge(other)
                    self.handed.clear()
                if self.merging:
                    if len(self.running) > 1:  # another group goes on: this one hands its frames to it
                        self.running.discard(group)
                        self.handed.append(group)
                        group.handed = True
                    else:
                        group.wide = True
                elif self.idle > len(self.waiting) and len(group.todo) >= 2:
                    new = group.split()
                    self.waiting.append(new)
                    self.running.add(new)
                    self.cond.notify_all()
        return not self.failed

    def next(self, done: _Group | None) -> _Group | None:
        """The group a thread takes once `done` is complete, handed over or failed (None): one split off for it,
        or the frames handed over where no group is left to take them in; None when there is nothing for it."""
        with self.cond:
            self.running.discard(done)
            if done is None:
                self.failed = True
            self.idle += 1
            self.cond.notify_all()
            try:
                while not self.failed:
                    if self.waiting:
                        return self.waiting.pop()
                    if self.handed and not self.running:
                        group = self.handed.pop()
                        group.handed = False
                        self.running.add(group)
                        return group
                    if self.merging or not any(len(g.todo) >= 2 for g in self.running):
                        return None
                    self.cond.wait(self.WAIT)
                return None
            finally:
                self.idle -= 1


def decode_batch(engine: Engine, tokenizer: ByteTokenizer, frames: list[lmz.Frame],
                 seconds: dict[str, float], progress: Callable[[int], None] | None = None,
                 speculate: bool = True, counts: dict[str, int] | None = None,
                 groups: int = 1) -> list[bytes | lmz.LmzError]:
    """The content of lm frames decoded side by side (not yet verified against their checks); in place of a
    frame whose payload does not decode to its length, the error that says so (the others are still given).

    With groups > 1 the frames decode in that many groups, each on a thread of the kernel pool (the caller's
    th.scope gives their number), a thread whose group is complete taking over half of another's frames that
    remain (_Board). Frames are independent, so the groups and their splits change no table.

    With speculate, a frame whose match model is following a repeat it trusts (mixer.draft) feeds the model the
    tokens the repeat goes on with, as guesses, in the same step as its next token: each right guess's table is
    then at hand without a step of its own. The tables are the same either way (the engine's passes agree on
    every position), so the output is too; only the number of steps changes (counts, if given, gets the model
    steps, the guesses fed and the guesses kept added to "steps", "guessed" and "kept").

    progress, if given, is called after every step of a group with the bytes of these frames decoded so far."""
    todo = [_Frame(i, f) for i, f in enumerate(frames)]
    groups = max(1, min(groups, len(todo)))
    cuts = [len(todo) * g // groups for g in range(groups + 1)]
    parts = [_Group(engine, todo[cuts[g]: cuts[g + 1]]) for g in range(groups)]
    done_bytes = np.zeros(len(todo), dtype=np.int64)
    lock = threading.Lock()
    reported = [0]

    def report(group: _Group) -> None:
        with lock:  # so that the total only grows
            for f in group.frames:
                done_bytes[f.index] = f.st.sc[mx.S_BYTES]
            total = int(done_bytes.sum())
            if total > reported[0]:
                reported[0] = total
                progress(total)

    board = _Board(parts) if groups > 1 else None
    ran: dict[_Group, None] = {}  # every group that ran, once (one handed over may run again)

    def decode(g: int) -> None:
        group: _Group | None = parts[g]
        while group is not None:
            with lock:
                ran[group] = None
            try:
                group.run(tokenizer, speculate, report if progress is not None else None,
                          board.offer if board is not None else None)
            except BaseException:
                if board is not None:
                    board.next(None)
                raise
            group = board.next(group) if board is not None else None

    th.parallel([lambda g=g: decode(g) for g in range(groups)])
    for group in ran:
        for k, v in group.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
        if counts is not None:
            for k, v in group.counts.items():
                counts[k] = counts.get(k, 0) + v
    return [f.content(tokenizer) for f in todo]
