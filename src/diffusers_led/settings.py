"""One resolve and check of every setting of an edit, shared by the pipeline's ``__call__``, ``led-edit`` and the demo.

Two steps, so that a command line refuses a bad argument before it loads a model:

1. :func:`check_request` needs no model: the mode's name, the target expressions, the action units (known names,
   numeric intensities in [-1.5, 1.5], no unit twice) and the strengths (numbers in [0, 1]; numpy scalars and 0-d
   tensors are numbers too); with the mode given, what the mode cannot do (a diffusion edit needs a target and takes
   no action units).
2. :func:`resolve_settings` completes the request from a pipeline's config and checks it against the model (regions,
   guidance, steps, generators, output type): an :class:`EditSettings`, what the stages of ``__call__`` read. It
   warns about options the mode ignores (``texture_strength`` outside ``"geometry+texture"``, the sampler's options
   in ``"geometry"``).

How strengths combine (the one definition):

* ``"diffusion"``: each image's start step is ``int(num_train_timesteps * strength)``, or ``start_timestep``; the
  default strength is the model's ``target_strengths`` entry for the target, else its ``default_strength``.
* ``"geometry"`` and ``"geometry+texture"``: ``strength`` is the share of the target's action-unit change made (its
  default the model's ``geometry_strength``); the ``action_units`` given are added at their own intensities, so that
  a target at strength 0 plus units is those units alone (the demo's sliders), and strength 0 without units returns
  the input unchanged. Where a target's change and a given unit add up beyond [-1.5, 1.5] the sum is clipped with a
  warning
  (:func:`~diffusers_led.geometry.action_units.expression_action_units`). In ``"geometry+texture"`` the UNet's start
  step inside an opened mouth is ``int(num_train_timesteps * texture_strength)``.

Torch is not imported here: the command line checks a request before loading it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .geometry.action_units import parse_action_units
from .labels import EDIT_MODES, canonical_expression

__all__ = [
    "EditRequest",
    "EditSettings",
    "check_request",
    "default_strength",
    "resolve_settings",
    "texture_label",
    "to_number",
]

#: Options that only the UNet reads: ignored (with a warning) by the warp alone.
SAMPLER_OPTIONS = ("num_inference_steps", "guidance_scale", "negative_target", "start_timestep")


@dataclass(frozen=True)
class EditRequest:
    """What a caller asked for, checked without a model (see :func:`check_request`)."""

    mode: str | None  # None: the model's default_mode
    targets: list[str | None]  # canonical expressions (None: action units alone); one for all images or one each
    units: dict[str, float]
    strength: float | None
    texture_strength: float | None


@dataclass
class EditSettings:
    """One ``__call__``'s settings, checked and completed from the model's config, per image where images differ:
    what the stages of the edit read. Each field means one thing in every mode."""

    mode: str
    targets: list[str | None]  # the canonical expression of each image (None: action units alone)
    labels: list[str]  # each image's UNet label: its target (diffusion) or the mouth's texture label (geometry)
    negatives: list[str]  # each image's negative label, "" for the null label
    units: dict[str, float]  # the given action units, added at their own intensities (geometry modes)
    regions: tuple[str, ...]  # the regions detection cuts and the diffusion mode re-generates
    num_inference_steps: int
    guidance_scale: float
    starts: list[int] = field(default_factory=list)  # each image's UNet start step (0: the UNet does not run)
    geometry_strength: float = 0.0  # the share of each target's action-unit change made (geometry modes)
    texture_strength: float = 0.0  # the UNet's strength inside an opened mouth ("geometry+texture")

    @property
    def nothing_to_do(self) -> bool:
        """Every image comes back exactly as it was: strength 0 and no action units."""
        if self.mode == "diffusion":
            return not any(self.starts)
        return self.geometry_strength == 0 and not self.units


def to_number(value: Any, name: str, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` as a float in ``[low, high]``: a Python or numpy number, or a 0-d array or tensor on any device
    that can read it. Raises ``ValueError`` naming ``name`` for anything else (booleans, NaN, sequences, a tensor
    on the meta device)."""
    number = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif getattr(value, "shape", None) == () or getattr(value, "ndim", None) == 0:
        try:
            item = value.item()
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
            message = f"`{name}` must be a number in [{low:g}, {high:g}]; its value cannot be read: {error}"
            raise ValueError(message) from None
        if isinstance(item, numbers.Real) and not isinstance(item, bool):
            number = float(item)
    if number is None or math.isnan(number) or not low <= number <= high:
        raise ValueError(f"`{name}` must be a number in [{low:g}, {high:g}], got {value!r}.")
    return number


