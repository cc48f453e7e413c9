"""Stage 2 of :func:`~diffusers_led.evaluation.evaluate`: the plan. The run time estimated from a timed UNet call and
Inception batch, and the photos cut to fit the time budget."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch

from ..batch import crops_per_face
from .inputs import EvalInputs, select_photos
from .modes import MODES
from .state import _Face, _Run

# Rough per-edit cost (s) of everything but the UNet: compositing, the judges, the metrics (2 CPU cores).
_EDIT_OVERHEAD_S = 0.12


def _fit_to_budget(
    run: _Run, faces: list[_Face], inputs: EvalInputs, n_references: int, elapsed_s: float
) -> tuple[list[_Face], int, dict[str, Any]]:
    """The faces to edit, how many of them (the first) the DDPM modes edit, and the plan (see :func:`_plan`);
    ``elapsed_s`` of the time budget are gone."""
    n_all, time_budget = len(faces), run.time_budget
    n_ddpm = n_all if run.paper_max_images is None else min(n_all, run.paper_max_images)
    plan = _plan(
        run.pipe,
        faces,
        run.targets,
        run.regions,
        run.modes,
        run.mode_strengths,
        run.steps,
        n_all,
        n_ddpm,
        run.realism and bool(n_references),
        n_references,
        run.batch_size,
        time_budget,
        elapsed_s=elapsed_s,
        realism_max_crops=run.realism_max_crops,
        guidance_scale=run.guidance_scale,
    )
    if plan["images"] < n_all or plan["ddpm_images"] < n_ddpm:
        message = (
            f"Time budget {time_budget:g} min: editing {plan['images']} of {n_all} photos "
            f"({plan['ddpm_images']} in the DDPM modes); estimated {plan['estimated_min']:.1f} min "
            f"(all photos: {plan['estimated_full_min']:.1f} min). Raise --time-budget or set it to 0 for all."
        )
        warnings.warn(message, stacklevel=3)
        inputs.notes.append(message)
    kept = {id(p) for p in select_photos([f.photo for f in faces], plan["images"])}
    faces = [f for f in faces if id(f.photo) in kept]
    return faces, min(plan["ddpm_images"], len(faces)), plan


def _plan(
    pipe,
    faces,
    targets,
    regions,
    modes,
    mode_strengths,
    steps,
    n_all,
    n_ddpm,
    realism,
    n_refs,
    batch_size,
    time_budget,
    elapsed_s: float = 0.0,
    realism_max_crops: int | None = None,
    guidance_scale: float = 1.0,
) -> dict[str, Any]:
    """Estimate the run time from a timed UNet call and Inception batch, and cut photos to fit ``time_budget``
    (minutes, of which ``elapsed_s`` and a margin of 5% for loading the judges and writing the report are gone)."""
    fast_steps = sum(steps[(m, s)] for m in modes if MODES[m].sampler == "fast" for s in mode_strengths[m])
    ddpm_steps = sum(steps[(m, s)] for m in modes if MODES[m].sampler == "ddpm" for s in mode_strengths[m])
    fast_edits = sum(len(mode_strengths[m]) for m in modes if MODES[m].sampler == "fast") * len(targets)
    ddpm_edits = sum(len(mode_strengths[m]) for m in modes if MODES[m].sampler == "ddpm") * len(targets)
    plan: dict[str, Any] = {"images": n_all, "ddpm_images": n_ddpm, "time_budget_min": time_budget or None}
    if not time_budget:
        return plan
    face_crops = crops_per_face(len(regions), guidance_scale)
    crops_per_call = max(1, min(batch_size, n_all * len(targets))) * face_crops
    unet = pipe.unet
    size = unet.config.sample_size
    sample = torch.randn(crops_per_call, unet.config.in_channels, size, size, device=unet.device, dtype=unet.dtype)
    hidden = pipe.embeddings([targets[0]] * crops_per_call, allow_untrained=True).to(unet.device, unet.dtype)
    crop_regions = [regions[i % len(regions)] for i in range(crops_per_call)]
    labels = pipe.region_class_labels(crop_regions, crops_per_call, unet.device)
    with torch.no_grad():
        unet(sample[:1], 10, encoder_hidden_states=hidden[:1], class_labels=None if labels is None else labels[:1])
        times = []
        for _ in range(3):  # the median of three: a shared machine's load comes and goes
            t0 = time.perf_counter()
            # .item() waits for a GPU to finish, which otherwise returns before the work is done.
            unet(sample, 10, encoder_hidden_states=hidden, class_labels=labels).sample[0, 0, 0, 0].item()
            times.append(time.perf_counter() - t0)
        unet_s = float(np.median(times)) / crops_per_call
    inception_s = 0.0
    if realism:
        from .judges import InceptionFeatures

        features = InceptionFeatures(device=unet.device)
        crops = list(np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8))
        features._forward(crops[:4])
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            features._forward(crops)
            times.append(time.perf_counter() - t0)
        inception_s = float(np.mean(times)) / len(crops)
    configs = sum(len(mode_strengths[m]) for m in modes)

    def estimate(n: int, n_d: int) -> float:
        crop_steps = (n * fast_steps + n_d * ddpm_steps) * len(targets) * face_crops
        n_edits = n * fast_edits + n_d * ddpm_edits
        per_config = min(n * len(targets), realism_max_crops or n * len(targets))
        n_inception = (configs * per_config + n) * len(regions) + n_refs
        return crop_steps * unet_s + n_edits * _EDIT_OVERHEAD_S + n_inception * inception_s

    budget_s = float(time_budget) * 60.0 * 0.95 - elapsed_s
    full = estimate(n_all, n_ddpm)
    n, n_d = n_all, n_ddpm
    while estimate(n, n_d) > budget_s and n_d > 1:
        n_d -= 1
    while estimate(n, min(n_d, n)) > budget_s and n > 1:
        n -= 1
    n_d = min(n_d, n)
    plan.update(
        images=n,
        ddpm_images=n_d,
        estimated_min=estimate(n, n_d) / 60.0,
        estimated_full_min=full / 60.0,
        unet_s_per_crop_step=unet_s,
        inception_s_per_crop=inception_s,
    )
    return plan
