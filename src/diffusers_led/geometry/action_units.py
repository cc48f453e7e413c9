"""Facial action units as landmark displacements, and the eight expressions as action-unit prototypes.

Each action unit (FACS, Ekman & Friesen) is a displacement pattern of the 68 iBUG/dlib landmarks in the aligned face
frame, in units of the inter-ocular distance (the distance between the eye centres), with image axes (x to the
image's right, y down). Patterns are written for the subject's right half (the image's left) and the midline, and
mirrored onto the left half, so every unit also exists as a one-sided ``R``/``L`` variant (``"R12"``: the subject's
right lip corner only), which contempt needs.

Where the CK+ sample has neutral and peak frames of the same people, the magnitudes are the measured mean
displacements (``scripts/calibrate_action_units.py`` measures them): happy (AU6, AU12; 3 people, 7 frames),
surprise (AU1, AU2, AU5, AU26; 3 people, 6 frames), disgust (AU4, AU9, AU10; 4 people, 6 frames), anger (AU17;
1 person, 2 frames). The others follow the FACS descriptions at magnitudes of the same order. :data:`SOURCES` says
which is which.

This module knows nothing of images: :mod:`diffusers_led.geometry.warp` turns displacements into a dense warp.
"""

from __future__ import annotations

import json
import numbers
import re
import warnings
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..labels import canonical_expression
from .blendshape_units import BLENDSHAPE_UNITS, blendshape_action_units
from .transforms import similarity_transform, transform_points

__all__ = [
    "ACTION_UNITS",
    "EXPRESSION_PROTOTYPES",
    "MIRROR",
    "PARTIAL_UNDO",
    "RELAXATION",
    "RELEASED_WITH",
    "SHUT_MOUTH_SEAM",
    "SOURCES",
    "align_shape",
    "estimate_action_units",
    "fit_action_units",
    "inter_ocular",
    "neutral_shape",
    "neutral_variation",
    "expression_action_units",
    "landmark_displacements",
    "parse_action_units",
]

NUM_POINTS = 68
#: The mean neutral face (68 points, inter-ocular units, 5-point aligned), written by
#: scripts/calibrate_action_units.py from the neutral CK+ frames of the 6 people with peak frames.
NEUTRAL_SHAPE_FILE = Path(__file__).with_name("neutral_shape.json")
#: Points that expressions hardly move (eye corners, nose bridge): shapes are compared after aligning these.
STABLE_POINTS = [36, 39, 42, 45, 27, 28, 29, 30]

#: The left/right mirror of each of the 68 points (midline points map to themselves).
MIRROR = np.array(
    list(range(16, -1, -1))  # jaw 0-16
    + list(range(26, 16, -1))  # brows 17-26
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose bridge 27-30, nostrils 31-35
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes 36-47
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips 48-59
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips 60-67
)
#: The points on the midline.
MIDLINE = np.flatnonzero(MIRROR == np.arange(NUM_POINTS))
#: The points of the subject's right half (the image's left): jaw 0-7, brow 17-21, nostrils 31-32, eye 36-41, ...
RIGHT_HALF = np.array(
    [0, 1, 2, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21, 31, 32, 36, 37, 38, 39, 40, 41, 48, 49, 50, 58, 59, 60, 61, 67]
)

