"""Geometry first: action units, the landmark warp, and the pipeline's geometry modes on a real face."""

from __future__ import annotations

import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import make_tiny_pipeline

from diffusers_led import LocalExpressionPipeline
from diffusers_led.geometry.action_units import (
    ACTION_UNITS,
    EXPRESSION_PROTOTYPES,
    MIRROR,
    RELAXATION,
    RELEASED_WITH,
    RIGHT_HALF,
    SOURCES,
    estimate_action_units,
    expression_action_units,
    inter_ocular,
    landmark_displacements,
    neutral_shape,
    parse_action_units,
)
from diffusers_led.geometry.mouth_inside import (
    DARKEN_INSIDE,
    INSIDE_WALL,
    LIP_SHADE,
    TONGUE_FROM,
    YELLOWEST_INSIDE_HUE,
)
from diffusers_led.geometry.warp import (
    LIP_MIDDLES,
    MAX_LID_SKIN_STRETCH,
    MAX_SLIT_STRETCH,
    RIGHT_MOUTH,
    action_unit_warp,
    inner_mouth_mask,
    keep_lids_apart,
    keep_slits_shut,
    least_area_ratio,
    mouth_opening,
    plan_face_warp,
    slit_eyes,
    thin_plate_spline,
)
from diffusers_led.image_processor import prepare_image
from diffusers_led.labels import EXPRESSIONS

REQUIRED_UNITS = [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26]


# ----------------------------------------------------------------------------------------------- action units


def test_every_required_unit_exists_on_both_sides_with_a_source():
    for unit in REQUIRED_UNITS:
        both, right, left = ACTION_UNITS[f"AU{unit}"], ACTION_UNITS[f"R{unit}"], ACTION_UNITS[f"L{unit}"]
        assert np.abs(both).max() > 0.01, unit
        assert np.allclose(right + left, both), f"AU{unit}: the halves must add up to the whole"
        assert f"AU{unit}" in SOURCES


def test_patterns_are_mirror_symmetric_and_one_sided_units_move_one_side():
    for unit in REQUIRED_UNITS:
        both = ACTION_UNITS[f"AU{unit}"]
        assert np.allclose(both[MIRROR] * [-1, 1], both), f"AU{unit} is not left/right symmetric"
    right = ACTION_UNITS["R12"]
    left_half = sorted(set(range(68)) - set(RIGHT_HALF.tolist()) - set(np.flatnonzero(MIRROR == np.arange(68))))
    assert np.abs(right[left_half]).max() == 0.0
    assert right[48, 1] < -0.1  # the subject's right lip corner goes up


def test_prototypes_cover_all_eight_expressions():
    assert set(EXPRESSION_PROTOTYPES) == set(EXPRESSIONS)
    assert set(EXPRESSION_PROTOTYPES["happy"]) == {"AU6", "AU12"}
    assert all(name.startswith("R") for name in EXPRESSION_PROTOTYPES["contemptuous"])  # one-sided


def test_fearful_pulls_the_lip_corners_down_and_out_not_into_a_smile():
    fear = landmark_displacements(EXPRESSION_PROTOTYPES["fearful"])
    smile = landmark_displacements(EXPRESSION_PROTOTYPES["happy"])
    # The subject's right lip corner (48) and left one (54): out to the side and down, where a smile lifts them.
    assert fear[48, 0] < -0.05 and fear[54, 0] > 0.05
    assert fear[48, 1] > 0.04 and fear[54, 1] > 0.04 and smile[48, 1] < 0
    # The lower lip goes down whole: its middle no less than its sides (the corners alone bent it into a pout).
    assert fear[57, 1] >= fear[59, 1] and fear[66, 1] > fear[67, 1] - 0.015 and fear[66, 1] > 0.05
    # Wide eyes under brows raised at their inner ends and drawn together.
    assert fear[37, 1] < -0.05 and fear[38, 1] < -0.05
    assert fear[21, 1] < fear[17, 1] - 0.05 and fear[21, 0] > 0


def test_disgust_lifts_the_nose_wings_no_further_than_disgusted_faces_do():
    disgust = landmark_displacements(EXPRESSION_PROTOTYPES["disgusted"])
    # The CK+ disgust frames lift the nose wings by 0.05 inter-ocular distances (AU9 at 1); further, the nose is
    # reshaped and calibration people stop being themselves to the identity judge.
    assert -0.05 <= disgust[31, 1] < -0.02 and disgust[31, 1] == disgust[35, 1]
    # The nose still wrinkles under lowered brows and the upper lip rises.
    assert disgust[21, 1] > 0.1 and disgust[51, 1] < -0.04
    # The lips part under the raised upper lip (FACS disgust 10+25): the lower inner lip goes a little down.
    assert disgust[62, 1] < -0.04 and disgust[66, 1] > 0.01


def test_parse_action_units_forms_and_errors():
    assert parse_action_units("AU12=0.8, au6=0.4") == {"AU12": 0.8, "AU6": 0.4}
    assert parse_action_units({"12": 0.5, "r14": 1}) == {"AU12": 0.5, "R14": 1.0}
    with pytest.raises(ValueError, match="unknown action unit 'AU99'.*known: AU1"):
        parse_action_units("AU99=1")
    with pytest.raises(ValueError, match="needs an intensity"):
        parse_action_units("AU12")
    with pytest.raises(ValueError, match=r"\[-1.5, 1.5\]"):
        parse_action_units({"AU12": 3})


def test_estimate_reads_back_a_known_smile_and_neutral_undoes_it():
    neutral = neutral_shape()
    assert estimate_action_units(neutral) == {}
    smiling = neutral + 1.2 * ACTION_UNITS["AU12"] + 0.6 * ACTION_UNITS["AU6"]  # a clear smile
    # The estimate works in any frame: scale, rotate and shift the shape.
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    found = estimate_action_units(smiling @ rotation.T * 140 + [300, 200])
    assert found["AU12"] == pytest.approx(1.2, abs=0.1) and found["AU6"] == pytest.approx(0.6, abs=0.2)
    undo = expression_action_units("neutral", 1.0, found)
    assert undo["AU12"] == pytest.approx(-found["AU12"])
    # Already smiling: happy adds only what is missing.
    happy = EXPRESSION_PROTOTYPES["happy"]
    assert expression_action_units("happy", 1.0, {"AU12": 1.5, "AU6": 0.5}) == {
        "AU6": pytest.approx(happy["AU6"] - 0.5)
    }
    assert expression_action_units("joy", 0.5, {}) == {name: 0.5 * value for name, value in happy.items()}
    with_extra = expression_action_units("happy", 0.5, {}, extra={"AU12": 0.2})
    assert with_extra == {"AU6": 0.5 * happy["AU6"], "AU12": pytest.approx(0.5 * happy["AU12"] + 0.2)}


def test_a_dropped_jaw_undoes_half_a_smile():
    # Surprise drops the jaw, which already takes the lip corners down: its edit of a smile undoes half the smile.
    own = {"AU6": 1.0, "AU12": 0.9}
    surprised = expression_action_units("surprised", 1.0, own, from_blendshapes=True)
    assert surprised["AU12"] == pytest.approx(-0.45) and surprised["AU6"] == pytest.approx(-1.0)
    assert expression_action_units("surprised", 0.5, own, from_blendshapes=True)["AU12"] == pytest.approx(-0.225)
    # Every other target without a smile still undoes all of it.
    for target in ("neutral", "sad", "angry", "fearful"):
        assert expression_action_units(target, 1.0, own, from_blendshapes=True)["AU12"] == pytest.approx(-0.9)
    corner = landmark_displacements(surprised)[48]
    full_undo = landmark_displacements({**surprised, "AU12": -0.9})[48]
    assert np.linalg.norm(corner) < 0.9 * np.linalg.norm(full_undo)


@pytest.mark.parametrize("target", ["surprised", "fearful"])
def test_a_laugh_toward_parted_lips_lets_its_upper_lip_down_over_the_upper_teeth(target):
    # A laugh raises the upper lip over the upper teeth (AU10), which the corner puller's pattern barely moves: the
    # surprise edit of a smile kept a tall row of teeth at the top of the opening, the fear edit a black band under
    # them. Undoing the smile lets it down.
    own = {"AU6": 1.0, "AU12": 0.9}
    change = expression_action_units(target, 1.0, own, from_blendshapes=True)
    assert change["AU10"] == pytest.approx(-0.9 * RELEASED_WITH[target]["AU12"][1])
    assert expression_action_units(target, 0.5, own, from_blendshapes=True)["AU10"] == pytest.approx(
        0.5 * change["AU10"]
    )
    upper_lip = landmark_displacements(change)[[51, 62], 1]
    kept_raised = landmark_displacements({k: v for k, v in change.items() if k != "AU10"})[[51, 62], 1]
    assert (upper_lip > kept_raised + 0.04).all(), (upper_lip, kept_raised)
    # Without a smile nothing is let down, a smile as wide as a unit goes stays within the range (no clipping
    # warning), and the targets that close the mouth do not let it down.
    assert "AU10" not in expression_action_units(target, 1.0, {"AU6": 1.0}, from_blendshapes=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert expression_action_units(target, 1.0, {"AU12": 1.5}, from_blendshapes=True)["AU10"] == -1.5
    for other in ("neutral", "sad", "happy", "angry"):
        assert "AU10" not in expression_action_units(other, 1.0, own, from_blendshapes=True)


def test_a_frown_toward_surprised_raises_the_brows_evenly_not_in_a_worried_slant():
    # Undoing a frown (AU4) lifts the inner brow ends; the prototype's full inner brow raiser on top lifted them far
    # above the outer ends, which reads worried or sad (a frowning man's surprise edit read sad).
    change = expression_action_units("surprised", 1.0, {"AU4": 1.0}, from_blendshapes=True)
    assert change["AU1"] == pytest.approx(
        EXPRESSION_PROTOTYPES["surprised"]["AU1"] - RELEASED_WITH["surprised"]["AU4"][1]
    )
    rise = -landmark_displacements(change)[:, 1]
    inner, outer = rise[[21, 22]], rise[[17, 26]]
    assert (outer > 0.05).all() and (inner > 0.0).all(), (inner, outer)
    assert (inner <= outer).all(), (inner, outer)
    # A face without a frown gets the prototype's brows, and toward fearful (whose brows knit) the frown stays.
    assert expression_action_units("surprised", 1.0, {}, from_blendshapes=True)["AU1"] == pytest.approx(
        EXPRESSION_PROTOTYPES["surprised"]["AU1"]
    )
    assert expression_action_units("fearful", 1.0, {"AU4": 1.0}, from_blendshapes=True)["AU1"] == pytest.approx(
        EXPRESSION_PROTOTYPES["fearful"]["AU1"]
    )


def test_readings_that_neutral_faces_reach_are_not_undone():
    from diffusers_led.geometry.action_units import ESTIMATED_UNITS, neutral_variation

    variation = neutral_variation()
    assert set(variation) == set(ESTIMATED_UNITS) and all(0 < v <= 1.5 for v in variation.values())
    low_brows = {"AU4": variation["AU4"] - 0.05}  # a person's low brows: as far as neutral faces read
    assert expression_action_units("neutral", 1.0, low_brows) == {}
    assert expression_action_units("happy", 1.0, low_brows) == expression_action_units("happy", 1.0, {})
    frown = {"AU4": variation["AU4"] + 0.1}  # beyond what neutral faces show: an expression, undone (and relaxed)
    assert expression_action_units("neutral", 0.5, frown) == {
        "AU4": pytest.approx(-0.5 * frown["AU4"] - 0.5 * RELAXATION["neutral"]["AU4"]),
        "AU7": pytest.approx(-0.5 * RELAXATION["neutral"]["AU7"]),
    }
    # A part of the face beyond neutral is undone whole: a raised brow loses its inner and its outer half.
    raised = {"AU1": variation["AU1"] - 0.1, "AU2": variation["AU2"] + 0.3, "AU12": variation["AU12"] - 0.1}
    assert expression_action_units("neutral", 1.0, raised) == {
        "AU1": pytest.approx(-raised["AU1"]),
        "AU2": pytest.approx(-raised["AU2"]),
        **{name: pytest.approx(-amount) for name, amount in RELAXATION["neutral"].items()},
    }
    # The target's own units still count whatever their size: a slight smile is not smiled at twice.
    slight_smile = {"AU12": 0.3}
    happy = expression_action_units("happy", 1.0, slight_smile)
    assert happy["AU12"] == pytest.approx(EXPRESSION_PROTOTYPES["happy"]["AU12"] - 0.3)


def test_neutral_relaxes_an_expressive_face_past_its_rest_and_leaves_a_calm_one():
    # A face whose own rest still reads expressive (a smile undone kept lowered brows and tight lids) is relaxed a
    # little past it toward neutral: the brows unknit and the lids loosen, in proportion to what was undone.
    relax = RELAXATION["neutral"]
    assert relax["AU4"] > 0 and relax["AU7"] > 0
    smile = {"AU6": 0.4, "AU12": 0.9}
    change = expression_action_units("neutral", 1.0, smile, from_blendshapes=True)
    assert change["AU12"] == pytest.approx(-0.9) and change["AU6"] == pytest.approx(-0.4)
    assert change["AU4"] == pytest.approx(-0.9 * relax["AU4"]) and change["AU7"] == pytest.approx(-0.9 * relax["AU7"])
    half = expression_action_units("neutral", 0.5, smile, from_blendshapes=True)
    assert half["AU4"] == pytest.approx(0.5 * change["AU4"])
    # At most the unit's range, without the warning meant for units the caller added.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frown = expression_action_units("neutral", 1.0, {"AU4": 1.4}, from_blendshapes=True)
    assert frown["AU4"] == pytest.approx(-1.5)
    # The brows unknit: the inner brows rise and part.
    brows = landmark_displacements({"AU4": change["AU4"]})
    assert brows[21, 1] < 0 and brows[21, 0] < 0 < brows[22, 0]
    # A calm face, and every other target, gets none of it.
    assert expression_action_units("neutral", 1.0, {}) == {}
    assert "AU7" not in expression_action_units("sad", 1.0, smile, from_blendshapes=True)
    assert expression_action_units("happy", 1.0, {"AU4": 0.9}, from_blendshapes=True) == {
        **{name: pytest.approx(value) for name, value in EXPRESSION_PROTOTYPES["happy"].items()},
        "AU4": pytest.approx(-0.9),
    }


def test_landmark_displacements_add_up():
    assert np.allclose(
        landmark_displacements({"AU1": 1.0, "AU12": 0.5}), ACTION_UNITS["AU1"] + 0.5 * ACTION_UNITS["AU12"]
    )


# ---------------------------------------------------------------------------------------------------- warp


def test_thin_plate_spline_interpolates_and_keeps_affine_maps():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 100, (20, 2))
    values = rng.normal(size=(20, 2))
    assert np.allclose(thin_plate_spline(centres, values)(centres), values, atol=1e-6)
    affine = centres @ [[0.5, 0.1], [-0.2, 0.3]] + [1, 2]
    points = rng.uniform(0, 100, (50, 2))
    assert np.allclose(thin_plate_spline(centres, affine)(points), points @ [[0.5, 0.1], [-0.2, 0.3]] + [1, 2])


