"""Compressing, decompressing and testing one input: files, standard input and output, --rm, progress."""
from __future__ import annotations

import hashlib
import os
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import lmz

from .. import interrupts
from ..defaults import SUFFIX
from ..errors import DamageWarning
from ..io.progress import Progress
from ..io.settings import Settings
from .messages import Skipped, describe, say
from .outputs import Output

EXIT_OK, EXIT_ERROR, EXIT_WARNING = 0, 1, 2


@dataclass
class Job:
    """One command's work: the mode, where outputs go, and the settings every input is coded with."""

    mode: str  # "compress", "decompress", "test"
    settings: Settings
    to_stdout: bool = False
    output: str | None = None
    remove: bool = False
    force: bool = False
    progress: bool = False
    suffix: str = SUFFIX  # -S
    salvage: bool = False  # --salvage: every intact frame of a damaged file; lost ranges said, exit status 1
    recursive: bool = False  # -r: a file the suffix rules leave alone is passed over silently, as gzip -r does
    client: Any = None  # a dask.distributed Client with --scheduler


def walk(paths: list[str]) -> Iterator[str]:
    """-r: each path, with each directory replaced by the regular files under it (sorted, symbolic links not
    followed, as gzip -r leaves them)."""
    for p in paths:
        if p == "-" or not os.path.isdir(p) or os.path.islink(p):
            yield p
            continue
        for top, dirs, names in os.walk(p):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(top, name)
                if not os.path.islink(full) and os.path.isfile(full):
                    yield full


