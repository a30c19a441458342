"""The paper's three modalities as byte strings, prepared as Delétang et al. (ICLR 2024, §3.1) prepared them.

- text: the file's bytes as they are;
- image: 8-bit grayscale (Pillow's ITU-R 601-2 luma), cut into 32x64 patches (32 rows of 64 pixels), each
  flattened row by row into one 2048-byte sample;
- audio: mixed to mono, resampled to 16 kHz, quantized to 8 bits (unsigned, 128 = silence, as in 8-bit WAV);
  cut into 2048-byte samples (a last, shorter piece is dropped).

A byte limit takes the first bytes of a text, and of an image or a recording that many 2048-byte samples
spread evenly over the whole (the paper draws its samples from whole data sets).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PATCH_H, PATCH_W = 32, 64
SAMPLE = PATCH_H * PATCH_W  # 2048 bytes: one image patch or 128 ms of audio
AUDIO_RATE = 16000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aif", ".aiff"}


@dataclass
class Sample:
    name: str  # the source file's name
    modality: str  # "text", "image" or "audio"
    data: bytes
    how: str  # how the bytes were taken from the file


def modality_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else "text"


def image_patches(path: Path) -> list[bytes]:
    """All whole 32x64 patches of the image in grayscale, in raster order."""
    from PIL import Image

    a = np.asarray(Image.open(path).convert("L"))
    h, w = a.shape[0] // PATCH_H, a.shape[1] // PATCH_W
    p = a[: h * PATCH_H, : w * PATCH_W].reshape(h, PATCH_H, w, PATCH_W).swapaxes(1, 2)
    return [bytes(x) for x in p.reshape(h * w, SAMPLE)]


def resample(x: np.ndarray, rate_in: int, rate_out: int, half_width: int = 16) -> np.ndarray:
    """Band-limited resampling: a Kaiser-windowed sinc, cut off at the lower rate's Nyquist frequency."""
    if rate_in == rate_out:
        return x
    step = rate_in / rate_out
    f = min(1.0, 1.0 / step)  # cut-off as a fraction of the input's Nyquist frequency
    reach = int(np.ceil(half_width / f))  # taps on each side, in input samples
    n_out = len(x) * rate_out // rate_in
    out = np.empty(n_out)
    for s in range(0, n_out, 4096):
        t = np.arange(s, min(n_out, s + 4096)) * step
        k = np.floor(t).astype(np.int64)[:, None] + np.arange(-reach + 1, reach + 1)
        d = t[:, None] - k
        w = np.i0(8.6 * np.sqrt(np.clip(1.0 - (d / reach) ** 2, 0.0, None))) / np.i0(8.6)
        xs = np.where((k >= 0) & (k < len(x)), x[np.clip(k, 0, len(x) - 1)], 0.0)
        out[s: s + len(t)] = (f * np.sinc(f * d) * w * xs).sum(1)
    return out


def audio_u8(path: Path) -> bytes:
    """The recording as 8-bit unsigned mono samples at AUDIO_RATE."""
    import soundfile as sf

    x, rate = sf.read(str(path), dtype="float64", always_2d=True)
    x = resample(x.mean(1), rate, AUDIO_RATE)
    return (np.clip(np.round(x * 128), -128, 127) + 128).astype(np.uint8).tobytes()


def spread(pieces: list[bytes], n: int) -> list[bytes]:
    """n of the pieces, evenly spaced: the middle one of each of n equal stretches (all if n >= their count)."""
    if n >= len(pieces):
        return pieces
    return [pieces[(2 * i + 1) * len(pieces) // (2 * n)] for i in range(n)]


def prepare(path: Path, max_bytes: int | None = None, raw: bool = False) -> Sample:
    """The file as the paper would feed it to a compressor (raw: its bytes as they are, for every kind)."""
    kind = "text" if raw else modality_of(path)
    if kind == "text":
        data = path.read_bytes()
        took = data[:max_bytes] if max_bytes else data
        how = f"first {len(took)} of {len(data)} bytes" if len(took) < len(data) else f"all {len(data)} bytes"
        return Sample(path.name, "text", took, how)
    if kind == "image":
        pieces, what = image_patches(path), "grayscale 32x64 patches"
    else:
        data = audio_u8(path)
        whole = range(0, len(data) - SAMPLE + 1, SAMPLE)  # whole samples only, like the image patches
        pieces, what = [data[i: i + SAMPLE] for i in whole], "2048-byte pieces of 8-bit 16 kHz mono"
    took = spread(pieces, max(1, max_bytes // SAMPLE)) if max_bytes else pieces
    how = (f"{len(took)} of {len(pieces)} {what}" + (", evenly spaced" if len(took) < len(pieces) else ""))
    return Sample(path.name, kind, b"".join(took), how)
