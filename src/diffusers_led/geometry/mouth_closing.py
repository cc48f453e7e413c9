"""Closing an open mouth: the landmark movement that brings the inner lips together, as the jaw rises.

An open mouth (a surprised face, a toothy laugh) edited toward an expression whose prototype parts no lips (neutral,
sad, angry, disgusted, contempt) must close: the lips meet and the inside of the mouth disappears behind them. The
jaw-drop unit (AU26) moves the lower lip by a fixed pattern and cannot reach every opening (an open laugh is wider
than a full unit), so the gap is read from the inner lip points and closed directly: the lower lip and the chin
rise with the jaw, the upper lip comes down a little, and the lips slide over the teeth (``warp.MouthInside``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..labels import canonical_expression
from .action_units import EXPRESSION_PROTOTYPES, inter_ocular

__all__ = ["MOUTH_OPENING_UNITS", "closes_mouth", "mouth_closing"]

#: Units that part the lips: a target with any of them keeps (or makes) an open mouth.
MOUTH_OPENING_UNITS = ("AU25", "AU26", "AU27")
#: Smiles may show teeth: a laughing face edited toward happy keeps its open mouth.
KEEPS_TEETH = ("happy",)
#: Inner lip points facing each other (upper, lower).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
#: A shut mouth's seam still reads as a small gap (inter-ocular distances); the lips close to it, not through it.
SEAM = 0.02
#: A gap smaller than this (inter-ocular distances) is already shut.
OPEN = 0.06
#: How much of the closing each point makes: the lower lip goes with the jaw, the upper lip comes down a little,
#: the chin rises with the jaw but less than the lip (the lower lip also rolls up over the teeth).
LOWER_SHARE = 0.75
UPPER_SHARE = 0.25
#: The outer lips and chin points and the share of the lower lip's rise they make.
LOWER_OUTER = {56: 1.0, 57: 1.0, 58: 1.0, 55: 0.6, 59: 0.6}
UPPER_OUTER = {50: 1.0, 51: 1.0, 52: 1.0, 49: 0.5, 53: 0.5}
CHIN = {7: 0.6, 8: 0.7, 9: 0.6, 6: 0.35, 10: 0.35, 5: 0.15, 11: 0.15}


def closes_mouth(target: str | None, extra: Mapping[str, float] | None = None) -> bool:
    """Whether an edit toward ``target`` (plus ``extra`` units) closes an open mouth: the target's prototype and the
    extra units part no lips, and the target is not a smile (smiles may show teeth)."""
    if target is None:
        return False
    name = canonical_expression(target)
    units = {**EXPRESSION_PROTOTYPES[name], **{k: v for k, v in (extra or {}).items() if v > 0}}
    return name not in KEEPS_TEETH and not any(unit in units for unit in MOUTH_OPENING_UNITS)


def mouth_closing(aligned: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """The ``(68, 2)`` displacement (px of ``aligned``, the aligned face: y down) that closes the inner lips of
    ``aligned`` to a seam at ``strength`` (zeros for a mouth already shut)."""
    aligned = np.asarray(aligned, dtype=np.float64)
    iod = inter_ocular(aligned)
    gaps = np.array([aligned[lower, 1] - aligned[upper, 1] for upper, lower in INNER_LIP_PAIRS])
    displacement = np.zeros_like(aligned)
    if gaps.mean() < OPEN * iod:
        return displacement
    closing = strength * np.maximum(gaps - SEAM * iod, 0.0)
    for (upper, lower), gap in zip(INNER_LIP_PAIRS, closing):
        displacement[lower, 1] -= LOWER_SHARE * gap
        displacement[upper, 1] += UPPER_SHARE * gap
    mean = closing.mean()
    for point, share in LOWER_OUTER.items():
        displacement[point, 1] -= share * LOWER_SHARE * mean
    for point, share in UPPER_OUTER.items():
        displacement[point, 1] += share * UPPER_SHARE * mean
    for point, share in CHIN.items():
        displacement[point, 1] -= share * LOWER_SHARE * mean
    return displacement
