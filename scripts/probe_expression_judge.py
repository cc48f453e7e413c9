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
  warped onto the neutral frame, divided by it: every wrinkle, fold and shadow, unfiltered, in the judge's frame);
- with ``--edits``, region swaps between the geometry mode's edits of the tune faces toward the target and the CK+
  peaks: one region of a peak (warped onto the edit's 68 points, gray matched) pasted into the edit's input, and one
  region of the edit pasted into the peak's, per region (:data:`REGIONS`).

The final test split and the held-out CK+ people are refused. Nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from search_prototypes import CALIBRATION_PEOPLE, tune_data_and_people  # the sibling script: the same refusals

from diffusers_led.commands import ArgumentParser
from diffusers_led.data import ckplus_sample_rows
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
#: Regions swapped with ``--edits``: 68-point indices whose hull (grown by inter-ocular distances) is the region.
REGIONS = {
    "brows": (list(range(17, 27)), 0.08),
    "glabella": ([20, 21, 22, 23, 27], 0.08),
    "eyes": (list(range(36, 48)), 0.12),
    "nose bridge": ([27, 28, 29, 30, 39, 42], 0.03),
    "nose wings and folds": ([31, 32, 33, 34, 35, 48, 54], 0.08),
    "upper lip": ([33, *range(48, 55), *range(60, 65)], 0.03),
    "mouth": (list(range(48, 60)), 0.08),
}
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


def region_mask(shape: np.ndarray, name: str, size: int) -> np.ndarray:
    """The soft ``size`` x ``size`` mask of region ``name`` (:data:`REGIONS`) of the face with these 68 points."""
    indices, grow = REGIONS[name]
    iod = inter_ocular(shape)
    points = shape[indices]
    centre = points.mean(0)
    away = points - centre
    points = points + grow * iod * away / np.maximum(np.linalg.norm(away, axis=1)[:, None], 1e-9)
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(cv2.convexHull(points.astype(np.float32))[:, 0]).astype(np.int32)], 1.0)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.05 * iod))


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
    """The largest face ``detector`` finds in ``rgb`` (detectors list faces largest first), or ``None``."""
    faces = detector.detect(rgb)
    return faces[0] if faces else None


def load_ckplus(detector, root: Path, target: str, people: set[str]) -> tuple[list[Face], dict[str, Face]]:
    """The target's peak frames of ``people`` and each person's neutral frame of the same sequence (frame 2)."""
    from PIL import Image

    peaks, neutrals = [], {}
    for row in ckplus_sample_rows(root):
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
    parser.add_argument("--edits", action="store_true", help="Also swap regions with the model's edits.")
    parser.add_argument("--model", default=None, help="The model for --edits (default: the bundled one).")
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
    if args.edits:
        swap_regions(args.model, target, data, detector, peaks, report)


def swap_regions(model: str | None, target: str, data: Path, detector, peaks: list[Face], report) -> None:
    """Region swaps between the geometry mode's edits of the photos in ``data`` toward ``target`` and ``peaks``."""
    from PIL import Image

    from diffusers_led.devices import load_pipeline_on
    from diffusers_led.pretrained import resolve_model

    pipe = load_pipeline_on(resolve_model(model), "cpu", "float32")
    pipe.set_progress_bar_config(disable=True)
    edits = []
    for path in sorted(p for p in data.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}):
        image = Image.open(path).convert("RGB")
        edited = np.asarray(pipe(image, target=target, mode="geometry").images[0])
        for i, before in enumerate(detector.detect(np.asarray(image))):
            after = detect_largest_near(detector, edited, before.landmarks)
            face = Face(f"{path.name}#{i}", edited, after)
            face.fine = ExpressionJudge.face_input(edited, before.landmarks, face.fine.shape[0])  # as led-evaluate
            edits.append(face)
    size = FER_INPUT_SIZE * FINE
    report(f"tune edits toward {target}", [e.fine for e in edits])
    for name in REGIONS:
        into_edit, into_peak = [], []
        for c in peaks:
            for e in edits:
                mask = region_mask(e.shape, name, size)
                peak_here = matched_gray(warp_shape(c.fine, c.shape, e.shape), e.fine)
                into_edit.append(e.fine * (1 - mask) + peak_here * mask)
                mask = region_mask(c.shape, name, size)
                edit_here = matched_gray(warp_shape(e.fine, e.shape, c.shape), c.fine)
                into_peak.append(c.fine * (1 - mask) + edit_here * mask)
        report(f"edit with a CK+ peak's {name}", into_edit)
        report(f"CK+ peak with an edit's {name}", into_peak)


def detect_largest_near(detector, rgb: np.ndarray, landmarks: np.ndarray):
    """The face ``detector`` finds in ``rgb`` whose 5 landmarks are nearest ``landmarks``."""
    return min(detector.detect(rgb), key=lambda face: np.linalg.norm(np.asarray(face.landmarks) - landmarks))


if __name__ == "__main__":
    main()
