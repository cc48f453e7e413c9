"""Writing a report's files: ``report.json``, ``report.md``, ``edits.csv``, the plots and contact sheets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import ReportFiles
from .markdown import render_markdown
from .plots import _write_plots
from .sheets import write_contact_sheets


def write_report(
    out_dir: Path,
    report: dict[str, Any],
    edits: Sequence[dict[str, Any]],
    thumbs: dict,
    input_thumbs: list[np.ndarray],
    sample_names: list[str],
) -> dict[str, str]:
    """Write everything into ``out_dir``; returns ``{kind: file name}``. A file there that led-evaluate did not
    write is never replaced (:class:`ReportFiles`): :func:`check_report_folder` refuses such a folder up front."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = ReportFiles(out_dir)
    files: dict[str, str] = {"json": "report.json", "markdown": "report.md", "edits": "edits.csv"}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        report.setdefault("notes", []).append("matplotlib is not installed (pip install matplotlib): no plots.")
    else:
        _write_plots(written, report, files, thumbs, input_thumbs, sample_names)
    report["contact_sheets"] = write_contact_sheets(written, report, thumbs, input_thumbs, sample_names)
    for target, name in (report["contact_sheets"].get("files") or {}).items():
        files[f"contact_{target}"] = name

    columns = [
        "mode",
        "strength",
        "start_timestep",
        "photo",
        "subject",
        "source_expression",
        "target",
        "p_target",
        "p_before",
        "relative_gain",
        "predicted",
        "predicted_before",
        "hit",
        "id_distance",
        "id_cosine",
        "same_identity",
        "max_abs_outside",
        "mean_abs_outside",
        "psnr_face",
        "seam_score",
        "seam_border_change",
        "warp_kept",
    ]
    columns += sorted({k for row in edits for k in row if k.startswith(("dL_", "dab_"))})
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in edits:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    written.write("edits.csv", lambda stream: stream.write(table.getvalue().encode("utf-8")))

    report["files"] = dict(files)
    report_json = json.dumps(report, indent=2, allow_nan=False)
    written.write("report.json", lambda stream: stream.write(report_json.encode("utf-8")))
    markdown = render_markdown(report, files)
    written.write("report.md", lambda stream: stream.write(markdown.encode("utf-8")))
    return {k: str(out_dir / v) for k, v in files.items()}
