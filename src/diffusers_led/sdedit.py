"""The UNet stage of the pipeline: SDEdit of aligned region crops and their compositing back into the photos.

:class:`CropSDEditMixin` gives :class:`~diffusers_led.LocalExpressionPipeline` its crop methods
(:meth:`~CropSDEditMixin.denoise_crops`, :meth:`~CropSDEditMixin.edit_crops`): the crops of every face noised to a
start step and denoised toward each image's label (with classifier-free guidance, the training crops' exposure and
re-injection of the known surroundings), then blended back with their masks. In the diffusion mode the crops are the
eye and mouth regions; in ``"geometry+texture"`` the mouths the warp opened. A mixin so that the methods stay the
pipeline's own (``pipe.denoise_crops``; callbacks receive the pipeline), in a module of their own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import numpy as np
import torch
from diffusers.schedulers import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from .faces.regions import FaceRegions
from .image_processor import CropExposure, crops_to_tensor, tensor_to_crops

__all__ = ["CropSDEditMixin"]


class CropSDEditMixin:
    """The crop SDEdit methods of :class:`~diffusers_led.LocalExpressionPipeline` (which provides ``unet``,
    ``scheduler``, ``embeddings``, ``config``, ``region_processor`` and ``progress_bar``)."""

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
