"""Bytes <-> token ids, lossless for any byte string.

Valid UTF-8 goes through the model's own tokenizer; anything it cannot reproduce exactly (invalid UTF-8, or
text whose tokens do not spell the same bytes) is spelled with single-byte tokens, and a byte the vocabulary has
no token for with the raw-byte symbol V + byte (coder 1 version 2 codes symbols V .. V+255). Decoding needs only
the token -> bytes table stored in the model file.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.intmodel import IntModel

if TYPE_CHECKING:
    import numpy as np


class TokenizerError(ValueError):
    """The model's vocabulary cannot spell some byte (it lacks a single-byte token for it)."""


class ByteTokenizer:
    def __init__(self, model: IntModel) -> None:
        self.model = model
        self.token_bytes = model.token_bytes
        self._tok = None
        self._byte_tokens: list[int] | None = None
        self._lens = None

    @property
    def byte_tokens(self) -> list[int]:
        if self._byte_tokens is None:
            single = {b: i for i, b in enumerate(self.token_bytes) if len(b) == 1}
            self._byte_tokens = [single.get(bytes([v]), -1) for v in range(256)]
        return self._byte_tokens

    def _hf(self):
        if self._tok is None:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_str(self.model.tokenizer_json)
        return self._tok

    def _spell(self, data: bytes, raw: bool) -> list[int]:
        table = self.byte_tokens
        out = [table[b] for b in data]
        if -1 in out:
            if not raw:
                raise TokenizerError(f"the model's vocabulary has no token for byte 0x{data[out.index(-1)]:02x}")
            v = len(self.token_bytes)
            out = [t if t >= 0 else v + b for t, b in zip(out, data)]
        return out

    def _text(self, data: bytes, raw: bool) -> list[int]:
        ids = self._hf().encode(data.decode("utf-8"), add_special_tokens=False).ids
        if b"".join(self.token_bytes[i] for i in ids) != data:
            return self._spell(data, raw)
        return ids

    def encode(self, data: bytes, raw: bool = False) -> list[int]:
        """Token ids whose bytes concatenate to exactly `data`. raw: spell a byte the vocabulary lacks with the
        raw-byte symbol V + byte (else TokenizerError)."""
        out: list[int] = []
        pos = 0
        while pos < len(data):
            try:
                data[pos:].decode("utf-8")
                out += self._text(data[pos:], raw)
                break
            except UnicodeDecodeError as e:
                if e.start:
                    out += self._text(data[pos: pos + e.start], raw)
                out += self._spell(data[pos + e.start: pos + e.end], raw)
                pos += e.end
        return out

    @property
    def symbol_lengths(self) -> np.ndarray:
        """Bytes each symbol spells: the tokens', then 1 for each raw-byte symbol."""
        import numpy as np

        if self._lens is None:
            self._lens = np.array([len(b) for b in self.token_bytes] + [1] * 256, dtype=np.int64)
        return self._lens

    def decode(self, ids: list[int]) -> bytes:
        v = len(self.token_bytes)
        return b"".join(self.token_bytes[i] if i < v else bytes((i - v,)) for i in ids)


def utf8_cut(data: bytes, limit: int) -> int:
    """A cut point <= limit that does not split a UTF-8 character (limit itself if no character straddles it)."""
    if limit >= len(data):
        return len(data)
    for back in range(min(4, limit + 1)):  # a lead byte is at most 3 bytes before the limit
        b = data[limit - back]
        if b & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            if back == 0:
                return limit
            size = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
            return limit - back if size > back else limit  # move back only if that character straddles
    return limit