def synthetic_face(size: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """A textured image and the mean neutral shape placed in its middle (inter-ocular distance 60 px)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    shape = neutral_shape() * 60 + [size / 2 - 60 * neutral_shape()[:, 0].mean(), 40]
    return image, shape


def test_the_inside_of_the_mouth_follows_the_mesh_inner_lips_where_the_68_points_sit_in_a_moustache():
    from diffusers_led.geometry.mouth_inside import MESH_LOWER_INNER_LIP, MESH_UPPER_INNER_LIP

    image, shape = synthetic_face()
    # The mesh's inner lips: a mouth open by 0.15 inter-ocular distances (9 px) between the 68 points' corners.
    t = np.linspace(0.0, 1.0, len(MESH_UPPER_INNER_LIP))
    middle_y = shape[[60, 64], 1].mean()
    along = shape[60, 0] + t * (shape[64, 0] - shape[60, 0])
    half_gap = 4.5 * np.sin(np.pi * t)
    mesh = np.zeros((478, 3))
    mesh[MESH_UPPER_INNER_LIP, :2] = np.stack([along, middle_y - half_gap], axis=1)
    mesh[MESH_LOWER_INNER_LIP, :2] = np.stack([along, middle_y + half_gap], axis=1)
    # dlib's inner lips a lip-height too high and shut (in the moustache).
    shape = shape.copy()
    shape[60:68, 1] = middle_y - 10.0
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    with_mesh = action_unit_warp(shape, alignment, {"AU26": 0.6}, image.shape[:2], mesh=mesh)
    without = action_unit_warp(shape, alignment, {"AU26": 0.6}, image.shape[:2])
    x0, y0 = with_mesh.roi[:2]
    mouth_middle = np.round([along[5] - x0, middle_y - y0]).astype(int)
    dlib_middle = np.round([along[5] - x0, middle_y - 10.0 - y0]).astype(int)
    # What showed between the lips before: the mesh's open mouth, not dlib's shut seam in the moustache.
    assert with_mesh.mouth.was_inside[mouth_middle[1], mouth_middle[0]] > 0.9
    assert with_mesh.mouth.was_inside[dlib_middle[1], dlib_middle[0]] == 0.0
    assert without.mouth.was_inside.max() == 0.0
    # After the warp: the inside lies between the mesh's lips, each moved as the 68 points' same lip moved (the
    # jaw took the lower one down), not in the moustache.
    column = round(along[5] - x0)
    rows = np.flatnonzero(with_mesh.mouth.inside[:, column] > 0.5) + y0
    upper_moved, lower_moved = (with_mesh.shape - shape)[[62, 66], 1]
    assert lower_moved > 3
    assert abs(rows.max() + 0.5 - (middle_y + 4.5 + lower_moved)) < 1.5
    assert abs(rows.min() - 0.5 - (middle_y - 4.5 + upper_moved)) < 1.5
    assert with_mesh.mouth.inside[dlib_middle[1], dlib_middle[0]] == 0.0
    assert with_mesh.mouth.opens and with_mesh.mouth.jaw_shift[1] == pytest.approx(lower_moved, abs=1.0)


def _mesh_lips_apart(shape: np.ndarray, half_gap: float, seam: float) -> np.ndarray:
    """A (478, 3) mesh with only what the mouth's readings need: each eye's lid margins at the eye centre of the 68
    points ``shape``, and lips from corner to corner of ``shape``'s, the inner ones ``2 * half_gap`` px apart in
    the middle around the row ``seam``, the outer ones 8 px (upper) and 10 px (lower) beyond them."""
    from diffusers_led.geometry.eyes import EYES
    from diffusers_led.geometry.mouth_closing import MESH_LIPS

    mesh = np.zeros((478, 3))
    for eye, points in (("right", slice(36, 42)), ("left", slice(42, 48))):
        mesh[EYES[eye]["upper"] + EYES[eye]["lower"], :2] = shape[points].mean(0)
    for contour, beyond in zip(MESH_LIPS, (-half_gap - 8.0, -half_gap, half_gap, half_gap + 10.0)):
        t = np.linspace(0.0, 1.0, len(contour))
        along = shape[48, 0] + t * (shape[54, 0] - shape[48, 0])
        mesh[contour, :2] = np.stack([along, seam + beyond * np.sin(np.pi * t)], axis=1)
    return mesh


def _painted_mouth(image: np.ndarray, mesh: np.ndarray, inside: tuple[int, int, int] = (45, 20, 25)) -> np.ndarray:
    """``image`` with lips painted between ``mesh``'s outer lips and its gap between the inner lips ``inside``
    (the mouth's dark inside by default): the closing reads what the gap shows."""
    import cv2

    from diffusers_led.geometry.mouth_closing import MESH_LIPS

    painted = image.copy()
    for (upper, lower), colour in (((0, 3), (185, 90, 95)), ((1, 2), inside)):
        outline = np.vstack([mesh[MESH_LIPS[upper], :2], mesh[MESH_LIPS[lower], :2][::-1]])
        cv2.fillPoly(painted, [np.round(outline * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)
    return painted


def _toward_neutral(image: np.ndarray, shape: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """``image`` with its face (68 points ``shape``, Face Mesh ``mesh``, no expression of its own) edited toward
    neutral by the geometry stage."""
    from diffusers_led.faces.detection import DetectedFace
    from diffusers_led.faces.regions import FaceRegions
    from diffusers_led.geometry.blendshape_units import BLENDSHAPE_UNITS
    from diffusers_led.geometry.warper import ExpressionWarper

    resting = {name: 0.0 for names in BLENDSHAPE_UNITS.values() for name in names}
    face = DetectedFace(
        box=(60, 40, 120, 120), landmarks=np.zeros((5, 2)), score=1.0, shape=shape, mesh=mesh, blendshapes=resting
    )
    regions = FaceRegions(face=face, matrix=np.array([[1.0, 0, 0], [0, 1.0, 0]]), boxes={}, crops={}, masks={})
    (out,), _ = ExpressionWarper(None, 64).warp_faces([image], [[regions]], ["neutral"], 1.0, {})
    return out


def test_a_mouth_the_mesh_sees_shut_is_not_closed_further_where_dlib_reads_a_moustache_as_a_gap():
    """dlib's upper inner lip points sit in a moustache 0.15 inter-ocular distances above the lips' seam, where the
    mesh's inner lips meet: toward neutral the mouth is left as it is (closing it slid the lower lip up into the
    moustache and left bare skin), while the same face with the mesh's lips apart has its mouth closed."""
    image, shape = synthetic_face(280)  # the chin inside the photo
    shape = shape.copy()
    shape[[61, 62, 63], 1] -= 0.15 * 60  # dlib's upper inner lip, up in the moustache
    seam = shape[[65, 66, 67], 1].mean() - 1.0
    # The mesh's lips meeting; apart by 0.2 inter-ocular distances.
    meshes = [_mesh_lips_apart(shape, half_gap, seam) for half_gap in (0.3, 6.0)]
    images = [_painted_mouth(image, mesh) for mesh in meshes]
    edited = [_toward_neutral(painted, shape, mesh) for painted, mesh in zip(images, meshes)]
    assert np.array_equal(edited[0], images[0]), "a shut mouth is left as it is"
    assert np.abs(edited[1].astype(int) - images[1]).max() > 50, "an open one closes"


def _turned(shape: np.ndarray, mesh: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The 68 points ``shape`` and the (478, 3) ``mesh`` of a face facing the camera, turned by ``degrees`` about
    the vertical axis through the face's middle: x foreshortened, the mesh's z from x."""
    centre_x, turn = shape[:, 0].mean(), np.radians(degrees)
    turned_shape, turned_mesh = shape.copy(), mesh.copy()
    turned_shape[:, 0] = centre_x + (shape[:, 0] - centre_x) * np.cos(turn)
    turned_mesh[:, 0] = centre_x + (mesh[:, 0] - centre_x) * np.cos(turn)
    turned_mesh[:, 2] = mesh[:, 2] + (mesh[:, 0] - centre_x) * np.sin(turn)
    return turned_shape, turned_mesh


def test_a_turned_heads_lip_parting_is_read_as_the_same_heads_facing_the_camera():
    """The parting is measured in the mesh's 3-D points: a head turned 40 degrees, whose eyes come closer together
    in the photo and whose lips part as far, reads as open as facing the camera, as the 68 points read it (in 2-D
    against dlib's eye distance it read 1.3 times as open: Courteney's barely parted lips, t1.jpg, 0.137, 0.086 in
    3-D)."""
    from diffusers_led.geometry.mouth_inside import inner_lips, lip_parting

    _, shape = synthetic_face()
    mesh = _mesh_lips_apart(shape, 2.25, shape[[62, 66], 1].mean())
    facing = mouth_opening(shape, mesh)
    assert facing == pytest.approx(lip_parting(*inner_lips(shape, mesh), inter_ocular(shape)), rel=0.01)
    assert mouth_opening(*_turned(shape, mesh, 40.0)) == pytest.approx(facing, rel=0.02)


def test_lips_parted_by_a_few_pixels_over_a_dark_line_stay_and_a_wide_gap_closes_with_the_lips_slid(monkeypatch):
    """A turned head toward neutral: lips parted by a dark line thinner than an open mouth's inside (2 px, 0.05 of
    its inter-ocular distance) are read as shut and not closed (closing Courteney's 3.3 px, t1.jpg, by sliding
    her few-pixel upper lip over it erased the lip to a line); a wide gap closes and the lips slide over what the
    warp leaves of it (close_lips)."""
    import diffusers_led.geometry.warper as warper_module

    image, shape = synthetic_face(280)
    seam = shape[[62, 66], 1].mean()
    slid = []
    close_lips = warper_module.close_lips

    def spy(original: np.ndarray, warped: np.ndarray, *rest) -> np.ndarray:
        out = close_lips(original, warped, *rest)
        slid.append(out is not warped)
        return out

    monkeypatch.setattr(warper_module, "close_lips", spy)
    for half_gap, closes in ((1.0, False), (6.0, True)):
        parted = shape.copy()  # dlib's inner lips as far apart as the mesh's
        parted[[61, 62, 63], 1], parted[[65, 66, 67], 1] = seam - half_gap, seam + half_gap
        turned_shape, turned_mesh = _turned(parted, _mesh_lips_apart(parted, half_gap, seam), 50.0)
        painted = _painted_mouth(image, turned_mesh)
        slid.clear()
        out = _toward_neutral(painted, turned_shape, turned_mesh)
        assert slid == ([True] if closes else []), half_gap  # never called on the shut one: no closing
        assert np.abs(out.astype(int) - painted).max() > 50 or not closes


def test_an_open_mouth_closes_by_the_mesh_gap_where_dlibs_inner_lips_sit_on_the_lower_lip():
    """On a turned face dlib's lower inner lip points sit on the lower lip's body, reading a gap of 0.2 inter-ocular
    distances where the mesh's inner lips are 0.08 apart: the closing raises the lower lip by the mesh's gap (closing
    by dlib's slid the lower lip up under the upper one, where it vanished: Joey, t1.jpg, toward angry)."""
    from diffusers_led.geometry.mouth_closing import inner_lips_on_mesh, jaw_closing_limit
    from diffusers_led.geometry.mouth_inside import MESH_LOWER_INNER_LIP, MESH_UPPER_INNER_LIP

    image, shape = synthetic_face(280)
    shape = shape.copy()
    seam = shape[[61, 62, 63, 65, 66, 67], 1].mean()
    shape[[61, 62, 63], 1] = seam
    shape[[65, 66, 67], 1] = seam + 0.2 * 60  # on the lower lip's body
    t = np.linspace(0.0, 1.0, len(MESH_UPPER_INNER_LIP))
    along = shape[60, 0] + t * (shape[64, 0] - shape[60, 0])
    mesh = np.zeros((478, 3))
    mesh[MESH_UPPER_INNER_LIP, :2] = np.stack([along, np.full_like(t, seam)], axis=1)
    mesh[MESH_LOWER_INNER_LIP, :2] = np.stack([along, seam + 0.08 * 60 * np.sin(np.pi * t) ** 0.5], axis=1)
    on_mesh = inner_lips_on_mesh(shape, mesh)
    assert 0.06 < mouth_opening(on_mesh) <= 0.08  # the mesh's gap at the quarter points
    assert np.array_equal(inner_lips_on_mesh(shape, None), shape)
    wider = mesh.copy()  # a smile's lips rolled over its teeth, which the mesh reads further apart: dlib's reading
    wider[MESH_LOWER_INNER_LIP, 1] += 0.3 * 60
    assert np.array_equal(inner_lips_on_mesh(shape, wider), shape)
    assert jaw_closing_limit(on_mesh) < 0.6 * jaw_closing_limit(shape)
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {}, image.shape[:2], close_mouth=1.0, mesh=mesh)
    rise = -(warp.shape - shape)[[65, 66, 67], 1].mean()
    assert 1.0 < rise < 0.08 * 60, "the lower lip rises by the mesh's gap, not through the upper lip"


def test_a_mouth_closed_by_the_mesh_gap_meets_without_a_tent_where_dlibs_inner_points_bunch_up():
    """A grin's inner lips read on the mesh at a quarter, half and three quarters of their length (a lens-shaped gap:
    narrower at the quarters) while dlib's points, bunched toward one corner, see an even gap: closing dlib's points
    by the mesh's gaps left the middle pair closer than its neighbours, a tent in the line where the lips met that
    the lips were then stretched over (a beak; a sample photo's grin toward neutral, sad, angry and contempt)."""
    from diffusers_led.geometry.mouth_closing import INNER_LIP_PAIRS, MAX_SEAM_TENT
    from diffusers_led.geometry.mouth_inside import MESH_LOWER_INNER_LIP, MESH_UPPER_INNER_LIP

    image, shape = synthetic_face(280)
    shape = shape.copy()
    seam = shape[[61, 62, 63, 65, 66, 67], 1].mean()
    left, right = shape[[60, 64], 0]
    for (upper, lower), share in zip(INNER_LIP_PAIRS, (0.46, 0.62, 0.76)):  # bunched toward the left corner
        shape[[upper, lower], 0] = left + share * (right - left)
        shape[upper, 1], shape[lower, 1] = seam, seam + 0.2 * 60  # on the gap's edges: an even gap
    t = np.linspace(0.0, 1.0, len(MESH_UPPER_INNER_LIP))
    along = left + t * (right - left)
    mesh = np.zeros((478, 3))
    mesh[MESH_UPPER_INNER_LIP, :2] = np.stack([along, np.full_like(t, seam)], axis=1)
    mesh[MESH_LOWER_INNER_LIP, :2] = np.stack([along, seam + 0.18 * 60 * np.sin(np.pi * t)], axis=1)
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {}, image.shape[:2], close_mouth=1.0, mesh=mesh)
    gaps = np.array([warp.shape[lower, 1] - warp.shape[upper, 1] for upper, lower in INNER_LIP_PAIRS])
    tent = gaps[[0, 2]].mean() - gaps[1]
    assert tent <= MAX_SEAM_TENT * inter_ocular(shape) + 0.05, f"the middle pair closed {tent:.1f} px past the others"
    assert gaps.max() < 0.2 * 60 - 4.0, "the mouth still closes"


def test_warp_moves_the_landmarks_and_leaves_everything_outside_its_window_bit_identical():
    image, shape = synthetic_face()
    displacement = np.zeros((68, 2))
    displacement[48] = (-6, -8)  # the image-left lip corner up and out
    warp = plan_face_warp(shape, displacement, image.shape[:2], margin=25, feather=20)
    out = warp.apply(image)
    outside = warp.mask(image.shape[:2]) == 0
    assert outside.mean() > 0.3
    assert np.array_equal(out[outside], image[outside])
    assert not np.array_equal(out, image)
    # Backward map: the moved corner samples the original corner; a fixed landmark samples itself.
    x, y = np.round(shape[48] + displacement[48]).astype(int)
    src = np.array([warp.map_x[y - warp.roi[1], x - warp.roi[0]], warp.map_y[y - warp.roi[1], x - warp.roi[0]]])
    assert np.linalg.norm(src - (np.array([x, y]) - displacement[48])) < 1.0
    fx, fy = np.round(shape[36]).astype(int)
    fixed = np.array([warp.map_x[fy - warp.roi[1], fx - warp.roi[0]], warp.map_y[fy - warp.roi[1], fx - warp.roi[0]]])
    assert np.linalg.norm(fixed - [fx, fy]) < 0.5
    assert warp.shape[48] == pytest.approx(shape[48] + displacement[48])
    assert plan_face_warp(shape, np.zeros((68, 2)), image.shape[:2], 25, 20) is None


def test_an_opened_mouth_gets_a_dark_inside_not_stretched_lips():
    image, shape = synthetic_face()
    lips = np.zeros(image.shape[:2], np.uint8)
    import cv2

    cv2.fillPoly(lips, [np.round(shape[48:60]).astype(np.int32)], 1)
    image[lips > 0] = (200, 90, 90)  # red lips
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {"AU26": 0.6}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens and mouth_opening(warp.shape) > mouth_opening(shape) + 0.1
    out = warp.apply(image)
    centre = np.round(warp.shape[[62, 66]].mean(0)).astype(int)
    inside = out[centre[1], centre[0]].astype(float)
    assert inside.max() < 120, f"the inside of the opened mouth must be dark, got {inside}"
    mask = inner_mouth_mask(warp.shape, np.array([[0.5, 0, -20.0], [0, 0.5, -60.0]]), 64)
    assert mask.max() > 0.9 and mask[0].max() == 0 and mask[:, -1].max() == 0


def _red_lipped_jaw_drop(lip_colour: tuple[int, int, int] = (200, 90, 90)):
    """A synthetic face with red lips (or of ``lip_colour``), its jaw dropped (AU26 1.0): ``(image, lips mask,
    warp)``."""
    import cv2

    image, shape = synthetic_face()
    lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(shape[48:60]).astype(np.int32)], 1)
    image[lips > 0] = lip_colour
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {"AU26": 1.0}, image.shape[:2])
    return image, lips, warp


def test_an_opened_mouth_is_shaded_dark_roof_and_lit_tongue_not_a_flat_hole():
    image, lips, warp = _red_lipped_jaw_drop()
    assert warp.mouth is not None and warp.mouth.opens
    top, bottom = warp.shape[62], warp.shape[66]
    for picture in (image, image[:, :, 0].copy()):  # colour and grey photos
        out = warp.apply(picture).astype(float)
        roof, floor = (out[tuple(np.round(top + t * (bottom - top)).astype(int)[::-1])] for t in (0.3, 0.9))
        lip_level = np.mean(picture[lips > 0])
        assert np.mean(roof) < 0.4 * lip_level and np.mean(floor) > np.mean(roof) + 15, (roof, floor)
        if picture.ndim == 3:
            assert floor[0] > floor[1] + 10, f"the tongue takes the lips' red: {floor}"


def _open_toothy_mouth(size: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic face with its jaw dropped 0.25 inter-ocular distances and random 'teeth' between the lips, the
    upper and lower row parted by a dark gap halfway."""
    import cv2

    image, shape = synthetic_face(size)
    shape = shape.copy()
    shape[[65, 66, 67, 55, 56, 57, 58, 59]] += (0, 15)
    teeth = np.random.default_rng(2).integers(150, 256, image.shape, dtype=np.uint8)
    inside = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(shape[60:68]).astype(np.int32)], 1)
    image[inside > 0] = teeth[inside > 0]
    gap = (shape[[61, 62, 63]] + shape[[67, 66, 65]]) / 2
    cv2.polylines(image, [np.round(gap).astype(np.int32)], False, (30, 30, 30), 3)  # the corners show teeth
    return image, shape


def test_a_narrowing_mouth_covers_its_teeth_instead_of_squeezing_them():
    image, shape = _open_toothy_mouth()
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {"AU12": -1.0}, image.shape[:2])  # a smile undone: corners in, down
    assert warp.mouth is not None and not warp.mouth.opens
    x0, y0, x1, y1 = warp.roi
    upper, _ = warp.mouth.teeth_halves(image[y0:y1, x0:x1])
    teeth = (warp.mouth.inside == 1) & (upper == 1) & (warp.weight > 0)
    assert teeth.sum() > 20
    rows, cols = np.nonzero(teeth)
    plain_shift = np.hypot(warp.map_x[teeth] - (cols + x0), warp.map_y[teeth] - (rows + y0))
    assert plain_shift.max() > 1.0, "the plain warp would have moved (squeezed) these teeth"
    out = warp.apply(image)
    assert np.array_equal(out[rows + y0, cols + x0], image[rows + y0, cols + x0]), "the teeth stay where they were"


def test_a_laughs_upper_teeth_go_whole_with_the_upper_jaw():
    """Bright upper teeth over most of the opening and a dark shadow below them: the jaw splits at the shadow (not
    at the upper lip's own darker one), so the upper teeth stay whole where they were instead of their lower edge
    dropping with the jaw."""
    image, shape = _open_toothy_mouth()
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {"AU26": 0.5}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens
    x0, y0, x1, y1 = warp.roi
    laugh = image.copy()
    crop = laugh[y0:y1, x0:x1]
    inside = warp.mouth.was_inside > 0.5
    crop[inside & (warp.mouth.was_across < 0.7)] = 230  # the upper teeth
    crop[inside & (warp.mouth.was_across >= 0.7)] = 40  # the shadow over the lower lip
    crop[inside & (warp.mouth.was_across < 0.1)] = 20  # the upper lip's own shadow, darker still
    assert warp.mouth.jaw_split(crop) > 0.7
    upper, _ = warp.mouth.teeth_halves(crop)
    teeth = (upper == 1) & (warp.mouth.inside == 1) & (warp.weight > 0)
    rows, cols = np.nonzero(teeth)
    assert warp.mouth.was_across[teeth].max() > 0.6, "the teeth's lower edge belongs to the upper jaw"
    out = warp.apply(laugh)
    assert np.array_equal(out[rows + y0, cols + x0], laugh[rows + y0, cols + x0]), "the upper teeth stay whole"


def test_a_laughs_jaw_opening_a_little_shows_the_photos_own_dark_inside_not_a_black_band():
    """A laugh's upper teeth over the dark red of its open mouth: a jaw dropped a little further opens a gap under
    the teeth that the photo's inside already nearly filled, so it takes that inside's colour; shaded as the back
    of a mouth it was a black band between the teeth and the lower lip (a laugh toward fearful)."""
    import cv2

    image, shape = _open_toothy_mouth()
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {"AU26": 0.25}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens and warp.mouth.shown > 0.6
    x0, y0, x1, y1 = warp.roi
    laugh = image.copy()
    crop = laugh[y0:y1, x0:x1]
    inside = warp.mouth.was_inside > 0.5
    crop[inside & (warp.mouth.was_across < 0.6)] = 235  # the upper teeth
    crop[inside & (warp.mouth.was_across >= 0.6)] = (120, 40, 40)  # the mouth's own dark red inside
    upper, lower = warp.mouth.teeth_halves(crop)
    lower = cv2.warpAffine(
        lower, np.float32([[1, 0, warp.mouth.jaw_shift[0]], [0, 1, warp.mouth.jaw_shift[1]]]), lower.shape[::-1]
    )
    opened = (warp.mouth.inside == 1) & (upper < 0.01) & (lower < 0.01) & (warp.mouth.depth == 1)
    assert opened.sum() > 20
    rows, cols = np.nonzero(opened)
    gap = warp.apply(laugh)[rows + y0, cols + x0].astype(float)
    assert gap.mean() > 0.75 * np.mean((120, 40, 40)), gap.mean(0)
    assert (gap[:, 0] > gap[:, 1] + 20).mean() > 0.9, "it keeps the inside's red"


@pytest.mark.parametrize("units", [{"AU26": 0.5}, {"AU12": -1.0}], ids=["opens", "narrows"])
def test_the_inside_of_the_mouth_is_measured_and_re_made_over_the_lips_box_as_over_the_whole_window(units):
    """For speed (every frame of a clip) the inside of the lips is measured and re-made over their box only (before
    and after the warp: a narrowing mouth's teeth lie beyond its new outline): the box holds all of the lips' soft
    outline, the heights there are those measured over the whole window, and the mouth re-made in the box is the one
    re-made over the whole window."""
    import cv2

    from diffusers_led.geometry import mouth_inside as mouth_inside_module

    image, shape = _open_toothy_mouth()
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), units, image.shape[:2])
    mouth, roi = warp.mouth, warp.roi
    assert mouth is not None and mouth.opens == ("AU26" in units) and mouth.was_inside.max() > 0.9
    upper, lower = mouth_inside_module.inner_lips(shape)
    outline = mouth_inside_module.inner_lip_outline(upper, lower)
    box = mouth_inside_module._mouth_box(outline, roi)
    beyond = np.ones(mouth.inside.shape, dtype=bool)
    beyond[box] = False
    assert mouth_inside_module._polygon_mask(outline, roi[:2], beyond.shape[::-1])[beyond].max() == 0.0
    heights = mouth_inside_module._gap_heights(upper, lower, roi, box)
    everywhere = mouth_inside_module._gap_heights(upper, lower, roi, np.s_[:, :])
    assert all(np.array_equal(part[box], whole[box]) for part, whole in zip(heights, everywhere))
    plain = cv2.remap(image, warp.map_x, warp.map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    in_box, in_window = mouth.apply(image, plain, roi), mouth._fill(image, plain, roi)
    assert (in_box != plain).any(axis=2).sum() > 100
    # At most a grey level: the jaw's sub-pixel shift is rounded to float32 from the box's origin, not the window's.
    assert np.abs(in_box.astype(int) - in_window).max() <= 1


def test_a_smiles_one_row_of_teeth_stays_with_the_upper_jaw_as_the_jaw_drops():
    """A smile shows its upper teeth alone: one bright row, no dark gap to split at. Toward surprised they stay
    under the upper lip and the dark inside opens below them; split at their darkest band, most of them dropped
    with the jaw and left a dark hole under the upper lip over teeth along the bottom (astronaut.png)."""
    import cv2

    image, shape = synthetic_face()
    shape = shape.copy()
    shape[[65, 66, 67, 55, 56, 57, 58, 59]] += (0, 12)
    teeth = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(teeth, [np.round(shape[60:68]).astype(np.int32)], 1)
    image[teeth > 0] = (235, 235, 228)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {"AU26": 1.0}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens
    x0, y0, x1, y1 = warp.roi
    upper, lower = warp.mouth.teeth_halves(image[y0:y1, x0:x1])
    within = warp.mouth.was_inside > 0.99
    assert upper[within].min() > 0.99 and lower.max() < 0.01, "the one row counts as the upper teeth"
    out = warp.apply(image).astype(float)
    top, bottom = warp.shape[62], warp.shape[66]
    below_teeth = out[tuple(np.round(top + 0.85 * (bottom - top)).astype(int)[::-1])]
    under_lip = out[tuple(np.round(top + 0.1 * (bottom - top)).astype(int)[::-1])]
    assert below_teeth.mean() < 120 < under_lip.mean(), (under_lip, below_teeth)


def test_a_small_tilted_mouth_splits_its_teeth_over_a_soft_edge_and_darkens_smoothly():
    """A group photo's small face (inter-ocular distance 14 px), head tilted 25 degrees, a toothy mouth a few pixels
    tall opening further: where the upper teeth give way to the lower jaw's, the edge is a couple of pixels wide
    (a sharper one, moved with the jaw, left a row of dark dots along the mouth), and the dark of the opening
    deepens with the distance from the lips, not in a rasterised mask's steps."""
    import cv2

    iod, tilt = 14.0, np.radians(25.0)
    rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    shape = neutral_shape() * iod
    shape = shape - shape[48:68].mean(0)
    shape[[65, 66, 67, 55, 56, 57, 58, 59]] += (0, 0.25 * iod)
    shape = shape @ rotation.T + 32
    image = np.full((64, 64, 3), (200, 160, 140), np.uint8)
    cv2.fillPoly(image, [np.round(shape[48:60] * 16).astype(np.int32)], (170, 90, 90), cv2.LINE_AA, shift=4)
    cv2.fillPoly(image, [np.round(shape[60:68] * 16).astype(np.int32)], (235, 235, 230), cv2.LINE_AA, shift=4)
    gap = (shape[[61, 62, 63]] + shape[[67, 66, 65]]) / 2  # two rows of teeth, a dark gap between them
    cv2.polylines(image, [np.round(gap * 16).astype(np.int32)], False, (60, 50, 50), 1, cv2.LINE_AA, shift=4)
    alignment = np.hstack([rotation.T, np.zeros((2, 1))])  # image -> upright face
    warp = action_unit_warp(shape, alignment, {"AU26": 0.4}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens
    x0, y0, x1, y1 = warp.roi
    upper, _ = warp.mouth.teeth_halves(image[y0:y1, x0:x1])
    within = warp.mouth.was_inside > 0.99
    pairs = within[1:] & within[:-1]
    assert pairs.sum() > 10
    assert upper.max() == 1.0 and upper[within].min() == 0.0, "both jaws' teeth show"
    assert np.abs(np.diff(upper, axis=0))[pairs].max() < 0.6, "from one row to the next, the upper teeth fade"
    # The opening's dark rises from 0 at the lips: deep only as far as the opening is.
    inside = warp.mouth.inside > 0.5
    assert warp.mouth.depth[inside].min() < 0.3 < warp.mouth.depth[inside].max()


def test_an_opened_mouth_under_a_moustache_takes_its_colour_from_the_lower_lip():
    """A moustache hides the upper lip (and dlib's outer lip points take its hair in): the opened inside is shaded
    in the lips' own red, from the lower lip, not in the hair's brown."""
    import cv2

    image, shape = synthetic_face()
    image[:] = (205, 165, 145)
    lower_lip = shape[[48, 59, 58, 57, 56, 55, 54, 64, 65, 66, 67, 60]]
    cv2.fillPoly(image, [np.round(lower_lip).astype(np.int32)], (175, 70, 75))
    moustache = np.vstack([shape[[48, 49, 50, 51, 52, 53, 54]] - (0, 12), shape[[64, 63, 62, 61, 60]]])
    cv2.fillPoly(image, [np.round(moustache).astype(np.int32)], (95, 65, 40))
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {"AU26": 1.0}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens
    red, green, blue = warp.mouth.lip_tone(image)
    assert red > green + 80 and red > 150, f"the lower lip's red, not the moustache's brown: {(red, green, blue)}"


def test_a_dropped_jaw_arches_the_upper_lip_over_a_round_opening():
    """The upper inner lip's sides follow the corners down, so the opening's top is an arch, highest in the middle,
    not a flat line."""
    moved = neutral_shape() + landmark_displacements({"AU26": 1.0})
    corner, quarter, middle = moved[60, 1], moved[61, 1], moved[62, 1]
    assert middle < quarter - 0.03 < corner - 0.1
    both_sides = landmark_displacements({"AU26": 1.0})
    assert both_sides[61, 1] == both_sides[63, 1] > 0.0


def test_stretched_lips_get_thinner_not_swollen():
    """The lip stretcher pulls the corners out and flattens both lips: each lip's red is no taller in the middle."""
    import cv2

    neutral = neutral_shape()
    moved = neutral + landmark_displacements({"AU20": 1.5})
    upper_lip = [48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]
    lower_lip = [48, 59, 58, 57, 56, 55, 54, 64, 65, 66, 67, 60]
    for lip, outer, inner in ((upper_lip, 51, 62), (lower_lip, 57, 66)):
        assert abs(moved[outer, 1] - moved[inner, 1]) < abs(neutral[outer, 1] - neutral[inner, 1]) - 0.01
        area = [abs(cv2.contourArea(s[lip].astype(np.float32))) for s in (neutral, moved)]
        assert area[1] < 1.15 * area[0], "a lip stretched sideways keeps about its area"
    assert moved[54, 0] - moved[48, 0] > neutral[54, 0] - neutral[48, 0] + 0.2


def test_a_corner_pulled_sideways_does_not_stretch_the_teeth_into_a_strip():
    """Lips stretched sideways and parted: where the new inside reaches beyond the old one, the plain warp would draw
    the teeth at the old corners stretched; the more it stretches them, the more the mouth's own shaded inside is
    drawn instead."""
    import cv2

    image, shape = _open_toothy_mouth()
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {"AU20": 1.0, "AU26": 0.3}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens
    x0, y0, x1, y1 = warp.roi
    out = warp.apply(image)[y0:y1, x0:x1].astype(float)
    plain = cv2.remap(image, warp.map_x, warp.map_y, cv2.INTER_LINEAR).astype(float)
    source_was_teeth = cv2.remap(warp.mouth.was_inside, warp.map_x - x0, warp.map_y - y0, cv2.INTER_LINEAR) > 0.9
    _, lower = warp.mouth.teeth_halves(image[y0:y1, x0:x1])
    jaw = np.float32([[1, 0, warp.mouth.jaw_shift[0]], [0, 1, warp.mouth.jaw_shift[1]]])
    lower_teeth_moved = cv2.warpAffine(lower, jaw, (x1 - x0, y1 - y0)) > 0  # the lower teeth, with the jaw
    beyond = (warp.mouth.inside > 0.99) & (warp.mouth.was_inside == 0) & source_was_teeth & (warp.weight > 0)
    beyond &= ~lower_teeth_moved
    # Near the lips, where the opened inside alone would still show the plain warp (its shade deepens inward).
    from_lips = cv2.distanceTransform((warp.mouth.inside > 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    beyond &= from_lips < 0.5 * LIP_SHADE * inter_ocular(shape)
    shade = warp.mouth.shade(image)
    plain_from_shade = np.abs(plain[beyond] - shade[beyond]).mean()
    assert beyond.sum() >= 8 and plain_from_shade > 30, "the plain warp draws teeth here"
    # Stretched to about 0.55 of their area here: more the mouth's own inside than the plain warp (0.67 without).
    assert np.abs(out[beyond] - shade[beyond]).mean() < 0.5 * plain_from_shade


def _lightness_chroma_hue(rgb: np.ndarray) -> np.ndarray:
    """CIELAB lightness, chroma and hue (degrees) of ``(..., 3)`` RGB colours (0-255), ``(..., 3)``."""
    import cv2

    lab = cv2.cvtColor(np.float32(np.reshape(rgb, (-1, 1, 3))) / 255.0, cv2.COLOR_RGB2LAB).reshape(np.shape(rgb))
    chroma, hue = np.hypot(lab[..., 1], lab[..., 2]), np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))
    return np.stack([lab[..., 0], chroma, hue], axis=-1)


def test_an_opened_mouths_inside_is_as_dark_beside_its_lips_on_dim_and_bright_faces():
    """The inside's shade is a share of the lips' own tone, so a dim face's opened mouth is not a black hole."""
    image, _, warp = _red_lipped_jaw_drop()
    inside = warp.mouth.inside > 0.5
    photos = (image, (image * 0.4).astype(np.uint8))
    bright, dim = (warp.mouth.shade(photo)[inside].mean(1) / warp.mouth.lip_tone(photo).mean() for photo in photos)
    assert np.allclose(dim, bright, atol=1e-3)  # as dark a share of the lips' grey level (their colour kept)
    roof = warp.mouth.shade(image)[(warp.mouth.across < 0.3) & (warp.mouth.inside > 0.5)]
    tone = warp.mouth.lip_tone(image)
    roof, tone = roof.mean(1), tone.mean()  # grey levels: its colour is kept, not scaled channel by channel
    assert np.all(roof >= DARKEN_INSIDE * tone - 1e-3) and np.all(roof <= INSIDE_WALL * tone + 1e-3)


@pytest.mark.parametrize("lip_colour", [(200, 90, 90), (168, 98, 61), (120, 100, 95)])
def test_an_opened_mouths_dark_inside_keeps_its_lips_hue_and_colour_not_a_blue_black_grey(lip_colour):
    """Darkened as the lips' RGB scaled down, the inside lost its colour with its light (CIELAB chroma 14 at
    lightness 12 under lips of chroma 41) and read blue-black beside warm skin (a pale-lipped woman toward
    surprised); a photo's own mouth keeps its lips' chroma as it darkens. Pale warm, red and nearly grey lips."""
    image, lips, warp = _red_lipped_jaw_drop(lip_colour)
    mouth = warp.mouth
    lips_lch = _lightness_chroma_hue(np.float32(lip_colour))
    inside = _lightness_chroma_hue(mouth.shade(image))[(mouth.inside > 0.99) & (mouth.depth > 0.99)]
    assert len(inside) > 50
    assert np.all(np.abs(inside[:, 2] - lips_lch[2]) < 4.0), "a hue the lips do not have"
    kept = np.minimum(lips_lch[1], 1.4 * inside[:, 0])
    assert np.all(inside[:, 1] >= kept - 1.0), f"chroma {inside[:, 1].min():.1f} at lightness {inside[:, 0].min():.1f}"
    assert np.all(inside[:, 1] <= lips_lch[1] + 1.0)


def test_an_opened_mouths_inside_under_lips_read_yellow_is_brown_not_olive():
    """An over-exposed photo clips the lips' red channel and reads them pale yellow (sample4.jpg brightened: a tone
    of 254, 225, 161, CIELAB hue 89 degrees): darkened at that hue, the opened inside was an olive-green blotch. It
    takes the yellowest hue lips have (YELLOWEST_INSIDE_HUE), keeping their chroma; redder lips keep their own."""
    image, _, warp = _red_lipped_jaw_drop((254, 225, 161))
    mouth = warp.mouth
    inside = _lightness_chroma_hue(mouth.shade(image))[(mouth.inside > 0.99) & (mouth.depth > 0.99)]
    assert len(inside) > 50
    assert np.all(np.abs(inside[:, 2] - YELLOWEST_INSIDE_HUE) < 4.0), (
        f"hue {inside[:, 2].min():.0f}-{inside[:, 2].max():.0f}"
    )
    assert np.all(
        inside[:, 1] >= np.minimum(_lightness_chroma_hue(np.float32((254, 225, 161)))[1], inside[:, 0]) - 1.0
    )


def test_an_opened_mouths_inside_darkens_toward_its_back_not_a_uniform_disc():
    """Beside the lips the inside is lit (the inner cheeks, the lips' wet side); at the point farthest from them it
    is as dark as the roof gets: a hollow, not a flat black fill."""
    image, _, warp = _red_lipped_jaw_drop()
    mouth = warp.mouth
    level = mouth.shade(image).mean(2)
    roof = (mouth.across < TONGUE_FROM) & (mouth.inside > 0.99)
    beside_lips, back = roof & (mouth.hollow < 0.15), roof & (mouth.hollow > 0.7)
    assert beside_lips.sum() > 20 and back.sum() > 5
    assert level[beside_lips].mean() > 1.5 * level[back].mean()
    assert level[back].min() == pytest.approx(DARKEN_INSIDE * mouth.lip_tone(image).mean(), rel=0.15)


def test_an_opened_mouths_inside_lifted_to_a_floor_keeps_its_hollow():
    """No darker than a faded face's own detail allows: the roof's back rises to the floor and the rest of the
    hollow's shading is kept, squeezed toward the lips' tone (not cut flat at the floor)."""
    image, _, warp = _red_lipped_jaw_drop()
    mouth = warp.mouth
    tone = float(mouth.lip_tone(image).mean())
    inside = (mouth.inside > 0.99) & (mouth.depth > 0.99)
    plain, lifted = (mouth.shade(image, floor)[inside].mean(1) for floor in (0.0, 0.5 * tone))
    assert plain.min() < 0.3 * tone and lifted.min() == pytest.approx(0.5 * tone, rel=0.02)
    assert np.all(lifted >= plain - 1e-3) and np.corrcoef(plain, lifted)[0, 1] > 0.999
    assert np.allclose(mouth.shade(image, 0.1 * tone), mouth.shade(image))  # a floor below the roof: as before


def _grainy_red_lipped_face(grain: float) -> tuple[np.ndarray, np.ndarray]:
    """A flat skin-toned photo with red lips, both with camera grain of ``grain`` grey levels: ``(image, shape)``."""
    import cv2

    _, shape = synthetic_face()
    image = np.full((240, 240, 3), (190, 150, 130), dtype=np.float64)
    lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(shape[48:60]).astype(np.int32)], 1)
    image[lips > 0] = (200, 90, 90)
    image += np.random.default_rng(3).normal(0.0, grain, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), shape


def _jaw_dropped(grain: float):
    """The grainy face's jaw dropped (AU26 1.0): ``(image, warp, the deep inside of its opened mouth)``."""
    import cv2

    image, shape = _grainy_red_lipped_face(grain)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {"AU26": 1.0}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens
    x0, y0, x1, y1 = warp.roi
    deep = np.zeros(image.shape[:2], dtype=np.uint8)
    deep[y0:y1, x0:x1] = (warp.mouth.inside > 0.99) & (warp.mouth.depth > 0.99)
    deep = cv2.erode(deep, np.ones((5, 5), np.uint8)) > 0
    assert deep.sum() > 200
    return image, warp, deep


def test_an_opened_mouths_inside_has_the_photos_grain_not_a_smooth_fill():
    """On a grainy photo the dark inside carries grain as its lips do (a smooth fill read as a pasted hole); on a
    clean photo it stays smooth; the same photo gives the same edit."""
    import cv2

    grainy, grainy_warp, deep = _jaw_dropped(6.0)
    clean, clean_warp, _ = _jaw_dropped(0.0)
    out = grainy_warp.apply(grainy)
    assert np.array_equal(out, grainy_warp.apply(grainy))
    # What the grain adds: the grainy edit less the clean one, less its smooth part (the lips' tone differs a little).
    added = out.astype(np.float32) - clean_warp.apply(clean).astype(np.float32)
    added -= cv2.GaussianBlur(added, (0, 0), 2.0)
    assert added[deep].std() > 0.8, f"the opened inside of a grainy photo is smooth ({added[deep].std():.2f})"
    # Darker than the lips, fainter than theirs: a share of the brightness, not the lips' grain in grey levels.
    assert added[deep].std() < 6.0
    # A clean photo's inside gets no grain (under a thousandth of its brightness: not a grey level).
    assert np.abs(clean_warp.mouth.grain(clean, clean_warp.roi)).max() < 1e-3


def test_the_far_half_of_a_turned_mouth_moves_sideways_by_its_foreshortening():
    """On a turned face the far half of the mouth is foreshortened: an undone smile pulling both corners in by the
    frontal amount bunched the far half into a pout. Each half now narrows by about the same share of its width."""
    image, shape = synthetic_face(320)
    middle = shape[LIP_MIDDLES, 0].mean()
    turned = shape.copy()
    far = MIRROR[RIGHT_MOUTH]  # the subject's left half, squeezed to half its width
    turned[far, 0] = middle + 0.5 * (shape[far, 0] - middle)
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(turned, alignment, {"AU12": -1.0}, image.shape[:2])
    near_before, far_before = middle - turned[48, 0], turned[54, 0] - middle
    near_after, far_after = middle - warp.shape[48, 0], warp.shape[54, 0] - middle
    assert near_after / near_before < 0.9  # the smile is undone
    # Each half narrows by about the same share (all but a frontal face's asymmetry; before: 0.29 against 0.64).
    assert far_after / far_before == pytest.approx(near_after / near_before, abs=0.05)
    # The near half moves as on a frontal face, by the pattern's amount.
    frontal = action_unit_warp(shape, alignment, {"AU12": -1.0}, image.shape[:2])
    pattern = landmark_displacements({"AU12": -1.0})[48, 0] * inter_ocular(shape)
    assert warp.shape[48, 0] - turned[48, 0] == pytest.approx(frontal.shape[48, 0] - shape[48, 0], abs=0.3)
    assert frontal.shape[48, 0] - shape[48, 0] == pytest.approx(pattern, rel=0.1)


def test_a_wide_open_mouth_closes_as_far_as_the_warp_allows_and_the_rest_of_the_edit_stays_whole():
    from diffusers_led.geometry.mouth_closing import close_lips, jaw_closing_limit

    image, shape = synthetic_face(320)
    shape = shape.copy()
    shape[[65, 66, 67, 55, 56, 57, 58, 59, 7, 8, 9]] += (0, 30)  # a jaw dropped half an inter-ocular distance
    gap = mouth_opening(shape)
    limit = jaw_closing_limit(shape)
    closed_by_jaw = shape + limit * ACTION_UNITS["AU26"] * -inter_ocular(shape)
    assert mouth_opening(closed_by_jaw) == pytest.approx(0.02, abs=0.01)  # the undone jaw drop meets at the seam
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    units = {"AU1": -1.0, "AU26": -limit}  # raised brows and a jaw drop undone toward neutral
    warp = action_unit_warp(shape, alignment, units, image.shape[:2], close_mouth=1.0)
    brows_only = action_unit_warp(shape, alignment, {"AU1": -1.0}, image.shape[:2])
    # Squeezing the whole gap at once would fold the lips: the closing gives way, the brows still move in full.
    assert warp.kept == 1.0 and np.allclose(warp.shape[17:27], brows_only.shape[17:27], atol=0.01)
    assert 0.02 < mouth_opening(warp.shape) < 0.3 * gap
    # What still shows between the lips is covered by the lips.
    image[:] = (180, 140, 120)
    import cv2

    cv2.fillPoly(image, [np.round(shape[48:60]).astype(np.int32)], (200, 90, 90))
    cv2.fillPoly(image, [np.round(shape[60:68]).astype(np.int32)], (30, 20, 20))  # the dark inside
    out = close_lips(image, warp.apply(image), warp, shape)
    inside = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(warp.shape[60:68]).astype(np.int32)], 1)
    assert inside.sum() > 20 and out[inside > 0].mean() > 100, "the gap left between the lips is not dark"


def test_the_lips_of_a_tilted_head_close_as_an_upright_heads_do_and_nothing_outside_the_warp_changes():
    import cv2

    from diffusers_led.geometry.mouth_closing import close_lips, jaw_closing_limit

    def closed(image, shape, alignment):
        warp = action_unit_warp(shape, alignment, {"AU26": -jaw_closing_limit(shape)}, image.shape[:2], close_mouth=1)
        out = close_lips(image, warp.apply(image), warp, shape)
        outside = np.ones(image.shape[:2], np.uint8)
        cv2.fillPoly(outside, [np.round(warp.ring * 16).astype(np.int32)], 0, cv2.LINE_8, shift=4)
        assert outside.mean() > 0.3 and np.array_equal(out[outside > 0], image[outside > 0])
        return out

    image, shape = synthetic_face(320)
    shape = shape.copy()
    shape[[65, 66, 67, 55, 56, 57, 58, 59, 7, 8, 9]] += (0, 20)  # a laugh's open mouth
    image[:] = (180, 140, 120)
    cv2.fillPoly(image, [np.round(shape[48:60]).astype(np.int32)], (200, 90, 90))
    cv2.fillPoly(image, [np.round(shape[60:68]).astype(np.int32)], (30, 20, 20))
    upright = closed(image, shape, np.eye(2, 3))
    low, high = np.floor(shape[48:60].min(0) - 6).astype(int), np.ceil(shape[48:60].max(0) + 6).astype(int)
    mouth = np.s_[low[1] : high[1], low[0] : high[0]]
    for degrees in (25, -25):
        tilt = cv2.getRotationMatrix2D(shape[48:68].mean(0), degrees, 1.0)
        back = cv2.invertAffineTransform(tilt)
        tilted = cv2.warpAffine(image, tilt, (320, 320), flags=cv2.INTER_LINEAR)
        out = closed(tilted, shape @ tilt[:, :2].T + tilt[:, 2], back)
        upright_again = cv2.warpAffine(out, back, (320, 320), flags=cv2.INTER_LINEAR)
        # Closed per image column, the tilted lips come out swollen and twisted (1.8 levels off the upright
        # closing; rotating there and back alone costs 1.7); closed along the face's own axis, 0.8.
        assert np.abs(upright_again[mouth].astype(float) - upright[mouth]).mean() < 1.2


def test_a_shut_mouth_that_stays_shut_gets_no_dark_inside():
    image, shape = synthetic_face()
    import cv2

    shape = shape.copy()
    shape[[65, 66, 67]] += (0, 3)  # the seam between shut lips, as dlib reads it (0.05 inter-ocular distances)
    image[:] = (180, 140, 120)  # skin
    cv2.fillPoly(image, [np.round(shape[48:60]).astype(np.int32)], (200, 90, 90))  # lips
    cv2.fillPoly(image, [np.round(shape[60:68]).astype(np.int32)], (170, 75, 75))  # the seam
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    for units in ({"AU12": -1.0}, {"AU15": 1.0, "AU17": 0.5}, {"AU12": 1.4, "AU6": 1.0}):
        warp = action_unit_warp(shape, alignment, units, image.shape[:2])
        assert warp.mouth is None or not warp.mouth.opens, units
        out = warp.apply(image)
        assert out.min() >= 60, f"{units}: a dark inside appeared ({out.min()})"  # it would be ~34


def test_a_smile_lifts_the_lower_lid_of_an_open_eye_fully_but_never_folds_a_closed_eye():
    shape = neutral_shape() * 60
    units = landmark_displacements({"AU6": 1.3}) * 60  # happy's cheek raise
    assert np.array_equal(keep_lids_apart(shape, units), units), "an open eye takes the full movement"
    closed = shape.copy()
    closed[[40, 41]] = closed[[38, 37]] + (0, 1.5)  # lids 1.5 px apart: a closed or squinting eye
    moved = closed + keep_lids_apart(closed, units)
    for upper, lower in ((37, 41), (38, 40)):
        assert moved[lower, 1] - moved[upper, 1] >= 0.4 * 1.5 - 1e-9
    plain = closed + units
    assert plain[41, 1] < plain[37, 1], "without the limit the lower lid would fold over the upper one"
    assert np.array_equal(moved[42:48], plain[42:48]), "the open eye beside it is not held back"


def _squeezed_right_eye(shape: np.ndarray, gap: float = 1.0) -> np.ndarray:
    """``shape`` with its right eye (36-41) squeezed to a slit: lids ``gap`` px apart, as in a laugh."""
    shape = shape.copy()
    shape[[41, 40], 1] = shape[[37, 38], 1] + gap
    return shape


def test_only_an_eye_squeezed_to_a_slit_that_shows_no_white_counts_as_a_slit():
    _, shape = synthetic_face()
    squeezed = _squeezed_right_eye(shape)
    assert slit_eyes(shape) == ()  # the mean face's open eyes, white seen or not
    assert slit_eyes(squeezed) == ("right",)
    assert slit_eyes(squeezed, without_white=["left"]) == ()  # the slit shows white: not held shut


def test_a_slit_is_not_stretched_open_but_moves_with_its_lids():
    _, shape = synthetic_face()
    shape = _squeezed_right_eye(shape, gap=2.0)
    # Toward surprise from a laugh: the upper lid raised, the cheek raiser undone (the lower lid down).
    units = landmark_displacements({"AU5": 1.3, "AU6": -1.0}) * 60
    held = keep_slits_shut(shape, units, ("right",))
    for upper, lower in ((37, 41), (38, 40)):
        plain = (shape[lower, 1] + units[lower, 1]) - (shape[upper, 1] + units[upper, 1])
        assert plain > 2.0 * MAX_SLIT_STRETCH + 1.0, "the unheld warp would stretch the slit open"
        opening = (shape[lower, 1] + held[lower, 1]) - (shape[upper, 1] + held[upper, 1])
        assert opening == pytest.approx(2.0 * MAX_SLIT_STRETCH)
        # The pair keeps its mean movement: the eye still goes with its brow and cheek.
        assert held[[upper, lower], 1].mean() == pytest.approx(units[[upper, lower], 1].mean())
    assert np.array_equal(held[42:48], units[42:48]), "the other eye is not held"
    assert np.array_equal(keep_slits_shut(shape, units, ()), units), "no slit: today's warp"
    # Closing movements are keep_lids_apart's, not held here.
    tighten = landmark_displacements({"AU7": 1.0}) * 60
    assert np.array_equal(keep_slits_shut(shape, tighten, ("right",)), tighten)


def test_the_warp_keeps_a_slit_shut_and_opens_the_other_eye():
    image, shape = synthetic_face()
    shape = _squeezed_right_eye(shape, gap=2.0)
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    units = {"AU1": 1.2, "AU2": 1.2, "AU5": 1.3, "AU6": -1.0}
    held = action_unit_warp(shape, alignment, units, image.shape[:2], slits=("right",))
    plain = action_unit_warp(shape, alignment, units, image.shape[:2])

    def opening(moved: np.ndarray, pairs) -> float:
        return float(np.mean([moved[lower, 1] - moved[upper, 1] for upper, lower in pairs]))

    right, left = ((37, 41), (38, 40)), ((43, 47), (44, 46))
    assert opening(plain.shape, right) > 2.0 * opening(shape, right)
    assert opening(held.shape, right) <= MAX_SLIT_STRETCH * opening(shape, right) + 1e-6
    assert opening(held.shape, left) == pytest.approx(opening(plain.shape, left))
    assert held.shape[19, 1] < shape[19, 1] - 0.05 * inter_ocular(shape), "the brows still rise"
    assert held.shape[24, 1] == pytest.approx(plain.shape[24, 1]), "the open eye's brow rises in full"


def test_a_brow_rises_over_a_slit_no_further_than_its_lid_skin_stretches():
    _, shape = synthetic_face()
    shape = _squeezed_right_eye(shape, gap=2.0)
    iod = inter_ocular(shape)
    shape[17:27, 1] += 0.08 * iod  # a laugh's frown: the brows down, their lid skin squeezed (tune t1's David)
    units = landmark_displacements({"AU1": 1.2, "AU2": 1.2, "AU5": 1.3, "AU4": -0.8, "AU6": -1.0}) * iod
    held = keep_slits_shut(shape, units, ("right",))

    def stretch(moves: np.ndarray) -> float:
        brow, lid = list(range(17, 22)), [37, 38]
        before = shape[lid, 1].mean() - shape[brow, 1].mean()
        return (before + moves[lid, 1].mean() - moves[brow, 1].mean()) / before

    assert stretch(units) > MAX_LID_SKIN_STRETCH + 0.2, "the unheld brow stretches the lid skin"
    assert stretch(held) == pytest.approx(MAX_LID_SKIN_STRETCH)
    assert (held[17:22, 1] < 0).all(), "but still rises"
    assert np.array_equal(held[22:27], units[22:27]), "the open eye's brow is not held"


def test_a_brow_stretches_the_lid_skin_of_an_unopened_eye_no_more_than_a_slits():
    # A downcast eye that shows no white (tune biden toward surprised): no slit, so its lids part as the warp asks,
    # but its lid skin under the raised brow is held like a slit's (a stretched dark crease, a streaky band).
    image, shape = synthetic_face()
    shape = shape.copy()
    iod = inter_ocular(shape)
    shape[17:27, 1] += 0.08 * iod  # the brows low over heavy lids: their skin short
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    units = {"AU1": 1.2, "AU2": 1.2, "AU5": 1.3}
    held = action_unit_warp(shape, alignment, units, image.shape[:2], unopened=("right",))
    plain = action_unit_warp(shape, alignment, units, image.shape[:2])

    def stretch(moved: np.ndarray, brow: list[int], lid: list[int]) -> float:
        return (moved[lid, 1].mean() - moved[brow, 1].mean()) / (shape[lid, 1].mean() - shape[brow, 1].mean())

    right = (list(range(17, 22)), [37, 38])
    assert stretch(plain.shape, *right) > MAX_LID_SKIN_STRETCH + 0.1, "the unheld brow stretches the lid skin"
    assert stretch(held.shape, *right) == pytest.approx(MAX_LID_SKIN_STRETCH)
    assert np.allclose(held.shape[36:42], plain.shape[36:42]), "not a slit: the lids part as asked"
    assert np.allclose(held.shape[22:27], plain.shape[22:27]), "the other eye's brow rises in full"


def test_a_warp_never_folds_the_photo_where_landmarks_crowd():
    from diffusers_led.geometry.warp import MIN_AREA_RATIO, _backward_maps

    image, shape = synthetic_face()
    shape = shape.copy()
    shape[[4, 12]] = shape[[48, 54]] + [(2, 3), (-2, 3)]  # a jaw line drawn through the lip corners (a hidden chin)
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    units = {"AU12": 1.4, "AU6": 1.3}
    warp = action_unit_warp(shape, alignment, units, image.shape[:2])
    full = landmark_displacements(units) * inter_ocular(shape)
    folded = _backward_maps(shape, full, warp.ring, warp.roi, warp.weight)
    assert least_area_ratio(*folded, warp.weight, shape + full, warp.roi) < 0, "the full smile folds here"
    assert 0.2 < warp.kept < 1.0
    assert least_area_ratio(warp.map_x, warp.map_y, warp.weight, warp.shape, warp.roi) >= MIN_AREA_RATIO
    assert warp.shape[48] == pytest.approx(shape[48] + warp.kept * full[48], abs=1e-3)

    _, frontal = synthetic_face()  # the same smile on an uncrowded face is made in full
    assert action_unit_warp(frontal, alignment, units, image.shape[:2]).kept == 1.0


# ------------------------------------------------------------------------------------------------ pipeline


@pytest.fixture(scope="module")
def geometry_pipeline(one_torch_thread) -> LocalExpressionPipeline:
    return make_tiny_pipeline(default_mode="geometry+texture")


@pytest.mark.parametrize("mode", ["geometry", "geometry+texture"])
def test_all_eight_targets_edit_the_face_and_nothing_outside_the_edited_area(geometry_pipeline, example_image, mode):
    source = np.asarray(example_image)
    for target in EXPRESSIONS:
        result = geometry_pipeline(example_image, target=target, mode=mode, generator=torch.Generator().manual_seed(0))
        output = np.asarray(result.images[0])
        face = result.faces[0][0]
        assert face.warp is not None, target
        area = geometry_pipeline.region_processor.composite_mask(source.shape, result.faces[0]) > 0
        changed = np.any(output != source, axis=2)
        assert changed.any(), target
        assert not changed[~area].any(), f"{target}: pixels outside the warp window changed"


def test_lips_slid_shut_over_still_teeth_count_as_edited(geometry_pipeline, example_image):
    """An open mouth closed toward neutral or contempt: the lips slide over teeth the warp itself holds still (its
    window is 0 there), and those pixels are part of the edited area the pipeline reports (they were reported as
    untouched, and counted as changed outside the edit)."""
    opened = np.asarray(geometry_pipeline(example_image, target="surprised", mode="geometry").images[0])
    for target in ("neutral", "contempt"):
        result = geometry_pipeline(opened, target=target, mode="geometry")
        area = geometry_pipeline.region_processor.composite_mask(opened.shape, result.faces[0]) > 0
        changed = np.any(np.asarray(result.images[0]) != opened, axis=2)
        assert changed.sum() > 1000 and not changed[~area].any(), target


@pytest.mark.parametrize("mode", ["geometry", "geometry+texture"])
def test_a_face_cut_by_the_photo_edge_where_it_moves_is_left_alone_with_a_warning(
    geometry_pipeline, example_image, mode
):
    """The example cut below the upper lip: opening the mouth would move pixels the photo does not have (it drew a
    dark blob); an edit that moves only what the photo holds is made."""
    cut = np.asarray(example_image)[:160]
    with pytest.warns(UserWarning, match="cut by the edge of the photo"):
        result = geometry_pipeline(cut, target="surprised", mode=mode, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(np.asarray(result.images[0]), cut) and result.faces[0][0].warp is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sad = geometry_pipeline(cut, target="sad", mode=mode, generator=torch.Generator().manual_seed(0))
    assert sad.faces[0][0].warp is not None and not np.array_equal(np.asarray(sad.images[0]), cut)


def test_geometry_mode_makes_no_unet_call_and_texture_only_opens_mouths(geometry_pipeline, example_image, monkeypatch):
    calls = []
    forward = geometry_pipeline.unet.forward
    monkeypatch.setattr(geometry_pipeline.unet, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    geometry_pipeline(example_image, target="surprised", mode="geometry")
    assert calls == []
    geometry_pipeline(example_image, target="sad", mode="geometry+texture")  # lips do not part: no texture
    assert calls == []
    geometry_pipeline(example_image, target="surprised", mode="geometry+texture")
    assert calls, "a surprised mouth opens: the UNet re-generates its inside"


def test_action_units_alone_strength_zero_and_errors(geometry_pipeline, example_image):
    source = np.asarray(example_image)
    raised = np.asarray(geometry_pipeline(example_image, action_units="AU1=1,AU2=1", mode="geometry").images[0])
    assert not np.array_equal(raised, source)
    both = geometry_pipeline(example_image, target="happy", action_units={"AU2": 1.0}, mode="geometry").images[0]
    happy = geometry_pipeline(example_image, target="happy", mode="geometry").images[0]
    assert not np.array_equal(np.asarray(both), np.asarray(happy))
    unchanged = geometry_pipeline(example_image, target="happy", strength=0.0).images[0]
    assert np.array_equal(np.asarray(unchanged), source)
    with pytest.raises(ValueError, match="`target` expression, `action_units`"):
        geometry_pipeline(example_image)
    with pytest.raises(ValueError, match="unknown action unit"):
        geometry_pipeline(example_image, target="happy", action_units="AU77=1")
    with pytest.raises(ValueError, match="`mode` must be one of"):
        geometry_pipeline(example_image, target="happy", mode="magic")


def test_stronger_is_further_and_contempt_is_one_sided(geometry_pipeline, example_image):
    weak = geometry_pipeline(example_image, target="contempt", strength=0.3, mode="geometry")
    strong = geometry_pipeline(example_image, target="contempt", strength=1.0, mode="geometry")
    shift = [face.warp.shape - face.face.shape for face in (weak.faces[0][0], strong.faces[0][0])]
    assert np.abs(shift[1]).max() > np.abs(shift[0]).max() > 0
    # One-sided units (contempt's R12 + R14) move the subject's right lip corner (image left, point 48) only.
    one_sided = geometry_pipeline(example_image, action_units="R12=1,R14=1", mode="geometry").faces[0][0]
    moved = one_sided.warp.shape - one_sided.face.shape
    assert np.linalg.norm(moved[48]) > 3 and np.linalg.norm(moved[54]) < 0.01


def test_grayscale_and_rgba_come_back_in_their_form(geometry_pipeline, example_image):
    gray = example_image.convert("L")
    out = geometry_pipeline(gray, target="surprised", mode="geometry").images[0]
    assert out.mode == "L" and out.size == gray.size and not np.array_equal(np.asarray(out), np.asarray(gray))
    rgba = example_image.convert("RGBA")
    out = geometry_pipeline(rgba, target="sad", mode="geometry").images[0]
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])


def _opening_against_eyes(photo: PIL.Image.Image, edited: PIL.Image.Image, face) -> tuple[float, float]:
    """How far below the skin the opened mouth's darkest 2% lie, and its steepest edge (grey levels a px, over it
    and 3 px around it), each against the same of the eyes (boxes 2 px around their 68 points) in the photo."""
    import cv2

    from diffusers_led.faces.detection import face_shape

    rgb = np.asarray(photo.convert("RGB"))
    before, after = (np.asarray(im.convert("RGB")).astype(np.float64).mean(2) for im in (photo, edited))
    points = face_shape(rgb, face.face)
    eyes = np.zeros(before.shape, dtype=bool)
    for eye in (points[36:42], points[42:48]):
        (left, top), (right, bottom) = np.floor(eye.min(0)).astype(int) - 2, np.ceil(eye.max(0)).astype(int) + 3
        eyes[top:bottom, left:right] = True
    hull = np.zeros(before.shape, dtype=np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(np.round(points).astype(np.int32))], 1)
    skin = np.median(before[hull > 0])
    x0, y0, x1, y1 = face.warp.roi
    opening = np.zeros(before.shape, dtype=np.uint8)
    opening[y0:y1, x0:x1] = face.warp.mouth.inside > 0.5
    around = cv2.dilate(opening, np.ones((7, 7), np.uint8)) > 0
    depth = (1.0 - np.percentile(after[opening > 0], 2) / skin) / (1.0 - np.percentile(before[eyes], 2) / skin)
    steepness = np.hypot(*np.gradient(after))[around].max() / np.hypot(*np.gradient(before))[eyes].max()
    return float(depth), float(steepness)