def check_request(
    target: str | Sequence[str | None] | None = None,
    action_units: str | dict[str, float] | None = None,
    mode: str | None = None,
    strength: Any = None,
    texture_strength: Any = None,
) -> EditRequest:
    """Step 1: the caller's request checked without a model. ``mode`` ``None`` is the model's default, unknown here:
    the checks that depend on it run again in :func:`resolve_settings`.

    Raises:
        ValueError: an unknown mode or expression, bad action units, a strength that is not a number in [0, 1], a
            diffusion edit without a target or with action units.
    """
    if mode is not None:
        if not isinstance(mode, str) or mode.strip().lower() not in EDIT_MODES:
            raise ValueError(f"`mode` must be one of {', '.join(EDIT_MODES)}, got {mode!r}.")
        mode = mode.strip().lower()
    units = parse_action_units(action_units)
    if target is None and not units:
        raise ValueError("Pass a `target` expression, `action_units`, or both.")
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    targets = [None if t is None else canonical_expression(t) for t in targets]  # an empty list: see check_inputs
    strength = None if strength is None else to_number(strength, "strength")
    texture_strength = None if texture_strength is None else to_number(texture_strength, "texture_strength")
    if mode == "diffusion":
        if any(t is None for t in targets):
            raise ValueError(
                "The diffusion mode edits toward a `target` expression; action units need a geometry mode."
            )
        if units:
            raise ValueError("`action_units` move the face's geometry: they need a geometry mode, not diffusion.")
    return EditRequest(mode, targets, units, strength, texture_strength)


def _warn_ignored(mode: str, options: dict[str, Any]) -> None:
    """Warn about the options given (not ``None``) that ``mode`` does not read."""
    unread = ("texture_strength",) if mode != "geometry+texture" else ()
    if mode == "geometry":
        unread += SAMPLER_OPTIONS
    given = [name for name in unread if options.get(name) is not None]
    if given:
        warnings.warn(
            f"{', '.join(f'`{name}`' for name in given)} {'has' if len(given) == 1 else 'have'} no effect in the "
            f"{mode!r} mode and {'is' if len(given) == 1 else 'are'} ignored.",
            stacklevel=5,  # the caller of the pipeline (through resolve_settings, __call__ and torch's wrapper)
        )


def default_strength(config: Any, mode: str, target: str | None) -> float:
    """The strength a call without one uses (``config``: a pipeline's): in the diffusion mode the model's
    ``target_strengths`` entry for ``target``, else (or with no ``target``) its ``default_strength``; in the geometry
    modes its ``geometry_strength``."""
    if mode != "diffusion":
        return float(config.geometry_strength)
    if target is None:
        return float(config.default_strength)
    label = canonical_expression(target)
    return float((config.target_strengths or {}).get(label, config.default_strength))


def texture_label(trained_labels: Sequence[str], target: str | None) -> str:
    """The label the UNet re-generates a mouth with: the target when the model was trained on it, else neutral
    (a model knows what the inside of a mouth looks like even when it never saw the expression)."""
    if target in trained_labels:
        return target
    return "neutral" if "neutral" in trained_labels else trained_labels[0]


