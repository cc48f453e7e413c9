"""Tests for diffusers_led.faces (detection, regions) and geometry.transforms: alignment, crops, masks, compositing."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from diffusers_led.faces import detection as R
from diffusers_led.faces.detection import (
    DetectedFace,
    DlibFaceDetector,
    YuNetFaceDetector,
    load_face_detector,
    plausible_landmarks,
)
from diffusers_led.faces.regions import (
    CROP_SIZE,
    REGION_MARGINS,
    TEMPLATE_REGION_MARGINS,
    FaceRegionProcessor,
    blend_mask,
    region_box,
)
from diffusers_led.geometry.transforms import (
    CANONICAL_SIZE,
    alignment_matrix,
    canonical_template,
    similarity_transform,
    transform_points,
)

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"

# Hand-marked on examples/astronaut.png (512x512) from 11-13x nearest-neighbour zooms with a
# pixel grid, in LANDMARK_NAMES order: eye centres (midpoint of the eye corners / lids; the
# image-left eye first), nose tip (the highlight at the tip), lip corners (end of the dark
# commissure line).
ASTRONAUT_LANDMARKS = np.array([[202.5, 101.0], [246.5, 102.5], [224.0, 127.0], [203.0, 140.0], [243.5, 141.5]])


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    return np.array([[c, -s, tx], [s, c, ty]])


def _face_from_landmarks(landmarks: np.ndarray) -> DetectedFace:
    pts = np.asarray(landmarks, dtype=np.float32)
    x0, y0 = pts.min(0) - 20
    x1, y1 = pts.max(0) + 20
    return DetectedFace(box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)), landmarks=pts, score=1.0)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(ASTRONAUT)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def processor() -> FaceRegionProcessor:
    return FaceRegionProcessor()


@pytest.fixture(scope="module")
def astronaut_faces(astronaut, processor) -> list[DetectedFace]:
    return processor.detect(astronaut)


@pytest.fixture(scope="module")
def astronaut_regions(astronaut, processor):
    # Hand-marked landmarks: compositing tests stay independent of the detector.
    return processor.extract(astronaut, [_face_from_landmarks(ASTRONAUT_LANDMARKS)])


# ------------------------------------------------------------------------------------ geometry


def test_region_box_eq_1_to_4_by_hand():
    # Eyes at (100, 120) and (220, 124), mx = my = 50:
    # x = 100 - 50 = 50, y = 120 - 50 = 70, w = (220 + 50) - (100 - 50) = 220, h = 100.
    assert region_box((100, 120), (220, 124), 50, 50) == (50.0, 70.0, 220.0, 100.0)
    # Mouth corners at (120, 230) and (200, 232), mx = 10, my = 40:
    # x = 110, y = 190, w = (200 + 10) - 110 = 100, h = 80.
    assert region_box((120, 230), (200, 232), 10, 40) == (110.0, 190.0, 100.0, 80.0)
    with pytest.raises(ValueError):
        region_box((200, 0), (100, 0), 10, 40)


def test_canonical_template_is_scaled_arcface_with_level_eyes():
    t = canonical_template(CANONICAL_SIZE)
    np.testing.assert_allclose(t[0], [38.2946 * 320 / 112, 51.6963 * 320 / 112])
    assert abs(t[0, 1] - t[1, 1]) < 1.0 and t[0, 0] < t[1, 0]  # level, image-left eye first
    expected_eyes = region_box(t[0], t[1], 50, 50)
    assert expected_eyes[2] == pytest.approx((73.5318 - 38.2946) * 320 / 112 + 100)


def test_template_anchored_boxes_let_a_smile_widen_the_mouth_in_the_crop():
    template = canonical_template()
    smile = template.copy()
    smile[3] += (-15, -6)  # both corners 15 px out and 6 px up: a smile
    smile[4] += (15, -6)
    to_image = _similarity(angle_deg=12.0, scale=0.8, tx=60.0, ty=20.0)
    faces = [_face_from_landmarks(transform_points(to_image, points)) for points in (template, smile)]
    image = np.zeros((400, 400), np.uint8)

    def corner_spread(processor: FaceRegionProcessor, face: DetectedFace) -> float:
        (regions,) = processor.extract(image, [face])
        corners = transform_points(regions.crop_matrices["mouth"], face.landmarks[3:5])
        return float(corners[1, 0] - corners[0, 0])

    paper, fixed = FaceRegionProcessor(), FaceRegionProcessor(region_anchor="template")
    assert paper.margins == REGION_MARGINS and fixed.margins == TEMPLATE_REGION_MARGINS
    for face in faces:  # the same box on the aligned face, whatever the landmarks did
        (regions,) = fixed.extract(image, [face])
        expected = region_box(template[3], template[4], *TEMPLATE_REGION_MARGINS["mouth"])
        np.testing.assert_allclose(regions.boxes["mouth"], expected)
    # The paper's box stretches with the corners, so the crop hardly shows the smile's width (64 * d / (d + 20));
    # the template box shows it.
    paper_gain = corner_spread(paper, faces[1]) - corner_spread(paper, faces[0])
    fixed_gain = corner_spread(fixed, faces[1]) - corner_spread(fixed, faces[0])
    assert fixed_gain > 3 * paper_gain > 0, (fixed_gain, paper_gain)
    assert fixed.geometry == {
        "region_anchor": "template",
        "region_margins": {"eyes": [50.0, 50.0], "mouth": list(TEMPLATE_REGION_MARGINS["mouth"])},
    }
    with pytest.raises(ValueError, match="unknown region_anchor 'corners'; known: landmarks, template"):
        FaceRegionProcessor(region_anchor="corners")


def test_alignment_maps_landmarks_onto_template_and_inverts():
    template = canonical_template()
    to_image = _similarity(angle_deg=-27.0, scale=0.37, tx=812.5, ty=-40.25)
    image_pts = transform_points(to_image, template)
    matrix = alignment_matrix(image_pts)
    np.testing.assert_allclose(transform_points(matrix, image_pts), template, atol=1e-9)
    np.testing.assert_allclose(matrix, cv2.invertAffineTransform(to_image), atol=1e-9)
    # Round trip of arbitrary points through the inverse alignment.
    pts = np.random.default_rng(0).uniform(-100, 500, size=(50, 2))
    back = transform_points(cv2.invertAffineTransform(matrix), transform_points(matrix, pts))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_similarity_is_least_squares_and_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(5, 2))
    noisy = transform_points(_similarity(40, 2.0, 5, 7), src) + rng.normal(0, 0.5, size=(5, 2))
    m = similarity_transform(src, noisy)
    assert np.linalg.det(m[:, :2]) > 0
    # Agrees with OpenCV's iterative estimate (LMEDS + Levenberg-Marquardt) to well below a pixel.
    cv_m, _ = cv2.estimateAffinePartial2D(src, noisy, method=cv2.LMEDS)
    np.testing.assert_allclose(transform_points(m, src), transform_points(cv_m, src), atol=1.0)
    assert plausible_landmarks(canonical_template())
    mirrored = canonical_template() * [-1, 1]
    assert not plausible_landmarks(mirrored)  # eyes/mouth corners swapped: no rotation fixes it
    assert not plausible_landmarks(np.zeros((5, 2)))


# --------------------------------------------------------------------------------- crops/masks


def test_crops_shape_dtype_and_sampling_convention():
    # A linear ramp image: R = x / 4, G = y / 4, so every crop pixel tells where it was sampled.
    ys, xs = np.mgrid[0:900, 0:1000]
    image = np.stack([xs / 4, ys / 4, np.zeros_like(xs)], -1).round().astype(np.uint8)
    landmarks = transform_points(_similarity(15, 0.9, 300, 200), canonical_template())
    (regions,) = FaceRegionProcessor().extract(image, [_face_from_landmarks(landmarks)])
    for name in ("eyes", "mouth"):
        crop = regions.crops[name]
        assert crop.shape == (CROP_SIZE, CROP_SIZE, 3) and crop.dtype == np.uint8
        assert regions.masks[name].shape == (CROP_SIZE, CROP_SIZE)
        assert regions.masks[name].dtype == np.float32
        to_image = cv2.invertAffineTransform(regions.crop_matrices[name])
        grid = np.stack(np.meshgrid(np.arange(CROP_SIZE), np.arange(CROP_SIZE)), -1).reshape(-1, 2)
        expected = transform_points(to_image, grid) / 4
        got = crop.reshape(-1, 3)[:, :2].astype(np.float64)
        assert np.abs(got - expected).max() < 1.0
    # The crop matrix is image -> canonical -> Eq. 1-4 box -> crop: box corners land on the
    # crop's outer pixel edges.
    x, y, w, h = regions.boxes["mouth"]
    corners = transform_points(np.linalg.inv(np.vstack([regions.matrix, [0, 0, 1]]))[:2], [[x, y], [x + w, y + h]])
    np.testing.assert_allclose(
        transform_points(regions.crop_matrices["mouth"], corners), [[-0.5, -0.5], [63.5, 63.5]], atol=1e-6
    )


def test_crops_are_anti_aliased():
    # 1-px stripes under a large face: point sampling would alias them into bold stripes.
    stripes = np.zeros((1200, 1200), np.uint8)
    stripes[:, ::2] = 255
    landmarks = transform_points(_similarity(0, 2.5, 100, 100), canonical_template())
    (regions,) = FaceRegionProcessor().extract(stripes, [_face_from_landmarks(landmarks)])
    crop = regions.crops["eyes"]
    assert crop.shape == (CROP_SIZE, CROP_SIZE)  # gray in, gray out
    assert abs(float(crop.mean()) - 127.5) < 3 and crop.std() < 10


def test_blend_mask():
    mask = blend_mask(64, 0.25)
    assert mask.dtype == np.float32 and mask.shape == (64, 64)
    assert mask[0].max() == 0 and mask[-1].max() == 0 and mask[:, 0].max() == 0 and mask[:, -1].max() == 0
    assert mask[20:44, 20:44].min() == 1.0
    np.testing.assert_array_equal(mask, mask[::-1, ::-1])
    assert np.all(np.diff(mask[32, :32]) >= 0)  # monotone ramp
    pair = blend_mask(64, (0.1, 0.3))
    assert pair[32, 8] == 1.0 and pair[8, 32] < 1.0
    assert blend_mask(64, 0.0).min() == 1.0
    mask[:] = 0  # returned masks are private copies
    assert blend_mask(64, 0.25).max() == 1.0
    with pytest.raises(ValueError):
        blend_mask(64, 0.6)


# --------------------------------------------------------------------------------- compositing


def test_composite_unedited_changes_nothing_outside_and_little_inside(astronaut, processor, astronaut_regions):
    edits = [dict(astronaut_regions[0].crops)]
    out = processor.composite(astronaut, astronaut_regions, edits)
    weight = processor.composite_mask(astronaut.shape, astronaut_regions)
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    np.testing.assert_array_equal(out[weight == 0], astronaut[weight == 0])
    inside = weight > 0
    assert inside.sum() > 2000
    diff = np.abs(out.astype(int) - astronaut.astype(int))[inside]
    assert diff.mean() < 4  # two resamplings of a 64 px crop blur only slightly


def test_residual_composite_of_unedited_crops_is_exact_and_adds_the_change(astronaut, processor, astronaut_regions):
    face = astronaut_regions[0]
    same = processor.composite(astronaut, astronaut_regions, [dict(face.crops)], residual=True)
    assert same.tobytes() == astronaut.tobytes()
    brighter = [{name: crop.astype(np.float32) + 20.0 for name, crop in face.crops.items()}]
    out = processor.composite(astronaut, astronaut_regions, brighter, residual=True).astype(int)
    weight = processor.composite_mask(astronaut.shape, astronaut_regions)
    full = (weight == 1.0) & np.all(astronaut < 200, axis=-1)  # far from clipping at 255
    assert full.sum() > 300
    # Where the mask is fully on, the pixel moves by the change itself (+20), keeping its own detail.
    assert np.abs(out[full] - astronaut.astype(int)[full] - 20).max() == 0
    np.testing.assert_array_equal(out[weight == 0], astronaut[weight == 0])


def test_composite_changes_only_where_mask_positive(astronaut, processor, astronaut_regions):
    face = astronaut_regions[0]
    edits = [{name: 255.0 - crop.astype(np.float32) for name, crop in face.crops.items()}]
    out = processor.composite(astronaut, astronaut_regions, edits)
    weight = processor.composite_mask(astronaut.shape, astronaut_regions)
    changed = np.any(out != astronaut, axis=-1)
    assert changed.sum() > 2000
    assert np.all(weight[changed] > 0)
    np.testing.assert_array_equal(out[weight == 0], astronaut[weight == 0])
    # Where the mask is fully on, the edit replaces the pixel: centre of the eye box.
    x, y, w, h = face.boxes["eyes"]
    cx, cy = np.round(transform_points(cv2.invertAffineTransform(face.matrix), [[x + w / 2, y + h / 2]])[0]).astype(
        int
    )
    assert weight[cy, cx] == pytest.approx(1.0)
    assert np.abs(out[cy, cx].astype(int) - (255 - astronaut[cy, cx].astype(int))).max() <= 12
    # Only the region ROI is touched: far from the face nothing changed, input not modified.
    assert not changed[300:].any()
    assert processor.composite(astronaut, astronaut_regions, [{}]).tobytes() == astronaut.tobytes()


def test_composite_validates_crops(astronaut, processor, astronaut_regions):
    crop = astronaut_regions[0].crops["eyes"]
    with pytest.raises(ValueError, match="expected"):
        processor.composite(astronaut, astronaut_regions, [{"eyes": crop[:, :, 0]}])  # gray into RGB
    with pytest.raises(ValueError):
        processor.composite(astronaut, astronaut_regions, [{"eyes": crop[:32]}])
    with pytest.raises(ValueError):
        processor.composite(astronaut, astronaut_regions, [])
    with pytest.raises(KeyError):
        processor.composite(astronaut, astronaut_regions, [{"nose": crop}])


def test_composite_gray_image_with_single_channel_crops(astronaut, processor):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    faces = processor.extract(gray, [_face_from_landmarks(ASTRONAUT_LANDMARKS)])
    edit = {"mouth": np.full((CROP_SIZE, CROP_SIZE, 1), 255, np.uint8)}
    out = processor.composite(gray, faces, [edit])
    weight = processor.composite_mask(gray.shape, faces)
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert (out != gray).any()
    np.testing.assert_array_equal(out[weight == 0], gray[weight == 0])


def test_overlapping_faces_composite_sequentially(astronaut, processor):
    shifted = ASTRONAUT_LANDMARKS + [12.0, 6.0]  # a second "face" overlapping the first
    faces = processor.extract(astronaut, [_face_from_landmarks(ASTRONAUT_LANDMARKS), _face_from_landmarks(shifted)])
    red = np.zeros((CROP_SIZE, CROP_SIZE, 3), np.uint8)
    red[..., 0] = 255
    blue = red[..., ::-1].copy()
    edits = [{"eyes": red, "mouth": red}, {"eyes": blue}]
    both = processor.composite(astronaut, faces, edits)
    one_by_one = processor.composite(processor.composite(astronaut, faces[:1], edits[:1]), faces[1:], edits[1:])
    np.testing.assert_array_equal(both, one_by_one)
    weight = processor.composite_mask(astronaut.shape, faces)
    np.testing.assert_array_equal(both[weight == 0], astronaut[weight == 0])


@pytest.mark.parametrize("offset", [(-215.0, -95.0), (280.0, 385.0), (-400.0, 0.0)])
def test_regions_past_the_image_edge(astronaut, processor, offset):
    # Faces cut by the border, and one entirely outside: no crash, valid crops, exact outside.
    face = _face_from_landmarks(ASTRONAUT_LANDMARKS + offset)
    regions = processor.extract(astronaut, [face])
    crops = regions[0].crops
    assert all(c.shape == (CROP_SIZE, CROP_SIZE, 3) and c.dtype == np.uint8 for c in crops.values())
    out = processor.composite(astronaut, regions, [{k: 255 - v for k, v in crops.items()}])
    weight = processor.composite_mask(astronaut.shape, regions)
    np.testing.assert_array_equal(out[weight == 0], astronaut[weight == 0])
    processor.draw_regions(astronaut, regions)


def test_draw_regions(astronaut, processor, astronaut_regions):
    before = astronaut.copy()
    canvas = processor.draw_regions(astronaut, astronaut_regions)
    assert canvas.shape == astronaut.shape and canvas.dtype == np.uint8
    assert (canvas != astronaut).any()
    np.testing.assert_array_equal(astronaut, before)
    gray = processor.draw_regions(astronaut[..., 0], [astronaut_regions[0].face])
    assert gray.shape == astronaut.shape
    quad = astronaut_regions[0].region_quad("eyes")
    assert quad.shape == (4, 2) and quad[:, 0].min() < ASTRONAUT_LANDMARKS[0, 0] < quad[:, 0].max()


# ---------------------------------------------------------------------------------- detection


def test_astronaut_has_one_face_at_hand_marked_landmarks(astronaut_faces):
    # dlib's HOG also fires on the round mission patch at about (126, 335)-(215, 425); the
    # verification step must remove it.
    assert len(astronaut_faces) == 1
    face = astronaut_faces[0]
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    assert np.linalg.norm(face.landmarks - ASTRONAUT_LANDMARKS, axis=1).max() < 6.0
    x, y, w, _ = face.box
    assert 160 < x < 190 and 60 < y < 95 and 70 < w < 110 and face.score > 0


def test_detection_maps_coordinates_back_from_resized_copies(astronaut):
    # A 2x copy under a 512 px cap is detected at half size; landmarks must map back.
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    detector = DlibFaceDetector(max_detection_size=512)
    assert detector.detection_scale(big.shape[:2]) == 0.5
    (face,) = detector.detect(big)
    assert np.linalg.norm((face.landmarks + 0.5) / 2 - 0.5 - ASTRONAUT_LANDMARKS, axis=1).max() < 6.0
    assert detector.detection_scale((512, 512)) == 1.0  # capped: no upsampling past 512 px
    assert DlibFaceDetector().detection_scale((512, 512)) == 2.0  # 40 px faces reach HOG's 80 px
    assert DlibFaceDetector().detection_scale((15000, 20000)) == pytest.approx(1024 / 20000)


def test_no_faces_in_noise_or_blank(processor):
    rng = np.random.default_rng(0)
    assert processor.detect(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) == []
    assert processor.detect(np.full((200, 300, 3), 128, np.uint8)) == []
    assert processor.extract(np.zeros((50, 60), np.uint8)) == []


def test_rejects_bad_images(processor):
    with pytest.raises(TypeError):
        processor.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError):
        processor.detect(np.zeros((64, 64, 4), np.uint8))


def test_load_face_detector_specs(tmp_path):
    assert isinstance(load_face_detector("dlib"), DlibFaceDetector)
    for spec in ("yunet:/nonexistent/face_detection_yunet.onnx", str(tmp_path / "missing.onnx")):
        with pytest.raises(FileNotFoundError, match="yunet:"):
            load_face_detector(spec)
    with pytest.raises(FileNotFoundError, match="ONNX"):
        load_face_detector("yunet")
    with pytest.raises(ValueError, match="dlib"):
        load_face_detector("haar")
    detector = DlibFaceDetector(min_face_size=60)
    assert load_face_detector(detector) is detector


def test_yunet_output_parsing(tmp_path, monkeypatch):
    # No YuNet ONNX file exists offline: fake cv2.FaceDetectorYN to check the 15-value parsing
    # and the mapping back from the downscaled detection copy.
    model = tmp_path / "yunet.onnx"
    model.write_bytes(b"not a real model")
    template = canonical_template(112)
    calls = {}

    class FakeYuNet:
        def setInputSize(self, size):
            calls["size"] = size

        def detect(self, bgr):
            calls["shape"] = bgr.shape
            row = np.concatenate([[10, 20, 112, 112], (template + [10, 20]).ravel(), [0.95]])
            return 1, row[None].astype(np.float32)

    monkeypatch.setattr(cv2.FaceDetectorYN, "create", lambda *a, **k: FakeYuNet(), raising=False)
    monkeypatch.setattr(R, "_MODEL_CACHE", {})
    detector = load_face_detector(str(model), max_detection_size=1000)
    assert isinstance(detector, YuNetFaceDetector)
    (face,) = FaceRegionProcessor(detector).detect(np.zeros((1000, 2000), np.uint8))
    assert calls["size"] == (1000, 500) and calls["shape"] == (500, 1000, 3)
    assert face.box == pytest.approx((20, 40, 224, 224)) and face.score == pytest.approx(0.95)
    np.testing.assert_allclose(face.landmarks, (template + [10.5, 20.5]) * 2 - 0.5, atol=1e-3)


def test_processor_is_picklable_and_cheap(processor, astronaut, astronaut_faces):
    clone = pickle.loads(pickle.dumps(processor))
    assert clone.regions == ("eyes", "mouth") and "DlibFaceDetector" in repr(clone)
    (regions,) = clone.extract(astronaut, astronaut_faces, regions=["mouth"])
    assert list(regions.crops) == ["mouth"]
    with pytest.raises(ValueError, match="known"):
        FaceRegionProcessor(regions=("eyes", "cheeks"))
