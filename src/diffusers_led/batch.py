"""Editing many photos fast: batches, and face detection of the next batch in a background thread while the current
batch is denoised (the CPU thread settings are in :mod:`diffusers_led.cpu`).

The diffusion runs in the calling thread with torch's intra-op threads; dlib's HOG detector and landmark predictor
release the GIL, so detecting the next batch in one background thread keeps a second core busy without slowing the
UNet. :func:`edit_files` is what ``led-edit`` runs on a folder (on each process under ``accelerate launch``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .image_processor import ImageLoadError, load_image, prepare_image

__all__ = [
    "FileResult",
    "edit_files",
    "preload_face_detector",
    "wait_for_preloads",
]

# The preload threads started and not yet waited for (see wait_for_preloads).
_PRELOADS: list[threading.Thread] = []


def preload_face_detector(model: str | None) -> threading.Thread | None:
    """Start loading the face detector of a local model folder (dlib's models: about a second) in a thread, so it
    overlaps importing torch/diffusers and loading the UNet. Returns the thread, or ``None`` when the model is not a
    local folder. Failures are left for the real load to report.

    Call :func:`wait_for_preloads` before the program ends, whatever happens: a thread still inside dlib's C++ code
    when the interpreter exits aborts the process ("terminate called without an active exception"). The thread is
    not a daemon, so the interpreter also waits for it at a normal exit.
    """
    import json

    from .faces.detection import load_face_detector
    from .pretrained import resolve_model

    try:
        model = resolve_model(model)
    except FileNotFoundError:
        return None
    index = Path(model) / "model_index.json"
    try:
        spec = json.loads(index.read_text(encoding="utf-8")).get("face_detector", "dlib")
        detector = load_face_detector(spec)
    except (OSError, ValueError, ImportError):
        return None

    def load() -> None:
        try:
            detector.load()
        except Exception:  # noqa: BLE001, S110 - the real load reports failures
            pass

    thread = threading.Thread(target=load, name="led-detector-preload", daemon=False)
    thread.start()
    _PRELOADS.append(thread)
    return thread


def wait_for_preloads() -> None:
    """Wait until every thread of :func:`preload_face_detector` has finished (about a second at most)."""
    while _PRELOADS:
        _PRELOADS[0].join()
        _PRELOADS.pop(0)


@dataclass
class FileResult:
    """The outcome of one input file: the edited image (same mode and size as the input) and its faces, or the
    reason it was not edited."""

    path: Path
    image: Any = None
    source: Any = None
    faces: list[Any] = field(default_factory=list)
    error: str | None = None


@dataclass
class _Loaded:
    path: Path
    image: Any = None
    faces: list[Any] | None = None
    error: str | None = None


def _load_and_detect(pipe, paths: Sequence[Path], regions: tuple[str, ...]) -> list[_Loaded]:
    """Read and detect one batch (runs in the background thread); every failure stays with its file."""
    items = []
    for index, path in enumerate(paths):
        item = _Loaded(Path(path))
        try:
            item.image = load_image(path)
            prepared = prepare_image(item.image, index)
            item.faces = pipe.region_processor.extract(prepared.rgb, regions=regions)
            if not item.faces:
                item.error = f"{path}: no face detected; nothing written."
        except ImageLoadError as error:
            item.error = str(error)
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
            item.error = f"{path}: {type(error).__name__}: {error}"
        items.append(item)
    return items


#: Crops per UNet call that the default batch sizes aim at: on 2 cores the `cpu`-preset UNet takes 18 ms per crop at
#: 16 crops, 26 ms at 64 and 34 ms at 128 (larger batches fall out of the CPU caches).
CROPS_PER_UNET_CALL = 16


def crops_per_face(num_regions: int, guidance_scale: float) -> int:
    """The crops one face puts into every UNet call: one per region, twice with classifier-free guidance (the
    pipeline runs the conditional and unconditional halves in one call when ``guidance_scale > 1``)."""
    return num_regions * (2 if guidance_scale > 1 else 1)


def default_batch_size(pipe, guidance_scale: float | None = None, faces_per_image: int = 1) -> int:
    """Images per pipeline call so that one UNet call holds about :data:`CROPS_PER_UNET_CALL` crops (see
    :func:`crops_per_face`; ``None`` means the model's default guidance)."""
    if guidance_scale is None:
        guidance_scale = float(pipe.config.default_guidance_scale)
    crops_per_image = crops_per_face(len(pipe.config.regions), guidance_scale) * max(1, faces_per_image)
    return max(1, CROPS_PER_UNET_CALL // crops_per_image)


def edit_files(
    pipe,
    paths: Sequence[os.PathLike],
    target: str,
    batch_size: int | None = None,
    prefetch: bool = True,
    seed: int | None = 0,
    regions: Sequence[str] | None = None,
    bf16: bool = False,
    **call_kwargs: Any,
) -> Iterator[FileResult]:
    """Edit image files in batches, yielding one :class:`FileResult` per file in order.

    Each batch is one pipeline call, so all crops of all faces of its images share every UNet call. With
    ``prefetch``, the next batch is read and its faces detected in a background thread while the current one is
    denoised. Each file gets its own generator seeded with ``seed``, so a file's result does not depend on the batch
    it is in. A file that cannot be read, has no face, or makes the pipeline fail is reported in its result and the
    others go on.

    ``regions`` defaults to all the regions the model was trained on (its config). ``bf16`` runs the UNet in bfloat16
    autocast on the pipeline's device (see :func:`bf16_is_fast`). ``call_kwargs`` go to the pipeline call
    (``strength``, ``num_inference_steps``, ``guidance_scale`` ...). ``batch_size`` defaults to
    :func:`default_batch_size`.
    """

    paths = [Path(p) for p in paths]
    if batch_size is None:
        batch_size = default_batch_size(pipe, call_kwargs.get("guidance_scale"))
    regions = tuple(pipe.config.regions if regions is None else regions)
    batches = [paths[i : i + max(1, batch_size)] for i in range(0, len(paths), max(1, batch_size))]
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="led-detect") if prefetch else None
    try:
        pending = executor.submit(_load_and_detect, pipe, batches[0], regions) if executor and batches else None
        for index, batch in enumerate(batches):
            loaded = pending.result() if pending is not None else _load_and_detect(pipe, batch, regions)
            pending = None
            if executor is not None and index + 1 < len(batches):
                pending = executor.submit(_load_and_detect, pipe, batches[index + 1], regions)
            yield from _edit_batch(pipe, loaded, target, seed, regions, bf16, call_kwargs)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def _edit_batch(
    pipe, loaded: list[_Loaded], target, seed, regions, bf16: bool, call_kwargs: dict[str, Any]
) -> Iterator[FileResult]:
    import torch

    ready = [item for item in loaded if item.error is None]
    edited: dict[int, Any] = {}
    errors: dict[int, str] = {}

    def run(items: list[_Loaded]) -> None:
        with torch.autocast(pipe.device.type, dtype=torch.bfloat16, enabled=bf16):
            output = pipe(
                [item.image for item in items],
                target=target,
                faces=[item.faces for item in items],
                regions=regions,
                generator=None if seed is None else [torch.Generator().manual_seed(seed) for _ in items],
                on_no_face="skip",
                **call_kwargs,
            )
        for item, image in zip(items, output.images):
            edited[id(item)] = image

    if ready:
        try:
            run(ready)
        except Exception:  # noqa: BLE001 - find the file(s) that fail, one by one
            for item in ready:
                try:
                    run([item])
                except Exception as error:  # noqa: BLE001
                    errors[id(item)] = f"{item.path}: {type(error).__name__}: {error}"
    for item in loaded:
        error = item.error or errors.get(id(item))
        if error is not None:
            yield FileResult(item.path, source=item.image, error=error)
        else:
            yield FileResult(item.path, image=edited[id(item)], source=item.image, faces=item.faces or [])
