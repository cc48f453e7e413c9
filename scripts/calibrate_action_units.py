#!/usr/bin/env python
"""Measure the landmark displacements of expressions on the CK+ sample, and the mean neutral face shape.

    python scripts/fetch_ckplus_sample.py --output_dir data/ckplus_sample
    python scripts/calibrate_action_units.py --data data/ckplus_sample [--write-neutral]

For every peak frame (labels.csv, written by the fetch script) it takes the neutral onset frames of the same
sequence (else of the same person), aligns the peak onto them by the points an expression hardly moves (eye corners
and nose bridge) and prints the mean displacement of the points each action unit moves, in inter-ocular units of the
aligned face (x to the image's right, y down; "out" of the subject's right half is -x). These are the numbers the
patterns in ``diffusers_led/geometry/action_units.py`` were set from. ``--write-neutral`` stores the mean neutral
shape of the people with peak frames (``diffusers_led/geometry/neutral_shape.json``: 68 points, inter-ocular units, a
statistic of landmark positions, no pixels), against which
:func:`~diffusers_led.geometry.action_units.estimate_action_units` reads a face's own expression.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from diffusers_led.commands import ArgumentParser
from diffusers_led.data import ckplus_sample_rows
from diffusers_led.faces.detection import DlibFaceDetector
from diffusers_led.geometry.action_units import (
    ESTIMATED_UNITS,
    NEUTRAL_SHAPE_FILE,
    align_shape,
    fit_action_units,
    inter_ocular,
)
from diffusers_led.geometry.transforms import CANONICAL_SIZE, alignment_matrix, canonical_template, transform_points
from diffusers_led.serialization import write_text_atomically

#: Points named in the printed table (subject's right half and midline).
GROUPS = {
    "inner brow (21)": [21],
    "outer brow (17, 18)": [17, 18],
    "upper lid (37, 38)": [37, 38],
    "lower lid (40, 41)": [40, 41],
    "nose wing (31)": [31],
    "upper lip (50-52)": [50, 51, 52],
    "lip corner (48)": [48],
    "lower lip (56-58)": [56, 57, 58],
    "chin (8)": [8],
    "inner lower lip (65-67)": [65, 66, 67],
}


#: Below this much of a full unit a reading is ambiguous. Leaving one calibration person out in turn, a limit of the
#: other five people's largest neutral reading read 17 of the sixth person's 45 neutral frames as expressive (2 of 6
#: people's faces differ from the others that much) and found 19 of 21 peak expressions; at least 0.8: 6 of 45 and
#: the same 19 of 21 (max + 0.1 or + 0.2, 1.5 x max, mean + 2 or 3 sd: 15 to 16 of 45).
MIN_VARIATION = 0.8


def canonical_shapes(data: Path) -> list[tuple[dict, np.ndarray]]:
    """(label row, 68 points in the canonical face / inter-ocular units) of every frame with one detected face."""
    detector = DlibFaceDetector()
    shapes = []
    for row in ckplus_sample_rows(data):
        faces = detector.detect(np.asarray(Image.open(data / row["file_name"]).convert("L")))
        if len(faces) == 1:
            matrix = alignment_matrix(faces[0].landmarks)
            shapes.append(
                (row, transform_points(matrix, faces[0].shape) / inter_ocular(canonical_template(CANONICAL_SIZE)))
            )
    return shapes


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="The CK+ sample folder (with labels.csv).")
    parser.add_argument("--write-neutral", action="store_true", help="Write the mean neutral shape into the package.")
    args = parser.parse_args()

    shapes = canonical_shapes(args.data)
    by_sequence, by_person = defaultdict(list), defaultdict(list)
    for row, shape in shapes:
        if row["expression"] == "neutral" and row["eyes_usable"] == "true":
            by_sequence[row["sequence"]].append(shape)
            by_person[row["subject"]].append(shape)
    changes = defaultdict(list)
    for row, shape in shapes:
        if row["kind"] == "peak":
            reference = np.mean(by_sequence.get(row["sequence"]) or by_person[row["subject"]], axis=0)
            changes[row["expression"]].append((row["subject"], align_shape(shape, reference) - reference))
    for expression, items in sorted(changes.items()):
        people = sorted({person for person, _ in items})
        mean = np.mean([change for _, change in items], axis=0)
        print(f"{expression}: {len(items)} frames of {len(people)} people ({', '.join(people)})")
        for name, points in GROUPS.items():
            dx, dy = mean[points].mean(0)
            print(f"    {name:24s} dx {dx:+.3f}  dy {dy:+.3f}")

    # Only the people with peak frames calibrate anything: the others (S106 S111 S130 S132 in the EmoPy sample) stay
    # held out for evaluation. One mean per person first, so that people with more frames do not weigh more.
    calibration_people = sorted({person for items in changes.values() for person, _ in items})
    neutral = np.mean([np.mean(by_person[person], 0) for person in calibration_people if person in by_person], 0)
    held_out = sorted(set(by_person) - set(calibration_people))
    print(
        f"mean neutral shape of {len(calibration_people)} people ({', '.join(calibration_people)}); "
        f"held out: {', '.join(held_out)}"
    )
    # How far neutral faces read as expressions: per unit, the largest reading on these people's neutral frames,
    # rounded up to 0.05, and at least MIN_VARIATION. Editing does not undo readings up to it (a person's low brows
    # are not a frown).
    readings = np.array(
        [
            [fit_action_units(shape, neutral)[unit] for unit in ESTIMATED_UNITS]
            for person in calibration_people
            for shape in by_person.get(person, [])
        ]
    )
    variation = {
        unit: max(float(np.ceil(v * 20) / 20), MIN_VARIATION) for unit, v in zip(ESTIMATED_UNITS, readings.max(axis=0))
    }
    print(f"limits (largest reading on {len(readings)} neutral frames, at least {MIN_VARIATION}): {variation}")
    if args.write_neutral:
        record = {
            "people": calibration_people,
            "held_out": held_out,
            "shape": np.round(neutral, 4).tolist(),
            "variation": variation,
        }
        write_text_atomically(NEUTRAL_SHAPE_FILE, json.dumps(record))
        print(f"wrote {NEUTRAL_SHAPE_FILE}")


if __name__ == "__main__":
    main()