def isatty(f: Any) -> bool:
    try:
        return bool(f.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _size(f: IO[bytes]) -> int | None:
    try:
        st = os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _content_size(f: IO[bytes]) -> int | None:
    """Bytes of content in a seekable .lmz file, from its index without decoding (None: not known)."""
    if _size(f) is None:
        return None
    try:
        pos = f.tell()
        try:
            return lmz.read_index(f).raw_size
        finally:
            f.seek(pos)
    except (lmz.LmzError, OSError, ValueError):
        return None  # decoding reports the problem


def compress_into(src: IO[bytes], dst: IO[bytes], job: Job, label: str) -> tuple[int, str]:
    """Compress src into dst (one stream); returns (raw bytes, sha256 of the input)."""
    from ..io.lmzfile import LmzFile

    if job.client is not None:
        from ..integrations import distributed

        r = distributed.compress(src, dst, job.client, job.settings, progress=job.progress, label=label)
        return r.raw_size, r.sha256
    prog = Progress(label, _size(src), job.progress)
    h = hashlib.sha256()
    done = 0
    try:
        with LmzFile(dst, "wb", job.settings, progress=prog.update if job.progress else None) as z:
            block = max(1 << 16, job.settings.chunk * job.settings.write_batch)
            while data := src.read(block):
                z.write(data)
                h.update(data)
                done += len(data)
    finally:
        prog.close()
    return done, h.hexdigest()


def decompress_into(src: IO[bytes], dst: IO[bytes] | None, job: Job, label: str,
                    damage: list | None = None) -> tuple[int, str]:
    """Decode all streams of src into dst (None: discard, for -t); returns (raw bytes, sha256 of them). With
    job.salvage, the ranges lost to damage are added to `damage`."""
    import warnings

    from ..io.lmzfile import LmzFile

    if job.client is not None and not job.salvage:
        from ..integrations import distributed

        r = distributed.decompress(src, dst, job.client, job.settings, progress=job.progress, label=label)
        return r.raw_size, r.sha256
    if job.mode == "test" and not job.salvage:
        _check_stored(src)
    prog = Progress(label, _content_size(src) if job.progress else None, job.progress)
    h = hashlib.sha256()
    done = 0
    try:
        with LmzFile(src, "rb", job.settings, progress=prog.update if job.progress else None,
                     errors="salvage" if job.salvage else "strict") as z, warnings.catch_warnings():
            warnings.simplefilter("ignore", DamageWarning)  # said once each, below, by the caller
            while data := z.read1(1 << 16):
                h.update(data)
                done += len(data)
                if dst is not None:
                    dst.write(data)
            if damage is not None and job.salvage:
                damage += z.damage
    finally:
        prog.close()
    return done, h.hexdigest()


def _check_stored(src: IO[bytes]) -> None:
    """-t of a regular file: every frame's stored bytes checked first (format 3), so that damage anywhere is
    reported in the time it takes to read the file, before a model loads; raises the first damage found."""
    if _size(src) is None:
        return  # a pipe: the streaming reader checks each frame as it comes
    errors = list(lmz.check_stored(src))
    src.seek(0)
    if errors:
        more = f" (and {len(errors) - 1} more damaged frames)" if len(errors) > 1 else ""
        raise type(errors[0])(f"{errors[0]}{more}")


def _ratio_text(raw: int, comp: int) -> str:
    if raw == 0:
        return f"{raw} -> {comp} bytes"
    return f"{raw} -> {comp} bytes ({100.0 * comp / raw:.1f}%, {8.0 * comp / raw:.3f} bits/byte)"


def _output_name(path: str, job: Job) -> str | None:
    """The output path for an input file (None: standard output)."""
    if job.to_stdout:
        return None
    if job.output is not None:
        return None if job.output == "-" else job.output
    if path == "-":
        return None
    sfx = job.suffix
    if job.mode == "compress":
        if path.endswith(sfx) and not job.force:
            # gzip 1.12 exits 0 here
            raise Skipped(f"already has {sfx} suffix -- unchanged", status=EXIT_OK, silent=job.recursive)
        return path + sfx
    base = path[: -len(sfx)] if path.endswith(sfx) else ""
    if not base or base.endswith(os.sep) or (os.altsep and base.endswith(os.altsep)):
        raise Skipped("unknown suffix -- ignored", status=EXIT_OK if job.recursive else EXIT_WARNING,
                      silent=job.recursive)
    return base


class InputChanged(OSError):
    pass


def _check_unchanged(src: IO[bytes], before: os.stat_result, raw: int) -> None:
    """A regular input must not have changed while it was read (a log still being written): its output would
    miss the change, and --rm would lose it. Then nothing is written and the input stays."""
    now = os.fstat(src.fileno())
    if raw != before.st_size or (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise InputChanged(f"changed while being compressed ({before.st_size} bytes before, {now.st_size} after, "
                           f"{raw} read); nothing written, the input is kept")


@dataclass
class _Input:
    """One input with its output: where it is read from and written to, and whether it goes afterwards."""

    label: str
    src: IO[bytes]
    stat: os.stat_result | None  # None: standard input
    dest: str | None  # the output path (None: standard output, or nothing with -t)
    out: Output | None  # the temporary output file, renamed into place on success
    dst: IO[bytes] | None  # what is written to (None: -t)
    remove: bool  # --rm applies: the input goes once the output is complete

    @property
    def regular(self) -> bool:
        return self.stat is not None and stat.S_ISREG(self.stat.st_mode)


def _open_input(path: str, job: Job) -> _Input:
    """The input and its output for path ('-' = stdin); raises Skipped for what gzip skips."""
    st = None
    if path != "-":
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise Skipped("is a directory -- ignored")
    dest = None if job.mode == "test" else _output_name(path, job)
    if dest is not None and st is not None and os.path.exists(dest) and os.path.samefile(path, dest):
        raise ValueError("input and output are the same file")
    src = sys.stdin.buffer if path == "-" else open(path, "rb")
    regular = st is not None and stat.S_ISREG(st.st_mode)
    try:
        out = Output(dest, job.force, st if regular else None) if dest is not None else None
    except BaseException:
        if path != "-":
            src.close()
        raise
    dst = out.fp if out is not None else None if job.mode == "test" else sys.stdout.buffer
    return _Input("(stdin)" if path == "-" else path, src, st, dest, out, dst,
                  job.remove and path != "-" and dest is not None and regular)


def _compress_one(f: _Input, job: Job, t0: float) -> int:
    raw, digest = compress_into(f.src, f.dst, job, f.label)
    if f.regular:
        _check_unchanged(f.src, f.stat, raw)
    if f.out is not None:
        f.out.fp.flush()
    comp = f.out.fp.tell() if f.out is not None and f.out.tmp else None
    if f.remove:  # verify before the input goes: decode the new file and compare
        with open(f.out.tmp or f.dest, "rb") as check:
            _, back = decompress_into(check, None, job, f"{f.label} (verifying)")
        if back != digest:
            raise lmz.ChecksumError("verification failed: the output does not decode to the input")
    if f.out is not None:
        f.out.commit(job.force, sync=f.remove)
    if comp is not None:
        say.info(f.label, f"{_ratio_text(raw, comp)} in {time.monotonic() - t0:.1f} s -> {f.dest}")
    else:
        say.info(f.label, f"{raw} bytes compressed in {time.monotonic() - t0:.1f} s")
    return EXIT_OK


def _decompress_one(f: _Input, job: Job, t0: float) -> int:
    damage: list = []
    raw, _ = decompress_into(f.src, f.dst, job, f.label, damage)
    if f.out is not None:
        f.out.commit(job.force, sync=f.remove and not damage)
    for d in damage:  # --salvage: the output holds every intact frame; each lost range is named
        say.error(f.label, f"lost {d}")
    if damage:
        f.remove = False
        say.error(f.label, f"{raw} bytes recovered, {len(damage)} range{'s' if len(damage) > 1 else ''} lost")
        return EXIT_ERROR
    if job.mode == "test":
        say.info(f.label, f"OK ({raw} bytes)")
    else:
        say.info(f.label, f"{raw} bytes in {time.monotonic() - t0:.1f} s" + (f" -> {f.dest}" if f.dest else ""))
    return EXIT_OK


def process_file(path: str, job: Job) -> int:
    """Compress, decompress or test one input ('-' = stdin). Returns an exit status."""
    label = "(stdin)" if path == "-" else path
    f: _Input | None = None
    t0 = time.monotonic()
    try:
        f = _open_input(path, job)
        status = (_compress_one if job.mode == "compress" else _decompress_one)(f, job, t0)
        if f.dst is not None and f.out is None:
            f.dst.flush()
        if f.remove:
            os.unlink(path)
        return status
    except Skipped as w:
        _abort(f)
        (say.info if w.silent else say.warn)(label, str(w))
        return w.status
    except (KeyboardInterrupt, BrokenPipeError, SystemExit):
        _abort(f)
        raise
    except BaseException as e:  # one line per failing file, never a traceback
        _abort(f)
        if (interrupt := interrupts.carried(e)) is not None:
            raise interrupt from None
        if os.environ.get("LMCODEC_TRACEBACK"):
            import traceback

            traceback.print_exc()
        say.error(label, describe(e))
        return EXIT_ERROR
    finally:
        if f is not None and path != "-":
            f.src.close()


def _abort(f: _Input | None) -> None:
    if f is not None and f.out is not None:
        f.out.abort()