# Right-half and midline displacements (dx, dy) per action unit, inter-ocular units. For the right half, "out"
# (away from the midline) is -x; mirroring negates dx.
_PATTERNS: dict[int, dict[int, tuple[float, float]]] = {
    # Inner brow raiser: the inner brow up (surprise: inner brow -0.13).
    1: {21: (0.0, -0.13), 20: (0.0, -0.10), 19: (0.0, -0.06), 18: (0.0, -0.03)},
    # Outer brow raiser: the outer brow up (surprise: outer brow -0.11).
    2: {17: (0.0, -0.10), 18: (0.0, -0.11), 19: (0.0, -0.08), 20: (0.0, -0.04)},
    # Brow lowerer: the brows down and together (disgust: inner brow +0.09, 0.03 toward the midline).
    4: {21: (0.035, 0.09), 20: (0.02, 0.085), 19: (0.01, 0.07), 18: (0.0, 0.055), 17: (0.0, 0.045)},
    # Upper lid raiser: the upper lid up (surprise: -0.03; dlib's lid points under-read it).
    5: {37: (0.0, -0.04), 38: (0.0, -0.04)},
    # Cheek raiser: the lower lid up (happy: -0.03), a little of the outer brow down.
    6: {40: (0.0, -0.035), 41: (0.0, -0.035), 17: (0.0, 0.015)},
    # Lid tightener: the lower lid up, the upper lid a little down (a narrower eye).
    7: {40: (0.0, -0.035), 41: (0.0, -0.035), 37: (0.0, 0.015), 38: (0.0, 0.015)},
    # Nose wrinkler: the nose wings and upper lip up, the inner brows down (disgust: wings -0.05).
    9: {
        31: (0.0, -0.05),
        32: (0.0, -0.045),
        33: (0.0, -0.04),
        21: (0.0, 0.04),
        20: (0.0, 0.03),
        49: (0.0, -0.02),
        50: (0.0, -0.025),
        51: (0.0, -0.025),
        61: (0.0, -0.02),
        62: (0.0, -0.02),
    },
    # Upper lip raiser (disgust: upper lip -0.045).
    10: {
        48: (0.0, -0.015),
        49: (0.0, -0.04),
        50: (0.0, -0.045),
        51: (0.0, -0.045),
        60: (0.0, -0.015),
        61: (0.0, -0.045),
        62: (0.0, -0.045),
    },
    # Lip corner puller: corners up and out (happy: corner -0.16 out, -0.18 up).
    12: {
        48: (-0.16, -0.18),
        60: (-0.15, -0.17),
        49: (-0.07, -0.09),
        59: (-0.07, -0.08),
        61: (-0.05, -0.07),
        67: (-0.05, -0.06),
        50: (-0.02, -0.04),
        58: (-0.02, -0.03),
        51: (0.0, -0.03),
        62: (0.0, -0.03),
        57: (0.0, -0.01),
        66: (0.0, -0.01),
        4: (0.0, -0.02),
        5: (0.0, -0.015),
    },
    # Dimpler: corners pulled in and tightened.
    14: {48: (0.04, -0.02), 60: (0.035, -0.02), 49: (0.015, -0.01), 59: (0.015, -0.01)},
    # Lip corner depressor: corners down.
    15: {48: (0.0, 0.07), 60: (0.0, 0.065), 49: (0.0, 0.025), 59: (0.0, 0.035), 61: (0.0, 0.02), 67: (0.0, 0.03)},
    # Lower lip depressor: the lower lip down.
    16: {57: (0.0, 0.05), 56: (0.0, 0.045), 58: (0.0, 0.045), 66: (0.0, 0.035), 65: (0.0, 0.03), 67: (0.0, 0.03)},
    # Chin raiser: the chin and lower lip up (anger: lower lip -0.11, with AU23).
    17: {
        57: (0.0, -0.06),
        56: (0.0, -0.05),
        58: (0.0, -0.05),
        55: (0.0, -0.03),
        59: (0.0, -0.03),
        66: (0.0, -0.04),
        65: (0.0, -0.03),
        67: (0.0, -0.03),
        8: (0.0, -0.03),
        7: (0.0, -0.02),
    },
    # Lip stretcher: corners out horizontally, the red of both lips flattened thinner (stretched, not swollen).
    20: {
        48: (-0.08, 0.01),
        60: (-0.075, 0.01),
        49: (-0.04, 0.008),
        59: (-0.04, -0.008),
        50: (0.0, 0.012),
        51: (0.0, 0.012),
        58: (0.0, -0.012),
        57: (0.0, -0.012),
        61: (-0.02, 0.0),
        67: (-0.02, 0.0),
    },
    # Lip tightener: narrower lips (corners in, the red of the lips thinner).
    23: {48: (0.03, 0.0), 60: (0.025, 0.0), 50: (0.0, 0.015), 51: (0.0, 0.015), 57: (0.0, -0.015), 58: (0.0, -0.015)},
    # Lips part: the lower inner lip down.
    25: {
        65: (0.0, 0.05),
        66: (0.0, 0.05),
        67: (0.0, 0.05),
        55: (0.0, 0.03),
        56: (0.0, 0.035),
        57: (0.0, 0.035),
        58: (0.0, 0.035),
        59: (0.0, 0.03),
        61: (0.0, -0.01),
        62: (0.0, -0.01),
    },
    # Jaw drop: the lower lip, chin and jaw down (surprise: lower lip +0.56, chin +0.43, corners +0.24).
    26: {
        57: (0.0, 0.50),
        56: (0.0, 0.47),
        58: (0.0, 0.47),
        55: (0.0, 0.36),
        59: (0.0, 0.36),
        66: (0.0, 0.46),
        65: (0.0, 0.42),
        67: (0.0, 0.42),
        48: (0.03, 0.20),
        60: (0.03, 0.20),
        8: (0.0, 0.42),
        7: (0.0, 0.39),
        6: (0.02, 0.32),
        5: (0.04, 0.24),
        4: (0.05, 0.15),
        3: (0.03, 0.07),
        # The upper lip arches over the opening: its sides follow the corners down (a quarter as far beside the
        # middle, as on a parabola through the corners), so the opening is round, not flat-topped.
        61: (0.0, 0.05),
        49: (0.0, 0.04),
        50: (0.0, 0.01),
    },
}

