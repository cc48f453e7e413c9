"""A second, independent judge of an edit: MediaPipe's 52 blendshape scores read on the photo before and after.

The 7-class expression classifier says which expression a face looks like; it can be pleased by a cue that is not
the expression (and it has no contempt). The blendshape model (MediaPipe Blendshape V2 on the Face Mesh V2 points,
:class:`~diffusers_led.faces.mesh.MeshFaceDetector`) reads what the face *does* (brows down, nose sneer, jaw open,
lip corners up ...), so an edit is also judged by whether the action units of its target moved on the output photo:
:data:`INTENDED` lists, per target, the blendshapes that should rise (for neutral: every expression blendshape should
fall; for contempt, the one-sided smile and dimple: the difference between the two sides should grow).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from ..labels import canonical_expression

__all__ = ["INTENDED", "BlendshapeJudge", "intended_rise", "shared_judge"]


def _both(*names: str) -> tuple[str, ...]:
    return tuple(f"{name}{side}" for name in names for side in ("Left", "Right"))


#: Per target, the blendshapes its action units make (EMFACS prototypes read as MediaPipe blendshapes).
INTENDED: dict[str, tuple[str, ...]] = {
    "happy": _both("mouthSmile", "cheekSquint"),
    "sad": ("browInnerUp", *_both("mouthFrown")),
    "surprised": ("browInnerUp", "jawOpen", *_both("browOuterUp", "eyeWide")),
    "fearful": ("browInnerUp", *_both("eyeWide", "mouthStretch")),
    "angry": _both("browDown", "eyeSquint", "mouthPress"),
    "disgusted": _both("noseSneer", "mouthUpperUp", "browDown"),
    "contemptuous": ("mouthSmile", "mouthDimple"),  # one side: the asymmetry of each pair
    "neutral": (),  # every expression blendshape: they should fall
}


def _score(shapes: Mapping[str, float], target: str) -> float:
    """How much of ``target``'s blendshapes a face shows (mean score; contempt: mean left-right difference;
    neutral: minus the mean expression score, so that it rises as the face calms)."""
    if target == "contemptuous":
        return float(np.mean([abs(shapes[f"{n}Left"] - shapes[f"{n}Right"]) for n in INTENDED[target]]))
    if target == "neutral":
        names = _both("mouthSmile", "mouthFrown", "browDown", "noseSneer", "eyeWide", "mouthStretch")
        return -float(np.mean([shapes[n] for n in (*names, "browInnerUp", "jawOpen")]))
    return float(np.mean([shapes[name] for name in INTENDED[target]]))


def intended_rise(before: Mapping[str, float], after: Mapping[str, float], target: str) -> float:
    """How much the blendshapes of ``target`` rose from ``before`` to ``after`` (see :data:`INTENDED`)."""
    target = canonical_expression(target)
    return _score(after, target) - _score(before, target)


class BlendshapeJudge:
    """Reads the 52 blendshape scores of the face in a box of a photo (the largest face the mesh detector finds in
    the box grown by half its size). Needs ``ai-edge-litert`` or OpenCV's DNN module and the bundled models."""

    def __init__(self) -> None:
        from ..faces.mesh import MeshFaceDetector

        self.detector = MeshFaceDetector(min_face_size=24.0)

    def read(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> dict[str, float] | None:
        """The blendshapes of the face at ``box`` (``x, y, w, h`` px) in ``rgb``; ``None`` if no face is found."""
        x, y, w, h = (float(v) for v in box)
        height, width = rgb.shape[:2]
        x0, y0 = max(0, int(x - w / 2)), max(0, int(y - h / 2))
        x1, y1 = min(width, int(x + 1.5 * w)), min(height, int(y + 1.5 * h))
        faces = self.detector.detect(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
        return dict(faces[0].blendshapes) if faces and faces[0].blendshapes else None


@lru_cache(maxsize=1)
def shared_judge() -> BlendshapeJudge:
    """One judge per process (its models load once)."""
    return BlendshapeJudge()
