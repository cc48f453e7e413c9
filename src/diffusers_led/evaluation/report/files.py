"""Which files a report may replace: led-evaluate's own record of what it wrote in an output folder (the record
led-prepare-data keeps, under its own name), and the check, before any work, that a report replaces no other file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from ...data.writer import OutputFolderError, WrittenFiles
from ...serialization import atomic_write

#: The files of every report; besides them, one ``contact_<target>.png`` per target.
REPORT_FILES = (
    "report.json",
    "report.md",
    "edits.csv",
    "expression_vs_strength.png",
    "identity_vs_strength.png",
    "seams_vs_strength.png",
    "samples.png",
)


class ReportFiles(WrittenFiles):
    """The files led-evaluate wrote in an output folder (the record led-prepare-data keeps, under its own name)."""

    writer = "led-evaluate"
    record_name = ".led-evaluate-written"
    folder_option = "--out"

    def files_before_record(self) -> set[str]:
        """A report from before the record: ``report.json`` and the files it lists."""
        try:
            report = json.loads((self.output_dir / "report.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        if not (isinstance(report, dict) and isinstance(report.get("files"), dict) and "results" in report):
            return set()
        listed = {name for name in report["files"].values() if isinstance(name, str) and "/" not in name}
        return {"report.json", *listed}

    def write(self, name: str, write: Callable[[BinaryIO], object]) -> None:
        """Record ``name`` as led-evaluate's, then write it atomically with ``write(stream)``.

        Raises:
            OutputFolderError: ``name`` exists and led-evaluate did not write it.
        """
        self.claim([name])
        atomic_write(self.output_dir / name, write)


def report_file_names(targets: Iterable[str]) -> list[str]:
    """The names of the files a report on ``targets`` may write in its folder."""
    return [*REPORT_FILES, *(f"contact_{target}.png" for target in targets)]


def check_report_folder(
    out_dir: os.PathLike, targets: Iterable[str], overwrite: bool, inputs: Iterable[os.PathLike] = ()
) -> None:
    """Refuse, before any work, a report that would replace a file led-evaluate did not write, one of its own
    without ``overwrite``, or one of the ``inputs`` (photos read by this run) in any case.

    Raises:
        OutputFolderError: with the file and what to do.
    """
    out_dir = Path(out_dir)
    inputs = {Path(path).resolve() for path in inputs}
    written = ReportFiles(out_dir)
    for name in report_file_names(targets):
        path = out_dir / name
        if path.resolve() in inputs:
            raise OutputFolderError(
                f"{path} is an input photo of this run and would be replaced; choose another --out."
            )
        if not (path.exists() or path.is_symlink()):
            continue
        if not written.owns(name):
            raise OutputFolderError(
                f"{path} was not written by led-evaluate and would be replaced: move it away, or choose another --out."
            )
        if not overwrite:
            raise OutputFolderError(
                f"{path} exists (an earlier report); pass --overwrite to replace the files led-evaluate wrote, or "
                "choose another --out."
            )
