"""The state an evaluation passes between its stages: the run's resolved settings (:class:`_Run`) and each face
prepared for editing (:class:`_Face`). Shared by :mod:`.runner`, :mod:`.planning` and :mod:`.realism`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..faces.regions import FaceRegions
from .inputs import EvalPhoto
from .modes import MODES


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
    blendshapes: dict[str, float] | None = None  # MediaPipe's 52 scores on the unedited face
    embedding: np.ndarray | None = None


@dataclass
class _Run:
    """One evaluation's settings, resolved from its arguments and the model."""

    pipe: Any
    modes: list[str]
    targets: list[str]
    regions: tuple[str, ...]
    mode_strengths: dict[str, list[float]]  # mode -> the strengths it edits at
    fast_steps: int
    ddpm_steps: int
    guidance_scale: float
    negative_target: str
    default_strength: float
    target_strengths: dict[str, float]
    batch_size: int
    seed: int
    allow_untrained_targets: bool
    progress: bool
    paper_max_images: int | None
    realism: bool
    realism_max_crops: int | None
    cache_dir: str | os.PathLike | None
    time_budget: float | None
    starts: dict[tuple[str, float], int | None] = field(default_factory=dict)  # (mode, strength) -> t_i; None: a warp
    steps: dict[tuple[str, float], int] = field(default_factory=dict)  # (mode, strength) -> denoising steps

    @property
    def processor(self) -> Any:
        return self.pipe.region_processor

    def num_inference_steps(self, mode: str) -> int:
        return self.ddpm_steps if MODES[mode].sampler == "ddpm" else self.fast_steps

    def report_settings(self, plan: dict[str, Any]) -> dict[str, Any]:
        """The ``settings`` of ``report.json``."""
        return {
            "targets": self.targets,
            "modes": {m: dataclasses.asdict(MODES[m]) for m in self.modes},
            "strengths": {m: self.mode_strengths[m] for m in self.modes},
            "fast_sampler_steps": self.fast_steps,
            "ddpm_steps": self.ddpm_steps,
            "guidance_scale": self.guidance_scale,
            "negative_target": self.negative_target,
            "default_strength": self.default_strength,
            "target_strengths": self.target_strengths,
            "seed": self.seed,
            "plan": plan,
        }
