"""``evaluate``: edit every held-out face to every target at every strength, in several modes, and measure.

The modes (:mod:`.modes`: the pipeline's own, each as shipped, and variants of the diffusion mode that change only its
sampler or compositing) all share one seed per (photo, target), so that they differ only by what they name.

Every face is detected once per photo. In a labelled photo the largest face is the one edited and measured (the
label is the photo's); in an unlabelled photo every face is, numbered from the left (``group.jpg#face0`` is the
leftmost) and judged against its own unedited output. The edits of one
(mode, strength) run as batches through the pipeline's own ``__call__`` with those detections (``faces=``) and the
mode's sampler (``scheduler=``) and compositing (``reinject_known=``, ``residual_composite=``) as arguments, so the
pipeline measured is the pipeline shipped, and the evaluation leaves it as it was.

The stages of :func:`evaluate`: 1. detect (one detection per photo), 2. plan (a cut to the time budget,
:mod:`.planning`), 3. judge the unedited inputs, 4. edit and measure each batch as it comes, 5. realism (FID / KID,
:mod:`.realism`), 6. the report (:mod:`.report`). The state they share is in :mod:`.state`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..batch import default_batch_size
from ..faces.regions import FaceRegions
from ..image_processor import prepare_image
from .blendshapes import intended_rise, shared_judge
from .inputs import EvalInputs, EvalPhoto, ReferenceCrop, load_inputs, load_references, select_photos
from .metrics import (
    identity_distances,
    lab_change,
    preservation,
    psnr,
    relative_gain,
    seam_score,
)
from .modes import DEFAULT_STRENGTHS, MODES, PAPER_STRENGTH, ModeSpec, default_modes
from .planning import _fit_to_budget
from .realism import _measure_realism, _realism_pairs, _reference_counts
from .state import _Face, _Run

__all__ = ["MODES", "EvaluationResult", "ModeSpec", "evaluate"]  # MODES, ModeSpec: from .modes


THUMB_SIZE = 128
SAMPLE_PHOTOS = 2  # photos whose DDPM-mode edits are kept as thumbnails (the fast modes keep every face's)


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns: the report (as written to ``report.json``), the per-edit rows and the files."""

    report: dict[str, Any]
    edits: list[dict[str, Any]]
    files: dict[str, str]


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


def _check_arguments(
    data: Any, modes: Sequence[str] | None, strengths: Sequence[float], max_images: int | None
) -> None:
    if data is None:
        raise ValueError("data is required: a crop dataset, a folder of photos, a photo or a list of them")
    unknown = [m for m in modes or () if m not in MODES]
    if unknown or (modes is not None and not modes):
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
    for face in faces:
        face.blendshapes = shared_judge().read(face.rgb, face.regions.face.box)
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
    sampler = {
        "num_inference_steps": run.num_inference_steps(mode),
        "guidance_scale": run.guidance_scale,
        "negative_target": run.negative_target,
    }
    return run.pipe(
        [f.rgb for f in faces],
        target=[t for _, t in pairs],
        strength=strength,
        regions=run.regions,
        **(sampler if spec.pipeline_mode != "geometry" else {}),  # the warp alone has no sampler
        generator=[
            torch.Generator().manual_seed(_seed_for(run.seed, f.photo.name, t)) for f, (_, t) in zip(faces, pairs)
        ],
        output_type="np",
        allow_untrained_targets=run.allow_untrained_targets,
        faces=[[f.hard if spec.composite == "hard" else f.regions] for f in faces],
        **spec.pipeline_arguments(),
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
    scores = zip(probs, distances["euclidean"], distances["cosine"])
    for row, face, output, (p, euclid, cosine) in zip(rows, faces, outputs, scores):
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
        # The second judge: did the target's blendshapes rise on the output (MediaPipe, independent of the first)?
        after = shared_judge().read(output, face.regions.face.box) if face.blendshapes else None
        row["blendshape_rise"] = intended_rise(face.blendshapes, after, row["target"]) if after else None


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
# evaluate
# ---------------------------------------------------------------------------------------------------------------------


def evaluate(
    model: Any = None,
    data: Any = None,
    out_dir: str | os.PathLike = "report",
    targets: str | Sequence[str] = "all",
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    modes: Sequence[str] | None = None,
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
        modes: names from :data:`MODES` (the pipeline's modes and variants of the diffusion mode); ``None``: the
            model's ``default_mode`` and :data:`~.modes.DEFAULT_MODES`. The unedited baseline is always measured.
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
        modes = default_modes(pipe.config.default_mode, modes)
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
