"""Small helpers shared by the package, its scripts and train_led.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

__all__ = ["file_digest", "write_text_atomically"]


def file_digest(path: Union[str, os.PathLike], algorithm: str = "sha256") -> str:
    """Hex digest of a file read in 1 MiB blocks (``hashlib.file_digest`` needs Python 3.11)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomically(path: Union[str, os.PathLike], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and an atomic rename: a crash leaves the old file
    or the new one, never a torn one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
