"""lmcodec.integrations.distributed on a real dask.distributed LocalCluster: a scheduler and 2 worker processes on loopback,
the tiny model, small chunks so that an input of a few KiB makes many ranges.

Worker processes inherit LMCODEC_CACHE (set by conftest before the cluster starts), so they find the model the
client converted. Functions this module runs on the workers (client.run) travel by value (cloudpickle).
"""
from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import cloudpickle
import dask
import fsspec
import pytest

import lmcodec
import lmz
from lmcodec import cli
from lmcodec.io import lmzfile
from lmcodec.integrations import distributed
from lmcodec.pipeline.codec import Cutter
from lmcodec.errors import ModelError

cloudpickle.register_pickle_by_value(sys.modules[__name__])

ENGLISH = (Path(__file__).parents[1] / "data" / "english.txt").read_bytes()
# text with multi-byte characters, a run of binary (a bulk frame), text again; 4000 + 500 + 2560 + 1000 bytes,
# not a multiple of the chunk size
MIXED = ENGLISH + "Ångström ≠ ångström; 日本語のテキスト。\n".encode() * 10 + bytes(range(256)) * 10 + ENGLISH[:1000]
CHUNK = 256
OPTS = dict(chunk_size=CHUNK, batch_size=2)


@pytest.fixture(scope="module")
def client(cache):
    with distributed.connect("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def opts(tiny):
    return dict(OPTS, model=tiny)


def compress_bytes(data: bytes, client, **kw) -> bytes:
    out = io.BytesIO()
    r = distributed.compress(io.BytesIO(data), out, client, **kw)
    assert r.raw_size == len(data) and r.compressed_size == len(out.getvalue())
    return out.getvalue()


def decompress_bytes(blob: bytes, client, **kw) -> bytes:
    out = io.BytesIO()
    r = distributed.decompress(io.BytesIO(blob), out, client, **kw)
    assert r.raw_size == len(out.getvalue()) and r.compressed_size == len(blob)
    return out.getvalue()


def no_leftovers(d) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# ------------------------------------------------------------------------------------------------- no cluster


def test_chunks_do_not_depend_on_how_the_input_arrives(tiny):
    """The cutter is what makes ranges line up with single-process chunks: feeding the same bytes in any pieces
    gives the same chunks, also where a character straddles the chunk size just after a write ends."""
    codec = lmzfile.get_codec(tiny, chunk_size=16, batch_size=2)
    data = b"a" * 15 + "é".encode() + b"b" * 20 + bytes(range(200)) + "ü".encode() * 40

    def cut(pieces):
        c = Cutter(codec)
        out = []
        for p in pieces:
            c.add(p)
            out += [(x.raw, x.tokens) for x in c.chunks(final=False)]
        return out + [(x.raw, x.tokens) for x in c.chunks(final=True)]

    whole = cut([data])
    assert b"".join(r for r, _ in whole) == data
    assert cut([data[:16], data[16:]]) == whole  # 16 bytes in: the next byte continues the é
    assert cut([data[i: i + 1] for i in range(len(data))]) == whole
    assert cut([data[i: i + 7] for i in range(0, len(data), 7)]) == whole


# ---------------------------------------------------------------------------------------------- by ranges


@pytest.mark.parametrize("data", [MIXED, ENGLISH[: 12 * CHUNK], b""], ids=["ragged", "whole-chunks", "empty"])
def test_ranges_byte_identical_to_single_process(client, opts, tmp_path, data):
    """Many ranges (2 chunks each, more than the 2 workers and the window hold) come back in order: the .lmz is
    the single-process one, byte for byte, and decodes back by ranges of frames."""
    single = lmcodec.compress(data, **opts)
    assert compress_bytes(data, client, range_size=2 * CHUNK, **opts) == single
    assert decompress_bytes(single, client, range_size=2 * CHUNK) == data
    src, dst, back = tmp_path / "in", tmp_path / "in.lmz", tmp_path / "back"
    src.write_bytes(data)
    distributed.compress(src, dst, client, **opts)  # default range size: one range here
    assert dst.read_bytes() == single
    distributed.decompress(dst, back, client)
    assert back.read_bytes() == data
    assert no_leftovers(tmp_path) == ["back", "in", "in.lmz"]


def test_attention_window_reaches_the_workers(client, opts, tmp_path):
    w = dict(opts, window=16)  # fewer positions than a 256-byte chunk has tokens: the window shapes the code
    single = lmcodec.compress(MIXED, **w)
    assert single != lmcodec.compress(MIXED, **opts)
    assert compress_bytes(MIXED, client, range_size=2 * CHUNK, **w) == single
    assert decompress_bytes(single, client, range_size=2 * CHUNK) == MIXED
    (tmp_path / "a.txt").write_bytes(MIXED)
    [r] = distributed.compress_files(str(tmp_path / "a.txt"), client, **w)
    assert r.error is None and (tmp_path / "a.txt.lmz").read_bytes() == single


def test_fsspec_urls_and_concatenated_streams(client, opts):
    """The client reads and writes any fsspec URL (memory:// is in the client's process only: workers see
    token ids and frames, never files); a file of two concatenated streams decodes by ranges across both."""
    fs = fsspec.filesystem("memory")
    fs.pipe("/dist/in.txt", MIXED)
    distributed.compress("memory://dist/in.txt", "memory://dist/in.txt.lmz", client, range_size=1000, **opts)
    one = lmcodec.compress(MIXED, **opts)
    assert fs.cat("/dist/in.txt.lmz") == one
    with pytest.raises(FileExistsError):
        distributed.compress("memory://dist/in.txt", "memory://dist/in.txt.lmz", client, **opts)
    two = one + lmcodec.compress(ENGLISH[:900], **opts)
    fs.pipe("/dist/two.lmz", two)
    distributed.decompress("memory://dist/two.lmz", "memory://dist/two", client, range_size=500)
    assert fs.cat("/dist/two") == MIXED + ENGLISH[:900]
    assert distributed.decompress(io.BytesIO(two), None, client).raw_size == len(MIXED) + 900  # verify only
    fs.rm("/dist", recursive=True)


def _count_model_loads() -> None:
    import lmcodec.io.lmzfile
    import lmcodec.models

    lmcodec.io.lmzfile._models.clear()
    lmcodec.io.lmzfile._codecs.clear()
    find = lmcodec.models.find

    def counting(*args):
        counting.calls += 1
        return find(*args)

    counting.calls, counting.orig = 0, find
    lmcodec.models.find = counting


def _model_loads() -> int:
    import lmcodec.models

    f = lmcodec.models.find
    lmcodec.models.find = f.orig
    return f.calls


def test_each_worker_loads_the_model_once(client, opts):
    client.run(_count_model_loads)
    try:
        compress_bytes(MIXED, client, range_size=CHUNK, **opts)  # ~40 tasks
    finally:
        loads = client.run(_model_loads)
    assert len(loads) == 2 and all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1, loads


def _hide_models(cache_dir: str) -> None:
    import lmcodec.io.lmzfile

    lmcodec.io.lmzfile._models.clear()
    lmcodec.io.lmzfile._codecs.clear()
    os.environ["LMCODEC_CACHE"] = cache_dir


def test_worker_without_the_model_fails_the_job_cleanly(client, opts, tmp_path, cache):
    """A worker whose model cache lacks the model fails the job with the ModelError naming model and hash, and
    the output never appears."""
    blob = lmcodec.compress(MIXED, **opts)
    sha = lmz.summary(io.BytesIO(blob))[0].model_sha256
    (tmp_path / "in").write_bytes(MIXED)
    (tmp_path / "in.lmz").write_bytes(blob)
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    client.run(_hide_models, str(empty))
    try:
        with pytest.raises(ModelError, match=f"tiny-llama \\(sha256 {sha}[0-9a-f]*\\).*lmcodec models --add"):
            distributed.compress(tmp_path / "in", tmp_path / "out.lmz", client, range_size=1000, **opts)
        with pytest.raises(ModelError, match=f"tiny-llama \\(sha256 {sha}"):
            distributed.decompress(tmp_path / "in.lmz", tmp_path / "out", client)
    finally:
        client.run(_hide_models, str(cache))
    assert no_leftovers(tmp_path) == ["empty-cache", "in", "in.lmz"]


def test_corrupt_frame_fails_and_leaves_no_output(client, opts, tmp_path):
    blob = bytearray(lmcodec.compress(MIXED, **opts))
    index = lmz.read_index(io.BytesIO(bytes(blob)))
    lm = [e for e in index.entries if e.method == lmz.METHOD_LM]
    e = lm[len(lm) // 2]
    blob[e.offset + e.frame_size - 12] ^= 0x40  # a payload byte of an lm frame in the middle
    (tmp_path / "bad.lmz").write_bytes(bytes(blob))
    with pytest.raises(lmz.LmzError):
        distributed.decompress(tmp_path / "bad.lmz", tmp_path / "bad", client, range_size=2 * CHUNK)
    assert no_leftovers(tmp_path) == ["bad.lmz"]


def _kill_once(flag: str, after: int) -> None:
    """Make this worker process kill itself (SIGKILL, no clean-up) in its `after`-th encode, once per cluster."""
    import lmcodec.pipeline.codec

    encode = lmcodec.pipeline.codec.Codec.encode

    def dying(self, chunks):
        dying.calls += 1
        if dying.calls >= after:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return encode(self, chunks)

    dying.calls, dying.orig = 0, encode
    lmcodec.pipeline.codec.Codec.encode = dying


def _stop_killing() -> None:
    import lmcodec.pipeline.codec

    f = lmcodec.pipeline.codec.Codec.encode
    lmcodec.pipeline.codec.Codec.encode = getattr(f, "orig", f)


def test_worker_killed_mid_job(client, opts, tmp_path):
    """A worker dies in the middle of a job; Dask reruns its task elsewhere and the output is still identical."""
    flag = tmp_path / "killed"
    client.run(_kill_once, str(flag), 3)
    try:
        out = compress_bytes(MIXED, client, range_size=CHUNK, **opts)
    finally:
        client.run(_stop_killing)
    assert flag.exists()
    assert out == lmcodec.compress(MIXED, **opts)
    client.wait_for_workers(2, timeout=60)


# -------------------------------------------------------------------------------------------- many files


def test_many_files(client, opts, tmp_path):
    files = {"a.txt": MIXED, "b.txt": b"", "c.txt": ENGLISH[:700]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    results = distributed.compress_files(str(tmp_path / "*.txt"), client, **opts)
    assert [os.path.basename(r.src) for r in results] == sorted(files) and not any(r.error for r in results)
    for name, data in files.items():
        assert (tmp_path / (name + ".lmz")).read_bytes() == lmcodec.compress(data, **opts)
    again = distributed.compress_files([str(tmp_path / "a.txt"), str(tmp_path / "nope.txt")], client, **opts)
    assert isinstance(again[0].error, FileExistsError) and isinstance(again[1].error, FileNotFoundError)
    assert not (tmp_path / "nope.txt.lmz").exists()
    for name in files:
        (tmp_path / name).unlink()
    results = distributed.decompress_files(str(tmp_path / "*.lmz"), client)
    assert [r.raw_size for r in results] == [len(files[n]) for n in sorted(files)]
    for name, data in files.items():
        assert (tmp_path / name).read_bytes() == data
    results = distributed.decompress_files(str(tmp_path / "a.txt.lmz"), client)  # a.txt exists now
    assert isinstance(results[0].error, FileExistsError)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ------------------------------------------------------------------------------------------------- the CLI


def test_cli_scheduler(client, tiny, tmp_path, capsys):
    src = tmp_path / "x.txt"
    src.write_bytes(MIXED)
    addr = client.scheduler.address
    assert cli.run(["-1", "--model", tiny, "--chunk-size", str(CHUNK), str(src)]) == 0
    single = (tmp_path / "x.txt.lmz").read_bytes()
    (tmp_path / "x.txt.lmz").unlink()
    assert cli.run(["--scheduler", addr, "-1", "--model", tiny, "--chunk-size", str(CHUNK), "--rm", str(src)]) == 0
    assert (tmp_path / "x.txt.lmz").read_bytes() == single and not src.exists()
    assert cli.run(["--scheduler", addr, "-t", str(tmp_path / "x.txt.lmz")]) == 0
    assert cli.run(["--scheduler", addr, "-d", str(tmp_path / "x.txt.lmz")]) == 0
    assert src.read_bytes() == MIXED
    capsys.readouterr()
    assert cli.run(["--scheduler", addr, "-d", "--model", tiny, str(tmp_path / "x.txt.lmz")]) == 1
    assert "--scheduler" in capsys.readouterr().err
    assert cli.run(["--per-file", "-d", str(tmp_path / "x.txt.lmz")]) == 1  # needs --scheduler
    m = tmp_path / "many"
    m.mkdir()
    (m / "a.txt").write_bytes(ENGLISH[:900])
    (m / "b.txt").write_bytes(MIXED)
    args = ["--scheduler", addr, "--per-file", "--model", tiny, "--chunk-size", str(CHUNK), str(m / "*.txt")]
    assert cli.run(args) == 0
    assert (m / "b.txt.lmz").read_bytes() == lmcodec.compress(MIXED, model=tiny, chunk_size=CHUNK)
    capsys.readouterr()
    assert cli.run(args) == 1  # the outputs exist: one line each, nothing replaced
    assert capsys.readouterr().err.count("already exists") == 2
    for name in ("a.txt", "b.txt"):
        (m / name).unlink()
    assert cli.run(["--scheduler", addr, "--per-file", "-d", str(m / "*.lmz")]) == 0
    assert (m / "a.txt").read_bytes() == ENGLISH[:900] and (m / "b.txt").read_bytes() == MIXED
    capsys.readouterr()
    with dask.config.set({"dask.comm.timeouts.connect": "1s"}):
        assert cli.run(["--scheduler", "tcp://127.0.0.1:9", "-t", str(tmp_path / "x.txt.lmz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lmcodec: ") and "Traceback" not in err
