#!/usr/bin/env python3
"""Termination signals at many moments of a compression: does `lmcodec` always end, with the right status and
nothing left behind?

Each case starts `lmcodec --rm` on 300 kB of text with the tiny test model (1 KiB chunks), waits until its
temporary output exists, waits --delays more seconds (the moments between cover loading the kernels and the
first frames), sends SIGTERM or SIGHUP, and expects within --timeout seconds: exit status 128 + the signal, no
traceback, and the input alone in its folder. A case that does not end in time is a hang: its Python stacks
(py-spy, where installed) are printed, and it is killed. Exit status 1 if any case failed.

    python -m tools.signal_stress [--delays 0.2,0.3,...,1.0] [--rounds 3] [--timeout 20] [--out FILE]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import _common as C

TINY = str(C.ROOT / "tests" / "data" / "tiny-llama")
TEXT = (C.ROOT / "lmcodec" / "pipeline" / "codec.py").read_bytes()


def _case(cache: Path, sig: int, delay: float, timeout: float) -> str:
    """'ok', 'hang', or what went wrong."""
    d = Path(tempfile.mkdtemp(prefix="lmcodec-signal-"))
    try:
        src = d / "big.txt"
        src.write_bytes((TEXT * 40)[:300_000])
        env = dict(os.environ, LMCODEC_CACHE=str(cache), PYTHONUNBUFFERED="1")
        env.pop("LMCODEC_MODEL", None)
        p = subprocess.Popen([sys.executable, "-m", "lmcodec", "--rm", "--model", TINY, "--chunk-size", "1024",
                              str(src)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
        while not any(x.name.endswith(".tmp") for x in d.iterdir()):
            if p.poll() is not None:
                return f"ended before it was signalled (status {p.returncode})"
            time.sleep(0.02)
        time.sleep(delay)
        p.send_signal(sig)
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            if shutil.which("py-spy"):
                subprocess.run(["py-spy", "dump", "--pid", str(p.pid)])
            p.kill()
            p.communicate()
            return "hang"
        left = sorted(x.name for x in d.iterdir())
        if p.returncode != 128 + sig or b"Traceback" in err or left != ["big.txt"]:
            return f"status {p.returncode}, left {left}, stderr {err[-300:]!r}"
        return "ok"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delays", default="0.2,0.25,0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.65,0.7,0.8,0.9,1.0")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    delays = [float(x) for x in args.delays.split(",")]
    cache = Path(tempfile.mkdtemp(prefix="lmcodec-signal-cache-"))
    outcomes: dict[str, int] = {}
    failures = []
    t0 = time.monotonic()
    try:
        for _ in range(args.rounds):
            for delay in delays:
                for sig in (signal.SIGTERM, signal.SIGHUP):
                    r = _case(cache, sig, delay, args.timeout)
                    kind = r if r in ("ok", "hang") else "wrong"
                    outcomes[kind] = outcomes.get(kind, 0) + 1
                    if r != "ok":
                        failures.append(f"{signal.Signals(sig).name} {delay} s: {r}")
                        print(failures[-1], flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    n = sum(outcomes.values())
    lines = ["# Termination signals during a compression", "", C.machine_info(), "",
             f"`python -m tools.signal_stress --delays {args.delays} --rounds {args.rounds}`: {n} cases "
             f"(SIGTERM and SIGHUP, {len(delays)} moments, {args.rounds} rounds) in {time.monotonic() - t0:.0f} s.",
             "", f"- ended as they should: {outcomes.get('ok', 0)}", f"- hung: {outcomes.get('hang', 0)}",
             f"- wrong status, output left or traceback: {outcomes.get('wrong', 0)}", "",
             "Verdict: " + ("PASS" if not failures else "FAIL"), ""]
    lines += [f"- {f}" for f in failures]
    C.emit(lines, args.out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
