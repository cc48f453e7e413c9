"""The real-photo evaluation set: a manifest of colour photos of real people that packages on PyPI and npm ship.

The manifest (``real_photos.json`` beside this module) lists per photo its file name, the package and the path
inside it, SHA-256, licence, author, the people in it (one person id per detected face) and a split: ``tune`` (may
be used to choose settings) or ``test`` (final: only for reporting, never for tuning or default choices).
``scripts/fetch_real_photos.py`` downloads and checks the photos; ``led-evaluate --data <output>/test`` measures a
model on them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "FINAL_SPLIT",
    "MANIFEST_PATH",
    "SPLITS",
    "final_split_photos",
    "load_manifest",
    "people_by_split",
    "validate_manifest",
]

MANIFEST_PATH = Path(__file__).with_name("real_photos.json")
SPLITS = ("tune", "test")
FINAL_SPLIT = "test"
_PHOTO_KEYS = ("file_name", "split", "source", "member", "sha256", "licence", "author", "faces_detected", "people")


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless every photo has its fields, a known source and split, a SHA-256, a licence and
    people with ids, face indices below its face count, and no person is in both splits."""
    sources = manifest.get("sources") or {}
    names, split_of = set(), {}
    for photo in manifest.get("photos") or []:
        missing = [k for k in _PHOTO_KEYS if photo.get(k) in (None, "", [])]
        if missing:
            raise ValueError(f"manifest photo {photo.get('file_name')!r} lacks {missing}")
        name = photo["file_name"]
        if name in names:
            raise ValueError(f"manifest lists {name!r} twice")
        names.add(name)
        if photo["source"] not in sources:
            raise ValueError(f"{name}: unknown source {photo['source']!r} (sources: {sorted(sources)})")
        if photo["split"] not in SPLITS:
            raise ValueError(f"{name}: split must be one of {SPLITS}, got {photo['split']!r}")
        if len(photo["sha256"]) != 64:
            raise ValueError(f"{name}: sha256 must be 64 hex digits")
        faces = [p["face"] for p in photo["people"]]
        if len(set(faces)) != len(faces) or not all(0 <= f < photo["faces_detected"] for f in faces):
            raise ValueError(f"{name}: face indices {faces} must be distinct and below faces_detected")
        for person in photo["people"]:
            previous = split_of.setdefault(person["person"], photo["split"])
            if previous != photo["split"]:
                raise ValueError(f"person {person['person']!r} is in both splits ({previous} and {photo['split']})")
    if not names:
        raise ValueError("the manifest lists no photos")


def load_manifest(path: str | os.PathLike = MANIFEST_PATH) -> dict[str, Any]:
    """The manifest as a dict, validated (:func:`validate_manifest`)."""
    manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    validate_manifest(manifest)
    return manifest


def people_by_split(manifest: dict[str, Any]) -> dict[str, set]:
    """``{split: {person ids}}``; group photos count once per person in them."""
    out: dict[str, set] = {split: set() for split in SPLITS}
    for photo in manifest["photos"]:
        out[photo["split"]].update(p["person"] for p in photo["people"])
    return out


def final_split_photos(folder: str | os.PathLike, manifest: dict[str, Any] | None = None) -> list[str]:
    """The photos in ``folder`` that are in the manifest's final test split, recognised by content (SHA-256), so a
    renamed or copied test photo is caught too; all of them when the folder itself is named after that split.
    Default choices refuse such a folder: the final split is only for reporting a model already chosen."""
    from ..utils import file_digest

    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if folder.name == FINAL_SPLIT:
        return [p.name for p in files]
    manifest = manifest or load_manifest()
    final = {photo["sha256"] for photo in manifest["photos"] if photo["split"] == FINAL_SPLIT}
    return [p.name for p in files if file_digest(p) in final]
