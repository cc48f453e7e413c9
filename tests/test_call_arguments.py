"""The per-call arguments that choose the sampler and the compositing: each acts on its call only and leaves
``pipe.scheduler`` and ``pipe.config`` as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_pipeline
from diffusers import DDIMScheduler, DDPMScheduler


def edit(pipe, image, **kwargs):
    kwargs.setdefault("strength", 0.4)
    kwargs.setdefault("num_inference_steps", 20)
    return pipe(image, "happy", generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images[0]


@pytest.fixture
def fast_pipeline():
    """The tiny pipeline with the shipped fast sampler, so that the paper's DDPM is a different sampler."""
    pipe = make_tiny_pipeline()
    pipe.use_fast_scheduler()
    return pipe


def test_a_scheduler_by_name_is_the_scheduler_swapped_in_by_hand(fast_pipeline, example_image):
    pipe = fast_pipeline
    own, config = pipe.scheduler, dict(pipe.config)
    by_name = edit(pipe, example_image, scheduler="DDPMScheduler")
    assert pipe.scheduler is own and dict(pipe.config) == config
    by_instance = edit(pipe, example_image, scheduler=DDPMScheduler.from_config(own.config))
    assert pipe.scheduler is own and dict(pipe.config) == config
    default = edit(pipe, example_image)

    pipe.scheduler = DDPMScheduler.from_config(own.config)
    by_hand = edit(pipe, example_image)
    assert np.array_equal(by_name, by_hand) and np.array_equal(by_instance, by_hand)
    assert not np.array_equal(default, by_hand), "the argument must change the sampler"


def test_the_timesteps_follow_the_scheduler_argument(fast_pipeline):
    pipe = fast_pipeline
    by_hand = DDPMScheduler.from_config(pipe.scheduler.config)
    by_hand.set_timesteps(10)
    ddpm = pipe.get_timesteps(250, 10, pipe.device, scheduler="DDPMScheduler")
    assert ddpm.tolist() == [t for t in by_hand.timesteps.tolist() if t <= 250] and len(ddpm) == 5
    leading = DDPMScheduler.from_config(pipe.scheduler.config, timestep_spacing="leading")
    assert pipe.get_timesteps(250, 10, pipe.device, scheduler=leading).tolist() == [250, 200, 150, 100, 50, 0]
    assert pipe.get_timesteps(250, 10, pipe.device).tolist() == [249, 199, 149, 99, 49]  # its own, "trailing"
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"


def test_residual_composite_false_is_the_config_set_to_false(tiny_pipeline, example_image):
    pipe = tiny_pipeline
    config = dict(pipe.config)
    pasted = edit(pipe, example_image, residual_composite=False)
    assert dict(pipe.config) == config and pipe.config.residual_composite is True
    residual = edit(pipe, example_image)
    assert not np.array_equal(pasted, residual), "the argument must change the compositing"

    pipe.register_to_config(residual_composite=False)
    assert np.array_equal(edit(pipe, example_image), pasted)
    assert np.array_equal(edit(pipe, example_image, residual_composite=True), residual)


def test_bad_scheduler_arguments_say_what_to_pass(tiny_pipeline, example_image):
    own = tiny_pipeline.scheduler
    with pytest.raises(ValueError, match="not a diffusers scheduler class.*DDIMScheduler"):
        edit(tiny_pipeline, example_image, scheduler="NoSuchScheduler")
    with pytest.raises(ValueError, match="not a diffusers scheduler class"):
        edit(tiny_pipeline, example_image, scheduler="UNet2DConditionModel")
    with pytest.raises(ValueError, match="must be a diffusers scheduler or the name of one"):
        edit(tiny_pipeline, example_image, scheduler=object())
    with pytest.raises(ValueError, match=r"1000 training timesteps but this model has 500.*from_config"):
        edit(tiny_pipeline, example_image, scheduler=DDIMScheduler(num_train_timesteps=1000))
    assert tiny_pipeline.scheduler is own
