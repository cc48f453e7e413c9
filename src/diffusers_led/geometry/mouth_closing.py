"""Closing an open mouth: the landmark movement that brings the inner lips together, as the jaw rises.

An open mouth (a surprised face, a toothy laugh) edited toward an expression whose prototype parts no lips (neutral,
sad, angry, disgusted, contempt) must close: the lips meet and the inside of the mouth disappears behind them. The
jaw-drop unit (AU26) moves the lower lip by a fixed pattern and cannot reach every opening (an open laugh is wider
than a full unit), so the gap is read from the inner lip points and closed directly: the lower lip and the chin
rise with the jaw, the upper lip comes down a little, and the lips slide over the teeth (``warp.MouthInside``).
After the warp, :func:`cover_teeth` paints over the teeth that dlib's misplaced inner lip points left between them.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from ..labels import canonical_expression
from .action_units import ACTION_UNITS, EXPRESSION_PROTOTYPES, inter_ocular

__all__ = ["MOUTH_OPENING_UNITS", "closes_mouth", "cover_teeth", "jaw_closing_limit", "mouth_closing"]

#: Units that part the lips: a target with any of them keeps (or makes) an open mouth.
MOUTH_OPENING_UNITS = ("AU25", "AU26", "AU27")
#: Smiles may show teeth: a laughing face edited toward happy keeps its open mouth.
KEEPS_TEETH = ("happy",)
#: Inner lip points facing each other (upper, lower).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
#: A shut mouth's seam still reads as a small gap (inter-ocular distances); the lips close to it, not through it.
SEAM = 0.02
#: A gap smaller than this (inter-ocular distances) is already shut.
OPEN = 0.06
#: How much of the closing each point makes: the lower lip goes with the jaw, the upper lip comes down a little,
#: the chin rises with the jaw but less than the lip (the lower lip also rolls up over the teeth).
LOWER_SHARE = 0.75
UPPER_SHARE = 0.25
#: The outer lips and chin points and the share of the lower lip's rise they make.
LOWER_OUTER = {56: 1.0, 57: 1.0, 58: 1.0, 55: 0.6, 59: 0.6}
UPPER_OUTER = {50: 1.0, 51: 1.0, 52: 1.0, 49: 0.5, 53: 0.5}
#: Teeth this far from the lips' colour (CIELAB, 8-bit) are told apart from them; nearer, nothing is covered.
TEETH_CONTRAST = 20.0
#: How much darker than the lips the seam of lips painted over teeth is.
SEAM_SHADE = 0.3
CHIN = {7: 0.6, 8: 0.7, 9: 0.6, 6: 0.35, 10: 0.35, 5: 0.15, 11: 0.15}


def closes_mouth(target: str | None, extra: Mapping[str, float] | None = None) -> bool:
    """Whether an edit toward ``target`` (plus ``extra`` units) closes an open mouth: the target's prototype and the
    extra units part no lips, and the target is not a smile (smiles may show teeth)."""
    if target is None:
        return False
    name = canonical_expression(target)
    units = {**EXPRESSION_PROTOTYPES[name], **{k: v for k, v in (extra or {}).items() if v > 0}}
    return name not in KEEPS_TEETH and not any(unit in units for unit in MOUTH_OPENING_UNITS)


def jaw_closing_limit(shape: np.ndarray) -> float:
    """The largest intensity of the jaw drop (AU26) whose undoing closes the lips of ``shape`` (68 points, any frame
    of the face) no further than to the seam: a jaw drop read from the blendshapes can be larger than the gap that
    dlib's inner lip points show, and undoing all of it would push the lower lip through the upper one (the warp then
    folds)."""
    shape = np.asarray(shape, dtype=np.float64)
    iod = inter_ocular(shape)
    gap = np.mean([shape[lower, 1] - shape[upper, 1] for upper, lower in INNER_LIP_PAIRS]) / iod
    pattern = ACTION_UNITS["AU26"]
    per_unit = np.mean([pattern[lower, 1] - pattern[upper, 1] for upper, lower in INNER_LIP_PAIRS])
    return float(max(gap - SEAM, 0.0) / per_unit)


def mouth_closing(aligned: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """The ``(68, 2)`` displacement (px of ``aligned``, the aligned face: y down) that closes the inner lips of
    ``aligned`` to a seam at ``strength`` (zeros for a mouth already shut)."""
    aligned = np.asarray(aligned, dtype=np.float64)
    iod = inter_ocular(aligned)
    gaps = np.array([aligned[lower, 1] - aligned[upper, 1] for upper, lower in INNER_LIP_PAIRS])
    displacement = np.zeros_like(aligned)
    if gaps.mean() < OPEN * iod:
        return displacement
    closing = strength * np.maximum(gaps - SEAM * iod, 0.0)
    for (upper, lower), gap in zip(INNER_LIP_PAIRS, closing):
        displacement[lower, 1] -= LOWER_SHARE * gap
        displacement[upper, 1] += UPPER_SHARE * gap
    mean = closing.mean()
    for point, share in LOWER_OUTER.items():
        displacement[point, 1] -= share * LOWER_SHARE * mean
    for point, share in UPPER_OUTER.items():
        displacement[point, 1] += share * UPPER_SHARE * mean
    for point, share in CHIN.items():
        displacement[point, 1] -= share * LOWER_SHARE * mean
    return displacement


def cover_teeth(original: np.ndarray, warped: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``warped`` (the photo after a warp that closed an open mouth, uint8) with what still shows between its lips
    painted over with the lips around them: the teeth left between them, and the gap itself where the lips could not
    meet.

    dlib puts the inner lip points of a toothy smile on the teeth, not on the lips' edge: closing those points to a
    seam leaves a strip of teeth between the lips. Pixels inside the moved outer lip contour (``after``, 68 points)
    whose colour is nearer the teeth's (the bright half of what the inside of the lips showed in ``original``, at
    ``before``) than the moved lips' are filled from the lips around them (OpenCV's inpainting). A wide-open mouth
    closes only as far as a smooth warp can squeeze the gap (``warp.plan_face_warp``): if the moved inner lips are
    still more than :data:`OPEN` apart, the inside of them is filled too. No other pixel changes."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    iod = inter_ocular(after)
    pad = 0.1 * iod
    low = np.floor(np.minimum(before[48:60].min(0), after[48:60].min(0)) - pad).astype(int)
    high = np.ceil(np.maximum(before[48:60].max(0), after[48:60].max(0)) + pad).astype(int)
    x0, y0 = np.maximum(low, 0)
    x1, y1 = np.minimum(high, (warped.shape[1], warped.shape[0]))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return warped
    origin = np.array([x0, y0], dtype=np.float64)

    def lab(image: np.ndarray) -> np.ndarray:
        crop = image[y0:y1, x0:x1]
        rgb = crop[:, :, :3] if crop.ndim == 3 else np.repeat(crop[:, :, None], 3, axis=2)
        return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float32)

    def polygon(points: np.ndarray) -> np.ndarray:
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round((points - origin) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        return mask > 0

    outer = polygon(after[48:60])
    gap = np.mean([after[lower, 1] - after[upper, 1] for upper, lower in INNER_LIP_PAIRS])
    cover = polygon(after[60:68]) if gap >= OPEN * iod else np.zeros(outer.shape, dtype=bool)
    teeth = _teeth_between_lips(lab(original)[polygon(before[60:68])], lab(warped), outer, polygon(after[60:68]))
    cover = (cover | teeth) & outer
    if not cover.any():
        return warped
    cover = cv2.dilate(cover.astype(np.uint8), np.ones((3, 3), np.uint8)) & outer.astype(np.uint8)
    out = warped.copy()
    crop = np.ascontiguousarray(out[y0:y1, x0:x1])
    radius = max(0.03 * iod, 2.0)
    if crop.ndim == 3 and crop.shape[2] == 4:
        crop[:, :, :3] = cv2.inpaint(np.ascontiguousarray(crop[:, :, :3]), cover, radius, cv2.INPAINT_TELEA)
    else:
        crop = cv2.inpaint(crop, cover, radius, cv2.INPAINT_TELEA)
    # Lips that meet show a seam: a soft line a little darker than the lips, a smooth curve midway between the
    # moved inner lips (through dlib's points it would zigzag).
    line = np.zeros(cover.shape, dtype=np.uint8)
    middle = (after[60:65] + after[[60, 67, 66, 65, 64]]) / 2 - origin
    along = np.linspace(middle[0, 0], middle[-1, 0], 16)
    curve = np.polyval(np.polyfit(middle[:, 0], middle[:, 1], 2), along)
    seam = np.round(np.stack([along, curve], axis=1) * 16).astype(np.int32)
    cv2.polylines(line, [seam], False, 255, 1, cv2.LINE_AA, shift=4)
    darken = 1.0 - SEAM_SHADE * (line.astype(np.float32) / 255.0) * (cover > 0)
    colour = crop[:, :, :3] if crop.ndim == 3 else crop
    shaded = np.clip(np.rint(colour * (darken[:, :, None] if crop.ndim == 3 else darken)), 0, 255)
    if crop.ndim == 3:
        crop[:, :, :3] = shaded
    else:
        crop = shaded.astype(crop.dtype)
    out[y0:y1, x0:x1] = crop
    return out


def _teeth_between_lips(shown: np.ndarray, moved: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Where ``moved`` (CIELAB, the crop after the warp) shows teeth inside the moved lips ``outer``: pixels nearer
    the teeth's colour (the bright half of ``shown``, what the inside of the lips showed before) than the lips'
    (``outer`` away from the moved seam ``inner``). All false when the inside showed no teeth (or they look like
    the lips)."""
    none = np.zeros(outer.shape, dtype=bool)
    if len(shown) < 4:
        return none
    teeth = shown[shown[:, 0] >= np.median(shown[:, 0])].mean(0)
    near_seam = cv2.dilate(inner.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    lips = moved[outer & ~near_seam]
    if len(lips) < 4:
        return none
    lip = np.median(lips, axis=0)
    if np.linalg.norm(teeth - lip) < TEETH_CONTRAST:
        return none
    return np.linalg.norm(moved - teeth, axis=2) < np.linalg.norm(moved - lip, axis=2)
