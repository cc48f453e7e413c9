"""Property tests (hypothesis) of the face geometry in regions.py: alignment, region crops and compositing.

No face detector runs here: faces are given as landmarks, either a perturbed similarity image of the canonical
template (a plausible face anywhere, at any size and angle, also off the image) or arbitrary points.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from diffusers_led.faces.detection import DetectedFace, FaceDetector, plausible_landmarks
from diffusers_led.faces.regions import FaceRegionProcessor, _quad_roi, _warp_to_crop
from diffusers_led.geometry.transforms import (
    ARCFACE_TEMPLATE_112,
    alignment_matrix,
    canonical_template,
    transform_points,
)

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


class _NoDetection(FaceDetector):
    """Faces are always given here: a detector call would be a bug in the test."""

    def _detect(self, image, scaled, scale):
        raise AssertionError("no detection expected")


@pytest.fixture(scope="module")
def processor() -> FaceRegionProcessor:
    return FaceRegionProcessor(detector=_NoDetection(), feather=(0.1, 0.25))


@st.composite
def face_landmarks(
    draw, width: int = 64, height: int = 64, noise: float = 0.08, max_scale: float = 60.0
) -> np.ndarray:
    """The 112 px template moved by a random similarity (scaled by 0.05..``max_scale``, i.e. 2 to 2000 px between
    the eyes, any angle, centred anywhere within a few image sizes) plus noise of up to ``noise`` eye distances."""
    scale = draw(st.floats(0.05, max_scale))
    angle = draw(st.floats(-math.pi, math.pi))
    cx = draw(st.floats(-2.0 * width, 3.0 * width))
    cy = draw(st.floats(-2.0 * height, 3.0 * height))
    jitter = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=10, max_size=10))).reshape(5, 2)
    template = ARCFACE_TEMPLATE_112 - ARCFACE_TEMPLATE_112.mean(0)
    eye_distance = np.linalg.norm(ARCFACE_TEMPLATE_112[1] - ARCFACE_TEMPLATE_112[0])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = (template + noise * eye_distance * jitter) @ rotation.T * scale + [cx, cy]
    return points.astype(np.float32)


arbitrary_landmarks = st.lists(
    st.floats(-1e5, 1e5, allow_nan=False, allow_infinity=False), min_size=10, max_size=10
).map(lambda values: np.array(values, dtype=np.float32).reshape(5, 2))


@st.composite
def small_images(draw, min_side: int = 1, max_side: int = 40, gray: bool | None = None) -> np.ndarray:
    height = draw(st.integers(min_side, max_side))
    width = draw(st.integers(min_side, max_side))
    is_gray = draw(st.booleans()) if gray is None else gray
    seed = draw(st.integers(0, 2**32 - 1))
    shape = (height, width) if is_gray else (height, width, 3)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _face(landmarks: np.ndarray) -> DetectedFace:
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    return DetectedFace(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)), landmarks=landmarks, score=1.0)


# ---------------------------------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(landmarks=face_landmarks())
def test_align_then_inverse_align_returns_the_same_points(landmarks):
    matrix = alignment_matrix(landmarks)
    inverse = cv2.invertAffineTransform(matrix)
    there = transform_points(matrix, landmarks)
    back = transform_points(inverse, there)
    size = np.ptp(landmarks, axis=0).max() + 1.0
    np.testing.assert_allclose(back, landmarks, atol=1e-6 * size + 1e-4)
    # The canonical side is the template up to the noise (at most 0.08 eye distances per coordinate axis).
    eye_distance = np.linalg.norm(canonical_template()[1] - canonical_template()[0])
    assert np.abs(there - canonical_template()).max() < 0.25 * eye_distance
    assert plausible_landmarks(landmarks)


@PROPERTY_SETTINGS
@given(landmarks=arbitrary_landmarks)
def test_inverse_alignment_round_trips_any_non_degenerate_points(landmarks):
    spread = np.ptp(landmarks.astype(np.float64), axis=0).max()
    assume(spread > 1e-2)
    matrix = alignment_matrix(landmarks)
    back = transform_points(cv2.invertAffineTransform(matrix), transform_points(matrix, landmarks))
    np.testing.assert_allclose(back, landmarks, atol=1e-6 * np.abs(landmarks).max() + 1e-3)


# ---------------------------------------------------------------------------------------------------------------------
# Region boxes and crops
# ---------------------------------------------------------------------------------------------------------------------


def _check_crops(processor, image, faces):
    for face in faces:
        assert set(face.crops) == {"eyes", "mouth"}
        for region, crop in face.crops.items():
            assert crop.dtype == np.uint8 and crop.shape == (64, 64) + image.shape[2:]
            assert face.masks[region].shape == (64, 64)
            # The crop footprint's ROI is inside the image and never empty, wherever the face is.
            to_image = cv2.invertAffineTransform(face.crop_matrices[region])
            x0, y0, x1, y1 = _quad_roi(to_image, 64, 64, image.shape[:2], margin=2)
            assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]


@PROPERTY_SETTINGS
@given(image=small_images(), landmarks=face_landmarks(width=40, height=40))
def test_crops_never_fail_for_a_face_anywhere(processor, image, landmarks):
    """Faces of any size and angle, inside, across the border or wholly outside the image."""
    faces = processor.extract(image, faces=[_face(landmarks)])
    _check_crops(processor, image, faces)


@PROPERTY_SETTINGS
@given(image=small_images(max_side=24), landmarks=arbitrary_landmarks)
def test_crops_of_arbitrary_landmarks_succeed_or_raise_a_clear_value_error(processor, image, landmarks):
    try:
        faces = processor.extract(image, faces=[_face(landmarks)])
    except ValueError as error:
        assert "degenerate" in str(error) or "identical" in str(error), error
        event("refused: degenerate landmarks")
        return
    event("cropped")
    _check_crops(processor, image, faces)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_landmarks_are_refused_clearly(processor, bad):
    landmarks = canonical_template(40).astype(np.float32)
    landmarks[2, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        processor.extract(np.zeros((40, 40, 3), np.uint8), faces=[_face(landmarks)])


@settings(PROPERTY_SETTINGS, max_examples=30)
@given(image=small_images(min_side=4, max_side=32, gray=False), landmarks=face_landmarks(32, 32, max_scale=2.0))
def test_crops_equal_crops_of_the_explicitly_padded_image(processor, image, landmarks):
    """Sampling past the border is sampling the image padded with its edge pixels: the region box lies inside the
    (virtually) padded image, so a crop never depends on where the real border is."""
    face = processor.extract(image, faces=[_face(landmarks)])[0]
    for region, to_crop in face.crop_matrices.items():
        corners = transform_points(cv2.invertAffineTransform(to_crop), [[-1, -1], [65, -1], [-1, 65], [65, 65]])
        pad = int(np.ceil(np.abs(corners).max())) + 4
        assume(pad < 600)  # keeps the explicit padding small
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        shifted = to_crop.copy()
        shifted[:, 2] -= shifted[:, :2] @ np.array([pad, pad], dtype=np.float64)
        expected = _warp_to_crop(padded, shifted, 64, 64)
        difference = np.abs(expected.astype(np.int16) - face.crops[region].astype(np.int16))
        # Identical up to OpenCV's fixed-point (1/32 px) rounding of sample positions.
        assert difference.max() <= 2 and difference.mean() < 0.05, (region, difference.max(), difference.mean())


# ---------------------------------------------------------------------------------------------------------------------
# Compositing
# ---------------------------------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    image=small_images(min_side=8, max_side=48),
    landmarks=st.lists(face_landmarks(width=48, height=48), min_size=1, max_size=3),
    as_float=st.booleans(),
)
def test_composite_with_a_zero_edit_returns_the_input_exactly(processor, image, landmarks, as_float):
    faces = processor.extract(image, faces=[_face(points) for points in landmarks])
    unedited = [
        {region: crop.astype(np.float32) if as_float else crop for region, crop in face.crops.items()}
        for face in faces
    ]
    out = processor.composite(image, faces, unedited, residual=True)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out, image)
    # Editing nothing (no regions) is also the identity, in both modes.
    for residual in (True, False):
        assert np.array_equal(processor.composite(image, faces, [{} for _ in faces], residual=residual), image)


@PROPERTY_SETTINGS
@given(
    image=small_images(min_side=8, max_side=48),
    landmarks=face_landmarks(width=48, height=48),
    seed=st.integers(0, 2**32 - 1),
    residual=st.booleans(),
)
def test_composite_changes_only_pixels_under_the_masks(processor, image, landmarks, seed, residual):
    faces = processor.extract(image, faces=[_face(landmarks)])
    rng = np.random.default_rng(seed)
    edits = [{region: rng.uniform(-20, 275, size=crop.shape) for region, crop in face.crops.items()} for face in faces]
    out = processor.composite(image, faces, edits, residual=residual)
    weight = processor.composite_mask(image.shape, faces)
    untouched = weight == 0
    assert np.array_equal(out[untouched], image[untouched])