@pytest.mark.parametrize(("form", "contrast", "blur"), [("RGB", 1.0, 3.0), ("RGBA", 1.0, 3.0), ("L", 0.5, 2.0)])
def test_an_opened_mouth_on_a_soft_faded_face_is_no_darker_or_sharper_than_the_face_itself(
    geometry_pipeline, example_image, form, contrast, blur
):
    """On a blurred or faded face a near-black, crisp opening was darker and sharper than anything else on it: 1.9-2.3
    times as far below the skin as the eyes' darkest detail, its edges 6-7 times as steep as theirs (read as pasted);
    it now keeps close to the eyes' own darkness and sharpness, on grey, RGB and RGBA photos alike."""
    import cv2

    source = np.asarray(example_image).astype(np.float64)
    mean = source.reshape(-1, 3).mean(0)
    soft = cv2.GaussianBlur(mean + contrast * (source - mean), (0, 0), blur)
    photo = PIL.Image.fromarray(np.clip(np.rint(soft), 0, 255).astype(np.uint8)).convert(form)
    result = geometry_pipeline(photo, target="surprised", mode="geometry")
    assert result.images[0].mode == form
    face = result.faces[0][0]
    assert face.warp is not None and face.warp.mouth is not None and face.warp.mouth.opens
    depth, steepness = _opening_against_eyes(photo, result.images[0], face)
    assert depth < 1.45, f"the opening is {depth:.2f} times as dark as the eyes' darkest detail"
    assert steepness < 1.6, f"the opening's edges are {steepness:.2f} times as steep as the eyes'"


