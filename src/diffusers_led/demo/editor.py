"""The edit logic of ``led-demo``, without Gradio: :class:`ExpressionEditor` checks a request through the pipeline's
own settings (:mod:`diffusers_led.settings`), edits, and says what it did."""

from __future__ import annotations

import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from ..image_processor import load_image
from ..labels import canonical_expression
from ..settings import check_request, default_strength, resolve_settings


class DemoInputError(ValueError):
    """A problem with what the user entered (no photo, unknown expression ...), shown as a message in the page."""


# ---------------------------------------------------------------------------------------------------------------------
# The edit, without Gradio
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class EditResult:
    """One finished edit.

    Attributes:
        before: the input photo as upright RGB ``uint8`` (what the overlay is drawn on).
        after: the edited photo as the pipeline returned it (same size and mode as the input).
        faces: the :class:`~diffusers_led.faces.regions.FaceRegions` of the edited faces.
        path: the edited photo saved as PNG (what the download button serves).
        summary: a one-line Markdown description of what was done.
        warnings: messages to show the user (untrained target, ...).
        steps: the denoising steps that ran.
    """

    before: np.ndarray
    after: PIL.Image.Image
    faces: list[Any]
    path: str
    summary: str
    warnings: list[str] = field(default_factory=list)
    steps: int = 0


def count_denoising_steps(scheduler, start_timestep: int, num_inference_steps: int) -> int:
    """How many steps of ``num_inference_steps`` lie at or below ``start_timestep`` (what SDEdit runs), computed on a
    fresh copy of ``scheduler`` so the pipeline's own scheduler is not touched. Used for the progress bar only."""
    fresh = type(scheduler).from_config(scheduler.config)
    fresh.set_timesteps(num_inference_steps)
    timesteps = fresh.timesteps
    order = getattr(fresh, "order", 1)
    begin = next((i for i in range(0, len(timesteps), order) if timesteps[i] <= start_timestep), len(timesteps))
    return max(1, len(timesteps) - begin)


