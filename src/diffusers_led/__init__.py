"""diffusers-led: local facial expression editing with diffusion, as a Hugging Face diffusers pipeline.

The names below are imported on first use (like diffusers' own lazy modules): ``import diffusers_led`` alone does
not import torch, so the command-line tools start at once and can report a bad argument or a Ctrl-C cleanly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .utils import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "EXPRESSIONS": ".labels",
    "canonical_expression": ".labels",
    "ExpressionEmbeddings": ".expressions",
    "UntrainedExpressionError": ".expressions",
    "ImageLoadError": ".image_processor",
    "LocalExpressionPipeline": ".pipeline_led",
    "LocalExpressionPipelineOutput": ".pipeline_led",
    "NoFaceDetectedError": ".pipeline_led",
}

__all__ = [
    "EXPRESSIONS",
    "ExpressionEmbeddings",
    "ImageLoadError",
    "LocalExpressionPipeline",
    "LocalExpressionPipelineOutput",
    "NoFaceDetectedError",
    "UntrainedExpressionError",
    "canonical_expression",
]

if TYPE_CHECKING:
    from .expressions import ExpressionEmbeddings, UntrainedExpressionError
    from .image_processor import ImageLoadError
    from .labels import EXPRESSIONS, canonical_expression
    from .pipeline_led import LocalExpressionPipeline, LocalExpressionPipelineOutput, NoFaceDetectedError

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
