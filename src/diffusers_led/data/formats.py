"""Finding labelled face photos: the label formats ``led-prepare-data`` reads (:func:`list_labelled_photos`).

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
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..labels import EXPRESSIONS, canonical_expression
from ..utils import IMAGE_EXTENSIONS, escape_file_name

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


def _ckplus_sample_labels(folder: Path) -> Path:
    """The checked ``labels.csv`` of a CK+ sample folder, or a :class:`DatasetFormatError` saying how to get it."""
    labels_file = folder / CKPLUS_SAMPLE_LABELS
    if not labels_file.is_file():
        raise DatasetFormatError(
            f"{folder} has no {CKPLUS_SAMPLE_LABELS}: EmoPy's folder names are wrong for many frames, so "
            "fetch the sample with `python scripts/fetch_ckplus_sample.py --output_dir DIR`, which writes the "
            "checked labels beside the images."
        )
    return labels_file


def ckplus_sample_rows(folder: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a fetched CK+ sample's checked ``labels.csv`` (``file_name``, ``subject``, ``sequence``,
    ``frame``, ``expression``, ``kind`` (``neutral``/``peak``/...), ``eyes_usable``, ``note``), for scripts that
    calibrate on chosen people's neutral and peak frames.

    Raises:
        DatasetFormatError: the folder has no ``labels.csv`` (with how to fetch it).
    """
    return read_metadata_rows(_ckplus_sample_labels(Path(folder)))


def list_ckplus_sample(input_dir: Path) -> PhotoListing:
    """The EmoPy CK+ sample with the checked labels of ``scripts/fetch_ckplus_sample.py`` (its ``labels.csv``)."""
    marker = _find_dir(input_dir, ["sample_image_directory", "sample_image_series_directory"], max_depth=4)
    if marker is None:
        raise DatasetFormatError(
            f"{input_dir} is not the EmoPy CK+ sample: it needs sample_image_directory/ or "
            "sample_image_series_directory/ (run scripts/fetch_ckplus_sample.py)."
        )
    labels_file = _ckplus_sample_labels(marker.parent)
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
