"""The default model shipped inside the package, laid out exactly as a Hub repo."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_NAME = "led-default"
#: The environment variable that names the model of led-demo and the examples when none is given.
MODEL_ENV_VAR = "LED_MODEL"


def default_model_path() -> str:
    """The local folder of the bundled default model (loadable with ``LocalExpressionPipeline.from_pretrained``)."""
    path = Path(__file__).parent / DEFAULT_MODEL_NAME
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"The bundled default model is missing from {path}; reinstall diffusers-led or pass --model."
        )
    return str(path)


def resolve_model(model: str | os.PathLike | None = None, use_env: bool = False) -> str:
    """The model to load: ``model`` (a folder or Hub id) when given, else (with ``use_env``, as led-demo and the
    examples do) ``$LED_MODEL`` when set, else the bundled default model (:func:`default_model_path`).

    Raises:
        FileNotFoundError: the bundled model is needed and missing.
    """
    if model:
        return os.fspath(model)
    if use_env and os.environ.get(MODEL_ENV_VAR):
        return os.environ[MODEL_ENV_VAR]
    return default_model_path()
