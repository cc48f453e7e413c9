"""Face detection, 5-point alignment, eye/mouth region crops and seamless compositing.

This module is the image-processing half of diffusers-led (the other half is the diffusion
pipeline). It is deliberately torch-free: numpy, OpenCV and dlib only.

Data flow::

    image --detect--> DetectedFace (box + 5 landmarks, image px)
          --extract--> FaceRegions (image->canonical similarity, Eq. 1-4 boxes, 64x64 crops, masks)
          --(diffusion edits the crops)-->
          --composite--> image with only the soft-masked region pixels changed

Conventions:

* Images are numpy ``uint8`` arrays, ``HxWx3`` RGB or ``HxW`` grayscale.
* Point coordinates use the pixel-index convention: the centre of pixel ``(col, row)`` is
  ``(col, row)``; affine matrices are OpenCV-style ``2x3`` forward maps.
* Landmarks follow YuNet's order (:data:`LANDMARK_NAMES`): the subject's right eye, which is on the
  image's *left*, comes first.
* The canonical face is the ArcFace 112x112 five-point template scaled to ``canonical_size``
  (320 in the paper); region boxes (paper Eq. 1-4) are computed there, so they are level and of a
  fixed size relative to the face whatever its pose in the photo.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "CANONICAL_SIZE",
    "CROP_SIZE",
    "LANDMARK_NAMES",
    "REGION_LANDMARKS",
    "REGION_ANCHORS",
    "REGION_MARGINS",
    "TEMPLATE_REGION_MARGINS",
    "DetectedFace",
    "DlibFaceDetector",
    "FaceDetector",
    "FaceRegionProcessor",
    "FaceRegions",
    "YuNetFaceDetector",
    "alignment_matrix",
    "blend_mask",
    "canonical_template",
    "face_shape",
    "five_landmarks",
    "load_face_detector",
    "plausible_landmarks",
    "region_box",
    "similarity_transform",
    "transform_points",
]

CANONICAL_SIZE = 320
CROP_SIZE = 64
#: (mx, my) margins in canonical (320x320) pixels, paper Sec. 3.1.
REGION_MARGINS: dict[str, tuple[float, float]] = {"eyes": (50, 50), "mouth": (10, 40)}
#: Where region boxes are anchored: on the face's own aligned landmarks (the paper, Eq. 1-4) or on the
#: canonical template's, i.e. at a fixed place on the aligned face.
REGION_ANCHORS = ("landmarks", "template")
#: Default margins for template-anchored boxes. A smile moves each mouth corner ~15 canonical px outward
#: (CK+ peaks: up to 118 px corner to corner vs the template's 83), so the mouth box needs room beside the corners
#: that the paper's corner-anchored box (which moves with them) does not, and a surprised jaw drops below
#: the paper's 40 px.
TEMPLATE_REGION_MARGINS: dict[str, tuple[float, float]] = {"eyes": (50, 50), "mouth": (46, 48)}
#: YuNet landmark order; "right" is the subject's right, i.e. the image's left.
LANDMARK_NAMES = ("right_eye", "left_eye", "nose_tip", "right_mouth", "left_mouth")
#: Indices into LANDMARK_NAMES of the (a1, a2) pair that spans each region in Eq. 1-4.
REGION_LANDMARKS: dict[str, tuple[int, int]] = {"eyes": (0, 1), "mouth": (3, 4)}
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
ImageShape = tuple[int, int] | tuple[int, int, int]
Feather = float | tuple[float, float]  # one fraction, or (horizontal, vertical)


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


def canonical_template(size: float = CANONICAL_SIZE) -> np.ndarray:
    """The five-point ArcFace template scaled to a ``size x size`` canonical face, ``(5, 2)``."""
    return ARCFACE_TEMPLATE_112 * (size / 112.0)


def region_box(a1: Sequence[float], a2: Sequence[float], mx: float, my: float) -> Box:
    """Paper Eq. 1-4: the region box ``(x, y, w, h)`` spanned by two landmarks plus margins.

    ``x = a1.x - mx``, ``y = a1.y - my``, ``w = (a2.x + mx) - (a1.x - mx)``, ``h = 2 * my``.
    ``a1`` is the subject's right eye / mouth corner (the image-left one) and ``a2`` the other,
    both in canonical coordinates, where alignment has made the pair (nearly) level, which is why
    the paper can use ``a1.y`` alone for the vertical placement.

    Raises:
        ValueError: if the box would have a non-positive size (``a2`` far left of ``a1``).
    """
    x = float(a1[0]) - mx
    y = float(a1[1]) - my
    w = (float(a2[0]) + mx) - x
    h = 2.0 * my
    if w <= 0 or h <= 0:
        raise ValueError(f"degenerate region box (w={w:.2f}, h={h:.2f}) from a1={a1}, a2={a2}")
    return (x, y, w, h)


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


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``2x3`` affine equal to applying ``inner`` first, then ``outer``."""
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = outer[:, :2] @ inner[:, :2]
    out[:, 2] = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return out


def _box_to_crop(box: Box, width: float, height: float) -> np.ndarray:
    """Anisotropic scaling of the canonical ``box`` onto a ``width x height`` crop.

    The box is treated as an area (like ``cv2.resize``), so its centre lands on the crop centre
    ``((width - 1) / 2, (height - 1) / 2)`` in pixel-index coordinates.
    """
    x, y, w, h = box
    sx, sy = width / w, height / h
    return np.array([[sx, 0.0, -sx * x - 0.5], [0.0, sy, -sy * y - 0.5]], dtype=np.float64)


