#!/usr/bin/env python
"""Measure how MediaPipe's blendshape scores read the action units, on the CK+ calibration people.

    python scripts/fetch_ckplus_sample.py --output_dir data/ckplus_sample
    python scripts/calibrate_blendshape_units.py --data data/ckplus_sample

For each unit of :data:`~diffusers_led.geometry.blendshape_units.BLENDSHAPE_UNITS`, prints the score neutral faces
show (``rest``: per person the mean over their neutral frames, then the median over people, so that one person's
low brows or resting smile does not set it) and the score of a full unit (``full``: the mean over the peak frames of
the expression the unit's landmark pattern was measured on, one mean per person first). These are the numbers
``REST_SCORE`` and ``FULL_SCORE`` in ``diffusers_led/geometry/blendshape_units.py`` were set from. The people held
out in ``diffusers_led/geometry/neutral_shape.json`` and ``--exclude`` are never read.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from diffusers_led.commands import ArgumentParser
from diffusers_led.data import ckplus_sample_rows
from diffusers_led.faces.mesh import MeshFaceDetector
from diffusers_led.geometry.action_units import NEUTRAL_SHAPE_FILE
from diffusers_led.geometry.blendshape_units import BLENDSHAPE_UNITS

#: The expressions whose peak frames sized each unit's landmark pattern (geometry/action_units.py SOURCES).
PEAK_EXPRESSIONS = {
    "AU1": ("surprised",),
    "AU2": ("surprised",),
    "AU4": ("disgusted", "angry"),
    "AU5": ("surprised",),
    "AU6": ("happy",),
    "AU12": ("happy",),
    "AU26": ("surprised",),
}


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="The CK+ sample folder (with labels.csv).")
    parser.add_argument("--exclude", default="S124", help="More people to leave out, comma-separated.")
    args = parser.parse_args()

    held_out = set(json.loads(NEUTRAL_SHAPE_FILE.read_text())["held_out"]) | set(filter(None, args.exclude.split(",")))
    detector = MeshFaceDetector()
    neutral: dict[str, list[dict]] = defaultdict(list)
    peaks: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in ckplus_sample_rows(args.data):
        if row["subject"] in held_out or row["kind"] not in ("neutral", "peak") or row["eyes_usable"] != "true":
            continue
        faces = detector.detect(np.asarray(Image.open(args.data / row["file_name"]).convert("RGB")))
        if len(faces) != 1 or not faces[0].blendshapes:
            continue
        if row["kind"] == "neutral":
            neutral[row["subject"]].append(faces[0].blendshapes)
        else:
            peaks[row["expression"]][row["subject"]].append(faces[0].blendshapes)

    def score(shapes: dict, unit: str) -> float:
        return float(np.mean([shapes[name] for name in BLENDSHAPE_UNITS[unit]]))

    people = sorted(set(neutral) & {person for by_person in peaks.values() for person in by_person})
    print(f"calibration people: {', '.join(people)}; held out: {', '.join(sorted(held_out))}")
    print(f"{sum(len(neutral[p]) for p in people)} neutral frames")
    for unit in BLENDSHAPE_UNITS:
        rest = float(np.median([np.mean([score(s, unit) for s in neutral[p]]) for p in people]))
        by_person = [
            np.mean([score(s, unit) for s in frames])
            for expression in PEAK_EXPRESSIONS[unit]
            for person, frames in peaks[expression].items()
            if person in people
        ]
        frames = sum(len(peaks[e][p]) for e in PEAK_EXPRESSIONS[unit] for p in peaks[e] if p in people)
        print(
            f"{unit:5s} rest {rest:.2f}  full {np.mean(by_person):.2f}  "
            f"({'/'.join(PEAK_EXPRESSIONS[unit])}: {frames} frames of {len(by_person)} people)"
        )


if __name__ == "__main__":
    main()
