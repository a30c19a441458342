"""The build backend: setuptools' (setuptools.build_meta), plus lmcodec-fsspec.pth at the root of every wheel.

fsspec has no entry point for compressions, so lmcodec registers "lmz" from a start-up hook: a .pth file in
site-packages that imports the tiny module _lmcodec_fsspec_hook. setuptools cannot put a .pth into a wheel's root
(nor into an editable wheel) through its configuration, so this in-tree backend (PEP 517 `backend-path`) adds
it to the wheel that setuptools built, with its line in the wheel's RECORD. Only public interfaces are used:
the PEP 517 hooks and the wheel format (a zip whose RECORD lists each file's sha256 and size).
"""
from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every other hook as setuptools has it)

PTH = "lmcodec-fsspec.pth"
SOURCE = Path(__file__).resolve().parent.parent / PTH


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    _add_pth(Path(wheel_directory) / name)
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    _add_pth(Path(wheel_directory) / name)
    return name


def _add_pth(wheel: Path) -> None:
    """Rewrite the wheel with the .pth at its root and listed in its RECORD."""
    data = SOURCE.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                body = f"{PTH},sha256={digest},{len(data)}\n".encode() + body
            elif item.filename == PTH:
                continue
            dst.writestr(item, body)
        dst.writestr(PTH, data)
    os.replace(tmp, wheel)
