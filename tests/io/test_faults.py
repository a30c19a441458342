"""Faults and hostile conditions (issue 13): a full disk, an unwritable destination, signals at work, hostile
lengths under a memory limit, threads sharing one codec, processes sharing one model cache, a damaged model.

Real processes where the operating system is the point; the tiny model keeps them fast.
"""
from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import lmz
from lmz import varint

import lmcodec
from lmcodec.io import lmzfile

TINY = str(Path(__file__).parents[1] / "data" / "tiny-llama")
TEXT = (Path(lmcodec.__file__).parent / "pipeline" / "codec.py").read_bytes()


def _env(cache: Path, **extra: str) -> dict:
    e = dict(os.environ, LMCODEC_CACHE=str(cache), PYTHONUNBUFFERED="1", **extra)
    e.pop("LMCODEC_MODEL", None)
    return e


def _lmcodec(cache: Path, *args: str, limit_fsize: int | None = None, **kw) -> subprocess.CompletedProcess:
    def pre() -> None:
        if limit_fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))

    return subprocess.run([sys.executable, "-m", "lmcodec", *args], env=_env(cache), capture_output=True,
                          timeout=180, preexec_fn=pre, **kw)


def test_full_disk_leaves_no_output_and_keeps_the_input(tmp_path, cache):
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(300_000))  # stored frames: the output is as large as the input
    r = _lmcodec(cache, "--rm", str(src), limit_fsize=100_000)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "File too large" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]  # no partial or temporary file; input kept


def test_full_device_on_stdout(tmp_path, cache):
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(200_000))
    with open("/dev/full", "wb") as full:
        r = subprocess.run([sys.executable, "-m", "lmcodec", "-c", str(src)], env=_env(cache), stdout=full,
                           stderr=subprocess.PIPE, timeout=180)
    assert r.returncode == 1
    assert b"No space left on device" in r.stderr and b"Traceback" not in r.stderr


def test_unwritable_destination(tmp_path, cache):
    src = tmp_path / "notes.txt"
    src.write_bytes(b"x" * 1000)
    r = _lmcodec(cache, "-o", "/proc/lmcodec-test/notes.txt.lmz", str(src))  # not writable, even for root
    assert r.returncode == 1
    assert b"lmcodec:" in r.stderr and b"Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def _compressing(tmp_path: Path, cache: Path, size: int, sig: int, disposition) -> subprocess.Popen:
    """`lmcodec --rm` on size bytes of text in tmp_path, started with sig at disposition, once it is working
    (its temporary output exists)."""
    src = tmp_path / "big.txt"
    src.write_bytes((TEXT * 40)[:size])
    p = subprocess.Popen([sys.executable, "-m", "lmcodec", "--rm", "--model", TINY, "--chunk-size", "1024", str(src)],
                         env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(sig, disposition))
    deadline = time.monotonic() + 60
    while not [x for x in tmp_path.iterdir() if x.name.endswith(".tmp")]:
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() is not None else ""
        time.sleep(0.05)
    return p


@pytest.mark.parametrize("delay", [0.0, 0.5])  # 0: while the kernels load
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_termination_signals_leave_nothing(tmp_path, cache, sig, delay):
    # at its default disposition, whatever this test run inherited (under nohup, SIGHUP is ignored, and the
    # command rightly keeps it so)
    p = _compressing(tmp_path, cache, 300_000, sig, signal.SIG_DFL)
    time.sleep(delay)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err
    assert b"Traceback" not in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.txt"]  # --rm removed nothing


def test_an_ignored_hangup_stays_ignored(tmp_path, cache):
    """Under nohup (SIGHUP ignored) a hangup does not end the work, as with gzip."""
    p = _compressing(tmp_path, cache, 30_000, signal.SIGHUP, signal.SIG_IGN)
    p.send_signal(signal.SIGHUP)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.txt.lmz"]


def _hostile_streams() -> list[bytes]:
    """Valid-CRC streams declaring huge sizes: a chunk size of 2^40, a frame of 2^63 bytes."""
    import zlib

    good = lmz.compress_bytes(b"hello, hostile world " * 40, chunk_size=256)
    hdr = lmz.read_index(io.BytesIO(good)).streams[0].header
    out = []
    n = len(varint.encode(hdr.chunk_size))
    head_len = len(hdr.encode())
    for value in (1 << 40, (1 << 64) - 1):
        b = bytearray(good[:8] + varint.encode(value) + good[8 + n:])
        end = head_len + len(varint.encode(value)) - n
        b[end - 4:end] = zlib.crc32(bytes(b[:end - 4])).to_bytes(4, "little")
        out.append(bytes(b))
    f = lmz.read_index(io.BytesIO(good)).entries[0]
    pos = f.offset + 1  # the first frame's raw length
    raw_n = len(varint.encode(f.raw_size))
    out.append(good[:pos] + varint.encode((1 << 63) - 1) + good[pos + raw_n:])
    return out


def test_hostile_lengths_under_a_memory_limit(tmp_path):
    """Under RLIMIT_AS of 512 MiB the decoder refuses declared sizes with a LimitError or FormatError, quickly,
    instead of allocating them."""
    code = ("import sys, time, lmz\n"
            "for i, path in enumerate(sys.argv[1:]):\n"
            "    t = time.monotonic()\n"
            "    try:\n"
            "        lmz.decompress_bytes(open(path, 'rb').read())\n"
            "        print('decoded')\n"
            "    except lmz.LmzError as e:\n"
            "        print(type(e).__name__, round(time.monotonic() - t, 3))\n")
    paths = []
    for i, blob in enumerate(_hostile_streams()):
        paths.append(tmp_path / f"bad-{i}.lmz")
        paths[-1].write_bytes(blob)

    def pre() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, timeout=60,
                       preexec_fn=pre, env=dict(os.environ, PYTHONPATH=str(root / "container")))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")[:-1]
    assert len(lines) == 3
    for line in lines:
        name, secs = line.split()
        assert name in ("LimitError", "FormatError") and float(secs) < 2.0


