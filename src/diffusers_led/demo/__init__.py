"""``led-demo``: a local Gradio app to try LocalExpressionPipeline on a photo (:mod:`.app`, ``led-demo`` and
``python -m diffusers_led.demo``), and its edit logic without Gradio (:mod:`.editor`)."""

from .app import main
from .editor import DemoInputError, ExpressionEditor

__all__ = ["DemoInputError", "ExpressionEditor", "main"]