def _quad_roi(
    crop_to_image: np.ndarray, crop_w: int, crop_h: int, image_hw: tuple[int, int], margin: int
) -> tuple[int, int, int, int]:
    """Integer ``(x0, y0, x1, y1)`` image ROI covering a crop's footprint plus ``margin`` px.

    Clipped to the image but never empty, so that a crop lying wholly outside the image still
    has edge pixels to replicate.
    """
    corners = np.array([[-0.5, -0.5], [crop_w - 0.5, -0.5], [-0.5, crop_h - 0.5], [crop_w - 0.5, crop_h - 0.5]])
    pts = transform_points(crop_to_image, corners)
    height, width = image_hw
    x0 = min(max(math.floor(pts[:, 0].min()) - margin, 0), width - 1)
    y0 = min(max(math.floor(pts[:, 1].min()) - margin, 0), height - 1)
    x1 = max(min(math.ceil(pts[:, 0].max()) + margin + 1, width), x0 + 1)
    y1 = max(min(math.ceil(pts[:, 1].max()) + margin + 1, height), y0 + 1)
    return x0, y0, x1, y1


def _translate(matrix: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``matrix`` applied to points shifted by ``(dx, dy)``, i.e. ``matrix(p + (dx, dy))``."""
    out = np.array(matrix, dtype=np.float64)
    out[:, 2] += out[:, :2] @ np.array([dx, dy], dtype=np.float64)
    return out


# Upper bound on the supersampling factor per axis: bounds memory (64*16 = 1024 px per axis)
# when a huge face is squeezed into a small crop.
_MAX_SUPERSAMPLE = 16


def _warp_to_crop(image: np.ndarray, image_to_crop: np.ndarray, crop_w: int, crop_h: int) -> np.ndarray:
    """Sample a crop from the original image through ``image_to_crop`` with anti-aliasing.

    A single bilinear ``warpAffine`` from the original pixels; when the crop is smaller than its
    footprint (e.g. a 300 px wide eye box squeezed to 64 px), the warp runs on a grid
    ``k`` times finer per axis and is box-averaged down (``INTER_AREA`` with an integer factor),
    which is area sampling rather than the aliasing of point sampling. Only the ROI under the crop
    is touched, so huge images cost no more than small ones. Out-of-image samples replicate the
    image edge.
    """
    crop_to_image = cv2.invertAffineTransform(image_to_crop)
    # Image pixels advanced per crop pixel along each crop axis = the supersampling needed.
    steps = np.linalg.norm(crop_to_image[:, :2], axis=0)
    kx, ky = (int(min(max(math.ceil(s - 1e-6), 1), _MAX_SUPERSAMPLE)) for s in steps)
    x0, y0, x1, y1 = _quad_roi(crop_to_image, crop_w, crop_h, image.shape[:2], margin=2)
    fine = np.array([[kx, 0.0, 0.5 * (kx - 1)], [0.0, ky, 0.5 * (ky - 1)]])  # crop -> fine grid
    roi_to_fine = _translate(_compose(fine, image_to_crop), x0, y0)
    warped = cv2.warpAffine(
        image[y0:y1, x0:x1],
        roi_to_fine,
        (crop_w * kx, crop_h * ky),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if kx == 1 and ky == 1:
        return warped
    return cv2.resize(warped, (crop_w, crop_h), interpolation=cv2.INTER_AREA)


def _feather_profile(size: int, feather: float) -> np.ndarray:
    """1-D raised-cosine ramp: 0 on the end pixels, 1 beyond ``feather * (size - 1)`` px."""
    idx = np.arange(size, dtype=np.float64)
    dist = np.minimum(idx, size - 1 - idx)  # pixels from the nearest end pixel centre
    ramp_len = feather * (size - 1)
    ramp = np.clip(dist / ramp_len, 0.0, 1.0) if ramp_len > 0 else np.ones(size)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)  # C1-smooth: no visible Mach band where the ramp ends


@lru_cache(maxsize=32)
def _cached_mask(crop_size: int, feather_x: float, feather_y: float) -> np.ndarray:
    mask = np.outer(_feather_profile(crop_size, feather_y), _feather_profile(crop_size, feather_x))
    mask = mask.astype(np.float32)
    mask.setflags(write=False)
    return mask


def blend_mask(crop_size: int = CROP_SIZE, feather: Feather = 0.25) -> np.ndarray:
    """Soft blend mask in crop coordinates, ``(crop_size, crop_size)`` float32 in ``[0, 1]``.

    Separable raised-cosine: 1 in the interior, falling smoothly to exactly 0 on the outermost
    pixel ring over ``feather * (crop_size - 1)`` pixels on each side. ``feather`` is one fraction
    or a ``(horizontal, vertical)`` pair, each in ``[0, 0.5]``; 0 gives a hard edge. Returns a
    fresh writable array.
    """
    fx, fy = (feather, feather) if np.isscalar(feather) else feather  # type: ignore[misc]
    if not (0.0 <= fx <= 0.5 and 0.0 <= fy <= 0.5):
        raise ValueError(f"feather must be in [0, 0.5] (or a pair of such), got {feather}")
    return _cached_mask(int(crop_size), float(fx), float(fy)).copy()


def plausible_landmarks(landmarks: np.ndarray, max_residual: float = 0.5) -> bool:
    """Whether 5 landmarks look like a face once similarity-aligned to the template.

    The worst point's distance from its template position, as a fraction of the template's eye
    distance, must be below ``max_residual``. Measured on 508 detected real faces (CK+ frames
    incl. rotated, mirrored and shrunk copies, and the astronaut): median 0.08, max 0.26 (broad
    smiles are the worst). It does not catch false detections
    (dlib's predictor regresses a mean-like face anywhere) but it does reject scrambled,
    mirrored or collapsed landmark sets, which would produce meaningless crops.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.all(np.isfinite(pts)) or np.linalg.norm(pts[1] - pts[0]) < 1.0:
        return False
    template = ARCFACE_TEMPLATE_112
    aligned = transform_points(similarity_transform(pts, template), pts)
    residual = np.linalg.norm(aligned - template, axis=1).max()
    return bool(residual / np.linalg.norm(template[1] - template[0]) < max_residual)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


@dataclass
class DetectedFace:
    """One detected face in original-image pixel coordinates.

    Attributes:
        box: ``(x, y, w, h)`` face box.
        landmarks: ``(5, 2)`` float32 points in :data:`LANDMARK_NAMES` order.
        score: detector confidence (dlib: HOG SVM margin, 0 is dlib's default threshold;
            YuNet: probability in [0, 1]).
        shape: ``(68, 2)`` float32 points of the iBUG/dlib 68-point layout (brows, lids, lips, jaw),
            which the action-unit warp moves; ``None`` until computed (see :func:`face_shape`).
        mesh: ``(478, 3)`` float32 MediaPipe Face Mesh V2 points (x, y in image pixels, z depth in pixels, smaller
            is nearer) from the ``"mesh"`` detector (:mod:`diffusers_led.face_mesh`); ``None`` from the others.
        blendshapes: the 52 MediaPipe blendshape scores in [0, 1] by name (e.g. ``"jawOpen"``) from the
            ``"mesh"`` detector; ``None`` from the others.
    """

    box: Box
    landmarks: np.ndarray
    score: float
    shape: np.ndarray | None = None
    mesh: np.ndarray | None = None
    blendshapes: dict[str, float] | None = None


def _as_image(image: Any) -> np.ndarray:
    """Validate an ``HxW`` / ``HxWx1`` / ``HxWx3`` uint8 array; returns ``HxW`` or ``HxWx3``."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or 0 in image.shape:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")
    return np.ascontiguousarray(image)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _unscale(points: np.ndarray, scale: float, offset: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """Map pixel-index points from an image resized by ``scale`` (and cut at ``offset``) back."""
    return (np.asarray(points, dtype=np.float64) + 0.5) / scale - 0.5 + np.asarray(offset)


class FaceDetector:
    """Base class: finds faces and their 5 landmarks at any image size.

    :meth:`detect` runs the subclass's :meth:`_detect` on a copy rescaled so that faces of
    ``min_face_size`` px reach the detector's native minimum (upsampling small images) while the
    long side stays within ``max_detection_size`` (downsampling huge ones, bounding time and
    memory); results come back in original coordinates, filtered by :func:`plausible_landmarks`,
    largest face first. The smallest face found is therefore about
    ``max(min_face_size, native_min_face_size * long_side / max_detection_size)`` px.

    Subclasses must stay picklable and cheap to construct: heavy models are loaded lazily into a
    per-process cache.
    """

    #: Smallest face (px) the underlying detector finds at its native scale.
    native_min_face_size: float = 80.0

    def __init__(self, max_detection_size: int = 1024, min_face_size: float = 40.0) -> None:
        if max_detection_size < 32 or min_face_size <= 0:
            raise ValueError("max_detection_size must be >= 32 and min_face_size > 0")
        self.max_detection_size = int(max_detection_size)
        self.min_face_size = float(min_face_size)

    def detection_scale(
        self,
        image_hw: tuple[int, int],
        max_detection_size: int | None = None,
        min_face_size: float | None = None,
    ) -> float:
        """The factor by which the image is resized before running the detector."""
        max_size = max_detection_size or self.max_detection_size
        min_face = min_face_size or self.min_face_size
        return min(max(1.0, self.native_min_face_size / min_face), max_size / max(image_hw))

    def smallest_face(
        self,
        image_hw: tuple[int, int],
        min_face_size: float | None = None,
        max_detection_size: int | None = None,
    ) -> float:
        """The smallest face (px) :meth:`detect` finds in a photo of this size: the long side cap shrinks huge photos,
        so their minimum grows with them."""
        return self.native_min_face_size / self.detection_scale(image_hw, max_detection_size, min_face_size)

    def detect(
        self,
        image: np.ndarray,
        max_detection_size: int | None = None,
        min_face_size: float | None = None,
    ) -> list[DetectedFace]:
        """Detect faces in an ``HxWx3`` RGB or ``HxW`` gray uint8 image, largest first.

        ``max_detection_size`` / ``min_face_size`` override the instance settings for this call.
        """
        image = _as_image(image)
        scale = self.detection_scale(image.shape[:2], max_detection_size, min_face_size)
        faces = self._detect(image, _resize(image, scale), scale)
        faces = [f for f in faces if plausible_landmarks(f.landmarks)]
        return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)

    def _detect(self, image: np.ndarray, scaled: np.ndarray, scale: float) -> list[DetectedFace]:
        """Find faces in ``scaled`` (``image`` resized by ``scale``); return ORIGINAL coordinates."""
        raise NotImplementedError

    def load(self) -> None:
        """Load the detector's models now rather than on the first :meth:`detect` (once per process), e.g. in a
        background thread while the diffusion model loads: dlib's models take about a second."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


# One copy of each heavy model per process, shared by all detector instances (which therefore
# pickle as plain parameters). OpenCV/dlib model objects are not guaranteed thread-safe, so
# callers that mutate state (YuNet's input size) hold the lock entry returned with the model.
_MODEL_CACHE: dict[Any, tuple[Any, threading.Lock]] = {}
_MODEL_CACHE_LOCK = threading.Lock()


def _cached_model(key: Any, factory: Callable[[], Any]) -> tuple[Any, threading.Lock]:
    with _MODEL_CACHE_LOCK:
        if key not in _MODEL_CACHE:
            _MODEL_CACHE[key] = (factory(), threading.Lock())
        return _MODEL_CACHE[key]


def _face_recognition_models_dir() -> str:
    # find_spec instead of import: the package's __init__ needs pkg_resources (setuptools<81).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "dlib's landmark models come from the 'face_recognition_models' package: "
            "pip install face_recognition_models (or use a YuNet ONNX file: "
            "load_face_detector('yunet:/path/to/face_detection_yunet.onnx'))"
        )
    return os.path.join(spec.submodule_search_locations[0], "models")


def _dlib_models() -> tuple[tuple[Any, Any, Any], threading.Lock]:
    """(HOG detector, 68-point shape predictor, MMOD CNN detector), loaded once per process."""

    def load() -> tuple[Any, Any, Any]:
        try:
            import dlib  # local import: only this detector needs dlib
        except ImportError as err:
            raise ImportError("the default face detector needs dlib: pip install dlib-bin") from err
        models = _face_recognition_models_dir()
        return (
            dlib.get_frontal_face_detector(),
            dlib.shape_predictor(os.path.join(models, "shape_predictor_68_face_landmarks.dat")),
            dlib.cnn_face_detection_model_v1(os.path.join(models, "mmod_human_face_detector.dat")),
        )

    return _cached_model("dlib", load)


def _box_roi(
    image: np.ndarray, box: Box, margin: float, face_size: float, upscale: bool
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Cut ``box`` enlarged by ``margin * size`` per side, resized so the box is ``face_size`` px.

    Returns ``(roi, scale, (x0, y0))``; ``upscale=False`` never enlarges. Works on the original
    image, so landmark precision does not depend on the detection scale.
    """
    x, y, w, h = box
    height, width = image.shape[:2]
    x0, y0 = max(int(x - margin * w), 0), max(int(y - margin * h), 0)
    x1, y1 = min(math.ceil(x + w + margin * w), width), min(math.ceil(y + h + margin * h), height)
    scale = face_size / max(w, h, 1.0)
    if not upscale:
        scale = min(scale, 1.0)
    return _resize(image[y0:y1, x0:x1], scale), scale, (x0, y0)


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


class DlibFaceDetector(FaceDetector):
    """Default, fully offline detector: dlib HOG + 68-point landmarks -> YuNet's 5 points.

    Pipeline per image:

    1. dlib's HOG frontal face detector on the rescaled copy (see :class:`FaceDetector`),
       keeping candidates with SVM score ``>= score_threshold``.
    2. dlib's 68-point predictor on an original-resolution ROI around each candidate (scaled
       down to ~``landmark_face_size`` px for huge faces); the 5 points are the eye centres
       (means of 36-41 and 42-47), the nose tip (30) and the mouth corners (48, 54).
    3. Candidates scoring below ``verify_below`` are confirmed by dlib's MMOD CNN face detector
       run on a small ROI (face ~80 px, ~0.09 s on 2 CPU cores) around them: it must find a face
       with confidence ``>= verify_threshold`` overlapping the candidate (IoU >= 0.3).

    Why the CNN check: HOG false positives (e.g. the round mission patch on the NASA astronaut
    portrait scores +0.06..+0.12) pass a plain score threshold and yield perfectly face-shaped
    landmarks. Measured with the defaults on 510 images with one face (101 CK+ frames of 10
    subjects, each also rotated +20/-30 degrees, mirrored and shrunk to 44-90 px faces; 5 variants
    of the astronaut) and 32 without (the astronaut with the face blurred away at 8 rotations,
    white and blurred noise, flat images): exactly one face in every positive and none in every
    negative, while HOG alone (``verify_below=-inf``) gave 3 false positives. Real faces scored
    HOG 0.88-3.5 and MMOD 1.0-1.1. Set ``verify_below=-inf`` to skip the check (faster, more
    false positives) or ``+inf`` to check every face.

    The models come from the ``face_recognition_models`` package and are loaded once per process.
    """

    native_min_face_size = 80.0  # dlib's HOG window
    _VERIFY_FACE_SIZE = 80.0  # MMOD's training window: smallest input that it finds reliably

    def __init__(
        self,
        max_detection_size: int = 1024,
        min_face_size: float = 40.0,
        score_threshold: float = 0.0,
        verify_below: float = 1.0,
        verify_threshold: float = 0.0,
        landmark_face_size: float = 256.0,
    ) -> None:
        super().__init__(max_detection_size, min_face_size)
        self.score_threshold = float(score_threshold)
        self.verify_below = float(verify_below)
        self.verify_threshold = float(verify_threshold)
        self.landmark_face_size = float(landmark_face_size)

    def load(self) -> None:
        _dlib_models()

    def _detect(self, image: np.ndarray, scaled: np.ndarray, scale: float) -> list[DetectedFace]:
        (hog, predictor, cnn), lock = _dlib_models()
        faces = []
        with lock:  # dlib's CNN keeps per-call buffers: one caller at a time per process
            rects, scores, _ = hog.run(scaled, 0, self.score_threshold)
            for rect, score in zip(rects, scores, strict=True):
                box = _scale_box((rect.left(), rect.top(), rect.width(), rect.height()), 1.0 / scale)
                if score < self.verify_below and not self._verified(image, cnn, box):
                    continue
                shape = _predict_shape(image, predictor, box, self.landmark_face_size)
                faces.append(
                    DetectedFace(
                        box=box, landmarks=five_landmarks(shape), score=float(score), shape=shape.astype(np.float32)
                    )
                )
        return faces

    def _verified(self, image: np.ndarray, cnn: Any, box: Box) -> bool:
        """Whether dlib's MMOD CNN also sees a face overlapping ``box``."""
        roi, roi_scale, offset = _box_roi(image, box, 0.5, self._VERIFY_FACE_SIZE, upscale=True)
        roi_box = _scale_box(box, roi_scale, offset)
        for det in cnn(roi, 0):
            r = det.rect
            found = (float(r.left()), float(r.top()), float(r.width()), float(r.height()))
            if det.confidence >= self.verify_threshold and _iou(found, roi_box) >= 0.3:
                return True
        return False


def _predict_shape(image: np.ndarray, predictor: Any, box: Box, face_size: float) -> np.ndarray:
    """dlib's 68 points of the face in ``box``, predicted on an original-resolution ROI (scaled down to about
    ``face_size`` px for huge faces), in image coordinates, ``(68, 2)`` float64."""
    roi, roi_scale, offset = _box_roi(image, box, 0.3, face_size, upscale=False)
    parts = predictor(roi, _dlib_rect(_scale_box(box, roi_scale, offset))).parts()
    return _unscale(np.array([(p.x, p.y) for p in parts], dtype=np.float64), roi_scale, offset)


def five_landmarks(shape: np.ndarray) -> np.ndarray:
    """YuNet's 5 points from 68: the eye centres (means of 36-41 and 42-47), the nose tip (30) and the mouth
    corners (48, 54), ``(5, 2)`` float32."""
    shape = np.asarray(shape, dtype=np.float64)
    return np.stack([shape[36:42].mean(0), shape[42:48].mean(0), shape[30], shape[48], shape[54]]).astype(np.float32)


def face_shape(image: np.ndarray, face: DetectedFace, face_size: float = 256.0) -> np.ndarray:
    """The face's 68 points (``face.shape``), predicted by dlib's shape predictor on ``face.box`` when the detector
    gave none (e.g. YuNet, which finds 5 points only)."""
    if face.shape is None:
        (_, predictor, _), lock = _dlib_models()
        with lock:
            face.shape = _predict_shape(_as_image(image), predictor, face.box, face_size).astype(np.float32)
    return face.shape


def _scale_box(box: Sequence[float], scale: float, offset: Sequence[float] = (0.0, 0.0)) -> Box:
    """A box (edge coordinates) cut at ``offset`` and resized by ``scale``."""
    x, y, w, h = (float(v) for v in box)
    return ((x - offset[0]) * scale, (y - offset[1]) * scale, w * scale, h * scale)


def _dlib_rect(box: Box) -> Any:
    import dlib

    x, y, w, h = box
    left, top = round(x), round(y)
    return dlib.rectangle(left, top, max(left, round(x + w) - 1), max(top, round(y + h) - 1))


class YuNetFaceDetector(FaceDetector):
    """OpenCV's YuNet (``cv2.FaceDetectorYN``), the paper's detector; needs its ONNX file.

    YuNet returns per face ``x, y, w, h``, five landmarks in :data:`LANDMARK_NAMES` order and a
    score (15 values). The file (e.g. ``face_detection_yunet_2023mar.onnx`` from the OpenCV
    model zoo) is not shipped by any package; pass its path, or ship it in a model repository.
    """

    native_min_face_size = 20.0

    def __init__(
        self,
        model_path: str | os.PathLike,
        max_detection_size: int = 1024,
        min_face_size: float = 40.0,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.3,
    ) -> None:
        super().__init__(max_detection_size, min_face_size)
        self.model_path = os.fspath(model_path)
        if not os.path.isfile(self.model_path):
            raise FileNotFoundError(
                f"YuNet model file not found: {self.model_path!r}. Pass the path of the YuNet ONNX "
                "file (e.g. face_detection_yunet_2023mar.onnx from the OpenCV model zoo) as "
                "load_face_detector('yunet:/path/to/model.onnx'), or use the offline default "
                "load_face_detector('dlib')."
            )
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)

    def _model(self) -> tuple[Any, threading.Lock]:
        key = ("yunet", os.path.abspath(self.model_path), self.score_threshold, self.nms_threshold)
        return _cached_model(
            key,
            lambda: cv2.FaceDetectorYN.create(
                self.model_path, "", (320, 320), self.score_threshold, self.nms_threshold
            ),
        )

    def load(self) -> None:
        self._model()

    def _detect(self, image: np.ndarray, scaled: np.ndarray, scale: float) -> list[DetectedFace]:
        model, lock = self._model()
        code = cv2.COLOR_GRAY2BGR if scaled.ndim == 2 else cv2.COLOR_RGB2BGR
        bgr = cv2.cvtColor(scaled, code)
        with lock:  # the input size is state on the shared model
            model.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, raw = model.detect(bgr)
        faces = []
        for row in np.zeros((0, 15)) if raw is None else np.asarray(raw, dtype=np.float64):
            x, y, w, h = row[:4]
            faces.append(
                DetectedFace(
                    box=_scale_box((x, y, w, h), 1.0 / scale),
                    landmarks=_unscale(row[4:14].reshape(5, 2), scale).astype(np.float32),
                    score=float(row[14]),
                )
            )
        return faces


