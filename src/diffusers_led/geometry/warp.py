"""A smooth warp of a face's own pixels that moves its landmarks by given displacements (the geometry stage).

The warp is a thin-plate spline through the 68 landmarks (each moved by its displacement, zero for those that stay)
and a ring of fixed points around the face, multiplied by a window that is 1 on the features and falls smoothly to
exactly 0 at the ring: every pixel outside the ring keeps its value bit for bit, and inside it the photo's own skin,
lips and eyes are moved, not re-drawn. Torch-free: numpy and OpenCV only.

Backward mapping: an output pixel ``q`` takes the source pixel at ``q + f(q)``, where ``f`` is the spline fitted
from the moved points to the original ones (so no inversion of a forward field is needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from scipy.spatial.distance import cdist

from .action_units import MIRROR, RIGHT_HALF, inter_ocular, landmark_displacements
from .eyes import EYES
from .lip_tone import IBUG_LIPS, MESH_LIPS
from .mouth_closing import (
    MESH_MOUTH_CORNERS,
    MOUTH_OPENING_UNITS,
    inner_lips_on_mesh,
    mouth_closing,
)
from .mouth_inside import (
    MESH_LOWER_INNER_LIP,
    MESH_OPEN_MOUTH,
    MESH_UPPER_INNER_LIP,
    OPEN_MOUTH,
    MouthInside,
    inner_lip_outline,
    inner_lips,
    lip_parting,
    mouth_inside,
)

__all__ = [
    "FaceWarp",
    "action_unit_warp",
    "inner_mouth_mask",
    "keep_lid_skin",
    "keep_lids_apart",
    "keep_slits_shut",
    "least_area_ratio",
    "lips_kept_thin",
    "lips_out_of_moustache",
    "mouth_opening",
    "mouth_shut",
    "plan_face_warp",
    "slit_eyes",
    "thin_plate_spline",
]

#: The inner lip contour of the 68 points (60 and 64 are the corners).
INNER_LIPS = list(range(60, 68))

#: Ring margin and window falloff, in inter-ocular distances: room for raised brows and a dropped jaw, and a fall
#: wide enough that the warp shows no edge.
RING_MARGIN = 0.45
RING_FEATHER = 0.35

#: Upper and lower lid points facing each other, and the least share of its opening an eye keeps under an edit.
EYELID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
MIN_EYE_OPENING = 0.4
#: The lid pairs and corners of each eye ("right" is the person's right, dlib 36-41); an eye that shows no white and
#: whose lids are closer than this share of its width is a slit (a laughing eye squeezed to its lashes: 0.10-0.19 on
#: the tune photos' laughing faces, 0.23-0.37 on the others), and how far a slit may be stretched open: the warp
#: would draw its lashes and dark slit tall, as a smear, where a real eye would show white it does not have.
EYE_LID_PAIRS = {"right": EYELID_PAIRS[:2], "left": EYELID_PAIRS[2:]}
EYE_CORNERS = {"right": (36, 39), "left": (42, 45)}
SLIT_HEIGHT = 0.21
MAX_SLIT_STRETCH = 1.3
#: Over a slit, the lid skin between the brow and the held lid stretches instead of the lid rising: it may grow to
#: no more than this share of its height (a raised brow over the mean face's rising lid: x1.4). A laugh's frown
#: squeezes that band (tune t1: 0.24 inter-ocular distances against the mean face's 0.32), and raising the brow
#: over it in full drew its dark crease and lashes x1.9 tall, a streaked brown band.
MAX_LID_SKIN_STRETCH = 1.4
#: The brow points above each eye's upper lid points.
EYE_BROWS = {"right": (list(range(17, 22)), [37, 38]), "left": (list(range(22, 27)), [43, 44])}
#: Upper and lower inner lip points facing each other: an edit may close the lips but not push them through.
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
#: The mouth's points on the subject's right half (their mirrors make the left), and the middles of the lips that
#: split the mouth into its halves: of the 68 points, and of Face Mesh V2 (outer and inner lips, upper and lower).
RIGHT_MOUTH = [int(point) for point in RIGHT_HALF if point >= 48]
LIP_MIDDLES = [51, 57, 62, 66]
MIDLINE_LIPS = frozenset(LIP_MIDDLES)
MESH_LIP_MIDDLES = [0, 17, 13, 14]
MESH_CORNERS = list(MESH_MOUTH_CORNERS.values())
#: A mouth's halves differ by this share of their widths on a frontal face (people are not symmetric): a half
#: narrower than this is foreshortened by the head's turn.
FRONTAL_HALF_WIDTHS = 0.9

#: Each lip's outer edge from corner to corner (of the 68 points) and its inner edge, the corners closing both (so a
#: point between the outer and inner corner has an inner edge to be measured from): a lip's height at an outer point
#: is read against its inner edge at the same place along the mouth.
LIP_EDGES = {
    "upper": ([49, 50, 51, 52, 53], [48, 60, 61, 62, 63, 64, 54]),
    "lower": ([59, 58, 57, 56, 55], [48, 60, 67, 66, 65, 64, 54]),
}

#: The lip corner puller, both sides and one: a smile stretches the lips, and they thin (:func:`lips_kept_thin`).
SMILING_UNITS = ("AU12", "R12", "L12")
#: A lip lengthened by ``s`` is kept to its height over ``s ** LIP_THINNING``: the CK+ calibration people's smiles
#: against their own neutral frames (Face Mesh, 7 peaks of 3 people) widened their mouths x1.36-1.43 and kept the
#: lower lip's middle at x0.70-0.96 of its height (median 0.84, about 1 / sqrt(1.4)): it thins, and its red grows a
#: little with the width. Kept to the whole ``1 / s`` our edits' lower lips came out at x0.69-0.81, thinner than
#: theirs, and t1.jpg's downcast woman moved to 0.598 of the 0.6 identity limit.
LIP_THINNING = 0.5
#: A mouth parted by less than this share of the opening that shows its inside (``OPEN_MOUTH``, ``MESH_OPEN_MOUTH``)
#: is shut: its seam moves with the lips (:data:`~.action_units.SHUT_MOUTH_SEAM`); from there to that opening the
#: action units' pattern fades to the open mouth's, so a face whose lips part in a clip changes smoothly.
SHUT_MOUTH = 0.5

#: The least Jacobian determinant a warp may have outside the lips (0: it folds the photo over itself, drawing a lip
#: corner twice or rings where landmarks crowd), the bisection steps that find the largest share of an edit that
#: keeps it, and the margin around the moved inner lips left out of the check (inter-ocular distances).
MIN_AREA_RATIO = 0.1
FOLD_SEARCH_STEPS = 6
LIPS_FOLD_MARGIN = 0.05

#: dlib's upper inner lip points this far (inter-ocular distances) above Face Mesh V2's upper lip, beyond its outer
#: edge, lie in a moustache (Walter, breakingbad.jpg: 0.04-0.08; every other tune and fresh face's lie on or
#: within the lips, 0.02 and more inside), and an edit that parts the lips pulls its points apart from the seam there
#: (:func:`lips_out_of_moustache`). The pulled points keep this much of a gap (inter-ocular distances) across the seam.
MOUSTACHE_MARGIN = 0.02
PARTED_SEAM = 0.02
#: How far (inter-ocular distances) a warp may move a landmark that lies outside the photo, before or after moving:
#: further, it would move pixels the photo does not have (a mouth cut by the photo's edge opening into a dark blob).
MAX_MOVE_OUTSIDE = 0.05

#: The window on pixels the warp holds still but a step beside it changed (:meth:`FaceWarp.with_edited`): above 0
#: (edited), too small to matter to what weighs the window (the texture's shading).
EDITED_WEIGHT = 1e-3
#: The fixed ring: this many points on an ellipse around the landmarks (and their moved positions).
RING_POINTS = 40
#: Largest side of the grid the spline is evaluated on before being resized to the face's pixels: the field is
#: smooth, so a coarse evaluation loses nothing visible and bounds the cost for huge faces.
MAX_FIELD_GRID = 64


def thin_plate_spline(
    centres: np.ndarray, values: np.ndarray, regularization: float = 0.0
) -> callable[[np.ndarray], np.ndarray]:
    """A 2-D thin-plate spline through ``values`` (``(N, D)``) at ``centres`` (``(N, 2)``); returns a function of
    ``(M, 2)`` points giving ``(M, D)``. ``regularization`` > 0 smooths instead of interpolating exactly."""
    centres = np.asarray(centres, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    count = len(centres)
    scale = max(float(np.ptp(centres, axis=0).max()), 1e-9)  # conditioning: work in units of the point spread
    unit = centres / scale

    def kernel(points: np.ndarray) -> np.ndarray:
        # cdist: no (M, N, 2) temporary (12x faster on a 64x64 grid, the per-frame cost of a video edit).
        squared = cdist(points, unit, "sqeuclidean")
        # r^2 log r^2 / 2, 0 at r = 0, in one buffer: the temporaries cost as much as the arithmetic per frame.
        values = np.maximum(squared, np.finfo(np.float64).tiny)
        np.log(values, out=values)
        values *= squared
        values *= 0.5
        return values

    affine = np.hstack([np.ones((count, 1)), unit])
    system = np.zeros((count + 3, count + 3))
    system[:count, :count] = kernel(unit) + regularization * np.eye(count)
    system[:count, count:] = affine
    system[count:, :count] = affine.T
    rhs = np.vstack([values, np.zeros((3, values.shape[1]))])
    coefficients = np.linalg.lstsq(system, rhs, rcond=None)[0]

    def evaluate(points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64) / scale
        basis = np.hstack([kernel(points), np.ones((len(points), 1)), points])
        return basis @ coefficients

    return evaluate


@dataclass
class FaceWarp:
    """One face's warp in image coordinates.

    Attributes:
        roi: ``(x0, y0, x1, y1)`` image pixels the warp may change (the ring's bounding box, clipped).
        map_x, map_y: ``float32`` source coordinates of each ROI pixel (absolute image coordinates), for
            ``cv2.remap``.
        weight: ``float32`` window in ``[0, 1]`` over the ROI; 0 where the pixel is untouched.
        shape: the 68 landmarks after the warp, image coordinates.
        ring: the fixed ring's points, image coordinates (the outline of what may change).
        mouth: how the inside of the lips is filled, or ``None`` when the lips stay shut or do not move.
        kept: the share of the asked-for displacement the warp performs (below 1 where the full one would fold the
            photo over itself), besides a part that yields first (lips closing, :func:`plan_face_warp`).
    """

    roi: tuple[int, int, int, int]
    map_x: np.ndarray
    map_y: np.ndarray
    weight: np.ndarray
    shape: np.ndarray
    ring: np.ndarray
    mouth: MouthInside | None = None
    kept: float = 1.0

    def mask(self, image_hw: tuple[int, int]) -> np.ndarray:
        """``HxW`` float32: the window over the full image (0 where :meth:`apply` leaves pixels untouched)."""
        full = np.zeros(image_hw, dtype=np.float32)
        x0, y0, x1, y1 = self.roi
        full[y0:y1, x0:x1] = self.weight
        return full

    def with_edited(self, changed: np.ndarray) -> FaceWarp:
        """This warp with the pixels ``changed`` (``HxW`` bool over the image) in its edited area (its window above
        0, at :data:`EDITED_WEIGHT`), for what a step beside the warp changed where the warp itself moves nothing:
        eyes opened at the lid margins, lips slid shut over teeth the warp held still. :meth:`mask` then tells every
        pixel the face's edit changed, and :meth:`apply` keeps them. Only pixels inside the fixed ring may change
        (both steps stay inside it), so those beyond the ROI are never among them."""
        x0, y0, x1, y1 = self.roi
        weight = self.weight.copy()
        weight[changed[y0:y1, x0:x1] & (weight <= 0)] = EDITED_WEIGHT
        return replace(self, weight=weight)

    def leaves_photo(self, shape: np.ndarray, image_hw: tuple[int, int]) -> bool:
        """Whether the warp moves a landmark of ``shape`` (the face before the warp) that lies outside the photo,
        before or after moving, by more than :data:`MAX_MOVE_OUTSIDE`: a face cut by the photo's edge where it is
        edited."""
        shape = np.asarray(shape, dtype=np.float64)
        moving = np.linalg.norm(self.shape - shape, axis=1) > MAX_MOVE_OUTSIDE * inter_ocular(shape)
        height, width = image_hw
        points = np.concatenate([shape[moving], self.shape[moving]])
        return bool(((points < 0) | (points > [width - 1, height - 1])).any())

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The warped copy of an ``HxW`` or ``HxWxC`` uint8 image (all channels move together, so colour goes
        with the pixels); pixels where the window is 0 are copied bit for bit."""
        out = image.copy()
        x0, y0, x1, y1 = self.roi
        if x1 <= x0 or y1 <= y0:
            return out
        warped = cv2.remap(
            image, self.map_x, self.map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101
        )
        if self.mouth is not None:
            warped = self.mouth.apply(image, warped, self.roi)
        base = out[y0:y1, x0:x1]
        moved = self.weight > 0
        if image.ndim == 3:
            moved = moved[:, :, None]
        out[y0:y1, x0:x1] = np.where(moved, warped, base)
        return out


def _ring(points: np.ndarray, moved: np.ndarray, margin: float) -> np.ndarray:
    """Fixed points around all landmarks and their moved positions: their convex hull pushed out by ``margin`` px
    from its centre, resampled to :data:`RING_POINTS` points evenly spaced along it."""
    both = np.vstack([points, moved]).astype(np.float32)
    hull = cv2.convexHull(both)[:, 0, :].astype(np.float64)
    centre = hull.mean(0)
    offsets = hull - centre
    hull = centre + offsets * (1.0 + margin / np.maximum(np.linalg.norm(offsets, axis=1, keepdims=True), 1e-9))
    closed = np.vstack([hull, hull[:1]])
    lengths = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(lengths)])
    samples = np.linspace(0.0, along[-1], RING_POINTS, endpoint=False)
    return np.stack([np.interp(samples, along, closed[:, k]) for k in range(2)], axis=1)