#: On a shut mouth the seam moves with the lips around it: the corner puller's inner lip points (61, 62, 66, 67) take
#: the mean movement of the upper and lower lip's outer edges at their place along the mouth (on the mean neutral
#: face; the corners 60, 64 keep the pattern's). The CK+ happy peaks it was measured on are laughs, whose opening
#: curves up at the sides: there the inner points rise and move out twice as far as the lips beside them (61: 0.05
#: out, 0.07 up against 0.02, 0.035), and on a shut mouth that drew the seam into a wedge and the lower lip, between a
#: wedge and its own round lower edge, into a thick crescent (t1.jpg's downcast woman toward happy).
SHUT_MOUTH_SEAM: dict[int, dict[int, tuple[float, float]]] = {
    12: {61: (-0.02, -0.035), 67: (-0.02, -0.035), 62: (0.0, -0.02), 66: (0.0, -0.02)},
}

#: Where each pattern's magnitudes come from.
SOURCES: dict[str, str] = {
    "AU1": "CK+ surprise (3 people, 6 frames)",
    "AU2": "CK+ surprise (3 people, 6 frames)",
    "AU4": "CK+ disgust and anger (5 people, 8 frames)",
    "AU5": "CK+ surprise (3 people, 6 frames), raised: dlib's lid points under-read it",
    "AU6": "CK+ happy (3 people, 7 frames)",
    "AU7": "FACS description",
    "AU9": "CK+ disgust (4 people, 6 frames)",
    "AU10": "CK+ disgust (4 people, 6 frames)",
    "AU12": "CK+ happy (3 people, 7 frames)",
    "AU14": "FACS description",
    "AU15": "FACS description",
    "AU16": "FACS description",
    "AU17": "CK+ anger (1 person, 2 frames)",
    "AU20": "FACS description",
    "AU23": "FACS description",
    "AU25": "FACS description",
    "AU26": "CK+ surprise (3 people, 6 frames)",
}


def _full_pattern(unit: int, side: str = "", shut: bool = False) -> np.ndarray:
    """The ``(68, 2)`` displacement of one unit on both halves (``side=""``), or the subject's right or left only;
    ``shut``: its variant for a shut mouth (:data:`SHUT_MOUTH_SEAM`)."""
    pattern = np.zeros((NUM_POINTS, 2))
    points = {**_PATTERNS[unit], **(SHUT_MOUTH_SEAM.get(unit, {}) if shut else {})}
    for index, (dx, dy) in points.items():
        pattern[index] = (dx, dy)
        if MIRROR[index] != index:
            pattern[MIRROR[index]] = (-dx, dy)
    if side:
        half = set(RIGHT_HALF.tolist()) if side == "R" else {int(MIRROR[i]) for i in RIGHT_HALF}
        keep = np.array([1.0 if i in half else 0.5 if i in MIDLINE else 0.0 for i in range(NUM_POINTS)])
        pattern *= keep[:, None]
    return pattern


#: Every action unit by name ("AU12", "R12", "L12"), as a ``(68, 2)`` displacement in inter-ocular units.
ACTION_UNITS: dict[str, np.ndarray] = {}
for _unit in _PATTERNS:
    ACTION_UNITS[f"AU{_unit}"] = _full_pattern(_unit)
    ACTION_UNITS[f"R{_unit}"] = _full_pattern(_unit, "R")
    ACTION_UNITS[f"L{_unit}"] = _full_pattern(_unit, "L")
