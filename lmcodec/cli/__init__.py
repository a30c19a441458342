"""The `lmcodec` command, shaped like gzip, xz and zstd.

    lmcodec [OPTION]... [FILE]...      compress (default), -d decompress, -t test, -l list
    lmcodec models [--add SOURCE]      the models on this machine; convert and cache one

Modules: options (parsing, --help), work (one input: compress/decompress/test), outputs (temporary files
renamed into place), listing (-l), models_command, messages (one-line errors). Nothing here imports torch at
import time: -l reads the container only; the model is loaded by lmcodec.io.lmzfile when it is needed.
Exit codes follow gzip: 0 ok, 1 error, 2 warning; usage errors 1, Ctrl-C 130, a closed stdout 141.
"""
from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from typing import Any

import lmz

from .listing import list_files
from .messages import PROG, describe, say
from .models_command import models_command
from .options import HELP, Options, Usage, parse
from .. import interrupts
from ..atomic import remove_all
from ..io.settings import Settings
from .work import EXIT_ERROR, EXIT_OK, EXIT_WARNING, Job, isatty, process_file, walk

EXIT_INTERRUPTED, EXIT_PIPE = 130, 141

__all__ = ["main", "run", "EXIT_OK", "EXIT_ERROR", "EXIT_WARNING", "EXIT_INTERRUPTED",
           "EXIT_PIPE"]


def _command(o: Options) -> int:
    say.verbose, say.quiet = o.verbose, o.quiet
    if o.help:
        sys.stdout.write(HELP)
        return EXIT_OK
    if o.version:
        from .. import __version__

        sys.stdout.write(f"{PROG} {__version__} (lmz container format {lmz.FORMAT_VERSION})\n")
        return EXIT_OK
    paths = o.files or ["-"]
    if o.recursive:  # -lr lists the .lmz files found in directories
        given = set(paths)
        paths = [p for p in walk(paths) if o.mode != "list" or p in given or p.endswith(o.suffix)]
    if o.mode == "list":
        if "-" in paths and isatty(sys.stdin) and not o.force:
            say.error(None, "compressed data not read from a terminal; use -f to force")
            return EXIT_ERROR
        return list_files(paths, o.verbose)
    model = o.model
    if model is None and o.mode == "compress":
        model = os.environ.get("LMCODEC_MODEL") or None
    settings = Settings(model=model, level=o.level, chunk_size=o.chunk_size, window=o.window,
                        batch_size=o.batch_size, memory=o.memory, device=o.device, threads=o.threads)
    job = Job(mode=o.mode, settings=settings, to_stdout=o.stdout, output=o.output,
              remove=o.rm and not o.keep and not o.stdout, force=o.force,
              progress=o.quiet == 0 and isatty(sys.stderr), suffix=o.suffix, recursive=o.recursive,
              salvage=o.salvage)
    writes_stdout = o.mode in ("compress", "decompress") and (o.stdout or o.output == "-" or
                                                              (o.output is None and "-" in paths))
    if o.mode == "compress" and writes_stdout and isatty(sys.stdout) and not o.force:
        say.error(None, "compressed data not written to a terminal; use -f to force")
        return EXIT_ERROR
    if o.mode != "compress" and "-" in paths and isatty(sys.stdin) and not o.force:
        say.error(None, "compressed data not read from a terminal; use -f to force")
        return EXIT_ERROR
    if o.scheduler is not None and o.mode != "compress" and o.model is not None:
        raise Usage("--model with -d/-t does not reach --scheduler workers: they find a file's model by hash "
                    "(run `lmcodec models --add SOURCE` on each)")
    if o.per_file:
        if o.scheduler is None:
            raise Usage("--per-file needs --scheduler")
        if o.mode not in ("compress", "decompress") or writes_stdout or o.output is not None or job.remove:
            raise Usage("--per-file writes each output beside its FILE: no -c, -o, -t, --rm or standard input")
        return _per_file(paths, o.scheduler, job)
    if (job.progress or o.verbose) and not o.quiet:  # a first use converts the model: say so, it takes a while
        from ..models import registry

        registry.notify = lambda msg: say.line(None, msg)
    status = EXIT_OK
    with contextlib.ExitStack() as stack:
        if o.scheduler is not None:
            from ..integrations import distributed

            job.client = stack.enter_context(distributed.connect(o.scheduler))
        for p in paths:
            r = process_file(p, job)
            status = EXIT_ERROR if EXIT_ERROR in (r, status) else max(status, r)
    return status


