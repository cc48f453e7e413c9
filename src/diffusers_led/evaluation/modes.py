"""What ``led-evaluate`` compares: the pipeline's own modes (:data:`~diffusers_led.labels.EDIT_MODES`), each as
shipped, plus named variants of the diffusion mode that change only its sampler or its compositing.

======================  =========================  ==================================================================
name                    pipeline call              sampler and compositing
======================  =========================  ==================================================================
``geometry``            ``mode="geometry"``        the action-unit warp alone, no UNet
``geometry+texture``    ``mode="geometry+texture"``  the warp; the UNet re-draws opened mouths (the model's sampler)
``diffusion``           ``mode="diffusion"``       the model's sampler, soft blend + re-injection (as shipped)
``hard``                ``mode="diffusion"``       the model's sampler, hard rectangular paste (paper compositing)
``paper``               ``mode="diffusion"``       full DDPM from t_i, hard paste (the paper)
``ddpm_blend``          ``mode="diffusion"``       full DDPM from t_i, soft blend + re-injection
======================  =========================  ==================================================================

A default run measures the model's ``default_mode`` and :data:`DEFAULT_MODES` (:func:`default_modes`). No torch
here: the command line reads these names for its help and checks before loading anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..labels import EDIT_MODES

__all__ = ["DEFAULT_MODES", "DEFAULT_STRENGTHS", "MODES", "PAPER_STRENGTH", "ModeSpec", "default_modes"]


@dataclass(frozen=True)
class ModeSpec:
    """How one evaluation mode edits: the pipeline's ``mode``, the sampler (``"fast"``: the model's scheduler;
    ``"ddpm"``: the paper's full DDPM) and the compositing (``"blend"``: soft mask + re-injection; ``"hard"``:
    rectangular paste; ``"geometry"``: the warp's own)."""

    sampler: str
    composite: str
    description: str
    pipeline_mode: str = "diffusion"

    @property
    def scheduler(self) -> str | None:
        """The pipeline call's ``scheduler``: ``None`` (the model's own) or the paper's ``"DDPMScheduler"``."""
        return "DDPMScheduler" if self.sampler == "ddpm" else None

    def pipeline_arguments(self) -> dict[str, Any]:
        """The arguments of ``pipe(...)`` that make this mode: the pipeline mode, the sampler, the re-injection, and
        for the hard paste the generated crop itself composited (the paper), not its residual."""
        return {
            "mode": self.pipeline_mode,
            "scheduler": self.scheduler,
            "reinject_known": self.composite == "blend",
            "residual_composite": False if self.composite == "hard" else None,
        }


MODES: dict[str, ModeSpec] = {
    "geometry": ModeSpec("fast", "geometry", "action-unit warp of the face's own pixels, no UNet", "geometry"),
    "geometry+texture": ModeSpec(
        "fast", "geometry", "action-unit warp, the UNet re-draws opened mouths", "geometry+texture"
    ),
    "diffusion": ModeSpec("fast", "blend", "model's scheduler, soft blend + re-injection (the pipeline as shipped)"),
    "hard": ModeSpec("fast", "hard", "model's scheduler, hard rectangular paste, no re-injection (paper compositing)"),
    "paper": ModeSpec("ddpm", "hard", "full DDPM from t_i, hard rectangular paste (the paper)"),
    "ddpm_blend": ModeSpec("ddpm", "blend", "full DDPM from t_i, soft blend + re-injection"),
}
assert set(EDIT_MODES) <= set(MODES), "every pipeline mode is an evaluation mode, under its own name"

#: Measured by a default run besides the model's default mode: the diffusion mode and the paper's two variants.
DEFAULT_MODES = ("diffusion", "hard", "paper")
DEFAULT_STRENGTHS = (0.2, 0.35, 0.5, 0.65)
PAPER_STRENGTH = 0.5  # t_250 of T = 500, the paper's setting


def default_modes(default_mode: str, requested: Sequence[str] | None = None) -> list[str]:
    """The modes a run measures: ``requested``, or the model's ``default_mode`` (what its users get) followed by
    :data:`DEFAULT_MODES`."""
    if requested:
        return list(dict.fromkeys(requested))
    return list(dict.fromkeys((default_mode, *DEFAULT_MODES)))
