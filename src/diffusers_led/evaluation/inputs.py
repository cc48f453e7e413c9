"""What the evaluation edits and what it compares against.

Two kinds of ``data``:

- a **region-crop dataset** made by ``led-prepare-data`` (``<root>/train|test/metadata.jsonl`` + crops, and
  ``prepare_report.json``). The photos edited are the *source photos* of one split (``test`` by default): each
  metadata record names its photo relative to the input folder of ``led-prepare-data`` (``source``), and
  ``prepare_report.json`` records that folder (``input_dir``); ``photos_root`` overrides it when the photos moved.
  The real crops of the photos *not* edited are the references for FID/KID.
- a **folder of photos** (or one photo, or a list of paths): labelled if ``data.list_labelled_photos`` understands
  the layout (CK+ / EmoPy sample, RaFD names, metadata.csv/jsonl, one sub-folder per expression), else unlabelled.
  All photos are edited (or those of ``subjects``); the labelled photos that are not edited are the references.

When every labelled photo is edited there is nothing else to compare against, so the references are the edited
photos' own crops; the report says so (``references_include_evaluated``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.formats import (
    METADATA_FILE,
    REPORT_FILE,
    SPLITS,
    DatasetFormatError,
    guess_subject,
    list_labelled_photos,
    read_metadata_rows,
)
from ..utils import IMAGE_EXTENSIONS, escape_file_name, unescape_file_name


@dataclass
class EvalPhoto:
    """A photo to edit (or to cut reference crops from)."""

    name: str  # as text: bytes of the file name that are not UTF-8 are escaped (``utils.escape_file_name``)
    path: str | None
    subject: str
    expression: str | None = None
    image: np.ndarray | None = None  # set for in-memory inputs


@dataclass
class ReferenceCrop:
    """A real region crop with its expression label."""

    region: str
    expression: str
    crop: np.ndarray
    source: str


@dataclass
class EvalInputs:
    """The photos to edit, the real references, and how they were found."""

    kind: str
    root: str
    photos: list[EvalPhoto]
    reference_crops: list[ReferenceCrop] = field(default_factory=list)
    reference_photos: list[EvalPhoto] = field(default_factory=list)
    references_include_evaluated: bool = False
    notes: list[str] = field(default_factory=list)


def is_crop_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a region-crop dataset of ``led-prepare-data``."""
    path = Path(path)
    return path.is_dir() and any((path / split / METADATA_FILE).is_file() for split in SPLITS)


