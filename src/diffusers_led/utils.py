"""Small helpers shared by the package, its scripts and train_led.py."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "IMAGE_EXTENSIONS",
    "escape_file_name",
    "file_digest",
    "lazy_exports",
    "unescape_file_name",
]

#: The photo file types the package reads (led-edit, led-prepare-data, led-evaluate, the examples), lower case.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".avif", ".ppm", ".pgm")

# Bytes of a file name that are not UTF-8 reach Python as lone surrogates U+DC80..U+DCFF (os.fsdecode's
# "surrogateescape"); escape_file_name writes them as \xNN.
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def escape_file_name(name: str) -> str:
    """``name`` (a file name or path as Python gives it) as valid Unicode text: each byte that is not UTF-8 (a
    Latin-1 ``é`` on a UTF-8 system) becomes ``\\xNN``. Such text can be printed, written to JSON and read by
    ``datasets`` (which refuses the lone surrogates Python uses for those bytes); :func:`unescape_file_name` gives the
    name back. Names that are valid UTF-8 are returned unchanged."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unescape_file_name(text: str) -> str:
    """The file name :func:`escape_file_name` made ``text`` of."""
    return _ESCAPED_BYTE.sub(lambda match: chr(0xDC00 + int(match[1], 16)), text)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file read in 1 MiB blocks (``hashlib.file_digest`` needs Python 3.11)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's module-level ``__getattr__`` and ``__dir__`` (PEP 562) that import each of ``exports`` (public name
    -> relative module, e.g. ``".runner"``) on first use and keep it, so importing the package imports none of its
    heavy modules (torch, OpenCV, PyAV): ``__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)``."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
