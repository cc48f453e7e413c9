#!/usr/bin/env python
"""Fit one log-ratio map of shading per action unit from neutral/peak pairs (expression ratio images).

    python scripts/fetch_ckplus_sample.py --output_dir data/ckplus_sample
    python scripts/fit_expression_ratios.py --data data/ckplus_sample --output_dir ratio_maps [--overwrite]

For every peak frame of a calibration person (labels.csv; the people in ``diffusers_led/neutral_shape.json``'s
``held_out`` list and ``--exclude`` are never used) and the neutral frames of the same sequence: both are warped onto
the mean neutral face's shape (:func:`~diffusers_led.texture.template_shape`, a thin-plate spline through the 68
landmarks), and the log-ratio of their luminance is taken on the skin (eyes and the inside of the lips left out),
less its median (a change of exposure is not an expression), smoothed and clamped. The frame's action units are
read from its landmarks against the same person's neutral frames (``fit_action_units``),
only those of the labelled expression's prototype (AU1 AU2 AU4 AU6 AU12 AU26); the nose wrinkle that 68 landmarks
cannot see comes from the label (disgust: AU9 1; anger has one person, too few for a map of its own). Then per pixel,
by ridge least squares over all pairs, with only the units whose region of the face covers the pixel
(:data:`~diffusers_led.texture.UNIT_BANDS`),
``log R ~ sum_k intensity_k * M_k``. The maps are per-unit averages over the pairs, no frame's pixels; they are saved
as an :class:`~diffusers_led.texture.ExpressionRatioMaps` folder (safetensors) that a pipeline loads as its
``ratio_maps`` component. ``--preview`` writes a PNG of the maps.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from diffusers_led.commands import ArgumentParser
from diffusers_led.data import ckplus_sample_rows
from diffusers_led.faces.detection import DlibFaceDetector
from diffusers_led.geometry.action_units import (
    EXPRESSION_PROTOTYPES,
    NEUTRAL_SHAPE_FILE,
    fit_action_units,
    inter_ocular,
)
from diffusers_led.serialization import commit_folder, staging_folder
from diffusers_led.texture import (
    MAP_SIZE,
    ExpressionRatioMaps,
    face_frame_maps,
    skin_mask,
    template_shape,
    unit_region,
)

#: Units read from the landmarks, and units only the label tells (68 points cannot see a wrinkled nose).
READ_UNITS = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU26")
LABEL_UNITS = {"disgusted": {"AU9": 1.0}}
#: Ridge weight (per pair) that keeps rarely seen units from fitting noise.
RIDGE = 0.5
#: Smoothing of each ratio (px of the map frame): dlib's landmarks are a pixel or two off, and a crease is wider.
SMOOTH = 1.5
#: Luminance offset: dark pixels (shadowed skin, 8-bit noise) must not give huge ratios.
DARK = 12.0
#: Largest log-ratio of one pair (a misregistered edge, a blink, a lock of hair is not an expression).
CLAMP = 0.5


def frame_in_map(gray: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """A grayscale frame warped onto the mean neutral face's shape (map frame)."""
    map_x, map_y = face_frame_maps(template_shape(), shape, (MAP_SIZE, MAP_SIZE))
    return cv2.remap(
        gray.astype(np.float32), map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def read_frames(data: Path, held_out: set[str]) -> dict[str, list[tuple[dict, np.ndarray, np.ndarray]]]:
    """Per sequence of a calibration person: (label row, frame in the map frame, 68 points px) of every frame with
    one detected face."""
    detector = DlibFaceDetector()
    sequences = defaultdict(list)
    for row in ckplus_sample_rows(data):
        if row["subject"] in held_out or row["kind"] not in ("neutral", "peak"):
            continue
        gray = np.asarray(Image.open(data / row["file_name"]).convert("L"))
        faces = detector.detect(gray)
        if len(faces) == 1:
            shape = np.asarray(faces[0].shape, dtype=np.float64)
            sequences[row["sequence"]].append((row, frame_in_map(gray, shape), shape))
    return sequences


def pair_ratios(sequences, units: list[str], mask: np.ndarray):
    """The design matrix (pairs x units), the log-ratios (pairs x pixels) and the people of the pairs."""
    rows, ratios, people = [], [], []
    for items in sequences.values():
        neutral = [(frame, shape) for row, frame, shape in items if row["kind"] == "neutral"]
        if not neutral:
            continue
        base = np.mean([frame for frame, _ in neutral], 0)
        reference = np.mean([shape / inter_ocular(shape) for _, shape in neutral], 0)
        for row, frame, shape in items:
            if row["kind"] != "peak":
                continue
            read = fit_action_units(shape, reference)
            # Only the units of the labelled expression's prototype: the reader also finds a little AU15 in smiles
            # and surprise (the lower lip moves), which would smear a smile's folds into the sad mouth's map.
            prototype = EXPRESSION_PROTOTYPES[row["expression"]]
            intensities = {name: read[name] for name in READ_UNITS if name in prototype}
            intensities |= LABEL_UNITS.get(row["expression"], {})
            ratio = np.log(frame + DARK) - np.log(base + DARK)
            ratio -= np.median(ratio[mask > 0.5])
            ratio = np.clip(cv2.GaussianBlur(ratio, (0, 0), SMOOTH), -CLAMP, CLAMP) * mask
            rows.append([intensities.get(name, 0.0) for name in units])
            ratios.append(ratio.ravel())
            people.append(row["subject"])
            print(
                f"{row['file_name']}: {row['expression']} " + " ".join(f"{k} {v:.2f}" for k, v in intensities.items())
            )
    return np.array(rows), np.array(ratios), people


def fit_maps(design: np.ndarray, ratios: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Ridge least squares per pixel, ``ratios ~ design @ maps``, each pixel with only the units whose region
    (``regions``: units x pixels, 0 or 1) covers it."""
    maps = np.zeros((design.shape[1], ratios.shape[1]))
    for active in {tuple(column) for column in regions.T.astype(bool)}:
        pixels = np.all(regions.T.astype(bool) == active, axis=1)
        units = np.flatnonzero(active)
        if len(units) == 0:
            continue
        part = design[:, units]
        gram = part.T @ part + RIDGE * np.eye(len(units))
        maps[np.ix_(units, pixels)] = np.linalg.solve(gram, part.T @ ratios[:, pixels])
    return maps


def preview(maps: np.ndarray, units: list[str], path: Path) -> None:
    tiles = [
        cv2.putText(np.uint8(np.clip(128 + 255 * m, 0, 255)).copy(), u, (3, 12), 0, 0.4, 255)
        for m, u in zip(maps, units)
    ]
    Image.fromarray(cv2.resize(np.hstack(tiles), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)).save(path)


def main() -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="The CK+ sample folder (with labels.csv).")
    parser.add_argument("--output_dir", required=True, type=Path, help="Where to save the maps (a model folder).")
    parser.add_argument("--exclude", default="S124", help="More people to leave out, comma-separated.")
    parser.add_argument("--preview", type=Path, help="Also write the maps as a PNG here.")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    args = parser.parse_args()
    if args.output_dir.exists() and not args.overwrite:
        raise SystemExit(f"{args.output_dir} exists; pass --overwrite to replace it")

    held_out = set(json.loads(NEUTRAL_SHAPE_FILE.read_text())["held_out"]) | set(filter(None, args.exclude.split(",")))
    units = [*READ_UNITS, *sorted({u for extra in LABEL_UNITS.values() for u in extra})]
    mask = skin_mask(template_shape(), (MAP_SIZE, MAP_SIZE))
    design, ratios, people = pair_ratios(read_frames(args.data, held_out), units, mask)
    if len(design) == 0:
        raise SystemExit(f"no neutral/peak pairs of calibration people in {args.data}")
    soft = np.stack([unit_region(unit) for unit in units])
    maps = fit_maps(design, ratios, (soft > 0.5).reshape(len(units), -1)).reshape(soft.shape) * soft * mask
    residual = ratios - design @ maps.reshape(len(units), -1)
    print(
        f"{len(design)} pairs of {len(set(people))} people ({', '.join(sorted(set(people)))}); held out: "
        f"{', '.join(sorted(held_out))}; explained {1 - residual.var() / ratios.var():.0%} of the ratios' variance"
    )
    model = ExpressionRatioMaps(units=units, pairs=len(design), people=len(set(people)), source="CK+ sample (EmoPy)")
    model.maps.copy_(torch.from_numpy(maps.astype(np.float32)))
    with staging_folder(args.output_dir, "saving") as staging:
        model.save_pretrained(staging)
        commit_folder(staging, args.output_dir)
    print(f"wrote {args.output_dir}")
    if args.preview:
        preview(maps, units, args.preview)


if __name__ == "__main__":
    main()