def _per_file(paths: list[str], scheduler: str, job: Job) -> int:
    """--per-file: whole files on the workers (lmcodec.integrations.distributed.compress_files / decompress_files)."""
    from ..integrations import distributed

    with distributed.connect(scheduler) as client:
        if job.mode == "compress":
            results = distributed.compress_files(paths, client, job.settings, suffix=job.suffix,
                                                 overwrite=job.force)
        else:
            results = distributed.decompress_files(paths, client, job.settings, suffix=job.suffix,
                                                   overwrite=job.force)
    status = EXIT_OK
    for r in results:
        if r.error is not None:
            say.error(r.src, describe(r.error))
            status = EXIT_ERROR
        elif job.mode == "compress":
            say.info(r.src, f"{r.raw_size} -> {r.compressed_size} bytes -> {r.dst}")
        else:
            say.info(r.src, f"{r.raw_size} bytes -> {r.dst}")
    return status


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at devnull so the interpreter's final flush is quiet (as the Python docs say)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _exit_at_once(signum: int, frame: Any) -> None:
    """The command's handler of SIGINT, SIGTERM and SIGHUP, as gzip's and zstd's: remove the temporary outputs
    and exit with status 128 + signum now, without unwinding. An exception raised from a handler lands wherever
    the main thread is, also inside a library's lock (llvmlite takes its lock in __enter__, then calls numba's
    callbacks): left held, a kernel thread waits for it and the main thread for that thread, for ever."""
    remove_all()
    with contextlib.suppress(OSError):
        if os.isatty(2):  # the shell's prompt starts on a line of its own, not after the progress meter
            os.write(2, b"\n")
    os._exit(128 + signum)


def _take_signals() -> dict[int, Any]:
    """Install _exit_at_once for each of SIGINT, SIGTERM and SIGHUP left at its default; one ignored (nohup's
    SIGHUP, SIGINT in a background job) or handled by a program that runs the command stays so, as gzip does.
    Returns the handlers replaced."""
    old = {}
    for sig in interrupts.SIGNALS:
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
                old[sig] = signal.signal(sig, _exit_at_once)
        except ValueError:  # not the main thread: signals go to the main thread's program
            break
    return old


def run(argv: list[str]) -> int:
    """Run one command line; returns the exit status. Never raises (but SystemExit from a program's own signal
    handler)."""
    is_models = bool(argv) and argv[0] == "models"
    old = _take_signals()
    try:
        return models_command(argv[1:]) if is_models else _command(parse(argv))
    except Usage as e:
        say.error(None, str(e))
        try:
            sys.stderr.write(f"Try '{PROG}{' models' if is_models else ''} --help' for more information.\n")
        except (OSError, ValueError):
            pass
        return EXIT_ERROR
    except KeyboardInterrupt:
        remove_all()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Standard output was closed (lmcodec -dc x.lmz | head): stop quietly, as if killed by SIGPIPE.
        remove_all()
        _quiet_stdout()
        return EXIT_PIPE
    except SystemExit:
        remove_all()
        raise
    except Exception as e:  # a bug: still one line; or an interrupt that compiled code wrapped
        interrupt = interrupts.carried(e)
        if isinstance(interrupt, KeyboardInterrupt):
            return EXIT_INTERRUPTED
        if interrupt is not None:
            raise interrupt from None
        say.error(None, describe(e))
        return EXIT_ERROR
    finally:
        remove_all()
        for sig, h in old.items():
            signal.signal(sig, h)


def main() -> None:
    """Console-script entry point."""
    try:
        code = run(sys.argv[1:])
    except KeyboardInterrupt:  # a second Ctrl-C during clean-up
        remove_all()
        code = EXIT_INTERRUPTED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = code or EXIT_PIPE
    except (OSError, ValueError):
        pass
    # The heap left (torch's and numba's modules, the model) goes with the process: frozen, the interpreter's
    # last collections skip it at exit (over it they cost ~0.5 s)
    gc.freeze()
    sys.exit(code)