#: The units whose pattern differs on a shut mouth (:data:`SHUT_MOUTH_SEAM`), that variant by name.
SHUT_MOUTH_UNITS: dict[str, np.ndarray] = {}
for _unit in SHUT_MOUTH_SEAM:
    for _side in ("", "R", "L"):
        SHUT_MOUTH_UNITS[f"{_side or 'AU'}{_unit}"] = _full_pattern(_unit, _side, shut=True)
for _pattern in (*ACTION_UNITS.values(), *SHUT_MOUTH_UNITS.values()):
    _pattern.setflags(write=False)

#: The EMFACS prototypes (Friesen & Ekman) with intensities; `strength` 1 is the full expression. Neutral is the
#: empty prototype: editing toward it undoes the face's own action units (see :func:`expression_action_units`).
#: Each departs from the CK+ means where the real-photo tune split showed the mean too faint or misread, never at the
#: cost of a person (dlib distance < 0.6): happy and surprised are stronger (a CK+-sized smile left most unsmiling
#: faces unsmiling); angry tightens the lids instead of raising them (AU5 read as fear) and presses the lips;
#: fearful draws the raised inner brows together, widens the eyes fully, stretches the lips and pulls them down
#: (a stretched mouth alone read as a smile; its corners alone bent the lower lip into a pout), parting them without
#: a jaw drop (that read as surprise; ``scripts/probe_edit_regions.py`` found the CK+ neutral frames want an opened
#: mouth and the colour photos a toothy one, and none of 11 prototypes made from that moved both, so fear stays the
#: weakest target: tune top-1 1/9, CK+ calibration 2/60); disgust
#: lowers the brows beside a nose wrinkle of 0.8 (at 1.5 a calibration person was no longer themselves, distance
#: 0.66) and parts the lips as FACS 10+25 does (a laugh's raised upper lip stays over its own teeth); surprise's jaw
#: drop stays 0.8 (0.9-1.0 turned one more tune face, but drew every opening toward a rag doll's); contempt pulls
#: one corner as far as a full smile does (at half, MediaPipe read its output as two-sided or no smile on 5 of 11 tune
#: faces). Every step, its
#: numbers and the command that measured them: docs/geometry.md, "The expressions".
EXPRESSION_PROTOTYPES: dict[str, dict[str, float]] = {
    "happy": {"AU6": 1.3, "AU12": 1.4},
    "sad": {"AU1": 1.3, "AU4": 0.78, "AU15": 1.3, "AU17": 0.52},
    "surprised": {"AU1": 1.2, "AU2": 1.2, "AU5": 1.3, "AU25": 1.0, "AU26": 0.8},
    "fearful": {"AU1": 1.3, "AU2": 0.5, "AU4": 1.0, "AU5": 1.5, "AU15": 0.5, "AU16": 1.0, "AU20": 1.5, "AU25": 0.6},
    "angry": {"AU4": 1.5, "AU7": 1.5, "AU9": 0.5, "AU15": 0.3, "AU17": 0.8, "AU23": 1.5},
    "disgusted": {"AU4": 1.1, "AU6": 1.0, "AU7": 0.6, "AU9": 0.8, "AU10": 0.8, "AU15": 0.3, "AU25": 0.3},
    "contemptuous": {"R12": 1.0, "R14": 1.0},
    "neutral": {},
}

