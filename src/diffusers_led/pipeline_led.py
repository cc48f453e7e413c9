"""LocalExpressionPipeline: change a facial expression by re-generating only the eye and mouth regions."""

from __future__ import annotations

import inspect
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, UNet2DConditionModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.schedulers import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput, logging, replace_example_docstring
from diffusers.utils.hub_utils import load_or_create_model_card, populate_model_card
from diffusers.utils.torch_utils import randn_tensor
from huggingface_hub import create_repo

from .action_units import estimate_action_units, expression_action_units, parse_action_units
from .expressions import ExpressionEmbeddings, canonical_expression
from .image_processor import (
    CropExposure,
    ImageInput,
    PreparedImage,
    crops_to_tensor,
    is_image_batch,
    prepare_image,
    restore_image,
    return_unchanged,
    tensor_to_crops,
)
from .labels import EDIT_MODES
from .model_checks import (
    UnsafeWeightsError,
    check_model_folder,
    check_model_reference,
    pickled_only_components,
    unsafe_weights_message,
)
from .regions import FaceRegionProcessor, FaceRegions, face_shape, five_landmarks
from .serialization import commit_folder, remove_stale_shards, staging_folder
from .warp import action_unit_warp, inner_mouth_mask

#: Below this share of an edit's movement (FaceWarp.kept), the pipeline says that a face could not be edited fully.
FOLD_WARNING = 0.5

logger = logging.get_logger(__name__)

#: The fast default sampler, chosen with benchmarks/bench_schedulers.py on the trained default model (held-out faces,
#: strength 0.5): DPM-Solver++ (2M) on "trailing" timesteps, 10 steps of the full schedule = 5 UNet calls from t_249,
#: 47x faster than the paper's DDPM from t_250 (251 calls) and as close to it (26.2 dB PSNR over the regions) as the
#: converged ODE solution (26.4 dB), closer than two paper-mode edits are to each other (23.4 dB); 33.7 dB from the
#: converged solution (DDIM, UniPC, Euler: 33.1 dB). "trailing" makes every sampler start at the step `strength`
#: asks for ("linspace" starts DDIM at t_222, "leading" starts DPM-Solver at t_225).
FAST_SCHEDULER_CLASS = "DPMSolverMultistepScheduler"
FAST_SCHEDULER_CONFIG = {"algorithm_type": "dpmsolver++", "solver_order": 2, "timestep_spacing": "trailing"}
FAST_NUM_INFERENCE_STEPS = 10


def fast_scheduler(config: dict[str, Any]):
    """The fast default sampler (:data:`FAST_SCHEDULER_CLASS`) on the noise schedule of `config` (e.g. the training
    `DDPMScheduler`'s config); `DDPMScheduler.from_config(fast.config)` gives the paper's scheduler back."""
    import diffusers

    return getattr(diffusers, FAST_SCHEDULER_CLASS).from_config(config, **FAST_SCHEDULER_CONFIG)


@dataclass
class _EditSettings:
    """One `__call__`'s arguments checked and completed from the model's config, per image where images differ: what
    the stages of the edit read."""

    mode: str
    targets: list[str | None]  # labels (diffusion), canonical expressions or None (geometry), one per image
    negatives: list[str]  # one per image, "" for the null label
    units: dict[str, float]
    regions: tuple[str, ...]
    num_inference_steps: int
    guidance_scale: float
    starts: list[int] = field(default_factory=list)  # the SDEdit start step per image (the texture's in geometry)
    geometry_strength: float = 0.0
    texture_strength: float = 0.0

    @property
    def nothing_to_do(self) -> bool:
        if self.mode == "diffusion":
            return not any(self.starts)
        return self.geometry_strength == 0 and not self.units


EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> from PIL import Image
        >>> from diffusers_led import LocalExpressionPipeline

        >>> pipe = LocalExpressionPipeline.from_pretrained("path/or/hub-id")
        >>> image = Image.open("portrait.jpg")
        >>> edited = pipe(image, target="contempt", strength=0.5).images[0]
        >>> smile = pipe(image, action_units={"AU12": 0.8, "AU6": 0.4}).images[0]
        ```
"""


class NoFaceDetectedError(ValueError):
    """Raised when an input image has no detectable face."""


@dataclass
class LocalExpressionPipelineOutput(BaseOutput):
    """
    Output class for the local expression pipeline.

    Args:
        images (`List[PIL.Image.Image]`, `List[np.ndarray]` or `List[torch.Tensor]`):
            The edited images, each in the size, channel layout (grayscale, RGB, with alpha) of its input.
        faces (`List[List[FaceRegions]]`):
            For each image, the faces that were edited: landmarks, alignment matrix and region boxes.
    """

    images: list[Any]
    faces: list[list[FaceRegions]]


class LocalExpressionPipeline(DiffusionPipeline):
    r"""
    Pipeline for local facial expression editing (Local Expression Diffusion): every face is detected and aligned,
    its eye and mouth regions are cropped to small squares, noised to an intermediate step and denoised toward the
    target expression (SDEdit), then blended back with a soft mask. Pixels outside the masks are untouched.

    This model inherits from [`DiffusionPipeline`]. Check the superclass documentation for the generic methods
    implemented for all pipelines (downloading, saving, running on a particular device, etc.).

    Parameters:
        unet ([`UNet2DConditionModel`]):
            The conditional denoiser of the region crops. One input channel means the model edits luminance only
            (the colour of the photo is kept); three means RGB.
        scheduler ([`SchedulerMixin`]):
            A scheduler for the denoising loop, e.g. [`DDPMScheduler`] (the paper), [`DDIMScheduler`] or
            [`DPMSolverMultistepScheduler`].
        embeddings ([`ExpressionEmbeddings`]):
            The table of expression-label embeddings the UNet is conditioned on.
        face_detector (`str`, defaults to `"dlib"`):
            The face detector: `"dlib"` (offline default) or `"yunet:<path to the YuNet ONNX file>"`.
        regions (`List[str]`, defaults to `["eyes", "mouth"]`):
            The regions the model was trained on.
        feather (`float` or `List[float]`, defaults to `[0.1, 0.25]`):
            The width of the soft blend mask's falloff as a fraction of the crop, horizontally and vertically.
            The horizontal falloff is narrow because the paper's mouth box leaves only 10 px beside each corner.
        region_anchor (`str`, defaults to `"landmarks"`):
            Where the region boxes sit: on the face's aligned landmarks (the paper's Eq. 1-4) or at fixed places on
            the aligned face (`"template"`). Set by training to the geometry of the training crops.
        region_margins (`Dict[str, List[float]]`, *optional*):
            The `(mx, my)` box margins per region in canonical pixels; `None` for the anchor's defaults.
        residual_composite (`bool`, defaults to `True`):
            Composite only the change the model made to each crop (upsampled) instead of the crop itself, so the
            photo keeps its own detail at any resolution and unchanged areas stay exactly as they were.
        default_num_inference_steps (`int`, defaults to 10):
            The number of steps of the full schedule used when `num_inference_steps` is not given (see
            [`~LocalExpressionPipeline.use_fast_scheduler`]).
        default_strength (`float`, defaults to 0.5):
            The `strength` used when none is given: the setting the model was measured at (its model card).
        target_strengths (`Dict[str, float]`, *optional*):
            Per target expression, the `strength` used when none is given, instead of `default_strength`: a model
            may need more noise to open a smile than to lower the brows (its model card says how they were chosen).
        default_guidance_scale (`float`, defaults to 1.0):
            The `guidance_scale` used when none is given.
        default_negative_target (`str`, *optional*):
            The `negative_target` used when none is given; `None` or `""` is plain classifier-free guidance.
        crop_statistics (`Dict[str, List[float]]`, *optional*):
            Per region, the mean level and the mean contrast (standard deviation) of the training crops in the UNet's
            [-1, 1] units. When set, every crop is mapped to them before denoising and the result mapped back (see
            [`CropExposure`]), so a darker or flatter photo than the training photos is edited like one of them.
            Set by `train_led.py --match_crop_exposure`; `None` edits the crops as they are.
        default_mode (`str`, defaults to `"diffusion"`):
            How a call without `mode` edits (see [`~LocalExpressionPipeline.__call__`]): `"geometry+texture"`,
            `"geometry"` or `"diffusion"` (the paper).
        geometry_strength (`float`, defaults to 0.8):
            The `strength` of the geometry modes when none is given: the fraction of each expression's
            action-unit prototype a face is moved toward.
        texture_strength (`float`, defaults to 0.5):
            The SDEdit strength of the UNet inside a mouth that the warp opened, when none is given.
        license (`str`, *optional*):
            How the weights may be used, as their model card says (e.g. "non-commercial research use only" for a
            model trained on CK+ or RaFD). Informational: the pipeline does not enforce it.
    """

    model_cpu_offload_seq = "unet"
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        embeddings: ExpressionEmbeddings,
        face_detector: str = "dlib",
        regions: list[str] = None,
        feather: float | list[float] = None,
        region_anchor: str = "landmarks",
        region_margins: dict[str, list[float]] | None = None,
        residual_composite: bool = True,
        default_num_inference_steps: int = FAST_NUM_INFERENCE_STEPS,
        default_strength: float = 0.5,
        target_strengths: dict[str, float] | None = None,
        default_guidance_scale: float = 1.0,
        default_negative_target: str | None = None,
        crop_statistics: dict[str, list[float]] | None = None,
        default_mode: str = "diffusion",
        geometry_strength: float = 0.8,
        texture_strength: float = 0.5,
        license: str | None = None,
    ):
        if feather is None:
            feather = [0.1, 0.25]
        if regions is None:
            regions = ["eyes", "mouth"]
        super().__init__()
        if default_mode not in EDIT_MODES:
            raise ValueError(f"`default_mode` must be one of {', '.join(EDIT_MODES)}, got {default_mode!r}.")
        for name, value in (("geometry_strength", geometry_strength), ("texture_strength", texture_strength)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
        bad = {label: value for label, value in (target_strengths or {}).items() if not 0.0 < value <= 1.0}
        if bad:
            raise ValueError(f"`target_strengths` must be in (0, 1], got {bad}.")
        self.register_modules(unet=unet, scheduler=scheduler, embeddings=embeddings)
        self.register_to_config(
            face_detector=face_detector,
            regions=list(regions),
            feather=list(feather) if isinstance(feather, (list, tuple)) else feather,
            region_anchor=region_anchor,
            region_margins={k: list(v) for k, v in region_margins.items()} if region_margins else None,
            residual_composite=residual_composite,
            default_num_inference_steps=default_num_inference_steps,
            default_strength=default_strength,
            target_strengths={
                embeddings.resolve([label], True)[0]: float(value) for label, value in target_strengths.items()
            }
            if target_strengths
            else None,
            default_guidance_scale=default_guidance_scale,
            default_negative_target=default_negative_target,
            crop_statistics={k: [float(x) for x in v] for k, v in crop_statistics.items()}
            if crop_statistics
            else None,
            default_mode=default_mode,
            geometry_strength=float(geometry_strength),
            texture_strength=float(texture_strength),
            license=license,
        )
        # Not a diffusers component (OpenCV, no weights): rebuilt from the config, like VaeImageProcessor.
        self.region_processor = self._make_region_processor()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> LocalExpressionPipeline:
        """Load like [`DiffusionPipeline.from_pretrained`], but from safetensors only unless
        `use_safetensors=False` is passed explicitly (pickled weights can execute code)."""
        kwargs.setdefault("use_safetensors", True)
        check_model_reference(pretrained_model_name_or_path)
        local = Path(pretrained_model_name_or_path, kwargs.get("subfolder") or "")
        if local.is_dir():
            check_model_folder(local)  # before diffusers allocates anything from the configs
        if kwargs["use_safetensors"]:
            found = pickled_only_components(pretrained_model_name_or_path, kwargs.get("subfolder"))
            if found:
                raise UnsafeWeightsError(unsafe_weights_message(pretrained_model_name_or_path, found))
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except OSError as error:  # a Hub repo or cached snapshot without safetensors
            if kwargs["use_safetensors"] and "Could not find the necessary `safetensors`" in str(error):
                message = unsafe_weights_message(pretrained_model_name_or_path, [str(error)])
                raise UnsafeWeightsError(message) from error
            if "Unable to load weights from checkpoint file" in str(error):
                raise OSError(
                    f"{str(error).strip()} The file is corrupt or truncated (an interrupted copy or download?): "
                    "download the model again, or save it again from a good copy."
                ) from error
            raise

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ):
        """[`DiffusionPipeline.save_pretrained`], crash-safe: everything is written into a temporary folder beside
        `save_directory` and moved into place only once complete (see [`~serialization.commit_folder`]), so a crash
        or a kill during the save leaves the previous files intact. Files already in `save_directory` that the
        pipeline does not write (checkpoints, a model card, a `non_ema` variant) are kept. With `push_to_hub=True` the
        folder is uploaded after it is complete (`repo_id`, `token`, `private`, `commit_message`, `create_pr` as in
        diffusers)."""
        final = Path(save_directory)
        hub_keys = ("commit_message", "private", "create_pr", "token", "repo_id")
        hub = {key: kwargs.pop(key) for key in hub_keys if key in kwargs}
        if push_to_hub:  # as diffusers: the repository first, so that a bad token fails before the save
            hub["repo_id"] = create_repo(
                hub.get("repo_id", final.name), exist_ok=True, private=hub.get("private"), token=hub.get("token")
            ).repo_id
        with staging_folder(final, "saving") as staging:  # also removes the staging folders of killed saves
            super().save_pretrained(
                staging,
                safe_serialization=safe_serialization,
                variant=variant,
                max_shard_size=max_shard_size,
                **kwargs,
            )
            if push_to_hub:
                card = load_or_create_model_card(hub["repo_id"], token=hub.get("token"), is_pipeline=True)
                card = populate_model_card(card)
                card.save(os.path.join(staging, "README.md"))
            # model_index.json last: until it is replaced, the folder loads as the previous save.
            remove_stale_shards(commit_folder(staging, final, last=("model_index.json",)))
        if push_to_hub:
            self._upload_folder(
                os.fspath(final),
                hub["repo_id"],
                token=hub.get("token"),
                commit_message=hub.get("commit_message"),
                create_pr=hub.get("create_pr", False),
            )

    @property
    def color_mode(self) -> str:
        """`"luminance"` for a one-channel UNet, `"rgb"` for a three-channel one."""
        return "luminance" if self.unet.config.in_channels == 1 else "rgb"

    def use_fast_scheduler(self, num_inference_steps: int = FAST_NUM_INFERENCE_STEPS) -> None:
        """Make the measured fast sampler the default, as a saved model should carry it: [`fast_scheduler`] on this
        model's noise schedule and `num_inference_steps` steps of the full schedule (5 UNet calls at strength 0.5).
        The paper's mode stays one line away: `pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)` and
        `num_inference_steps=pipe.scheduler.config.num_train_timesteps` (`led-edit --paper`)."""
        self.scheduler = fast_scheduler(self.scheduler.config)
        self.register_to_config(default_num_inference_steps=int(num_inference_steps))

    def default_strength_for(self, target: str) -> float:
        """The strength a call without one uses for `target` (a label or an alias): the model's `target_strengths`
        entry for it, else its `default_strength`. A lookup: it does not check or warn what the model was trained on
        (the geometry modes edit toward every expression)."""
        label = canonical_expression(target)
        return float((self.config.target_strengths or {}).get(label, self.config.default_strength))

    def set_face_detector(self, face_detector: str) -> None:
        """Switch the face detector (e.g. to `"yunet:/path/face_detection_yunet.onnx"`) and record it in the config."""
        self.register_to_config(face_detector=face_detector)
        self.region_processor = self._make_region_processor()

    def _make_region_processor(self) -> FaceRegionProcessor:
        feather = self.config.feather
        return FaceRegionProcessor(
            detector=self.config.face_detector,
            regions=tuple(self.config.regions),
            crop_size=self.unet.config.sample_size,
            feather=tuple(feather) if isinstance(feather, list) else feather,
            region_anchor=self.config.region_anchor,
            margins=self.config.region_margins,
        )

    def check_inputs(
        self,
        images: list[Any],
        targets: list[Any],
        strength: float,
        start_timestep: int | None,
        num_inference_steps: int,
        regions: Sequence[str],
        guidance_scale: float,
        negative_targets: list[Any],
        generator: torch.Generator | list[torch.Generator] | None,
        output_type: str,
        callback_on_step_end_tensor_inputs: list[str] | None,
    ) -> None:
        if len(images) == 0:
            raise ValueError("`image` is empty: pass at least one image.")
        if len(targets) not in (1, len(images)):
            raise ValueError(
                f"Got {len(targets)} targets for {len(images)} images: pass one target for all images or one per "
                "image."
            )
        if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0.0 <= strength <= 1.0:
            raise ValueError(f"`strength` must be a number in [0, 1], got {strength!r}.")
        num_train_timesteps = self.scheduler.config.num_train_timesteps
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
        unknown = [region for region in regions if region not in self.config.regions]
        if unknown or not regions:
            raise ValueError(
                f"`regions` must be a non-empty subset of this model's regions {tuple(self.config.regions)}, "
                f"got {tuple(regions)}."
            )
        if (
            isinstance(guidance_scale, bool)
            or not isinstance(guidance_scale, numbers.Real)
            or not guidance_scale >= 1.0
        ):
            raise ValueError(f"`guidance_scale` must be a number >= 1 (1 disables guidance), got {guidance_scale!r}.")
        if guidance_scale > 1.0 and not self.embeddings.supports_guidance:
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
        if callback_on_step_end_tensor_inputs is not None and not all(
            k in self._callback_tensor_inputs for k in callback_on_step_end_tensor_inputs
        ):
            raise ValueError(f"`callback_on_step_end_tensor_inputs` must be in {self._callback_tensor_inputs}.")

    def resolve_scheduler(self, scheduler: SchedulerMixin | str | None = None) -> SchedulerMixin:
        """The scheduler a call with `scheduler=` denoises with, leaving `pipe.scheduler` as it is: `None` is
        `pipe.scheduler`; a diffusers scheduler class name (e.g. `"DDPMScheduler"`, the paper's sampler) is a new
        instance of that class on this model's noise schedule (`from_config(pipe.scheduler.config)`); an instance
        is used as it is and must have this model's `num_train_timesteps`."""
        if scheduler is None:
            return self.scheduler
        if isinstance(scheduler, str):
            import diffusers

            cls = getattr(diffusers, scheduler, None)
            if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
                names = sorted(c.__name__ for c in self.scheduler.compatibles)
                raise ValueError(f"`scheduler` {scheduler!r} is not a diffusers scheduler class; use one of {names}.")
            return cls.from_config(self.scheduler.config)
        if not isinstance(scheduler, SchedulerMixin):
            raise ValueError(
                f"`scheduler` must be a diffusers scheduler or the name of one, got {type(scheduler).__name__}."
            )
        expected = self.scheduler.config.num_train_timesteps
        if scheduler.config.num_train_timesteps != expected:
            raise ValueError(
                f"`scheduler` has {scheduler.config.num_train_timesteps} training timesteps but this model has "
                f"{expected}: build it with `{type(scheduler).__name__}.from_config(pipe.scheduler.config)`."
            )
        return scheduler

    def get_timesteps(
        self,
        start_timestep: int,
        num_inference_steps: int,
        device: torch.device,
        scheduler: SchedulerMixin | str | None = None,
    ) -> torch.Tensor:
        """The timesteps of `scheduler` (see [`~LocalExpressionPipeline.resolve_scheduler`]; default
        `pipe.scheduler`) from the first one at or below `start_timestep` down to the end (SDEdit)."""
        scheduler = self.resolve_scheduler(scheduler)
        scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = scheduler.timesteps
        # Multi-order schedulers (Heun) list a timestep several times; begin on an order boundary.
        order = scheduler.order
        begin = next((i for i in range(0, len(timesteps), order) if timesteps[i] <= start_timestep), None)
        if begin is None:
            # Too few steps for so low a start: run the schedule's last step rather than nothing.
            begin = (len(timesteps) - 1) // order * order
            logger.warning(
                f"No step of the {num_inference_steps}-step schedule is at or below t={start_timestep}; starting at "
                f"t={int(timesteps[begin])}. Raise `num_inference_steps` for a gentler edit."
            )
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(begin)
        return timesteps[begin:]

    def detect_faces(
        self, prepared: list[PreparedImage], regions: Sequence[str], on_no_face: str
    ) -> list[list[FaceRegions]]:
        """Detect and crop every face of every image (detection runs once per image)."""
        faces_per_image = []
        for item in prepared:
            faces = self.region_processor.extract(item.rgb, regions=tuple(regions))
            if not faces:
                message = f"No face detected in {item.name}."
                if on_no_face == "error":
                    raise NoFaceDetectedError(
                        message + " Use a photo with a visible, roughly frontal face (at least ~40 px wide), "
                        "or pass on_no_face='skip' to return such images unchanged."
                    )
                warnings.warn(message + " Returning it unchanged.", stacklevel=3)
            faces_per_image.append(faces)
        return faces_per_image

    def _check_faces(
        self, faces: list[list[FaceRegions]], prepared: list[PreparedImage], regions: Sequence[str], on_no_face: str
    ) -> list[list[FaceRegions]]:
        """Validate faces passed to `__call__` (one list per image, with crops of the requested regions)."""
        if not isinstance(faces, (list, tuple)) or len(faces) != len(prepared):
            raise ValueError(f"`faces` must hold one list of faces per image ({len(prepared)}), got {faces!r:.80}.")
        for item, image_faces in zip(prepared, faces):
            for face in image_faces:
                missing = (
                    [r for r in regions if r not in face.crops] if isinstance(face, FaceRegions) else list(regions)
                )
                if missing:
                    raise ValueError(f"`faces` of {item.name} lack the crops of regions {missing}.")
            if not image_faces:
                if on_no_face == "error":
                    raise NoFaceDetectedError(f"No face detected in {item.name} (`faces` holds none for it).")
                warnings.warn(f"No face detected in {item.name}. Returning it unchanged.", stacklevel=3)
        return [list(image_faces) for image_faces in faces]

    def prepare_noise(
        self,
        shape: tuple[int, ...],
        crops_per_image: list[int],
        generator: torch.Generator | list[torch.Generator] | None,
        device: torch.device,
        dtype: torch.dtype,
    ) -> tuple[torch.Tensor, torch.Generator | list[torch.Generator] | None]:
        """Noise for all crops, and the generator(s) the scheduler should use: a list of generators (one per image)
        is expanded to one per crop so each image's result depends only on its own generator."""
        if isinstance(generator, list):
            generator = [g for g, count in zip(generator, crops_per_image) for _ in range(count)]
        return randn_tensor(shape, generator=generator, device=device, dtype=dtype), generator

    def region_class_labels(
        self, crop_regions: Sequence[str] | None, count: int, device: torch.device
    ) -> torch.Tensor | None:
        """The UNet's region class of each crop (its index in the model's `regions`), or `None` for a UNet trained
        without region classes (the paper's design)."""
        if self.unet.config.num_class_embeds is None:
            return None
        regions = list(self.config.regions)
        self._check_crop_regions(crop_regions, count, regions, f"This UNet is conditioned on the region ({regions})")
        return torch.tensor([regions.index(r) for r in crop_regions], device=device, dtype=torch.long)

    @staticmethod
    def _check_crop_regions(crop_regions: Sequence[str] | None, count: int, known: list[str], needed_for: str) -> None:
        """`crop_regions` must name one of the `known` regions for each of the `count` crops (`needed_for`: why)."""
        if crop_regions is None or len(crop_regions) != count:
            raise ValueError(f"{needed_for}: pass `crop_regions`, one region per crop ({count} crops).")
        unknown = sorted(set(crop_regions) - set(known))
        if unknown:
            raise ValueError(f"Unknown regions {unknown} for this model; it knows {known}.")

    def crop_exposure(self, crops: torch.Tensor, crop_regions: Sequence[str] | None) -> CropExposure | None:
        """The map of each crop to the training crops' exposure in its region (the model's `crop_statistics`), or
        `None` for a model without them."""
        statistics = self.config.crop_statistics
        if not statistics:
            return None
        needed_for = f"This model matches each crop to its training crops' exposure per region ({sorted(statistics)})"
        self._check_crop_regions(crop_regions, len(crops), sorted(statistics), needed_for)
        return CropExposure.to_statistics(crops, crop_regions, statistics)

    def denoise_crops(
        self,
        originals: torch.Tensor,
        targets: list[str],
        start_timestep: int,
        num_inference_steps: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
        crops_per_image: list[int] | None = None,
        guidance_scale: float = 1.0,
        known_mask: torch.Tensor | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        crop_regions: list[str] | None = None,
        negative_targets: list[str] | None = None,
        scheduler: SchedulerMixin | str | None = None,
    ) -> torch.Tensor:
        """SDEdit on crops already in UNet space: noise `originals` (`(N, C, S, S)` in [-1, 1]) to the scheduler's
        first timestep at or below `start_timestep` and denoise them toward `targets` (one label per crop).

        `known_mask` (`(N, 1, S, S)`, 1 = keep) re-injects the noised originals after every step (RePaint-style) so
        the generated centre agrees with the untouched surroundings. A list of generators is one per image, with
        `crops_per_image` saying how many crops each image has. `crop_regions` names each crop's region; a UNet with
        region classes (`num_class_embeds`) needs it. `negative_targets` (one label per crop, `""` for the null
        label) is what guidance pushes away from; `None` is the null label for all. A model with `crop_statistics`
        sees each crop at its training crops' exposure and the result is mapped back. `scheduler` is the sampler (see
        [`~LocalExpressionPipeline.resolve_scheduler`]; default `pipe.scheduler`). Returns the denoised crops in
        [-1, 1] (unclamped).
        """
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        device, dtype = originals.device, originals.dtype
        count = len(originals)
        class_labels = self.region_class_labels(crop_regions, count, device)
        exposure = self.crop_exposure(originals, crop_regions)
        if exposure is not None:
            originals = exposure.apply(originals)

        # Conditioning: the target embeddings (and, for guidance, the negative ones: null unless named).
        encoder_hidden_states = self.embeddings(targets, allow_untrained=True).to(device=device, dtype=dtype)
        do_guidance = guidance_scale > 1.0
        if do_guidance:
            negative = self.embeddings.negative_embeddings(negative_targets or [""] * count)
            encoder_hidden_states = torch.cat([negative.to(device=device, dtype=dtype), encoder_hidden_states])
            # Guidance is toward the expression only: both halves know which region they see.
            class_labels = None if class_labels is None else torch.cat([class_labels, class_labels])

        scheduler = self.resolve_scheduler(scheduler)
        timesteps = self.get_timesteps(start_timestep, num_inference_steps, device, scheduler=scheduler)
        noise, generator = self.prepare_noise(originals.shape, crops_per_image or [count], generator, device, dtype)
        latents = scheduler.add_noise(originals, noise, timesteps[:1].repeat(count))
        # Only stochastic schedulers (DDPM, DDIM with eta > 0 ...) take a generator; UniPC, Heun ... refuse one.
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}

        for i, t in enumerate(self.progress_bar(timesteps)):
            model_input = torch.cat([latents] * 2) if do_guidance else latents
            model_input = scheduler.scale_model_input(model_input, t)
            noise_pred = self.unet(
                model_input, t, encoder_hidden_states=encoder_hidden_states, class_labels=class_labels
            ).sample
            if do_guidance:
                noise_negative, noise_cond = noise_pred.chunk(2)
                noise_pred = noise_negative + guidance_scale * (noise_cond - noise_negative)
            latents = scheduler.step(noise_pred, t, latents, **step_kwargs).prev_sample

            if known_mask is not None:
                # Outside the blend mask the crop must stay the original, noised to the level reached.
                if i + 1 < len(timesteps):
                    known = scheduler.add_noise(originals, noise, timesteps[i + 1 : i + 2].repeat(count))
                else:
                    known = originals
                latents = known_mask * known + (1.0 - known_mask) * latents

            if callback_on_step_end is not None:
                callback_kwargs = {}
                for k in callback_on_step_end_tensor_inputs:
                    callback_kwargs[k] = locals()[k]
                callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                latents = callback_outputs.pop("latents", latents)
        return latents if exposure is None else exposure.invert(latents)

    @torch.inference_mode()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        image: ImageInput | list[ImageInput],
        target: str | list[str] | None = None,
        strength: float | None = None,
        mode: str | None = None,
        action_units: str | dict[str, float] | None = None,
        texture_strength: float | None = None,
        num_inference_steps: int | None = None,
        start_timestep: int | None = None,
        regions: Sequence[str] | None = None,
        guidance_scale: float | None = None,
        negative_target: str | list[str] | None = None,
        reinject_known: bool = True,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        on_no_face: str = "error",
        allow_untrained_targets: bool = False,
        callback_on_step_end: Callable[[Any, int, int, dict], dict]
        | PipelineCallback
        | MultiPipelineCallbacks
        | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        faces: list[list[FaceRegions]] | None = None,
        scheduler: SchedulerMixin | str | None = None,
        residual_composite: bool | None = None,
    ) -> LocalExpressionPipelineOutput | tuple:
        r"""
        Change the expression of every face in the image(s).

        Args:
            image (`PIL.Image.Image`, `np.ndarray`, `torch.Tensor`, path, or a list of them):
                The photo(s) to edit. Arrays are `(H, W)`, `(H, W, 3)` or `(H, W, 4)` in uint8 or float [0, 1];
                tensors are `(C, H, W)` in [0, 1]. Grayscale and alpha are kept; EXIF orientation is applied.
            target (`str` or `List[str]`, *optional*):
                The target expression ("happy", "contempt", ...), one for all images or one per image. May be
                omitted in the geometry modes when `action_units` say what to do.
            strength (`float`, *optional*):
                How strong the edit is, in [0, 1]; 0 returns the input unchanged. In the geometry modes, the fraction
                of the target's action-unit prototype the face is moved toward (defaults to the model's
                `geometry_strength`). In the diffusion mode, how far the regions are noised before being
                re-generated: the start step is `int(num_train_timesteps * strength)` (0.5 is the paper's t_250);
                defaults to the model's strength for each image's target (`target_strengths`), else its
                `default_strength`.
            mode (`str`, *optional*):
                `"geometry+texture"`: move the face's own features along the target's facial action units with a
                smooth warp, then let the UNet re-generate only the inside of a mouth that opened;
                `"geometry"`: the warp alone (no UNet call); `"diffusion"`: the paper's method, label-conditioned
                SDEdit of the eye and mouth regions. Defaults to the model's `default_mode`.
            action_units (`Dict[str, float]` or `str`, *optional*):
                Facial action units to add, alone or on top of the target, e.g. `{"AU12": 0.8, "AU6": 0.4}` or
                `"AU12=0.8,AU6=0.4"`; `R`/`L` prefixes act on one side (`"R12"`). Intensities in [-1.5, 1.5] (1 is
                the unit as strong as in a full expression; negative undoes it). Geometry modes only.
            texture_strength (`float`, *optional*):
                In `"geometry+texture"` mode, the strength of the UNet's SDEdit inside a mouth the warp opened
                (defaults to the model's `texture_strength`).
            num_inference_steps (`int`, *optional*):
                Steps of the full schedule; only those below the start step run (as in img2img). Defaults to the
                pipeline's `default_num_inference_steps`; the paper's mode is DDPM with 500.
            start_timestep (`int`, *optional*):
                The paper's t_i directly (e.g. 250); overrides `strength`.
            regions (`Sequence[str]`, *optional*):
                Which of the model's regions to re-generate in the diffusion mode. Defaults to all the regions the
                model was trained on
                (its config's `regions`, e.g. only `("mouth",)` for a model trained with `--regions mouth`).
            guidance_scale (`float`, *optional*):
                Classifier-free guidance toward the target (needs a model trained with label dropout); 1 disables it.
                Defaults to the pipeline's `default_guidance_scale` (1 unless the model sets another).
            negative_target (`str` or `List[str]`, *optional*):
                The expression guidance pushes away from, one for all images or one per image (as `negative_prompt`
                in diffusers): `"neutral"` steers along the change from a neutral face to the target instead of from
                no label. `""` is the null label (plain classifier-free guidance). Defaults to the pipeline's
                `default_negative_target`. Has no effect when `guidance_scale` is 1.
            reinject_known (`bool`, *optional*, defaults to `True`):
                Re-inject the noised original outside each crop's blend mask at every step, so the generated
                centre agrees with the untouched surroundings (no visible border).
            generator (`torch.Generator` or `List[torch.Generator]`, *optional*):
                One generator, or one per image, to make the edit deterministic.
            output_type (`str`, *optional*, defaults to `"pil"`):
                `"pil"`, `"np"` (float32 `(H, W, C)` in [0, 1]) or `"pt"` (float32 `(C, H, W)` in [0, 1]).
            return_dict (`bool`, *optional*, defaults to `True`):
                Whether to return a [`LocalExpressionPipelineOutput`] instead of a plain tuple.
            on_no_face (`str`, *optional*, defaults to `"error"`):
                `"error"` raises [`NoFaceDetectedError`]; `"skip"` returns such images unchanged with a warning.
            allow_untrained_targets (`bool`, *optional*, defaults to `False`):
                Allow (with a warning) a target the model has an embedding for but was not trained on.
            callback_on_step_end (`Callable`, *optional*):
                Called at the end of each denoising step as `callback_on_step_end(self, step, timestep,
                callback_kwargs)`, with the tensors named in `callback_on_step_end_tensor_inputs`.
            callback_on_step_end_tensor_inputs (`List[str]`, *optional*):
                The tensors passed to `callback_on_step_end`; only `"latents"` (the noisy crops) is available.
            faces (`List[List[FaceRegions]]`, *optional*):
                Faces already found in these images, one list per image (from [`~LocalExpressionPipeline.detect_faces`]
                or the `faces` of an earlier output for the same images), so detection is not run again: editing
                one photo toward several targets, or detecting the next batch while this one is denoised.
            scheduler (`SchedulerMixin` or `str`, *optional*):
                The sampler of this call only; `pipe.scheduler` stays as it is. A scheduler, or the name of a diffusers
                scheduler class built on this model's noise schedule, e.g. `"DDPMScheduler"` with
                `num_inference_steps=500` for the paper's sampler (see [`~LocalExpressionPipeline.resolve_scheduler`]).
                Defaults to `pipe.scheduler`.
            residual_composite (`bool`, *optional*):
                `True` composites only the change the model made to each crop (upsampled), `False` the generated crop
                itself (the paper). Defaults to the model's `residual_composite`.

        Examples:

        Returns:
            [`LocalExpressionPipelineOutput`] or `tuple`: the edited images and, per image, the faces found.
        """
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        images = list(image) if isinstance(image, (list, tuple)) or is_image_batch(image) else [image]

        # 1. Check the inputs; fill in the model's defaults, one target and start step per image.
        settings = self._resolve_settings(
            images,
            target,
            strength,
            mode,
            action_units,
            texture_strength,
            num_inference_steps,
            start_timestep,
            regions,
            guidance_scale,
            negative_target,
            generator,
            output_type,
            on_no_face,
            allow_untrained_targets,
            callback_on_step_end_tensor_inputs,
        )
        scheduler = self.resolve_scheduler(scheduler)
        prepared = [prepare_image(item, index) for index, item in enumerate(images)]

        # 2. Nothing to edit: give the inputs back exactly.
        if settings.nothing_to_do:
            outputs = [return_unchanged(item, output_type) for item in prepared]
            return (
                LocalExpressionPipelineOutput(images=outputs, faces=[[] for _ in prepared])
                if return_dict
                else (outputs,)
            )

        # 3. Faces and their region crops, all images at once.
        if faces is None:
            faces_per_image = self.detect_faces(prepared, settings.regions, on_no_face)
        else:
            faces_per_image = self._check_faces(faces, prepared, settings.regions, on_no_face)
        rgbs = [item.rgb for item in prepared]
        edit_faces, edit_regions, labels = faces_per_image, settings.regions, settings.targets

        # 4. Geometry modes: warp each face's own pixels; the UNet re-draws only the mouths the warp opened.
        if settings.mode != "diffusion":
            rgbs, faces_per_image, edit_faces = self._geometry_stage(rgbs, faces_per_image, settings)
            edit_regions, labels = ("mouth",), [self.texture_label(t) for t in settings.targets]

        # 5. SDEdit of the crops and compositing them back at full resolution.
        rgbs = self.edit_crops(
            rgbs,
            edit_faces,
            edit_regions,
            labels,
            settings.negatives,
            settings.starts,
            settings.num_inference_steps,
            generator=generator,
            guidance_scale=settings.guidance_scale,
            reinject_known=reinject_known,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            scheduler=scheduler,
            residual_composite=residual_composite,
        )

        # 6. Each image in the size, channels and type of its input.
        outputs = self._restore_outputs(prepared, rgbs, settings, output_type)
        self.maybe_free_model_hooks()

        if not return_dict:
            return (outputs, faces_per_image)
        return LocalExpressionPipelineOutput(images=outputs, faces=faces_per_image)

    def _resolve_settings(
        self,
        images: list[Any],
        target: str | list[str] | None,
        strength: float | None,
        mode: str | None,
        action_units: str | dict[str, float] | None,
        texture_strength: float | None,
        num_inference_steps: int | None,
        start_timestep: int | None,
        regions: Sequence[str] | None,
        guidance_scale: float | None,
        negative_target: str | list[str] | None,
        generator: torch.Generator | list[torch.Generator] | None,
        output_type: str,
        on_no_face: str,
        allow_untrained_targets: bool,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> _EditSettings:
        """Step 1 of `__call__`: its arguments checked and completed from the model's config."""
        mode = self.config.default_mode if mode is None else mode
        if mode not in EDIT_MODES:
            raise ValueError(f"`mode` must be one of {', '.join(EDIT_MODES)}, got {mode!r}.")
        units = parse_action_units(action_units)
        if target is None and not units:
            raise ValueError("Pass a `target` expression, `action_units`, or both.")
        if target is None and mode == "diffusion":
            raise ValueError(
                "The diffusion mode edits toward a `target` expression; action units need a geometry mode."
            )
        targets = list(target) if isinstance(target, (list, tuple)) else [target]
        if num_inference_steps is None:
            num_inference_steps = self.config.default_num_inference_steps
        if guidance_scale is None:
            guidance_scale = self.config.default_guidance_scale
        if negative_target is None:
            negative_target = self.config.default_negative_target or ""
        negatives = list(negative_target) if isinstance(negative_target, (list, tuple)) else [negative_target]
        if regions is None:  # the model's own regions: a mouth-only model has only "mouth"
            regions = self.config.regions
        regions = (regions,) if isinstance(regions, str) else tuple(regions)
        default_strength = self.config.default_strength if mode == "diffusion" else self.config.geometry_strength
        self.check_inputs(
            images,
            targets,
            default_strength if strength is None else strength,
            start_timestep,
            num_inference_steps,
            regions,
            guidance_scale,
            negatives,
            generator,
            output_type,
            callback_on_step_end_tensor_inputs,
        )
        if on_no_face not in ("error", "skip"):
            raise ValueError(f"`on_no_face` must be 'error' or 'skip', got {on_no_face!r}.")
        # numpy / torch scalars passed the checks; plain Python numbers from here on.
        settings = _EditSettings(
            mode=mode,
            targets=targets * (len(images) // len(targets)),
            negatives=[
                self.embeddings.resolve(negative, allow_untrained_targets)[0] if negative else ""
                for negative in negatives * (len(images) // len(negatives))
            ],
            units=units,
            regions=regions,
            num_inference_steps=int(num_inference_steps),
            guidance_scale=guidance_scale,
        )
        return self._resolve_strengths(settings, strength, start_timestep, texture_strength, allow_untrained_targets)

    def _resolve_strengths(
        self,
        settings: _EditSettings,
        strength: float | None,
        start_timestep: int | None,
        texture_strength: float | None,
        allow_untrained_targets: bool,
    ) -> _EditSettings:
        """The targets as the mode reads them and each image's start step: in the diffusion mode from `strength`,
        `start_timestep` or the target's default strength; in the geometry modes the texture's."""
        count, num_train_timesteps = len(settings.targets), self.scheduler.config.num_train_timesteps
        if settings.mode == "diffusion":
            settings.targets = self.embeddings.resolve(settings.targets, allow_untrained_targets)
            if start_timestep is not None:
                settings.starts = [int(start_timestep)] * count
            else:
                strengths = [
                    float(strength) if strength is not None else self.default_strength_for(t) for t in settings.targets
                ]
                settings.starts = [int(num_train_timesteps * value) for value in strengths]
            return settings
        settings.targets = [None if t is None else canonical_expression(t) for t in settings.targets]
        settings.geometry_strength = self.config.geometry_strength if strength is None else float(strength)
        if texture_strength is None:
            texture_strength = self.config.texture_strength
        settings.texture_strength = texture_strength
        settings.starts = [int(num_train_timesteps * texture_strength)] * count
        return settings

    def _geometry_stage(
        self, rgbs: list[np.ndarray], faces_per_image: list[list[FaceRegions]], settings: _EditSettings
    ) -> tuple[list[np.ndarray], list[list[FaceRegions]], list[list[FaceRegions]]]:
        """Step 4 of `__call__` in the geometry modes: each face moved along the action units of its target (see
        [`~LocalExpressionPipeline.warp_faces`]), then in `"geometry+texture"` the mouths the warp opened chosen for
        the UNet ([`~LocalExpressionPipeline.texture_faces`]). Returns the warped images, their moved faces and, per
        image, the faces whose mouths are re-generated."""
        rgbs, faces_per_image = self.warp_faces(
            rgbs, faces_per_image, settings.targets, settings.geometry_strength, settings.units
        )
        edit_faces = [[] for _ in rgbs]
        if settings.mode == "geometry+texture" and settings.texture_strength > 0 and "mouth" in self.config.regions:
            edit_faces = [self.texture_faces(rgb, faces) for rgb, faces in zip(rgbs, faces_per_image)]
        return rgbs, faces_per_image, edit_faces

    @staticmethod
    def _restore_outputs(
        prepared: list[PreparedImage], rgbs: list[np.ndarray], settings: _EditSettings, output_type: str
    ) -> list[Any]:
        """Step 6 of `__call__`: each edited image in the size, channels and type of its input."""
        outputs = []
        for item, rgb, start in zip(prepared, rgbs, settings.starts):
            if (
                settings.mode == "diffusion" and start == 0
            ):  # a target whose strength is 0: this image comes back exactly
                outputs.append(return_unchanged(item, output_type))
            else:
                outputs.append(restore_image(rgb, item, output_type))
        return outputs

    def warp_faces(
        self,
        rgbs: list[np.ndarray],
        faces_per_image: list[list[FaceRegions]],
        targets: list[str | None],
        strength: float,
        units: dict[str, float],
    ) -> tuple[list[np.ndarray], list[list[FaceRegions]]]:
        """The geometry stage: each face's landmarks moved along the action units that take its own expression to
        its image's target at `strength` (plus `units`), by a smooth warp of its own pixels. Returns the warped
        images and the faces, each with its `warp` (whose window is part of the edited area)."""
        warped_images, warped_faces = [], []
        for rgb, faces, target in zip(rgbs, faces_per_image, targets):
            out, moved = rgb, []
            for face in faces:
                shape = face_shape(rgb, face.face)
                if target is None:
                    change = dict(units)
                else:
                    own = estimate_action_units(shape)
                    change = expression_action_units(target, strength, own, extra=units)
                warp = action_unit_warp(shape, face.matrix, change, rgb.shape[:2]) if change else None
                if warp is not None and warp.leaves_photo(shape, rgb.shape[:2]):
                    warnings.warn(
                        f"The face at {tuple(round(v) for v in face.face.box)} is cut by the edge of the photo where "
                        "the edit would move it (e.g. a mouth at the border): it is left unchanged.",
                        stacklevel=5,
                    )
                    warp = None
                if warp is not None:
                    out = warp.apply(out)
                    if warp.kept < FOLD_WARNING:
                        warnings.warn(
                            f"The face at {tuple(round(v) for v in face.face.box)} was edited at {warp.kept:.0%} of "
                            "the asked-for movement: its landmarks crowd (a turned or partly hidden face?) and the "
                            "full movement would fold the photo over itself. Check them with --show-regions / "
                            "draw_regions.",
                            stacklevel=5,  # the caller of __call__ (under torch.no_grad's wrapper)
                        )
                moved.append(replace(face, warp=warp))
            warped_images.append(out)
            warped_faces.append(moved)
        return warped_images, warped_faces

    def texture_faces(self, rgb: np.ndarray, faces: list[FaceRegions]) -> list[FaceRegions]:
        """The mouths of `faces` (already warped, in the warped image `rgb`) that the warp opened, re-cut around
        their moved landmarks, each with a mask of the inside of its lips: what the UNet re-generates. A mouth is
        opened when the warp parted its lips (``FaceWarp.mouth.opens``: the one decision, so texture goes exactly
        where the warp showed more of the inside of the mouth)."""
        opened = []
        for face in faces:
            if face.warp is None or face.warp.mouth is None or not face.warp.mouth.opens:
                continue
            shape = face.warp.shape
            moved = replace(face.face, landmarks=five_landmarks(shape), shape=shape)
            regions = self.region_processor.extract(rgb, faces=[moved], regions=("mouth",))[0]
            size = self.unet.config.sample_size
            regions.masks["mouth"] = inner_mouth_mask(shape, regions.crop_matrices["mouth"], size)
            opened.append(regions)
        return opened

    def texture_label(self, target: str | None) -> str:
        """The label the UNet re-generates a mouth with: the target when the model was trained on it, else neutral
        (a model knows what the inside of a mouth looks like even when it never saw the expression)."""
        trained = self.embeddings.trained_labels
        if target in trained:
            return target
        return "neutral" if "neutral" in trained else trained[0]

    def edit_crops(
        self,
        rgbs: list[np.ndarray],
        faces_per_image: list[list[FaceRegions]],
        regions: Sequence[str],
        targets: list[str],
        negatives: list[str],
        starts: list[int],
        num_inference_steps: int,
        generator: torch.Generator | list[torch.Generator] | None = None,
        guidance_scale: float = 1.0,
        reinject_known: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        scheduler: SchedulerMixin | str | None = None,
        residual_composite: bool | None = None,
    ) -> list[np.ndarray]:
        """SDEdit of the `regions` crops of every face toward its image's target (start step per image), all crops
        in one UNet batch per start step, then each image's edited crops blended back into it (its masks).
        `scheduler` and `residual_composite` are as in [`~LocalExpressionPipeline.__call__`]."""
        if callback_on_step_end_tensor_inputs is None:
            callback_on_step_end_tensor_inputs = ["latents"]
        crops, masks, crop_targets, crop_negatives, crop_regions, crops_per_image = [], [], [], [], [], []
        for faces, label, negative in zip(faces_per_image, targets, negatives):
            count = 0
            for face in faces:
                for region in regions:
                    crops.append(face.crops[region])
                    masks.append(face.masks[region])
                    crop_targets.append(label)
                    crop_negatives.append(negative)
                    crop_regions.append(region)
                    count += 1
            crops_per_image.append(count)
        if not crops:
            return list(rgbs)

        edited_crops: list[np.ndarray] = list(crops)
        scheduler = self.resolve_scheduler(scheduler)
        device = self._execution_device
        dtype = self.unet.dtype
        originals = crops_to_tensor(crops, self.color_mode).to(device=device, dtype=dtype)
        known_mask = 1.0 - torch.from_numpy(np.stack(masks))[:, None].to(device=device, dtype=dtype)
        crop_image = [index for index, count in enumerate(crops_per_image) for _ in range(count)]
        # One batch per start step (one batch unless the targets of the images have different default strengths).
        for start in sorted(set(starts) - {0}, reverse=True):
            group = [index for index, value in enumerate(starts) if value == start]
            members = [k for k, index in enumerate(crop_image) if starts[index] == start]
            if not members:
                continue
            latents = self.denoise_crops(
                originals[members],
                [crop_targets[k] for k in members],
                start,
                num_inference_steps,
                generator=[generator[index] for index in group] if isinstance(generator, list) else generator,
                crops_per_image=[crops_per_image[index] for index in group],
                guidance_scale=guidance_scale,
                known_mask=known_mask[members] if reinject_known else None,
                callback_on_step_end=callback_on_step_end,
                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                crop_regions=[crop_regions[k] for k in members],
                negative_targets=[crop_negatives[k] for k in members],
                scheduler=scheduler,
            )
            for k, crop in zip(members, tensor_to_crops(latents, [crops[k] for k in members], self.color_mode)):
                edited_crops[k] = crop

        if residual_composite is None:
            residual_composite = self.config.residual_composite
        outputs, cursor = [], 0
        for rgb, faces in zip(rgbs, faces_per_image):
            edits = []
            for _ in faces:
                edits.append({region: edited_crops[cursor + k] for k, region in enumerate(regions)})
                cursor += len(regions)
            if faces:
                rgb = self.region_processor.composite(rgb, faces, edits, residual=residual_composite)
            outputs.append(rgb)
        return outputs