def _safe_stem(path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("._") or "photo"
    return stem[:60]


class ExpressionEditor:
    """What the demo does, independent of Gradio: read a photo, check the request, edit, draw the overlay, save.

    Args:
        pipe: a loaded :class:`~diffusers_led.LocalExpressionPipeline`.
        output_dir: where edited PNGs are written (default: a fresh temporary folder).
        model_name: how the model is named in the page.
    """

    def __init__(self, pipe, output_dir: str | None = None, model_name: str | None = None):
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=True)
        self.output_dir = Path(output_dir or tempfile.mkdtemp(prefix="led-demo-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.model_name = model_name or str(getattr(pipe, "name_or_path", "") or "model")
        self._lock = threading.Lock()  # one pipeline, one edit at a time (its scheduler holds state)
        self._counter = 0

    # What the model offers -------------------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.pipe.embeddings.labels)

    @property
    def trained_labels(self) -> list[str]:
        return list(self.pipe.embeddings.trained_labels)

    @property
    def supports_guidance(self) -> bool:
        return bool(self.pipe.embeddings.supports_guidance)

    @property
    def regions(self) -> list[str]:
        return list(self.pipe.config.regions)

    @property
    def default_steps(self) -> int:
        return int(self.pipe.config.default_num_inference_steps)

    @property
    def default_mode(self) -> str:
        return str(self.pipe.config.default_mode)

    @property
    def default_strength(self) -> float:
        return default_strength(self.pipe.config, self.default_mode, None)

    def strength_for(self, target: str | None, mode: str | None = None) -> float:
        """The model's default strength for ``target`` in ``mode``: its `geometry_strength` in the geometry modes,
        else its `target_strengths` entry or `default_strength`."""
        mode = mode or self.default_mode
        try:
            label = self.resolve_target(target)[0]
        except DemoInputError:  # no usable target chosen yet: the model's general default
            label = None
        return default_strength(self.pipe.config, mode, label)

    @property
    def default_guidance_scale(self) -> float:
        return float(self.pipe.config.default_guidance_scale) if self.supports_guidance else 1.0

    @property
    def num_train_timesteps(self) -> int:
        return int(self.pipe.scheduler.config.num_train_timesteps)

    def target_choices(self) -> list[tuple[str, str]]:
        """``(display name, label)`` pairs for the dropdown; labels the model was not trained on say so."""
        trained = set(self.trained_labels)
        return [(label if label in trained else f"{label} (not trained)", label) for label in self.labels]

    def default_target(self) -> str:
        trained = self.trained_labels
        return "happy" if "happy" in trained else (trained[0] if trained else self.labels[0])

    # Checks ----------------------------------------------------------------------------------------------------------
    def resolve_target(self, target: str | None) -> tuple[str, str | None]:
        """The canonical label for ``target`` (a label or an alias such as "joy") and a warning if the model was not
        trained on it.

        Raises:
            DemoInputError: empty, unknown, or not in this model's embedding table.
        """
        if target is None or not str(target).strip():
            raise DemoInputError("Choose a target expression.")
        text = re.sub(r"\s*\(not trained\)\s*$", "", str(target).strip())
        try:
            label = canonical_expression(text)
        except ValueError as error:
            raise DemoInputError(str(error)) from None
        if label not in self.labels:
            raise DemoInputError(f"This model has no embedding for {label!r}; it knows: {', '.join(self.labels)}.")
        if label not in self.trained_labels:
            return label, (
                f"This model was not trained on {label!r} (trained on: {', '.join(self.trained_labels)}); "
                "the edit is shown, but do not expect that expression."
            )
        return label, None

    @staticmethod
    def load(image_path: str | None) -> PIL.Image.Image:
        """Open the uploaded file.

        Raises:
            DemoInputError: nothing uploaded. ImageLoadError: not a readable image.
        """
        if not image_path:
            raise DemoInputError("Upload a photo first (or click the example below the upload box).")
        return load_image(image_path)

    def detect(self, image: PIL.Image.Image) -> tuple[np.ndarray, list[Any]]:
        """The upright RGB copy of ``image`` and its faces with their regions (for the overlay before an edit)."""
        from ..image_processor import prepare_image

        rgb = prepare_image(image).rgb
        with self._lock:
            faces = self.pipe.region_processor.extract(rgb, regions=tuple(self.regions))
        return rgb, faces

    def overlay(self, rgb: np.ndarray, faces: Sequence[Any]) -> np.ndarray:
        """``rgb`` with the face boxes, the 5 landmarks and the region quads drawn on it."""
        return self.pipe.region_processor.draw_regions(np.ascontiguousarray(rgb), list(faces))

    # The edit --------------------------------------------------------------------------------------------------------
    def edit(
        self,
        image_path: str | None,
        target: str | None,
        strength: float | None = None,
        steps: int | None = None,
        seed: float | None = 0,
        guidance_scale: float | None = None,
        regions: Sequence[str] | None = None,
        progress: Callable[[int, int, str], None] | None = None,
        mode: str | None = None,
        action_units: dict | None = None,
    ) -> EditResult:
        """Edit every face of the photo at ``image_path`` toward ``target`` (in ``mode``, default the model's), with
        ``action_units`` (name -> intensity) on top.

        ``progress(done, total, description)`` is called before the edit and after every denoising step (through the
        pipeline's ``callback_on_step_end``).

        Raises:
            DemoInputError, ImageLoadError, NoFaceDetectedError, ValueError (from the pipeline's checks).
        """
        import torch

        from ..image_processor import prepare_image

        mode = mode or self.default_mode
        units = {name: float(value) for name, value in (action_units or {}).items() if value}
        label, untrained_warning = self.resolve_target(target)
        if mode != "diffusion":
            untrained_warning = None  # the geometry modes make every expression
        strength = self.strength_for(label, mode) if strength is None else strength
        steps = int(steps) if steps else self.default_steps
        guidance_scale = float(self.default_guidance_scale if guidance_scale is None else guidance_scale or 1.0)
        if guidance_scale > 1.0 and not self.supports_guidance:
            raise DemoInputError(
                "This model was trained without label dropout, so it has no guidance; set guidance to 1."
            )
        regions = tuple(self.regions) if regions is None else tuple(regions)
        if not regions:
            raise DemoInputError("Choose at least one region (eyes or mouth).")
        seed = int(seed) if seed is not None and not (isinstance(seed, float) and np.isnan(seed)) else 0
        sampler = {"num_inference_steps": steps, "guidance_scale": guidance_scale} if mode != "geometry" else {}
        try:  # the pipeline's own resolution: the same checks, strengths and start step as the call below
            request = check_request(label, units or None, mode, strength)
            with warnings.catch_warnings():  # the page shows its own message for an untrained target
                warnings.filterwarnings("ignore", message=".*not trained on")
                settings = resolve_settings(
                    self.pipe, request, [None], regions=regions, allow_untrained_targets=True, **sampler
                )
        except ValueError as error:
            raise DemoInputError(str(error)) from None
        strength = float(request.strength)

        image = self.load(image_path)
        before = prepare_image(image).rgb
        start_timestep = settings.starts[0]
        messages = [untrained_warning] if untrained_warning else []

        with self._lock:
            total = count_denoising_steps(self.pipe.scheduler, start_timestep, steps) if start_timestep > 0 else 0
            ran = {"steps": 0}

            def on_step_end(pipe, i, t, callback_kwargs):
                ran["steps"] = i + 1
                if progress is not None:
                    progress(i + 1, max(total, i + 1), f"Denoising step {i + 1}/{max(total, i + 1)} (t={int(t)})")
                return callback_kwargs

            if progress is not None:
                progress(0, max(total, 1), "Finding faces")
            began = time.perf_counter()
            with warnings.catch_warnings():
                # The page shows its own message for an untrained target; other warnings go to the server log.
                warnings.filterwarnings("ignore", message=".*not trained on")
                output = self.pipe(
                    image,
                    target=label,
                    strength=strength,
                    regions=regions,
                    **sampler,
                    generator=torch.Generator().manual_seed(seed),
                    allow_untrained_targets=True,
                    callback_on_step_end=on_step_end,
                    mode=mode,
                    action_units=units or None,
                )
            seconds = time.perf_counter() - began
        after, faces = output.images[0], output.faces[0]

        self._counter += 1
        folder = self.output_dir / f"{self._counter:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_safe_stem(image_path)}_{label}.png"
        after.save(path)

        count = len(faces)
        guidance = f", guidance {guidance_scale:g}" if guidance_scale > 1 else ""
        if guidance and self.pipe.config.default_negative_target:
            guidance += f" away from {self.pipe.config.default_negative_target}"
        summary = (
            f"Edited {count} face{'s' if count != 1 else ''} ({', '.join(regions)}) toward **{label}** at strength "
            f"{strength:.2f} (t_i = {start_timestep}), {ran['steps']} denoising step{'s' if ran['steps'] != 1 else ''}"
            f"{guidance}, seed {seed}, in {seconds:.1f} s."
        )
        if mode != "diffusion":
            moved = f" + {', '.join(f'{k} {v:+.2f}' for k, v in units.items())}" if units else ""
            texture = f", the UNet re-drew opened mouths in {ran['steps']} steps" if ran["steps"] else ""
            summary = (
                f"Moved {count} face{'s' if count != 1 else ''} toward **{label}** at strength {strength:.2f}{moved} "
                f"({mode}: a warp of the face's own features{texture}), in {seconds:.1f} s."
            )
        if strength == 0 and not units:
            summary = "Strength 0: the photo is returned unchanged."
        return EditResult(before, after, list(faces), str(path), summary, messages, ran["steps"])
