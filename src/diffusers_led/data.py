"""Turn a folder of labelled face photos into the region-crop dataset that ``train_led.py`` trains on.

The output is a Hugging Face ``datasets`` *imagefolder*::

    <output_dir>/train/<crop>.png + metadata.jsonl
    <output_dir>/test/<crop>.png  + metadata.jsonl
    <output_dir>/prepare_report.json

Each photo gives one crop per region (eyes, mouth), cut by the same :class:`~diffusers_led.regions.FaceRegionProcessor`
and read by the same :func:`~diffusers_led.image_processor.prepare_image` as inference. Crops are stored as RGB PNG;
grayscale sources (CK+) give crops whose three channels are equal, marked ``"grayscale": true`` in the metadata, so
a luminance model (``--color_mode luminance``) loses nothing and an RGB model learns gray.

The split is by subject: no subject has crops in both splits (``"1"``, ``"01"`` and ``"001"`` are one subject). A
photo present twice (a copy, a symbolic link, a metadata row listed twice) is used once; copies that disagree on the
expression are left out, and copies on both sides of the split stop the run. Photos that cannot be read or have no
detectable face are skipped and listed in the report. A re-run is idempotent and an interrupted run loses no finished
work: crops are written atomically, a photo's metadata lines are appended (and synced) only after all its crops exist,
and photos already in the metadata are not processed again.

Only files it wrote itself are ever replaced or deleted: every file is recorded in ``<output_dir>/.led-written``
(appended and synced before the file is written, so even a killed run's files are known), and an output folder that
holds other files (or the input photos) is refused unless ``allow_other_files`` is set; even then those files are left
as they are.

Label sources (``format``):

- ``rafd``: RaFD file names ``Rafd090_01_Caucasian_female_angry_frontal.jpg`` (camera angle, subject, ethnicity,
  gender, expression, gaze); only the frontal camera (``090``) by default, as the paper.
- ``ckplus``: the CK+ release, ``cohn-kanade-images/S005/001/S005_001_00000001.png`` with
  ``Emotion/S005/001/S005_001_00000011_emotion.txt`` label files (0 neutral, 1 anger, 2 contempt, 3 disgust,
  4 fear, 5 happy, 6 sadness, 7 surprise). The last frames of a labelled sequence are its peak, the first frames
  are neutral.
- ``ckplus_sample``: the CK+ sample shipped by the EmoPy package, as fetched by ``scripts/fetch_ckplus_sample.py``.
  EmoPy's folder names are wrong for many frames (``sample_image_series_directory/<emotion>/`` holds only the
  neutral onset frames 1-2; some ``anger`` peaks are disgust; the loose files have no subject id), so the labels come
  from the ``labels.csv`` that the script writes beside the images after checking every frame (``file_name``,
  ``subject``, ``expression`` and extras such as ``sequence``, ``frame``, ``kind``, ``eyes_usable``, ``note``).
- ``metadata``: ``metadata.csv`` or ``metadata.jsonl`` at the top of the input folder with ``file_name`` (relative
  path), ``expression`` (or ``label`` / ``emotion``) and optionally ``subject``.
- ``folders``: one sub-folder per expression (``happy/``, ``anger/`` ...; aliases are accepted).

Where a layout gives no subject id it is taken from the file name (a RaFD or CK+ pattern), else the file's stem
(each photo its own subject).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from .expressions import EXPRESSIONS, canonical_expression
from .image_processor import ImageLoadError, prepare_image
from .regions import FaceRegionProcessor
from .serialization import NAME_MAX, append_text, atomic_write, write_text_atomically
from .utils import IMAGE_EXTENSIONS, escape_file_name, file_digest

FORMATS = ("rafd", "ckplus", "ckplus_sample", "metadata", "folders")
SPLITS = ("train", "test")
METADATA_FILE = "metadata.jsonl"
REPORT_FILE = "prepare_report.json"
#: The record of the files led-prepare-data wrote in an output folder (one relative POSIX path a line). Hidden, so that
#: ``datasets`` does not take it for data.
WRITTEN_FILE = ".led-written"

RAFD_PATTERN = re.compile(
    r"^Rafd(?P<angle>\d{3})_(?P<subject>\d+)_(?P<ethnicity>[A-Za-z]+)_(?P<gender>male|female)_"
    r"(?P<expression>[A-Za-z]+)_(?P<gaze>frontal|left|right)$",
    re.IGNORECASE,
)
CKPLUS_NAME_PATTERN = re.compile(r"(?P<subject>S\d{3})_(?P<sequence>\d{3})(?:_(?P<frame>\d+))?", re.IGNORECASE)
CKPLUS_EMOTION_CODES = {
    0: "neutral",
    1: "angry",
    2: "contemptuous",
    3: "disgusted",
    4: "fearful",
    5: "happy",
    6: "sad",
    7: "surprised",
}
CKPLUS_SAMPLE_LABELS = "labels.csv"
# Format-specific metadata columns (the same keys on every line of a dataset, so `datasets` infers one schema).
_ATTRIBUTE_KEYS: dict[str, tuple[str, ...]] = {
    "rafd": ("angle", "ethnicity", "gender", "gaze"),
    "ckplus": ("sequence", "frame"),
    "ckplus_sample": ("sequence", "frame", "kind", "eyes_usable", "note"),
    "metadata": (),
    "folders": (),
}


class DatasetFormatError(ValueError):
    """Raised when the input folder's layout or labels cannot be understood."""


