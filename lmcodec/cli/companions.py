"""lmzcat, lmzless and lmzgrep: the companions xz and zstd users reach for (xzcat, zless, zstdgrep).

    lmzcat [OPTION]... [FILE]...                 lmcodec -dc: the content of each FILE on standard output
    lmzless [LESS OPTION]... FILE...             less, showing each FILE's content (as zless does)
    lmzgrep [GREP OPTION]... PATTERN [FILE]...   grep in each FILE's content (as zgrep does)

Each is a thin layer over `lmcodec -dc`: the same options, errors and exit statuses (lmzgrep: grep's, 0 a
line matched, 1 none did, 2 an error).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from . import main as lmcodec_main
from .messages import describe

# grep's options that take a value in the next argument when given alone (-e PATTERN, -A 3, --file FILE)
_GREP_VALUE = {"-e", "-f", "-m", "-A", "-B", "-C", "-d", "-D", "--regexp", "--file", "--max-count",
               "--after-context", "--before-context", "--context", "--directories", "--devices", "--label",
               "--include", "--exclude", "--exclude-dir", "--exclude-from", "--color", "--colour", "--binary-files"}
_DECODE = [sys.executable, "-m", "lmcodec", "-dcq"]
_DECODED = (0, 141)  # 141: grep stopped reading (-q, -m N, -l) and closed the pipe


def lmzcat() -> None:
    """`lmzcat ARGS` is `lmcodec -dc ARGS`."""
    sys.argv = ["lmcodec", "-dc", *sys.argv[1:]]
    lmcodec_main()


def lmzless() -> None:
    """less with each FILE's content: LESSOPEN pipes every file less opens through `lmcodec -dcq`."""
    less = shutil.which("less")
    if less is None:
        sys.stderr.write("lmzless: less not found; install it, or use `lmzcat FILE | more`\n")
        sys.exit(1)
    cmd = " ".join(shlex.quote(a) for a in _DECODE)
    os.environ["LESSOPEN"] = f"|{cmd} -- %s"
    os.execv(less, [less, *sys.argv[1:]])


def _split_grep_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(grep's options and pattern, the files): the first argument that is not an option (or an option's value)
    is the pattern unless -e/-f gave one; what follows it, or `--`, are files."""
    opts: list[str] = []
    pattern_given = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a.startswith("-") and a != "-":
            opts.append(a)
            name = a.split("=", 1)[0]
            if name in ("-e", "--regexp", "-f", "--file") or (a[:2] in ("-e", "-f") and len(a) > 2):
                pattern_given = True
            if name in _GREP_VALUE and "=" not in a and len(a) == len(name) and i + 1 < len(args):
                opts.append(args[i + 1])
                i += 1
            i += 1
            continue
        break
    if not pattern_given and i < len(args):
        opts.append(args[i])
        i += 1
    return opts, args[i:]


def lmzgrep() -> None:
    """grep in each FILE's content, named as grep names files (-H with several, --label); exit as grep does."""
    grep = shutil.which("grep")
    if grep is None:
        sys.stderr.write("lmzgrep: grep not found\n")
        sys.exit(2)
    opts, files = _split_grep_args(sys.argv[1:])
    if not files:  # standard input, as zgrep
        dec = subprocess.Popen(_DECODE, stdout=subprocess.PIPE)
        found = subprocess.run([grep, *opts], stdin=dec.stdout).returncode
        dec.stdout.close()
        sys.exit(2 if dec.wait() not in _DECODED else found)
    named = ["-H"] if len(files) > 1 else []
    status = 1
    for path in files:
        try:
            dec = subprocess.Popen([*_DECODE, "--", path], stdout=subprocess.PIPE)
        except OSError as e:
            sys.stderr.write(f"lmzgrep: {path}: {describe(e)}\n")
            status = 2
            continue
        found = subprocess.run([grep, *named, f"--label={path}", *opts], stdin=dec.stdout).returncode
        dec.stdout.close()
        if dec.wait() not in _DECODED or found > 1:
            status = 2
        elif found == 0 and status == 1:
            status = 0
    sys.exit(status)
