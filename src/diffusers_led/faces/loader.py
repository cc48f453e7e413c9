"""A face detector from its name: ``load_face_detector("mesh" | "dlib" | "yunet:<path.onnx>")``.

Its own module because it knows every detector: :mod:`.detection` (dlib, YuNet and what all detectors share) and
:mod:`.mesh` (MediaPipe's, which builds on :mod:`.detection`), so neither imports the other back.
"""

from __future__ import annotations

import os
from typing import Any

from .detection import DlibFaceDetector, FaceDetector, YuNetFaceDetector
from .mesh import MeshFaceDetector

__all__ = ["load_face_detector"]


def load_face_detector(name_or_path: str | os.PathLike | FaceDetector = "dlib", **kwargs: Any) -> FaceDetector:
    """Build a detector from a spec: ``"mesh"`` (BlazeFace + Face Mesh V2, :mod:`.mesh`), ``"dlib"``,
    ``"yunet:<path.onnx>"`` or a ``.onnx`` path.

    A :class:`FaceDetector` instance is returned unchanged. ``kwargs`` go to the constructor
    (e.g. ``max_detection_size``, ``min_face_size``).

    Raises:
        FileNotFoundError: a YuNet spec whose ONNX file does not exist.
        ValueError: an unknown spec.
    """
    if isinstance(name_or_path, FaceDetector):
        return name_or_path
    spec = os.fspath(name_or_path)
    if spec.lower() == "mesh":
        return MeshFaceDetector(**kwargs)
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
    raise ValueError(f"unknown face detector {spec!r}: use 'mesh', 'dlib', 'yunet:<path.onnx>' or a .onnx path")