def plan_face_warp(
    shape: np.ndarray,
    displacement: np.ndarray,
    image_hw: tuple[int, int],
    margin: float,
    feather: float,
    yielding: np.ndarray | None = None,
    mesh: np.ndarray | None = None,
    optional: np.ndarray | None = None,
    sources: np.ndarray | None = None,
) -> FaceWarp | None:
    """Plan the warp that moves ``shape`` (``(68, 2)`` image px) by ``displacement`` (``(68, 2)`` image px).

    Args:
        shape: the face's landmarks in the image.
        displacement: where each landmark moves (zeros hold a landmark in place).
        image_hw: the image size.
        margin: px between the outermost (moved or unmoved) landmark and the fixed ring.
        feather: px over which the window falls from 1 to 0 toward the ring.
        yielding: a part of ``displacement`` given up first where the whole would fold the photo (closing a
            mouth: the lips meeting squeeze the gap between them more than a smooth warp can), before the rest
            of the edit is held back.
        mesh: the face's ``(478, 2 or 3)`` Face Mesh V2 points, whose dense inner lips (moved with the 68 points') give
            the inside of the mouth (:class:`MouthInside`) in place of the 68 points'.
        optional: a refinement of ``displacement`` given up before anything else where the whole would fold (the
            lips' thinning, :func:`lips_kept_thin`: on a turned face's crowded lip points it folded the photo and held
            back the whole smile).
        sources: where the spline pulls each landmark's pixels from, if not from ``shape`` itself
            (:func:`lips_out_of_moustache`); the moved landmarks are still ``shape + displacement``.

    Returns:
        The warp, or ``None`` when nothing moves.
    """
    shape = np.asarray(shape, dtype=np.float64)
    displacement = np.asarray(displacement, dtype=np.float64)
    if not np.abs(displacement).max(initial=0.0) > 1e-3:
        return None
    moved = shape + displacement
    ring = _ring(shape, moved, margin)
    height, width = image_hw
    x0 = int(np.clip(math.floor(ring[:, 0].min()), 0, width))
    y0 = int(np.clip(math.floor(ring[:, 1].min()), 0, height))
    x1 = int(np.clip(math.ceil(ring[:, 0].max()) + 1, 0, width))
    y1 = int(np.clip(math.ceil(ring[:, 1].max()) + 1, 0, height))
    if x1 <= x0 or y1 <= y0:
        return None

    roi = (x0, y0, x1, y1)
    inside = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(inside, [np.round((ring - [x0, y0]) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    distance = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    ramp = np.clip(distance / max(feather, 1.0), 0.0, 1.0)
    # Window: 1 well inside the ring, a raised-cosine fall to exactly 0 on it, 0 outside.
    weight = (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)
    pulled = shape if sources is None else np.asarray(sources, dtype=np.float64)
    map_x, map_y = _backward_maps(pulled, displacement, ring, roi, weight)
    kept = 1.0
    folds = least_area_ratio(map_x, map_y, weight, pulled + displacement, roi) < MIN_AREA_RATIO
    if folds and optional is not None and np.abs(optional).max(initial=0.0) > 1e-3:
        # A refinement of the edit goes first: the largest share of it that the rest allows, or all of it where the
        # rest folds too (there the landmarks crowd and are held back: refined, a turned man's mouth changed him
        # most, tune t1.jpg's face 0 toward happy 0.559 -> 0.591 from himself).
        rest = displacement - optional
        maps = _backward_maps(pulled, rest, ring, roi, weight)
        folds = least_area_ratio(*maps, weight, pulled + rest, roi) < MIN_AREA_RATIO
        share, shared_maps = (0.0, None) if folds else _unfolded_share(pulled, rest, optional, ring, roi, weight)
        (map_x, map_y), displacement = (shared_maps, rest + share * optional) if share > 0.0 else (maps, rest)
        moved = shape + displacement
    if folds:
        # The field folds (crowded landmarks of a turned or occluded face moved past each other, or lips closed
        # over a wide gap): if the edit without its yielding part does not, keep the largest share of the yielding
        # part that does not; else the largest share of the whole edit. Each found by bisection.
        fixed = displacement if yielding is None else displacement - yielding
        fixed_maps = None if yielding is None else _backward_maps(pulled, fixed, ring, roi, weight)
        if fixed_maps is not None and least_area_ratio(*fixed_maps, weight, pulled + fixed, roi) >= MIN_AREA_RATIO:
            share, maps = _unfolded_share(pulled, fixed, yielding, ring, roi, weight)
            (map_x, map_y), displacement = (maps, fixed + share * yielding) if share > 0.0 else (fixed_maps, fixed)
        else:
            kept, maps = _unfolded_share(pulled, np.zeros_like(displacement), displacement, ring, roi, weight)
            if kept == 0.0:
                return None
            (map_x, map_y), displacement = maps, kept * displacement
        if not np.abs(displacement).max(initial=0.0) > 1e-3:
            return None
        moved = shape + displacement
    shift = np.hypot(map_x - np.arange(x0, x1, dtype=np.float32)[None, :], map_y - np.arange(y0, y1)[:, None])
    weight[shift < 0.02] = 0.0  # moved by under 1/50 px: left untouched
    mouth = mouth_inside(shape, displacement, roi, map_x, map_y, mesh)
    moved = moved.astype(np.float32)
    return FaceWarp(roi=roi, map_x=map_x, map_y=map_y, weight=weight, shape=moved, ring=ring, mouth=mouth, kept=kept)


def _unfolded_share(
    shape: np.ndarray,
    fixed: np.ndarray,
    scaled: np.ndarray,
    ring: np.ndarray,
    roi: tuple[int, int, int, int],
    weight: np.ndarray,
) -> tuple[float, tuple[np.ndarray, np.ndarray] | None]:
    """The largest share (bisection, :data:`FOLD_SEARCH_STEPS`) of ``scaled`` that, added to ``fixed``, keeps the
    warp from folding (:func:`least_area_ratio`), and that warp's maps (``None`` for share 0)."""
    low, high, found = 0.0, 1.0, None
    for _ in range(FOLD_SEARCH_STEPS):
        middle = (low + high) / 2
        displacement = fixed + middle * scaled
        maps = _backward_maps(shape, displacement, ring, roi, weight)
        if least_area_ratio(*maps, weight, shape + displacement, roi) >= MIN_AREA_RATIO:
            low, found = middle, maps
        else:
            high = middle
    return low, found


def least_area_ratio(
    map_x: np.ndarray, map_y: np.ndarray, weight: np.ndarray, moved: np.ndarray, roi: tuple[int, int, int, int]
) -> float:
    """The smallest Jacobian determinant of a backward map (how much it shrinks a patch of the photo; 0 or less
    where it folds the photo over itself) over the pixels it moves, leaving out the inside of the moved lips (which
    :class:`MouthInside` re-makes). Evaluated every few pixels: the field is smooth."""
    x0, y0, x1, y1 = roi
    step = max(1, round(max(x1 - x0, y1 - y0) / 256))
    sampled_x, sampled_y = map_x[::step, ::step].astype(np.float64), map_y[::step, ::step].astype(np.float64)
    if min(sampled_x.shape) < 2:
        return 1.0
    dxx, dxy = np.gradient(sampled_x, step)[::-1]  # d/dx (columns), d/dy (rows)
    dyx, dyy = np.gradient(sampled_y, step)[::-1]
    determinant = dxx * dyy - dxy * dyx
    lips = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillPoly(
        lips, [np.round((inner_lip_outline(*inner_lips(moved)) - [x0, y0]) * 16).astype(np.int32)], 1, shift=4
    )
    grow = max(1, round(LIPS_FOLD_MARGIN * inter_ocular(moved)))
    lips = cv2.dilate(lips, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    counted = (weight[::step, ::step] > 0) & (lips[::step, ::step] == 0)
    return float(determinant[counted].min(initial=1.0))


def _backward_maps(
    shape: np.ndarray, displacement: np.ndarray, ring: np.ndarray, roi: tuple[int, int, int, int], weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps over ``roi``: at each moved point the source is the original point, the ring stays, and
    the field is scaled by ``weight``. The spline is evaluated on a coarse grid and resized (the field is smooth)."""
    x0, y0, x1, y1 = roi
    centres = np.vstack([shape + displacement, ring])
    spline = thin_plate_spline(centres, np.vstack([-displacement, np.zeros_like(ring)]))
    roi_w, roi_h = x1 - x0, y1 - y0
    step = max(1.0, max(roi_w, roi_h) / MAX_FIELD_GRID)
    grid_w, grid_h = max(2, math.ceil(roi_w / step)), max(2, math.ceil(roi_h / step))
    gx = x0 + (np.arange(grid_w) + 0.5) * roi_w / grid_w - 0.5
    gy = y0 + (np.arange(grid_h) + 0.5) * roi_h / grid_h - 0.5
    field = spline(np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)).reshape(grid_h, grid_w, 2)
    field = cv2.resize(field.astype(np.float32), (roi_w, roi_h), interpolation=cv2.INTER_LINEAR)
    field *= weight[:, :, None]
    map_x = np.arange(x0, x1, dtype=np.float32)[None, :] + field[:, :, 0]
    map_y = np.arange(y0, y1, dtype=np.float32)[:, None] + field[:, :, 1]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def action_unit_warp(
    shape: np.ndarray,
    alignment: np.ndarray,
    units: dict[str, float],
    image_hw: tuple[int, int],
    margin: float = RING_MARGIN,
    feather: float = RING_FEATHER,
    close_mouth: float = 0.0,
    mesh: np.ndarray | None = None,
    slits: Sequence[str] = (),
    unopened: Sequence[str] = (),
) -> FaceWarp | None:
    """The warp that performs action ``units`` (name -> intensity) on a face, and closes its open mouth by
    ``close_mouth`` (0 to 1, :func:`~diffusers_led.geometry.mouth_closing.mouth_closing`).

    Args:
        shape: the face's 68 landmarks, image px.
        alignment: the ``2x3`` image -> aligned-face similarity (the patterns are defined in the aligned face).
        units: e.g. ``{"AU6": 0.8, "AU12": 0.8}``.
        image_hw: the image size.
        margin, feather: ring margin and window falloff in inter-ocular distances.
        mesh: the face's Face Mesh V2 points, if any (:func:`plan_face_warp`).
        slits: the eyes squeezed to a slit (:func:`slit_eyes`): they open no wider than :data:`MAX_SLIT_STRETCH`
            (:func:`keep_slits_shut`).
        unopened: the other eyes whose lids are not opened at the margin (they show no white): their brows stretch
            the lid skin no more than a slit's (:func:`keep_lid_skin`).
    """
    shape = np.asarray(shape, dtype=np.float64)
    linear = np.asarray(alignment, dtype=np.float64)[:, :2]
    aligned = shape @ linear.T
    # Patterns are in inter-ocular units of the aligned face; back to image px through the inverse rotation/scale.
    shut = mouth_shut(shape, mesh)
    displacement = landmark_displacements(units, shut=shut) * inter_ocular(aligned)
    aligned_mesh = None if mesh is None else np.asarray(mesh, dtype=np.float64)[:, :2] @ linear.T
    displacement = foreshortened_mouth(aligned, displacement, aligned_mesh)
    # Smiled lips thin as they stretch; where the warp would fold (crowded lip points of a turned face), that is given
    # up first. Not where the edit parts the lips: an opened mouth's inside is drawn against the lips as they are.
    smiles = any(units.get(name, 0.0) > 0 for name in SMILING_UNITS)
    opens = any(units.get(name, 0.0) > 0 for name in MOUTH_OPENING_UNITS)
    thinning = np.zeros_like(displacement)
    if smiles and not opens:
        thinning = lips_kept_thin(aligned, displacement, shut) - displacement
    displacement = displacement + thinning
    # A jaw drop undone by its own pattern takes the jaw, chin and lip corners back; toward a target that parts no
    # lips, the lips then close what is left. Both squeeze the gap between the lips, which yields first if the warp
    # would fold.
    jaw = {name: value for name, value in units.items() if name in MOUTH_OPENING_UNITS and value < 0}
    closing = landmark_displacements(jaw) * inter_ocular(aligned)
    # How far an open mouth closes is the mesh's reading where it sees the lips closer (dlib's inner points stray
    # on turned faces). The units' own guard against pushing lips through each other keeps the 68 points' reading:
    # on the mesh's, a moustached shut mouth (breakingbad.jpg) lost the lower lip's rise that reads as sad.
    aligned_lips = inner_lips_on_mesh(shape, mesh) @ linear.T
    if close_mouth > 0:  # read there, the closing moves the 68 points: closed, they must meet along a smooth line
        lips = mouth_closing(aligned_lips + displacement, close_mouth, moved=aligned + displacement)
        closing, displacement = closing + lips, displacement + lips
    displacement = keep_slits_shut(aligned, keep_lids_apart(aligned, displacement), slits)
    displacement = keep_lid_skin(aligned, displacement, [eye for eye in unopened if eye not in slits])
    to_image = np.linalg.inv(linear).T
    iod = inter_ocular(shape)
    return plan_face_warp(
        shape,
        displacement @ to_image,
        image_hw,
        margin=margin * iod,
        feather=feather * iod,
        yielding=closing @ to_image,  # the mouth closes as far as a smooth warp can; the other units stay whole
        optional=thinning @ to_image,
        mesh=mesh,
        sources=lips_out_of_moustache(shape, displacement @ to_image, mesh),
    )


def lips_out_of_moustache(shape: np.ndarray, displacement: np.ndarray, mesh: np.ndarray | None) -> np.ndarray:
    """Where the warp's spline pulls each of ``shape``'s 68 points (image px) from: ``shape`` itself but, where its
    upper inner lip points lie in a moustache (above Face Mesh V2's upper lip by :data:`MOUSTACHE_MARGIN`) and
    ``displacement`` parts the lips, its 20 mouth points on the mesh's lips (evenly along each contour; the inner
    lips at least :data:`PARTED_SEAM` apart across the seam). dlib read Walter's moustache (breakingbad.jpg) as his
    upper lip and his seam as the lower lip's inner edge, 20 px apart, and a jaw drop stretched the moustache's lower
    half down over the opening, whose dark shaded into the hair; pulled apart at the seam, the hair hangs as it did
    and the stretch lies under the drawn opening."""
    shape = np.asarray(shape, dtype=np.float64)
    if mesh is None:
        return shape
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    iod = inter_ocular(shape)
    axis = shape[42:48].mean(0) - shape[36:42].mean(0)
    down = np.array([-axis[1], axis[0]]) / max(np.linalg.norm(axis), 1e-9)
    parting = np.mean([(displacement[lower] - displacement[upper]) @ down for upper, lower in INNER_LIP_PAIRS])
    sources = shape.copy()
    # The outer lips from mouth corner to mouth corner; the inner ones between the inner corners (60 to 64).
    contours = (MESH_LIPS[0], MESH_LIPS[1][1:-1], MESH_LIPS[2][1:-1], MESH_LIPS[3])
    for points, contour in zip((IBUG_LIPS[0], IBUG_LIPS[1][1:-1], IBUG_LIPS[2][1:-1], IBUG_LIPS[3]), contours):
        lip = mesh[contour]
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(lip, axis=0), axis=1))])
        shares = np.linspace(0.0, along[-1], len(points))
        sources[points] = np.stack([np.interp(shares, along, lip[:, k]) for k in range(2)], axis=1)
    upper_lip = mesh[MESH_LIPS[0] + MESH_LIPS[1][::-1]].astype(np.float32)
    beyond = [-cv2.pointPolygonTest(upper_lip, tuple(map(float, shape[k])), True) for k in (61, 62, 63)]
    above = all((shape[k] - sources[k]) @ down < 0 for k in (61, 62, 63))  # not below it, on a laugh's teeth
    if parting <= 0 or min(beyond) < MOUSTACHE_MARGIN * iod or not above:
        return shape
    for upper, lower in INNER_LIP_PAIRS:  # no closer across the seam than PARTED_SEAM: a spline through one point
        short = PARTED_SEAM * iod - (sources[lower] - sources[upper]) @ down  # with two movements has none
        if short > 0:
            sources[upper] -= 0.5 * short * down
            sources[lower] += 0.5 * short * down
    return sources


def keep_lids_apart(aligned: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """``displacement`` (px, aligned face frame: y down) with the lids' closing movements scaled down where they
    would close an eye below :data:`MIN_EYE_OPENING` of its opening, or push the lips through each other.

    The action-unit patterns are the same on every face, but eyes are not: a squinting or closed eye lifted by a
    smile's full cheek raise would fold its lower lid over the upper one."""
    displacement = np.array(displacement, dtype=np.float64)
    for pairs, keep in ((EYELID_PAIRS, MIN_EYE_OPENING), (INNER_LIP_PAIRS, 0.0)):
        for upper, lower in pairs:
            opening = aligned[lower, 1] - aligned[upper, 1]
            closing = displacement[upper, 1] - displacement[lower, 1]  # how much the gap shrinks
            allowed = max(opening * (1.0 - keep), 0.0)
            if closing > allowed:
                scale = allowed / closing
                displacement[[upper, lower], 1] *= scale
    return displacement


def lips_kept_thin(aligned: np.ndarray, displacement: np.ndarray, shut: float = 1.0) -> np.ndarray:
    """``displacement`` (px, aligned face frame: y down) with each lip's outer edge brought toward its inner edge
    where the lip, lengthened along the mouth, would be taller than its height before over its stretch (the length
    of its inner edge from the corner to the lips' middle, after over before, on each half): a stretched lip keeps its
    red area, as a real one does. The corner puller's pattern (AU12) takes the corners up and out and the lower lip's
    inner edge up beside them, its outer edge less: on a shut mouth the lower lip grew into a thick crescent (t1.jpg's
    downcast woman toward happy: its red x1.5, its height in the middle x1.2). A lip that is not lengthened, or is
    already thinner, is left as it is: the rule only thins. ``shut`` (:func:`mouth_shut`, 0 to 1): an open mouth's
    inner edge is read as a curve (:func:`_edge_at`), a shut one's seam between its points, and between the two in
    proportion."""
    displacement = np.array(displacement, dtype=np.float64)
    moved = aligned + displacement
    middle = aligned[LIP_MIDDLES, 0].mean()
    for outer, inner in LIP_EDGES.values():
        # Each half of the inner edge (subject's right: the image's left), corner to middle; at least 1: only thins.
        halves = (inner[: len(inner) // 2 + 1], inner[len(inner) // 2 :])
        stretch = [max(_length(moved[half]) / max(_length(aligned[half]), 1e-9), 1.0) for half in halves]
        sign = 1.0 if outer == LIP_EDGES["lower"][0] else -1.0  # the lower lip's outer edge lies below its inner edge
        for point in outer:
            share = 0.5 if point in MIDLINE_LIPS else float(aligned[point, 0] > middle)  # the middle: both halves
            lengthened = (1.0 - share) * stretch[0] + share * stretch[1]
            if lengthened <= 1.0:
                continue
            height = sign * (aligned[point, 1] - _edge_at(aligned[inner], aligned[point, 0], shut))
            now = sign * (moved[point, 1] - _edge_at(moved[inner], moved[point, 0], shut))
            excess = now - max(height, 0.0) / lengthened**LIP_THINNING
            if excess > 0:
                displacement[point, 1] -= sign * excess
    return displacement


def _length(points: np.ndarray) -> float:
    """The length of the polyline through ``points``."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def _edge_at(edge: np.ndarray, x: float, shut: float = 1.0) -> float:
    """The height (y) of the lip edge through ``edge`` (points along the mouth, corners included) at ``x``: on a shut
    mouth (``shut`` 1) linearly between its points, on an open one (0) the parabola that fits them best, and between
    the two in proportion. An opened smile's inner lip is a curve: read linearly, its lowest point gave the thinned
    lower lip a corner under its middle (a V; fresh group photos' open smiles). On shut lips the parabola grew the red
    (x1.26 against x1.21 on a drawn mouth) and moved t1.jpg's downcast woman further from herself (0.573 -> 0.584)."""
    order = np.argsort(edge[:, 0])
    linear = float(np.interp(x, edge[order, 0], edge[order, 1]))
    if shut >= 1.0:
        return linear
    curve = float(np.polyval(np.polyfit(edge[:, 0], edge[:, 1], 2), x))
    return shut * linear + (1.0 - shut) * curve


def foreshortened_mouth(aligned: np.ndarray, displacement: np.ndarray, mesh: np.ndarray | None = None) -> np.ndarray:
    """``displacement`` (px, aligned face frame) with the sideways movement of the mouth's points on its narrower
    half scaled by how much narrower that half is (its width from the lips' middle to its corner, over the other
    half's, beyond :data:`FRONTAL_HALF_WIDTHS`): on a turned face the far half of the mouth is foreshortened, and
    a corner pulled in or out by the frontal pattern's amount bunched that half's lips into a pout. Widths are read
    on ``mesh`` (Face Mesh V2, same frame) when given: dlib's far corner sits short of the real one."""
    displacement = np.array(displacement, dtype=np.float64)
    points = np.asarray(aligned if mesh is None else mesh, dtype=np.float64)
    middles, corners = (LIP_MIDDLES, list(MESH_MOUTH_CORNERS)) if mesh is None else (MESH_LIP_MIDDLES, MESH_CORNERS)
    widths = np.abs(points[corners, 0] - points[middles, 0].mean())
    for half, width, other in ((RIGHT_MOUTH, *widths), (MIRROR[RIGHT_MOUTH], *widths[::-1])):
        displacement[half, 0] *= min(width / max(other, 1e-9) / FRONTAL_HALF_WIDTHS, 1.0)
    return displacement


def slit_eyes(
    shape: np.ndarray, without_white: Sequence[str] = ("right", "left"), closed: Sequence[str] = ()
) -> tuple[str, ...]:
    """Of the eyes ``without_white`` (``"right"``, ``"left"``: those that show no white), the ones squeezed to a slit
    on the 68 points ``shape`` (lids closer than :data:`SLIT_HEIGHT` of the eye's width) or read as ``closed`` (a
    downcast or shut eye, whose lashes dlib's lid points may sit apart on)."""
    shape = np.asarray(shape, dtype=np.float64)
    slits = []
    for eye in without_white:
        (outer, inner), pairs = EYE_CORNERS[eye], EYE_LID_PAIRS[eye]
        height = np.mean([np.linalg.norm(shape[lower] - shape[upper]) for upper, lower in pairs])
        if eye in closed or height < SLIT_HEIGHT * np.linalg.norm(shape[inner] - shape[outer]):
            slits.append(eye)
    return tuple(slits)


def keep_slits_shut(aligned: np.ndarray, displacement: np.ndarray, eyes: Sequence[str]) -> np.ndarray:
    """``displacement`` (px, aligned face frame: y down) with the lids of ``eyes`` (``"right"``, ``"left"``: slits,
    :func:`slit_eyes`) separating no more than to :data:`MAX_SLIT_STRETCH` of their opening: each facing pair keeps
    its mean movement (the eye still moves with its brow and cheek) and only the part that parts them is cut. Their
    brows rise above the held upper lid by no more than :data:`MAX_LID_SKIN_STRETCH` of the lid skin between."""
    displacement = np.array(displacement, dtype=np.float64)
    for eye in eyes:
        for upper, lower in EYE_LID_PAIRS[eye]:
            opening = max(aligned[lower, 1] - aligned[upper, 1], 0.0)
            parting = displacement[lower, 1] - displacement[upper, 1]  # how much the gap grows
            allowed = opening * (MAX_SLIT_STRETCH - 1.0)
            if parting > allowed:
                middle = (displacement[upper, 1] + displacement[lower, 1]) / 2
                displacement[upper, 1], displacement[lower, 1] = middle - allowed / 2, middle + allowed / 2
    return keep_lid_skin(aligned, displacement, eyes)


def keep_lid_skin(aligned: np.ndarray, displacement: np.ndarray, eyes: Sequence[str]) -> np.ndarray:
    """``displacement`` (px, aligned face frame: y down) with the brows over ``eyes`` (``"right"``, ``"left"``)
    rising above their upper lid by no more than :data:`MAX_LID_SKIN_STRETCH` of the lid skin between: the eyes
    whose lids are not opened at the margin (slits, eyes that show no white), where the stretched skin would draw
    the lid's dark crease and lashes tall, as a streaked band."""
    displacement = np.array(displacement, dtype=np.float64)
    for eye in eyes:
        # The brow's rise over the lid is scaled down as a whole, so its shape (a sad brow's raised inner end) stays.
        brows, lid = EYE_BROWS[eye]
        rise = displacement[lid, 1].mean() - displacement[brows, 1]
        skin = aligned[lid, 1].mean() - aligned[brows, 1].mean()
        allowed = max(skin, 0.0) * (MAX_LID_SKIN_STRETCH - 1.0)
        if rise.mean() > allowed:
            displacement[brows, 1] = displacement[lid, 1].mean() - rise * allowed / rise.mean()
    return displacement


def mouth_shut(shape: np.ndarray, mesh: np.ndarray | None = None) -> float:
    """How far the mouth of the face with 68 points ``shape`` (image px) is shut, 0 to 1: 1 below :data:`SHUT_MOUTH`
    of the opening that shows the inside of the mouth, 0 from that opening on, linearly between. The gap is read
    between the inner lips of the face's ``mesh`` when given (Face Mesh V2's meet on a shut mouth), else of dlib's."""
    shape = np.asarray(shape, dtype=np.float64)
    parting = lip_parting(*inner_lips(shape, mesh), inter_ocular(shape))
    open_mouth = OPEN_MOUTH if mesh is None else MESH_OPEN_MOUTH
    return float(np.clip((open_mouth - parting) / ((1.0 - SHUT_MOUTH) * open_mouth), 0.0, 1.0))


def mouth_opening(shape: np.ndarray, mesh: np.ndarray | None = None) -> float:
    """The gap between the inner lips (mean of 61-63 to 65-67 of ``shape``), in inter-ocular distances of
    ``shape``; with the face's ``mesh`` (``(478, 3)``), between the middles of Face Mesh V2's inner lips, in the
    distance between its eye centres, both in its 3-D points (z is in pixels as x and y)."""
    if mesh is None:
        shape = np.asarray(shape, dtype=np.float64)
        return lip_parting(*inner_lips(shape), inter_ocular(shape))
    # In 3-D: a turned head foreshortens the eye distance in the photo but hardly the lips' parting, so in 2-D a
    # turned face's barely parted lips read as open (Courteney, t1.jpg, turned 36 degrees: 0.137 against 0.085).
    mesh = np.asarray(mesh, dtype=np.float64)
    right, left = (mesh[EYES[eye]["upper"] + EYES[eye]["lower"]].mean(0) for eye in ("right", "left"))
    return lip_parting(mesh[MESH_UPPER_INNER_LIP], mesh[MESH_LOWER_INNER_LIP], float(np.linalg.norm(left - right)))


def inner_mouth_mask(shape: np.ndarray, crop_matrix: np.ndarray, crop_size: int, grow: float = 0.08) -> np.ndarray:
    """A soft ``crop_size`` square mask of the inside of the lips (the 68-point inner lip contour, grown by
    ``grow`` inter-ocular distances and feathered as much again) in the crop cut by ``crop_matrix`` (image ->
    crop px): where a mouth that the warp opened needs new texture (teeth, the dark of the mouth)."""
    shape = np.asarray(shape, dtype=np.float64)
    points = np.asarray(crop_matrix, dtype=np.float64)[:, :2] @ shape[INNER_LIPS].T + np.asarray(crop_matrix)[:, 2:]
    scale = float(np.sqrt(abs(np.linalg.det(np.asarray(crop_matrix)[:, :2]))))
    radius = max(grow * inter_ocular(shape) * scale, 1.0)
    mask = np.zeros((crop_size, crop_size), dtype=np.float32)
    cv2.fillPoly(mask, [np.round(points.T * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * math.ceil(radius) + 1,) * 2)
    mask = cv2.GaussianBlur(cv2.dilate(mask, kernel), (0, 0), sigmaX=radius / 2)
    edge = np.zeros_like(mask)
    edge[1:-1, 1:-1] = 1.0  # zero on the crop's outer ring, as every blend mask
    return np.clip(mask * edge, 0.0, 1.0)
