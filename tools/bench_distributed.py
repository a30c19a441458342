"""Throughput of lmcodec.integrations.distributed with 1 and 2 local Dask worker processes, and byte-identity with one process.

    python -m tools.bench_distributed [FILE] [--model default|tiny|SOURCE] [--max-bytes 16384]
                                      [--chunk-size 2048] [--batch-size 2] [--range-size 4096]
                                      [--workers 1 2] [--out tools/results/bench_distributed.md]

The first --max-bytes of FILE (default: alice29.txt of the shared corpus) are compressed once in this
process (lmcodec.compress, one torch thread: the reference output and a baseline), then on a LocalCluster of N
worker processes (one thread each) for each N of --workers: compress by ranges, compared byte for byte with the
reference, and decompress by ranges, compared with the input. Each worker loads the model before the clock
starts (distributed.preload). Speeds are content bytes per second of wall time, the client's cut and the
cluster's overhead included. "cores used" is the workers' CPU seconds over the wall time: on a machine that
others share, it shows how much of the CPU the workers got (2 workers can only be faster if it is near 2).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time

from tools._common import ROOT, emit, find_corpus_file, machine_info

import lmcodec
from lmcodec.io import lmzfile
from lmcodec.integrations import distributed

TINY = str(ROOT / "tests" / "data" / "tiny-llama")


def cpu_seconds() -> float:
    """CPU time of this (worker) process, all threads."""
    return time.process_time()


class Timed:
    """Wall time of a block, and the CPU seconds the cluster's workers spent in it."""

    def __init__(self, client) -> None:
        self.client = client

    def __enter__(self) -> "Timed":
        self.load = os.getloadavg()[0]
        self.cpu0 = self.client.run(cpu_seconds)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.s = time.perf_counter() - self.t0
        cpu1 = self.client.run(cpu_seconds)
        self.cores = sum(cpu1[w] - self.cpu0[w] for w in cpu1) / self.s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", default="alice29.txt")
    ap.add_argument("--model", default="default", help="'default', 'tiny' (the test model) or a model source")
    ap.add_argument("--max-bytes", type=int, default=16384)
    ap.add_argument("--chunk-size", type=int, default=2048)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--range-size", type=int, default=4096, help="content bytes per task")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(ROOT / "tools" / "results" / "bench_distributed.md"))
    args = ap.parse_args()

    model = TINY if args.model == "tiny" else None if args.model == "default" else args.model
    path = find_corpus_file(args.file)
    data = path.read_bytes()[: args.max_bytes]
    opts = dict(model=model, chunk_size=args.chunk_size, batch_size=args.batch_size)
    m = lmzfile.get_codec(threads=1, **opts).model  # load (and convert, the first time) outside the timings
    lmcodec.compress(data[: args.chunk_size], threads=1, **opts)  # warm the engine
    t = time.perf_counter()
    reference = lmcodec.compress(data, threads=1, **opts)
    t_single = time.perf_counter() - t

    rows = [f"| single process, no Dask | {len(data) / t_single:,.0f} B/s ({t_single:.1f} s) | | | | reference |"]
    ok = True
    for n in args.workers:
        with distributed.connect(f"local:{n}") as client:
            distributed.preload(client, model, chunk_size=args.chunk_size, batch_size=args.batch_size, threads=1)
            out = io.BytesIO()
            with Timed(client) as c:
                distributed.compress(io.BytesIO(data), out, client, threads=1, range_size=args.range_size, **opts)
            back = io.BytesIO()
            with Timed(client) as d:
                distributed.decompress(io.BytesIO(out.getvalue()), back, client, batch_size=args.batch_size,
                                       threads=1, range_size=args.range_size)
        same = out.getvalue() == reference and back.getvalue() == data
        ok &= same
        rows.append(f"| Dask, {n} worker process{'es' if n > 1 else ''} | {len(data) / c.s:,.0f} B/s ({c.s:.1f} s) | "
                    f"{len(data) / d.s:,.0f} B/s ({d.s:.1f} s) | {c.cores:.2f} / {d.cores:.2f} | "
                    f"{c.load:.1f} / {d.load:.1f} | {'identical' if same else '**DIFFERENT**'} |")
        print(rows[-1], file=sys.stderr)

    lines = [
        "# lmcodec.integrations.distributed: 1 vs 2 local workers",
        "",
        (f"{path.name}, first {len(data):,} bytes; model {m.model_id} ({m.sha256[:16]}); chunk size "
         f"{args.chunk_size}, batch size {args.batch_size}, {args.range_size} content bytes per task "
         f"({-(-len(data) // args.range_size)} tasks); one torch thread per worker; output "
         f"{len(reference):,} bytes."),
        "",
        "| run | compress | decompress | cores used (c / d) | load average before (c / d) | output vs single process |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
        machine_info(),
    ]
    emit(lines, args.out)
    if not ok:
        raise SystemExit("distributed output differs from the single-process output")


if __name__ == "__main__":
    main()
