"""Named UNet2DConditionModel configurations for the region-crop denoiser.

The paper does not publish its UNet; it conditions a DDPM UNet on a 768-d label embedding through cross-attention
and works on 64x64 crops. The presets here are diffusers ``UNet2DConditionModel`` configurations of three sizes:

- ``"paper"``: a typical 64x64 conditional DDPM UNet (blocks 64/128/256/256, two layers per block, cross-attention
  at 32, 16 and 8 px), about 45M parameters with a 768-d embedding: the paper-scale recipe (GPU hours).
- ``"cpu"``: blocks 32/64/128/128, one layer per block, cross-attention at the two lowest resolutions (16 and 8 px),
  about 7.8M parameters: trainable in CPU hours.
- ``"tiny"``: blocks 8/16/16, cross-attention at 16 px only, for tests (about 90k parameters).

Anything else is read as the path of a JSON file with ``UNet2DConditionModel`` keyword arguments (for example a
``unet/config.json`` of a saved model). The channel counts, the sample size, the cross-attention size and the number
of region classes always come from the caller (the colour mode, the crop size, the text encoder and
``--region_conditioning``), whatever the preset says.
"""

from __future__ import annotations

import json
import os
from typing import Any

from diffusers import UNet2DConditionModel

UNET_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "block_out_channels": (64, 128, 256, 256),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": 8,
    },
    "cpu": {
        "block_out_channels": (32, 64, 128, 128),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "attention_head_dim": 8,
    },
    "tiny": {
        "block_out_channels": (8, 16, 16),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "attention_head_dim": 2,
        "norm_num_groups": 4,
    },
}


def unet_config(
    preset_or_json: str,
    in_channels: int,
    cross_attention_dim: int,
    sample_size: int = 64,
    num_class_embeds: int | None = None,
) -> dict[str, Any]:
    """The ``UNet2DConditionModel`` keyword arguments of a named preset or a JSON file, with the channel counts,
    sample size, cross-attention size and number of region classes (``None``: no region input) set from the
    arguments.

    Raises:
        ValueError: if ``preset_or_json`` is neither a preset name nor a readable JSON object file.
    """
    if preset_or_json in UNET_PRESETS:
        config = dict(UNET_PRESETS[preset_or_json])
    elif os.path.isfile(preset_or_json):
        with open(preset_or_json, encoding="utf-8") as handle:
            try:
                config = json.load(handle)
            except json.JSONDecodeError as error:
                raise ValueError(f"--unet_config {preset_or_json!r} is not valid JSON: {error}") from error
        if not isinstance(config, dict):
            raise ValueError(f"--unet_config {preset_or_json!r} must hold a JSON object of UNet arguments.")
        # Saved configs carry diffusers bookkeeping keys (_class_name, _diffusers_version ...).
        config = {key: value for key, value in config.items() if not key.startswith("_")}
    else:
        raise ValueError(
            f"Unknown --unet_config {preset_or_json!r}: use one of {', '.join(UNET_PRESETS)} or the path of a JSON "
            "file with UNet2DConditionModel arguments."
        )
    config.update(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=in_channels,
        cross_attention_dim=cross_attention_dim,
        num_class_embeds=num_class_embeds,
    )
    return config


def build_unet(
    preset_or_json: str,
    in_channels: int,
    cross_attention_dim: int,
    sample_size: int = 64,
    num_class_embeds: int | None = None,
) -> UNet2DConditionModel:
    """A freshly initialised ``UNet2DConditionModel`` from :func:`unet_config`."""
    return UNet2DConditionModel(
        **unet_config(preset_or_json, in_channels, cross_attention_dim, sample_size, num_class_embeds)
    )
