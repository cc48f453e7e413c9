"""Face detection and landmarks: the detectors (dlib's HOG + CNN check, OpenCV's YuNet), their process-wide model
cache, and the 68-point shape the action-unit warp moves.

Data flow: ``image --FaceDetector.detect--> DetectedFace`` (box and 5 landmarks in image pixels; the 68-point
``shape`` on demand, :func:`face_shape`). Cropping and compositing are in :mod:`diffusers_led.faces.regions`.
Torch-free: numpy, OpenCV and dlib only.
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..geometry.transforms import ARCFACE_TEMPLATE_112, Box, similarity_transform, transform_points

__all__ = [
    "DetectedFace",
    "DlibFaceDetector",
    "FaceDetector",
    "YuNetFaceDetector",
    "face_shape",
    "five_landmarks",
    "load_face_detector",
    "plausible_landmarks",
]


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
    """

    box: Box
    landmarks: np.ndarray
    score: float
    shape: np.ndarray | None = None


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
    """Build a detector from a spec: ``"dlib"``, ``"yunet:<path.onnx>"`` or a ``.onnx`` path.

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
    if spec.lower().startswith("yunet:"):
        return YuNetFaceDetector(spec[len("yunet:") :], **kwargs)
    if spec.lower() == "yunet":
        raise FileNotFoundError(
            "the YuNet detector needs its ONNX file: pass 'yunet:/path/to/face_detection_yunet.onnx'"
        )
    if spec.lower().endswith(".onnx"):
        return YuNetFaceDetector(spec, **kwargs)
    raise ValueError(f"unknown face detector {spec!r}: use 'dlib', 'yunet:<path.onnx>' or a .onnx path")
