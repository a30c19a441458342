#!/usr/bin/env python
"""Start-up costs of lmcodec's command line pieces: the fsspec .pth hook and `lmcodec -l FILE`.

    python -m tools.bench_startup [-n RUNS]

Prints (medians over RUNS fresh interpreters):
  * hook overhead (ms): what lmcodec-fsspec.pth adds to every interpreter start, from -X importtime's line
    for _lmcodec_fsspec_hook (a plain A/B of `python -c pass` cannot switch a single .pth off); the
    `python -c pass` time is printed for scale;
  * fsspec registration (ms): what the hook adds to `import fsspec` (registering "lmz"; lmcodec itself is
    not imported until an .lmz file is opened);
  * `lmcodec -l FILE` (ms): wall time of the console script listing a small .lmz file (no torch import).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _importtime(code: str, module: str) -> float | None:
    """Cumulative import time of module (ms) in a fresh interpreter running code."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)$", line)
        if m and m.group(3) == module:
            return int(m.group(2)) / 1000
    return None


def _wall(cmd: list[str], n: int, env: dict | None = None) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--runs", type=int, default=15)
    n = ap.parse_args().runs

    _importtime("pass", "_lmcodec_fsspec_hook")  # warm the .pyc caches
    hook = [t for t in (_importtime("pass", "_lmcodec_fsspec_hook") for _ in range(n)) if t is not None]
    if not hook:
        print("hook overhead: the hook is not installed (no lmcodec-fsspec.pth in site-packages?)")
    else:
        print(f"hook overhead: {statistics.median(hook):.2f} ms (median of {len(hook)}; max {max(hook):.2f} ms)")
    print(f"python -c pass: {_wall([sys.executable, '-c', 'pass'], n):.1f} ms (for scale)")
    check = [sys.executable, "-c", "import sys, fsspec; assert 'lmz' in fsspec.compression.compr; "
             "assert 'lmcodec' not in sys.modules"]
    ok = subprocess.run(check, capture_output=True).returncode == 0
    fs_with = [_importtime("import fsspec", "fsspec") for _ in range(n)]
    fs_without = [_importtime("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
                              "if getattr(f, '__module__', '') != '_lmcodec_fsspec_hook']; import fsspec", "fsspec")
                  for _ in range(n)]
    if all(fs_with) and all(fs_without):
        print(f"fsspec registration: {statistics.median(fs_with) - statistics.median(fs_without):+.2f} ms "
              f"(within noise if negative) on "
              f"`import fsspec` ({statistics.median(fs_without):.1f} -> {statistics.median(fs_with):.1f} ms); "
              f"'lmz' registered without importing lmcodec: {ok}")

    import lmz

    exe = shutil.which("lmcodec") or os.path.join(os.path.dirname(sys.executable), "lmcodec")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.lmz")
        with open(path, "wb") as f:
            f.write(lmz.compress_bytes(os.urandom(50_000) + b"text " * 20_000, chunk_size=8192))
        cmd = [exe, "-l", path] if os.path.exists(exe) else [sys.executable, "-m", "lmcodec", "-l", path]
        _wall(cmd, 1)
        print(f"lmcodec -l FILE: {_wall(cmd, n):.1f} ms (median of {n})")
        r = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['lmcodec', '-l', sys.argv[1]]\n"
                            "import lmcodec.cli\ntry:\n    lmcodec.cli.main()\nexcept SystemExit:\n    pass\n"
                            "print('torch' in sys.modules, file=sys.stderr)", path], capture_output=True, text=True)
        print(f"torch imported by -l: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else '?'}")


if __name__ == "__main__":
    main()
