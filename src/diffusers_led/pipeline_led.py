"""LocalExpressionPipeline: change a facial expression only where expression lives (brows, eyes, mouth).

The diffusers pipeline: its inputs, its modes and the order of the stages. Each stage's work is in its own module:

==============  ====================================================  ==========================================
stage           what it does                                          where
==============  ====================================================  ==========================================
settings        the call's arguments checked, the model's defaults    :mod:`diffusers_led.settings`
photo           any input to an upright RGB array (and back)          :mod:`diffusers_led.image_processor`
faces           detection, 478-point mesh, 68 landmarks, crops        :mod:`diffusers_led.faces`
action units    the target's change from the face's own expression    :mod:`diffusers_led.geometry.action_units`
warp            the face's own pixels moved along those units         :mod:`diffusers_led.geometry.warper`
shading         the units' furrows and folds laid on the warped skin  :mod:`diffusers_led.texture`
texture         the UNet re-draws crops (SDEdit): opened mouths       :meth:`LocalExpressionPipeline.edit_crops`
                (geometry+texture) or the eye and mouth regions
                (diffusion)
composite       the crops blended back; every other pixel unchanged  :mod:`diffusers_led.faces.regions`
==============  ====================================================  ==========================================
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline, UNet2DConditionModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.schedulers import KarrasDiffusionSchedulers, SchedulerMixin
from diffusers.utils import BaseOutput, logging, replace_example_docstring
from diffusers.utils.hub_utils import load_or_create_model_card, populate_model_card
from huggingface_hub import create_repo

from .expressions import ExpressionEmbeddings
from .faces.regions import FaceRegionProcessor, FaceRegions
from .geometry.warper import ExpressionWarper
from .image_processor import (
    ImageInput,
    PreparedImage,
    is_image_batch,
    prepare_image,
    restore_image,
    return_unchanged,
)
from .labels import EDIT_MODES
from .model_checks import (
    UnsafeWeightsError,
    check_model_folder,
    check_model_reference,
    pickled_only_components,
    unsafe_weights_message,
)
from .schedulers import FAST_NUM_INFERENCE_STEPS, fast_scheduler, resolve_scheduler, sdedit_timesteps
from .sdedit import CropSDEditMixin
from .serialization import commit_folder, remove_stale_shards, staging_folder
from .settings import EditSettings, check_request, default_strength, resolve_settings
from .texture import ExpressionRatioMaps

logger = logging.get_logger(__name__)

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


class LocalExpressionPipeline(CropSDEditMixin, DiffusionPipeline):
    r"""
    Pipeline for local facial expression editing. Every face is detected and its 68 landmarks found; then, in the
    mode the call (or the model's `default_mode`) names:

    - `"geometry"` (the bundled model's default): the face's own brows, lids and lips are moved along the facial
      action units that take its expression to the target, by a smooth warp that is exactly zero outside a ring
      around the face; the shading those units make on skin is laid on from the model's `ratio_maps` (when it has
      them), and open mouths close toward targets that part no lips. No UNet call.
    - `"geometry+texture"`: the same warp and shading, then the UNet re-draws only the inside of a mouth the warp
      opened (SDEdit of that crop, masked to the inside of the lips).
    - `"diffusion"` (the paper): the eye and mouth regions are cropped to small squares, noised to an intermediate
      step and denoised toward the target expression's label (SDEdit), then blended back with a soft mask.

    In every mode the pixels outside the edited area are returned bit for bit.

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
        ratio_maps ([`ExpressionRatioMaps`], *optional*):
            Per action unit, the shading it makes on skin (furrows, folds): the geometry modes lay it on the warped
            face at the units' intensities and flatten the face's own creases of units the target lacks. `None`:
            the warp alone.
        face_detector (`str`, defaults to `"mesh"`):
            The face detector: `"mesh"` (MediaPipe's BlazeFace full range and Face Mesh V2, shipped: finds turned,
            black-and-white and small faces and gives each 478 points and 52 blendshape scores), `"dlib"` (frontal
            faces) or `"yunet:<path to the YuNet ONNX file>"`. All run offline.
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
    _optional_components = ["ratio_maps"]
    _callback_tensor_inputs = ["latents"]

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        embeddings: ExpressionEmbeddings,
        ratio_maps: ExpressionRatioMaps | None = None,
        face_detector: str = "mesh",
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
        self.register_modules(unet=unet, scheduler=scheduler, embeddings=embeddings, ratio_maps=ratio_maps)
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
        # Not diffusers components (OpenCV, no weights): rebuilt from the config, like VaeImageProcessor.
        self._detector_sizes: dict[str, float] = {}  # set_face_detector's min_face_size / max_detection_size
        self.region_processor = self._make_region_processor()
        self.warper = ExpressionWarper(self.region_processor, unet.config.sample_size)

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
        return default_strength(self.config, "diffusion", target)

    def set_face_detector(
        self,
        face_detector: str | None = None,
        min_face_size: float | None = None,
        max_detection_size: int | None = None,
    ) -> None:
        """Switch the face detector (e.g. to `"dlib"` or `"yunet:/path/face_detection_yunet.onnx"`) and record it in
        the config, and/or set the smallest face looked for (px) and the long side cap of the photo the detector sees
        (dlib, YuNet; the `"mesh"` detector tiles large photos instead). The sizes are settings of this session, not
        of the saved model."""
        if face_detector is not None:
            self.register_to_config(face_detector=face_detector)
        if min_face_size is not None:
            self._detector_sizes["min_face_size"] = float(min_face_size)
        if max_detection_size is not None:
            self._detector_sizes["max_detection_size"] = int(max_detection_size)
        self.region_processor = self._make_region_processor()
        self.warper = ExpressionWarper(self.region_processor, self.unet.config.sample_size)

    def _make_region_processor(self) -> FaceRegionProcessor:
        feather = self.config.feather
        return FaceRegionProcessor(
            **self._detector_sizes,
            detector=self.config.face_detector,
            regions=tuple(self.config.regions),
            crop_size=self.unet.config.sample_size,
            feather=tuple(feather) if isinstance(feather, list) else feather,
            region_anchor=self.config.region_anchor,
            margins=self.config.region_margins,
        )

    def resolve_scheduler(self, scheduler: SchedulerMixin | str | None = None) -> SchedulerMixin:
        """The scheduler a call with `scheduler=` denoises with, leaving `pipe.scheduler` as it is (see
        [`~schedulers.resolve_scheduler`]): `None` is `pipe.scheduler`, a class name a new instance of it on this
        model's noise schedule, an instance is used as it is."""
        return resolve_scheduler(self.scheduler, scheduler)

    def get_timesteps(
        self,
        start_timestep: int,
        num_inference_steps: int,
        device: torch.device,
        scheduler: SchedulerMixin | str | None = None,
    ) -> torch.Tensor:
        """The timesteps of `scheduler` (see [`~LocalExpressionPipeline.resolve_scheduler`]; default
        `pipe.scheduler`) from the first one at or below `start_timestep` down to the end (SDEdit)."""
        return sdedit_timesteps(self.resolve_scheduler(scheduler), start_timestep, num_inference_steps, device)

    def detect_faces(
        self, prepared: list[PreparedImage], regions: Sequence[str], on_no_face: str
    ) -> list[list[FaceRegions]]:
        """Detect and crop every face of every image (detection runs once per image)."""
        faces_per_image = []
        for item in prepared:
            found = self.region_processor.detect(item.rgb)
            faces = self.region_processor.extract(item.rgb, faces=found, regions=tuple(regions))
            reason = self.region_processor.no_face_reason(item.rgb.shape, found)
            if not faces:
                message = f"No face detected in {item.name} ({reason})."
                if on_no_face == "error":
                    raise NoFaceDetectedError(
                        message + " Use a photo with a visible face, or pass on_no_face='skip' to return such images "
                        "unchanged."
                    )
                warnings.warn(message + " Returning it unchanged.", stacklevel=3)
            elif getattr(found, "unreadable", None):
                warnings.warn(f"In {item.name}: {reason}.", stacklevel=3)
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
                How strong the edit is, in [0, 1]; 0 returns the input unchanged (without `action_units`). In the
                geometry modes, the share of the target's action-unit change made (defaults to the model's
                `geometry_strength`); `action_units` are added at their own intensities. In the diffusion mode, how
                far the regions are noised before being re-generated: the start step is
                `int(num_train_timesteps * strength)` (0.5 is the paper's t_250); defaults to the model's strength for
                each image's target (`target_strengths`), else its `default_strength`.
            mode (`str`, *optional*):
                `"geometry+texture"`: move the face's own features along the target's facial action units with a
                smooth warp, then let the UNet re-generate only the inside of a mouth that opened;
                `"geometry"`: the warp alone (no UNet call); `"diffusion"`: the paper's method, label-conditioned
                SDEdit of the eye and mouth regions. Defaults to the model's `default_mode`.
            action_units (`Dict[str, float]` or `str`, *optional*):
                Facial action units to add, alone or on top of the target, e.g. `{"AU12": 0.8, "AU6": 0.4}` or
                `"AU12=0.8,AU6=0.4"`; `R`/`L` prefixes act on one side (`"R12"`). Intensities in [-1.5, 1.5] (1 is
                the unit as strong as in a full expression; negative undoes it), each unit once. Added to the
                target's change; a sum beyond [-1.5, 1.5] is clipped with a warning. Geometry modes only.
            texture_strength (`float`, *optional*):
                In `"geometry+texture"` mode, the strength of the UNet's SDEdit inside a mouth the warp opened, in
                [0, 1] (defaults to the model's `texture_strength`). Other modes ignore it, with a warning; the
                `"geometry"` mode likewise ignores `num_inference_steps`, `guidance_scale`, `negative_target` and
                `start_timestep`.
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
                Whether to return a [`LocalExpressionPipelineOutput`] instead of a plain tuple `(images, faces)`
                (always two items).
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

        # 1. Check the inputs; fill in the model's defaults, one target and start step per image (settings.py).
        request = check_request(target, action_units, mode, strength, texture_strength)
        settings = resolve_settings(
            self,
            request,
            images,
            num_inference_steps=num_inference_steps,
            start_timestep=start_timestep,
            regions=regions,
            guidance_scale=guidance_scale,
            negative_target=negative_target,
            generator=generator,
            output_type=output_type,
            on_no_face=on_no_face,
            allow_untrained_targets=allow_untrained_targets,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )
        scheduler = self.resolve_scheduler(scheduler)
        prepared = [prepare_image(item, index) for index, item in enumerate(images)]

        # 2. Nothing to edit: give the inputs back exactly (and no faces: none was looked for).
        if settings.nothing_to_do:
            outputs = [return_unchanged(item, output_type) for item in prepared]
            no_faces: list[list[FaceRegions]] = [[] for _ in prepared]
            if not return_dict:
                return (outputs, no_faces)
            return LocalExpressionPipelineOutput(images=outputs, faces=no_faces)

        # 3. Faces and their region crops, all images at once.
        if faces is None:
            faces_per_image = self.detect_faces(prepared, settings.regions, on_no_face)
        else:
            faces_per_image = self._check_faces(faces, prepared, settings.regions, on_no_face)
        rgbs = [item.rgb for item in prepared]
        edit_faces, edit_regions = faces_per_image, settings.regions

        # 4. Geometry modes: warp each face's own pixels; the UNet re-draws only the mouths the warp opened.
        if settings.mode != "diffusion":
            rgbs, faces_per_image, edit_faces = self._geometry_stage(rgbs, faces_per_image, settings)
            edit_regions = ("mouth",)

        # 5. SDEdit of the crops and compositing them back at full resolution.
        rgbs = self.edit_crops(
            rgbs,
            edit_faces,
            edit_regions,
            settings.labels,
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

    def edit_video(
        self,
        video: str | os.PathLike | Iterable[np.ndarray],
        target: str | None = None,
        output: str | os.PathLike | None = None,
        **kwargs: Any,
    ):
        r"""
        Change the expression of every face in a clip, geometry only: the warp and, when the model has them, its
        `ratio_maps` shading (see [`~diffusers_led.video.edit_video`] for every option: `keyframes`, `strength`,
        `action_units`, `video_quality`, `overwrite`, ...). Faces are tracked across frames and the edit is smoothed
        in time; with `output` the clip is written (audio copied bit for bit,
        timestamps kept) and a [`~diffusers_led.video.VideoEditResult`] returned, otherwise an iterator of the edited
        frames.
        """
        from .video import edit_video

        return edit_video(self, video, target, output, **kwargs)

    def _geometry_stage(
        self, rgbs: list[np.ndarray], faces_per_image: list[list[FaceRegions]], settings: EditSettings
    ) -> tuple[list[np.ndarray], list[list[FaceRegions]], list[list[FaceRegions]]]:
        """Step 4 of `__call__` in the geometry modes: each face moved along the action units of its target (see
        [`~geometry.warper.ExpressionWarper.warp_faces`]), then in `"geometry+texture"` the mouths the warp opened
        chosen for the UNet ([`~geometry.warper.ExpressionWarper.texture_faces`]). Returns the warped images, their
        moved faces and, per image, the faces whose mouths are re-generated."""
        rgbs, faces_per_image = self.warper.warp_faces(
            rgbs, faces_per_image, settings.targets, settings.geometry_strength, settings.units, self.ratio_maps
        )
        edit_faces = [[] for _ in rgbs]
        if settings.mode == "geometry+texture" and settings.texture_strength > 0 and "mouth" in self.config.regions:
            edit_faces = [self.warper.texture_faces(rgb, faces) for rgb, faces in zip(rgbs, faces_per_image)]
        return rgbs, faces_per_image, edit_faces

    @staticmethod
    def _restore_outputs(
        prepared: list[PreparedImage], rgbs: list[np.ndarray], settings: EditSettings, output_type: str
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
