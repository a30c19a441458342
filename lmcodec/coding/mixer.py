"""Coder 1 version 2: the language model's table mixed, per symbol, with exact online models (spec/mixer.md).

Each frame codes a sequence of symbols: model tokens (0 .. V-1) and raw bytes (V + b, for bytes the vocabulary
cannot spell). For every symbol the predictor turns the model's table P (from the engine) and what was already
coded in the same frame into one frequency table F over all V + 256 symbols, summing to 2**28, every entry >= 1:

  * candidates: the model's most likely token, the match model's prediction (the symbol that followed the last
    occurrence of the current context of MATCH_MIN symbols) and each n-gram order's prediction (the symbol that
    last followed the context of the previous k symbols, k = 1..4, in hashed tables of fixed size);
  * a logistic mixer (integer weights, lpaq-style stretch/squash tables) estimates, for each candidate, the
    probability that it is the next symbol, from the model's probability for it, the match model's and the
    n-gram models' adaptive confidences and an adaptive calibration of the model's top choice (the bias);
  * the candidates get those probabilities; every other token shares the rest in proportion to P; raw bytes get
    a small adaptive share.

After the symbol is coded every model learns from it. Only integers, so encoder and decoder agree everywhere.
The kernels run under numba; without numba the same Python functions run interpreted (same integers, slowly).
Symbols are coded with the range coder of rangecoder.py (spec/coder.md), from inside the same compiled loops.

Layout, as lpaq1 lays out its models: one section per online model (match, n-gram, calibration, escape) and
the mixer, each a few compiled functions over its named parts of the frame's FrameState with the contract in
the section's comment (what it predicts, the input it gives the mixer, how it learns); predict() and update()
compose them; cum_freq() and find() read the table predict() made; encode_run() and decode_run() are
a frame's loops, draft() the guesses for speculative decoding.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..jit import jit
from ..scan import SCAN, first_max
from ..tables import TOTAL, TOTAL_BITS
from . import rangecoder as rc

RAW_SYMBOLS = 256  # symbols V .. V+255 spell single raw bytes
MATCH_MIN = 4  # symbols of context the match model hashes
MATCH_BITS = 18  # match model hash table: 2**18 positions
MATCH_MAX = 32  # a found match's length is measured up to this many symbols back
ORDERS = 4  # n-gram orders 1..4
NGRAM_BITS = 16  # slots per order
# mixer inputs, by slot of x: the model's probability, the match model's confidence, each n-gram order's
# confidence (X_ORDER + k - 1 for order k), the calibration of the model's top choice, and a bias
X_MODEL, X_MATCH, X_ORDER = 0, 1, 2
X_TOP, X_BIAS = X_ORDER + 4, X_ORDER + 5
NIN = X_BIAS + 1
WSETS = 4  # weight sets: (candidate is the model's top) x (candidate is the match prediction)
MAX_CAND = 6
LEARN = 1  # mixer learning rate (tuned on 6 texts of 16 KiB: 6 lost 0.2%, 1 gained 0.7% over no mixer)
LEARN_SHIFT = 10  # a weight moves by input * error * LEARN / 2**LEARN_SHIFT
W_BITS = 16  # mixer weights are fixed point with 16 fractional bits
P_BITS = 16  # the adaptive chances (pm, pn, ptop) are fixed point with 16 bits
SQUASH_BITS = 12  # squash gives probabilities of 12 bits
RATE = 4  # adaptive counters move 1/16 of the way per observation
COUNTS = 16  # n-gram confidences by count 0..15
BUCKETS = 16  # calibration by 16 buckets of the model's top probability
ESC_UNIT = 1 << 12  # the escape share: ESC_UNIT (1 + ESC_PER_RAW * raw bytes seen so far), at most ESC_MAX
ESC_PER_RAW = 256
ESC_MAX = 1 << 21
REST_MIN = 1 << 20  # the candidates leave at least 2**-8 of the mass to the rest (and the escape share)
RUN_FEED = 8  # of a run of one repeated token, only the first RUN_FEED are fed to the language model
HASH_MUL = 0x2F0F1A3B  # the context hash's multiplier
MATCH_SEED = 0x9E3779B9  # the match model's hash seed (an n-gram order's seed is its order)
NG_CHECK, NG_SYMBOL, NG_COUNT = range(3)  # an n-gram slot: check of its context, symbol + 1 seen next, count
NG_FIELDS = 3
NG_COUNT_MAX = 255
BIAS_INPUT = 256  # the bias input's constant value
BUCKET_SHIFT = SQUASH_BITS - 4  # BUCKETS = 16 buckets of a 12-bit stretch (shifted to 0 .. 4095)

# squash(x) = 4096 / (1 + e^-(x/256)) on x in [-2047, 2047], by interpolation in this table (spec/mixer.md)
_SQUASH_POINTS = np.array([1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994,
                           3348, 3607, 3785, 3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094],
                          dtype=np.int64)


def _squash_table() -> np.ndarray:
    out = np.empty(4095, dtype=np.int64)
    for x in range(-2047, 2048):
        w, d = x & 127, (x >> 7) + 16
        out[x + 2047] = (_SQUASH_POINTS[d] * (128 - w) + _SQUASH_POINTS[d + 1] * w + 64) >> 7
    return out


def _stretch_table(squash: np.ndarray) -> np.ndarray:
    """stretch(p) for p in 0..4095: the smallest x whose squash is >= p (2047 past the last)."""
    out = np.full(4096, 2047, dtype=np.int64)
    pi = 0
    for x in range(-2047, 2048):
        v = int(squash[x + 2047])
        for j in range(pi, v + 1):
            out[j] = x
        pi = max(pi, v + 1)
    return out


SQUASH = _squash_table()
STRETCH = _stretch_table(SQUASH)

# scalar state, one int64 array per frame: indices
S_T, S_MPTR, S_MLEN, S_NRAW, S_FED, S_RUN, S_BYTES, S_FLAGS = range(8)
N_SCALARS = 8

# Which online models take part (sc[S_FLAGS]). Streams always use ALL; the others exist for the ablation
# benchmark (tools/bench_mix.py), which measures what each part is worth. They are not in any stream's header.
USE_MATCH, USE_NGRAM, USE_BIAS, USE_LEARN = 1, 2, 4, 8
ALL = USE_MATCH | USE_NGRAM | USE_BIAS | USE_LEARN


class FrameState(NamedTuple):
    """A frame's online models and mixer, of fixed size whatever the input (spec/mixer.md). Compiled code takes
    the whole tuple as one argument (numba passes a NamedTuple of arrays), and each function below names the
    parts it reads or learns in."""

    hist: np.ndarray  # the frame's symbols so far
    sc: np.ndarray  # its scalars, at the S_* slots
    mtab: np.ndarray  # match model: hash of the last MATCH_MIN symbols -> position + 1 of what followed them
    pm: np.ndarray  # match model: chance (2**-16) that its prediction is right, by match length
    ngram: np.ndarray  # n-gram models: per order and slot, the NG_* fields
    pn: np.ndarray  # n-gram models: chance that an order's prediction is right, by its count
    orders: np.ndarray  # n-gram models: each order's prediction for the next symbol, -1 for none
    slots: np.ndarray  # n-gram models: each order's slot for the current context, -1 for none
    ptop: np.ndarray  # calibration: chance that the model's top choice is right, by its probability
    raw: np.ndarray  # escape: raw-byte symbols seen, by value
    w: np.ndarray  # mixer: weights (WSETS, NIN), 2**-16
    x: np.ndarray  # mixer: each candidate's inputs, at the X_* slots
    pc: np.ndarray  # mixer: each candidate's probability (12 bits)
    ws: np.ndarray  # mixer: each candidate's weight set
    cand: np.ndarray  # the candidates for the next symbol
    mass: np.ndarray  # their masses in the table
    order: np.ndarray  # candidate indices by ascending symbol


def new_frame(max_symbols: int, flags: int = ALL) -> FrameState:
    """The state a frame of at most max_symbols symbols starts from."""
    half = 1 << (P_BITS - 1)
    sc = np.zeros(N_SCALARS, dtype=np.int64)
    sc[S_FLAGS] = flags
    w = np.zeros((WSETS, NIN), dtype=np.int64)
    w[:, X_MODEL] = 1 << W_BITS  # at first the mixer trusts the model alone
    return FrameState(
        hist=np.zeros(max_symbols + 1, dtype=np.int64), sc=sc,
        mtab=np.zeros(1 << MATCH_BITS, dtype=np.int64), pm=np.full(MATCH_MAX + 1, half, dtype=np.int64),
        ngram=np.zeros((ORDERS, 1 << NGRAM_BITS, NG_FIELDS), dtype=np.int64),
        pn=np.full((ORDERS, COUNTS), half, np.int64),
        orders=np.zeros(ORDERS, dtype=np.int64), slots=np.zeros(ORDERS, dtype=np.int64),
        ptop=np.full(BUCKETS, half, dtype=np.int64), raw=np.zeros(RAW_SYMBOLS, dtype=np.int64), w=w,
        x=np.zeros((MAX_CAND, NIN), dtype=np.int64), pc=np.zeros(MAX_CAND, dtype=np.int64),
        ws=np.zeros(MAX_CAND, dtype=np.int64), cand=np.zeros(MAX_CAND, dtype=np.int64),
        mass=np.zeros(MAX_CAND, dtype=np.int64), order=np.zeros(MAX_CAND, dtype=np.int64))


# ---- shared arithmetic --------------------------------------------------------------------------------------

@jit
def _hash(hist, t, k, seed):
    """32-bit hash of the k symbols before position t (hist[t-k .. t-1])."""
    h = seed
    for i in range(t - k, t):
        h = ((h * HASH_MUL) + hist[i] + 1) & 0xFFFFFFFF
    return h


@jit
def _st(p16, stretch):
    """stretch of a P_BITS probability, via its SQUASH_BITS value clamped to 1..4095."""
    return stretch[min(max(p16 >> (P_BITS - SQUASH_BITS), 1), 4095)]


@jit
def _squash(x, squash):
    return squash[min(max(x, -2047), 2047) + 2047]


@jit
def _learn(p, y):
    """An adaptive chance (P_BITS) moves 1/2**RATE of the way towards y (1: it was right, 0: wrong)."""
    return p + (((y << P_BITS) - p) >> RATE)


STRETCH_G = STRETCH  # numba reads module globals as constants
SQUASH_G = SQUASH


# ---- match model -------------------------------------------------------------------------------------------
# Predicts the symbol that followed the last occurrence of the current context of MATCH_MIN symbols, while the
# symbols after it keep agreeing. State: mtab (context hash -> position after it), sc[S_MPTR] (the position
# whose symbol it predicts, 0: none), sc[S_MLEN] (the match's length), pm (chance it is right, by length).
#   match_predict(st) -> the predicted symbol or -1;   match_input(st) -> its mixer input (a stretch);
#   match_learn(st, mpred, s): pm learns whether mpred was s;
#   match_follow(st, mpred, s): after s joined the history, the match goes on or ends, and a new one is
#   looked up (and the context's position recorded) in mtab.

@jit
def match_predict(st):
    if st.sc[S_MPTR] > 0 and st.sc[S_FLAGS] & USE_MATCH:
        return st.hist[st.sc[S_MPTR]]
    return -1


@jit
def match_input(st, stretch):
    return _st(st.pm[min(st.sc[S_MLEN], MATCH_MAX)], stretch)


@jit
def match_learn(st, mpred, s):
    if mpred >= 0:
        lb = min(st.sc[S_MLEN], MATCH_MAX)
        st.pm[lb] = _learn(st.pm[lb], 1 if mpred == s else 0)


@jit
def match_follow(st, mpred, s):
    hist, sc, mtab = st.hist, st.sc, st.mtab
    t = sc[S_T]
    if sc[S_MPTR] > 0:
        if mpred == s:
            sc[S_MLEN] += 1
            sc[S_MPTR] += 1
        else:
            sc[S_MLEN] = 0
            sc[S_MPTR] = 0
    if t >= MATCH_MIN:
        h = _hash(hist, t, MATCH_MIN, MATCH_SEED) >> (32 - MATCH_BITS)
        if sc[S_MPTR] == 0 and mtab[h] > 0:
            p = mtab[h]
            m = 0
            while m < MATCH_MAX and m < p and hist[p - 1 - m] == hist[t - 1 - m]:
                m += 1
            if m >= MATCH_MIN:
                sc[S_MPTR] = p
                sc[S_MLEN] = m
        mtab[h] = t


# ---- n-gram models -----------------------------------------------------------------------------------------
# Order k (1..ORDERS) predicts the symbol that last followed the previous k symbols, from a hashed table of
# 2**NGRAM_BITS slots (NG_* fields). pn holds each order's chance of being right, by the slot's count.
#   ngram_predict(st): each order's prediction (orders, -1: none) and slot (slots, -1: none) for position t;
#   ngram_input(st, k) -> order k+1's mixer input (a stretch);
#   ngram_learn(st, s): pn learns whether each prediction was s, then each order's slot learns s.

@jit
def ngram_predict(st):
    hist, ngram, orders, slots = st.hist, st.ngram, st.orders, st.slots
    t = st.sc[S_T]
    for k in range(ORDERS, 0, -1):
        orders[k - 1] = -1
        if t >= k and st.sc[S_FLAGS] & USE_NGRAM:
            h = _hash(hist, t, k, k)
            slot = h >> (32 - NGRAM_BITS)
            slots[k - 1] = slot
            if ngram[k - 1, slot, NG_CHECK] == (h & 0xFFFF) + 1 and ngram[k - 1, slot, NG_SYMBOL] > 0:
                orders[k - 1] = ngram[k - 1, slot, NG_SYMBOL] - 1
        else:
            slots[k - 1] = -1


@jit
def ngram_input(st, k, stretch):
    return _st(st.pn[k, min(st.ngram[k, st.slots[k], NG_COUNT], COUNTS - 1)], stretch)


@jit
def ngram_learn(st, s):
    hist, ngram, pn, orders, slots = st.hist, st.ngram, st.pn, st.orders, st.slots
    t = st.sc[S_T]
    for k in range(ORDERS):
        if orders[k] >= 0:
            cnt = min(ngram[k, slots[k], NG_COUNT], COUNTS - 1)
            pn[k, cnt] = _learn(pn[k, cnt], 1 if orders[k] == s else 0)
    for k in range(ORDERS):
        slot = slots[k]
        if slot < 0:
            continue
        chk = (_hash(hist, t, k + 1, k + 1) & 0xFFFF) + 1
        if ngram[k, slot, NG_CHECK] != chk:
            ngram[k, slot, NG_CHECK] = chk
            ngram[k, slot, NG_SYMBOL] = s + 1
            ngram[k, slot, NG_COUNT] = 1
        elif ngram[k, slot, NG_SYMBOL] == s + 1:
            ngram[k, slot, NG_COUNT] = min(ngram[k, slot, NG_COUNT] + 1, NG_COUNT_MAX)
        elif ngram[k, slot, NG_COUNT] > 1:
            ngram[k, slot, NG_COUNT] >>= 1
        else:
            ngram[k, slot, NG_SYMBOL] = s + 1
            ngram[k, slot, NG_COUNT] = 1


# ---- calibration of the model's top choice -----------------------------------------------------------------
# ptop: the chance that the model's most likely token is right, by BUCKETS buckets of its probability.
#   top_bucket(f) -> the bucket of a model frequency f;   top_input(st, f) -> the mixer input for the top;
#   top_learn(st, f, hit): the bucket learns whether the top choice was right.

@jit
def top_bucket(f):
    return (_st(f >> (TOTAL_BITS - P_BITS), STRETCH_G) + 2048) >> BUCKET_SHIFT


@jit
def top_input(st, f, stretch):
    return _st(st.ptop[top_bucket(f)], stretch) if st.sc[S_FLAGS] & USE_BIAS else 0


@jit
def top_learn(st, f, hit):
    b = top_bucket(f)
    st.ptop[b] = _learn(st.ptop[b], hit)


# ---- escape: raw bytes -------------------------------------------------------------------------------------
# Raw-byte symbols share an escape mass that grows with the raw bytes seen (sc[S_NRAW], by value in raw).

@jit
def escape_mass(st):
    return min(ESC_MAX, ESC_UNIT * (1 + ESC_PER_RAW * st.sc[S_NRAW]))


@jit
def escape_learn(st, s, nv):
    if s >= nv:
        st.raw[s - nv] += 1
        st.sc[S_NRAW] += 1


# ---- the mixer ---------------------------------------------------------------------------------------------
# One probability per candidate: squash of the dot product of its inputs (x, the X_* slots) with the weight set
# ws chosen by whether it is the model's top choice and the match prediction.
#   mix(st, j) -> candidate j's probability (SQUASH_BITS);   mixer_learn(st, n, s): every used weight set
#   moves along its inputs by the error of each candidate's probability.

@jit
def mix(st, j, squash):
    dot = 0
    for i in range(NIN):
        dot += st.w[st.ws[j], i] * st.x[j, i]
    return min(max(_squash(dot >> W_BITS, squash), 1), 4095)


@jit
def mixer_learn(st, n, s):
    if not st.sc[S_FLAGS] & USE_LEARN:
        return
    w, x, ws, pc, cand = st.w, st.x, st.ws, st.pc, st.cand
    for j in range(n):
        err = (((1 if cand[j] == s else 0) << SQUASH_BITS) - pc[j]) * LEARN
        for i in range(NIN):
            w[ws[j], i] += (x[j, i] * err) >> LEARN_SHIFT


# ---- history and runs --------------------------------------------------------------------------------------

@jit
def history_push(st, s, nv):
    """s joins the history; returns 1 if it is fed to the language model (a token, and not the RUN_FEED-th or
    later copy in a run of one repeated symbol), else 0."""
    hist, sc = st.hist, st.sc
    t = sc[S_T]
    hist[t] = s
    sc[S_T] = t + 1
    if t >= 1 and hist[t - 1] == s:
        sc[S_RUN] += 1
    else:
        sc[S_RUN] = 1
    fed = 1 if (s < nv and sc[S_RUN] <= RUN_FEED) else 0
    sc[S_FED] += fed
    return fed


# ---- the predictor -----------------------------------------------------------------------------------------

@jit
def _add_candidate(cand, n, c):
    """cand[:n] with c added if it is new and there is room; returns the new n."""
    for j in range(n):
        if cand[j] == c:
            return n
    if n < MAX_CAND:
        cand[n] = c
        n += 1
    return n


@jit
def predict(P, nv, st):
    """The mixer's prediction for the next symbol: fills st's candidates (cand), their masses (mass) and the
    inputs the mixer used (x, pc, ws, orders, slots); returns (number of candidates, ratio (the rest's per-unit
    share of P, scaled 2**32), escape mass). P: the model's table (nv entries, summing to 2**28). Reads every
    model, changes none: update() learns."""
    stretch, squash = STRETCH_G, SQUASH_G
    cand, mass, x, pc, ws, orders = st.cand, st.mass, st.x, st.pc, st.ws, st.orders
    top = first_max(P, nv)  # the model's top choice
    cand[0] = top
    mpred = match_predict(st)
    n = _add_candidate(cand, 1, mpred) if mpred >= 0 else 1
    ngram_predict(st)
    for k in range(ORDERS, 0, -1):
        if orders[k - 1] >= 0:
            n = _add_candidate(cand, n, orders[k - 1])
    total = 0
    for j in range(n):
        c = cand[j]
        f = P[c] if c < nv else 0
        x[j, X_MODEL] = stretch[min(max(f >> (TOTAL_BITS - SQUASH_BITS), 1), 4095)]
        x[j, X_MATCH] = match_input(st, stretch) if c == mpred else 0
        for k in range(ORDERS):
            x[j, X_ORDER + k] = ngram_input(st, k, stretch) if orders[k] == c else 0
        x[j, X_TOP] = top_input(st, P[top], stretch) if c == top else 0
        x[j, X_BIAS] = BIAS_INPUT if st.sc[S_FLAGS] & USE_BIAS else 0
        ws[j] = (2 if c == top else 0) + (1 if c == mpred else 0)
        pc[j] = mix(st, j, squash)
        mass[j] = pc[j] << (TOTAL_BITS - SQUASH_BITS)
        total += mass[j]
    # raw bytes get an adaptive escape share; the candidates at most what leaves the rest REST_MIN
    esc = escape_mass(st)
    cap = TOTAL - esc - REST_MIN
    if total > cap:
        for j in range(n):
            mass[j] = mass[j] * cap // total
        total = 0
        for j in range(n):
            total += mass[j]
    # the other tokens share the rest in P's proportions
    rest = TOTAL - (nv + RAW_SYMBOLS) - total - esc
    pcand = 0
    for j in range(n):
        if cand[j] < nv:
            pcand += P[cand[j]]
    ratio = (rest << 32) // (TOTAL - pcand)
    return n, ratio, esc


@jit
def _raw_share(b, esc, raw, nraw):
    return esc * (1 + 4 * raw[b]) // (RAW_SYMBOLS + 4 * nraw)


@jit
def _base_sum(P, nv, a, b, ratio, esc, raw, nraw):
    """Sum over symbols a .. b-1 (none of them a candidate) of their share of the rest, plus 1 each."""
    tot = b - a
    model = P[a: max(a, min(b, nv))]  # a slice: the loop vectorizes (lmcodec.scan)
    for i in range(model.shape[0]):
        tot += (model[i] * ratio) >> 32
    for s in range(max(a, nv), b):
        tot += _raw_share(s - nv, esc, raw, nraw)
    return tot


@jit
def _base(P, nv, s, ratio, esc, raw, nraw):
    return 1 + ((P[s] * ratio) >> 32) if s < nv else 1 + _raw_share(s - nv, esc, raw, nraw)


@jit
def _sorted_candidates(n, cand, order):
    """order[0 .. n-1] = candidate indices by ascending symbol."""
    for j in range(n):
        order[j] = j
    for i in range(1, n):
        j = i
        while j > 0 and cand[order[j - 1]] > cand[order[j]]:
            order[j - 1], order[j] = order[j], order[j - 1]
            j -= 1


@jit
def _total(P, nv, n, ratio, esc, cand, mass, raw, nraw, order):
    """Sum of F before the leftover: the candidates' 1 + mass, every other symbol's base."""
    _sorted_candidates(n, cand, order)
    tot = 0
    a = 0
    for i in range(n):
        j = order[i]
        tot += _base_sum(P, nv, a, cand[j], ratio, esc, raw, nraw) + 1 + mass[j]
        a = cand[j] + 1
    return tot + _base_sum(P, nv, a, nv + RAW_SYMBOLS, ratio, esc, raw, nraw)


@jit
def cum_freq(P, nv, target, n, ratio, esc, st):
    """(cum, freq) of symbol `target` in the table F that predict() made. The leftover TOTAL - sum goes to
    cand[0]."""
    cand, mass, raw, nraw, order = st.cand, st.mass, st.raw, st.sc[S_NRAW], st.order
    left = TOTAL - _total(P, nv, n, ratio, esc, cand, mass, raw, nraw, order)
    cum = 0
    a = 0
    f = 0
    for i in range(n):
        j = order[i]
        c = cand[j]
        if c > target:
            break
        cum += _base_sum(P, nv, a, c, ratio, esc, raw, nraw)
        if c == target:
            f = 1 + mass[j] + (left if j == 0 else 0)
            return cum, f
        cum += 1 + mass[j] + (left if j == 0 else 0)
        a = c + 1
    cum += _base_sum(P, nv, a, target, ratio, esc, raw, nraw)
    return cum, _base(P, nv, target, ratio, esc, raw, nraw)


@jit
def find(P, nv, value, n, ratio, esc, st):
    """(symbol, cum, freq) with cum <= value < cum + freq in the table F that predict() made."""
    cand, mass, raw, nraw, order = st.cand, st.mass, st.raw, st.sc[S_NRAW], st.order
    left = TOTAL - _total(P, nv, n, ratio, esc, cand, mass, raw, nraw, order)
    cum = 0
    s = 0
    i = 0
    m = nv + RAW_SYMBOLS
    while s < m:
        nxt = cand[order[i]] if i < n else m
        # the symbols before the next candidate: whole blocks while the value lies past them, then one at a time
        while s + SCAN <= nxt:
            f = _base_sum(P, nv, s, s + SCAN, ratio, esc, raw, nraw)
            if value < cum + f:
                break
            cum += f
            s += SCAN
        while s < nxt:
            f = _base(P, nv, s, ratio, esc, raw, nraw)
            if value < cum + f:
                return s, cum, f
            cum += f
            s += 1
        if i < n:
            j = order[i]
            f = 1 + mass[j] + (left if j == 0 else 0)
            if value < cum + f:
                return s, cum, f
            cum += f
            s += 1
            i += 1
    return m - 1, cum, 1  # unreachable for value < 2**28


@jit
def update(s, P, nv, n, st):
    """Every model learns that the symbol after predict() was s, then s joins the history. Returns 1 if s is fed
    to the language model, else 0 (history_push)."""
    mpred = match_predict(st)
    mixer_learn(st, n, s)
    match_learn(st, mpred, s)
    ngram_learn(st, s)
    top_learn(st, P[st.cand[0]], 1 if st.cand[0] == s else 0)
    escape_learn(st, s, nv)
    fed = history_push(st, s, nv)
    match_follow(st, mpred, s)
    return fed


# ---- frames: a run of symbols against one model table -----------------------------------------------------

@jit
def encode_run(P, nv, symbols, t_end, enc, out, st, bits):
    """Code symbols[sc[T]] .. while they are predicted from the table P: stops after a symbol that is fed to the
    language model (the next one needs a new table) or at t_end. Adds -log2 p (in 2**-16 bits, rounded down) to
    bits[0]. Returns the number of symbols coded."""
    done = 0
    sc = st.sc
    while sc[S_T] < t_end:
        s = symbols[sc[S_T]]
        n, ratio, esc = predict(P, nv, st)
        cum, f = cum_freq(P, nv, s, n, ratio, esc, st)
        rc.encode(enc, out, cum, f, TOTAL)
        bits[0] += np.int64(-np.log2(f / TOTAL) * 65536.0)
        done += 1
        if update(s, P, nv, n, st):
            break
    return done


@jit
def decode_run(P, nv, payload, dec, lens, need, st):
    """Decode symbols while they are predicted from the table P (the mirror of encode_run) into hist, until the
    frame's `need` bytes are there (lens: bytes per symbol) or a symbol was fed to the language model. Returns 1
    if the frame needs the model's next table, 0 if it is complete. At most need symbols are ever decoded
    (each is at least one byte), so a corrupt payload costs no more than a valid one."""
    sc = st.sc
    while sc[S_BYTES] < need and sc[S_T] < need:
        n, ratio, esc = predict(P, nv, st)
        value = rc.target(dec, TOTAL)
        s, cum, f = find(P, nv, value, n, ratio, esc, st)
        rc.consume(dec, payload, cum, f)
        sc[S_BYTES] += lens[s]
        if update(s, P, nv, n, st) and sc[S_BYTES] < need:
            return 1
    return 0


@jit
def draft(st, nv, out):
    """Guesses of the next tokens fed to the model, for speculative decoding (pipeline/mixed.py): where the match
    model is following a repeat, the tokens that came after it then, as many as keep the chance that all are
    right at 1/2 or more by the match model's own confidence at this length (pm), up to out.shape[0]; none past
    a raw byte or a repeated symbol (whether it is fed depends on the run). Returns how many. Guesses change how
    many model steps decoding takes, never what it decodes."""
    hist, sc = st.hist, st.sc
    t = sc[S_T]
    p = sc[S_MPTR]
    if p <= 0:
        return 0
    right = st.pm[min(sc[S_MLEN], MATCH_MAX)]  # chance the next is right, scaled 2**P_BITS
    chance = 1 << P_BITS
    n = 0
    prev = hist[t - 1]
    while n < out.shape[0] and p < t:
        chance = (chance * right) >> P_BITS
        sym = hist[p]
        if chance < 1 << (P_BITS - 1) or sym >= nv or sym == prev:
            break
        out[n] = sym
        prev = sym
        n += 1
        p += 1
    return n


@jit
def fed_mask(symbols, nv):
    """Which symbols update() feeds to the language model (the same rule: a token, and no more than RUN_FEED
    copies into a run of one repeated symbol)."""
    out = np.zeros(symbols.shape[0], dtype=np.bool_)
    run = 0
    for t in range(symbols.shape[0]):
        if t >= 1 and symbols[t - 1] == symbols[t]:
            run += 1
        else:
            run = 1
        out[t] = symbols[t] < nv and run <= RUN_FEED
    return out
