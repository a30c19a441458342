"""Threads that meet inside compiled code: the parts of a decoding step that several threads run side by side
(layerstep.layer_part) wait for each other between a layer's stages without returning to Python.

A meeting is a counter per thread in a shared int64 array `sync` (each on its own cache line) and a line that
says a thread failed: thread t of n, at its k-th meeting, stores k in its counter and waits until every counter
reaches k, or until the failed line is set (then it gives up: meet returns False). A waiting thread spins a
while with the processor's pause hint, then gives its core back (sched_yield) between looks, so that a thread
the scheduler holds back gets to run on a busy machine. Which thread arrives when changes no integer: the parts
write disjoint outputs, and every stage reads only what the meeting before it completed.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..jit import available, jit
from . import simd

LINE = 8  # int64s a cache line: each counter on its own, so that a thread's stores do not slow the others' loads
SPIN = 2000  # looks with the pause hint before a waiting thread starts yielding its core

_i32, _i64 = ir.IntType(32), ir.IntType(64)


def new(threads: int) -> np.ndarray:
    """A sync array for `threads` threads: their counters, then the failed line, all zero."""
    return np.zeros((threads + 1) * LINE, np.int64)


def fail(sync: np.ndarray) -> None:
    """Tell the threads meeting over sync that one of them failed: their meetings return False."""
    sync[(sync.shape[0] // LINE - 1) * LINE] = 1


def _slot(context, builder, signature, args) -> ir.Value:
    """A pointer to sync[LINE * i] (args: sync, i)."""
    arr = context.make_array(signature.args[0])(context, builder, args[0])
    addr = builder.add(builder.ptrtoint(arr.data, _i64), builder.mul(args[1], ir.Constant(_i64, 8 * LINE)))
    return builder.inttoptr(addr, _i64.as_pointer())


@intrinsic
def _store(typingctx, sync, i, value):
    """sync[LINE * i] = value, a release store: what this thread wrote before is seen by a thread that loads it."""
    def codegen(context, builder, signature, args):
        builder.store_atomic(args[2], _slot(context, builder, signature, args), "release", 8)
        return context.get_dummy_value()
    return types.void(sync, i, value), codegen


@intrinsic
def _load(typingctx, sync, i):
    """sync[LINE * i], an acquire load: what the storing thread wrote before its store is seen after it."""
    def codegen(context, builder, signature, args):
        return builder.load_atomic(_slot(context, builder, signature, args), "acquire", 8)
    return types.int64(sync, i), codegen


@intrinsic
def _wait_hint(typingctx, yielding):
    """One look's pause: x86's pause hint (a spinning core gives its pipeline to the other hyperthread and
    saves power), or where yielding, sched_yield (the scheduler may run a thread waiting for this core)."""
    x86 = simd.isa() != "generic"

    def codegen(context, builder, signature, args):
        spin = builder.append_basic_block("spin")
        give = builder.append_basic_block("give")
        done = builder.append_basic_block("done")
        builder.cbranch(builder.icmp_signed("!=", args[0], ir.Constant(_i64, 0)), give, spin)
        builder.position_at_end(spin)
        if x86:
            name = "llvm.x86.sse2.pause"
            fn = builder.module.globals.get(name) or ir.Function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                                   name)
            builder.call(fn, [])
        builder.branch(done)
        builder.position_at_end(give)
        fn = builder.module.globals.get("sched_yield") or ir.Function(builder.module, ir.FunctionType(_i32, []),
                                                                        "sched_yield")
        builder.call(fn, [])
        builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()
    return types.void(yielding), codegen


if available:

    @jit
    def meet(sync, t, n, k):
        """Thread t of n reaches its k-th meeting (k = 1, 2, ... over the life of sync) and waits until every
        thread has; False if a thread failed (then the caller stops its part)."""
        _store(sync, t, k)
        looks = 0
        for u in range(n):
            while _load(sync, u) < k:
                if _load(sync, n) != 0:
                    return False
                _wait_hint(np.int64(looks >= SPIN))
                looks += 1
        return _load(sync, n) == 0
