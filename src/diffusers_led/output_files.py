"""Where led-edit's results go: output file names and formats, the checks made before an edit (nothing replaced
without ``--overwrite``, no two inputs onto one output, names and paths the system accepts) and atomic saves."""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .commands import CLIError
from .serialization import NAME_MAX, atomic_write
from .utils import IMAGE_EXTENSIONS
from .video.formats import is_video_path

#: Output extensions led-edit writes (Pillow format names). GIF keeps only 256 colours, so it is refused.
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".avif": "AVIF",
}


def collect_images(inputs: Sequence[str]) -> list[Path]:
    """Expand files and folders (non-recursive) into a sorted list of image paths. Hidden files in folders (macOS
    ``._photo.png`` resource forks, our own ``.tmp`` files) are not photos and are left out; other files whose
    extension is not one of :data:`IMAGE_EXTENSIONS` are left out with one line each on stderr."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if not p.name.startswith(".") and p.is_file())
            for other in [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS and not is_video_path(p)]:
                print(
                    f"led-edit: skipped {other}: not an image type led-edit reads ({', '.join(IMAGE_EXTENSIONS)}).",
                    file=sys.stderr,
                )
            paths.extend(p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            paths.append(path)
        elif path.exists():
            raise CLIError(f"{item}: not an image file (a device, pipe or socket); pass image files or folders.")
        else:
            raise CLIError(f"{item}: no such file or folder.")
    paths = list({os.path.realpath(p): p for p in reversed(paths)}.values())[::-1]  # each file once, first place
    if not paths:
        raise CLIError(f"no images found in {', '.join(inputs)} (looked for {', '.join(IMAGE_EXTENSIONS)}).")
    return paths


def output_format(destination: Path) -> str:
    """The Pillow format that ``destination``'s extension asks for.

    Raises:
        CLIError: an extension led-edit does not write (GIF, AVIF without Pillow's AVIF support, PDF, none ...).
    """
    suffix = destination.suffix.lower()
    image_format = OUTPUT_FORMATS.get(suffix)
    if image_format is not None and _pil_can_write(image_format):
        return image_format
    if suffix == ".gif":
        reason = "GIF keeps only 256 colours"
    elif image_format is not None:
        reason = f"this Pillow cannot write {image_format}"
    else:
        reason = f"cannot write {suffix or 'extension-less'} files"
    writable = ", ".join(s for s, f in OUTPUT_FORMATS.items() if _pil_can_write(f))
    raise CLIError(f"{destination}: {reason}; use one of {writable} (.png keeps every pixel).")


def _pil_can_write(image_format: str) -> bool:
    from PIL import Image, features

    if image_format == "AVIF" and not features.check("avif"):
        return False
    Image.init()
    return image_format in Image.SAVE


def _exists_error(destination: Path) -> CLIError:
    return CLIError(f"{destination} exists; pass --overwrite to replace it.")


def atomic_save(image, destination: Path, overwrite: bool, **save_options) -> None:
    """Save a PIL image to ``destination`` through a hidden temporary file in the same folder, synced to disk, then
    an atomic rename: a crash or a kill never leaves a partial image under the final name, and an existing file is
    either the old one or the new one. Without ``overwrite`` an existing file (or symbolic link) is never replaced,
    even by a writer that creates it at the same moment. ``save_options`` go to ``PIL.Image.Image.save``."""
    if os.path.lexists(destination) and not overwrite:
        raise _exists_error(destination)
    image_format = output_format(destination)
    if image_format == "JPEG" and image.mode in ("RGBA", "LA"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(
            destination, lambda stream: image.save(stream, format=image_format, **save_options), overwrite=overwrite
        )
    except FileExistsError:
        raise _exists_error(destination) from None


def _looks_like_image_file(output: str) -> bool:
    from PIL import Image

    suffix = Path(output).suffix.lower()
    return suffix in OUTPUT_FORMATS or suffix in IMAGE_EXTENSIONS or suffix in Image.registered_extensions()


def output_paths(paths: Sequence[Path], output: str | None, target: str, single_file: bool) -> list[Path]:
    """Where each edited image goes: ``-o`` itself for one input file, else ``<stem>_<target>.png`` in ``-o`` (a
    folder, default: beside each input). Inputs that would share a name (``a.png`` and ``a.jpg``) keep their
    extension in it: ``a_png_<target>.png``, ``a_jpg_<target>.png``.

    Raises:
        CLIError: ``-o`` names an image file but several images are edited, or an extension led-edit cannot write,
            or two inputs would still share an output name (e.g. ``x/a.png`` and ``y/a.png`` with one ``-o``).
    """
    if output and _looks_like_image_file(output):
        if not single_file:
            raise CLIError(f"-o {output} names one image file, but {len(paths)} images are edited: give a folder.")
        output_format(Path(output))
        return [Path(output)]
    if output:
        _check_output_folder(output)
    suffix = f"_{target.replace(' ', '-')}"

    def name(path: Path, with_extension: bool) -> Path:
        folder = Path(output) if output else path.parent
        extension = f"_{path.suffix[1:]}" if with_extension and path.suffix else ""
        return folder / f"{path.stem}{extension}{suffix}.png"

    plain = Counter(name(p, False) for p in paths)
    destinations = [name(p, plain[name(p, False)] > 1) for p in paths]
    refuse_shared_names(paths, destinations)
    return destinations


def _check_output_folder(output: str) -> None:
    """Refuse an ``-o`` taken for a folder that is an existing file, or a new name that looks like a file name
    (``x.xyz``, ``.png``): a folder made of it would hide the mistake. A trailing slash asks for the folder."""
    folder = Path(output)
    # os.path's tests, not Path's: they say False for a path too long to look up (refused by check_destinations).
    if os.path.isdir(output) or output.endswith(("/", os.sep)):
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise CLIError(f"-o {output}: {folder} is a file, not a folder.")
        return
    if os.path.exists(output):
        raise CLIError(
            f"-o {output} is an existing file, not a folder: give an image file name with its extension (.png keeps "
            "every pixel) or a folder."
        )
    hidden_extension = folder.name.lower() in OUTPUT_FORMATS or folder.name.lower() in IMAGE_EXTENSIONS
    if hidden_extension or re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{0,4}", folder.suffix):
        writable = ", ".join(s for s, f in OUTPUT_FORMATS.items() if _pil_can_write(f))
        what = "has no name before its extension" if hidden_extension else f"cannot be written as {folder.suffix}"
        raise CLIError(
            f"-o {output} {what}: use one of {writable} for an image file, or end -o with '/' for a new folder of "
            "that name."
        )


def refuse_shared_names(paths: Sequence[Path], destinations: Sequence[Path]) -> None:
    """Refuse inputs that would be written to one output (``x/a.png`` and ``y/a.png`` into one ``-o`` folder)."""
    groups: dict[Path, list[Path]] = {}
    for path, destination in zip(paths, destinations):
        groups.setdefault(destination, []).append(path)
    shared = {d: group for d, group in groups.items() if len(group) > 1}
    if shared:
        listed = "; ".join(f"{', '.join(map(str, group))} -> {d}" for d, group in list(shared.items())[:5])
        raise CLIError(
            f"{sum(map(len, shared.values()))} inputs would be written to the same output ({listed}); edit them in "
            "separate runs with different -o folders, or rename them."
        )


def regions_path(destination: Path) -> Path:
    """Where ``--show-regions`` writes the picture of the detected faces of the output ``destination``."""
    return destination.with_name(destination.stem + "_regions.png")


def check_destinations(
    paths: Sequence[Path], destinations: Sequence[Path], overwrite: bool, show_regions: bool = False
) -> None:
    """Refuse, before anything is edited, outputs that could not be written or would lose a file: a name longer than
    :data:`NAME_MAX` bytes, two outputs with one name, an output that is one of the inputs, and (without
    ``overwrite``) an existing file or symbolic link.

    Raises:
        CLIError: naming the first such output (and how many more).
    """
    files = list(destinations) + ([regions_path(d) for d in destinations] if show_regions else [])
    too_long = [f for f in files if len(os.fsencode(f.name)) > NAME_MAX]
    if too_long:
        raise CLIError(
            f"{too_long[0]}: the file name is {len(os.fsencode(too_long[0].name))} bytes, above the {NAME_MAX}-byte "
            "limit of file systems; use a shorter -o (or rename the input)."
        )
    for file in files:
        folder = next((part for part in file.parent.parts if len(os.fsencode(part)) > NAME_MAX), None)
        if folder is not None:
            raise CLIError(
                f"-o: the folder name {folder[:40]}... is {len(os.fsencode(folder))} bytes, above the {NAME_MAX}-byte "
                "limit of file systems; use a shorter -o."
            )
        if len(os.fsencode(os.path.abspath(file))) >= _path_max():
            shown = str(file) if len(str(file)) < 80 else f"{str(file)[:40]}...{str(file)[-30:]}"
            raise CLIError(
                f"{shown}: the path is {len(os.fsencode(os.path.abspath(file)))} bytes, above the "
                f"{_path_max() - 1}-byte limit of this system; use a shorter -o."
            )
    counts = Counter(os.path.abspath(f) for f in files)
    shared = [f for f in files if counts[os.path.abspath(f)] > 1]
    if shared:
        raise CLIError(
            f"{shared[0]} would be written twice (an output and a --show-regions picture); rename the input."
        )
    inputs = {os.path.realpath(p) for p in paths}
    replaced = [f for f in files if os.path.realpath(f) in inputs]
    if replaced:
        raise CLIError(f"{replaced[0]} is one of the inputs and would be replaced by an edit; choose another -o.")
    existing = [f for f in files if os.path.lexists(f)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CLIError(f"{existing[0]} exists{more}; pass --overwrite to replace.")


def _path_max() -> int:
    """The longest path this system opens, in bytes with the final NUL (4096 on Linux, 1024 on macOS)."""
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows) or no such limit
        return 4096


def warn_if_lossy(paths: Sequence[Path], destinations: Sequence[Path]) -> bool:
    """Print one warning when an output is written in a lossy format (JPEG, AVIF) although its input is lossless;
    returns whether it did."""
    from .image_processor import is_lossy_output

    lossless_inputs = (".png", ".bmp", ".tif", ".tiff")
    for path, destination in zip(paths, destinations):
        image_format = output_format(destination)
        if path.suffix.lower() in lossless_inputs and is_lossy_output(image_format, lossy_source=False):
            print(
                f"led-edit: warning: {destination.suffix} ({image_format}) is lossy: the pixels outside the edited "
                "regions will differ slightly from the input; use .png, .tif or .webp to keep them bit-identical.",
                file=sys.stderr,
            )
            return True
    return False