def test_a_sharp_faces_opened_mouth_is_as_dark_and_sharp_as_before(geometry_pipeline, example_image):
    """On the sharp example the eyes hold darker detail and steeper edges than the opening: it is drawn as without
    reading the face's detail (the same pixels)."""
    from dataclasses import replace

    result = geometry_pipeline(example_image, target="surprised", mode="geometry")
    warp = result.faces[0][0].warp
    assert warp.mouth is not None and warp.mouth.opens and warp.mouth.face is not None
    image = np.asarray(example_image)
    unread = replace(warp, mouth=replace(warp.mouth, face=None))
    assert np.array_equal(warp.apply(image), unread.apply(image))


def _edge_width(column: np.ndarray, at: int, reach: int = 5) -> float:
    """How wide (px) the edge at row ``at`` of the grey ``column`` is: its contrast over its steepest step, within
    ``reach`` rows of it (a step blurred by a Gaussian of sigma s: 2.5 s, however dark either side)."""
    window = column[at - reach : at + reach + 1]
    return float((window.max() - window.min()) / np.abs(np.diff(window)).max())


def test_an_opened_mouth_on_a_blurred_face_with_sharp_eyes_is_as_soft_as_its_lips(geometry_pipeline, example_image):
    """The eyes' sharpness does not tell a soft mouth (a photo blurred unevenly, a sharp eye and a soft mouth): its
    opening was drawn with a crisp outline, like a hole cut in the photo (sample photos' soft faces). The opening's
    upper edge (the smile's upper teeth cut off over the dark) was under a third as wide as the upper lip's own
    border against the skin (1.6 against 5.3 px); it is now about as soft as the photo: the dark by the lips' border
    blur, the teeth's cut edge by the blur of the photo's teeth against the lips (3.0 px)."""
    import cv2

    from diffusers_led.faces.detection import face_shape

    source = np.asarray(example_image).astype(np.float64)
    points = face_shape(np.asarray(example_image), geometry_pipeline(example_image, target="neutral").faces[0][0].face)
    soft = cv2.GaussianBlur(source, (0, 0), 3.0)
    for eye in (points[36:42], points[42:48]):
        (left, top), (right, bottom) = np.floor(eye.min(0)).astype(int) - 6, np.ceil(eye.max(0)).astype(int) + 7
        soft[top:bottom, left:right] = source[top:bottom, left:right]
    photo = PIL.Image.fromarray(np.clip(np.rint(soft), 0, 255).astype(np.uint8))
    result = geometry_pipeline(photo, target="surprised", mode="geometry")
    face, edited = result.faces[0][0], np.asarray(result.images[0]).astype(np.float64)
    column = int(round(points[[51, 57], 0].mean()))
    x0, y0, _, _ = face.warp.roi
    drawn = np.nonzero((face.warp.mouth.inside * face.warp.mouth.depth)[:, column - x0] > 0.5)[0] + y0
    lips = _edge_width(soft[:, column - 1 : column + 2].mean((1, 2)), int(round(points[51, 1])))
    opening = _edge_width(edited[:, column - 1 : column + 2].mean((1, 2)), int(drawn.min()))
    assert opening >= 0.5 * lips, f"the opening's edge is {opening:.1f} px wide, the lips' border {lips:.1f} px"