def test_threads_share_one_codec(tiny):
    """Compressing and decompressing from several threads at once through the API's shared codec gives the bytes
    one thread alone gives."""
    inputs = [TEXT[i * 900: i * 900 + 2500] + bytes(range(i * 40, i * 40 + 60)) for i in range(4)]
    opts = {"model": tiny, "chunk_size": 512}
    want = [lmcodec.compress(d, **opts) for d in inputs]
    got: dict[int, tuple[bytes, bytes]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            blob = lmcodec.compress(inputs[i], **opts)
            got[i] = (blob, lmcodec.decompress(blob, model=tiny))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert [got[i][0] for i in range(4)] == want
    assert [got[i][1] for i in range(4)] == inputs


def test_processes_convert_one_model_into_one_cache_at_once(tmp_path):
    """Three processes converting the same model into an empty cache at the same moment: one conversion, the
    same model for all, an intact catalogue."""
    cache = tmp_path / "cache"
    code = ("import lmcodec.models as m, sys\n"
            "print(m.resolve(sys.argv[1]).sha256)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, TINY], env=_env(cache), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    shas = {o[0].strip() for o in outs}
    assert len(shas) == 1
    files = sorted(p.name for p in cache.iterdir() if p.suffix == ".safetensors")
    assert files == [f"{shas.pop()}.safetensors"]
    assert not [p for p in cache.iterdir() if ".tmp" in p.name]


def test_damaged_cached_model_is_detected(tmp_path, monkeypatch):
    """One flipped bit in the cached model file: decoding by the stream's hash refuses it, saying how to rebuild."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LMCODEC_CACHE", str(cache))
    lmzfile._models.clear()
    lmzfile._codecs.clear()
    blob = lmcodec.compress(TEXT[:1500], model=TINY, chunk_size=512)
    [model_file] = cache.glob("*.safetensors")
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x10
    model_file.write_bytes(bytes(data))
    lmzfile._models.clear()
    lmzfile._codecs.clear()
    with pytest.raises(lmcodec.ModelError, match="damaged.*convert the model again"):
        lmcodec.decompress(blob)
    lmzfile._models.clear()
    lmzfile._codecs.clear()


def test_input_growing_while_compressed_is_kept_and_nothing_written(tmp_path, cache):
    """A log appended to while `lmcodec --rm` reads it: the output would miss the new lines, so none is written
    and the input (with them) stays."""
    src = tmp_path / "app.log"
    src.write_bytes((TEXT * 40)[:300_000])
    p = subprocess.Popen([sys.executable, "-m", "lmcodec", "--rm", "--model", TINY, "--chunk-size", "1024", str(src)],
                         env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not [x for x in tmp_path.iterdir() if x.name.endswith(".tmp")]:
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() is not None else ""
        time.sleep(0.05)
    with open(src, "ab") as f:
        f.write(b"one more line, written while lmcodec was reading\n")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert b"changed while being compressed" in err and b"Traceback" not in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["app.log"]
    assert src.read_bytes().endswith(b"while lmcodec was reading\n")


def _in_threads(n: int, fn) -> list:
    """fn(i) in n threads at once; their results in order (any exception is raised here)."""
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    return results


def test_fsspec_from_several_threads(tiny, monkeypatch):
    """Threads writing and reading their own memory:// files through fsspec's 'lmz' compression at once: each
    gets its bytes back, and the files are the bytes one thread alone writes."""
    fsspec = pytest.importorskip("fsspec")
    from lmcodec.integrations import fsspec_plugin

    inputs = [TEXT[i * 700: i * 700 + 2000] for i in range(4)]
    settings = lmcodec.Settings(model=tiny, chunk_size=512)
    monkeypatch.setattr(fsspec_plugin, "settings", settings)  # fsspec passes no options of its own
    want = [settings.compress(d) for d in inputs]

    def work(i: int) -> tuple[bytes, bytes]:
        url = f"memory://threads/{i}.txt.lmz"
        with fsspec.open(url, "wb", compression="lmz") as f:
            f.write(inputs[i])
        with fsspec.open(url, "rb") as f:
            blob = f.read()
        with fsspec.open(url, "rb", compression="lmz") as f:
            return blob, f.read()

    got = _in_threads(4, work)
    assert [b for b, _ in got] == want
    assert [d for _, d in got] == inputs


def test_one_lmzfile_read_by_several_threads(tiny):
    """Threads reading one shared LmzFile at once (as they may share a gzip.GzipFile): every read returns a
    contiguous, verified piece, and the pieces tile the content exactly once."""
    data = TEXT[:6000]
    blob = lmcodec.compress(data, model=tiny, chunk_size=512)
    with lmcodec.open(io.BytesIO(blob), "rb", model=tiny) as f:
        def work(i: int) -> list[bytes]:
            pieces = []
            while piece := f.read(97 + 13 * i):
                pieces.append(piece)
            return pieces
        got = _in_threads(3, work)
    pieces = [p for ps in got for p in ps]
    assert sum(len(p) for p in pieces) == len(data)
    for p in pieces:  # each piece is a contiguous slice of the content
        assert data.find(p) >= 0