def resolve_settings(
    pipe: Any,
    request: EditRequest,
    images: list[Any],
    num_inference_steps: int | None = None,
    start_timestep: int | None = None,
    regions: Sequence[str] | str | None = None,
    guidance_scale: float | None = None,
    negative_target: str | list[str] | None = None,
    generator: Any = None,
    output_type: str = "pil",
    on_no_face: str = "error",
    allow_untrained_targets: bool = False,
    callback_on_step_end_tensor_inputs: list[str] | None = None,
) -> EditSettings:
    """Step 2: ``request`` completed from ``pipe``'s config (a :class:`~diffusers_led.LocalExpressionPipeline`) and
    checked against the model, for ``images``. Raises ``ValueError`` naming the argument at fault."""
    config = pipe.config
    mode = request.mode or config.default_mode
    if request.mode is None:  # the checks that depend on the mode, now that it is known
        request = check_request(request.targets, request.units, mode, request.strength, request.texture_strength)
    _warn_ignored(
        mode,
        {
            "texture_strength": request.texture_strength,
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "negative_target": negative_target,
            "start_timestep": start_timestep,
        },
    )
    if num_inference_steps is None:
        num_inference_steps = config.default_num_inference_steps
    if guidance_scale is None:
        guidance_scale = config.default_guidance_scale
    if negative_target is None:
        negative_target = config.default_negative_target or ""
    negatives = list(negative_target) if isinstance(negative_target, (list, tuple)) else [negative_target]
    if regions is None:  # the model's own regions: a mouth-only model has only "mouth"
        regions = config.regions
    regions = (regions,) if isinstance(regions, str) else tuple(regions)
    check_inputs(
        pipe,
        images,
        request.targets,
        start_timestep,
        num_inference_steps,
        regions,
        guidance_scale,
        negatives,
        generator,
        output_type,
        on_no_face,
        callback_on_step_end_tensor_inputs,
    )
    count = len(images)
    settings = EditSettings(
        mode=mode,
        targets=request.targets * (count // len(request.targets)),
        labels=[],
        negatives=[
            pipe.embeddings.resolve(negative, allow_untrained_targets)[0] if negative else ""
            for negative in negatives * (count // len(negatives))
        ],
        units=dict(request.units),
        regions=regions,
        num_inference_steps=int(num_inference_steps),
        guidance_scale=float(guidance_scale),
    )
    num_train_timesteps = pipe.scheduler.config.num_train_timesteps
    if mode == "diffusion":
        settings.labels = pipe.embeddings.resolve(settings.targets, allow_untrained_targets)
        if start_timestep is not None:
            settings.starts = [int(start_timestep)] * count
        else:
            strengths = [
                request.strength if request.strength is not None else default_strength(config, mode, t)
                for t in settings.labels
            ]
            settings.starts = [int(num_train_timesteps * value) for value in strengths]
        return settings
    settings.geometry_strength = default_strength(config, mode, None) if request.strength is None else request.strength
    settings.labels = [texture_label(pipe.embeddings.trained_labels, t) for t in settings.targets]
    if mode == "geometry+texture":
        texture = config.texture_strength if request.texture_strength is None else request.texture_strength
        settings.texture_strength = texture
        settings.starts = [int(num_train_timesteps * texture)] * count
    else:
        settings.starts = [0] * count
    return settings


def check_inputs(
    pipe: Any,
    images: list[Any],
    targets: list[Any],
    start_timestep: int | None,
    num_inference_steps: int,
    regions: Sequence[str],
    guidance_scale: float,
    negative_targets: list[Any],
    generator: Any,
    output_type: str,
    on_no_face: str,
    callback_on_step_end_tensor_inputs: list[str] | None,
) -> None:
    """The checks of a call's arguments against the model (``pipe``): counts, steps, regions, guidance."""
    if len(images) == 0:
        raise ValueError("`image` is empty: pass at least one image.")
    if len(targets) not in (1, len(images)):
        raise ValueError(
            f"Got {len(targets)} targets for {len(images)} images: pass one target for all images or one per image."
        )
    num_train_timesteps = pipe.scheduler.config.num_train_timesteps
    if start_timestep is not None and not (
        isinstance(start_timestep, numbers.Integral)
        and not isinstance(start_timestep, bool)
        and 0 <= start_timestep < num_train_timesteps
    ):
        raise ValueError(
            f"`start_timestep` must be an integer in [0, {num_train_timesteps - 1}], got {start_timestep!r}."
        )
    if (
        not isinstance(num_inference_steps, numbers.Integral)
        or isinstance(num_inference_steps, bool)
        or num_inference_steps < 1
    ):
        raise ValueError(f"`num_inference_steps` must be a positive integer, got {num_inference_steps!r}.")
    unknown = [region for region in regions if region not in pipe.config.regions]
    if unknown or not regions:
        raise ValueError(
            f"`regions` must be a non-empty subset of this model's regions {tuple(pipe.config.regions)}, "
            f"got {tuple(regions)}."
        )
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, numbers.Real) or not guidance_scale >= 1.0:
        raise ValueError(f"`guidance_scale` must be a number >= 1 (1 disables guidance), got {guidance_scale!r}.")
    if guidance_scale > 1.0 and not pipe.embeddings.supports_guidance:
        raise ValueError(
            "This model was trained without label dropout, so classifier-free guidance is undefined; "
            "use guidance_scale=1 or a model trained with --conditioning_dropout_prob > 0."
        )
    if len(negative_targets) not in (1, len(images)) or not all(isinstance(n, str) for n in negative_targets):
        raise ValueError(
            f'`negative_target` must be an expression (or "" for none), one for all images or one per image; '
            f"got {negative_targets!r} for {len(images)} images."
        )
    if isinstance(generator, list) and len(generator) != len(images):
        raise ValueError(f"Got {len(generator)} generators for {len(images)} images: pass one per image.")
    if output_type not in ("pil", "np", "pt"):
        raise ValueError(f"`output_type` must be 'pil', 'np' or 'pt', got {output_type!r}.")
    if on_no_face not in ("error", "skip"):
        raise ValueError(f"`on_no_face` must be 'error' or 'skip', got {on_no_face!r}.")
    if callback_on_step_end_tensor_inputs is not None and not all(
        k in pipe._callback_tensor_inputs for k in callback_on_step_end_tensor_inputs
    ):
        raise ValueError(f"`callback_on_step_end_tensor_inputs` must be in {pipe._callback_tensor_inputs}.")