#: Where an edit toward a target undoes only a share of one of the face's own units (default: all of it). A target
#: that drops the jaw undoes half a smile: the dropped jaw already takes the lip corners down (AU26), so a full undo
#: moves them twice over, the largest movement of the edit and the one that changed the person most (tune split,
#: surprise edits of smiling faces: largest dlib distance 0.582 -> 0.545 with half the undo, 0.519 with none; mean
#: p(surprised) 0.647 -> 0.650, top-1 9/11 both; with none, a broad smile's edit fell to p 0.67 from 0.89). On the
#: CK+ calibration people (60 frames) it keeps the person in 59 surprise edits instead of 56 (largest distance
#: 0.630 -> 0.609) at a cost: 4 laughing peaks still read happy, top-1 46/54 -> 41/54 (three quarters of the undo:
#: 57/60 kept, 42/54; keeping the corners' full drop and half their narrowing: 57/60, 41/54).
PARTIAL_UNDO: dict[str, dict[str, float]] = {"surprised": {"AU12": 0.5}}
#: Units a target relaxes a face past its own rest, per unit of the largest expression it undoes (at most 1): toward
#: neutral, the brows unknit (AU4 undone) and the lids loosen (AU7 undone). A face's own rest is not what a person
#: calls neutral when it still reads expressive: a smile undone to its landmarks' rest kept its lowered brows and
#: tight lids, and read happy or sad (tune split: 1 of 10 expressive faces read neutral; with this 2 of 10, every
#: person kept; docs/geometry.md, "Toward neutral"). The brows stop at 0.4: at 0.5 a third tune face read neutral
#: but a CK+ calibration laugh came to 0.598 of dlib's 0.6. A face that shows no expression is left as it is.
RELAXATION: dict[str, dict[str, float]] = {"neutral": {"AU4": 0.4, "AU7": 0.5}}
#: Where undoing one of the face's own units toward a target also lets down another that goes with it, per unit of
#: the face's own reading: a laugh raises the upper lip over the upper teeth (AU10 with AU12), which the lip corner
#: puller's pattern barely moves, and toward a dropped jaw the relaxed upper lip comes down over them (a tall row of
#: upper teeth over the opening read as a laugh: CK+ calibration happy peaks toward surprised 0/7 -> 1/7 read
#: surprised, tune top-1 8/11 both; toward fearful's parted lips tune 0/9 -> 1/9; not toward the targets that close
#: the mouth, where it cost a tune person; at most MAX_INTENSITY; docs/geometry.md, "What a call does", step 3).
#: A frown undone toward surprised already lifts the inner brows (AU4 lowers them), so the inner brow raiser does
#: less: on top of the prototype's full AU1 the inner ends rose above the outer ones, a worried slant (a frowning
#: man read sad; tune top-1 8/11 -> 9/11, mean p(surprised) 0.575 -> 0.624; at 0.5 or 1.0 per unit none turned).
RELEASED_WITH: dict[str, dict[str, tuple[str, float]]] = {
    "surprised": {"AU12": ("AU10", 1.3), "AU4": ("AU1", 1.3)},
    "fearful": {"AU12": ("AU10", 1.3)},
}
#: Units estimated on a face to find its own expression (bilateral ones: one-sided estimates are too noisy).
ESTIMATED_UNITS = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU26")
#: Units of one part of the face, read together: when one of them is beyond what neutral faces show
#: (:func:`neutral_variation`), that part shows an expression and all of its readings are undone (undoing the outer
#: half of a raised brow and keeping the inner half makes a new expression, not none).
FACE_PARTS = (("AU1", "AU2", "AU4"), ("AU6",), ("AU12", "AU15", "AU26"))
#: Ridge weight of the estimate: opposing units (AU1 and AU4 on the brows) must not both grow to cancel out.
ESTIMATE_RIDGE = 0.05

#: The largest intensity of a unit, either way: 1.5 times the unit as strong as in a full expression.
MAX_INTENSITY = 1.5

_UNIT_NAME = re.compile(r"^(AU|R|L)(\d+)$")


