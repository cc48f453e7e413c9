"""Checks of a model folder before anything is built from it: its configuration files and its weight formats.

A config value far outside what any model uses (a corrupt file, a typo, a hostile download) would otherwise make
diffusers allocate tens of gigabytes before failing with an unrelated error. :func:`check_model_folder` reads the JSON
files of a local folder, names the first missing component or out-of-range field, and allocates nothing.

Weights that exist only as pickles (``.bin``, ``.pt``, ``.ckpt`` ...) can run arbitrary code when loaded;
:func:`pickled_only_components` finds them so that loaders refuse them (:class:`UnsafeWeightsError`) unless asked.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_BOUNDS",
    "ModelConfigError",
    "UnsafeWeightsError",
    "check_model_folder",
    "check_model_reference",
    "pickled_only_components",
    "unsafe_weights_message",
]


class ModelConfigError(ValueError):
    """A model folder misses a component, or a config field is outside the range any model of this kind uses."""


class UnsafeWeightsError(OSError):
    """Raised when a model's weights exist only as pickles (``.bin``, ``.pt``, ``.ckpt`` ...), which can run arbitrary
    code when loaded, and loading them was not explicitly allowed (``use_safetensors=False``)."""


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


#: Per config file (relative to the model folder): field -> inclusive (low, high) bounds; a list field is checked
#: item by item. Generous: the largest published diffusers UNets (SDXL: 320-1280 channels, 1000 timesteps) fit. The
#: UNet works on pixel crops of eyes and mouths (64 px by default): 256 px is four times that, and 1024 px crops need
#: about 7.5 GB to edit one face with the bundled model's UNet.
CONFIG_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    "model_index.json": {
        "default_num_inference_steps": (1, 10_000),
        "default_strength": (0.0, 1.0),
        "default_guidance_scale": (0.0, 100.0),
        "feather": (0.0, 1.0),
    },
    "unet/config.json": {
        "block_out_channels": (1, 4096),
        "layers_per_block": (1, 16),
        "sample_size": (8, 256),
        "in_channels": (1, 16),
        "out_channels": (1, 16),
        "cross_attention_dim": (1, 8192),
        "attention_head_dim": (1, 4096),
        "norm_num_groups": (1, 4096),
        "num_class_embeds": (1, 10_000),
        "transformer_layers_per_block": (1, 16),
    },
    "scheduler/scheduler_config.json": {"num_train_timesteps": (1, 100_000)},
    "embeddings/config.json": {"embedding_dim": (1, 8192)},
}
# The most blocks (entries of block_out_channels) and labels a model of this kind has.
_MAX_BLOCKS = 8
_MAX_LABELS = 1000


def _read(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelConfigError(f"{path}: not a readable JSON config ({error}); copy the model again.") from error
    if not isinstance(config, dict):
        raise ModelConfigError(f"{path}: not a JSON object; copy the model again.")
    return config


def _check_value(where: Path, field: str, value: Any, low: float, high: float) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, (list, tuple)):  # per-block lists of lists (transformer_layers_per_block)
            _check_value(where, field, item, low, high)
            continue
        if item is None:
            continue
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            raise ModelConfigError(
                f"{where}: {field} = {value!r} is not a number (a {type(item).__name__}); the file is corrupt or "
                "edited by hand. Fix that field, or copy the model again."
            )
        if not math.isfinite(item) or not low <= item <= high:
            raise ModelConfigError(
                f"{where}: {field} = {value!r} is outside the range any model uses ([{low:g}, {high:g}]); the file "
                "is corrupt or edited by hand. Fix that field, or copy the model again."
            )


def check_model_reference(model: str | os.PathLike) -> None:
    """Refuse a model given as a local path that is no model folder: a file (``--model photo.png``), or a path that
    cannot be a Hub id (``./x``, ``/x``, ``~/x``, ``a/b/c``) and does not exist; the Hub's answers to those are about
    repository ids and caches.

    Raises:
        ModelConfigError: naming the path.
    """
    text = os.fspath(model)
    path = Path(text)
    if path.is_dir():
        return
    if path.exists():
        raise ModelConfigError(
            f"{text} is a file, not a model folder: pass the folder that holds model_index.json, or a Hub model id."
        )
    if os.path.isabs(text) or text.startswith((".", "~")) or text.count("/") > 1 or "\\" in text:
        raise ModelConfigError(f"{text}: no such model folder; check the path (a Hub model id is owner/name).")


def check_model_folder(folder: str | os.PathLike) -> None:
    """Check a local model folder before it is loaded: every component that ``model_index.json`` lists has its
    sub-folder and config file, and the fields of :data:`CONFIG_BOUNDS` are in range (block count and label count
    too). Reads only JSON files.

    Raises:
        ModelConfigError: naming the missing component or the file and field out of range.
    """
    folder = Path(folder)
    index = _read(folder / "model_index.json")
    for name, spec in index.items():
        # A component is ["library", "ClassName"]; other lists (regions ["eyes", "mouth"]) are settings.
        component_spec = isinstance(spec, list) and len(spec) == 2 and all(isinstance(x, str) for x in spec)
        if name.startswith("_") or not component_spec or not re.fullmatch(r"[A-Z]\w*", spec[1]):
            continue
        component = folder / name
        if not component.is_dir():
            raise ModelConfigError(
                f"{folder} has no {name}/ folder, but model_index.json lists the {name} component ({spec[1]}): the "
                "model is incomplete; copy or download the whole folder again."
            )
        if not any((component / config).is_file() for config in ("config.json", "scheduler_config.json")):
            raise ModelConfigError(f"{component} has no config.json: the {name} component is incomplete.")
    for relative, bounds in CONFIG_BOUNDS.items():
        path = folder / relative
        if not path.is_file():
            continue
        config = index if relative == "model_index.json" else _read(path)
        for field, (low, high) in bounds.items():
            if field in config:
                _check_value(path, field, config[field], low, high)
        blocks = config.get("block_out_channels")
        if isinstance(blocks, (list, tuple)) and not 1 <= len(blocks) <= _MAX_BLOCKS:
            raise ModelConfigError(
                f"{path}: block_out_channels has {len(blocks)} blocks; a UNet of this kind has 1 to {_MAX_BLOCKS}."
            )
        labels = config.get("labels")
        if isinstance(labels, (list, tuple)) and len(labels) > _MAX_LABELS:
            raise ModelConfigError(f"{path}: labels has {len(labels)} entries, more than {_MAX_LABELS}.")


def pickled_only_components(folder: str | os.PathLike, subfolder: str | None = None) -> list[str]:
    """The components of a local pipeline folder (or the model folder itself when it has no ``model_index.json``)
    whose weights exist only in a pickle format, as ``"<component>: <files>"``; empty for Hub ids and safe folders."""
    root = Path(folder) / (subfolder or "")
    if not root.is_dir():
        return []
    index = root / "model_index.json"
    try:
        names = [k for k, v in json.loads(index.read_text()).items() if isinstance(v, list) and v and v[0]]
    except (OSError, ValueError, AttributeError):
        names = []
    found = []
    for component in [root / name for name in names] if names else [root]:
        files = sorted(p.name for p in component.glob("*") if p.is_file()) if component.is_dir() else []
        pickles = [name for name in files if name.endswith(_PICKLE_SUFFIXES)]
        if pickles and not any(name.endswith(".safetensors") for name in files):
            found.append(f"{component.name}: {', '.join(pickles)}")
    return found


def unsafe_weights_message(location: str | os.PathLike, found: Sequence[str]) -> str:
    """What :class:`UnsafeWeightsError` says about ``location`` whose components ``found`` are pickles only."""
    return (
        f"{os.fspath(location)} has only pickled weights ({'; '.join(found)}). Pickles can run arbitrary code when "
        "loaded, so only safetensors are loaded by default. If you trust the source, pass use_safetensors=False "
        "(train_led.py: --allow_pickled_weights) once and re-save the model, which writes safetensors."
    )
