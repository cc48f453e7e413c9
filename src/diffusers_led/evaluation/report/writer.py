"""Writing a report's files: ``report.json``, ``report.md``, ``edits.csv``, the plots and contact sheets."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...serialization import write_text_atomically
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
    """Write everything into ``out_dir``; returns ``{kind: file name}``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {"json": "report.json", "markdown": "report.md", "edits": "edits.csv"}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        report.setdefault("notes", []).append("matplotlib is not installed (pip install matplotlib): no plots.")
    else:
        _write_plots(out_dir, report, files, thumbs, input_thumbs, sample_names)
    report["contact_sheets"] = write_contact_sheets(out_dir, report, thumbs, input_thumbs, sample_names)
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
    temporary = out_dir / ".edits.csv.tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in edits:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    os.replace(temporary, out_dir / "edits.csv")

    report["files"] = dict(files)
    write_text_atomically(out_dir / "report.json", json.dumps(report, indent=2, allow_nan=False))
    write_text_atomically(out_dir / "report.md", render_markdown(report, files))
    return {k: str(out_dir / v) for k, v in files.items()}
