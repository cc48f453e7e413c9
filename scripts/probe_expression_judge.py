#!/usr/bin/env python
"""Where does the expression judge find an expression? Shape and appearance of CK+ peaks and of real photos,
swapped inside the judge's own 48 x 48 input.

    python scripts/probe_expression_judge.py --target disgusted --data data/real_photos/tune \
        --ckplus data/ckplus_sample

The judge (``ExpressionJudge``, a FER2013-style CNN) reads a 48 x 48 gray crop placed by 5 landmarks. For the target
expression's peak frames of the CK+ calibration people, and the faces of the tune photos, each probe builds judge
inputs (at 4x, area-resized to 48, as the judge's own crop) and prints the mean p(target) and how many read as the
target (top-1):

- ``peak``: the CK+ peaks as they are; ``peak, photo's gray levels``: each peak with a photo face's mean and
  standard deviation of gray (every pair);
- ``peak texture on peak shape of another person`` / ``... on neutral shape of another person``: a peak warped
  (thin-plate spline through the 68 points) onto another calibration person's peak or neutral frame: is the class
  carried by the shape?
- ``peak texture on photo shape``: a peak warped onto a photo face's 68 points, gray levels matched;
- ``photo texture on peak shape``: a photo face warped onto a peak's 68 points;
- ``photo + peak's movement`` (x1, x1.5): a photo face moved by a peak's landmark change from the same person's
  neutral frame (what a perfect 68-point warp of that expression can do);
- ``photo + peak's movement and ratio image``: the same, times that person's whole change of shading (the peak
  warped onto the neutral frame, divided by it: every wrinkle, fold and shadow, unfiltered, in the judge's frame).

The final test split and the held-out CK+ people are refused. Nothing is written.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from search_prototypes import CALIBRATION_PEOPLE, tune_data_and_people  # the sibling script: the same refusals

from diffusers_led.commands import ArgumentParser
from diffusers_led.evaluation.judges import FER_FACE_BOX, FER_INPUT_SIZE, ExpressionJudge
from diffusers_led.geometry.action_units import inter_ocular
from diffusers_led.geometry.transforms import alignment_matrix, transform_points
from diffusers_led.geometry.warp import thin_plate_spline
from diffusers_led.labels import canonical_expression

#: The judge's input is built at this many times its size and area-resized, as the judge's own crop.
FINE = 4
#: Points that an expression barely moves (jaw sides, nose bridge, inner eye corners): a peak is aligned on its
#: neutral frame by them before its landmark change is read.
RIGID = [0, 1, 2, 14, 15, 16, 27, 28, 29, 39, 42]
#: The change of shading is clamped to this log factor (the ratio of two dark pixels is noise).
MAX_LOG_RATIO = 1.0


def judge_frame(landmarks: np.ndarray, points: np.ndarray, size: int) -> np.ndarray:
    """``points`` (image px) in the judge's ``size`` x ``size`` input of the face with these 5 ``landmarks``."""
    cx, cy, side = FER_FACE_BOX
    aligned = transform_points(alignment_matrix(np.asarray(landmarks, dtype=np.float64), 112.0), points)
    return (aligned - (cx - side / 2, cy - side / 2)) * size / side


