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

from .action_units import inter_ocular, landmark_displacements
from .mouth_closing import MESH_LIPS, MOUTH_OPENING_UNITS, mouth_closing

__all__ = [
    "FaceWarp",
    "action_unit_warp",
    "inner_mouth_mask",
    "keep_lid_skin",
    "keep_lids_apart",
    "keep_slits_shut",
    "least_area_ratio",
    "mouth_opening",
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
#: Lips parted further than this (inter-ocular distances) show the inside of the mouth (MouthInside).
MIN_LIP_PARTING = 0.03
#: The inside of an open mouth under the upper lip (the roof, in the deepest shadow) against the lips' own middle
#: tone. Set against the lips' darkest tenth, it was near-black on dim or dark-skinned faces (whose darkest lip
#: pixels are the seam's shadow: 0.32-0.51 of their middle tone on the tune split, against 0.63-0.70 on the
#: brightly lit ones); against their middle tone it is equally dark beside the lips on every face. 0.2 is what
#: 0.3 of the darkest tenth gave on the well-lit faces.
DARKEN_INSIDE = 0.2
#: The inside's walls beside the lips (the inner cheeks and the lips' wet inner side, lit from the front) against
#: the lips' middle tone: the dark deepens from this at the lips to :data:`DARKEN_INSIDE` at the opening's deepest
#: point, so a large opening is shaded as a hollow, not drawn as a uniform black disc.
INSIDE_WALL = 0.45
TONGUE_SHADE = 0.55
TONGUE_FROM = 0.55
TONGUE_SHARE = 0.6
#: A mouth open this far (inter-ocular distances) shows teeth or its inside; dlib's inner lip points read a closed
#: mouth's seam as a gap of up to about 0.07.
OPEN_MOUTH = 0.1
#: The same for Face Mesh V2's inner lips, which meet on a closed mouth (0.004-0.017 on the tune split's closed
#: mouths) and read a toothy open one (Jesse's, breakingbad.jpg) at 0.095.
MESH_OPEN_MOUTH = 0.05
#: The share of its area (a backward map's Jacobian determinant) below which the plain warp's copy of the old
#: inside counts as stretched and gives way to the opened mouth's own inside (from 1, unstretched, it gives way
#: gradually).
STRETCHED_AREA = 0.5
#: How far into an opened mouth the lips' shade reaches before its dark inside (inter-ocular distances).
LIP_SHADE = 0.06
#: The soft edge between what the upper and the lower teeth showed, as a fraction of the opening, and the bands
#: across the opening among which the darkest (the gap between them) is sought.
JAW_SPLIT_FEATHER = 0.2
JAW_SPLIT_BANDS = 10
#: The least width of that soft edge (px).
JAW_SPLIT_LEAST_PX = 2.0
#: Bands next to either lip left out of that search: they hold the lip's own inner edge and its shadow (on a smile
#: with both rows of teeth, the shadow under the upper lip was darker than the gap between the rows).
JAW_SPLIT_EDGE_BANDS = 2
UPPER_INNER_LIP = [60, 61, 62, 63, 64]
LOWER_INNER_LIP = [60, 67, 66, 65, 64]
#: The same contours on Face Mesh V2 (its inner mouth corners 78 and 308): 11 points a lip that follow the lips'
#: real edge, where dlib's 5 may sit in a moustache or on the teeth of a toothy open mouth.
MESH_UPPER_INNER_LIP = MESH_LIPS[1][1:-1]
MESH_LOWER_INNER_LIP = MESH_LIPS[2][1:-1]

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

#: The least Jacobian determinant a warp may have outside the lips (0: it folds the photo over itself, drawing a lip
#: corner twice or rings where landmarks crowd), the bisection steps that find the largest share of an edit that
#: keeps it, and the margin around the moved inner lips left out of the check (inter-ocular distances).
MIN_AREA_RATIO = 0.1
FOLD_SEARCH_STEPS = 6
LIPS_FOLD_MARGIN = 0.05

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


@dataclass
class MouthInside:
    """How the warp fills the inside of the lips, as in a real mouth: the upper teeth are fixed to the skull and stay
    where they were, the lower teeth go with the jaw, and the lips slide over them. A mouth that narrows or closes
    covers its teeth instead of squeezing them; a mouth that opens shows its teeth unstretched and, where neither jaw
    showed anything before, the mouth's dark inside.

    Attributes:
        inside: ``float32`` over the warp's ROI, the soft inner lip contour after the warp (what this fills).
        depth: ``float32`` over the ROI, 0 at the inner lip line rising to 1 a little inside it: the dark of an
            opened mouth deepens away from the lips instead of starting at a hard edge; 1 also where the plain warp
            would draw the old inside stretched (beyond the teeth kept in place).
        was_inside: ``float32`` over the ROI, the soft inner lip contour before the warp (what the teeth showed);
            zeros where the lips were shut (their seam moves with them).
        was_across: ``float32`` over the ROI, where each pixel lay between the upper (0) and lower (1) inner lip
            before the warp: what lies above the inside's darkest band showed the upper teeth, below it the lower;
            zeros where the lips were shut (no teeth to split).
        was_height: ``float32`` over the ROI, how tall (px) the opening was there before the warp; zeros where the
            lips were shut.
        jaw_shift: ``(dx, dy)`` px the lower teeth move: with the middle of the lower lip, which the jaw carries.
        lips: the lower lip's outline before the warp (image px, :func:`_lower_lip`): the dark inside takes the
            lips' own colour from it.
        opens: whether the warp parts the lips further (only then may texture re-make the inside).
        across: ``float32`` over the ROI, where each pixel lies between the upper (0) and lower (1) inner lip after
            the warp: the inside is darkest under the upper lip and shows the tongue toward the lower one.
        hollow: ``float32`` over the ROI, 0 at the inner lip line rising to 1 at the point of the opening farthest
            from it: the inside darkens toward its back.
    """

    inside: np.ndarray
    depth: np.ndarray
    was_inside: np.ndarray
    was_across: np.ndarray
    was_height: np.ndarray
    jaw_shift: np.ndarray
    lips: np.ndarray
    opens: bool
    across: np.ndarray
    hollow: np.ndarray

    def _lip_pixels(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pixels within the outer lip contour before the warp (``(N, C)`` float32) and their grey levels."""
        inside = np.zeros(image.shape[:2], dtype=np.uint8)
        cv2.fillPoly(inside, [np.round(self.lips * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        pixels = image[inside > 0].reshape(-1, 1 if image.ndim == 2 else image.shape[2]).astype(np.float32)
        return pixels, pixels.mean(1)

    def lip_tone(self, image: np.ndarray) -> np.ndarray:
        """The lips' own colour: the mean of their middle grey levels (neither the dark seam nor teeth)."""
        pixels, level = self._lip_pixels(image)
        if len(pixels) == 0:
            return np.full(pixels.shape[1], 110.0, dtype=np.float32)
        return pixels[(level >= np.percentile(level, 25)) & (level <= np.percentile(level, 60))].mean(0)

    def shade(self, image: np.ndarray) -> np.ndarray:
        """The colour of the opened inside over the ROI: the lips' own colour in deep shadow under the upper lip, the
        tongue's shade rising toward the lower lip."""
        tone = self.lip_tone(image)
        wall = (1.0 - self.hollow[:, :, None]) ** 2  # lit beside the lips, falling off quickly toward the back
        dark = (DARKEN_INSIDE + (INSIDE_WALL - DARKEN_INSIDE) * wall) * tone
        rise = np.clip((self.across - TONGUE_FROM) / (1.0 - TONGUE_FROM), 0.0, 1.0)
        share = TONGUE_SHARE * rise * rise * (3.0 - 2.0 * rise)  # smoothstep: no line where the floor begins
        return (1.0 - share[:, :, None]) * dark + share[:, :, None] * TONGUE_SHADE * tone

    def jaw_split(self, image: np.ndarray) -> float:
        """Where across the mouth before the warp (0 at the upper inner lip, 1 at the lower) the upper teeth end and
        the lower jaw's begin: the darkest band of the inside away from the lips (the gap between the teeth, or the
        shadow below a laugh's upper teeth over the lower lip), not its middle, which cut a laugh's upper teeth in
        two."""
        was_inside = self.was_inside > 0.5
        if was_inside.sum() < JAW_SPLIT_BANDS:
            return 0.5
        level = image[was_inside].reshape(int(was_inside.sum()), -1).astype(np.float32).mean(1)
        band = np.clip((self.was_across[was_inside] * JAW_SPLIT_BANDS).astype(int), 0, JAW_SPLIT_BANDS - 1)
        count = np.bincount(band, minlength=JAW_SPLIT_BANDS)
        mean = np.bincount(band, weights=level, minlength=JAW_SPLIT_BANDS) / np.maximum(count, 1)
        mean[count == 0] = np.inf
        mean[:JAW_SPLIT_EDGE_BANDS] = mean[JAW_SPLIT_BANDS - JAW_SPLIT_EDGE_BANDS :] = np.inf
        return float((np.argmin(mean) + 0.5) / JAW_SPLIT_BANDS)

    def teeth_halves(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The soft upper and lower part of the inside before the warp (what each jaw's teeth showed), over the ROI
        of ``image`` (the ROI's pixels)."""
        split = self.jaw_split(image)
        # At least a pixel or so wide: on a small face's few-pixel opening a sharper edge, moved with the jaw, left
        # a row of dark dots between the teeth along a tilted mouth.
        feather = np.maximum(JAW_SPLIT_FEATHER, JAW_SPLIT_LEAST_PX / np.maximum(self.was_height, 1e-3))
        upper_share = np.clip((split - self.was_across) / feather + 0.5, 0.0, 1.0)
        return self.was_inside * upper_share, self.was_inside * (1.0 - upper_share)

    def apply(self, image: np.ndarray, warped: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
        """``warped`` (the ROI of the plain warp) with the inside of the lips re-made."""
        # Only the inside of the lips (before and after the warp) changes, so only their box is re-made.
        x, y, w, h = cv2.boundingRect(((self.inside > 0) | (self.was_inside > 0)).astype(np.uint8))
        box = np.s_[y : y + h, x : x + w]
        out = warped.copy()
        if w and h:
            in_box = replace(self, **{name: getattr(self, name)[box] for name in _ROI_FIELDS})
            out[box] = in_box._fill(image, warped[box], (roi[0] + x, roi[1] + y, roi[0] + x + w, roi[1] + y + h))
        return out

    def _fill(self, image: np.ndarray, warped: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
        """:meth:`apply` over ``roi``, where this inside's maps and ``warped`` lie."""
        x0, y0, x1, y1 = roi
        size = (x1 - x0, y1 - y0)
        dx, dy = (float(v) for v in self.jaw_shift)
        upper_teeth = image[y0:y1, x0:x1].astype(np.float32)
        upper, lower = self.teeth_halves(image[y0:y1, x0:x1])
        # An output pixel q takes the lower jaw's content (and its mask) from q - jaw_shift.
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        jaw = np.float32([[1, 0, x0 - dx], [0, 1, y0 - dy]])
        lower_teeth = cv2.warpAffine(image, jaw, size, flags=flags, borderMode=cv2.BORDER_REFLECT101)
        lower = cv2.warpAffine(lower, np.float32([[1, 0, -dx], [0, 1, -dy]]), size, flags=flags)
        inside = self.inside
        if image.ndim == 3:
            upper, lower, inside = upper[:, :, None], lower[:, :, None], inside[:, :, None]
        warped = warped.astype(np.float32)
        # Where neither jaw showed anything: the dark inside of a mouth that opens; the plain warp (the lips' seam
        # moved) in one that does not.
        if self.opens:
            depth = self.depth[:, :, None] if image.ndim == 3 else self.depth
            colour = self.shade(image) if image.ndim == 3 else self.shade(image)[:, :, 0]
            behind = depth * colour + (1.0 - depth) * warped
        else:
            behind = warped
        below = lower * lower_teeth.astype(np.float32) + (1.0 - lower) * behind
        filled = upper * upper_teeth + (1.0 - upper) * below
        blended = inside * filled + (1.0 - inside) * warped
        return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


#: The maps of :class:`MouthInside` that lie over the warp's ROI.
_ROI_FIELDS = ("inside", "depth", "was_inside", "was_across", "was_height", "across", "hollow")


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
    map_x, map_y = _backward_maps(shape, displacement, ring, roi, weight)
    kept = 1.0
    if least_area_ratio(map_x, map_y, weight, moved, roi) < MIN_AREA_RATIO:
        # The field folds (crowded landmarks of a turned or occluded face moved past each other, or lips closed
        # over a wide gap): if the edit without its yielding part does not, keep the largest share of the yielding
        # part that does not; else the largest share of the whole edit. Each found by bisection.
        fixed = displacement if yielding is None else displacement - yielding
        fixed_maps = None if yielding is None else _backward_maps(shape, fixed, ring, roi, weight)
        if fixed_maps is not None and least_area_ratio(*fixed_maps, weight, shape + fixed, roi) >= MIN_AREA_RATIO:
            share, maps = _unfolded_share(shape, fixed, yielding, ring, roi, weight)
            (map_x, map_y), displacement = (maps, fixed + share * yielding) if share > 0.0 else (fixed_maps, fixed)
        else:
            kept, maps = _unfolded_share(shape, np.zeros_like(displacement), displacement, ring, roi, weight)
            if kept == 0.0:
                return None
            (map_x, map_y), displacement = maps, kept * displacement
        if not np.abs(displacement).max(initial=0.0) > 1e-3:
            return None
        moved = shape + displacement
    shift = np.hypot(map_x - np.arange(x0, x1, dtype=np.float32)[None, :], map_y - np.arange(y0, y1)[:, None])
    weight[shift < 0.02] = 0.0  # moved by under 1/50 px: left untouched
    mouth = _mouth_inside(shape, displacement, roi, map_x, map_y, mesh)
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
        lips, [np.round((_inner_lip_outline(*_inner_lips(moved)) - [x0, y0]) * 16).astype(np.int32)], 1, shift=4
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


def _inner_lips(shape: np.ndarray, mesh: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The upper and lower inner lip, each ``(N, 2)`` image px from the subject's right inner mouth corner to the
    left: Face Mesh V2's dense contours when ``mesh`` (``(478, 2 or 3)``) is given, else the 68 points'."""
    if mesh is None:
        return shape[UPPER_INNER_LIP], shape[LOWER_INNER_LIP]
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    return mesh[MESH_UPPER_INNER_LIP], mesh[MESH_LOWER_INNER_LIP]


def _lip_parting(upper: np.ndarray, lower: np.ndarray, iod: float) -> float:
    """The gap between the middles (middle three points) of the inner lips, in inter-ocular distances ``iod``:
    :func:`mouth_opening` for any contour of an odd number of points."""
    middle = slice(len(upper) // 2 - 1, len(upper) // 2 + 2)
    return float(np.linalg.norm(lower[middle].mean(0) - upper[middle].mean(0)) / max(iod, 1e-9))


def _moved_with(points: np.ndarray, lip_displacement: np.ndarray) -> np.ndarray:
    """``points`` along an inner lip (image px, corner to corner) moved as the 68 points' same lip moves by
    ``lip_displacement`` (corner to corner): each by the displacement at its share of the lip's length, the 68
    points' taken as evenly spaced (where dlib put them on a turned face or in a moustache does not matter).
    Lip by lip, not through the warp's smooth field, which moves a shut mouth's meeting lips alike."""
    from scipy.interpolate import PchipInterpolator

    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    share = along / max(along[-1], 1e-9)
    # Smooth along the mouth (piecewise-linear between 5 points drew a polygon), without overshoot.
    nodes = np.linspace(0.0, 1.0, len(lip_displacement))
    return points + PchipInterpolator(nodes, lip_displacement)(share)


def _lip_gap(upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mouth's frame (origin at the subject's right inner mouth corner, axis to the left one) and, in it, the
    ``upper`` and ``lower`` inner lips (:func:`_inner_lips`) as positions along and heights across the axis."""
    origin, axis = upper[0], upper[-1] - upper[0]
    length = max(np.linalg.norm(axis), 1e-9)
    along, across = axis / length**2, np.array([-axis[1], axis[0]]) / length
    frame = np.stack([along, across])
    return origin, frame, [(lip - origin) @ frame.T for lip in (upper, lower)]


def _inner_lip_outline(upper: np.ndarray, lower: np.ndarray, samples: int = 12) -> np.ndarray:
    """The inner lip contour as a smooth closed curve: a natural cubic spline along the ``upper`` and along the
    ``lower`` inner lip (:func:`_inner_lips`), meeting at the mouth corners (which stay sharp), ``2 * samples``
    points."""
    from scipy.interpolate import make_interp_spline

    curves = []
    for points in (upper, lower[::-1]):  # right to left corner along the top, back along the bottom
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        if along[-1] <= 1e-6 or np.any(np.diff(along) <= 1e-9):
            curves.append(points[:-1])  # coincident points: the polygon itself
            continue
        # The same natural cubic spline as CubicSpline's, built in a third of its time (it runs thrice a frame).
        curve = make_interp_spline(along, points, k=3, bc_type="natural")
        curves.append(curve(np.linspace(0.0, along[-1], samples, endpoint=False)))
    return np.vstack(curves)


def _polygon_mask(points: np.ndarray, origin: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """``float32`` mask of ``size`` (w, h) with the polygon ``points`` (image px) filled, anti-aliased, the mask's
    top-left at image px ``origin``."""
    mask = np.zeros(size[::-1], dtype=np.uint8)
    cv2.fillPoly(mask, [np.round((points - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _mouth_box(outlines: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """The rows and columns of ``roi`` that hold the polygon ``outlines`` (image px) with its anti-aliased edge and a
    pixel to spare: the part of the ROI the inside of the mouth is measured over."""
    x0, y0, x1, y1 = roi
    (left, top), (right, bottom) = np.floor(outlines.min(0)) - 2, np.ceil(outlines.max(0)) + 3
    return (
        slice(int(np.clip(top - y0, 0, y1 - y0)), int(np.clip(bottom - y0, 0, y1 - y0))),
        slice(int(np.clip(left - x0, 0, x1 - x0)), int(np.clip(right - x0, 0, x1 - x0))),
    )


def _gap_heights(
    upper: np.ndarray, lower: np.ndarray, roi: tuple[int, int, int, int], box: tuple[slice, slice]
) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of ``roi``: how far (px) below the ``upper`` inner lip it lies and how tall the opening between
    the ``upper`` and ``lower`` inner lip is there, both across the mouth in the face's own frame (so a tilted head's
    mouth is measured along its own axis); measured within ``box`` (:func:`_mouth_box`) only, zero beyond it.
    Continuous in the pixel's position, unlike a distance transform of a rasterised mask, whose steps drew a thin or
    tilted opening as a row of dark dots."""
    x0, y0, x1, y1 = roi
    rows, columns = box
    origin, frame, (upper_lip, lower_lip) = _lip_gap(upper, lower)
    xs, ys = np.arange(x0, x1)[columns], np.arange(y0, y1)[rows]
    pixels = np.stack(np.meshgrid(xs, ys), axis=-1).astype(np.float64) - origin
    s, v = pixels @ frame[0], pixels @ frame[1]
    upper_lip, lower_lip = (lip[np.argsort(lip[:, 0])] for lip in (upper_lip, lower_lip))  # np.interp: rising
    top = np.interp(s, upper_lip[:, 0], upper_lip[:, 1])
    below_upper, height = np.zeros((2, y1 - y0, x1 - x0))
    below_upper[box], height[box] = v - top, np.interp(s, lower_lip[:, 0], lower_lip[:, 1]) - top
    return below_upper, height


def _lower_lip(shape: np.ndarray, mesh: np.ndarray | None = None) -> np.ndarray:
    """The lower lip's outline (image px), from its outer edge along and back along its inner edge: Face Mesh V2's
    when ``mesh`` is given, else the 68 points'. The lower lip shows on nearly every face; the upper one may hide
    under a moustache, whose hair dlib's outer lip points take in."""
    if mesh is None:
        return shape[[48, 59, 58, 57, 56, 55, 54, 64, 65, 66, 67, 60]]
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    return mesh[MESH_LIPS[3] + MESH_LIPS[2][::-1]]


def _mouth_inside(
    shape: np.ndarray,
    displacement: np.ndarray,
    roi: tuple[int, int, int, int],
    map_x: np.ndarray,
    map_y: np.ndarray,
    mesh: np.ndarray | None = None,
) -> MouthInside | None:
    """How to fill the inside of the lips after the warp (see :class:`MouthInside`; ``map_x``, ``map_y``: the
    plain warp's backward maps), or ``None`` when the lips do not move or are shut before and after. With the
    face's ``mesh``, the inside is the mesh's inner lip contour, moved with the 68 points' inner lips."""
    if not np.abs(displacement[48:68]).max(initial=0.0) > 1e-3:
        return None
    upper, lower = _inner_lips(shape, mesh)
    if mesh is None:
        moved_upper, moved_lower = _inner_lips(shape + displacement)
    else:
        moved_upper = _moved_with(upper, displacement[UPPER_INNER_LIP])
        moved_lower = _moved_with(lower, displacement[LOWER_INNER_LIP])
    iod = inter_ocular(shape)
    before, after = _lip_parting(upper, lower, iod), _lip_parting(moved_upper, moved_lower, iod)
    if max(before, after) < MIN_LIP_PARTING:
        return None
    x0, y0, x1, y1 = roi
    size = (x1 - x0, y1 - y0)
    open_mouth = OPEN_MOUTH if mesh is None else MESH_OPEN_MOUTH
    outline = _inner_lip_outline(moved_upper, moved_lower)
    was_outline = _inner_lip_outline(upper, lower) if before >= open_mouth else outline[:0]
    inside = _polygon_mask(outline, (x0, y0), size)
    # Everything below matters only inside the lips (before or after): it is measured over their box, zero beyond.
    box = _mouth_box(np.vstack([outline, was_outline]), roi)
    feather = max(LIP_SHADE * iod, 1.0)
    # How far inside the opening each pixel lies from the nearer lip (px): a thin opening darkens only as far as it
    # is deep, smoothly along the mouth.
    below_upper, height = _gap_heights(moved_upper, moved_lower, roi, box)
    from_lips = np.where(inside > 0, np.clip(np.minimum(below_upper, height - below_upper), 0.0, None), 0.0)
    depth = np.clip(from_lips / feather, 0.0, 1.0)
    if before < open_mouth:  # the lips' seam, not teeth: it moves with the lips (the plain warp)
        was_inside = np.zeros(inside.shape, dtype=np.float32)
        was_across = was_height = np.zeros_like(was_inside)
    else:
        was_inside = _polygon_mask(was_outline, (x0, y0), size)
        was_below_upper, was_height = _gap_heights(upper, lower, roi, box)
        was_across = (was_below_upper / np.maximum(was_height, 1e-9)).astype(np.float32)
        was_height = np.maximum(was_height, 0.0).astype(np.float32)
        # Where the plain warp would stretch the old inside outside both jaws' teeth (a corner pulled sideways drew
        # the teeth at the old corner as a bright strip), the opened mouth shows its own inside; what it only moves
        # (a lip raised whole) it keeps.
        # (Only where the lips are filled, inside the box: its edge rows, where np.gradient is one-sided, are not.)
        box_x, box_y = map_x[box] - x0, map_y[box] - y0
        drawn_from_inside = cv2.remap(was_inside, box_x, box_y, cv2.INTER_LINEAR, borderValue=0)
        dxx, dxy = np.gradient(map_x[box].astype(np.float64))[::-1]
        dyx, dyy = np.gradient(map_y[box].astype(np.float64))[::-1]
        stretch = np.clip((1.0 - (dxx * dyy - dxy * dyx)) / (1.0 - STRETCHED_AREA), 0.0, 1.0)
        depth[box] = np.maximum(depth[box], drawn_from_inside * stretch.astype(np.float32))
    return MouthInside(
        inside=inside,
        depth=depth.astype(np.float32),
        was_inside=was_inside,
        was_across=was_across,
        was_height=was_height,
        jaw_shift=(moved_lower - lower)[len(lower) // 2 - 1 : len(lower) // 2 + 2].mean(0),
        lips=_lower_lip(shape, mesh),
        opens=after - before >= MIN_LIP_PARTING,
        across=(below_upper / np.maximum(height, 1e-9)).astype(np.float32),
        hollow=(from_lips / max(float(from_lips.max()), 1.0)).astype(np.float32),
    )


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
    displacement = landmark_displacements(units) * inter_ocular(aligned)
    # A jaw drop undone by its own pattern takes the jaw, chin and lip corners back; toward a target that parts no
    # lips, the lips then close what is left. Both squeeze the gap between the lips, which yields first if the warp
    # would fold.
    jaw = {name: value for name, value in units.items() if name in MOUTH_OPENING_UNITS and value < 0}
    closing = landmark_displacements(jaw) * inter_ocular(aligned)
    if close_mouth > 0:
        lips = mouth_closing(aligned + displacement, close_mouth)
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
        mesh=mesh,
    )


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


def mouth_opening(shape: np.ndarray, mesh: np.ndarray | None = None) -> float:
    """The gap between the inner lips (mean of 61-63 to 65-67 of ``shape``, or the middles of Face Mesh V2's inner
    lips when ``mesh`` is given), in inter-ocular distances of ``shape``."""
    shape = np.asarray(shape, dtype=np.float64)
    return _lip_parting(*_inner_lips(shape, mesh), inter_ocular(shape))


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
