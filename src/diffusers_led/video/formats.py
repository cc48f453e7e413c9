"""The clip files led-edit reads and writes (standard library only: the command line checks names before
anything heavy is imported)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_VIDEO_QUALITY", "OUTPUT_CONTAINERS", "VIDEO_EXTENSIONS", "is_video_path"]

#: The clip types led-edit reads (any container and codec FFmpeg decodes; these are the ones told apart by name).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
#: Output container -> (FFmpeg format, video encoder, audio codecs the container takes as they are; None: any).
OUTPUT_CONTAINERS: dict[str, tuple[str, str, frozenset[str] | None]] = {
    ".mp4": ("mp4", "libx264", frozenset({"aac", "mp3", "opus", "flac", "ac3", "eac3", "alac"})),
    ".m4v": ("mp4", "libx264", frozenset({"aac", "mp3", "opus", "flac", "ac3", "eac3", "alac"})),
    ".mov": ("mov", "libx264", frozenset({"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "ac3"})),
    ".mkv": ("matroska", "libx264", None),
    ".webm": ("webm", "libvpx-vp9", frozenset({"opus", "vorbis"})),
}
#: x264's CRF scale (0 lossless .. 51): 18 is visually lossless for most clips.
DEFAULT_VIDEO_QUALITY = 18


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a clip led-edit reads (by its extension)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS
