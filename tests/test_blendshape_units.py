"""A face's own expression read from MediaPipe's blendshapes (geometry/blendshape_units.py): intensities beyond a
neutral face, used to plan the edit in place of the landmark fit, which confuses face shape with expression."""

from __future__ import annotations

import pytest

from diffusers_led.faces.mesh import BLENDSHAPE_NAMES
from diffusers_led.geometry.action_units import (
    ACTION_UNITS,
    estimate_action_units,
    expression_action_units,
    neutral_shape,
    neutral_variation,
)
from diffusers_led.geometry.blendshape_units import (
    BLENDSHAPE_UNITS,
    FULL_SCORE,
    REST_SCORE,
    blendshape_action_units,
)


def scores(**units: float) -> dict[str, float]:
    """All 52 blendshapes at a neutral face's scores, with each named unit's blendshapes at that unit's
    intensity (0: rest, 1: a full unit)."""
    shapes = dict.fromkeys(BLENDSHAPE_NAMES, 0.0)
    for unit, names in BLENDSHAPE_UNITS.items():
        rest, full = REST_SCORE[unit], FULL_SCORE[unit]
        for name in names:
            shapes[name] = rest + units.get(unit, 0.0) * (full - rest)
    return shapes


def test_blendshape_names_exist_and_rest_and_full_read_as_zero_and_one():
    assert all(name in BLENDSHAPE_NAMES for names in BLENDSHAPE_UNITS.values() for name in names)
    assert all(FULL_SCORE[unit] > REST_SCORE[unit] + 0.2 for unit in BLENDSHAPE_UNITS)
    assert blendshape_action_units(scores()) == dict.fromkeys(BLENDSHAPE_UNITS, 0.0)
    full = blendshape_action_units(scores(**dict.fromkeys(BLENDSHAPE_UNITS, 1.0)))
    assert full == pytest.approx(dict.fromkeys(BLENDSHAPE_UNITS, 1.0), abs=1e-3)
    # Below rest is no negative expression; far beyond full is capped like the landmark fit.
    low = {name: 0.0 for name in BLENDSHAPE_NAMES}
    assert set(blendshape_action_units(low).values()) == {0.0}
    assert blendshape_action_units({**scores(), "jawOpen": 1.0})["AU26"] == 1.5
    with pytest.raises(KeyError, match="jawOpen"):
        blendshape_action_units({k: v for k, v in scores().items() if k != "jawOpen"})


def test_a_faint_smile_on_a_neutral_shape_is_read_from_blendshapes_and_undone_toward_neutral():
    shape = neutral_shape() * 120 + [250, 200]
    faint = scores(AU12=0.6)  # a smile the landmark fit would leave under neutral_variation
    assert 0.6 <= neutral_variation()["AU12"]
    assert "AU12" not in estimate_action_units(shape)  # the 68 points of a neutral shape read no smile
    own = estimate_action_units(shape, blendshapes=faint)
    assert own == {"AU12": pytest.approx(0.6, abs=0.01)}
    # Read with blendshapes, any reading is an expression: neutral undoes it...
    assert expression_action_units("neutral", 1.0, own, from_blendshapes=True)["AU12"] == pytest.approx(-0.6, 0.02)
    # ...where the same reading from the landmark fit would be taken for the person's wide mouth.
    assert expression_action_units("neutral", 1.0, own) == {}
    # Happy adds what the faint smile lacks.
    happy = expression_action_units("happy", 1.0, own, from_blendshapes=True)
    assert happy["AU12"] == pytest.approx(1.4 - 0.6, abs=0.02)


def test_blendshapes_override_what_the_landmarks_misread_as_expression():
    # A face whose shape reads as lowered brows (AU4 beyond neutral_variation) but whose blendshapes say calm:
    # nothing is undone toward neutral; without blendshapes (dlib-only detection) the old reading stands.
    frowning_shape = neutral_shape() + 1.5 * ACTION_UNITS["AU4"]
    from_shape = estimate_action_units(frowning_shape)
    assert from_shape["AU4"] > neutral_variation()["AU4"]
    assert "AU4" in expression_action_units("neutral", 1.0, from_shape)
    calm = estimate_action_units(frowning_shape, blendshapes=scores())
    assert "AU4" not in calm
    assert "AU4" not in expression_action_units("neutral", 1.0, calm, from_blendshapes=True)
