"""The edit (output minus input) of a clip filtered in time along the motion: steadier under a camera's noise, fresh
wherever the picture itself changed, kept in the warp's window, and following a change of the edit within frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import make_tiny_pipeline

from diffusers_led.faces.detection import face_shape
from diffusers_led.geometry.transforms import alignment_matrix
from diffusers_led.geometry.warp import action_unit_warp
from diffusers_led.video import FlickerMeter
from diffusers_led.video.edit_filter import EditFilter


@pytest.fixture(scope="module")
def face(example_image):
    """The astronaut's head and shoulders at 320 px, and her 68 landmarks."""
    photo = cv2.resize(np.asarray(example_image)[:360, 60:420], (320, 320), interpolation=cv2.INTER_AREA)
    faces = make_tiny_pipeline(default_mode="geometry").region_processor.detector.detect(photo)
    return photo, face_shape(photo, faces[0]).astype(np.float64)


def plan(shape: np.ndarray, image_hw, smile: float = 1.0):
    return action_unit_warp(shape, alignment_matrix(shape[[36, 45, 30, 48, 54]]), {"AU12": smile}, image_hw)


def noisy(photo: np.ndarray, seed: int, sigma: float = 4.0) -> np.ndarray:
    """``photo`` with a camera's fresh sensor noise."""
    noise = np.random.default_rng(seed).normal(0.0, sigma, photo.shape)
    return np.clip(photo + noise, 0, 255).astype(np.uint8)


def still(warp) -> np.ndarray:
    """No motion over ``warp``'s ROI."""
    x0, y0, x1, y1 = warp.roi
    return np.zeros((y1 - y0, x1 - x0, 2), np.float32)


def test_a_still_face_under_camera_noise_keeps_a_steadier_edit_within_its_window(face):
    photo, shape = face
    warp = plan(shape, photo.shape[:2])
    outside = warp.mask(photo.shape[:2]) == 0
    edit_filter, filtered, independent = EditFilter(), FlickerMeter(), FlickerMeter()
    for k in range(10):
        source = noisy(photo, k)
        edited = warp.apply(source)
        out = edit_filter(source, edited, warp, still(warp), k / 25)
        assert (out[outside] == source[outside]).all()  # bit for bit outside the warp's window
        filtered.update(source, out)
        independent.update(source, edited)
    assert filtered.value < 0.75 * independent.value


def test_where_the_picture_changed_the_fresh_edit_is_taken_alone(face):
    photo, shape = face
    warp = plan(shape, photo.shape[:2])
    edit_filter = EditFilter()
    edit_filter(photo, warp.apply(photo), warp, None, 0.0)
    # The mouth opens (its inside goes dark) while the rest of the face holds still.
    mouth = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(mouth, [np.round(shape[48:60]).astype(np.int32)], 1)
    opened = photo.copy()
    opened[mouth > 0] = 20
    edited = warp.apply(opened)
    out = edit_filter(opened, edited, warp, still(warp), 0.04)
    inner = cv2.erode(mouth, np.ones((5, 5), np.uint8)) > 0  # away from the gate's 3x3 blur
    assert inner.sum() > 50
    assert (out[inner] == edited[inner]).all()  # no earlier lips laid over the opened mouth
    unchanged = (warp.mask(photo.shape[:2]) > 0) & (cv2.dilate(mouth, np.ones((9, 9), np.uint8)) == 0)
    assert (out[unchanged] != edited[unchanged]).any()  # elsewhere the earlier edit is carried


def test_a_change_of_the_edit_arrives_within_a_few_frames(face):
    """A keyframe's step of the warp: the output's edit is within a tenth of the new one after 8 frames at 25/s."""
    photo, shape = face
    weak, strong = plan(shape, photo.shape[:2], 0.3), plan(shape, photo.shape[:2], 1.0)
    edit_filter = EditFilter()
    for k in range(5):
        edit_filter(photo, weak.apply(photo), weak, still(weak), k / 25)
    target = strong.apply(photo).astype(np.float32) - photo
    step = np.abs(target - (weak.apply(photo).astype(np.float32) - photo)).sum()
    left = []
    for k in range(5, 13):
        out = edit_filter(photo, strong.apply(photo), strong, still(strong), k / 25)
        left.append(np.abs(out.astype(np.float32) - photo - target).sum() / step)
    assert left[0] > 0.3  # filtered, not jumped
    assert left[-1] < 0.1


def test_where_the_edit_itself_moved_the_fresh_edit_is_taken_alone(face):
    """A still picture whose edit moves (a lip's edge the warp now draws elsewhere) takes the new edit there, not a
    fading double of the old one; a small change of the edit (noise) is still filtered."""
    photo, shape = face
    warp = plan(shape, photo.shape[:2])
    window = warp.mask(photo.shape[:2]) > 0
    edit_filter = EditFilter()
    edit_filter(photo, photo, warp, None, 0.0)
    edited = photo.astype(np.int16)
    edited[window] += 3
    moved_edge = np.zeros(photo.shape[:2], bool)
    x, y = np.round(shape[48:60].mean(0)).astype(int)  # the mouth
    moved_edge[y - 6 : y + 6, x - 6 : x + 6] = True
    assert window[moved_edge].all()
    edited[moved_edge] -= 60
    edited = np.clip(edited, 0, 255).astype(np.uint8)
    out = edit_filter(photo, edited, warp, still(warp), 0.04)
    inner = cv2.erode(moved_edge.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert (out[inner] == edited[inner]).all()
    small = window & ~cv2.dilate(moved_edge.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.abs(out[small].astype(int) - photo[small]).mean() < 2.0  # 3 grey levels, filtered toward 0
