"""Writing the crop dataset: turn a folder of labelled face photos into the region-crop dataset that
``train_led.py`` trains on.

The output is a Hugging Face ``datasets`` *imagefolder*::

    <output_dir>/train/<crop>.png + metadata.jsonl
    <output_dir>/test/<crop>.png  + metadata.jsonl
    <output_dir>/prepare_report.json

Each photo gives one crop per region (eyes, mouth), cut by the same
:class:`~diffusers_led.faces.regions.FaceRegionProcessor` and read by the same
:func:`~diffusers_led.image_processor.prepare_image` as inference. Crops are stored as RGB PNG;
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
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from ..faces.regions import FaceRegionProcessor
from ..image_processor import ImageLoadError, prepare_image
from ..serialization import NAME_MAX, append_text, atomic_write, write_text_atomically
from .formats import (
    _ATTRIBUTE_KEYS,
    METADATA_FILE,
    REPORT_FILE,
    SPLITS,
    WRITTEN_FILE,
    DatasetFormatError,
    LabelledPhoto,
    _is_crop_file,
    list_labelled_photos,
)
from .split import normalise_subjects, remove_duplicate_photos, split_subjects, subject_key


class OutputFolderError(ValueError):
    """Raised when the output folder holds files that led-prepare-data did not write and could replace or mix with."""


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
        detector: the face detector of the :class:`~diffusers_led.faces.regions.FaceRegionProcessor` (``"dlib"``,
            ``"yunet:<path.onnx>"``).
        crop_size: the crop side (the UNet's ``sample_size``).
        rafd_angles: RaFD camera angles to keep (``"090"`` is frontal).
        ckplus_peak_frames / ckplus_neutral_frames: frames taken from the end / start of each labelled CK+ sequence.
        processor: an object with the ``FaceRegionProcessor.extract`` interface to use instead of building one.
        progress: show a progress bar.
        region_anchor: where the region boxes sit, ``"landmarks"`` (the paper) or ``"template"``, see
            :class:`~diffusers_led.faces.regions.FaceRegionProcessor`. Recorded in the report; train_led.py copies it
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