def load_face_detector(name_or_path: str | os.PathLike | FaceDetector = "dlib", **kwargs: Any) -> FaceDetector:
    """Build a detector from a spec: ``"mesh"`` (BlazeFace + Face Mesh V2, :mod:`diffusers_led.face_mesh`),
    ``"dlib"``, ``"yunet:<path.onnx>"`` or a ``.onnx`` path.

    A :class:`FaceDetector` instance is returned unchanged. ``kwargs`` go to the constructor
    (e.g. ``max_detection_size``, ``min_face_size``).

    Raises:
        FileNotFoundError: a YuNet spec whose ONNX file does not exist.
        ValueError: an unknown spec.
    """
    if isinstance(name_or_path, FaceDetector):
        return name_or_path
    spec = os.fspath(name_or_path)
    if spec.lower() == "dlib":
        return DlibFaceDetector(**kwargs)
    if spec.lower() == "mesh":
        from .face_mesh import MeshFaceDetector  # local import: face_mesh builds on this module

        return MeshFaceDetector(**kwargs)
    if spec.lower().startswith("yunet:"):
        return YuNetFaceDetector(spec[len("yunet:") :], **kwargs)
    if spec.lower() == "yunet":
        raise FileNotFoundError(
            "the YuNet detector needs its ONNX file: pass 'yunet:/path/to/face_detection_yunet.onnx'"
        )
    if spec.lower().endswith(".onnx"):
        return YuNetFaceDetector(spec, **kwargs)
    raise ValueError(f"unknown face detector {spec!r}: use 'mesh', 'dlib', 'yunet:<path.onnx>' or a .onnx path")


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------


