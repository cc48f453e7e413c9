"""diffusers-led: local facial expression editing with diffusion, as a Hugging Face diffusers pipeline.

The names below are imported on first use (like diffusers' own lazy modules): ``import diffusers_led`` alone does
not import torch, so the command-line tools start at once and can report a bad argument or a Ctrl-C cleanly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted([*globals(), *_EXPORTS])
