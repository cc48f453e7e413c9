"""Evaluation of LocalExpressionPipeline: the paper's metrics (expression IS, per-region FID) and the ones it should
have used (independent expression classifier, identity, preservation, seams, KID), with baselines.

``evaluate(model, data, out_dir, ...)`` is the entry point (``led-evaluate`` on the command line). Its stages, one
module each: the inputs (:mod:`.inputs`), the modes compared (:mod:`.modes`: the pipeline's own and variants of the
diffusion mode), the plan cut to a time budget (:mod:`.planning`), the edits and their measures (:mod:`.runner`), the
judges (classifier, identity and Inception networks, :mod:`.judges`), realism (:mod:`.realism`) and the report
(:mod:`.report`). The metric functions are plain numpy in :mod:`.metrics`.

The names below are imported on first use, so ``diffusers_led.evaluation.modes`` is read without torch.
"""

from __future__ import annotations

from ..utils import lazy_exports

_EXPORTS = {
    "DEFAULT_MODES": ".modes",
    "DEFAULT_STRENGTHS": ".modes",
    "MODES": ".modes",
    "ModeSpec": ".modes",
    "default_modes": ".modes",
    "EvaluationResult": ".runner",
    "evaluate": ".runner",
    **{
        name: ".metrics"
        for name in (
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
        )
    },
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