def warp_shape(image: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``image`` moved so that its points ``source`` land on ``target`` (a thin-plate spline, the border held)."""
    size = image.shape[0]
    edge = np.linspace(0, size - 1, 6)
    border = np.array(
        [[x, y] for x in edge for y in (0, size - 1)] + [[x, y] for y in edge[1:-1] for x in (0, size - 1)]
    )
    spline = thin_plate_spline(np.vstack([target, border]), np.vstack([source, border]), 1e-3)
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2).astype(np.float64)
    maps = spline(grid).reshape(size, size, 2).astype(np.float32)
    return cv2.remap(
        image.astype(np.float32), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def matched_gray(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``image`` with the mean and standard deviation of ``reference`` (both gray in [0, 1])."""
    return np.clip((image - image.mean()) / (image.std() + 1e-6) * reference.std() + reference.mean(), 0.0, 1.0)


def peak_movement(peak: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """The landmark change from ``neutral`` to ``peak`` (68 points each, one person), in inter-ocular distances."""
    matrix, _ = cv2.estimateAffinePartial2D(peak[RIGID].astype(np.float32), neutral[RIGID].astype(np.float32))
    return (transform_points(matrix, peak) - neutral) / inter_ocular(neutral)


class Face:
    """One face's judge input at ``FINE`` times the judge's size, and its 68 points there."""

    def __init__(self, name: str, rgb: np.ndarray, detection) -> None:
        size = FER_INPUT_SIZE * FINE
        self.name = name
        self.person = name.split("_")[0]
        self.fine = ExpressionJudge.face_input(rgb, detection.landmarks, size)
        self.shape = judge_frame(detection.landmarks, detection.shape, size)


def detect_largest(detector, rgb: np.ndarray):
    """The largest face ``detector`` finds in ``rgb``, or ``None``."""
    faces = detector.detect(rgb)
    return max(faces, key=lambda face: face.box[2] * face.box[3]) if faces else None


def load_ckplus(detector, root: Path, target: str, people: set[str]) -> tuple[list[Face], dict[str, Face]]:
    """The target's peak frames of ``people`` and each person's neutral frame of the same sequence (frame 2)."""
    from PIL import Image

    rows = list(csv.DictReader((root / "labels.csv").open()))
    peaks, neutrals = [], {}
    for row in rows:
        if row["subject"] not in people:
            continue
        is_peak = row["kind"] == "peak" and row["expression"] == target
        if not is_peak and not (row["kind"] == "neutral" and row["frame"] == "2"):
            continue
        rgb = np.asarray(Image.open(root / row["file_name"]).convert("RGB"))
        detection = detect_largest(detector, rgb)
        if detection is None:
            continue
        face = Face(f"{row['sequence']}_{row['frame'] or 'peak'}", rgb, detection)
        if is_peak:
            peaks.append(face)
        else:
            neutrals.setdefault(row["sequence"], face)
    return peaks, neutrals


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="disgusted", help="The expression to probe (a CK+ label).")
    parser.add_argument("--data", required=True, help="A folder of photos of the TUNE split.")
    parser.add_argument("--ckplus", required=True, help="The CK+ sample folder (labels.csv).")
    parser.add_argument("--ckplus-people", default=",".join(CALIBRATION_PEOPLE), help="Calibration people to use.")
    args = parser.parse_args(argv)

    target = canonical_expression(args.target)
    data, people = tune_data_and_people(parser, args.data, args.ckplus_people)

    from PIL import Image

    from diffusers_led.faces.loader import load_face_detector

    detector = load_face_detector("mesh")
    judge = ExpressionJudge()
    label = judge.class_index(target)
    if label is None:
        parser.error(f"the judge has no class {target!r}")
    peaks, neutrals = load_ckplus(detector, Path(args.ckplus), target, people)
    if not peaks:
        parser.error(f"no {target} peak frames of {sorted(people)} in {args.ckplus}")
    photos = []
    for path in sorted(p for p in data.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        photos += [Face(f"{path.name}#{i}", rgb, d) for i, d in enumerate(detector.detect(rgb))]

    def neutral_of(face: Face) -> Face | None:
        return neutrals.get(face.name.rsplit("_", 1)[0])

    def report(name: str, inputs: list[np.ndarray]) -> None:
        small = [cv2.resize(x, (FER_INPUT_SIZE, FER_INPUT_SIZE), interpolation=cv2.INTER_AREA) for x in inputs]
        probs = judge.predict_inputs(small)
        top = int((probs.argmax(1) == label).sum())
        print(f"{name:52s} mean p({target}) {probs[:, label].mean():.3f}   top-1 {top}/{len(probs)}", flush=True)

    report("CK+ peaks", [c.fine for c in peaks])
    report("CK+ neutral frames", [n.fine for n in neutrals.values()])
    report("tune faces", [f.fine for f in photos])
    report("CK+ peak, a tune face's gray levels", [matched_gray(c.fine, f.fine) for c in peaks for f in photos])
    others = [(c, o) for c in peaks for o in peaks if o.person != c.person]
    report(
        "CK+ peak texture on another person's peak shape", [warp_shape(c.fine, c.shape, o.shape) for c, o in others]
    )
    others = [(c, n) for c in peaks for n in neutrals.values() if n.person != c.person]
    report(
        "CK+ peak texture on another person's neutral shape", [warp_shape(c.fine, c.shape, n.shape) for c, n in others]
    )
    report(
        "CK+ peak texture on a tune face's shape, its gray",
        [matched_gray(warp_shape(c.fine, c.shape, f.shape), f.fine) for c in peaks for f in photos],
    )
    report(
        "tune face texture on a CK+ peak's shape",
        [warp_shape(f.fine, f.shape, c.shape) for c in peaks for f in photos],
    )
    pairs = [(c, neutral_of(c)) for c in peaks if neutral_of(c) is not None]
    for gain in (1.0, 1.5):
        moved = []
        for c, n in pairs:
            movement = gain * peak_movement(c.shape, n.shape)
            moved += [warp_shape(f.fine, f.shape, f.shape + movement * inter_ocular(f.shape)) for f in photos]
        report(f"tune face + a CK+ peak's movement x{gain}", moved)
    shaded = []
    for c, n in pairs:
        movement = peak_movement(c.shape, n.shape)
        ratio = np.log(np.maximum(warp_shape(c.fine, c.shape, n.shape), 0.02)) - np.log(np.maximum(n.fine, 0.02))
        ratio = np.clip(ratio, -MAX_LOG_RATIO, MAX_LOG_RATIO)
        for f in photos:
            moved = f.shape + movement * inter_ocular(f.shape)
            ratio_here = warp_shape(ratio, n.shape, moved)
            shaded.append(np.clip(warp_shape(f.fine, f.shape, moved) * np.exp(ratio_here), 0.0, 1.0))
    report("tune face + a CK+ peak's movement and ratio image", shaded)


if __name__ == "__main__":
    main()