@dataclass
class FaceRegions:
    """A face with its aligned regions, as produced by :meth:`FaceRegionProcessor.extract`.

    Attributes:
        face: the detection.
        matrix: ``2x3`` float64 similarity, original image -> canonical face.
        boxes: region -> ``(x, y, w, h)`` in canonical coordinates (paper Eq. 1-4).
        crops: region -> ``crop x crop x 3`` uint8 RGB (``crop x crop`` for gray images).
        masks: region -> ``crop x crop`` float32 soft blend mask (editable before compositing).
        crop_matrices: region -> ``2x3`` float64 affine, original image -> crop pixels.
        warp: the geometric warp applied to this face before its crops were cut (a
            :class:`~diffusers_led.warp.FaceWarp`), or ``None``; its window counts as edited area.
    """

    face: DetectedFace
    matrix: np.ndarray
    boxes: dict[str, Box]
    crops: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    crop_matrices: dict[str, np.ndarray] = field(default_factory=dict)
    warp: Any = None

    @property
    def mesh(self) -> np.ndarray | None:
        """``(478, 3)`` Face Mesh V2 points in image pixels (``face.mesh``); ``None`` unless the ``"mesh"`` detector
        found the face."""
        return self.face.mesh

    @property
    def blendshapes(self) -> dict[str, float] | None:
        """The 52 MediaPipe blendshape scores by name (``face.blendshapes``); ``None`` unless the ``"mesh"``
        detector found the face."""
        return self.face.blendshapes

    def region_quad(self, region: str) -> np.ndarray:
        """The region box's 4 corners in original-image coordinates, ``(4, 2)`` (clockwise)."""
        x, y, w, h = self.boxes[region]
        corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        return transform_points(cv2.invertAffineTransform(self.matrix), corners)