def _load_crop(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def load_crop_dataset(
    root: str | os.PathLike,
    split: str = "test",
    photos_root: str | os.PathLike | None = None,
    subjects: Sequence[str] | None = None,
) -> EvalInputs:
    """Photos of ``split`` (their source photos) to edit and the other photos' crops as references."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    records = {s: read_metadata_rows(root / s / METADATA_FILE) for s in SPLITS if (root / s / METADATA_FILE).is_file()}
    if not records.get(split):
        raise ValueError(
            f"{root} has no {split!r} split ({root / split / METADATA_FILE} is missing or empty); "
            f"use --split with one of {sorted(k for k, v in records.items() if v)}."
        )
    if photos_root is None:
        report_file = root / REPORT_FILE
        if not report_file.is_file():
            raise FileNotFoundError(
                f"{report_file} is missing, so the folder of the source photos is unknown: pass --photos-root "
                "(the --input_dir given to led-prepare-data)."
            )
        photos_root = json.loads(report_file.read_text(encoding="utf-8")).get("input_dir")
        if not photos_root:
            raise ValueError(f"{report_file} records no input_dir: pass --photos-root.")
    photos_root = Path(photos_root)
    if not photos_root.is_absolute() and not photos_root.is_dir():
        # led-prepare-data records the path as given; a relative one may be relative to the dataset's parent.
        candidate = root.parent / photos_root
        photos_root = candidate if candidate.is_dir() else photos_root

    wanted = set(subjects) if subjects else None
    photos: dict[str, EvalPhoto] = {}
    for record in records[split]:
        if wanted is not None and str(record.get("subject")) not in wanted:
            continue
        source = record["source"]
        if source not in photos:
            path = photos_root / unescape_file_name(source)  # the name as on disk (see escape_file_name)
            photos[source] = EvalPhoto(source, str(path), str(record.get("subject")), record.get("expression"))
    if not photos:
        raise ValueError(f"no photos of subjects {sorted(wanted or [])} in the {split!r} split of {root}")
    missing = [p.path for p in photos.values() if not Path(p.path).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(photos)} source photos of the {split!r} split are missing, e.g. {missing[0]}. "
            "The evaluation edits the full photos, not the crops: pass --photos-root with the folder that was "
            "led-prepare-data's --input_dir."
        )

    references, evaluated_refs = [], []
    for split_name, split_records in records.items():
        for record in split_records:
            crop_path = root / split_name / record["file_name"]
            if not crop_path.is_file():
                continue
            item = ReferenceCrop(record["region"], record["expression"], _load_crop(crop_path), record["source"])
            (evaluated_refs if record["source"] in photos else references).append(item)
    inputs = EvalInputs("crop_dataset", str(root), sorted(photos.values(), key=lambda p: (p.subject, p.name)))
    if not references:
        references = evaluated_refs
        inputs.references_include_evaluated = True
        inputs.notes.append("The dataset has no crops besides the edited photos': FID/KID references include them.")
    inputs.reference_crops = references
    inputs.notes.append(
        f"Edited the source photos of the {split!r} split ({len(photos)} photos, read from {photos_root}); "
        f"references are {len(references)} real crops of the dataset's other photos."
    )
    return inputs


def _images_under(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def load_photos(data: str | os.PathLike | Sequence, subjects: Sequence[str] | None = None) -> EvalInputs:
    """A folder of (optionally labelled) photos, one photo file, or a list of paths / RGB uint8 arrays."""
    if isinstance(data, (list, tuple)):
        photos = []
        for index, item in enumerate(data):
            if isinstance(item, np.ndarray):
                photos.append(EvalPhoto(f"image_{index}", None, f"image_{index}", image=item))
            else:
                path = Path(item)
                photos.append(EvalPhoto(escape_file_name(path.name), str(path), guess_subject(path.name)))
        return EvalInputs("photos", "<list>", photos, notes=["Unlabelled photos: no real references, so no FID/KID."])
    root = Path(data)
    if root.is_file():
        return EvalInputs(
            "photos",
            str(root),
            [EvalPhoto(escape_file_name(root.name), str(root), guess_subject(root.name))],
            notes=["One unlabelled photo: no real references, so no FID/KID."],
        )
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or folder")
    try:
        format_name, listing = list_labelled_photos(root)
        labelled = [EvalPhoto(p.source, str(p.path), p.subject, p.expression) for p in listing.photos]
    except DatasetFormatError:
        format_name, labelled = None, []
    if not labelled:
        photos = [
            EvalPhoto(escape_file_name(p.relative_to(root).as_posix()), str(p), guess_subject(p.name))
            for p in _images_under(root)
        ]
        if not photos:
            raise ValueError(f"no images in {root} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        if subjects:
            photos = [p for p in photos if p.subject in set(subjects)]
        return EvalInputs("photos", str(root), photos, notes=["Unlabelled photos: no real references, so no FID/KID."])
    if subjects:
        unknown = sorted(set(subjects) - {p.subject for p in labelled})
        if unknown:
            raise ValueError(
                f"subjects {unknown} are not in {root} (subjects: {sorted({p.subject for p in labelled})})"
            )
        evaluated = [p for p in labelled if p.subject in set(subjects)]
        others = [p for p in labelled if p.subject not in set(subjects)]
    else:
        evaluated, others = labelled, []
    inputs = EvalInputs("photos", str(root), sorted(evaluated, key=lambda p: (p.subject, p.name)))
    inputs.notes.append(f"Labelled photos ({format_name} layout): {len(evaluated)} edited.")
    if others:
        inputs.reference_photos = others
    else:
        inputs.reference_photos = list(evaluated)
        inputs.references_include_evaluated = True
        inputs.notes.append(
            "Every labelled photo is edited, so the FID/KID references are those photos' own crops (pass --subjects "
            "to hold some out, or --reference-data)."
        )
    return inputs


def load_inputs(
    data: str | os.PathLike | Sequence,
    split: str = "test",
    photos_root: str | os.PathLike | None = None,
    subjects: Sequence[str] | None = None,
) -> EvalInputs:
    """:func:`load_crop_dataset` for a region-crop dataset, else :func:`load_photos`."""
    if not isinstance(data, (list, tuple)) and is_crop_dataset(data):
        return load_crop_dataset(data, split, photos_root, subjects)
    return load_photos(data, subjects)


def load_references(data: str | os.PathLike) -> EvalInputs:
    """Reference data given separately: every crop of a crop dataset, or every labelled photo of a folder."""
    if is_crop_dataset(data):
        root = Path(data)
        refs = []
        for split in SPLITS:
            metadata = root / split / METADATA_FILE
            if metadata.is_file():
                for record in read_metadata_rows(metadata):
                    crop_path = root / split / record["file_name"]
                    if crop_path.is_file():
                        refs.append(
                            ReferenceCrop(
                                record["region"], record["expression"], _load_crop(crop_path), record["source"]
                            )
                        )
        return EvalInputs("crop_dataset", str(root), [], reference_crops=refs)
    inputs = load_photos(data)
    labelled = [p for p in inputs.photos if p.expression]
    if not labelled:
        raise ValueError(f"{data}: reference data must be a crop dataset or labelled photos")
    return EvalInputs("photos", str(data), [], reference_photos=labelled)


def select_photos(photos: Sequence[EvalPhoto], count: int | None) -> list[EvalPhoto]:
    """Up to ``count`` photos taken round-robin over subjects (sorted), so a cut keeps every subject it can."""
    if count is None or count >= len(photos):
        return list(photos)
    by_subject: dict[str, list[EvalPhoto]] = {}
    for photo in sorted(photos, key=lambda p: (p.subject, p.name)):
        by_subject.setdefault(photo.subject, []).append(photo)
    chosen: list[EvalPhoto] = []
    queues = [list(v) for _, v in sorted(by_subject.items())]
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen
