#!/usr/bin/env python
"""Train the region-crop denoiser of diffusers-led (Local Expression Diffusion).

Shaped like diffusers' ``examples/text_to_image/train_text_to_image.py``; launch with::

    led-prepare-data --input_dir photos/ --output_dir crops/
    accelerate launch train_led.py --train_data_dir crops/ --output_dir led-model --use_ema \
        --unet_config cpu --num_train_epochs 500

The data is the imagefolder written by ``led-prepare-data`` (eye and mouth crops with ``expression`` and ``region``
columns; a ``test`` split of held-out subjects is used for validation). Both regions go through one UNet, as in the
paper. By default the UNet gets no region label (the paper's design: the crop itself shows which region it is);
``--region_conditioning`` adds one, a class embedding per region (``num_class_embeds``), so that guidance toward a
label cannot paint one region's features into the other (the bundled model is trained with it). The pipeline passes
each crop's region itself. ``--regions mouth`` trains on one region; the saved model edits only that one.

Devices: the script runs where ``accelerate`` puts it (``accelerate launch --multi_gpu`` gives each process its own
GPU); every tensor of the loop is created on, or moved to, ``accelerator.device``.

The expression labels are embedded once with a sentence-transformers model (``--text_encoder``) and the table is
saved with the model. ``--conditioning_dropout_prob`` replaces the embedding by zeros (the table's null embedding) so
that classifier-free guidance works at inference.

Resuming (``--resume_from_checkpoint latest``) restores the model, the EMA, the optimizer, the LR scheduler and the
data position exactly: the shuffle order of an epoch is a function of (seed, epoch) and the noise, timesteps, label
dropout and augmentation of a batch are a function of (seed, process, epoch, batch index), so a resumed run reaches
the same weights as an uninterrupted one. Checkpoints are written to a temporary folder and renamed when complete;
``latest`` skips a checkpoint whose files do not match its manifest.

At the end the whole ``LocalExpressionPipeline`` is saved with the EMA weights as the main weights and the raw weights
as ``variant="non_ema"`` (when ``--use_ema``), with a model card (``README.md``) made from ``model_card.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import diffusers
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from datasets import load_dataset
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from diffusers.utils import make_image_grid
from diffusers.utils.torch_utils import is_compiled_module
from huggingface_hub import HfApi, ModelCard, ModelCardData
from tqdm.auto import tqdm

from diffusers_led.commands import ArgumentParser
from diffusers_led.data.formats import metadata_path_problems
from diffusers_led.data.writer import read_crop_geometry
from diffusers_led.expressions import ExpressionEmbeddings
from diffusers_led.faces.regions import REGION_ANCHORS
from diffusers_led.image_processor import CropExposure, crop_statistics, crops_to_tensor, tensor_to_crops
from diffusers_led.labels import EXPRESSIONS, canonical_expression
from diffusers_led.model_checks import (
    CONFIG_BOUNDS,
    UnsafeWeightsError,
    pickled_only_components,
    unsafe_weights_message,
)
from diffusers_led.pipeline_led import LocalExpressionPipeline
from diffusers_led.serialization import replace_folder, write_text_atomically
from diffusers_led.texture import load_ratio_maps
from diffusers_led.unet_presets import UNET_PRESETS, build_unet
from diffusers_led.utils import file_digest

logger = get_logger(__name__, log_level="INFO")

DEFAULT_TEXT_ENCODER = "all-mpnet-base-v2"
MODEL_CARD_TEMPLATE = Path(__file__).resolve().with_name("model_card.md")
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_STATE_FILE = "training_state.json"
VALIDATION_GRID = "validation_grid.png"
# Data whose terms restrict the images and what is made from them (the `source_format` column of led-prepare-data):
# format -> (name, terms, whether a model trained on it may be published openly). None of them may have its images
# redistributed, so a model trained on any of them is uploaded without the validation grid (held-out crops).
_CKPLUS_TERMS = (
    "the CK+ agreement covers its images: non-commercial research use only, and the images may not be redistributed "
    "(none is part of this model). The weights are offered for non-commercial research use only."
)
RESTRICTED_SOURCES = {
    "rafd": (
        "RaFD (Radboud Faces Database)",
        "its terms allow research use only and forbid redistributing the images or publishing models trained on "
        "them openly.",
        False,
    ),
    "ckplus": ("CK+ (Extended Cohn-Kanade)", _CKPLUS_TERMS, True),
    "ckplus_sample": ("CK+ frames (the EmoPy sample of Extended Cohn-Kanade)", _CKPLUS_TERMS, True),
}
WEIGHTS_TERMS = "non-commercial research use only"


def build_parser() -> ArgumentParser:
    """The command line of ``train_led.py``: argument names as in diffusers' ``train_text_to_image.py``
    (underscores; the dashed spelling works too)."""
    parser = ArgumentParser(description="Train a Local Expression Diffusion region denoiser.")
    _add_model_arguments(parser)
    _add_data_arguments(parser)
    _add_optimization_arguments(parser)
    _add_output_arguments(parser)
    return parser


def _add_model_arguments(parser: ArgumentParser) -> None:
    """The model: what to fine-tune or build, the label embeddings, the noise schedule."""
    parser.add_argument(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="A LocalExpressionPipeline folder or Hub id to fine-tune (its unet, scheduler and embeddings).",
    )
    parser.add_argument("--revision", type=str, default=None, help="Revision of the pretrained model on the Hub.")
    parser.add_argument("--variant", type=str, default=None, help="Variant of the pretrained UNet, e.g. non_ema.")
    parser.add_argument(
        "--allow_pickled_weights",
        action="store_true",
        help="Also load pickled (.bin/.pt) weights for --pretrained_model_name_or_path and a saved --text_encoder "
        "table. Pickles can run arbitrary code when loaded: use only for files you trust. Default: safetensors only.",
    )
    parser.add_argument(
        "--unet_config",
        type=str,
        default="cpu",
        help=f"UNet preset ({', '.join(UNET_PRESETS)}) or a JSON file of UNet2DConditionModel arguments; "
        "ignored with --pretrained_model_name_or_path.",
    )
    parser.add_argument(
        "--text_encoder",
        type=str,
        default=None,
        help=f"sentence-transformers model (name or path) that embeds the labels (default {DEFAULT_TEXT_ENCODER}, "
        "or the pretrained model's table), or a saved ExpressionEmbeddings / pipeline folder to reuse its table.",
    )
    parser.add_argument(
        "--color_mode",
        type=str,
        default="auto",
        choices=("auto", "rgb", "luminance"),
        help="rgb: 3-channel UNet; luminance: 1-channel UNet on Y (colour photos keep their chroma); auto: "
        "luminance when every training crop is gray, else rgb.",
    )
    parser.add_argument(
        "--region_conditioning",
        action="store_true",
        help="Give the UNet the crop's region as a class label (num_class_embeds), so the expression guidance cannot "
        "paint one region's features (teeth) into another. The paper's UNet has no region input.",
    )
    parser.add_argument("--ddpm_num_steps", type=int, default=500, help="DDPM training timesteps (the paper: 500).")
    parser.add_argument("--ddpm_beta_schedule", type=str, default="linear", help="DDPM beta schedule.")


def _add_data_arguments(parser: ArgumentParser) -> None:
    """The crops: where they come from, which are used, and their augmentation."""
    parser.add_argument("--dataset_name", type=str, default=None, help="A dataset on the Hub or a local dataset path.")
    parser.add_argument("--dataset_config_name", type=str, default=None, help="The dataset's config, if any.")
    parser.add_argument(
        "--train_data_dir",
        type=str,
        default=None,
        help="The imagefolder made by led-prepare-data (train/ and test/ with metadata.jsonl).",
    )
    parser.add_argument("--cache_dir", type=str, default=None, help="Where datasets are cached.")
    parser.add_argument("--image_column", type=str, default="image", help="The column with the crops.")
    parser.add_argument("--caption_column", type=str, default="expression", help="The column with the labels.")
    parser.add_argument("--region_column", type=str, default="region", help="The column with the region names.")
    parser.add_argument("--regions", type=str, nargs="+", default=None, help="Regions to train on (default: all).")
    parser.add_argument(
        "--region_anchor",
        type=str,
        default=None,
        choices=REGION_ANCHORS,
        help="The crop geometry of data without a led-prepare-data report (e.g. a Hub dataset); the saved model edits "
        "with it. Data made by led-prepare-data records its own (--region_anchor there).",
    )
    parser.add_argument("--validation_split", type=str, default="test", help="Split with held-out crops.")
    parser.add_argument("--max_train_samples", type=int, default=None, help="Truncate the training crops (debugging).")
    parser.add_argument("--resolution", type=int, default=64, help="Crop size; must match the data.")
    parser.add_argument("--random_flip", action="store_true", help="Mirror crops at random (see the README).")
    parser.add_argument("--affine_degrees", type=float, default=0.0, help="Random rotation of crops, +- degrees.")
    parser.add_argument("--affine_translate", type=float, default=0.0, help="Random shift, +- fraction of the crop.")
    parser.add_argument("--affine_scale", type=float, default=0.0, help="Random zoom, +- fraction.")
    parser.add_argument(
        "--brightness_jitter",
        type=float,
        default=0.0,
        help="Random brightness shift of crops, +- this fraction of the [-1, 1] range (lighting, skin and lip tone).",
    )
    parser.add_argument("--contrast_jitter", type=float, default=0.0, help="Random contrast factor, 1 +- this.")
    parser.add_argument(
        "--match_crop_exposure",
        action="store_true",
        help="Train on every crop mapped to its region's mean level and contrast over the training crops (what the "
        "pipeline does to every photo's crops), so that the lighting of the few people who show an expression is "
        "not learned as part of it.",
    )
    parser.add_argument(
        "--balance_expressions",
        action="store_true",
        help="Draw crops so that every expression is seen equally often (sampling with replacement, weights 1 / "
        "class size): small datasets are mostly neutral.",
    )
    parser.add_argument("--dataloader_num_workers", type=int, default=0, help="DataLoader worker processes.")


def _add_optimization_arguments(parser: ArgumentParser) -> None:
    """The optimisation: batches, learning rate, loss, label dropout, EMA, precision."""
    parser.add_argument("--output_dir", type=str, default="led-model", help="Where the model and checkpoints go.")
    parser.add_argument("--seed", type=int, default=None, help="A seed for reproducible training.")
    parser.add_argument("--train_batch_size", type=int, default=16, help="Batch size per device.")
    parser.add_argument("--num_train_epochs", type=int, default=500)
    parser.add_argument("--max_train_steps", type=int, default=None, help="Overrides --num_train_epochs if set.")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--scale_lr", action="store_true", help="Scale the LR by GPUs, accumulation and batch size.")
    parser.add_argument(
        "--lr_scheduler",
        type=str,
        default="cosine",
        help='"cosine" (the paper\'s CosineAnnealingLR), "linear", "cosine_with_restarts", "polynomial", '
        '"constant" or "constant_with_warmup".',
    )
    parser.add_argument("--lr_warmup_steps", type=int, default=0)
    parser.add_argument("--adam_beta1", type=float, default=0.9)
    parser.add_argument("--adam_beta2", type=float, default=0.999)
    parser.add_argument("--adam_weight_decay", type=float, default=0.0, help="0 gives the paper's Adam.")
    parser.add_argument("--adam_epsilon", type=float, default=1e-08)
    parser.add_argument("--max_grad_norm", type=float, default=1.0)
    parser.add_argument("--loss_type", type=str, default="smooth_l1", choices=("smooth_l1", "l2"))
    parser.add_argument("--smooth_l1_beta", type=float, default=1.0, help="beta of the smooth L1 loss (Eq. 5: 1).")
    parser.add_argument(
        "--conditioning_dropout_prob",
        type=float,
        default=0.0,
        help="Probability of replacing a label embedding by zeros; > 0 enables classifier-free guidance.",
    )
    parser.add_argument("--use_ema", action="store_true", help="Keep an EMA of the weights (saved as the main ones).")
    parser.add_argument("--ema_decay", type=float, default=0.9999)
    parser.add_argument("--ema_min_decay", type=float, default=0.0)
    parser.add_argument("--ema_update_after_step", type=int, default=0)
    parser.add_argument("--ema_use_warmup", action="store_true", help="EMA warmup 1 - (1 + step/inv_gamma)^-power.")
    parser.add_argument("--ema_inv_gamma", type=float, default=1.0)
    parser.add_argument("--ema_power", type=float, default=3 / 4)
    parser.add_argument(
        "--mixed_precision",
        type=str,
        default=None,
        choices=("no", "fp16", "bf16"),
        help="Defaults to the accelerate config. bf16 works on CPU; fp16 needs a GPU.",
    )


def _add_output_arguments(parser: ArgumentParser) -> None:
    """Checkpoints, logging, validation and the Hub."""
    parser.add_argument("--checkpointing_steps", type=int, default=500)
    parser.add_argument("--checkpoints_total_limit", type=int, default=None, help="Keep at most this many.")
    parser.add_argument(
        "--resume_from_checkpoint",
        type=str,
        default=None,
        help='A checkpoint folder, or "latest" for the newest complete one in --output_dir.',
    )
    parser.add_argument("--logging_dir", type=str, default="logs", help="TensorBoard log folder (in --output_dir).")
    parser.add_argument(
        "--report_to", type=str, default="tensorboard", help='"tensorboard", "wandb", "all" or "none".'
    )
    parser.add_argument("--tracker_project_name", type=str, default="train_led")
    parser.add_argument("--validation_epochs", type=int, default=50, help="Validate every N epochs (and at the end).")
    parser.add_argument("--num_validation_samples", type=int, default=2, help="Held-out crops per region.")
    parser.add_argument("--validation_strengths", type=float, nargs="+", default=[0.3, 0.5])
    parser.add_argument("--validation_inference_steps", type=int, default=20, help="DDIM steps of the full schedule.")
    # Hub.
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_model_id", type=str, default=None, help="Repository name (default: --output_dir's).")
    parser.add_argument("--hub_private_repo", action="store_true", help="Create the Hub repository private.")
    parser.add_argument("--hub_token", type=str, default=None, help="Token for the Hub (never logged).")
    parser.add_argument(
        "--license",
        type=str,
        default="other",
        help="Hub licence id of the weights for the model card's metadata. Models trained on RaFD or CK+ are marked "
        "'non-commercial research use only' in the card and model_index.json whatever it says.",
    )
    parser.add_argument(
        "--ratio_maps",
        type=str,
        default=None,
        help="Folder of the action units' shading maps (scripts/fit_expression_ratios.py) the saved model carries for "
        "its geometry modes (default: the bundled model's); 'none' for a model without them.",
    )
    parser.add_argument("--local_rank", type=int, default=-1, help="Set by the launcher.")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed and checked command line of ``train_led.py`` (see :func:`build_parser`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    env_local_rank = int(os.environ.get("LOCAL_RANK", -1))
    if env_local_rank != -1 and env_local_rank != args.local_rank:
        args.local_rank = env_local_rank
    if args.dataset_name is None and args.train_data_dir is None:
        parser.error("Need either --dataset_name or --train_data_dir.")
    if not 0.0 <= args.conditioning_dropout_prob < 1.0:
        parser.error("--conditioning_dropout_prob must be in [0, 1).")
    if any(not 0.0 < s <= 1.0 for s in args.validation_strengths):
        parser.error("--validation_strengths must be in (0, 1].")
    low, high = CONFIG_BOUNDS["unet/config.json"]["sample_size"]  # what a saved model may have, to be loadable
    if not low <= args.resolution <= high:
        parser.error(f"--resolution must be in [{low:g}, {high:g}] (the crop side in pixels), got {args.resolution}.")
    return args


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


class CropDataset(torch.utils.data.Dataset):
    """Region crops held in memory as UNet inputs in [-1, 1], with their expression and region.

    Attributes:
        pixel_values: ``(N, C, S, S)``, C = 3 (rgb) or 1 (luminance).
        crops: the RGB ``uint8`` crops (the chroma source when luminance edits are turned back into RGB).
        expressions, regions, subjects: per-crop labels.
    """

    def __init__(self, crops: list[np.ndarray], expressions: list[str], regions: list[str], subjects: list[str]):
        self.crops = crops
        self.expressions = expressions
        self.regions = regions
        self.subjects = subjects
        self.pixel_values: torch.Tensor | None = None

    def to_tensors(self, color_mode: str) -> CropDataset:
        """Convert the crops to UNet inputs once (the pipeline's own conversion)."""
        self.pixel_values = crops_to_tensor(self.crops, color_mode)
        return self

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "pixel_values": self.pixel_values[index],
            "expression": self.expressions[index],
            "region": self.regions[index],
        }

    def balanced_weights(self) -> torch.Tensor:
        """Per-crop sampling weights that give every expression the same total weight."""
        counts = {label: self.expressions.count(label) for label in set(self.expressions)}
        return torch.tensor([1.0 / counts[label] for label in self.expressions], dtype=torch.float64)


class EpochShuffleSampler(torch.utils.data.Sampler):
    """A fresh permutation every epoch that depends only on ``(seed, epoch)``, so a resumed run sees the data in the
    same order as an uninterrupted one (accelerate shards it across processes). With ``weights``, each epoch is
    ``size`` draws with replacement in proportion to them instead."""

    def __init__(self, size: int, seed: int, weights: torch.Tensor | None = None):
        self.size = size
        self.seed = seed
        self.weights = weights
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is not None:
            return iter(torch.multinomial(self.weights, self.size, replacement=True, generator=generator).tolist())
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def _load_raw_dataset(args: argparse.Namespace) -> datasets.DatasetDict:
    for folder in (args.train_data_dir, args.dataset_name):
        problems = metadata_path_problems(folder) if folder and Path(folder).is_dir() else []
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ValueError(
                f"The dataset metadata in {folder} names files outside the dataset folder, which is refused: "
                f"{'; '.join(problems[:3])}{more}. Fix or remove those rows (led-prepare-data writes plain file "
                "names)."
            )
    try:
        if args.dataset_name is not None:
            return load_dataset(
                args.dataset_name, args.dataset_config_name, cache_dir=args.cache_dir, data_dir=args.train_data_dir
            )
        if not Path(args.train_data_dir).is_dir():
            raise FileNotFoundError(f"--train_data_dir {args.train_data_dir} is not a folder")
        return load_dataset("imagefolder", data_dir=args.train_data_dir, cache_dir=args.cache_dir)
    except FileNotFoundError as error:  # datasets' "no data files" errors derive from it
        raise ValueError(
            f"No training crops found ({error}). Make the dataset with `led-prepare-data --input_dir PHOTOS "
            "--output_dir CROPS` and pass --train_data_dir CROPS."
        ) from error


def _read_split(split: datasets.Dataset, args: argparse.Namespace, name: str) -> CropDataset:
    """Decode one split into a :class:`CropDataset`, checking sizes and labels."""
    for column in (args.image_column, args.caption_column, args.region_column):
        if column not in split.column_names:
            raise ValueError(f"The {name} split has no {column!r} column; it has {split.column_names}.")
    has_subject = "subject" in split.column_names
    crops, expressions, regions, subjects = [], [], [], []
    for index, example in enumerate(split):
        region = example[args.region_column]
        if args.regions is not None and region not in args.regions:
            continue
        image = example[args.image_column]
        if image.size != (args.resolution, args.resolution):
            raise ValueError(
                f"Resolution mismatch: crop {index} of the {name} split is {image.size[0]}x{image.size[1]} but "
                f"--resolution is {args.resolution}. Train with --resolution {image.size[0]} or re-make the crops "
                f"with led-prepare-data --crop_size {args.resolution}."
            )
        try:
            expressions.append(canonical_expression(example[args.caption_column]))
        except ValueError as error:
            raise ValueError(f"Crop {index} of the {name} split: {error}") from error
        crops.append(np.asarray(image.convert("RGB")))
        regions.append(region)
        subjects.append(str(example["subject"]) if has_subject else "")
    return CropDataset(crops, expressions, regions, subjects)


def crop_geometry(args: argparse.Namespace) -> dict[str, Any]:
    """Where the training crops' boxes sit (``region_anchor``, ``region_margins``): recorded by led-prepare-data,
    else ``--region_anchor`` with its default margins. The saved pipeline must cut the same crops when editing."""
    recorded = read_crop_geometry(args.train_data_dir) if args.train_data_dir else None
    if recorded is None:
        return {"region_anchor": args.region_anchor or "landmarks", "region_margins": None}
    if args.region_anchor is not None and args.region_anchor != recorded["region_anchor"]:
        raise ValueError(
            f"--region_anchor {args.region_anchor}, but the crops in {args.train_data_dir} were cut with "
            f"{recorded['region_anchor']} (its prepare_report.json): drop the flag, or re-make the crops with "
            f"led-prepare-data --region_anchor {args.region_anchor}."
        )
    return recorded


def load_crop_data(args: argparse.Namespace) -> tuple[CropDataset, CropDataset | None, dict[str, Any]]:
    """The training crops, the held-out crops (``None`` without a validation split) and a description of the data
    for the model card."""
    raw = _load_raw_dataset(args)
    if "train" not in raw:
        raise ValueError(f"The dataset has no train split (it has {list(raw)}).")
    train_split = raw["train"]
    if args.max_train_samples is not None:
        train_split = train_split.shuffle(seed=args.seed).select(range(min(args.max_train_samples, len(train_split))))
    train = _read_split(train_split, args, "train")
    if len(train) == 0:
        raise ValueError(
            "The training split is empty"
            + (f" for regions {args.regions}" if args.regions else "")
            + ": led-prepare-data probably skipped every photo (see its prepare_report.json)."
        )
    found_regions = sorted(set(train.regions))
    if args.regions is not None and sorted(set(args.regions)) != found_regions:
        raise ValueError(f"--regions {args.regions}: the training data only has {found_regions}.")
    validation = None
    if args.validation_split in raw:
        validation = _read_split(raw[args.validation_split], args, args.validation_split)
        validation = validation if len(validation) else None
    source_formats = sorted(set(train_split["source_format"])) if "source_format" in train_split.column_names else []
    info = {"regions": found_regions, "source_formats": source_formats, "splits": [], "geometry": crop_geometry(args)}
    for name, data in (("train", train), (args.validation_split, validation)):
        if data is not None:
            counts = {label: data.expressions.count(label) for label in EXPRESSIONS if label in data.expressions}
            info["splits"].append(
                {
                    "name": name,
                    "crops": len(data),
                    "photos": len(data) // len(found_regions),
                    "subjects": len(set(data.subjects)),
                    "expressions": ", ".join(f"{k} {v}" for k, v in counts.items()),
                }
            )
    return train, validation, info


def resolve_color_mode(requested: str, crops: Sequence[np.ndarray]) -> str:
    """``requested`` unless ``"auto"``: then ``"luminance"`` when every crop is gray (three equal channels)."""
    if requested != "auto":
        return requested
    gray = all(np.array_equal(c[..., 0], c[..., 1]) and np.array_equal(c[..., 1], c[..., 2]) for c in crops)
    return "luminance" if gray else "rgb"


# ---------------------------------------------------------------------------------------------------------------------
# Conditioning and model
# ---------------------------------------------------------------------------------------------------------------------


def _embeddings_folder(path: str) -> str | None:
    """``path`` (or its ``embeddings/`` sub-folder) when it holds a saved ExpressionEmbeddings, else ``None``."""
    for folder in (Path(path), Path(path) / "embeddings"):
        config = folder / "config.json"
        if config.is_file() and json.loads(config.read_text()).get("_class_name") == ExpressionEmbeddings.__name__:
            return str(folder)
    return None


def safe_from_pretrained(cls, path: str, allow_pickled_weights: bool = False, **kwargs):
    """``cls.from_pretrained(path, **kwargs)`` from safetensors only, unless ``allow_pickled_weights``
    (``--allow_pickled_weights``); a local folder with only pickled weights raises :class:`UnsafeWeightsError`."""
    if not allow_pickled_weights:
        found = pickled_only_components(path, kwargs.get("subfolder"))
        if found:
            raise UnsafeWeightsError(unsafe_weights_message(os.path.join(path, kwargs.get("subfolder") or ""), found))
    return cls.from_pretrained(path, use_safetensors=None if allow_pickled_weights else True, **kwargs)


def load_expression_embeddings(
    text_encoder: str | None,
    pretrained_model_name_or_path: str | None,
    trained_labels: Sequence[str],
    conditioning_dropout_prob: float,
    revision: str | None = None,
    allow_pickled_weights: bool = False,
) -> ExpressionEmbeddings:
    """The label-embedding table the UNet is conditioned on, recording the labels trained and the dropout.

    Sources, in order: a saved table (``text_encoder`` is an ExpressionEmbeddings or pipeline folder), the pretrained
    pipeline's table (when fine-tuning without ``text_encoder``; its trained labels are kept), or a table computed
    with the sentence-transformers model ``text_encoder`` (default ``all-mpnet-base-v2``) for all eight labels.

    Raises:
        ValueError: if a training label has no row in the table.
    """
    saved = _embeddings_folder(text_encoder) if text_encoder else None
    if saved is not None:
        table = safe_from_pretrained(ExpressionEmbeddings, saved, allow_pickled_weights)
    elif text_encoder is None and pretrained_model_name_or_path is not None:
        table = safe_from_pretrained(
            ExpressionEmbeddings,
            pretrained_model_name_or_path,
            allow_pickled_weights,
            subfolder="embeddings",
            revision=revision,
        )
        trained_labels = sorted(set(trained_labels) | set(table.trained_labels), key=EXPRESSIONS.index)
    else:
        table = ExpressionEmbeddings.from_text_encoder(text_encoder or DEFAULT_TEXT_ENCODER, labels=EXPRESSIONS)
    missing = [label for label in trained_labels if label not in table.labels]
    if missing:
        raise ValueError(
            f"The training labels {missing} have no embedding in the table from "
            f"{text_encoder or pretrained_model_name_or_path} (it has {table.labels}); "
            "use a --text_encoder to embed them."
        )
    embeddings = ExpressionEmbeddings(
        labels=table.labels,
        embedding_dim=table.config.embedding_dim,
        trained_labels=list(trained_labels),
        text_encoder=table.config.text_encoder,
        conditioning_dropout_prob=conditioning_dropout_prob,
    )
    embeddings.embeddings.data.copy_(table.embeddings.data)
    return embeddings


def load_or_build_unet(
    args: argparse.Namespace, crops: Sequence[np.ndarray], cross_attention_dim: int, regions: Sequence[str]
) -> tuple[UNet2DConditionModel, str]:
    """The UNet to train and its colour mode: the pretrained UNet (checked against ``--color_mode``,
    ``--resolution``, the label table and the regions) or a new one from ``--unet_config``."""
    if args.pretrained_model_name_or_path is None:
        color_mode = resolve_color_mode(args.color_mode, crops)
        in_channels = 1 if color_mode == "luminance" else 3
        num_class_embeds = len(set(regions)) if args.region_conditioning else None
        unet = build_unet(args.unet_config, in_channels, cross_attention_dim, args.resolution, num_class_embeds)
        return unet, color_mode
    unet = safe_from_pretrained(
        UNet2DConditionModel,
        args.pretrained_model_name_or_path,
        getattr(args, "allow_pickled_weights", False),
        subfolder="unet",
        revision=args.revision,
        variant=args.variant,
    )
    color_mode = "luminance" if unet.config.in_channels == 1 else "rgb"
    checks = [
        ("sample_size", unet.config.sample_size, args.resolution, "--resolution"),
        ("color mode", color_mode, color_mode if args.color_mode == "auto" else args.color_mode, "--color_mode"),
        ("cross_attention_dim", unet.config.cross_attention_dim, cross_attention_dim, "the label embeddings"),
    ]
    if unet.config.num_class_embeds is not None:
        checks.append(("region classes", unet.config.num_class_embeds, len(set(regions)), "the data's regions"))
    for key, have, want, source in checks:
        if have != want:
            raise ValueError(f"The pretrained UNet has {key} {have} but {source} needs {want}.")
    return unet, color_mode


def compute_loss(model_pred: torch.Tensor, target: torch.Tensor, loss_type: str = "smooth_l1", beta: float = 1.0):
    """The training loss between predicted and true noise, averaged over all elements: smooth L1 with ``beta``
    (the paper's Eq. 5: ``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``) or ``"l2"`` (MSE)."""
    if loss_type == "smooth_l1":
        return F.smooth_l1_loss(model_pred.float(), target.float(), beta=beta)
    if loss_type == "l2":
        return F.mse_loss(model_pred.float(), target.float())
    raise ValueError(f"Unknown --loss_type {loss_type!r}; use smooth_l1 or l2.")


def batch_generator(seed: int, process_index: int, epoch: int, batch_index: int) -> torch.Generator:
    """The random stream of one batch on one process: a function of its position only, so resuming is exact."""
    digest = hashlib.sha256(f"{seed}/{process_index}/{epoch}/{batch_index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def augment(pixel_values: torch.Tensor, generator: torch.Generator, args: argparse.Namespace) -> torch.Tensor:
    """Random mirror, small affine jitter and brightness / contrast jitter of a batch of crops.

    Mirroring a crop equals cropping the mirrored face: the Eq. 1-4 boxes are symmetric about the midpoint of their
    landmark pair (eye centres, mouth corners), so the flipped crop is a valid crop of the same region with the same
    expression (a one-sided contempt smirk moves to the other side, which is still contempt). Brightness and contrast
    change per crop about its mean, so that an expression is not learnt as the lighting or lip tone of the few people
    who showed it.
    """
    batch = pixel_values.shape[0]
    if args.random_flip:
        flip = (torch.rand(batch, generator=generator) < 0.5).to(pixel_values.device)
        pixel_values = torch.where(flip[:, None, None, None], pixel_values.flip(-1), pixel_values)
    if args.affine_degrees or args.affine_translate or args.affine_scale:
        angle = (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(args.affine_degrees)
        scale = 1 + (torch.rand(batch, generator=generator) * 2 - 1) * args.affine_scale
        shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * 2 * args.affine_translate
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(pixel_values), list(pixel_values.shape), align_corners=False)
        pixel_values = F.grid_sample(
            pixel_values, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
    if args.brightness_jitter or args.contrast_jitter:
        shape = (batch, 1, 1, 1)
        contrast = 1 + (torch.rand(shape, generator=generator) * 2 - 1) * args.contrast_jitter
        brightness = (torch.rand(shape, generator=generator) * 2 - 1) * 2 * args.brightness_jitter
        mean = pixel_values.mean(dim=(1, 2, 3), keepdim=True)
        pixel_values = (pixel_values - mean) * contrast.to(pixel_values) + mean + brightness.to(pixel_values)
        pixel_values = pixel_values.clamp(-1, 1)
    return pixel_values


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------------------------------


def _checkpoint_step(path: Path) -> int:
    return int(path.name[len(CHECKPOINT_PREFIX) :])


def list_checkpoints(output_dir: os.PathLike) -> list[Path]:
    """The ``checkpoint-<step>`` folders of ``output_dir``, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [
        p
        for p in output_dir.iterdir()
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and p.name[len(CHECKPOINT_PREFIX) :].isdigit()
    ]
    return sorted(found, key=_checkpoint_step)


def checkpoint_problem(path: os.PathLike) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed from (missing manifest, missing, truncated or corrupt file),
    or ``None`` when it is complete. Content hashes are checked when the manifest has them (checkpoints written
    before they were added have sizes only)."""
    path = Path(path)
    state_file = path / CHECKPOINT_STATE_FILE
    if not state_file.is_file():
        return f"it has no {CHECKPOINT_STATE_FILE} (the save did not finish)"
    try:
        state = json.loads(state_file.read_text())
        files = state["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        return f"its {CHECKPOINT_STATE_FILE} is unreadable ({error})"
    for name, size in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes instead of {size}"
    for name, digest in (state.get("sha256") or {}).items():
        if (path / name).is_file() and file_digest(path / name) != digest:
            return f"{name} is corrupt (its content does not match the checksum in {CHECKPOINT_STATE_FILE})"
    return None


def find_resume_checkpoint(output_dir: str, resume_from_checkpoint: str | None) -> Path | None:
    """The checkpoint to resume from: the named one (which must be complete) or, for ``"latest"``, the newest
    complete one in ``output_dir`` (incomplete ones are skipped with a warning); ``None`` to start afresh."""
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint != "latest":
        path = Path(resume_from_checkpoint)
        path = path if path.is_dir() else Path(output_dir) / path.name
        problem = checkpoint_problem(path) if path.is_dir() else "it does not exist"
        if problem:
            raise ValueError(f"Cannot resume from checkpoint {path}: {problem}.")
        return path
    for path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning(f"Skipping checkpoint {path}: {problem}.")
    logger.info(f"No complete checkpoint in {output_dir}; starting a new training run.")
    return None


def save_checkpoint(
    accelerator: Accelerator, output_dir: str, global_step: int, position: dict[str, int], total_limit: int | None
) -> Path:
    """``accelerator.save_state`` into a temporary folder, a manifest of its files, then an atomic rename to
    ``checkpoint-<step>``; afterwards the oldest checkpoints beyond ``total_limit`` are removed. Call on every
    process."""
    final = Path(output_dir) / f"{CHECKPOINT_PREFIX}{global_step}"
    temporary = Path(output_dir) / f".tmp-{final.name}"
    if accelerator.is_main_process and temporary.exists():
        shutil.rmtree(temporary)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {p.relative_to(temporary).as_posix(): p.stat().st_size for p in temporary.rglob("*") if p.is_file()}
        state = {"global_step": global_step, **position, "num_processes": accelerator.num_processes, "files": files}
        state["sha256"] = {name: file_digest(temporary / name) for name in files}
        write_text_atomically(temporary / CHECKPOINT_STATE_FILE, json.dumps(state, indent=1))
        replace_folder(temporary, final)  # an existing one: re-reaching a step after resuming from an earlier one
        logger.info(f"Saved state to {final}")
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                logger.info(f"Removing checkpoint {old} (--checkpoints_total_limit {total_limit})")
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


# ---------------------------------------------------------------------------------------------------------------------
# Validation, model card, Hub
# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def log_validation(
    unet: UNet2DConditionModel,
    noise_scheduler: DDPMScheduler,
    embeddings: ExpressionEmbeddings,
    validation: CropDataset,
    color_mode: str,
    args: argparse.Namespace,
    accelerator: Accelerator,
    global_step: int,
    regions: Sequence[str],
    crop_statistics: dict[str, list[float]] | None = None,
) -> PIL.Image.Image:
    """Edit held-out crops to every trained label at each validation strength; save the grid (rows: crops; columns:
    the original, then labels strength by strength) and log it to the trackers."""
    logger.info("Running validation...")
    indices = []
    for region in sorted(set(validation.regions)):
        indices += [i for i, r in enumerate(validation.regions) if r == region][: args.num_validation_samples]
    originals = validation.pixel_values[indices].to(accelerator.device, dtype=unet.dtype)
    sources = [validation.crops[i] for i in indices]
    labels = embeddings.trained_labels
    # The pipeline's own crop-level SDEdit, with a fast scheduler; no face detection is involved.
    pipeline = LocalExpressionPipeline(
        unet=unet,
        scheduler=DDIMScheduler.from_config(noise_scheduler.config),
        embeddings=embeddings,
        regions=tuple(regions),
        crop_statistics=crop_statistics,
    )
    pipeline.set_progress_bar_config(disable=True)
    num_train_timesteps = noise_scheduler.config.num_train_timesteps
    generator = torch.Generator().manual_seed(args.seed if args.seed is not None else 0)
    was_training = unet.training
    unet.eval()
    columns = [[PIL.Image.fromarray(crop) for crop in sources]]
    for strength in args.validation_strengths:
        batch = originals.repeat(len(labels), 1, 1, 1)
        targets = [label for label in labels for _ in indices]
        with torch.no_grad():
            edited = pipeline.denoise_crops(
                batch,
                targets,
                int(num_train_timesteps * strength),
                args.validation_inference_steps,
                generator=generator,
                crop_regions=[validation.regions[i] for i in indices] * len(labels),
            )
        images = tensor_to_crops(edited, sources * len(labels), color_mode)
        for k in range(len(labels)):
            chunk = images[k * len(indices) : (k + 1) * len(indices)]
            columns.append([PIL.Image.fromarray(np.rint(image).astype(np.uint8)) for image in chunk])
    unet.train(was_training)
    rows = [[column[row] for column in columns] for row in range(len(indices))]
    grid = make_image_grid([image for row in rows for image in row], len(rows), len(columns))
    folder = Path(args.output_dir) / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    grid.save(folder / f"step-{global_step:07d}.png")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("validation", np.asarray(grid), global_step, dataformats="HWC")
        else:
            logger.warning(f"image logging not implemented for {tracker.name}")
    return grid


def hyperparameter_rows(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The training settings worth a row of the model card (never the Hub token)."""
    names = [
        "unet_config",
        "pretrained_model_name_or_path",
        "resolution",
        "train_batch_size",
        "gradient_accumulation_steps",
        "num_train_epochs",
        "max_train_steps",
        "learning_rate",
        "lr_scheduler",
        "lr_warmup_steps",
        "adam_beta1",
        "adam_beta2",
        "adam_weight_decay",
        "loss_type",
        "smooth_l1_beta",
        "ddpm_num_steps",
        "conditioning_dropout_prob",
        "use_ema",
        "ema_decay",
        "random_flip",
        "affine_degrees",
        "affine_translate",
        "affine_scale",
        "brightness_jitter",
        "contrast_jitter",
        "match_crop_exposure",
        "mixed_precision",
        "seed",
    ]
    return [(name, getattr(args, name)) for name in names]


def restricted_formats(data_info: dict[str, Any]) -> list[str]:
    """The training data's source formats whose terms restrict the images and model (:data:`RESTRICTED_SOURCES`)."""
    return [name for name in data_info["source_formats"] if name in RESTRICTED_SOURCES]


def private_only_formats(data_info: dict[str, Any]) -> list[str]:
    """The training data's source formats whose terms forbid publishing a model trained on them openly (RaFD)."""
    return [name for name in restricted_formats(data_info) if not RESTRICTED_SOURCES[name][2]]


def weights_licence(args: argparse.Namespace, data_info: dict[str, Any]) -> str:
    """What the model card and ``model_index.json`` say about the use of the weights: the data's terms when it has
    any (non-commercial research use), else ``--license``."""
    return WEIGHTS_TERMS if restricted_formats(data_info) else args.license


def write_model_card(
    args: argparse.Namespace,
    repo_id: str,
    data_info: dict[str, Any],
    pipeline: LocalExpressionPipeline,
    global_step: int,
    epochs: int,
    final_loss: float | None,
    validation_grid: str | None,
) -> ModelCard:
    """Fill ``model_card.md`` and write it as ``README.md`` in ``--output_dir``."""
    card_data = ModelCardData(
        license=args.license,
        library_name="diffusers",
        pipeline_tag="image-to-image",
        base_model=None
        if os.path.isdir(args.pretrained_model_name_or_path or "")
        else args.pretrained_model_name_or_path,
        tags=["diffusers-led", "facial-expression", "ddpm", "sdedit", "image-to-image"],
    )
    embeddings = pipeline.embeddings
    card = ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        model_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        num_parameters=f"{sum(p.numel() for p in pipeline.unet.parameters()) / 1e6:.1f}M",
        regions=data_info["regions"],
        resolution=args.resolution,
        num_train_timesteps=pipeline.scheduler.config.num_train_timesteps,
        restricted_sources=[RESTRICTED_SOURCES[name][:2] for name in restricted_formats(data_info)],
        private_only=bool(private_only_formats(data_info)),
        has_non_ema=args.use_ema,
        trained_labels=embeddings.trained_labels,
        color_mode=pipeline.color_mode,
        region_anchor=pipeline.region_processor.region_anchor,
        region_margins=", ".join(
            f"{region} {mx:g} / {my:g}"
            for region, (mx, my) in pipeline.region_processor.geometry["region_margins"].items()
        ),
        supports_guidance=embeddings.supports_guidance,
        conditioning_dropout_prob=args.conditioning_dropout_prob,
        data_description=(
            f"Region crops made by `led-prepare-data` from {', '.join(data_info['source_formats'])} photos."
            if data_info["source_formats"]
            else f"Region crops from {args.dataset_name or args.train_data_dir}."
        ),
        splits=data_info["splits"],
        text_encoder=embeddings.config.text_encoder,
        embedding_dim=embeddings.config.embedding_dim,
        loss_type=args.loss_type,
        smooth_l1_beta=args.smooth_l1_beta,
        global_step=global_step,
        epochs=epochs,
        final_loss=final_loss,
        hyperparameters=hyperparameter_rows(args),
        validation_grid=None if restricted_formats(data_info) else validation_grid,
        validation_strengths=args.validation_strengths,
        license=weights_licence(args, data_info),
    )
    card.save(os.path.join(args.output_dir, "README.md"))
    return card


def check_publishable(args: argparse.Namespace, data_info: dict[str, Any]) -> None:
    """Refuse to push a model trained on RaFD to a public repository (its terms forbid it)."""
    restricted = private_only_formats(data_info)
    if args.push_to_hub and restricted and not args.hub_private_repo:
        raise ValueError(
            f"The training data comes from {', '.join(restricted)}, whose licence forbids publishing models trained "
            "on it openly. Add --hub_private_repo to push to a private repository."
        )


def unwrap_model(accelerator: Accelerator, model: torch.nn.Module) -> torch.nn.Module:
    model = accelerator.unwrap_model(model)
    return model._orig_mod if is_compiled_module(model) else model


# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------


def _make_accelerator(args: argparse.Namespace) -> Accelerator:
    """The accelerator of the run (multi-CPU when several processes have no GPU) and the logging of each process."""
    if args.report_to == "wandb" and args.hub_token is not None:
        raise ValueError(
            "You cannot use both --report_to=wandb and --hub_token due to a security risk of exposing your token."
            " Please use `hf auth login` to authenticate with the Hub."
        )
    logging_dir = os.path.join(args.output_dir, args.logging_dir)
    # Several processes (accelerate launch --multi_gpu / torchrun) on a machine without a GPU: accelerate's
    # multi-CPU mode (gloo) instead of a failed GPU setup.
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    distributed_on_cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_accelerator
    accelerator = Accelerator(
        cpu=distributed_on_cpu,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=logging_dir),
    )
    if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
        raise ValueError("fp16 mixed precision needs a GPU; on CPU use --mixed_precision bf16 (or no).")
    args.mixed_precision = accelerator.mixed_precision  # what the launcher or config chose, for the model card

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO
    )
    logger.info(accelerator.state, main_process_only=False)
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        diffusers.utils.logging.set_verbosity_info()
    else:
        datasets.utils.logging.set_verbosity_error()
        diffusers.utils.logging.set_verbosity_error()
    return accelerator


def _seed_and_clean_up(args: argparse.Namespace, accelerator: Accelerator) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume from and its state (or ``None``s), the seed set on every process, and what an
    interrupted save left in ``--output_dir`` removed."""
    # The seed fixes the data order and the noise; every process needs the same one (and a resumed run the old one).
    resume_path = find_resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    resume_state = json.loads((resume_path / CHECKPOINT_STATE_FILE).read_text()) if resume_path else None
    if args.seed is None:
        seed = [resume_state.get("seed") if resume_state else random.randint(0, 2**31 - 1)]
        broadcast_object_list(seed)
        args.seed = seed[0]
    set_seed(args.seed)

    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        # Staging folders and replaced checkpoints (serialization.replace_folder; .old-* from earlier versions).
        for pattern in (f".tmp-{CHECKPOINT_PREFIX}*", f".{CHECKPOINT_PREFIX}*.old-*", f".old-{CHECKPOINT_PREFIX}*"):
            for stale in Path(args.output_dir).glob(pattern):
                shutil.rmtree(stale)  # an interrupted save
    return resume_path, resume_state


def _load_data_and_model(args: argparse.Namespace, accelerator: Accelerator) -> tuple:
    """The training and validation crops (as tensors of the model's colour mode, exposure-matched if asked), what
    the data says about itself (``data_info``), the label embeddings, the UNet, its colour mode and the noise
    scheduler."""
    with accelerator.main_process_first():
        train_data, validation_data, data_info = load_crop_data(args)
    check_publishable(args, data_info)
    labels_seen = [label for label in EXPRESSIONS if label in set(train_data.expressions)]
    embeddings = load_expression_embeddings(
        args.text_encoder,
        args.pretrained_model_name_or_path,
        labels_seen,
        args.conditioning_dropout_prob,
        args.revision,
        allow_pickled_weights=args.allow_pickled_weights,
    )
    unet, color_mode = load_or_build_unet(
        args, train_data.crops, embeddings.config.embedding_dim, data_info["regions"]
    )
    train_data.to_tensors(color_mode)
    data_info["crop_statistics"] = None
    if args.match_crop_exposure:  # the exposure the model learns at; the pipeline maps every photo's crops to it
        statistics = crop_statistics(train_data.pixel_values, train_data.regions)
        exposure = CropExposure.to_statistics(train_data.pixel_values, train_data.regions, statistics)
        train_data.pixel_values = exposure.apply(train_data.pixel_values)
        data_info["crop_statistics"] = statistics
    if validation_data is not None:
        validation_data.to_tensors(color_mode)
    else:
        logger.warning(f"No {args.validation_split!r} split: validating on training crops.")
    if args.pretrained_model_name_or_path is not None:
        noise_scheduler = DDPMScheduler.from_pretrained(
            args.pretrained_model_name_or_path, subfolder="scheduler", revision=args.revision
        )
    else:
        noise_scheduler = DDPMScheduler(num_train_timesteps=args.ddpm_num_steps, beta_schedule=args.ddpm_beta_schedule)
    unet.train()
    embeddings.to(accelerator.device)
    return train_data, validation_data, data_info, embeddings, unet, color_mode, noise_scheduler


def _make_ema(args: argparse.Namespace, unet: UNet2DConditionModel, accelerator: Accelerator) -> EMAModel | None:
    """The EMA of the UNet's weights (``--use_ema``), saved in checkpoints; ``None`` without it."""
    ema_unet = None
    if args.use_ema:
        ema_unet = EMAModel(
            unet.parameters(),
            decay=args.ema_decay,
            min_decay=args.ema_min_decay,
            update_after_step=args.ema_update_after_step,
            use_ema_warmup=args.ema_use_warmup,
            inv_gamma=args.ema_inv_gamma,
            power=args.ema_power,
            model_cls=UNet2DConditionModel,
            model_config=unet.config,
        )
        ema_unet.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_unet)
    return ema_unet


def _prepare_training(args: argparse.Namespace, accelerator: Accelerator, unet, train_data) -> tuple:
    """The optimizer (AdamW), the epoch-seeded sampler and data loader, the LR schedule, all prepared by
    accelerate; sets ``args.max_train_steps`` and ``args.num_train_epochs`` from each other. Returns ``(unet,
    optimizer, sampler, train_dataloader, lr_scheduler)``."""
    if args.scale_lr:
        args.learning_rate *= args.gradient_accumulation_steps * args.train_batch_size * accelerator.num_processes
    optimizer = torch.optim.AdamW(
        unet.parameters(),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
    )
    sampler = EpochShuffleSampler(
        len(train_data), args.seed, train_data.balanced_weights() if args.balance_expressions else None
    )
    train_dataloader = torch.utils.data.DataLoader(
        train_data, sampler=sampler, batch_size=args.train_batch_size, num_workers=args.dataloader_num_workers
    )

    # Scheduler and math around the number of training steps (as in train_text_to_image.py).
    num_warmup_steps_for_scheduler = args.lr_warmup_steps * accelerator.num_processes
    if args.max_train_steps is None:
        len_train_dataloader_after_sharding = math.ceil(len(train_dataloader) / accelerator.num_processes)
        num_update_steps_per_epoch = math.ceil(len_train_dataloader_after_sharding / args.gradient_accumulation_steps)
        num_training_steps_for_scheduler = (
            args.num_train_epochs * num_update_steps_per_epoch * accelerator.num_processes
        )
    else:
        num_training_steps_for_scheduler = args.max_train_steps * accelerator.num_processes
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=num_warmup_steps_for_scheduler,
        num_training_steps=num_training_steps_for_scheduler,
    )
    unet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
        unet, optimizer, train_dataloader, lr_scheduler
    )

    num_update_steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    if args.max_train_steps is None:
        args.max_train_steps = args.num_train_epochs * num_update_steps_per_epoch
    args.num_train_epochs = math.ceil(args.max_train_steps / num_update_steps_per_epoch)
    return unet, optimizer, sampler, train_dataloader, lr_scheduler


def _log_run_start(args, accelerator: Accelerator, train_data, data_info: dict, color_mode: str) -> None:
    """Start the trackers (with the arguments, never the Hub token) and log the run's sizes."""
    if accelerator.is_main_process:
        tracker_config = {
            key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in vars(args).items()
            if key != "hub_token"
        }
        accelerator.init_trackers(args.tracker_project_name, tracker_config)

    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info(f"  Num crops = {len(train_data)} ({', '.join(data_info['regions'])}); colour mode = {color_mode}")
    logger.info(f"  Num Epochs = {args.num_train_epochs}")
    logger.info(f"  Instantaneous batch size per device = {args.train_batch_size}")
    logger.info(f"  Total train batch size (w. parallel, distributed & accumulation) = {total_batch_size}")
    logger.info(f"  Gradient Accumulation steps = {args.gradient_accumulation_steps}")
    logger.info(f"  Total optimization steps = {args.max_train_steps}")


def _restore_checkpoint(
    accelerator: Accelerator, resume_path: Path, resume_state: dict, num_batches: int
) -> tuple[int, int, int]:
    """Load a checkpoint's state; returns ``(global_step, first_epoch, first batch of that epoch)``."""
    accelerator.print(f"Resuming from checkpoint {resume_path}")
    if resume_state["num_processes"] != accelerator.num_processes:
        logger.warning(
            f"{resume_path} was saved with {resume_state['num_processes']} processes and this run has "
            f"{accelerator.num_processes}: the data order will differ from an uninterrupted run."
        )
    try:
        accelerator.load_state(str(resume_path))
    except Exception as error:
        raise ValueError(
            f"Checkpoint {resume_path} could not be loaded ({type(error).__name__}: {error}). It is corrupt or "
            "from another model or setup: delete it (--resume_from_checkpoint latest then takes the newest "
            "remaining one), or train into a new --output_dir."
        ) from error
    global_step, first_epoch, resume_batch = (resume_state[k] for k in ("global_step", "epoch", "batch_in_epoch"))
    if resume_batch >= num_batches:
        first_epoch, resume_batch = first_epoch + 1, 0
    return global_step, first_epoch, resume_batch


def _denoising_loss(
    unet, embeddings, noise_scheduler, batch: dict, generator: torch.Generator, region_classes, args
) -> torch.Tensor:
    """The loss of one batch: augmented crops noised at random timesteps, labels dropped with
    ``--conditioning_dropout_prob``, the UNet's noise prediction against the noise (Eq. 5)."""
    clean = augment(batch["pixel_values"], generator, args)
    bsz = clean.shape[0]
    noise = torch.randn(clean.shape, generator=generator).to(clean)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,), generator=generator).to(
        clean.device
    )
    dropped = (torch.rand(bsz, generator=generator) < args.conditioning_dropout_prob).to(clean.device)
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    encoder_hidden_states = embeddings(batch["expression"])
    encoder_hidden_states = torch.where(dropped[:, None, None], embeddings.null_embedding(bsz), encoder_hidden_states)
    class_labels = None
    if region_classes is not None:
        class_labels = torch.tensor([region_classes[r] for r in batch["region"]], device=clean.device)
    model_pred = unet(noisy, timesteps, encoder_hidden_states, class_labels=class_labels, return_dict=False)[0]
    return compute_loss(model_pred, noise, args.loss_type, args.smooth_l1_beta)


