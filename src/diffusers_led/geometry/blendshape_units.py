"""A face's own action units read from MediaPipe's blendshape scores instead of from its landmarks' shape.

Reading an expression from 68 landmarks compares the face with a mean face, so a person's low brows, full cheeks or
wide mouth read as a frown, a cheek raise or a smile, and a faint real smile hides under the limit that keeps those
apart (:func:`~diffusers_led.geometry.action_units.neutral_variation`). The blendshape model of the mesh detector
(:class:`~diffusers_led.faces.mesh.MeshFaceDetector`, ``FaceRegions.blendshapes``) was trained to score what a face
does whatever its shape; where a face has those scores, the units they read (:data:`BLENDSHAPE_UNITS`) come from
them: ``(score - rest) / (full - rest)``, where ``rest`` is what neutral faces score and ``full`` what the unit's
expression scores at its peak, both measured on the CK+ calibration people
(``scripts/calibrate_blendshape_units.py``), the same frames the units' landmark patterns were sized on, so that
intensity 1 is the same movement either way. Any reading above 0 is then an expression, not a face shape.

MediaPipe's ``cheekSquint`` and ``noseSneer`` score 0 on every calibration frame, and ``mouthFrown`` nearly so: the
cheek raiser is read from ``eyeSquint`` (the lower lids rising as the cheeks do), and the lip corner depressor stays
with the landmarks.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["BLENDSHAPE_UNITS", "FULL_SCORE", "REST_SCORE", "blendshape_action_units"]

#: The blendshapes (left and right are averaged) that read each unit.
BLENDSHAPE_UNITS: dict[str, tuple[str, ...]] = {
    "AU1": ("browInnerUp",),
    "AU2": ("browOuterUpLeft", "browOuterUpRight"),
    "AU4": ("browDownLeft", "browDownRight"),
    "AU5": ("eyeWideLeft", "eyeWideRight"),
    "AU6": ("eyeSquintLeft", "eyeSquintRight"),
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),
    "AU26": ("jawOpen",),
}
#: Per unit, the median over the calibration people of their mean score on neutral frames, and the mean score of
#: the peak frames of the expression the unit's pattern was measured on (surprise: AU1 AU2 AU5 AU26; disgust and
#: anger: AU4; happy: AU6 AU12). ``python scripts/calibrate_blendshape_units.py --data data/ckplus_sample``
#: (S052 S055 S074 S113 S125; 38 neutral, 20 peak frames).
REST_SCORE: dict[str, float] = {
    "AU1": 0.02,
    "AU2": 0.04,
    "AU4": 0.05,
    "AU5": 0.01,
    "AU6": 0.21,
    "AU12": 0.0,
    "AU26": 0.0,
}
FULL_SCORE: dict[str, float] = {
    "AU1": 0.64,
    "AU2": 0.74,
    "AU4": 0.53,
    "AU5": 0.29,
    "AU6": 0.49,
    "AU12": 0.96,
    "AU26": 0.59,
}
#: The strongest reading: as for the landmark fit, 1.5 times the unit in a full expression.
MAX_READING = 1.5


def blendshape_action_units(blendshapes: Mapping[str, float]) -> dict[str, float]:
    """The intensities of :data:`BLENDSHAPE_UNITS` a face shows beyond a neutral face, from its 52 blendshape scores
    (``FaceRegions.blendshapes``), in [0, 1.5]; every unit of :data:`BLENDSHAPE_UNITS` is present (0: not shown).
    Raises ``KeyError`` naming a missing blendshape."""
    units = {}
    for unit, names in BLENDSHAPE_UNITS.items():
        score = sum(float(blendshapes[name]) for name in names) / len(names)
        reading = (score - REST_SCORE[unit]) / (FULL_SCORE[unit] - REST_SCORE[unit])
        units[unit] = round(min(max(reading, 0.0), MAX_READING), 3)
    return units
