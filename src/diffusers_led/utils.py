"""Small helpers shared by the package, its scripts and train_led.py."""

from __future__ import annotations

import hashlib
import os
from typing import Union

__all__ = ["file_digest"]


def file_digest(path: Union[str, os.PathLike], algorithm: str = "sha256") -> str:
    """Hex digest of a file read in 1 MiB blocks (``hashlib.file_digest`` needs Python 3.11)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
