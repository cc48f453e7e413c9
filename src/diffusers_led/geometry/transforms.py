"""Similarity geometry of faces: the canonical five-point template and the transforms that align a face to it.

Conventions (shared by :mod:`diffusers_led.faces` and :mod:`diffusers_led.geometry`):

* Point coordinates use the pixel-index convention: the centre of pixel ``(col, row)`` is ``(col, row)``; affine
  matrices are OpenCV-style ``2x3`` forward maps.
* Landmarks follow YuNet's order (:data:`LANDMARK_NAMES`): the subject's right eye, which is on the image's *left*,
  comes first.
* The canonical face is the ArcFace 112x112 five-point template scaled to ``canonical_size`` (320 in the paper).

Torch-free: numpy and OpenCV only.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "CANONICAL_SIZE",
    "LANDMARK_NAMES",
    "Box",
    "alignment_matrix",
    "canonical_template",
    "similarity_transform",
    "transform_points",
]

CANONICAL_SIZE = 320
#: YuNet landmark order; "right" is the subject's right, i.e. the image's left.
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth", "left_mouth")
#: The standard ArcFace five-point template for 112x112 faces, in LANDMARK_NAMES order.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

Box = tuple[float, float, float, float]


def canonical_template(size: float = CANONICAL_SIZE) -> np.ndarray:
    """The five-point ArcFace template scaled to a ``size x size`` canonical face, ``(5, 2)``."""
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Closed-form Umeyama (1991) estimate without reflection: deterministic and the exact
    least-squares optimum over all points (RANSAC/LMEDS score minimal subsets, which suits many
    noisy matches, not 5 landmarks). Returns a ``2x3`` float64 matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError(f"landmarks must be finite numbers (no NaN or infinity), got {src.tolist()}")
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c**2).sum() / len(src)
    if src_var <= 1e-12:
        raise ValueError("source points are all identical; cannot estimate a similarity")
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_var
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def alignment_matrix(landmarks: np.ndarray, canonical_size: float = CANONICAL_SIZE) -> np.ndarray:
    """The ``2x3`` image -> canonical similarity that best maps 5 landmarks onto the template."""
    return similarity_transform(np.asarray(landmarks).reshape(5, 2), canonical_template(canonical_size))


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``2x3`` affine ``matrix`` to ``(N, 2)`` points (float64 result)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix)[:, 2]
