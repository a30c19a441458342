"""Where chunks end, and which of them the model codes: text runs go to the model, binary runs to bulk frames.

The input is looked at in blocks of BLOCK bytes counted from the chunk's start (tar's 512-byte blocks, so a tar
header and the text after it stay together and a binary member comes apart from them). A block is text unless
it is all NUL (padding, which zstd codes for nothing) or more than 1 byte in 32 is binary (an invalid UTF-8 byte
or a control byte other than NUL, whitespace and ESC). Then:

  * a chunk that starts with at least MIN_TEXT bytes of text blocks (or with text up to the end of the input) is
    an lm chunk: it takes text blocks up to the chunk size, and ends at the first non-text block, or where the
    chunk size allows without splitting a UTF-8 character;
  * anything else starts a bulk chunk (zstd or stored), which takes blocks until a run of MIN_TEXT bytes of
    clean text (text blocks with at most 1 NUL in 32 bytes) begins, up to the frame limit. Short text runs
    inside binary data, and the NUL-separated strings of an executable, stay in it: they would cost the
    model's time for little gain (measured: /usr/bin/tar and libc.so.6 have no such run, python3.11 has 40 KB
    in 6.8 MB; without the NUL rule 27 KB of tar's 532 KB went to the model, at 1/1000 of zstd's speed).

Every decision uses only the bytes (never how they arrived in writes): when the input runs out before a
decision is certain, cut() asks for more unless the input is final. Chunking is the encoder's choice; readers
decode any frames, so changing it changes no format.
"""
from __future__ import annotations

from .tokens import utf8_cut

BLOCK = 512
MIN_TEXT = 2048  # bytes of text blocks that start an lm chunk inside binary data

_BINARY = bytes(range(32)).translate(None, b"\0\t\n\r\f\v\x1b")  # control bytes text seldom holds


def looks_like_text(raw: bytes) -> bool:
    """At most 1 byte in 32 of raw is binary (an invalid UTF-8 byte or a control byte other than NUL, whitespace
    and ESC) and raw is not all NUL. Text with some binary inside (logs with escape sequences, bytes the
    vocabulary lacks) passes: the model codes every byte value."""
    if not raw.strip(b"\0"):
        return False
    text = raw.decode("utf-8", "ignore")
    invalid = len(raw) - len(text.encode("utf-8"))
    if invalid and raw[-1] & 0x80:  # a character cut at the end of the block is not binary
        tail = len(raw) - len(raw.rstrip(bytes(range(0x80, 0x100))))
        invalid -= min(tail, 3)
    if invalid and raw[0] & 0x80 and not raw[0] & 0x40:  # nor one cut at its start
        head = len(raw) - len(raw.lstrip(bytes(range(0x80, 0xC0))))
        invalid -= min(head, 3)
    controls = len(raw) - len(raw.translate(None, _BINARY))
    return (invalid + controls) * 32 <= len(raw)


def _clean(block: bytes) -> bool:
    """Text with at most 1 NUL in 32 bytes: what ends a bulk run (NUL-separated strings in an executable do not)."""
    return block.count(0) * 32 <= len(block) and looks_like_text(block)


def _text_run(buf: bytes, start: int, limit: int, clean: bool = False) -> int:
    """Bytes of consecutive text (or clean text) blocks from start (blocks on the grid of start), looking no
    further than limit."""
    pos = start
    while pos < limit:
        end = min(pos + BLOCK, limit)
        if not (_clean if clean else looks_like_text)(buf[pos:end]):
            break
        pos = end
    return pos - start


def cut(buf: bytes, final: bool, chunk_size: int, frame_limit: int) -> tuple[int, bool]:
    """(end, is_text) of the chunk at the start of buf; end 0 if more input is needed to decide."""
    # Unless final, wait for a byte past the chunk size: utf8_cut looks at it to avoid splitting a character.
    if not buf or (len(buf) <= chunk_size and not final):
        return 0, False
    limit = min(len(buf), chunk_size)
    n = _text_run(buf, 0, limit)
    if n >= min(MIN_TEXT, limit) or (final and n == len(buf)):
        if n == chunk_size:
            return (utf8_cut(buf, chunk_size) or chunk_size), True
        return n, True
    return _bulk_end(buf, final, chunk_size, frame_limit), False


def _bulk_end(buf: bytes, final: bool, chunk_size: int, frame_limit: int) -> int:
    """The end of a bulk chunk at the start of buf: its first block, then blocks up to the start of a text run
    of MIN_TEXT bytes (or of the rest of a final input) or to the frame limit; 0 if more input is needed."""
    pos = min(BLOCK, len(buf), frame_limit)
    while pos < frame_limit:
        end = min(pos + BLOCK, frame_limit)
        if end > len(buf):
            if not final:
                return 0  # a block not yet whole could still go either way
            if pos == len(buf):
                break
            end = len(buf)
        if _clean(buf[pos:end]):
            need = min(MIN_TEXT, frame_limit - pos)
            if len(buf) - pos < need and not final:
                return 0
            run = _text_run(buf, pos, min(len(buf), pos + need), clean=True)
            if run >= need or pos + run == len(buf):
                return pos
            pos += run
        else:
            pos = end
    return pos
