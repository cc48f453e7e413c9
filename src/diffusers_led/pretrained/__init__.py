"""The default model shipped inside the package, laid out exactly as a Hub repo."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_NAME = "led-default"


def default_model_path() -> str:
    """The local folder of the bundled default model (loadable with ``LocalExpressionPipeline.from_pretrained``)."""
    path = Path(__file__).parent / DEFAULT_MODEL_NAME
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"The bundled default model is missing from {path}; reinstall diffusers-led or pass --model."
        )
    return str(path)
