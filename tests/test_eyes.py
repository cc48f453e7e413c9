"""Lids moved off the eyeball on the dense mesh (geometry/eyes.py), on synthetic eyes: the upper lid raised, the
lower lid of a squeezed eye lowered."""

import cv2
import numpy as np
import pytest

from diffusers_led.geometry.action_units import expression_action_units
from diffusers_led.geometry.eyes import EYES, open_eyes, shows_white
from diffusers_led.geometry.warper import lid_moves, units_beside_opened_lids, unopened_eyes, unshaded_eyes

SKIN = (200, 160, 130)
SCLERA = (225, 215, 205)
IRIS = (70, 45, 30)
IRIS_RADIUS = 9.0
HALF_WIDTH = 22.0
INTER_OCULAR = 100.0


def _eye(centre_x: float, centre_y: float, points: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid margins from corner to corner: the upper lid covers the iris's top third."""
    xs = np.linspace(-HALF_WIDTH, HALF_WIDTH, points)
    arch = np.sqrt(np.clip(1 - (xs / HALF_WIDTH) ** 2, 0, 1))
    upper = np.stack([centre_x + xs, centre_y - 6.0 * arch], 1)
    lower = np.stack([centre_x + xs, centre_y + 9.0 * arch], 1)
    return upper, lower


def synthetic_face(sclera=SCLERA) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured image with two eyes (sclera, iris, dark lid line) and the 478 mesh points they need."""
    image = np.full((120, 220, 3), SKIN, dtype=np.uint8)
    mesh = np.zeros((478, 3), dtype=np.float32)
    for (name, eye), centre_x in zip(EYES.items(), (60.0, 160.0)):
        upper, lower = _eye(centre_x, 60.0)
        if name == "left":  # the mesh lists the left eye from its outer corner (the image's right)
            upper, lower = upper[::-1], lower[::-1]
        opening = np.vstack([upper, lower[::-1]])
        cv2.fillPoly(image, [np.round(opening * 16).astype(np.int32)], sclera, cv2.LINE_AA, shift=4)
        inside = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(inside, [np.round(opening * 16).astype(np.int32)], 1, shift=4)
        iris = np.zeros_like(image)
        cv2.circle(iris, (int(centre_x * 16), 60 * 16), int(IRIS_RADIUS * 16), IRIS, -1, cv2.LINE_AA, shift=4)
        in_iris = (iris.sum(-1) > 0) & (inside > 0)
        image[in_iris] = iris[in_iris]
        cv2.polylines(image, [np.round(upper * 16).astype(np.int32)], False, (40, 25, 20), 2, cv2.LINE_AA, shift=4)
        mesh[eye["upper"], :2] = upper
        mesh[eye["lower"], :2] = lower
        ring = [(0, 0), (IRIS_RADIUS, 0), (0, -IRIS_RADIUS), (-IRIS_RADIUS, 0), (0, IRIS_RADIUS)]
        mesh[eye["iris"], :2] = np.array(ring) + (centre_x, 60.0)
    return image, mesh


def test_lid_rises_off_the_eyeball_showing_white_above_the_iris():
    image, mesh = synthetic_face()
    result = open_eyes(image, mesh, 1.5, INTER_OCULAR)
    assert result.opened
    assert result.changed.any()
    assert np.array_equal(result.changed, np.any(result.image != image, axis=-1))
    for centre_x in (60, 160):
        # Beside and above the iris, above the old margin (lid skin before): now the eye's white, in its own
        # colours (never pure white) and shaded under the lid.
        for rows, cols in ((slice(52, 54), [centre_x - 12, centre_x + 12]), (slice(49, 51), [centre_x])):
            above = result.image[rows, cols].reshape(-1, 3).astype(float)
            colour = above.mean(0)
            assert np.all((colour > 0.6 * np.array(SCLERA)) & (colour < 250)), colour  # shaded white, not pure
            assert colour[0] - colour[2] < 30, colour  # the sclera's own cast, not skin's (70)
            assert np.abs(image[rows, cols].astype(float) - SKIN).mean() < 25  # the lid before


def test_iris_stays_in_place_and_round():
    image, mesh = synthetic_face()
    result = open_eyes(image, mesh, 1.5, INTER_OCULAR)
    for centre_x in (60, 160):
        # The visible iris (below the old margin and its blend) is the photo's own, bit for bit.
        below = np.s_[58:70, centre_x - 12 : centre_x + 13]
        assert np.array_equal(result.image[below], image[below])
        # Its newly shown top keeps the iris circle: dark inside the circle, not above it.
        assert result.image[53, centre_x].mean() < 120  # 7 px above the centre, inside the radius of 9
        assert result.image[50, centre_x].mean() > 150  # 10 px above: outside the iris, white


def test_nothing_changes_outside_the_eyes():
    image, mesh = synthetic_face()
    result = open_eyes(image, mesh, 1.5, INTER_OCULAR)
    rows, cols = np.nonzero(result.changed)
    assert rows.min() >= 60 - 6 - 0.22 * INTER_OCULAR - 1 and rows.max() <= 60
    for centre_x in (60, 160):
        near = np.abs(cols - centre_x) <= HALF_WIDTH
        assert near.any()
    assert np.all((np.abs(cols - 60) <= HALF_WIDTH) | (np.abs(cols - 160) <= HALF_WIDTH))


def test_eye_without_white_to_sample_is_left_to_the_warp():
    image, mesh = synthetic_face(sclera=(60, 45, 35))  # an eye in shadow: no white beside the iris
    result = open_eyes(image, mesh, 1.5, INTER_OCULAR)
    assert not result.opened
    assert not result.changed.any()
    assert np.array_equal(result.image, image)


def test_grayscale_eyes_open_too():
    image, mesh = synthetic_face()
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    result = open_eyes(gray, mesh, 1.5, INTER_OCULAR)
    assert result.opened and result.image.shape == gray.shape
    assert result.image[50, 60] > gray[50, 60] - 10 and result.image[50, 60] > 140  # white where the lid was
    assert np.array_equal(result.image[62:], gray[62:])  # below the upper lids


def test_bad_input_is_refused():
    image, mesh = synthetic_face()
    with pytest.raises(ValueError, match="uint8"):
        open_eyes(image.astype(np.float32), mesh, 1.0, INTER_OCULAR)
    with pytest.raises(ValueError, match="478"):
        open_eyes(image, mesh[:468], 1.0, INTER_OCULAR)


def test_squeezed_eye_reopens_as_the_lower_lid_comes_down():
    image, mesh = synthetic_face()
    result = open_eyes(image, mesh, 0.0, INTER_OCULAR, lower=1.5)
    assert result.opened
    assert np.array_equal(result.image[:60], image[:60])  # the upper lids and everything above stay
    for centre_x in (60, 160):
        # Below the old lower margin (69 at mid-eye; lid skin before): now the eye's own white, shaded a little.
        for cols in ([centre_x - 6, centre_x + 6], [centre_x]):
            below = result.image[70:72, cols].reshape(-1, 3).astype(float)
            assert np.abs(image[70:72, cols].astype(float) - SKIN).mean() < 25  # skin before
            assert np.all(np.abs(below.mean(0) - SCLERA) < 0.15 * np.array(SCLERA)), below.mean(0)
        # The visible iris and the white beside it are the photo's own.
        inside = np.s_[57:66, centre_x - 12 : centre_x + 13]
        assert np.array_equal(result.image[inside], image[inside])
    rows, _ = np.nonzero(result.changed)
    assert rows.min() >= 60 and rows.max() <= 69 + 0.12 * INTER_OCULAR + 1  # the eyes and the cheek band below


def test_lids_move_for_wide_eyes_and_reopen_squeezed_ones():
    # Fear widens the eyes (its upper-lid raiser), and a smile's cheek raiser undone reopens them from below.
    assert lid_moves({"AU1": 1.3, "AU5": 1.5, "AU6": -0.4}) == (1.5, 0.4)
    # Toward neutral, nothing widens; the squeeze is undone.
    assert lid_moves({"AU6": -0.8, "AU12": -1.0}) == (0.0, 0.8)
    # Anger tightens the lids (AU7): a squeeze is not reopened.
    assert lid_moves({"AU4": 1.5, "AU6": -0.8, "AU7": 1.5}) == (0.0, 0.0)
    # An upper-lid raiser asked for alone stays with the 68-point warp.
    assert lid_moves({"AU5": 1.0}) == (0.0, 0.0)
    assert lid_moves({"AU5": 1.0}, closing=1.0) == (1.0, 0.0)


def test_lids_opened_at_the_margin_are_not_opened_again_by_the_68_point_warp():
    # Toward neutral, a laugh's squeeze is undone at the margins and the face relaxed past rest (AU7 undone): the
    # 68-point warp must not drop the lower lids a second time, nor raise the upper lids the margins raised.
    toward_neutral = expression_action_units("neutral", 1.0, {"AU6": 1.5, "AU12": 1.0}, from_blendshapes=True)
    assert toward_neutral["AU7"] < 0 and lid_moves(toward_neutral) == (0.0, 1.5)
    kept = units_beside_opened_lids(toward_neutral)
    assert "AU7" not in kept and kept == {k: v for k, v in toward_neutral.items() if k != "AU7"}
    assert units_beside_opened_lids({"AU1": 1.3, "AU5": 1.5, "AU6": -0.4}) == {"AU1": 1.3, "AU6": -0.4}
    # Units that close the lids, or undo a raise, still go to the warp.
    assert units_beside_opened_lids({"AU5": -0.5, "AU7": 1.5}) == {"AU5": -0.5, "AU7": 1.5}


def test_an_eye_shows_white_by_the_test_that_opens_it():
    image, mesh = synthetic_face()
    assert shows_white(image, mesh, INTER_OCULAR) == {"right": True, "left": True}
    shadowed, mesh = synthetic_face(sclera=(60, 45, 35))  # no white beside the iris: open_eyes refuses it too
    assert shows_white(shadowed, mesh, INTER_OCULAR) == {"right": False, "left": False}
    assert not open_eyes(shadowed, mesh, 1.5, INTER_OCULAR).opened
    # One eye in shadow, the other showing white: told apart (the white one is warped as today).
    mixed = image.copy()
    mixed[:, :110] = shadowed[:, :110]
    assert shows_white(mixed, mesh, INTER_OCULAR) == {"right": False, "left": True}


def test_a_squeezed_eye_is_a_slit_only_where_it_shows_no_white():
    from diffusers_led.geometry.action_units import neutral_shape

    shape = neutral_shape() * INTER_OCULAR
    shape[[41, 40], 1] = shape[[37, 38], 1] + 1.0  # the right eye squeezed to a slit
    image, mesh = synthetic_face()
    shadowed, _ = synthetic_face(sclera=(60, 45, 35))
    assert unopened_eyes(image, shape, mesh) == ((), ())  # both eyes show white
    # The open left eye shows no white either: no slit, but its lids are not opened at the margin.
    assert unopened_eyes(shadowed, shape, mesh) == (("right",), ("right", "left"))
    assert unopened_eyes(image, shape, None) == (("right",), ("right",))  # no mesh: no white is seen
    # A closed or downcast eye (its blink read high) is kept shut however far apart dlib's lid points sit, unless
    # it shows white.
    blinking = {"eyeBlinkLeft": 0.6, "eyeBlinkRight": 0.1}
    assert unopened_eyes(shadowed, shape, mesh, blinking) == (("right", "left"), ("right", "left"))
    assert unopened_eyes(image, shape, mesh, blinking) == ((), ())


def test_a_lid_not_opened_is_not_shaded_as_an_opened_eye():
    change = {"AU1": 1.2, "AU5": 1.3, "AU6": -0.8}
    assert unshaded_eyes(change, ()) is change
    assert unshaded_eyes(change, ("right", "left")) == {"AU1": 1.2, "AU6": -0.8}
    assert unshaded_eyes(change, ("right",)) == {"AU1": 1.2, "AU6": -0.8, "L5": 1.3}  # the subject's left eye
    assert unshaded_eyes(change, ("left",)) == {"AU1": 1.2, "AU6": -0.8, "R5": 1.3}
    assert unshaded_eyes({"AU5": -0.5}, ("right",)) == {"AU5": -0.5}  # lowered lids shade as ever
