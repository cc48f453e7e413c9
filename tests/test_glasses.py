"""Glasses stay put (geometry/glasses.py): a frame drawn on the example face stays where it is when the brows and lids
move behind it, and the bare face shows no frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import make_tiny_pipeline

from diffusers_led.faces.loader import load_face_detector

FRAME = (40, 32, 30)
#: The rims' half-width and half-height (inter-ocular distances) and their drop below the eyes' centres.
RIM_HALF_WIDTH, RIM_HALF_HEIGHT, RIM_DROP = 0.42, 0.3, 0.04


def _draw_glasses(rgb: np.ndarray, mesh: np.ndarray, thickness: int = 2) -> np.ndarray:
    """``HxW`` bool: a frame of glasses (two rounded rims, a bridge and the temples, ``thickness`` px dark lines)
    drawn in place on ``rgb`` around the eyes of the face with Face Mesh points ``mesh``."""
    right, left = mesh[[33, 133], :2].mean(0), mesh[[263, 362], :2].mean(0)
    distance = float(np.linalg.norm(left - right))
    mask = np.zeros(rgb.shape[:2], dtype=np.uint8)
    axes = (round(RIM_HALF_WIDTH * distance * 16), round(RIM_HALF_HEIGHT * distance * 16))
    inner = []
    for centre, side in ((right, 1), (left, -1)):
        centre = np.round((centre + (0, RIM_DROP * distance)) * 16).astype(int)
        cv2.ellipse(mask, tuple(int(v) for v in centre), axes, 0, 0, 360, 1, thickness, cv2.LINE_8, shift=4)
        inner.append(centre / 16 + (side * RIM_HALF_WIDTH * distance, 0))
        outer = centre / 16 - (side * RIM_HALF_WIDTH * distance, 0)
        temple = outer - (side * 0.35 * distance, 0.05 * distance)
        cv2.line(mask, tuple(np.round(outer).astype(int)), tuple(np.round(temple).astype(int)), 1, thickness)
    bridge = [tuple(np.round(point - (0, 0.08 * distance)).astype(int)) for point in inner]
    cv2.line(mask, bridge[0], bridge[1], 1, thickness)
    rgb[mask > 0] = FRAME
    return mask > 0


@pytest.fixture(scope="module")
def framed(example_image):
    """The example photo, a copy with glasses drawn on it, and the drawn frame's mask."""
    rgb = np.asarray(example_image).copy()
    face = load_face_detector("mesh").detect(rgb)[0]
    glasses = rgb.copy()
    mask = _draw_glasses(glasses, np.asarray(face.mesh, dtype=np.float64))
    return rgb, glasses, mask


def _frame_pixels(image: np.ndarray) -> np.ndarray:
    """Pixels of the frame's colour (within a few grey levels)."""
    return np.abs(image.astype(int) - FRAME).max(axis=2) <= 12


def test_frame_stays_put_when_the_brows_rise(framed):
    """Toward surprised the brows and upper lids rise: the drawn frame's pixels stay within a pixel of their place
    (before, the rims went up with the brows by several px), and no copy of them is left elsewhere."""
    _, glasses, mask = framed
    pipe = make_tiny_pipeline(face_detector="mesh", default_mode="geometry")
    out = np.asarray(pipe(glasses, target="surprised", mode="geometry", strength=1.0).images[0])
    assert not np.array_equal(out, glasses)  # the face was edited
    shown = _frame_pixels(out)
    # How far each drawn frame pixel is from the nearest frame-coloured pixel of the edit (before: 7.8 px at the
    # 99th percentile, the rims' tops raised with the brows), and frame-coloured pixels beside the drawn frame.
    moved = cv2.distanceTransform((~shown).astype(np.uint8), cv2.DIST_L2, 5)[mask]
    assert np.percentile(moved, 99) <= 1.0
    beside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    assert (shown & (beside > 1.5) & (beside < 15)).sum() <= 0.01 * mask.sum()  # no ghost of a moved frame


def test_bare_face_shows_no_frame(framed):
    """The same photo without the drawn frame has none; with it, the frame found covers what was drawn."""
    from diffusers_led.geometry.glasses import find_glasses

    rgb, glasses, mask = framed
    face = load_face_detector("mesh").detect(rgb)[0]
    assert find_glasses(rgb, face.mesh) is None
    found = find_glasses(glasses, load_face_detector("mesh").detect(glasses)[0].mesh)
    assert found is not None
    pasted = cv2.dilate(found.mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # a pixel wider, as kept
    assert pasted[mask].mean() > 0.85  # 0.91: the temples' far ends lie beyond where the warp moves anything
