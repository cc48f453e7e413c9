"""Evaluation of LocalExpressionPipeline: the paper's metrics (expression IS, per-region FID) and the ones it should
have used (independent expression classifier, identity, preservation, seams, KID), with baselines.

``evaluate(model, data, out_dir, ...)`` is the entry point (``led-evaluate`` on the command line); the metric
functions are plain numpy in :mod:`.metrics`; the judges (classifier, identity and Inception networks) live in
:mod:`.judges`.
"""

from .metrics import (
    expression_inception_score,
    frechet_distance,
    frechet_distance_sqrtm,
    identity_distances,
    kernel_inception_distance,
    lab_change,
    preservation,
    psnr,
    relative_gain,
    seam_score,
)
from .runner import DEFAULT_MODES, DEFAULT_STRENGTHS, MODES, EvaluationResult, ModeSpec, evaluate

__all__ = [
    "DEFAULT_MODES",
    "DEFAULT_STRENGTHS",
    "MODES",
    "EvaluationResult",
    "ModeSpec",
    "evaluate",
    "expression_inception_score",
    "frechet_distance",
    "frechet_distance_sqrtm",
    "identity_distances",
    "kernel_inception_distance",
    "lab_change",
    "preservation",
    "psnr",
    "relative_gain",
    "seam_score",
]
