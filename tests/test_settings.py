"""The one resolve/check of a call's settings (settings.py): what the pipeline, led-edit and the demo refuse, accept
and warn about, checked before any face is looked for."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_tiny_pipeline

from diffusers_led.geometry.action_units import expression_action_units, parse_action_units
from diffusers_led.settings import check_request, to_number


class DetectionRan(Exception):
    """Raised by a stubbed detector: the call got past its argument checks."""


@pytest.fixture(scope="module")
def pipe(one_torch_thread):
    return make_tiny_pipeline(default_mode="geometry")


@pytest.fixture
def no_detection(pipe, monkeypatch):
    """The pipeline with a detector that must not run: a bad argument is refused before any work."""

    def detect(*args, **kwargs):
        raise DetectionRan

    monkeypatch.setattr(pipe.region_processor, "extract", detect)
    return pipe


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"action_units": "AU12=0.8,au12=0.8"}, "AU12 is given twice"),
        ({"action_units": "AU12=0.8,AU12=0.8"}, "AU12 is given twice"),
        ({"action_units": {"AU12": 0.8, "au12": 0.8}}, "AU12 is given twice"),
        ({"action_units": {"AU12": None}}, "intensity must be a number"),
        ({"action_units": {"AU12": "0.8"}}, "intensity must be a number"),
        ({"action_units": ["AU12"]}, "must be a mapping"),
        ({"action_units": "AU12=1.6"}, r"must be in \[-1.5, 1.5\]"),
        ({"target": "happy", "texture_strength": 2.0}, r"`texture_strength` must be a number in \[0, 1\]"),
        ({"target": "happy", "texture_strength": -1.0}, r"`texture_strength` must be a number in \[0, 1\]"),
        ({"target": "happy", "texture_strength": float("nan")}, r"`texture_strength` must be a number in \[0, 1\]"),
        ({"target": "happy", "strength": torch.tensor(0.5, device="meta")}, "`strength`.*cannot be read"),
        ({"target": "happy", "strength": True}, r"`strength` must be a number in \[0, 1\]"),
        ({"target": "happy", "strength": [0.5]}, r"`strength` must be a number in \[0, 1\]"),
        ({"target": "happy", "mode": "diffusion", "action_units": "AU12=0.5"}, "need a geometry mode"),
        ({"target": "happy", "mode": "sdedit"}, "`mode` must be one of"),
    ],
)
def test_bad_settings_are_refused_before_detection(no_detection, example_image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        no_detection(example_image, **kwargs)


def test_numbers_of_any_kind_are_numbers(no_detection, example_image):
    for value in (torch.tensor(0.5), np.float32(0.5), np.array(0.5), 0.5):
        assert to_number(value, "strength") == 0.5
        with pytest.raises(DetectionRan):  # accepted: the call goes on to detection
            no_detection(example_image, target="happy", strength=value)
    assert parse_action_units({"AU12": torch.tensor(0.5)}) == {"AU12": 0.5}


def test_mode_names_are_case_insensitive(no_detection, example_image):
    assert check_request("happy", mode=" GEOMETRY ").mode == "geometry"
    with pytest.raises(DetectionRan):
        no_detection(example_image, target="happy", mode="Geometry+Texture")


@pytest.mark.parametrize(
    "mode, kwargs, ignored",
    [
        ("geometry", {"texture_strength": 0.5}, "`texture_strength`"),
        ("geometry", {"num_inference_steps": 5, "guidance_scale": 1.0}, "`num_inference_steps`, `guidance_scale`"),
        ("geometry", {"negative_target": "neutral", "start_timestep": 100}, "`negative_target`, `start_timestep`"),
        ("diffusion", {"texture_strength": 0.5}, "`texture_strength`"),
    ],
)
def test_options_the_mode_ignores_are_warned_about(no_detection, example_image, mode, kwargs, ignored):
    with pytest.warns(UserWarning, match=f"{ignored} ha(s|ve) no effect in the '{mode}' mode"):
        with pytest.raises(DetectionRan):
            no_detection(example_image, target="happy", mode=mode, **kwargs)


def test_options_the_mode_reads_are_not_warned_about(no_detection, example_image, recwarn):
    with pytest.raises(DetectionRan):
        no_detection(example_image, target="happy", mode="geometry+texture", texture_strength=0.5, guidance_scale=1.0)
    assert not [w for w in recwarn if "no effect" in str(w.message)]


def test_a_target_plus_units_beyond_the_range_is_clipped_with_a_warning():
    surprised = expression_action_units("surprised")
    assert surprised["AU26"] + 0.8 > 1.5  # the case the issue found: surprised + AU26=0.8 failed after detection
    with pytest.warns(UserWarning, match=r"AU26 \(\+1.\d\d\); clipped"):
        change = expression_action_units("surprised", extra={"AU26": 0.8})
    assert change["AU26"] == 1.5
    with pytest.warns(UserWarning, match="clipped"):
        assert expression_action_units("sad", 1.0, {"AU12": 1.2}, extra={"AU12": -1.5})["AU12"] == -1.5


@pytest.mark.parametrize("target, units", [("surprised", "AU26=0.8"), ("sad", "AU12=-1.5")])
def test_a_target_plus_in_range_units_edits(pipe, example_image, target, units):
    with pytest.warns(UserWarning, match="clipped"):
        out = pipe(example_image, target=target, strength=1.0, action_units=units, return_dict=False)
    edited, faces = out
    assert len(faces[0]) == 1 and not np.array_equal(np.asarray(edited[0]), np.asarray(example_image))


def test_return_dict_false_always_gives_images_and_faces(pipe, example_image):
    unchanged = pipe(example_image, target="happy", strength=0.0, return_dict=False)
    assert len(unchanged) == 2 and unchanged[1] == [[]]
    assert np.array_equal(np.asarray(unchanged[0][0]), np.asarray(example_image))
    edited = pipe(example_image, target="happy", strength=0.5, return_dict=False)
    assert len(edited) == 2 and len(edited[1][0]) == 1


def test_strength_scales_the_target_and_units_are_added_at_their_own_intensity(pipe, example_image):
    """The definition (settings.py): a target at strength 0 plus units is those units alone (the demo's sliders)."""
    units = pipe(example_image, action_units="AU26=1.0", output_type="np").images[0]
    neutral_plus_units = pipe(example_image, target="neutral", strength=0, action_units="AU26=1.0", output_type="np")
    np.testing.assert_array_equal(neutral_plus_units.images[0], units)
    nothing = pipe(example_image, target="happy", strength=0, output_type="np")
    assert nothing.faces == [[]] and not math.isnan(float(nothing.images[0].mean()))