class FaceRegionProcessor:
    """Detect faces, cut the paper's eye/mouth regions and paste edited regions back.

    Cheap to construct and picklable (models load lazily, once per process), so it can live in a
    pipeline config or be sent to dataloader workers.

    Args:
        detector: ``"dlib"`` (default, offline), ``"yunet:<path.onnx>"``, a ``.onnx`` path or a
            :class:`FaceDetector` instance (used as is, with its own size settings).
        regions: the regions to extract, keys of ``margins``.
        canonical_size: side of the canonical aligned face (320 in the paper).
        crop_size: side of the square region crops (64 in the paper).
        margins: region -> ``(mx, my)`` in canonical pixels; ``None`` for the anchor's defaults
            (:data:`REGION_MARGINS` or :data:`TEMPLATE_REGION_MARGINS`).
        region_anchor: ``"landmarks"`` (the paper: each box spans the face's own aligned landmark pair, so
            the mouth box follows the mouth corners) or ``"template"`` (each box spans the canonical
            template's pair: a fixed place on the aligned face, so a crop shows the corners moving, e.g.
            a smile widening the mouth). A model must be used with the geometry its crops were cut with.
        feather: blend-mask falloff as a fraction of the crop side, or a ``(horizontal,
            vertical)`` pair, see :func:`blend_mask`. The mouth box has only ``mx = 10`` of ~110
            canonical px beside each corner, so horizontal feathering fades the mouth corners
            (mean mask weight at the corners on 22 real faces: 0.27 at 0.25, 0.93 at 0.1).
        max_detection_size: long side cap of the image the detector sees.
        min_face_size: smallest face (px) to find, by upsampling small images.
    """

    def __init__(
        self,
        detector: str | os.PathLike | FaceDetector = "dlib",
        regions: Sequence[str] = ("eyes", "mouth"),
        canonical_size: int = CANONICAL_SIZE,
        crop_size: int = CROP_SIZE,
        margins: Mapping[str, Sequence[float]] | None = None,
        feather: Feather = 0.25,
        max_detection_size: int = 1024,
        min_face_size: float = 40.0,
        region_anchor: str = "landmarks",
    ) -> None:
        if region_anchor not in REGION_ANCHORS:
            raise ValueError(f"unknown region_anchor {region_anchor!r}; known: {', '.join(REGION_ANCHORS)}")
        self.region_anchor = region_anchor
        if margins is None:
            margins = TEMPLATE_REGION_MARGINS if region_anchor == "template" else REGION_MARGINS
        self.margins = {name: (float(m[0]), float(m[1])) for name, m in margins.items()}
        self.regions = tuple(self._check_regions(regions))
        self.canonical_size = int(canonical_size)
        self.crop_size = int(crop_size)
        self.feather = feather if np.isscalar(feather) else tuple(feather)  # type: ignore[arg-type]
        blend_mask(self.crop_size, self.feather)  # validates feather early
        if isinstance(detector, FaceDetector):
            self.detector = detector
        else:
            self.detector = load_face_detector(
                detector, max_detection_size=max_detection_size, min_face_size=min_face_size
            )

    def _check_regions(self, regions: Sequence[str]) -> Sequence[str]:
        if isinstance(regions, str):
            regions = (regions,)
        unknown = [r for r in regions if r not in self.margins or r not in REGION_LANDMARKS]
        if unknown:
            raise ValueError(f"unknown regions {unknown}; known: {sorted(set(self.margins) & set(REGION_LANDMARKS))}")
        return regions

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in an RGB / gray uint8 image (original coordinates), largest first."""
        return self.detector.detect(image)

    def no_face_reason(self, image_hw: tuple[int, int], faces: Sequence[DetectedFace] = ()) -> str:
        """Why :meth:`detect` returned no face for a photo of this size, for messages: the faces found but not
        readable (``faces.unreadable`` of the ``"mesh"`` detector: too turned, small or hidden), or the smallest face
        size looked for, which grows with the photo."""
        unreadable = getattr(faces, "unreadable", ())
        if unreadable:
            where = ", ".join(f"({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f} px)" for x, y, w, h in unreadable)
            return (
                f"{len(unreadable)} face(s) found at {where} but too turned, too small or too hidden to read their "
                "landmarks; they are left unchanged"
            )
        smallest = self.detector.smallest_face(tuple(image_hw[:2]))
        return (
            f"faces at least ~{smallest:.0f} px wide are looked for in this {image_hw[1]}x{image_hw[0]} photo; "
            "min_face_size / --min-face-size looks for smaller ones"
        )

    def extract(
        self,
        image: np.ndarray,
        faces: Sequence[DetectedFace] | None = None,
        regions: Sequence[str] | None = None,
    ) -> list[FaceRegions]:
        """Align each face and cut its regions into ``crop_size`` crops.

        Args:
            image: ``HxWx3`` RGB or ``HxW`` gray uint8.
            faces: detections to use; detected when ``None``.
            regions: subset of regions; ``self.regions`` when ``None``.

        Each crop is one anti-aliased warp from the original pixels (image -> canonical ->
        region box -> crop composed into a single affine); parts of a box past the image edge
        replicate the edge pixels.
        """
        image = _as_image(image)
        regions = self.regions if regions is None else tuple(self._check_regions(regions))
        faces = self.detect(image) if faces is None else faces
        mask = blend_mask(self.crop_size, self.feather)
        results = []
        for face in faces:
            matrix = alignment_matrix(face.landmarks, self.canonical_size)
            if self.region_anchor == "template":
                anchors = canonical_template(self.canonical_size)
            else:
                anchors = transform_points(matrix, face.landmarks)
            out = FaceRegions(face=face, matrix=matrix, boxes={}, crops={}, masks={})
            for region in regions:
                i1, i2 = REGION_LANDMARKS[region]
                box = region_box(anchors[i1], anchors[i2], *self.margins[region])
                to_crop = _compose(_box_to_crop(box, self.crop_size, self.crop_size), matrix)
                out.boxes[region] = box
                out.crop_matrices[region] = to_crop
                out.crops[region] = _warp_to_crop(image, to_crop, self.crop_size, self.crop_size)
                out.masks[region] = mask.copy()
            results.append(out)
        return results

    def _warp_back(
        self, face: FaceRegions, region: str, crop: np.ndarray | None, image_hw: tuple[int, int]
    ) -> tuple[tuple[slice, slice], np.ndarray | None, np.ndarray]:
        """Warp a crop (optional) and its mask into the image ROI they cover.

        Returns ``((rows, cols), crop_roi float32 or None, mask_roi float32)``. Bilinear weights
        leave float dust (~1e-7) where the mask should vanish; it is zeroed so "mask == 0" means
        "pixel untouched".
        """
        to_crop = face.crop_matrices[region]
        mask = face.masks[region]
        crop_h, crop_w = mask.shape
        x0, y0, x1, y1 = _quad_roi(cv2.invertAffineTransform(to_crop), crop_w, crop_h, image_hw, margin=1)
        roi_to_crop = _translate(to_crop, x0, y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # matrix maps destination -> crop
        size = (x1 - x0, y1 - y0)
        mask_roi = cv2.warpAffine(
            np.asarray(mask, dtype=np.float32),
            roi_to_crop,
            size,
            flags=flags,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        mask_roi[mask_roi < 1e-6] = 0.0
        np.clip(mask_roi, 0.0, 1.0, out=mask_roi)
        crop_roi = None
        if crop is not None:
            crop_roi = cv2.warpAffine(
                np.asarray(crop, dtype=np.float32),
                roi_to_crop,
                size,
                flags=flags,
                borderMode=cv2.BORDER_REPLICATE,
            )
        return (slice(y0, y1), slice(x0, x1)), crop_roi, mask_roi

    def composite(
        self,
        image: np.ndarray,
        faces: Sequence[FaceRegions],
        edited: Sequence[Mapping[str, np.ndarray]],
        residual: bool = False,
    ) -> np.ndarray:
        """Paste edited crops back into the original-resolution image.

        For each face (in order) and each region present in its ``edited`` dict, the crop and
        ``face.masks[region]`` are warped back with the inverse of the extraction warp, over the
        region's bounding ROI only, and blended: ``out = m * edit + (1 - m) * out``. Faces are
        applied sequentially, so overlapping regions stack like layers.

        Args:
            image: the original ``HxWx3`` RGB or ``HxW`` gray uint8 image (not modified).
            faces: from :meth:`extract` on this image.
            edited: one dict per face, region -> edited crop, uint8 or float in ``[0, 255]``
                (clipped). Its shape must match the image's channels: ``crop x crop x 3`` for an
                RGB image, ``crop x crop`` (or ``x 1``) for a gray one. A luminance-only model's
                output must therefore be merged with the source chroma by the caller first.
                Missing regions are left unedited.
            residual: add only the change ``edit - face.crops[region]``, warped back, instead of
                replacing the region by the (upsampled) crop. The photo keeps its own detail (lashes,
                teeth) wherever the model changed nothing, at any resolution; an unchanged crop leaves the
                image bit-identical.

        Returns:
            uint8 image of the same shape; every pixel where all warped masks are 0 is
            bit-identical to ``image``.
        """
        image = _as_image(image)
        if len(edited) != len(faces):
            raise ValueError(f"got {len(edited)} edit dicts for {len(faces)} faces")
        out = image.copy()
        for face, edits in zip(faces, edited, strict=True):
            for region, crop in edits.items():
                crop = self._check_crop(np.asarray(crop), face, region, image)
                if residual:
                    source = face.crops[region].reshape(crop.shape).astype(np.float32)
                    crop = np.clip(crop, 0, 255).astype(np.float32) - source
                rows_cols, crop_roi, mask_roi = self._warp_back(face, region, crop, image.shape[:2])
                base = out[rows_cols]
                if image.ndim == 3:
                    mask_roi = mask_roi[:, :, None]
                if residual:
                    blended = base + mask_roi * crop_roi
                else:
                    blended = base + mask_roi * (np.clip(crop_roi, 0, 255) - base)
                blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
                # Exactness: pixels the mask does not reach keep their value bit for bit.
                out[rows_cols] = np.where(mask_roi > 0, blended, base)
        return out

    @staticmethod
    def _check_crop(crop: np.ndarray, face: FaceRegions, region: str, image: np.ndarray) -> np.ndarray:
        if region not in face.crop_matrices:
            raise KeyError(f"region {region!r} was not extracted for this face ({list(face.boxes)})")
        if crop.ndim == 3 and crop.shape[2] == 1:
            crop = crop[:, :, 0]
        expected = face.masks[region].shape + image.shape[2:]
        if crop.shape != expected:
            raise ValueError(
                f"edited {region!r} crop has shape {crop.shape}, expected {expected} "
                "(same size as the extracted crop and the image's channel count)"
            )
        if not (crop.dtype == np.uint8 or np.issubdtype(crop.dtype, np.floating)):
            raise TypeError(f"edited crops must be uint8 or float in [0, 255], got {crop.dtype}")
        return crop

    def composite_mask(
        self, image_shape: ImageShape, faces: Sequence[FaceRegions], regions: Sequence[str] | None = None
    ) -> np.ndarray:
        """Total weight the edits of :meth:`composite` receive per pixel, ``HxW`` float32.

        ``1 - prod(1 - m_i)`` over the warped masks of all faces/regions (all extracted ones when
        ``regions`` is None) and the windows of the faces' geometric warps. Zero exactly where :meth:`composite`
        leaves pixels untouched; useful for evaluation (pixels outside the regions) and seam scores. Allocates a
        full-size float image, unlike :meth:`composite`.
        """
        keep = np.ones(tuple(image_shape[:2]), dtype=np.float32)
        for face in faces:
            if face.warp is not None:
                keep *= 1.0 - face.warp.mask(keep.shape)
            for region in face.crop_matrices if regions is None else regions:
                rows_cols, _, mask_roi = self._warp_back(face, region, None, keep.shape)
                keep[rows_cols] *= 1.0 - mask_roi
        return 1.0 - keep

    def draw_regions(self, image: np.ndarray, faces: Sequence[FaceRegions | DetectedFace]) -> np.ndarray:
        """Debug view: face boxes (green), the 5 landmarks, eye (cyan) / mouth (magenta) quads.

        Accepts :class:`FaceRegions` or bare :class:`DetectedFace` (boxes and landmarks only).
        Returns a new RGB uint8 image.
        """
        image = _as_image(image)
        canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
        thick = max(1, round(max(canvas.shape[:2]) / 400))
        shift = 4  # sub-pixel drawing: OpenCV takes fixed-point coordinates with `shift` bits

        def fixed(points: Any) -> np.ndarray:
            return np.round(np.asarray(points, dtype=np.float64) * (1 << shift)).astype(np.int32)

        region_colors = {"eyes": (0, 220, 255), "mouth": (255, 0, 220)}
        point_colors = [(255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 128, 0), (0, 128, 255)]
        for item in faces:
            det = item.face if isinstance(item, FaceRegions) else item
            x, y, w, h = det.box
            cv2.rectangle(
                canvas, tuple(fixed([x, y])), tuple(fixed([x + w, y + h])), (0, 255, 0), thick, cv2.LINE_AA, shift
            )
            if isinstance(item, FaceRegions):
                if item.warp is not None:  # the outline of what the geometric warp may move
                    cv2.polylines(canvas, [fixed(item.warp.ring)], True, (255, 255, 0), thick, cv2.LINE_AA, shift)
                for region in item.boxes:
                    quad = fixed(item.region_quad(region))
                    color = region_colors.get(region, (255, 255, 255))
                    cv2.polylines(canvas, [quad], True, color, thick, cv2.LINE_AA, shift)
            for point, color in zip(det.landmarks, point_colors, strict=True):
                cv2.circle(canvas, tuple(fixed(point)), 2 * thick << shift, color, -1, cv2.LINE_AA, shift)
        return canvas

    @property
    def geometry(self) -> dict[str, Any]:
        """What decides which pixels a crop shows (JSON-ready): a model trained on crops of one geometry must
        edit with the same one, so data preparation records it and training copies it into the model."""
        return {
            "region_anchor": self.region_anchor,
            "region_margins": {region: list(self.margins[region]) for region in self.regions},
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(detector={self.detector!r}, regions={self.regions}, "
            f"canonical_size={self.canonical_size}, crop_size={self.crop_size}, "
            f"region_anchor={self.region_anchor!r}, margins={self.margins}, feather={self.feather})"
        )