def _final_unet(args: argparse.Namespace, accelerator: Accelerator, unet, ema_unet, run_validation) -> Any:
    """The UNet to publish (main process): the raw weights saved as the ``non_ema`` variant, the validation grid
    drawn with the EMA weights, and the EMA weights copied into the UNet."""
    unet = unwrap_model(accelerator, unet)
    if ema_unet is not None:
        unet.save_pretrained(os.path.join(args.output_dir, "unet"), variant="non_ema")
    grid = run_validation()  # with the EMA weights, like the saved model
    grid.save(os.path.join(args.output_dir, VALIDATION_GRID))
    if ema_unet is not None:
        ema_unet.copy_to(unet.parameters())
    return unet


def _save_pipeline(args: argparse.Namespace, unet, noise_scheduler, embeddings, data_info: dict) -> Any:
    """The trained ``LocalExpressionPipeline``, with the data's crop geometry and the measured fast sampler, saved
    in ``--output_dir``."""
    pipeline = LocalExpressionPipeline(
        unet=unet,
        scheduler=noise_scheduler,
        embeddings=embeddings.to("cpu"),
        regions=tuple(data_info["regions"]),
        region_anchor=data_info["geometry"]["region_anchor"],
        region_margins=data_info["geometry"]["region_margins"],
        crop_statistics=data_info["crop_statistics"],
        license=weights_licence(args, data_info),
        ratio_maps=load_ratio_maps(args.ratio_maps),
    )
    # Published models carry the measured fast sampler; the paper's DDPM is one from_config away.
    pipeline.use_fast_scheduler()
    pipeline.save_pretrained(args.output_dir)
    return pipeline


def _push_to_hub(args: argparse.Namespace, hub_api: HfApi, repo_id: str, data_info: dict) -> None:
    hub_api.upload_folder(
        repo_id=repo_id,
        folder_path=args.output_dir,
        commit_message="End of training",
        # Validation grids show training-data crops, which RaFD's and CK+'s terms forbid redistributing.
        ignore_patterns=[f"{CHECKPOINT_PREFIX}*", ".tmp-*", f"{args.logging_dir}/*", "validation/*"]
        + ([VALIDATION_GRID] if restricted_formats(data_info) else []),
    )
    logger.info(f"Pushed {args.output_dir} to https://huggingface.co/{repo_id}")


def main(args: argparse.Namespace) -> dict[str, Any]:
    """Train; returns ``{"global_step", "losses" (per optimisation step), "output_dir", "resumed_from"}``."""
    accelerator = _make_accelerator(args)

    resume_path, resume_state = _seed_and_clean_up(args, accelerator)

    train_data, validation_data, data_info, embeddings, unet, color_mode, noise_scheduler = _load_data_and_model(
        args, accelerator
    )
    hub_api, repo_id = None, args.hub_model_id or Path(args.output_dir).name
    if args.push_to_hub and accelerator.is_main_process:
        hub_api = HfApi(token=args.hub_token)
        repo_id = hub_api.create_repo(repo_id=repo_id, private=args.hub_private_repo, exist_ok=True).repo_id
    # A region-conditioned UNet gets each crop's region as a class index (its place in the saved `regions`).
    region_classes = (
        {region: index for index, region in enumerate(data_info["regions"])}
        if unet.config.num_class_embeds is not None
        else None
    )
    ema_unet = _make_ema(args, unet, accelerator)

    unet, optimizer, sampler, train_dataloader, lr_scheduler = _prepare_training(args, accelerator, unet, train_data)

    _log_run_start(args, accelerator, train_data, data_info, color_mode)

    global_step, first_epoch, resume_batch = 0, 0, 0
    if resume_path is not None:
        global_step, first_epoch, resume_batch = _restore_checkpoint(
            accelerator, resume_path, resume_state, len(train_dataloader)
        )

    progress_bar = tqdm(
        range(0, args.max_train_steps),
        initial=global_step,
        desc="Steps",
        disable=not accelerator.is_local_main_process,
    )
    validation_source = validation_data or train_data
    losses: list[float] = []
    train_loss = 0.0

    def run_validation() -> PIL.Image.Image:
        model = unwrap_model(accelerator, unet)
        if ema_unet is not None:
            ema_unet.store(model.parameters())
            ema_unet.copy_to(model.parameters())
        grid = log_validation(
            model,
            noise_scheduler,
            embeddings,
            validation_source,
            color_mode,
            args,
            accelerator,
            global_step,
            data_info["regions"],
            data_info["crop_statistics"],
        )
        if ema_unet is not None:
            ema_unet.restore(model.parameters())
        return grid

    for epoch in range(first_epoch, args.num_train_epochs):
        if global_step >= args.max_train_steps:
            break
        train_dataloader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        skip = resume_batch if epoch == first_epoch else 0
        active_dataloader = accelerator.skip_first_batches(train_dataloader, skip) if skip else train_dataloader
        for batch_index, batch in enumerate(active_dataloader, start=skip):
            with accelerator.accumulate(unet):
                generator = batch_generator(args.seed, accelerator.process_index, epoch, batch_index)
                loss = _denoising_loss(unet, embeddings, noise_scheduler, batch, generator, region_classes, args)

                avg_loss = accelerator.gather(loss.repeat(args.train_batch_size)).mean()
                train_loss += avg_loss.item() / args.gradient_accumulation_steps

                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(unet.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()

            if accelerator.sync_gradients:
                if ema_unet is not None:
                    ema_unet.step(unet.parameters())
                progress_bar.update(1)
                global_step += 1
                accelerator.log({"train_loss": train_loss, "lr": lr_scheduler.get_last_lr()[0]}, step=global_step)
                losses.append(train_loss)
                train_loss = 0.0
                if global_step % args.checkpointing_steps == 0:
                    position = {"epoch": epoch, "batch_in_epoch": batch_index + 1, "seed": args.seed}
                    save_checkpoint(accelerator, args.output_dir, global_step, position, args.checkpoints_total_limit)

            progress_bar.set_postfix(loss=f"{loss.detach().item():.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
            if global_step >= args.max_train_steps:
                break

        last_epoch = epoch + 1 >= args.num_train_epochs or global_step >= args.max_train_steps
        if accelerator.is_main_process and (epoch + 1) % args.validation_epochs == 0 and not last_epoch:
            run_validation()

    # Save the pipeline: EMA weights as the main ones, the raw weights as the non_ema variant.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unet = _final_unet(args, accelerator, unet, ema_unet, run_validation)
        pipeline = _save_pipeline(args, unet, noise_scheduler, embeddings, data_info)
        last_loss = losses[-1] if losses else None
        write_model_card(
            args, repo_id, data_info, pipeline, global_step, args.num_train_epochs, last_loss, VALIDATION_GRID
        )
        if hub_api is not None:
            _push_to_hub(args, hub_api, repo_id, data_info)
    accelerator.end_training()
    return {
        "global_step": global_step,
        "losses": losses,
        "output_dir": args.output_dir,
        "resumed_from": str(resume_path) if resume_path else None,
    }


if __name__ == "__main__":
    main(parse_args())
