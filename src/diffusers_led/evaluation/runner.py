"""``evaluate``: edit every held-out face to every target at every strength, in several modes, and measure.

Modes (:data:`MODES`), all sharing one seed per (photo, target) so that they differ only by what they name:

- ``blend``: the pipeline as shipped: the model's saved (fast) scheduler with its default steps, the soft blend mask
  and re-injection of the known surroundings at every step.
- ``hard``: the paper's compositing with the same fast sampler: the generated crop itself pasted as a rectangle,
  no feathering, no re-injection (and no residual compositing).
- ``paper``: the paper: ``DDPMScheduler`` over all ``num_train_timesteps`` steps from ``t_i`` (``paper_steps``
  limits it), hard paste. Expensive, so by default only at the paper's strength (0.5 = t_250) and on a few photos.
- ``ddpm_blend``: the DDPM sampler with the soft blend (not run by default).

Every face is detected once per photo. In a labelled photo the largest face is the one edited and measured (the
label is the photo's); in an unlabelled photo every face is, numbered from the left (``group.jpg#face0`` is the
leftmost) and judged against its own unedited output. The edits of one
(mode, strength) run as batches through the pipeline's own ``__call__`` with those detections (``faces=``) and the
mode's sampler (``scheduler=``) and compositing (``reinject_known=``, ``residual_composite=``) as arguments, so the
pipeline measured is the pipeline shipped, and the evaluation leaves it as it was.

The stages of :func:`evaluate`: 1. detect (one detection per photo), 2. plan (a cut to the time budget), 3. judge the
unedited inputs, 4. edit and measure each batch as it comes, 5. realism (FID / KID), 6. the report
(:mod:`.report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..batch import crops_per_face, default_batch_size
from ..image_processor import prepare_image
from ..regions import FaceRegions
from .inputs import EvalInputs, EvalPhoto, ReferenceCrop, load_inputs, load_references, select_photos
from .metrics import (
    frechet_distance,
    identity_distances,
    kernel_inception_distance,
    lab_change,
    preservation,
    psnr,
    relative_gain,
    seam_score,
)

__all__ = ["MODES", "EvaluationResult", "ModeSpec", "evaluate"]


@dataclass(frozen=True)
class ModeSpec:
    """How one evaluation mode edits: the sampler (``"fast"``: the model's scheduler; ``"ddpm"``: the paper's full
    DDPM) and the compositing (``"blend"``: soft mask + re-injection; ``"hard"``: rectangular paste)."""

    sampler: str
    composite: str
    description: str

    @property
    def scheduler(self) -> str | None:
        """The pipeline call's ``scheduler``: ``None`` (the model's own) or the paper's ``"DDPMScheduler"``."""
        return "DDPMScheduler" if self.sampler == "ddpm" else None

    def pipeline_arguments(self, name: str) -> dict[str, Any]:
        """The arguments of ``pipe(...)`` that make this mode (``name``, its key in :data:`MODES`): the sampler, the
        re-injection, and for the hard paste the generated crop itself composited (the paper), not its residual."""
        return {
            "mode": name if self.composite == "geometry" else "diffusion",
            "scheduler": self.scheduler,
            "reinject_known": self.composite == "blend",
            "residual_composite": False if self.composite == "hard" else None,
        }


