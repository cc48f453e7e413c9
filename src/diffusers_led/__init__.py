"""diffusers-led: local facial expression editing with diffusion, as a Hugging Face diffusers pipeline."""

from .expressions import EXPRESSIONS, ExpressionEmbeddings, UntrainedExpressionError, canonical_expression
from .image_processor import ImageLoadError
from .pipeline_led import LocalExpressionPipeline, LocalExpressionPipelineOutput, NoFaceDetectedError


__version__ = "0.1.0"

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
