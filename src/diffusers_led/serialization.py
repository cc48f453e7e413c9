"""Writing files and folders so that a crash or a kill never leaves a torn one under the final name.

Two patterns, used by the pipeline's ``save_pretrained``, ``train_led.py``'s checkpoints, the text-encoder installer,
the dataset preparation, ``led-edit`` and the asset scripts:

* a **file** is written to a temporary name beside it, synced, then renamed over the final name
  (:func:`atomic_write`, :func:`write_text_atomically`);
* a **folder** is built in a staging folder beside it (:func:`staging_folder`) and moved into place when complete,
  merged file by file into an existing folder (:func:`commit_folder`) or replacing it as a whole
  (:func:`replace_folder`).

A rename is atomic only within one file system, so every temporary name is in the destination's own folder. Standard
library only (the install script runs it without torch).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "NAME_MAX",
    "atomic_write",
    "append_text",
    "commit_folder",
    "fsync_tree",
    "process_alive",
    "remove_stale_shards",
    "replace_folder",
    "staging_folder",
    "temporary_path",
    "write_text_atomically",
]

#: The longest file name (in bytes) that common file systems (ext4, APFS, NTFS, ...) allow.
NAME_MAX = 255
_TEMPORARY_EXTRA = len("..12345678.tmp")
_SHARD = re.compile(r"^(?P<prefix>.+?)(?P<shard>-\d{5}-of-\d{5})?\.(?:safetensors|bin)$")


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (owned by anyone): a staging folder named after a dead process is
    left over from a killed run."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def fsync_tree(folder: Path) -> None:
    """Sync every file below ``folder`` to disk (before the folder is renamed into place)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())


def temporary_path(destination: Path) -> Path:
    """A hidden, unique temporary name beside ``destination`` (``.<name>.<random>.tmp``, never taken for an input
    image) that stays within :data:`NAME_MAX` bytes: a long name is shortened."""
    name = os.fsdecode(os.fsencode(destination.name)[: NAME_MAX - _TEMPORARY_EXTRA])
    return destination.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp")


def _move_into_place(temporary: Path, destination: Path, overwrite: bool) -> None:
    """Rename ``temporary`` to ``destination``; without ``overwrite`` atomically only if no file (nor a symbolic
    link, even a dangling one) has that name, so of two writers at once exactly one succeeds."""
    if overwrite:
        os.replace(temporary, destination)
        return
    try:
        os.link(temporary, destination)  # fails if the name exists, whatever it is; never follows a link
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "exists", os.fspath(destination)) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        # A file system without hard links (FAT, some network shares): reserve the name, then replace it.
        os.close(os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # FileExistsError if taken
        os.replace(temporary, destination)
    else:
        os.remove(temporary)


def atomic_write(
    destination: str | os.PathLike,
    write: Callable[[BinaryIO], object],
    *,
    overwrite: bool = True,
    temporary: Path | None = None,
    sync: bool = True,
) -> None:
    """Call ``write(stream)`` on a new temporary file beside ``destination``, sync it to disk (unless ``sync`` is
    off) and rename it to ``destination``: a crash or a kill never leaves a partial file under the final name, and an
    existing file is either the old one or the new one. The temporary file gets the permissions the umask gives any
    new file (not ``mkstemp``'s 0o600) and is removed if anything fails.

    Args:
        overwrite: without it, an existing file (or symbolic link) is never replaced, even by a writer that creates
            it at the same moment: ``FileExistsError``.
        temporary: the temporary name (default :func:`temporary_path`, unique); callers whose folders know a
            ``<name>.tmp`` as theirs pass that.
    """
    destination = Path(destination)
    # A unique name is created exclusively; a fixed `<name>.tmp` may be left by a killed writer and is overwritten.
    exclusive = temporary is None
    temporary = temporary_path(destination) if temporary is None else temporary
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        with os.fdopen(os.open(temporary, flags, 0o666), "wb") as stream:
            write(stream)
            if sync:
                stream.flush()
                os.fsync(stream.fileno())
        _move_into_place(temporary, destination, overwrite)
    except BaseException:
        if os.path.lexists(temporary):
            os.remove(temporary)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through ``<name>.tmp`` beside it and an atomic rename: a crash leaves the
    old file or the new one, never a torn one."""
    path = Path(path)
    atomic_write(path, lambda stream: stream.write(text.encode("utf-8")), temporary=path.with_name(path.name + ".tmp"))


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` in one write and sync it to disk (a log that must survive a kill)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def staging_folder(final: str | os.PathLike, kind: str = "tmp") -> Iterator[Path]:
    """A new, empty folder beside ``final`` (``.<name>.<kind>-<pid>-<random>``) to build a folder in, removed with
    whatever is left in it on exit. Staging folders of the same ``final`` and ``kind`` left by killed processes (their
    process id no longer runs) are removed first. Created with ``mkdir``, not ``mkdtemp``: it may become ``final``
    and must get the usual permissions."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}.{kind}-"
    for stale in final.parent.iterdir():
        owner = stale.name[len(prefix) :].split("-")[0] if stale.name.startswith(prefix) else ""
        if owner.isdigit() and not process_alive(int(owner)) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    staging = final.parent / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def commit_folder(staging: Path, final: Path, last: Iterable[str] = (), sync: bool = True) -> list[Path]:
    """Move a complete folder from ``staging`` to ``final``. A new or empty ``final`` is replaced by one rename; an
    existing one gets each new file by an atomic ``os.replace`` (the file names in ``last`` after the others: the
    file that makes a folder loadable) and keeps its other files. Returns the files written into ``final``.

    Raises:
        NotADirectoryError: ``final`` exists and is not a folder.
    """
    if sync:
        fsync_tree(staging)
    if final.is_dir() and not any(final.iterdir()):
        final.rmdir()
    if not final.exists():
        os.replace(staging, final)
        return [path for path in final.rglob("*") if path.is_file()]
    if not final.is_dir():
        raise NotADirectoryError(f"{final} exists and is not a folder; choose another folder.")
    last = set(last)
    files = sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: (p.name in last, str(p)))
    written = []
    for path in files:
        target = final / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        written.append(target)
    return written


def remove_stale_shards(written: Iterable[Path]) -> None:
    """After :func:`commit_folder` merged a save into an existing folder: remove the weight shards
    (``<name>-00001-of-00003.safetensors``) of an earlier save under the same name that the new save does not have,
    as diffusers does, so a loader never mixes shards of two saves."""
    by_folder: dict[Path, set[str]] = {}
    for path in written:
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        prefixes = {match["prefix"] for match in map(_SHARD.match, names) if match}
        for old in folder.iterdir():
            match = _SHARD.match(old.name)
            if match and match["shard"] and match["prefix"] in prefixes and old.name not in names and old.is_file():
                old.unlink()


def replace_folder(staged: Path, final: Path) -> None:
    """Put the complete folder ``staged`` in the place of ``final`` (absent or a folder, replaced as a whole): the
    old folder is moved aside, the new one renamed into place, then the old one deleted. If the rename fails the old
    folder is put back when its place is still free, and the error is raised."""
    aside = None
    if final.exists():
        aside = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.replace(final, aside)
    try:
        os.replace(staged, final)
    except OSError:
        if aside is not None and not final.exists():
            os.replace(aside, final)
            aside = None
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