class OutputFolderError(ValueError):
    """Raised when the output folder holds files that led-prepare-data did not write and could replace or mix with."""


@dataclass
class LabelledPhoto:
    """A source photo with its label, found in the input folder.

    Attributes:
        path: the file.
        source: its path relative to the input folder (POSIX; bytes that are not UTF-8 written as ``\\xNN``, see
            :func:`~diffusers_led.utils.escape_file_name`), the photo's key in the output metadata.
        expression: a canonical label of :data:`~diffusers_led.expressions.EXPRESSIONS`.
        subject: the person's id; the split keeps each subject on one side.
        attributes: format-specific extras copied into the metadata (RaFD angle/gaze/gender/ethnicity,
            CK+ sequence/frame).
    """

    path: Path
    source: str
    expression: str
    subject: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class PhotoListing:
    """What a format reader found: usable photos and the files it had to leave out (with the reason)."""

    photos: list[LabelledPhoto] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass
class PrepareReport:
    """The outcome of :func:`prepare_dataset`, also written to ``prepare_report.json``."""

    input_dir: str
    output_dir: str
    format: str
    photos_found: int
    processed: int
    already_done: int
    skipped: list[dict[str, str]]
    splits: dict[str, dict[str, Any]]
    processor: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)


# ---------------------------------------------------------------------------------------------------------------------
# Finding labelled photos
# ---------------------------------------------------------------------------------------------------------------------


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p))


def _relative(path: Path, root: Path) -> str:
    return escape_file_name(path.relative_to(root).as_posix())


def _find_dir(root: Path, names: Sequence[str], max_depth: int = 3) -> Path | None:
    """The shallowest folder under ``root`` (itself included) whose name is one of ``names`` (case-insensitive)."""
    wanted = {name.lower() for name in names}
    level = [root]
    for _ in range(max_depth + 1):
        for folder in level:
            if folder.name.lower() in wanted:
                return folder
        level = sorted(child for folder in level for child in folder.iterdir() if child.is_dir())
    return None


def parse_rafd_name(file_name: str) -> dict[str, str] | None:
    """The fields of a RaFD file name (``angle``, ``subject``, ``ethnicity``, ``gender``, ``expression``, ``gaze``),
    or ``None`` when the name does not follow the RaFD pattern. The expression is returned as written."""
    match = RAFD_PATTERN.match(Path(file_name).stem)
    return match.groupdict() if match else None


def guess_subject(file_name: str) -> str:
    """A subject id from a file name: the RaFD subject number (``"01"``), the CK+ ``S###``, else the stem."""
    rafd = parse_rafd_name(file_name)
    if rafd:
        return rafd["subject"]
    ckplus = CKPLUS_NAME_PATTERN.search(Path(file_name).stem)
    if ckplus:
        return ckplus["subject"].upper()
    return escape_file_name(Path(file_name).stem)


def _label(name: str) -> str | None:
    try:
        return canonical_expression(name)
    except ValueError:
        return None


def list_rafd(input_dir: Path, angles: Sequence[str] = ("090",)) -> PhotoListing:
    """RaFD photos named ``Rafd<angle>_<subject>_<ethnicity>_<gender>_<expression>_<gaze>`` (any folder depth) taken
    by one of the camera ``angles``."""
    listing = PhotoListing()
    for path in _images_under(input_dir):
        fields = parse_rafd_name(path.name)
        source = _relative(path, input_dir)
        if fields is None:
            listing.skipped.append({"source": source, "reason": "file name does not follow the RaFD pattern"})
            continue
        if fields["angle"] not in angles:
            continue  # other camera angles are not wanted, not a problem
        expression = _label(fields["expression"])
        if expression is None:
            listing.skipped.append({"source": source, "reason": f"unknown expression {fields['expression']!r}"})
            continue
        attributes = {key: fields[key].lower() for key in ("angle", "ethnicity", "gender", "gaze")}
        listing.photos.append(LabelledPhoto(path, source, expression, fields["subject"], attributes))
    return listing


