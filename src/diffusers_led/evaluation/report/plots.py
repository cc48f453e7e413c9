"""The report's PNG plots: expression, identity and seams against strength per mode, and the samples grid."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .files import ReportFiles

SAMPLE_PHOTOS = 2  # photos in the samples.png grid (the contact sheets show every face)

MODE_STYLES = {
    "diffusion": ("tab:blue", "o"),
    "hard": ("tab:red", "s"),
    "paper": ("tab:purple", "D"),
    "ddpm_blend": ("tab:green", "^"),
}


def _plot_vs_strength(
    written: ReportFiles, name: str, report: dict[str, Any], panels: Sequence[tuple[Any, ...]]
) -> None:
    """One panel per ``(title, ylabel, getter(entry) -> y, (label, y) baseline or None, (ymin, ymax) or None)``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    modes = list(dict.fromkeys(e["mode"] for e in report["results"]))
    for ax, (title, ylabel, getter, baseline, ylim) in zip(axes[0], panels):
        for mode in modes:
            entries = sorted((e for e in report["results"] if e["mode"] == mode), key=lambda e: e["strength"])
            xs = [e["strength"] for e in entries]
            ys = [getter(e) for e in entries]
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if not pts:
                continue
            color, marker = MODE_STYLES.get(mode, ("black", "x"))
            ax.plot(*zip(*pts), marker=marker, color=color, label=mode)
        if baseline is not None:
            ax.axhline(baseline[1], color="gray", linestyle="--", label=baseline[0])
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlabel("strength (t_i / T)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    written.write(name, lambda stream: fig.savefig(stream, format="png", dpi=110))
    plt.close(fig)


def _plot_samples(
    written: ReportFiles,
    name: str,
    report: dict[str, Any],
    thumbs: dict,
    input_thumbs: list[np.ndarray],
    names: list[str],
) -> bool:
    if not input_thumbs or not thumbs:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    targets = report["settings"]["targets"]
    rows = []  # (photo index, mode, strength)
    for index in range(len(input_thumbs)):
        for mode, strengths in report["settings"]["strengths"].items():
            for strength in strengths:
                if any((mode, strength, index, t) in thumbs for t in targets):
                    rows.append((index, mode, strength))
    if not rows:
        return False
    cols = 1 + len(targets)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.25 * cols, 1.35 * len(rows)), squeeze=False)
    for r, (index, mode, strength) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.imshow(input_thumbs[index])
                ax.set_ylabel(f"{mode}\ns={strength:g}", fontsize=7)
                if r == 0 or rows[r - 1][0] != index:
                    ax.set_title(f"input\n{os.path.basename(names[index])[:18]}", fontsize=6)
                continue
            image = thumbs.get((mode, strength, index, targets[c - 1]))
            if image is not None:
                ax.imshow(image)
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title(targets[c - 1], fontsize=7)
    fig.tight_layout(pad=0.2)
    written.write(name, lambda stream: fig.savefig(stream, format="png", dpi=100))
    plt.close(fig)
    return True


def _write_plots(
    written: ReportFiles,
    report: dict[str, Any],
    files: dict[str, str],
    thumbs: dict,
    input_thumbs: list[np.ndarray],
    sample_names: list[str],
) -> None:
    base = report["baseline"]
    _plot_vs_strength(
        written,
        "expression_vs_strength.png",
        report,
        [
            (
                "Target probability",
                "mean p(target)",
                lambda e: e["expression"]["p_target"],
                ("unedited", base["expression"]["p_target"]) if base["expression"]["p_target"] is not None else None,
                (-0.02, 1.02),
            ),
            (
                "Top-1 hit rate",
                "hit rate",
                lambda e: e["expression"]["hit_rate"],
                ("unedited", base["expression"]["hit_rate"]) if base["expression"]["hit_rate"] is not None else None,
                (-0.02, 1.02),
            ),
        ],
    )
    files["expression_plot"] = "expression_vs_strength.png"
    _plot_vs_strength(
        written,
        "identity_vs_strength.png",
        report,
        [
            (
                "Identity distance (input vs output)",
                "mean dlib distance",
                lambda e: e["identity"]["distance_mean"],
                ("same-person threshold", 0.6),
                (0.0, None),
            ),
            (
                "Same person",
                "rate of distance < 0.6",
                lambda e: e["identity"]["same_identity_rate"],
                None,
                (-0.02, 1.02),
            ),
        ],
    )
    files["identity_plot"] = "identity_vs_strength.png"
    _plot_vs_strength(
        written,
        "seams_vs_strength.png",
        report,
        [("Seam score", "border gradient of the change / texture", lambda e: e["seams"]["score"], None, (0.0, None))],
    )
    files["seams_plot"] = "seams_vs_strength.png"
    if _plot_samples(written, "samples.png", report, thumbs, input_thumbs[:SAMPLE_PHOTOS], sample_names):
        files["samples"] = "samples.png"