def _small_face_opened(chroma_blur: float = 0.0, grey_blur: float = 0.0):
    """A small face (20 px between the eyes: its opening's edges are a pixel or two wide), red lips on flat skin and
    dark eyes (its darkest detail: the opening may be dark), its colour kept at half the resolution (4:2:0) and
    blurred by ``chroma_blur`` px, as a JPEG does, and all of it by ``grey_blur`` px; its jaw dropped (AU26 1.0):
    ``(photo, shape, edit, the outline of the opened dark (image px))``."""
    import cv2

    shape = neutral_shape() * 20 + [50 - 20 * neutral_shape()[:, 0].mean(), 20]
    image = np.full((100, 100, 3), (190, 150, 130), dtype=np.uint8)
    cv2.fillPoly(image, [np.round(shape[48:60]).astype(np.int32)], (200, 90, 90))
    for eye in (shape[36:42], shape[42:48]):
        cv2.fillPoly(image, [np.round(eye).astype(np.int32)], (30, 25, 25))
    if chroma_blur:
        ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        half = cv2.resize(ycrcb[:, :, 1:], (50, 50), interpolation=cv2.INTER_AREA)
        half = cv2.resize(half, (100, 100), interpolation=cv2.INTER_LINEAR)
        ycrcb[:, :, 1:] = cv2.GaussianBlur(half, (0, 0), chroma_blur)
        image = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
    if grey_blur:
        image = cv2.GaussianBlur(image, (0, 0), grey_blur)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {"AU26": 1.0}, image.shape[:2])
    assert warp.mouth is not None and warp.mouth.opens
    x0, y0, _, _ = warp.roi
    dark = ((warp.mouth.inside * warp.mouth.depth) > 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(dark, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return image, shape, warp.apply(image), max(contours, key=len)[:, 0, :].astype(np.float64) + [x0, y0]


def _red_chroma(image: np.ndarray) -> np.ndarray:
    """The red chroma (YCrCb's Cr less its offset) of an RGB image, as a JPEG stores it, doubled: border_blur counts
    steps of at least 10 levels, and lips differ from skin by 5-20 levels of it."""
    rgb = image.astype(np.float64)
    return 2.0 * 0.713 * (rgb[:, :, 0] - rgb @ [0.299, 0.587, 0.114])


def test_an_opened_mouth_on_a_jpeg_photo_has_its_colour_as_soft_as_the_photos():
    """A JPEG keeps its colour at half the resolution of its grey levels: its lips' colour bleeds into the skin over
    2 px where their grey levels step in one. The opened dark was drawn with colour edges as crisp as its grey ones
    (0.6 px against the lips' 1.3: a crisp pink rim round a black hole on 3x smaller JPEGs toward surprised); its
    colour now spreads as the photo's does, its grey levels as sharp as before."""
    from diffusers_led.geometry.face_detail import border_blur, border_reach

    photo, shape, out, opening = _small_face_opened(chroma_blur=1.0)
    reach = border_reach(shape)
    lips = border_blur(_red_chroma(photo), shape[48:60], reach)
    drawn = border_blur(_red_chroma(out), opening, reach)
    grey = border_blur(out.astype(np.float64).mean(2), opening, reach)
    assert lips > 1.2 and grey < lips  # the photo's colour soft, the opening's grey levels sharper
    assert drawn > 0.75 * lips, f"the opening's colour border is {drawn:.2f} px soft, the lips' {lips:.2f} px"


def test_an_opened_mouth_is_as_soft_as_lips_a_little_softer_than_the_pixels():
    """Lips blurred by under a pixel (a 3x smaller photo's: 0.7-1.0 px) were taken as sharp as the pixels and the
    opening drawn as it was; its own edges read sharper still (0.6 against 0.9 px: a crisp black ellipse on
    biden.jpg made 3x smaller). They are now softened by what they lack."""
    from diffusers_led.geometry.face_detail import border_blur, border_reach

    photo, shape, out, opening = _small_face_opened(grey_blur=0.8)
    grey = [image.astype(np.float64).mean(2) for image in (photo, out)]
    lips = border_blur(grey[0], shape[48:60], border_reach(shape))
    drawn = border_blur(grey[1], opening, border_reach(shape))
    assert 0.7 < lips <= 1.0
    assert drawn > 0.85 * lips, f"the opening's border is {drawn:.2f} px soft, the lips' {lips:.2f} px"


def test_two_faces_are_both_warped(geometry_pipeline, two_face_image):
    result = geometry_pipeline(two_face_image, target="surprised", mode="geometry")
    assert len(result.faces[0]) == 2 and all(face.warp is not None for face in result.faces[0])


def test_geometry_settings_round_trip_and_older_folders_load_as_diffusion(tmp_path, example_image):
    pipe = make_tiny_pipeline(default_mode="geometry", geometry_strength=0.6, texture_strength=0.3)
    pipe.save_pretrained(tmp_path / "model")
    loaded = LocalExpressionPipeline.from_pretrained(tmp_path / "model")
    assert (loaded.config.default_mode, loaded.config.geometry_strength, loaded.config.texture_strength) == (
        "geometry",
        0.6,
        0.3,
    )
    index = tmp_path / "model" / "model_index.json"
    import json

    config = json.loads(index.read_text())
    for key in ("default_mode", "geometry_strength", "texture_strength"):
        config.pop(key)
    index.write_text(json.dumps(config))
    older = LocalExpressionPipeline.from_pretrained(tmp_path / "model")
    assert older.config.default_mode == "diffusion"
    with pytest.raises(ValueError, match="default_mode"):
        make_tiny_pipeline(default_mode="warp")


def test_geometry_works_with_a_face_found_by_five_points_only(geometry_pipeline, example_image):
    """A YuNet-style detection has no 68 points: they are predicted on its box."""
    faces = geometry_pipeline.detect_faces([prepare_image(example_image)], ("eyes", "mouth"), "error")
    faces[0][0].face.shape = None
    out = geometry_pipeline(example_image, target="happy", mode="geometry", faces=faces)
    assert out.faces[0][0].face.shape is not None and out.faces[0][0].warp is not None
    assert isinstance(out.images[0], PIL.Image.Image)


def test_show_regions_draws_the_area_a_warp_may_change(geometry_pipeline, example_image):
    faces = geometry_pipeline(example_image, target="surprised", mode="geometry").faces[0]
    rgb = np.asarray(example_image)
    drawn = geometry_pipeline.region_processor.draw_regions(rgb, faces)
    ring = np.round(faces[0].warp.ring).astype(int)
    x, y = ring[len(ring) // 4]
    window = drawn[max(y - 3, 0) : y + 4, max(x - 3, 0) : x + 4].reshape(-1, 3).astype(int)
    yellow = (window[:, 0] > 200) & (window[:, 1] > 200) & (window[:, 2] < 100)
    assert yellow.any(), "the warp's ring is drawn in yellow"


def test_the_default_strength_of_a_target_is_a_lookup_without_warnings(geometry_pipeline):
    import warnings

    assert "contemptuous" not in geometry_pipeline.embeddings.trained_labels
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the geometry modes edit toward it: nothing to warn about
        assert geometry_pipeline.default_strength_for("contempt") == geometry_pipeline.default_strength_for("sad")
    with pytest.raises(ValueError, match="Known expressions"):
        geometry_pipeline.default_strength_for("bogus")


def test_the_pipeline_says_when_a_face_could_only_be_edited_in_part(geometry_pipeline, example_image, monkeypatch):
    import diffusers_led.geometry.warper as warper_module

    real_shape = warper_module.face_shape

    def crowded_shape(rgb, face):
        shape = real_shape(rgb, face).copy()
        shape[[4, 12]] = shape[[48, 54]] + [(2, 3), (-2, 3)]  # a jaw line through the lip corners (a hidden chin)
        return shape

    monkeypatch.setattr(warper_module, "face_shape", crowded_shape)
    with pytest.warns(UserWarning, match="fold the photo over itself"):
        result = geometry_pipeline(example_image, action_units="AU12=-1.4", mode="geometry")
    assert result.faces[0][0].warp.kept < 0.5


def _red_lips_smiled(units: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mean neutral face's shut lips painted on flat skin (the lower lip a red of its own) and warped by
    ``units``: ``(photo's lower lip mask, edit's lower lip mask, shape, moved shape)``."""
    import cv2

    _, shape = synthetic_face()
    image = np.full((240, 240, 3), (225, 180, 160), dtype=np.uint8)
    upper = np.vstack([shape[48:55], shape[60:65][::-1]])
    cv2.fillPoly(image, [np.round(upper).astype(np.int32)], (190, 80, 90))
    lower = shape[[48, 59, 58, 57, 56, 55, 54, 64, 65, 66, 67, 60]]
    cv2.fillPoly(image, [np.round(lower).astype(np.int32)], (200, 40, 40))
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), units, image.shape[:2])
    assert warp is not None and warp.kept == 1.0

    def lower_lip(picture: np.ndarray) -> np.ndarray:
        return np.abs(picture.astype(int) - (200, 40, 40)).max(-1) < 40

    return lower_lip(image), lower_lip(warp.apply(image)), shape, warp.shape


@pytest.mark.parametrize("target", ["happy", "contemptuous"])
def test_a_smile_on_shut_lips_does_not_fatten_the_lower_lip(target):
    """A smile stretches the lips: the lower lip thins and its lower edge follows the corners up; its red grows only
    with the mouth's width (CK+ smiles: x1.4 as wide, the lower lip x0.84 as tall in the middle). The corner puller's
    pattern (measured on laughs) raised the seam beside the corners twice as far as the lips around it, and the lower
    lip, between that wedge and its own round lower edge, grew into a thick crescent (here x1.74 of its red)."""
    before, after, shape, moved = _red_lips_smiled(EXPRESSION_PROTOTYPES[target])
    assert after.sum() <= 1.25 * before.sum(), f"the lower lip's red grew: {before.sum()} -> {after.sum()} px"
    # Its height in the column through the lips' middle, before and after.
    middle, height = (lip[:, int(round(points[57, 0]))].sum() for lip, points in ((before, shape), (after, moved)))
    assert height <= middle, f"the lower lip is taller in the middle: {middle} -> {height} px"
    # And the smile is still there: the corners up and out.
    assert moved[48, 1] < shape[48, 1] - 5 and moved[48, 0] < shape[48, 0] - 5


def test_a_jaw_drop_under_a_moustache_stretches_the_lips_apart_at_the_seam_not_the_hair():
    """dlib read Walter's moustache (breakingbad.jpg) as his upper lip and his seam as his lower lip's inner edge: a
    jaw drop stretched the moustache's lower half down over the opening (1.4-1.8 times its height beside it), whose
    dark shaded into the hair. Where the 68 points' upper inner lip lies above the mesh's upper lip and the edit parts
    the lips, the warp pulls the lips apart where the mesh has them; the hair above hangs as it did. An edit that
    closes the lips (the lower lip's rise toward sad) keeps the 68 points' gap."""
    image, shape = synthetic_face()
    seam = shape[[62, 66], 1].mean()
    mesh = _mesh_lips_apart(shape, 0.0, seam)  # shut lips, the upper one 8 px tall
    shape = shape.copy()
    shape[49:54, 1] -= 12.0  # dlib's upper lip in the moustache, above the mesh's
    shape[[61, 62, 63], 1] = seam - 14.0
    shape[[65, 66, 67], 1] = seam  # its lower inner lip on the seam
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {"AU26": 1.0}, image.shape[:2], mesh=mesh)
    x0, y0 = warp.roi[:2]
    column = round(shape[62, 0]) - x0
    hair = np.arange(round(seam - 13), round(seam - 8)) - y0  # the moustache just above the upper lip
    stretch = 1.0 / np.gradient(warp.map_y[:, column].astype(np.float64))[hair]
    assert warp.kept == 1.0
    assert stretch.max() < 1.2  # old code: 1.5-2.3
    # Toward a target that closes the lips, the 68 points' own gap (in the hair) is what the warp closes.
    from diffusers_led.geometry.warp import lips_out_of_moustache

    rise = np.zeros_like(shape)
    rise[[65, 66, 67], 1] = -3.0
    assert np.array_equal(lips_out_of_moustache(shape, rise, mesh), shape)
    assert not np.array_equal(lips_out_of_moustache(shape, -rise, mesh), shape)


def test_an_open_smiles_thinned_lower_lip_keeps_its_curve():
    """An open smile's lower lip, thinned as the smile stretches it, follows its inner edge as a curve: read linearly
    between the inner lip points, its middle point sank into a V under the lips (5.4 px below its neighbours' mean
    here, where the photo's lip curves by 2.5)."""
    _, shape = synthetic_face()
    shape = shape.astype(np.float64)
    iod = inter_ocular(shape)
    # The lips parted in a curve, lowest in the middle, the lower lip's outer edge with its inner one.
    for point, drop in {67: 0.10, 66: 0.16, 65: 0.10, 59: 0.10, 58: 0.13, 57: 0.16, 56: 0.13, 55: 0.10}.items():
        shape[point, 1] += drop * iod
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), EXPRESSION_PROTOTYPES["happy"], (240, 240))
    assert warp is not None and warp.kept == 1.0

    def sag(points: np.ndarray) -> float:
        return float(points[57, 1] - (points[56, 1] + points[58, 1]) / 2)

    assert sag(warp.shape) <= 1.25 * sag(shape), (sag(shape), sag(warp.shape))
