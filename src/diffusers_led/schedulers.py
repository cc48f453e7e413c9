"""The samplers: the measured fast default (:func:`fast_scheduler`), a call's own sampler (:func:`resolve_scheduler`)
and the SDEdit timesteps from a start step (:func:`sdedit_timesteps`)."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.schedulers import SchedulerMixin
from diffusers.utils import logging

__all__ = [
    "FAST_NUM_INFERENCE_STEPS",
    "FAST_SCHEDULER_CLASS",
    "FAST_SCHEDULER_CONFIG",
    "fast_scheduler",
    "resolve_scheduler",
    "sdedit_timesteps",
]

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


def resolve_scheduler(base: SchedulerMixin, scheduler: SchedulerMixin | str | None = None) -> SchedulerMixin:
    """The scheduler a pipeline call with `scheduler=` denoises with, leaving the pipeline's own (`base`) as it
    is: `None` is `base`; a diffusers scheduler class name (e.g. `"DDPMScheduler"`, the paper's sampler) is a new
    instance of that class on this model's noise schedule (`from_config(pipe.scheduler.config)`); an instance
    is used as it is and must have this model's `num_train_timesteps`."""
    if scheduler is None:
        return base
    if isinstance(scheduler, str):
        import diffusers

        cls = getattr(diffusers, scheduler, None)
        if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
            names = sorted(c.__name__ for c in base.compatibles)
            raise ValueError(f"`scheduler` {scheduler!r} is not a diffusers scheduler class; use one of {names}.")
        return cls.from_config(base.config)
    if not isinstance(scheduler, SchedulerMixin):
        raise ValueError(
            f"`scheduler` must be a diffusers scheduler or the name of one, got {type(scheduler).__name__}."
        )
    expected = base.config.num_train_timesteps
    if scheduler.config.num_train_timesteps != expected:
        raise ValueError(
            f"`scheduler` has {scheduler.config.num_train_timesteps} training timesteps but this model has "
            f"{expected}: build it with `{type(scheduler).__name__}.from_config(pipe.scheduler.config)`."
        )
    return scheduler


def sdedit_timesteps(
    scheduler: SchedulerMixin, start_timestep: int, num_inference_steps: int, device: torch.device
) -> torch.Tensor:
    """The timesteps of `scheduler` from the first one at or below `start_timestep` down to the end (SDEdit)."""
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