def _read_ckplus_code(label_file: Path) -> str | None:
    try:
        code = int(float(label_file.read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return None
    return CKPLUS_EMOTION_CODES.get(code)


def list_ckplus(input_dir: Path, peak_frames: int = 1, neutral_frames: int = 1) -> PhotoListing:
    """The CK+ release: for every sequence with an ``Emotion`` label, its last ``peak_frames`` frames with that label
    and its first ``neutral_frames`` frames as neutral. Unlabelled sequences are not used."""
    images_root = _find_dir(input_dir, ["cohn-kanade-images"])
    labels_root = _find_dir(input_dir, ["Emotion", "Emotion_labels"])
    if images_root is None or labels_root is None:
        raise DatasetFormatError(
            f"{input_dir} is not a CK+ folder: it needs cohn-kanade-images/ and Emotion/ (or Emotion_labels/)."
        )
    if peak_frames < 1 or neutral_frames < 0:
        raise ValueError("peak_frames must be >= 1 and neutral_frames >= 0.")
    listing = PhotoListing()
    for label_file in sorted(labels_root.rglob("*_emotion.txt")):
        sequence_dir = images_root / label_file.parent.relative_to(labels_root)
        label_source = _relative(label_file, input_dir)
        expression = _read_ckplus_code(label_file)
        if expression is None:
            listing.skipped.append({"source": label_source, "reason": "unreadable or unknown emotion code"})
            continue
        frames = _images_under(sequence_dir) if sequence_dir.is_dir() else []
        if not frames:
            listing.skipped.append(
                {"source": label_source, "reason": f"no frames in {_relative(sequence_dir, input_dir)}"}
            )
            continue
        neutral = frames[: min(neutral_frames, max(len(frames) - peak_frames, 0))]
        peak = frames[-peak_frames:]
        for frame_path, label in [(p, "neutral") for p in neutral] + [(p, expression) for p in peak]:
            match = CKPLUS_NAME_PATTERN.search(frame_path.stem)
            subject = match["subject"].upper() if match else sequence_dir.parent.name
            attributes = {
                "sequence": sequence_dir.name,
                "frame": int(match["frame"]) if match and match["frame"] else None,
            }
            listing.photos.append(
                LabelledPhoto(frame_path, _relative(frame_path, input_dir), label, subject, attributes)
            )
    return listing


def read_metadata_rows(metadata_file: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a ``metadata.csv`` / ``metadata.jsonl`` (blank lines skipped).

    Raises:
        DatasetFormatError: a JSONL line that is not JSON (with its line number).
    """
    metadata_file = Path(metadata_file)
    if metadata_file.suffix == ".csv":
        with open(metadata_file, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    rows = []
    with open(metadata_file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DatasetFormatError(f"{metadata_file}:{number}: not JSON ({error}).") from error
    return rows


def _csv_value(value: Any) -> Any:
    """CSV cells are strings: empty -> None, true/false -> bool, digits -> int."""
    if not isinstance(value, str):
        return value
    if value == "":
        return None
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return int(value) if value.isdigit() else value


def resolve_inside(root: Path, file_name: Any) -> tuple[Path | None, str | None]:
    """``root / file_name`` (normalised) when it stays inside ``root``, else ``(None, reason)``.

    Metadata comes from files anyone can write, so a ``file_name`` must be a relative path that leads to a file
    inside the folder: absolute paths, URLs, ``..`` that climbs out, and symbolic links pointing out are refused.
    """
    if not isinstance(file_name, str) or not file_name.strip():
        return None, f"{file_name!r} is not a file name"
    if "://" in file_name:
        return None, f"{file_name!r} is a URL; only relative paths inside {root} are allowed"
    if os.path.isabs(file_name) or Path(file_name).drive or file_name.startswith(("/", "\\")):
        return None, f"{file_name!r} is an absolute path; only relative paths inside {root} are allowed"
    path = Path(os.path.normpath(root / file_name))
    try:
        inside = path.resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        how = "climbs out of" if ".." in Path(file_name).parts else "leads (through a symbolic link) outside"
        return None, f"{file_name!r} {how} {root}; only files inside the dataset folder can be used"
    return path, None


def metadata_path_problems(folder: os.PathLike) -> list[str]:
    """Every ``file_name`` (and ``*_file_name``, ``file_names``) entry of the imagefolder metadata files
    (``metadata.jsonl`` / ``.csv`` / ``.parquet``) under ``folder`` that :func:`resolve_inside` refuses, as
    ``"<metadata file>:<row>: <reason>"``."""
    problems = []
    for metadata_file in sorted(Path(folder).rglob("metadata.*")):
        if metadata_file.suffix not in (".jsonl", ".csv", ".parquet") or not metadata_file.is_file():
            continue
        try:
            if metadata_file.suffix == ".parquet":
                import pyarrow.parquet as pq

                rows = pq.read_table(metadata_file).to_pylist()
            else:
                rows = read_metadata_rows(metadata_file)
        except (OSError, ValueError) as error:
            problems.append(f"{metadata_file}: unreadable ({error})")
            continue
        for number, row in enumerate(rows, 1):
            for key, value in row.items() if isinstance(row, dict) else []:
                if key in ("file_name", "file_names") or key.endswith(("_file_name", "_file_names")):
                    for name in value if isinstance(value, list) else [value]:
                        _, problem = resolve_inside(metadata_file.parent, name)
                        if problem:
                            problems.append(f"{metadata_file}:{number}: {problem}")
    return problems


def _is_crop_file(split_dir: Path, file_name: Any) -> bool:
    path, _ = resolve_inside(split_dir, file_name)
    return path is not None and path.parent == Path(os.path.normpath(split_dir)) and path.is_file()


def _list_labelled_rows(metadata_file: Path, input_dir: Path, attribute_keys: Sequence[str] = ()) -> PhotoListing:
    """Photos listed in a CSV / JSON-lines file with ``file_name`` (relative to the file's folder), ``expression``
    (or ``label`` / ``emotion``) and an optional ``subject``; ``attribute_keys`` columns are kept as extras."""
    listing = PhotoListing()
    for number, row in enumerate(read_metadata_rows(metadata_file), 1):
        file_name = row.get("file_name")
        raw_label = next((row[k] for k in ("expression", "label", "emotion") if row.get(k) not in (None, "")), None)
        if not file_name or raw_label is None:
            raise DatasetFormatError(f"{metadata_file.name} row {number}: needs file_name and expression, got {row}.")
        path, problem = resolve_inside(metadata_file.parent, file_name)
        if path is None:
            listing.skipped.append({"source": str(file_name), "reason": f"file_name refused: {problem}"})
            continue
        source = _relative(path, input_dir)
        expression = _label(str(raw_label))
        if expression is None:
            listing.skipped.append({"source": source, "reason": f"unknown expression {raw_label!r}"})
        elif not path.is_file():
            listing.skipped.append({"source": source, "reason": f"listed in {metadata_file.name} but missing"})
        else:
            subject = str(row.get("subject") or guess_subject(path.name))
            attributes = {key: _csv_value(row.get(key)) for key in attribute_keys}
            listing.photos.append(LabelledPhoto(path, source, expression, subject, attributes))
    return listing


def list_ckplus_sample(input_dir: Path) -> PhotoListing:
    """The EmoPy CK+ sample with the checked labels of ``scripts/fetch_ckplus_sample.py`` (its ``labels.csv``)."""
    marker = _find_dir(input_dir, ["sample_image_directory", "sample_image_series_directory"], max_depth=4)
    if marker is None:
        raise DatasetFormatError(
            f"{input_dir} is not the EmoPy CK+ sample: it needs sample_image_directory/ or "
            "sample_image_series_directory/ (run scripts/fetch_ckplus_sample.py)."
        )
    labels_file = marker.parent / CKPLUS_SAMPLE_LABELS
    if not labels_file.is_file():
        raise DatasetFormatError(
            f"{marker.parent} has no {CKPLUS_SAMPLE_LABELS}: EmoPy's folder names are wrong for many frames, so "
            "fetch the sample with `python scripts/fetch_ckplus_sample.py --output_dir DIR`, which writes the "
            "checked labels beside the images."
        )
    return _list_labelled_rows(labels_file, input_dir, _ATTRIBUTE_KEYS["ckplus_sample"])


def list_metadata(input_dir: Path) -> PhotoListing:
    """Photos listed in ``metadata.csv`` / ``metadata.jsonl`` with ``file_name``, ``expression`` (or ``label`` /
    ``emotion``) and an optional ``subject``."""
    candidates = [input_dir / "metadata.jsonl", input_dir / "metadata.csv"]
    metadata_file = next((p for p in candidates if p.is_file()), None)
    if metadata_file is None:
        raise DatasetFormatError(f"{input_dir} has no metadata.jsonl or metadata.csv.")
    return _list_labelled_rows(metadata_file, input_dir)


def list_folders(input_dir: Path) -> PhotoListing:
    """Photos in one sub-folder per expression (``<input_dir>/<expression>/**``)."""
    listing = PhotoListing()
    for folder in sorted(p for p in input_dir.iterdir() if p.is_dir()):
        expression = _label(folder.name)
        for path in _images_under(folder):
            source = _relative(path, input_dir)
            if expression is None:
                listing.skipped.append({"source": source, "reason": f"folder {folder.name!r} is not an expression"})
            else:
                listing.photos.append(LabelledPhoto(path, source, expression, guess_subject(path.name)))
    return listing


def detect_format(input_dir: Path) -> str:
    """Guess the layout of ``input_dir``: one of :data:`FORMATS`.

    Raises:
        DatasetFormatError: when no layout fits.
    """
    input_dir = Path(input_dir)
    if _find_dir(input_dir, ["cohn-kanade-images"]) and _find_dir(input_dir, ["Emotion", "Emotion_labels"]):
        return "ckplus"
    if _find_dir(input_dir, ["sample_image_directory", "sample_image_series_directory"], max_depth=4):
        return "ckplus_sample"
    if (input_dir / "metadata.jsonl").is_file() or (input_dir / "metadata.csv").is_file():
        return "metadata"
    if any(parse_rafd_name(p.name) for p in _images_under(input_dir)):
        return "rafd"
    if any(_label(p.name) for p in input_dir.iterdir() if p.is_dir()):
        return "folders"
    raise DatasetFormatError(
        f"Cannot tell the layout of {input_dir}: expected RaFD file names, a CK+ release (cohn-kanade-images/ + "
        "Emotion/), the EmoPy CK+ sample, a metadata.csv/metadata.jsonl, or one sub-folder per expression "
        f"({', '.join(EXPRESSIONS)}). Pass --format to choose one of {', '.join(FORMATS)}."
    )


def list_labelled_photos(
    input_dir: os.PathLike,
    format: str = "auto",
    rafd_angles: Sequence[str] = ("090",),
    ckplus_peak_frames: int = 1,
    ckplus_neutral_frames: int = 1,
) -> tuple[str, PhotoListing]:
    """Find the labelled photos of ``input_dir`` in the given (or detected) layout; returns ``(format, listing)``."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise DatasetFormatError(f"--input_dir {input_dir} is not a folder.")
    if format == "auto":
        format = detect_format(input_dir)
    readers: dict[str, Callable[[], PhotoListing]] = {
        "rafd": lambda: list_rafd(input_dir, rafd_angles),
        "ckplus": lambda: list_ckplus(input_dir, ckplus_peak_frames, ckplus_neutral_frames),
        "ckplus_sample": lambda: list_ckplus_sample(input_dir),
        "metadata": lambda: list_metadata(input_dir),
        "folders": lambda: list_folders(input_dir),
    }
    if format not in readers:
        raise DatasetFormatError(f"Unknown format {format!r}; use auto or one of {', '.join(FORMATS)}.")
    return format, readers[format]()


# ---------------------------------------------------------------------------------------------------------------------
# Subject-wise split
# ---------------------------------------------------------------------------------------------------------------------


def subject_key(subject: Any) -> str:
    """The identity of a subject id: surrounding spaces dropped and leading zeros of a numeric id ignored, so
    ``"1"``, ``"01"`` and ``"001"`` (one RaFD person written three ways) are one person."""
    text = str(subject).strip()
    return str(int(text)) if text.isdigit() else text


def normalise_subjects(photos: Sequence[LabelledPhoto]) -> dict[str, str]:
    """Give every photo of one person (:func:`subject_key`) the same subject id, its longest spelling (``"001"`` of
    ``"1"``, ``"01"``, ``"001"``: zero-padded ids sort as numbers). Returns key -> id."""
    spellings: dict[str, set] = {}
    for photo in photos:
        spellings.setdefault(subject_key(photo.subject), set()).add(str(photo.subject).strip())
    canonical = {key: min(names, key=lambda name: (-len(name), name)) for key, names in spellings.items()}
    for photo in photos:
        photo.subject = canonical[subject_key(photo.subject)]
    return canonical


def remove_duplicate_photos(listing: PhotoListing, test_set: set) -> None:
    """Keep one photo of each content (SHA-256 of the file: a copy, a symbolic link or a metadata row listed twice
    are the same photo), moving the others to ``listing.skipped``. Copies labelled with different expressions are
    all skipped (which label is right is unknown).

    Raises:
        DatasetFormatError: copies of one photo belong to subjects on both sides of the split (the same face would be
            trained on and tested on).
    """
    groups: dict[str, list[LabelledPhoto]] = {}
    for photo in sorted(listing.photos, key=lambda p: (p.path.is_symlink(), p.source)):  # the file before a link
        try:
            digest = file_digest(photo.path)
        except OSError as error:
            listing.skipped.append({"source": photo.source, "reason": f"unreadable: {error}"})
            continue
        groups.setdefault(digest, []).append(photo)
    kept = []
    for copies in groups.values():
        first = copies[0]
        splits = {"test" if subject_key(c.subject) in test_set else "train" for c in copies}
        if len(splits) > 1:
            raise DatasetFormatError(
                f"{', '.join(c.source for c in copies)} are the same photo (identical content) labelled as subjects "
                f"{sorted({c.subject for c in copies})}, which the split puts in train and test: fix the labels, or "
                "remove the copies."
            )
        if len({c.expression for c in copies}) > 1:
            labels = ", ".join(f"{c.source} ({c.expression})" for c in copies)
            reason = f"the same photo (identical content) has different expressions: {labels}; fix the labels"
            listing.skipped.extend({"source": c.source, "reason": reason} for c in copies)
            continue
        kept.append(first)
        reason = f"duplicate of {first.source} (identical content)"
        listing.skipped.extend({"source": c.source, "reason": reason} for c in copies[1:])
    listing.photos = kept


def split_subjects(
    subjects: Iterable[str],
    test_subjects: Sequence[str] | None = None,
    test_fraction: float = 0.05,
    seed: int = 0,
) -> set:
    """The subjects of the test split, as :func:`subject_key` gives them (``"01"`` and ``"1"`` are one subject).

    ``test_subjects`` names them; otherwise ``round(test_fraction * n)`` subjects (at least one when the fraction is
    positive and there are two or more subjects, never all of them) are drawn by a seeded hash, so the choice is the
    same on every run with the same subjects.
    """
    spelling = {}  # key -> the id as written (the draw below ranks the ids as written, as it always has)
    for subject in subjects:
        spelling.setdefault(subject_key(subject), str(subject).strip())
    subjects = sorted(spelling.values())
    if test_subjects:
        unknown = sorted({subject_key(s) for s in test_subjects} - set(spelling))
        if unknown:
            raise ValueError(f"--test_subjects {unknown} are not among the subjects found: {subjects}.")
        return {subject_key(s) for s in test_subjects}
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test_fraction must be in [0, 1), got {test_fraction}.")
    if test_fraction == 0.0 or len(subjects) < 2:
        return set()
    count = min(max(1, round(test_fraction * len(subjects))), len(subjects) - 1)
    ranked = sorted(subjects, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    return {subject_key(s) for s in ranked[:count]}


# ---------------------------------------------------------------------------------------------------------------------
# Writing the crop dataset
# ---------------------------------------------------------------------------------------------------------------------


def crop_file_name(source: str, region: str) -> str:
    """The crop's file name: the source's stem, a short hash of its relative path (stems repeat across folders) and
    the region. A long stem is shortened so that the name (and its ``.tmp`` while written) fits :data:`NAME_MAX`
    bytes; the hash keeps it unique."""
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:8]
    ending = f"-{digest}_{region}.png"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).stem)  # ASCII: one byte a character
    return stem[: NAME_MAX - len(".tmp") - len(ending)] + ending


def _save_png_atomically(array: np.ndarray, destination: Path) -> None:
    # Through <name>.tmp, which WrittenFiles knows as ours; not synced, like PIL's own save (thousands of crops).
    image = PIL.Image.fromarray(array)
    temporary = destination.with_name(destination.name + ".tmp")
    atomic_write(destination, lambda stream: image.save(stream, format="PNG"), temporary=temporary, sync=False)


def _append_lines(metadata_file: Path, records: Sequence[dict[str, Any]]) -> None:
    """Append records as JSON lines in one write and sync them to disk."""
    append_text(metadata_file, "".join(json.dumps(record) + "\n" for record in records))


def _load_split_metadata(split_dir: Path, regions: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The finished photos of a split: source -> its records. Records of a photo that an interruption left
    incomplete (a torn last line, a region missing, a crop file missing) are dropped and the file rewritten."""
    metadata_file = split_dir / METADATA_FILE
    if not metadata_file.is_file():
        return {}
    by_source: dict[str, list[dict[str, Any]]] = {}
    dropped = False
    for line in metadata_file.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            by_source.setdefault(record["source"], []).append(record)
        except (json.JSONDecodeError, KeyError, TypeError):
            dropped = True
    finished = {}
    for source, records in by_source.items():
        present = {r["region"] for r in records if _is_crop_file(split_dir, r.get("file_name"))}
        if set(regions) <= present:
            finished[source] = records
        else:
            dropped = True
    if dropped:
        text = "".join(json.dumps(r) + "\n" for records in finished.values() for r in records)
        write_text_atomically(metadata_file, text)
    return finished


class WrittenFiles:
    """The files led-prepare-data (or another :attr:`writer`) wrote in ``output_dir``, as paths relative to it
    (``"train/x_eyes.png"``).

    The record (:data:`WRITTEN_FILE`) is appended and synced *before* each file is written, so the files of a run
    killed mid-write are known too; a temporary ``<name>.tmp`` belongs with ``<name>``. A folder from before the record
    existed is recognised by its ``prepare_report.json``: the report, the metadata files and the crops they list.
    """

    #: The command named in messages, the record's file name and the option that names the folder; another command
    #: keeping its own record (led-evaluate) sets its own.
    writer = "led-prepare-data"
    record_name = WRITTEN_FILE
    folder_option = "--output_dir"

    def __init__(self, output_dir: os.PathLike):
        self.output_dir = Path(output_dir)
        self.record = self.output_dir / self.record_name
        self.paths: set = set()
        if self.record.is_file():
            self.paths = {line for line in self.record.read_text(encoding="utf-8").splitlines() if line}
        else:
            earlier = self.files_before_record()
            if earlier:
                self.rewrite(earlier)

    def files_before_record(self) -> set[str]:
        """The files of a folder written before the record existed, recognised by its report."""
        if not _is_our_report(self.output_dir / REPORT_FILE):
            return set()
        paths = {REPORT_FILE}
        for split in SPLITS:
            metadata_file = self.output_dir / split / METADATA_FILE
            if metadata_file.is_file():
                paths.add(f"{split}/{METADATA_FILE}")
                paths.update(f"{split}/{name}" for name in _listed_file_names(metadata_file))
        return paths

    def owns(self, relative: str) -> bool:
        """Whether ``relative`` (a path relative to the output folder) was written by this command."""
        if relative in (self.record_name, self.record_name + ".tmp"):
            return True
        return relative in self.paths or (relative.endswith(".tmp") and relative[: -len(".tmp")] in self.paths)

    def claim(self, relatives: Sequence[str]) -> None:
        """Record that the files ``relatives`` are about to be written (one synced append).

        Raises:
            OutputFolderError: one of them exists and was not written by this command.
        """
        new = [relative for relative in relatives if relative not in self.paths]
        for relative in new:
            path = self.output_dir / relative
            if path.exists() or path.is_symlink():
                raise OutputFolderError(
                    f"{path} was not written by {self.writer} and would be replaced: move it away, or use a new "
                    f"{self.folder_option}."
                )
        if new:
            append_text(self.record, "".join(relative + "\n" for relative in new))
            self.paths.update(new)

    def rewrite(self, relatives: Iterable[str]) -> None:
        """Replace the record with ``relatives`` (after the files no longer wanted were deleted)."""
        self.paths = set(relatives)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.record, "".join(relative + "\n" for relative in sorted(self.paths)))

    def others(self) -> list[str]:
        """The entries of the output folder (and of its ``train/`` and ``test/``) that led-prepare-data did not
        write, as relative paths; folders other than the splits count as one entry. The files a file manager leaves
        (``.DS_Store``, ``Thumbs.db``, other hidden files) do not count: they are not data (and are never touched)."""
        found = []
        if not self.output_dir.is_dir():
            return found
        for entry in sorted(self.output_dir.iterdir()):
            if entry.name in SPLITS and entry.is_dir() and not entry.is_symlink():
                found.extend(f"{entry.name}/{child.name}" for child in sorted(entry.iterdir()))
            else:
                found.append(entry.name)
        return [relative for relative in found if not self.owns(relative) and not _is_clutter(relative)]


def _is_clutter(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return name.startswith(".") or name.lower() in ("thumbs.db", "desktop.ini")


def _is_our_report(report_file: Path) -> bool:
    try:
        report = json.loads(report_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"processor", "splits", "format"} <= set(report)


def _listed_file_names(metadata_file: Path) -> list[str]:
    names = []
    for line in metadata_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            name = json.loads(line).get("file_name")
        except (ValueError, AttributeError):
            continue
        if isinstance(name, str) and "/" not in name and "\\" not in name and name not in ("", ".", ".."):
            names.append(name)
    return names


def check_output_folder(input_dir: Path, output_dir: Path, written: WrittenFiles, allow_other_files: bool) -> None:
    """Refuse an output folder that would mix the crops with files led-prepare-data did not write.

    Raises:
        OutputFolderError: the input photos are inside the output folder (always refused inside ``train/`` or
            ``test/``, where the crops would be written among them), or the folder holds other files and
            ``allow_other_files`` is not set.
    """
    resolved = output_dir.resolve()
    for split in SPLITS:
        if input_dir.is_relative_to(resolved / split):
            raise OutputFolderError(
                f"--input_dir {input_dir} is inside {output_dir / split}, where the crops are written: they would "
                "be mixed with the photos. Choose an --output_dir outside the input folder, e.g. a new folder."
            )
    if allow_other_files:
        return
    if input_dir.is_relative_to(resolved):
        raise OutputFolderError(
            f"--input_dir {input_dir} is inside --output_dir {output_dir}. Choose a new --output_dir outside the "
            "photos, or pass --allow_other_files to use this one (files led-prepare-data did not write are never "
            "replaced or deleted)."
        )
    others = written.others()
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise OutputFolderError(
            f"--output_dir {output_dir} holds files led-prepare-data did not write ({shown}). Choose a new or "
            "empty --output_dir, or pass --allow_other_files to use this one (those files are never replaced or "
            "deleted)."
        )


def _remove_strays(split_dir: Path, records: Iterable[dict[str, Any]], written: WrittenFiles) -> None:
    """Delete the crop files an interrupted run wrote that no metadata line refers to, and its temporary files.
    Only files in the record of written files are deleted."""
    keep = {r["file_name"] for r in records} | {METADATA_FILE}
    for path in split_dir.iterdir():
        relative = f"{split_dir.name}/{path.name}"
        if written.owns(relative) and path.name not in keep and not path.is_dir():
            path.unlink()


def _split_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "crops": len(records),
        "photos": len({r["source"] for r in records}),
        "subjects": sorted({r["subject"] for r in records}),
        "expressions": dict(sorted(Counter(r["expression"] for r in records).items())),
        "regions": dict(sorted(Counter(r["region"] for r in records).items())),
    }


def read_crop_geometry(data_dir: os.PathLike) -> dict[str, Any] | None:
    """The crop geometry (:attr:`FaceRegionProcessor.geometry`) recorded in ``data_dir/prepare_report.json``;
    ``None`` without a report. Reports written before the geometry was recorded describe the paper's boxes."""
    report_file = Path(data_dir) / REPORT_FILE
    if not report_file.is_file():
        return None
    processor = json.loads(report_file.read_text()).get("processor", {})
    if "geometry" in processor:
        return processor["geometry"]
    return FaceRegionProcessor(detector="dlib", regions=tuple(processor.get("regions", ("eyes", "mouth")))).geometry


def prepare_dataset(
    input_dir: os.PathLike,
    output_dir: os.PathLike,
    format: str = "auto",
    test_subjects: Sequence[str] | None = None,
    test_fraction: float = 0.05,
    seed: int = 0,
    regions: Sequence[str] = ("eyes", "mouth"),
    detector: str = "dlib",
    crop_size: int = 64,
    rafd_angles: Sequence[str] = ("090",),
    ckplus_peak_frames: int = 1,
    ckplus_neutral_frames: int = 1,
    processor: Any | None = None,
    progress: bool = True,
    region_anchor: str = "landmarks",
    allow_other_files: bool = False,
) -> PrepareReport:
    """Build (or complete) the region-crop imagefolder dataset of ``input_dir`` in ``output_dir``.

    Args:
        input_dir: the labelled photos.
        output_dir: where ``train/``, ``test/`` and ``prepare_report.json`` go; an existing output is completed.
        format: ``"auto"`` or one of :data:`FORMATS`.
        test_subjects / test_fraction / seed: the subject-wise split, see :func:`split_subjects`.
        regions: the regions to crop.
        detector: the face detector of the :class:`~diffusers_led.regions.FaceRegionProcessor` (``"dlib"``,
            ``"yunet:<path.onnx>"``).
        crop_size: the crop side (the UNet's ``sample_size``).
        rafd_angles: RaFD camera angles to keep (``"090"`` is frontal).
        ckplus_peak_frames / ckplus_neutral_frames: frames taken from the end / start of each labelled CK+ sequence.
        processor: an object with the ``FaceRegionProcessor.extract`` interface to use instead of building one.
        progress: show a progress bar.
        region_anchor: where the region boxes sit, ``"landmarks"`` (the paper) or ``"template"``, see
            :class:`~diffusers_led.regions.FaceRegionProcessor`. Recorded in the report; train_led.py copies it
            into the model so that editing cuts the same crops.
        allow_other_files: use an ``output_dir`` that holds files led-prepare-data did not write (they are left as
            they are; one that would have to be replaced stops the run).

    Returns:
        The :class:`PrepareReport` (also written to ``output_dir/prepare_report.json``).

    Raises:
        DatasetFormatError: unknown layout or no labelled photos.
        OutputFolderError: ``output_dir`` holds other files, see :func:`check_output_folder`.
        ValueError: a split or a crop geometry that contradicts the one already in ``output_dir``.
    """
    # Absolute, so the report (which led-evaluate reads to find the source photos) works from any folder.
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir)
    if output_dir.resolve().is_relative_to(input_dir):
        raise ValueError(f"--output_dir {output_dir} must not be inside --input_dir {input_dir}.")
    format, listing = list_labelled_photos(input_dir, format, rafd_angles, ckplus_peak_frames, ckplus_neutral_frames)
    if not listing.photos:
        raise DatasetFormatError(
            f"No labelled photos found in {input_dir} (format {format}); {len(listing.skipped)} files left out"
            + (f", e.g. {listing.skipped[0]}" if listing.skipped else "")
            + "."
        )
    normalise_subjects(listing.photos)
    test_set = split_subjects([p.subject for p in listing.photos], test_subjects, test_fraction, seed)
    remove_duplicate_photos(listing, test_set)

    written = WrittenFiles(output_dir)
    check_output_folder(input_dir, output_dir, written, allow_other_files)
    done = _finished_photos(output_dir, written, regions, test_set)
    if processor is None:
        processor = FaceRegionProcessor(
            detector=detector, regions=tuple(regions), crop_size=crop_size, region_anchor=region_anchor
        )
    geometry = getattr(processor, "geometry", None)
    _check_same_geometry(output_dir, done, geometry)

    skipped = list(listing.skipped)
    processed = already_done = 0
    photos = sorted(listing.photos, key=lambda p: p.source)
    if progress:
        from tqdm.auto import tqdm

        photos = tqdm(photos, desc="Cropping faces", unit="photo")
    for photo in photos:
        split = "test" if subject_key(photo.subject) in test_set else "train"
        if photo.source in done[split]:
            already_done += 1
            continue
        records, reason = _crop_photo(photo, format, processor, regions, output_dir / split, written)
        if records is None:
            skipped.append({"source": photo.source, "reason": reason})
            continue
        done[split][photo.source] = records
        processed += 1

    report = PrepareReport(
        input_dir=str(input_dir),
        output_dir=str(output_dir),
        format=format,
        photos_found=len(listing.photos),
        processed=processed,
        already_done=already_done,
        skipped=skipped,
        splits=_finish_splits(output_dir, done, written),
        processor={
            "repr": repr(processor),
            "regions": list(regions),
            "crop_size": crop_size,
            "detector": str(detector),
            **({"geometry": geometry} if geometry is not None else {}),
        },
    )
    write_text_atomically(output_dir / REPORT_FILE, report.to_json())
    return report


def _finished_photos(
    output_dir: Path, written: WrittenFiles, regions: Sequence[str], test_set: set
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Create the split folders and read the photos an earlier run finished (split -> source -> records).

    Raises:
        ValueError: a subject that an earlier run put in the other split.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    written.claim([REPORT_FILE, *(f"{split}/{METADATA_FILE}" for split in SPLITS)])
    done: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for split in SPLITS:
        split_dir = output_dir / split
        split_dir.mkdir(parents=True, exist_ok=True)
        done[split] = _load_split_metadata(split_dir, regions)
        for _source, records in done[split].items():
            wanted = "test" if subject_key(records[0]["subject"]) in test_set else "train"
            if wanted != split:
                raise ValueError(
                    f"{output_dir} holds subject {records[0]['subject']!r} in {split}, but this run puts it in "
                    f"{wanted}: use the same --test_subjects/--test_fraction/--seed as before, or a new --output_dir."
                )
    return done


def _check_same_geometry(output_dir: Path, done: dict[str, dict], geometry: dict[str, Any] | None) -> None:
    """Refuse to add crops of another geometry (region anchor, margins) to crops already in ``output_dir``."""
    if not any(done[split] for split in SPLITS):
        return
    previous = read_crop_geometry(output_dir)
    if geometry is not None and previous is not None and previous != geometry:
        raise ValueError(
            f"{output_dir} holds crops cut with {previous}, but this run cuts {geometry}: one dataset must not "
            "mix crop geometries. Use the same --region_anchor as before, or a new --output_dir."
        )


def _crop_photo(
    photo: LabelledPhoto,
    format: str,
    processor: Any,
    regions: Sequence[str],
    split_dir: Path,
    written: WrittenFiles,
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Detect the labelled face of one photo, write its region crops into ``split_dir`` and append their metadata:
    ``(records, None)``, or ``(None, reason)`` when the photo is skipped.

    Raises:
        ImportError, OSError: a missing detector model or a full disk, which would fail every photo.
    """
    try:
        image = prepare_image(photo.path)
    except ImageLoadError as error:
        return None, f"unreadable: {error}"
    try:
        faces = processor.extract(image.rgb, regions=tuple(regions))
    except (ImportError, OSError):
        raise  # a missing detector model fails every photo: stop with its message
    except Exception as error:  # one odd photo must not end the run (KeyboardInterrupt still does)
        return None, f"face detection failed ({type(error).__name__}: {error})"
    if not faces:
        return None, "no face detected"
    face = faces[0]  # largest first: the labelled person
    written.claim([f"{split_dir.name}/{crop_file_name(photo.source, region)}" for region in regions])
    records = []
    for region in regions:
        file_name = crop_file_name(photo.source, region)
        try:
            _save_png_atomically(np.ascontiguousarray(face.crops[region]), split_dir / file_name)
        except OSError as error:  # a full disk fails every photo: stop, but say where it happened
            raise OSError(f"{photo.source}: its {region} crop could not be written ({error}).") from error
        records.append(
            {
                "file_name": file_name,
                "region": region,
                "expression": photo.expression,
                "subject": photo.subject,
                "source": photo.source,
                "source_format": format,
                "grayscale": image.grayscale,
                "image_size": [int(image.rgb.shape[1]), int(image.rgb.shape[0])],
                "num_faces": len(faces),
                "face_score": float(face.face.score),
                "landmarks": np.round(np.asarray(face.face.landmarks, dtype=np.float64), 2).tolist(),
                "region_box": [round(float(v), 2) for v in face.boxes[region]],
                **{key: photo.attributes.get(key) for key in _ATTRIBUTE_KEYS[format]},
            }
        )
    _append_lines(split_dir / METADATA_FILE, records)
    return records, None


def _finish_splits(output_dir: Path, done: dict[str, dict], written: WrittenFiles) -> dict[str, dict[str, Any]]:
    """Remove what an interrupted run left beside the finished crops, record the files kept, and summarise each
    split."""
    splits = {}
    kept = {REPORT_FILE}
    for split in SPLITS:
        records = [r for records in done[split].values() for r in records]
        _remove_strays(output_dir / split, records, written)
        splits[split] = _split_summary(records)
        kept.update(f"{split}/{name}" for name in [METADATA_FILE, *(r["file_name"] for r in records)])
    written.rewrite(kept)
    return splits