MODES: dict[str, ModeSpec] = {
    "blend": ModeSpec("fast", "blend", "model's scheduler, soft blend + re-injection (the pipeline's default)"),
    "hard": ModeSpec("fast", "hard", "model's scheduler, hard rectangular paste, no re-injection (paper compositing)"),
    "paper": ModeSpec("ddpm", "hard", "full DDPM from t_i, hard rectangular paste (the paper)"),
    "ddpm_blend": ModeSpec("ddpm", "blend", "full DDPM from t_i, soft blend + re-injection"),
    "geometry": ModeSpec("fast", "geometry", "action-unit warp of the face's own pixels, no UNet"),
    "geometry+texture": ModeSpec("fast", "geometry", "action-unit warp, the UNet re-draws opened mouths"),
}
DEFAULT_MODES = ("blend", "hard", "paper")
DEFAULT_STRENGTHS = (0.2, 0.35, 0.5, 0.65)
PAPER_STRENGTH = 0.5  # t_250 of T = 500, the paper's setting
THUMB_SIZE = 128
SAMPLE_PHOTOS = 2  # photos whose DDPM-mode edits are kept as thumbnails (the fast modes keep every face's)
# Rough per-edit cost (s) of everything but the UNet: compositing, the judges, the metrics (2 CPU cores).
_EDIT_OVERHEAD_S = 0.12


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns: the report (as written to ``report.json``), the per-edit rows and the files."""

    report: dict[str, Any]
    edits: list[dict[str, Any]]
    files: dict[str, str]


@dataclass
class _Face:
    """A photo prepared for editing: pixels, its face and the per-face geometry the metrics reuse."""

    photo: EvalPhoto
    rgb: np.ndarray
    regions: FaceRegions  # soft-blend masks, as extracted
    hard: FaceRegions  # the same with all-ones masks: rectangular paste
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # composite kind -> HxW composite weight
    # (composite kind, region) -> (the region's bounding rows/cols, its weight there), for the colour change
    region_weights: dict[tuple[str, str], tuple[tuple[slice, slice], np.ndarray]] = field(default_factory=dict)
    face_mask: np.ndarray | None = None  # pixels of the canonical face square (for PSNR)
    band: int = 4
    fer_input: np.ndarray | None = None
    probs: np.ndarray | None = None
    embedding: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def _seed_for(seed: int, photo: str, target: str) -> int:
    return zlib.crc32(f"{seed}:{photo}:{target}".encode())


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _thumbnail(rgb: np.ndarray, matrix: np.ndarray, canonical: int, size: int = THUMB_SIZE) -> np.ndarray:
    """The aligned face with a 12.5% margin, ``size x size`` RGB."""
    margin = canonical / 8.0
    scale = size / (canonical + 2 * margin)
    outer = np.array([[scale, 0.0, scale * margin], [0.0, scale, scale * margin]])
    full = np.empty((2, 3))
    full[:, :2] = outer[:, :2] @ matrix[:, :2]
    full[:, 2] = outer[:, :2] @ matrix[:, 2] + outer[:, 2]
    return cv2.warpAffine(
        rgb,
        full,
        (size, size),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _face_square_mask(shape: tuple[int, int], matrix: np.ndarray, canonical: int) -> np.ndarray:
    corners = np.array([[0, 0], [canonical, 0], [canonical, canonical], [0, canonical]], dtype=np.float64)
    inverse = cv2.invertAffineTransform(matrix)
    quad = corners @ inverse[:, :2].T + inverse[:, 2]
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(quad * 16).astype(np.int32), 1, cv2.LINE_8, 4)
    return mask.astype(bool)


def _faces_to_edit(photo: EvalPhoto, found: Sequence[FaceRegions]) -> list[tuple[EvalPhoto, FaceRegions]]:
    """The largest face of a labelled photo (its label is the photo's); every face of an unlabelled one, numbered
    from the left, each a photo of its own (``name#face<k>``, subject ``subject#face<k>``) when there are several."""
    if photo.expression is not None or len(found) == 1:
        return [(photo, found[0])]
    ordered = sorted(found, key=lambda f: (f.face.box[0], f.face.box[1]))
    return [
        (dataclasses.replace(photo, name=f"{photo.name}#face{k}", subject=f"{photo.subject}#face{k}"), face)
        for k, face in enumerate(ordered)
    ]


def _region_weight(
    processor: Any, shape: tuple[int, ...], face: FaceRegions, region: str
) -> tuple[tuple[slice, slice], np.ndarray]:
    """One region's blend weight, cut to its bounding box (full-size maps of every face would not fit in memory)."""
    weight = processor.composite_mask(shape, [face], regions=[region])
    ys, xs = np.nonzero(weight > 0)
    if not len(ys):
        return (slice(0, 0), slice(0, 0)), weight[:0, :0]
    rows_cols = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
    return rows_cols, weight[rows_cols].copy()


def _num_steps(pipe: Any, start: int, num_inference_steps: int, scheduler: str | None = None) -> int:
    """How many denoising steps an edit from ``start`` takes with ``scheduler`` (as the pipeline call's)."""
    if start <= 0:
        return 0
    return len(pipe.get_timesteps(start, num_inference_steps, pipe.device, scheduler=scheduler))


# ---------------------------------------------------------------------------------------------------------------------
# The run: the model and the settings
# ---------------------------------------------------------------------------------------------------------------------


def _load_pipeline(model: Any, device: str | None = None, dtype: str | None = None) -> tuple[Any, str]:
    """The pipeline to evaluate: a given one stays where it is unless ``device`` / ``dtype`` are set; a model folder or
    Hub id is loaded on ``device`` (default ``"auto"``) in ``dtype`` (default ``"auto"``)."""
    from ..devices import load_pipeline_on, resolve_device_and_dtype
    from ..pipeline_led import LocalExpressionPipeline

    if isinstance(model, LocalExpressionPipeline):
        if device is not None or dtype is not None:
            model.to(*resolve_device_and_dtype(device, dtype))
        return model, getattr(model, "name_or_path", None) or "<pipeline object>"
    from ..pretrained import resolve_model

    model = resolve_model(model)
    return load_pipeline_on(model, device, dtype), model


def _parse_targets(pipe: Any, targets: str | Sequence[str], allow_untrained: bool, geometry: bool) -> list[str]:
    """The targets: ``"all"`` is every expression when a geometry mode is measured (they make all eight), else the
    model's trained labels."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    if list(targets) == ["all"]:
        return list(pipe.embeddings.labels if geometry else pipe.embeddings.trained_labels)
    if geometry:  # the warp makes every expression: no "not trained on" warning for any of them
        from ..labels import canonical_expression

        return list(dict.fromkeys(canonical_expression(t) for t in targets))
    resolved = pipe.embeddings.resolve(list(targets), allow_untrained)
    return list(dict.fromkeys(resolved))


@dataclass
class _Run:
    """One evaluation's settings, resolved from its arguments and the model."""

    pipe: Any
    modes: list[str]
    targets: list[str]
    regions: tuple[str, ...]
    mode_strengths: dict[str, list[float]]  # mode -> the strengths it edits at
    fast_steps: int
    ddpm_steps: int
    guidance_scale: float
    negative_target: str
    default_strength: float
    target_strengths: dict[str, float]
    batch_size: int
    seed: int
    allow_untrained_targets: bool
    progress: bool
    paper_max_images: int | None
    realism: bool
    realism_max_crops: int | None
    cache_dir: str | os.PathLike | None
    time_budget: float | None
    starts: dict[tuple[str, float], int] = field(default_factory=dict)  # (mode, strength) -> t_i
    steps: dict[tuple[str, float], int] = field(default_factory=dict)  # (mode, strength) -> denoising steps

    @property
    def processor(self) -> Any:
        return self.pipe.region_processor

    def num_inference_steps(self, mode: str) -> int:
        return self.ddpm_steps if MODES[mode].sampler == "ddpm" else self.fast_steps

    def report_settings(self, plan: dict[str, Any]) -> dict[str, Any]:
        """The ``settings`` of ``report.json``."""
        return {
            "targets": self.targets,
            "modes": {m: dataclasses.asdict(MODES[m]) for m in self.modes},
            "strengths": {m: self.mode_strengths[m] for m in self.modes},
            "fast_sampler_steps": self.fast_steps,
            "ddpm_steps": self.ddpm_steps,
            "guidance_scale": self.guidance_scale,
            "negative_target": self.negative_target,
            "default_strength": self.default_strength,
            "target_strengths": self.target_strengths,
            "seed": self.seed,
            "plan": plan,
        }


def _check_arguments(data: Any, modes: Sequence[str], strengths: Sequence[float], max_images: int | None) -> None:
    if data is None:
        raise ValueError("data is required: a crop dataset, a folder of photos, a photo or a list of them")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown modes {unknown}; choose from {list(MODES)}")
    strengths = [float(s) for s in strengths]
    if not strengths or any(not 0.0 <= s <= 1.0 for s in strengths):
        raise ValueError(f"strengths must be numbers in [0, 1], got {strengths}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be at least 1 (None: all photos), got {max_images}")


def _resolve_run(
    pipe: Any,
    targets: str | Sequence[str],
    strengths: Sequence[float],
    modes: Sequence[str],
    paper_strengths: Sequence[float] | None,
    paper_steps: int | None,
    num_inference_steps: int | None,
    guidance_scale: float | None,
    negative_target: str | None,
    batch_size: int | None,
    seed: int,
    allow_untrained_targets: bool,
    progress: bool,
    paper_max_images: int | None,
    realism: bool,
    realism_max_crops: int | None,
    cache_dir: str | os.PathLike | None,
    time_budget: float | None,
) -> _Run:
    """The settings of :func:`evaluate` with the model's defaults filled in, and the start step and number of
    denoising steps of every (mode, strength). The model's default strengths are always measured."""
    default_strength = float(pipe.config.default_strength)
    target_strengths = {t: float(v) for t, v in (pipe.config.get("target_strengths") or {}).items()}
    raw_strengths = [float(value) for value in strengths]
    strengths = sorted(dict.fromkeys(raw_strengths + [default_strength] + list(target_strengths.values())))
    if guidance_scale is None:
        guidance_scale = float(pipe.config.default_guidance_scale)
    if paper_strengths is None:
        paper_strengths = [PAPER_STRENGTH] if PAPER_STRENGTH in strengths else [strengths[len(strengths) // 2]]
    paper_strengths = sorted(dict.fromkeys(float(s) for s in paper_strengths))
    geometry_modes = [m for m in modes if MODES[m].composite == "geometry"]
    mode_strengths = {m: (paper_strengths if MODES[m].sampler == "ddpm" else strengths) for m in modes}
    for mode in geometry_modes:  # the geometry modes' own default strength, not the diffusion ones
        mode_strengths[mode] = sorted(dict.fromkeys(raw_strengths + [float(pipe.config.geometry_strength)]))
    num_train_timesteps = int(pipe.scheduler.config.num_train_timesteps)
    run = _Run(
        pipe=pipe,
        modes=list(modes),
        targets=_parse_targets(pipe, targets, allow_untrained_targets, bool(geometry_modes)),
        regions=tuple(pipe.config.regions),
        mode_strengths=mode_strengths,
        fast_steps=int(num_inference_steps or pipe.config.default_num_inference_steps),
        ddpm_steps=int(paper_steps or num_train_timesteps),
        guidance_scale=guidance_scale,
        negative_target=(pipe.config.default_negative_target or "") if negative_target is None else negative_target,
        default_strength=default_strength,
        target_strengths=target_strengths,
        batch_size=default_batch_size(pipe, guidance_scale) if batch_size is None else batch_size,
        seed=seed,
        allow_untrained_targets=allow_untrained_targets,
        progress=progress,
        paper_max_images=paper_max_images,
        realism=realism,
        realism_max_crops=realism_max_crops,
        cache_dir=cache_dir,
        time_budget=time_budget,
    )
    texture_start = int(num_train_timesteps * float(pipe.config.texture_strength))
    for mode in modes:
        for strength in mode_strengths[mode]:
            start = int(num_train_timesteps * strength)
            if MODES[mode].composite == "geometry":
                # A warp has no timestep; geometry+texture runs the UNet in opened mouths, at the texture strength.
                run.starts[(mode, strength)] = None
                textured = mode == "geometry+texture"
                run.steps[(mode, strength)] = _num_steps(pipe, texture_start, run.fast_steps) if textured else 0
                continue
            run.starts[(mode, strength)] = start
            run.steps[(mode, strength)] = _num_steps(pipe, start, run.num_inference_steps(mode), MODES[mode].scheduler)
    return run


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """``num_threads`` torch threads for the duration (``None`` or 0: as they are)."""
    if not num_threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------------------
# 1. Inputs and one detection per photo
# ---------------------------------------------------------------------------------------------------------------------


def _load_data(
    data: Any,
    split: str,
    photos_root: str | os.PathLike | None,
    subjects: Sequence[str] | None,
    reference_data: str | os.PathLike | None,
) -> EvalInputs:
    inputs = load_inputs(data, split=split, photos_root=photos_root, subjects=subjects)
    if reference_data is not None:
        extra = load_references(reference_data)
        inputs.reference_crops, inputs.reference_photos = extra.reference_crops, extra.reference_photos
        inputs.references_include_evaluated = False
        inputs.notes.append(f"References from {reference_data}.")
    return inputs


def _read_faces(run: _Run, photo: EvalPhoto, log: list[dict[str, str]]) -> tuple[np.ndarray, list[FaceRegions]] | None:
    """A photo's pixels and faces; ``None``, with the reason in ``log``, when it is unreadable or has no face."""
    try:
        rgb = prepare_image(photo.image if photo.image is not None else photo.path).rgb
    except (OSError, ValueError) as error:
        log.append({"photo": photo.name, "reason": f"unreadable: {error}"})
        return None
    found = run.processor.extract(rgb, regions=run.regions)
    if not found:
        log.append({"photo": photo.name, "reason": "no face detected"})
        return None
    return rgb, found


def _detect(run: _Run, inputs: EvalInputs, max_images: int | None) -> tuple[list[_Face], list[dict[str, str]]]:
    """The faces to edit (see :func:`_faces_to_edit`), one detection per photo, and the photos skipped."""
    from tqdm.auto import tqdm

    faces: list[_Face] = []
    skipped: list[dict[str, str]] = []
    candidates = select_photos(inputs.photos, max_images)
    for photo in tqdm(candidates, desc="Detecting faces", unit="photo", disable=not run.progress):
        prepared = _read_faces(run, photo, skipped)
        if prepared is None:
            continue
        rgb, found = prepared
        for item, face in _faces_to_edit(photo, found):
            hard = dataclasses.replace(face, masks={r: np.ones_like(m) for r, m in face.masks.items()})
            interocular = float(np.linalg.norm(face.face.landmarks[1] - face.face.landmarks[0]))
            faces.append(_Face(item, rgb, face, hard, band=max(2, int(round(interocular / 16)))))
    return faces, skipped


def _references(run: _Run, inputs: EvalInputs, faces: Sequence[_Face]) -> list[ReferenceCrop]:
    """The real crops FID/KID compare against: the given ones and the regions of the labelled reference photos (an
    evaluated photo's face is not detected again), in the UNet's crop size."""
    references: list[ReferenceCrop] = list(inputs.reference_crops)
    reference_skipped: list[dict[str, str]] = []
    for photo in inputs.reference_photos:
        if not photo.expression:
            continue
        evaluated = next((f for f in faces if f.photo is photo), None)
        if evaluated is not None:
            face = evaluated.regions
        else:
            prepared = _read_faces(run, photo, reference_skipped)
            face = prepared[1][0] if prepared else None
        if face is not None:
            references.extend(ReferenceCrop(r, photo.expression, face.crops[r], photo.name) for r in run.regions)
    size = run.processor.crop_size
    references = [r for r in references if r.crop.shape[:2] == (size, size)]
    if reference_skipped:
        inputs.notes.append(f"{len(reference_skipped)} reference photos had no usable face and were left out.")
    return references


# ---------------------------------------------------------------------------------------------------------------------
# 2. The plan: a cut to the time budget
# ---------------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------------
# 3. Judges and the unedited baseline
# ---------------------------------------------------------------------------------------------------------------------


def _judge_inputs(run: _Run, faces: Sequence[_Face]) -> tuple[Any, Any, np.ndarray]:
    """The expression and identity judges, each face's composite weights, face square and judge inputs, and the
    expression judge's probabilities on the unedited inputs."""
    from .judges import ExpressionJudge, IdentityJudge

    processor = run.processor
    judge = ExpressionJudge(device=run.pipe.device)
    identity = IdentityJudge()
    for face in faces:
        face.weights["blend"] = processor.composite_mask(face.rgb.shape, [face.regions])
        face.weights["hard"] = processor.composite_mask(face.rgb.shape, [face.hard])
        for kind, geometry in (("blend", face.regions), ("hard", face.hard)):
            for region in run.regions:
                face.region_weights[(kind, region)] = _region_weight(processor, face.rgb.shape, geometry, region)
        face.face_mask = _face_square_mask(face.rgb.shape[:2], face.regions.matrix, processor.canonical_size)
        face.fer_input = judge.face_input(face.rgb, face.regions.face.landmarks)
    base_probs = judge.predict_inputs([f.fer_input for f in faces])
    base_embeddings = identity.embed_chips([identity.chip(f.rgb, f.regions.face.box) for f in faces])
    for face, probs, embedding in zip(faces, base_probs, base_embeddings):
        face.probs, face.embedding = probs, embedding
    return judge, identity, base_probs


# ---------------------------------------------------------------------------------------------------------------------
# 4. The edits, measured as they come
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class _Edited:
    """What the edits left: one row per edit, thumbnails and the generated crops FID/KID use."""

    edits: list[dict[str, Any]] = field(default_factory=list)
    thumbs: dict[tuple[str, float, int, str], np.ndarray] = field(default_factory=dict)
    # (mode, strength, region) -> (target, crop)
    generated: dict[tuple[str, float, str], list[tuple[str, np.ndarray]]] = field(default_factory=dict)


def _jobs(run: _Run, n_faces: int, n_ddpm: int) -> list[tuple[str, float, list[tuple[int, str]]]]:
    """``(mode, strength, (face index, target) pairs)``: one batched pipeline call each."""
    jobs = []
    trained = set(run.pipe.embeddings.trained_labels)
    for mode in run.modes:
        chosen = n_ddpm if MODES[mode].sampler == "ddpm" else n_faces
        for strength in run.mode_strengths[mode]:
            # The diffusion modes edit only toward what the model learnt (unless untrained targets are allowed).
            pairs = [
                (i, target)
                for i in range(chosen)
                for target in run.targets
                if MODES[mode].composite == "geometry" or run.allow_untrained_targets or target in trained
            ]
            for start in range(0, len(pairs), max(1, run.batch_size)):
                jobs.append((mode, strength, pairs[start : start + max(1, run.batch_size)]))
    return jobs


def _call_pipeline(
    run: _Run, mode: str, strength: float, pairs: Sequence[tuple[int, str]], faces: Sequence[_Face]
) -> Any:
    """One batch of edits by the pipeline as shipped: the faces already detected (``faces=``; for the hard paste
    with all-ones masks), the mode's sampler and compositing as arguments; one generator per (photo, target)."""
    spec = MODES[mode]
    return run.pipe(
        [f.rgb for f in faces],
        target=[t for _, t in pairs],
        strength=strength,
        num_inference_steps=run.num_inference_steps(mode),
        regions=run.regions,
        guidance_scale=run.guidance_scale,
        negative_target=run.negative_target,
        generator=[
            torch.Generator().manual_seed(_seed_for(run.seed, f.photo.name, t)) for f, (_, t) in zip(faces, pairs)
        ],
        output_type="np",
        allow_untrained_targets=run.allow_untrained_targets,
        faces=[[f.hard if spec.composite == "hard" else f.regions] for f in faces],
        **spec.pipeline_arguments(mode),
    )


def _measure_pixels(
    run: _Run,
    mode: str,
    strength: float,
    face: _Face,
    target: str,
    output: np.ndarray,
    found: Sequence[FaceRegions],
) -> dict[str, Any]:
    """One edit's row: what it is, preservation outside the edit, seams, face PSNR and colour change inside the
    regions."""
    spec = MODES[mode]
    warps = spec.composite == "geometry"
    colour = {}
    for region in run.regions:  # the geometry modes: the colour change inside the same region boxes
        rows_cols, weight_roi = face.region_weights[("blend" if warps else spec.composite, region)]
        change = lab_change(face.rgb[rows_cols], output[rows_cols], weight_roi)
        colour[f"dL_{region}"], colour[f"dab_{region}"] = change["dL"], change["dab"]
    # A warp's editable area depends on the target and strength: the window of this very edit.
    weight = run.processor.composite_mask(face.rgb.shape, found) if warps else face.weights[spec.composite]
    kept = preservation(face.rgb, output, weight)
    seam = seam_score(face.rgb, output, weight, band=face.band)
    return {
        "mode": mode,
        "strength": strength,
        "start_timestep": run.starts[(mode, strength)],
        "photo": face.photo.name,
        "subject": face.photo.subject,
        "source_expression": face.photo.expression,
        "target": target,
        "max_abs_outside": kept["max_abs_outside"],
        "mean_abs_outside": kept["mean_abs_outside"],
        "psnr_face": psnr(face.rgb, output, face.face_mask),
        "seam_score": seam["score"],
        "seam_border_change": seam["border_change"],
        # The share of the asked-for movement the warp made (below 1 where the full one would fold the photo).
        "warp_kept": min((f.warp.kept for f in found if f.warp is not None), default=1.0) if warps else None,
        **colour,
    }


def _judge_outputs(
    rows: Sequence[dict[str, Any]],
    faces: Sequence[_Face],
    outputs: Sequence[np.ndarray],
    judge: Any,
    identity: Any,
) -> None:
    """Adds to each edit's row the expression judge's verdict and the identity distance to the unedited face."""
    from .judges import EXPRESSION_JUDGE_CLASSES

    probs = judge.predict_inputs([judge.face_input(o, f.regions.face.landmarks) for f, o in zip(faces, outputs)])
    embeddings = identity.embed_chips([identity.chip(o, f.regions.face.box) for f, o in zip(faces, outputs)])
    distances = identity_distances(np.stack([f.embedding for f in faces]), embeddings)
    for row, face, p, euclid, cosine in zip(rows, faces, probs, distances["euclidean"], distances["cosine"]):
        k = judge.class_index(row["target"])
        p_before = float(face.probs[k]) if k is not None else None
        row.update(
            p_before=p_before,
            relative_gain=relative_gain(p_before, float(p[k])) if k is not None else None,
            p_target=float(p[k]) if k is not None else None,
            predicted=EXPRESSION_JUDGE_CLASSES[int(np.argmax(p))],
            predicted_before=EXPRESSION_JUDGE_CLASSES[int(np.argmax(face.probs))],
            hit=bool(np.argmax(p) == k) if k is not None else None,
            probs=[round(float(v), 6) for v in p],
            id_distance=float(euclid),
            id_cosine=float(cosine),
            same_identity=bool(euclid < identity.threshold),
        )


def _edit_and_measure(
    run: _Run, faces: list[_Face], n_ddpm: int, judge: Any, identity: Any, realism_pairs: set
) -> _Edited:
    """Every edit, one batched pipeline call per (mode, strength, chunk), each measured as it comes; the crops of
    ``realism_pairs`` and the thumbnails are kept."""
    from tqdm.auto import tqdm

    edited = _Edited()
    jobs = _jobs(run, len(faces), n_ddpm)
    with tqdm(total=sum(len(job[2]) for job in jobs), desc="Editing", unit="edit", disable=not run.progress) as bar:
        for mode, strength, pairs in jobs:
            bar.set_postfix_str(f"{mode} s={strength:g}")
            batch_faces = [faces[i] for i, _ in pairs]
            result = _call_pipeline(run, mode, strength, pairs, batch_faces)
            outputs = [_to_uint8(image) for image in result.images]
            rows = []
            for (index, target), face, output, found in zip(pairs, batch_faces, outputs, result.faces):
                rows.append(_measure_pixels(run, mode, strength, face, target, output, found))
                if (index, target) in realism_pairs:
                    crops = run.processor.extract(output, faces=[face.regions.face], regions=run.regions)[0].crops
                    for region in run.regions:
                        edited.generated.setdefault((mode, strength, region), []).append((target, crops[region]))
                if MODES[mode].sampler == "fast" or index < SAMPLE_PHOTOS:  # the contact sheets show every face
                    edited.thumbs[(mode, strength, index, target)] = _thumbnail(
                        output, face.regions.matrix, run.processor.canonical_size
                    )
            _judge_outputs(rows, batch_faces, outputs, judge, identity)
            edited.edits.extend(rows)
            bar.update(len(pairs))
    return edited


# ---------------------------------------------------------------------------------------------------------------------
# 5. Realism
# ---------------------------------------------------------------------------------------------------------------------


def _measure_realism(
    run: _Run,
    inputs: EvalInputs,
    faces: Sequence[_Face],
    references: Sequence[ReferenceCrop],
    realism_pairs: set,
    generated: dict[tuple[str, float, str], list[tuple[str, np.ndarray]]],
) -> dict[str, Any]:
    """Inception features of the references, the inputs and the generated crops; FID / KID per region (see
    :func:`_realism`). Empty when realism is off or there are no real crops (the report's notes say so)."""
    from tqdm.auto import tqdm

    from .judges import InceptionFeatures

    if not run.realism:
        return {}
    if not references:
        inputs.notes.append("No labelled real crops to compare against: FID/KID not computed.")
        return {}
    cache_dir = run.cache_dir
    if cache_dir == "default":
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache_dir = os.path.join(base, "diffusers_led", "eval_features")
    inception = InceptionFeatures(cache_dir=cache_dir or None, device=run.pipe.device)
    input_photos = sorted({i for i, _ in realism_pairs})
    n_crops = len(references) + len(input_photos) * len(run.regions) + sum(len(v) for v in generated.values())
    with tqdm(total=n_crops, desc="Inception features", unit="crop", disable=not run.progress) as feature_bar:
        ref_feats = inception([r.crop for r in references], progress=feature_bar)
        input_feats = {
            region: inception([faces[i].regions.crops[region] for i in input_photos], progress=feature_bar)
            for region in run.regions
        }
        gen_feats = {
            key: inception([crop for _, crop in items], progress=feature_bar) for key, items in generated.items()
        }
    return _realism(
        references, ref_feats, input_feats, gen_feats, generated, faces, run.regions, run.targets, run.seed
    )


def _reference_counts(references: Sequence[ReferenceCrop], regions: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per region and expression, how many real crops there are."""
    return {
        region: {
            e: sum(1 for r in references if r.region == region and r.expression == e)
            for e in sorted({r.expression for r in references})
        }
        for region in regions
    }


def _realism_pairs(n_photos: int, targets: Sequence[str], cap: int | None, seed: int) -> set:
    """``(photo index, target)`` pairs for FID/KID: all of them, or ``cap`` drawn round-robin over the targets in a
    seeded order (each target's photos shuffled), so every target is equally represented."""
    pairs = [(i, t) for i in range(n_photos) for t in targets]
    if cap is None or len(pairs) <= cap:
        return set(pairs)
    rng = np.random.default_rng(seed)
    queues = [[(int(i), t) for i in rng.permutation(n_photos)] for t in targets]
    chosen: list[tuple[int, str]] = []
    while len(chosen) < cap:
        for queue in queues:
            if queue and len(chosen) < cap:
                chosen.append(queue.pop(0))
    return set(chosen)


def _distances(ref: np.ndarray, gen: np.ndarray, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n_generated": int(len(gen)), "n_reference": int(len(ref))}
    if len(gen) >= 2 and len(ref) >= 2:
        row["fid"] = frechet_distance(ref, gen)
        row["kid"], row["kid_std"] = kernel_inception_distance(ref, gen, seed=seed)
    else:
        row["fid"] = row["kid"] = row["kid_std"] = None
    return row


def _realism(
    references, ref_feats, input_feats, gen_feats, generated, faces, regions, targets, seed
) -> dict[str, Any]:
    """Per region: the unedited inputs and each (mode, strength)'s generated crops against the real crops of the
    same targets (pooled over targets), plus per-target KID."""
    labels = np.array([r.expression for r in references])
    ref_regions = np.array([r.region for r in references])
    with_refs = [t for t in targets if any((labels == t) & (ref_regions == regions[0]))]
    out: dict[str, Any] = {"targets_with_references": with_refs, "unedited": {}, "configs": []}
    for region in regions:
        pool = (ref_regions == region) & np.isin(labels, with_refs)
        out["unedited"][region] = _distances(ref_feats[pool], input_feats[region], seed)
    for (mode, strength, region), items in sorted(generated.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        feats = gen_feats[(mode, strength, region)]
        item_targets = np.array([t for t, _ in items])
        keep = np.isin(item_targets, with_refs)
        pool = (ref_regions == region) & np.isin(labels, with_refs)
        row = {"mode": mode, "strength": strength, "region": region, **_distances(ref_feats[pool], feats[keep], seed)}
        per_target = {}
        for target in with_refs:
            ref = ref_feats[(ref_regions == region) & (labels == target)]
            gen = feats[item_targets == target]
            if len(ref) >= 2 and len(gen) >= 2:
                per_target[target] = kernel_inception_distance(ref, gen, seed=seed)[0]
        row["kid_per_target"] = per_target
        out["configs"].append(row)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------------------------


def evaluate(
    model: Any = None,
    data: Any = None,
    out_dir: str | os.PathLike = "report",
    targets: str | Sequence[str] = "all",
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    modes: Sequence[str] = DEFAULT_MODES,
    seed: int = 0,
    split: str = "test",
    photos_root: str | os.PathLike | None = None,
    subjects: Sequence[str] | None = None,
    max_images: int | None = None,
    batch_size: int | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    negative_target: str | None = None,
    paper_steps: int | None = None,
    paper_strengths: Sequence[float] | None = None,
    paper_max_images: int | None = 2,
    realism: bool = True,
    realism_max_crops: int | None = 50,
    reference_data: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = "default",
    time_budget: float | None = 15.0,
    allow_untrained_targets: bool = False,
    progress: bool = True,
    num_threads: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
) -> EvaluationResult:
    """Edit every face of ``data`` to every target at every strength in every mode and write a report.

    Args:
        model: a model folder or Hub id, a loaded ``LocalExpressionPipeline``, or ``None`` for the bundled model.
        data: a ``led-prepare-data`` crop dataset (its ``split`` source photos are edited), a folder of photos
            (optionally labelled), one photo, or a list of paths / RGB uint8 arrays. See ``evaluation.inputs``.
        out_dir: where ``report.json``, ``report.md``, ``edits.csv`` and the PNG plots go (created). A file there
            that led-evaluate did not write (or that is an input photo) is never replaced: the run stops before any
            work.
        targets: ``"all"`` (the model's trained labels) or names / a comma-separated string.
        strengths: edit strengths in [0, 1] (0.5 = the paper's t_250). The model's default strength is always added,
            so the report has a row for the setting users get.
        modes: names from :data:`MODES`; the unedited baseline is always measured.
        seed: one generator per (photo, target), seeded from this; identical across modes and strengths.
        split / photos_root / subjects: which photos of a crop dataset to edit and where its photos are.
        max_images: at most this many photos (round-robin over subjects).
        batch_size: photos per pipeline call (two crops each, twice that with guidance). Default: about
            ``diffusers_led.batch.CROPS_PER_UNET_CALL`` crops per UNet call, the fastest per crop on a small CPU.
        num_inference_steps: steps of the fast sampler's full schedule (default: the model's).
        guidance_scale: classifier-free guidance of every mode (default: the model's ``default_guidance_scale``), so
            the modes differ only in sampler and compositing.
        negative_target: what guidance pushes away from in every mode (default: the model's
            ``default_negative_target``; ``""``: the null label).
        paper_steps: DDPM steps for the ``ddpm`` sampler (default ``num_train_timesteps``: the paper).
        paper_strengths: strengths of the ``ddpm`` modes (default: 0.5 if requested, else the middle strength).
        paper_max_images: photos edited by the ``ddpm`` modes (the first of the selection); ``None``: all.
        realism: compute per-region FID/KID on Inception features (the slowest judge).
        realism_max_crops: generated crops per (mode, strength, region) that FID/KID use, drawn once (seeded,
            spread over the targets) from the (photo, target) pairs and the same in every row, so rows compare
            sets of equal size; ``None``: all.
        reference_data: real crops to compare against instead of the ones ``data`` provides.
        cache_dir: Inception feature cache (``"default"``: ``~/.cache/diffusers_led/eval_features``; ``None``: off).
        time_budget: minutes; when the measured cost estimate exceeds it, fewer photos are edited (``ddpm`` ones
            first), and the report says so. ``None`` or 0: no limit.
        allow_untrained_targets: allow targets the model has an embedding for but was not trained on.
        progress: tqdm progress bars.
        num_threads: torch threads for the run (restored afterwards); on a machine shared with other jobs 1 thread
            avoids OpenMP stalls that can make 2 threads several times slower.
        device / dtype: where the pipeline and the judges' networks run (``"auto"``, ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"``) and the pipeline's precision (``"auto"``, ``"float32"``, ``"float16"``,
            ``"bfloat16"``), see :mod:`diffusers_led.devices`. ``None``: a given pipeline stays as it is; a loaded one
            gets ``"auto"``.
        overwrite: replace the files an earlier evaluation wrote in ``out_dir`` (never other files).

    Returns:
        :class:`EvaluationResult`; the same report is in ``out_dir/report.json``.
    """
    from .report import build_report, check_report_folder, write_report

    with _torch_threads(num_threads):
        started = time.perf_counter()
        timings: dict[str, float] = {}
        _check_arguments(data, modes, strengths, max_images)
        # An unavailable device fails before anything is written.
        pipe, model_name = _load_pipeline(model, device, dtype)
        out_dir = Path(out_dir)
        pipe.set_progress_bar_config(disable=True)
        run = _resolve_run(
            pipe,
            targets,
            strengths,
            modes,
            paper_strengths,
            paper_steps,
            num_inference_steps,
            guidance_scale,
            negative_target,
            batch_size,
            seed,
            allow_untrained_targets,
            progress,
            paper_max_images,
            realism,
            realism_max_crops,
            cache_dir,
            time_budget,
        )
        with _timed(timings, "detection_s"):  # 1. Inputs and one detection per photo.
            inputs = _load_data(data, split, photos_root, subjects, reference_data)
            read = [p.path for p in (*inputs.photos, *inputs.reference_photos) if p.path is not None]
            check_report_folder(out_dir, run.targets, overwrite, read)  # before any work
            faces, skipped = _detect(run, inputs, max_images)
            if not faces:
                raise ValueError(f"no usable face in {data}: {skipped[:3]}")
            references = _references(run, inputs, faces)
        # 2. The plan: a cut to the time budget.
        faces, n_ddpm, plan = _fit_to_budget(run, faces, inputs, len(references), time.perf_counter() - started)
        with _timed(timings, "judges_setup_s"):  # 3. Judges and the unedited baseline.
            judge, identity, base_probs = _judge_inputs(run, faces)
        # The (photo, target) pairs whose crops feed FID/KID: only targets with real references, capped and spread.
        realism_targets = [t for t in run.targets if any(r.expression == t for r in references)]
        realism_pairs = _realism_pairs(len(faces), realism_targets, realism_max_crops, seed) if realism else set()
        with _timed(timings, "editing_s"):  # 4. The edits, measured as they come.
            edited = _edit_and_measure(run, faces, n_ddpm, judge, identity, realism_pairs)
        with _timed(timings, "realism_s"):  # 5. Realism: FID / KID per region.
            realism_rows = _measure_realism(run, inputs, faces, references, realism_pairs, edited.generated)
        timings["total_s"] = time.perf_counter() - started
        report = build_report(  # 6. The report.
            pipe=pipe,
            model_name=model_name,
            inputs=inputs,
            photos=[f.photo for f in faces],
            skipped=skipped,
            edits=edited.edits,
            base_probs=base_probs,
            realism=realism_rows,
            reference_counts=_reference_counts(references, run.regions),
            settings=run.report_settings(plan),
            mode_strengths=run.mode_strengths,
            starts=run.starts,
            steps=run.steps,
            n_ddpm=n_ddpm,
            regions=run.regions,
            timings=timings,
        )
        input_thumbs = [_thumbnail(f.rgb, f.regions.matrix, run.processor.canonical_size) for f in faces]
        files = write_report(out_dir, report, edited.edits, edited.thumbs, input_thumbs, [f.photo.name for f in faces])
        return EvaluationResult(report=report, edits=edited.edits, files=files)