def parse_action_units(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """Action-unit intensities from ``{"AU12": 0.8}`` or ``"AU12=0.8,AU6=0.4"`` (names are case-insensitive; ``R``/
    ``L`` prefixes are one-sided units). Raises ``ValueError`` naming the known units for an unknown one, and for an
    intensity that is not a number in [-1.5, 1.5] or a unit named twice (``AU12`` and ``au12``)."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        items: list[tuple[str, float]] = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"action unit {part!r} needs an intensity, e.g. AU12=0.8")
            try:
                items.append((name.strip(), float(value)))
            except ValueError:
                message = f"action unit {name.strip()!r}: intensity {value.strip()!r} is not a number"
                raise ValueError(message) from None
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        raise ValueError(
            f'action units must be a mapping such as {{"AU12": 0.8}} or a string such as "AU12=0.8,AU6=0.4", '
            f"got {type(spec).__name__} {spec!r:.60}"
        )
    out: dict[str, float] = {}
    for name, value in items:
        key = str(name).strip().upper()
        if key.isdigit():
            key = f"AU{key}"
        if key not in ACTION_UNITS:
            known = ", ".join(f"AU{u}" for u in _PATTERNS)
            raise ValueError(f"unknown action unit {name!r}; known: {known} (R/L prefixes for one side, e.g. R12)")
        if key in out:
            raise ValueError(f"action unit {key} is given twice; give each unit once")
        if getattr(value, "shape", None) == () and hasattr(value, "item"):  # a 0-d array or tensor
            try:
                value = value.item()
            except (RuntimeError, NotImplementedError, TypeError, ValueError):
                pass  # a tensor whose value cannot be read (the meta device): refused below
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"action unit {name!r}: intensity must be a number in [-1.5, 1.5], got {value!r}")
        if not -1.5 <= value <= 1.5:
            raise ValueError(f"action unit {name!r}: intensity must be in [-1.5, 1.5], got {float(value)}")
        out[key] = float(value)
    return out


def landmark_displacements(units: Mapping[str, float], shut: float = 0.0) -> np.ndarray:
    """The ``(68, 2)`` displacement (inter-ocular units) of a set of action units at their intensities. ``shut``
    (0 to 1): how far the mouth is shut, the share of each made unit's shut-mouth variant (:data:`SHUT_MOUTH_SEAM`;
    a unit undone, at a negative intensity, keeps its pattern: the variant is for a smile made on shut lips, and
    undoing one with it moved the cheeks' shading of a side-lit face)."""
    total = np.zeros((NUM_POINTS, 2))
    for name, intensity in parse_action_units(units).items():
        pattern = ACTION_UNITS[name]
        if shut > 0 and intensity > 0 and name in SHUT_MOUTH_UNITS:
            pattern = pattern + shut * (SHUT_MOUTH_UNITS[name] - pattern)
        total += intensity * pattern
    return total


def inter_ocular(points: np.ndarray) -> float:
    """The distance between the eye centres of 68 points (means of 36-41 and 42-47) or of 5 (points 0 and 1)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == NUM_POINTS:
        return float(np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0)))
    return float(np.linalg.norm(points[1] - points[0]))


def align_shape(shape: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``shape`` (68 points) moved by the similarity that best lays its :data:`STABLE_POINTS` onto ``reference``'s."""
    matrix = similarity_transform(np.asarray(shape)[STABLE_POINTS], np.asarray(reference)[STABLE_POINTS])
    return transform_points(matrix, shape)


@lru_cache(maxsize=1)
def neutral_shape() -> np.ndarray:
    """The mean neutral face, ``(68, 2)`` inter-ocular units (see :data:`NEUTRAL_SHAPE_FILE`)."""
    shape = np.array(json.loads(NEUTRAL_SHAPE_FILE.read_text())["shape"], dtype=np.float64)
    shape.setflags(write=False)
    return shape


@lru_cache(maxsize=1)
def neutral_variation() -> dict[str, float]:
    """Per estimated unit, the largest reading :func:`fit_action_units` gave on the neutral frames of the
    calibration people (see :data:`NEUTRAL_SHAPE_FILE`): readings up to this can be a person's face shape (low brows,
    full cheeks, a wide mouth) rather than an expression, so editing does not undo them."""
    return dict(json.loads(NEUTRAL_SHAPE_FILE.read_text())["variation"])


def fit_action_units(shape: np.ndarray, reference: np.ndarray | None = None) -> dict[str, float]:
    """The non-negative least-squares fit of a face's difference from ``reference`` (default: the mean neutral face),
    after aligning the stable points, by the patterns of :data:`ESTIMATED_UNITS`; every unit's weight, none dropped.
    ``shape``: 68 points in any frame."""
    from scipy.optimize import nnls

    reference = neutral_shape() if reference is None else np.asarray(reference, dtype=np.float64)
    shape = np.asarray(shape, dtype=np.float64)
    scaled = shape * (inter_ocular(reference) / max(inter_ocular(shape), 1e-9))
    change = align_shape(scaled, reference) - reference
    basis = np.stack([ACTION_UNITS[name].ravel() for name in ESTIMATED_UNITS], axis=1)
    ridge = ESTIMATE_RIDGE * np.linalg.norm(basis, axis=0).mean()
    weights, _ = nnls(
        np.vstack([basis, ridge * np.eye(len(ESTIMATED_UNITS))]),
        np.concatenate([change.ravel(), np.zeros(len(ESTIMATED_UNITS))]),
    )
    return {name: float(w) for name, w in zip(ESTIMATED_UNITS, weights)}


def estimate_action_units(
    shape: np.ndarray, threshold: float = 0.25, blendshapes: Mapping[str, float] | None = None
) -> dict[str, float]:
    """A face's own bilateral action units (:func:`fit_action_units`), capped at 1.5. Activations below
    ``threshold`` are dropped: people differ from the mean face by that much without any expression.

    With the face's MediaPipe ``blendshapes`` (the mesh detector's), the units they read
    (:data:`~diffusers_led.geometry.blendshape_units.BLENDSHAPE_UNITS`) come from them instead: scores that do not
    confuse a face's shape with its expression, read as intensities beyond a neutral face's."""
    weights = fit_action_units(shape)
    if blendshapes:
        weights.update(blendshape_action_units(blendshapes))
    return {name: round(min(w, 1.5), 3) for name, w in weights.items() if w >= threshold}


def expression_action_units(
    target: str,
    strength: float = 1.0,
    current: Mapping[str, float] | None = None,
    extra: Mapping[str, float] | None = None,
    from_blendshapes: bool = False,
) -> dict[str, float]:
    """The action-unit change that moves a face toward ``target`` at ``strength``: the prototype's units scaled by
    ``strength`` minus what the face already shows of them (``current``, from :func:`estimate_action_units`), and
    the face's own units that the target does not have undone by ``strength`` (times :data:`PARTIAL_UNDO`), and the
    target's :data:`RELAXATION` by ``strength`` times the largest of those (at most 1); then
    ``extra`` units on top, each sum clipped (with a warning) to [-1.5, 1.5], the range a unit's pattern was
    measured over.

    A face that already smiles is not smiled at twice; editing toward neutral undoes what the face clearly shows.
    Only readings above what neutral faces show (:func:`neutral_variation`) are undone: a person's low brows or
    wide mouth are not an expression to take away. ``from_blendshapes``: ``current`` was read with blendshapes
    (:func:`estimate_action_units`), whose readings of :data:`~.blendshape_units.BLENDSHAPE_UNITS` are already
    beyond a neutral face: any of them is undone."""
    prototype = EXPRESSION_PROTOTYPES[canonical_expression(target)]
    current = dict(current or {})
    variation = neutral_variation()
    if from_blendshapes:
        variation = {**variation, **dict.fromkeys(BLENDSHAPE_UNITS, 0.0)}
    parts = [*FACE_PARTS, *((name,) for name in current if not any(name in part for part in FACE_PARTS))]
    expressive = {
        name for part in parts if any(current.get(u, 0.0) > variation.get(u, 0.0) for u in part) for name in part
    }
    change: dict[str, float] = {}
    for name, intensity in prototype.items():
        own = current.get(name, 0.0)
        change[name] = strength * max(intensity - own, 0.0)
    undo = PARTIAL_UNDO.get(canonical_expression(target), {})
    undone = {name: own for name, own in current.items() if name not in prototype and name in expressive}
    released_with = RELEASED_WITH.get(canonical_expression(target), {})
    for name, own in undone.items():
        change[name] = change.get(name, 0.0) - strength * own * undo.get(name, 1.0)
        released, share = released_with.get(name, ("", 0.0))
        if released:
            change[released] = change.get(released, 0.0) - strength * min(own * share, MAX_INTENSITY)
    # Relaxed in proportion to how much expression was undone, within the units' range (no clipping warning: the
    # caller asked for none of it).
    shown = min(max(undone.values(), default=0.0), 1.0)
    for name, amount in RELAXATION.get(canonical_expression(target), {}).items():
        change[name] = max(change.get(name, 0.0) - strength * amount * shown, -MAX_INTENSITY)
    for name, value in parse_action_units(extra).items():
        change[name] = change.get(name, 0.0) + value
    clipped = {name: value for name, value in change.items() if abs(value) > MAX_INTENSITY}
    if clipped:
        warnings.warn(
            f"The change toward {canonical_expression(target)!r} plus the given action units is beyond "
            f"[-{MAX_INTENSITY}, {MAX_INTENSITY}] for {', '.join(f'{k} ({v:+.2f})' for k, v in clipped.items())}; "
            "clipped to the range.",
            stacklevel=2,
        )
    change = {name: float(np.clip(value, -MAX_INTENSITY, MAX_INTENSITY)) for name, value in change.items()}
    return {name: value for name, value in change.items() if value != 0.0}
