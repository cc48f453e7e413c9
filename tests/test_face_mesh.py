"""The "mesh" detector: BlazeFace full range + Face Mesh V2 (478 points) + Blendshape V2, on real faces."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from conftest import make_tiny_pipeline
from PIL import Image

from diffusers_led import NoFaceDetectedError
from diffusers_led.faces.detection import DlibFaceDetector
from diffusers_led.faces.loader import load_face_detector
from diffusers_led.faces.mesh import (
    BLENDSHAPE_NAMES,
    IBUG68_MIRROR,
    MESH_TO_IBUG68,
    MeshFaceDetector,
    _tiles,
    mesh_to_ibug68,
)


@pytest.fixture(scope="module")
def astronaut(example_image) -> np.ndarray:
    return np.asarray(example_image)


@pytest.fixture(scope="module")
def detector() -> MeshFaceDetector:
    return load_face_detector("mesh")


def _eye_distance(face) -> float:
    return float(np.linalg.norm(face.landmarks[1] - face.landmarks[0]))


def test_mesh_detector_reads_478_points_and_52_blendshapes_of_the_astronaut(detector, astronaut):
    (face,) = detector.detect(astronaut)
    assert face.mesh.shape == (478, 3) and face.mesh.dtype == np.float32
    assert list(face.blendshapes) == list(BLENDSHAPE_NAMES) and len(BLENDSHAPE_NAMES) == 52
    assert all(0.0 <= v <= 1.0 for v in face.blendshapes.values())
    # She smiles with closed lips: the smile scores are high, an open jaw's low.
    assert min(face.blendshapes["mouthSmileLeft"], face.blendshapes["mouthSmileRight"]) > 0.5
    assert face.blendshapes["jawOpen"] < 0.2
    x, y, w, h = face.box
    inside = (face.mesh[:, 0] > x - w) & (face.mesh[:, 0] < x + 2 * w) & (face.mesh[:, 1] > y - h)
    assert inside.all() and 0.5 < face.score <= 1.0
    # YuNet's order: the subject's right eye (the image's left) first, eyes above the mouth.
    right_eye, left_eye, nose, mouth_r, mouth_l = face.landmarks
    assert right_eye[0] < left_eye[0] and mouth_r[0] < mouth_l[0] and nose[1] < mouth_r[1]
    assert max(right_eye[1], left_eye[1]) < nose[1]


def test_the_68_points_read_off_the_mesh_match_dlibs_and_the_map_is_a_mirror_symmetric_layout(detector, astronaut):
    assert MESH_TO_IBUG68.shape == (68,) and len(set(MESH_TO_IBUG68.tolist())) == 68
    assert MESH_TO_IBUG68.min() >= 0 and MESH_TO_IBUG68.max() < 468  # the face, not the irises
    mesh_points = MeshFaceDetector(shape="mesh")
    (face,) = mesh_points.detect(astronaut)
    (dlib_face,) = DlibFaceDetector().detect(astronaut)
    assert np.array_equal(face.shape, mesh_to_ibug68(face.mesh))
    error = np.linalg.norm(face.shape - dlib_face.shape, axis=1) / _eye_distance(dlib_face)
    assert np.median(error) < 0.08 and error.max() < 0.35
    # Mirror the photo: each point must land on its mirror partner's place (the map has no side bias).
    mirrored = astronaut[:, ::-1].copy()
    (flipped,) = mesh_points.detect(mirrored)
    unflipped = flipped.shape.copy()
    unflipped[:, 0] = astronaut.shape[1] - 1 - unflipped[:, 0]
    mirror_error = np.linalg.norm(unflipped[IBUG68_MIRROR] - face.shape, axis=1) / _eye_distance(face)
    assert np.median(mirror_error) < 0.06


def test_by_default_the_warp_gets_dlibs_68_points_predicted_in_the_mesh_detectors_box(detector, astronaut):
    """The action-unit warp was calibrated on dlib's points: the default detector gives the same points as dlib's
    own detector would, on every face it finds (here the astronaut, also gray)."""
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    for image in (astronaut, gray):
        (face,) = detector.detect(image)
        (dlib_face,) = DlibFaceDetector().detect(image)
        error = np.linalg.norm(face.shape - dlib_face.shape, axis=1) / _eye_distance(dlib_face)
        assert np.median(error) < 0.03 and error.max() < 0.1
        assert np.abs(face.landmarks - dlib_face.landmarks).max() < 0.05 * _eye_distance(dlib_face)
    with pytest.raises(ValueError, match="shape must be"):
        MeshFaceDetector(shape="yunet")


@pytest.mark.parametrize("angle", [-35.0, 45.0])
def test_dlibs_68_points_of_a_tilted_head_stay_on_its_features(detector, astronaut, angle):
    """dlib's predictor was trained on upright faces: on a head tilted this far its points slid off the eyes and
    mouth (0.25-0.38 eye distances from the mesh's on average); predicted on the face turned upright they stay."""
    tilted = np.asarray(Image.fromarray(astronaut).rotate(angle, Image.BICUBIC, expand=True, fillcolor=(128,) * 3))
    (face,) = detector.detect(tilted)
    error = np.linalg.norm(face.shape - mesh_to_ibug68(face.mesh), axis=1) / _eye_distance(face)
    assert error.mean() < 0.1, error.mean()
    # On the eyes and the mouth, the points the warp moves most, as close as on the upright photo.
    (upright,) = detector.detect(astronaut)
    upright_error = np.linalg.norm(upright.shape - mesh_to_ibug68(upright.mesh), axis=1) / _eye_distance(upright)
    assert error[36:].mean() < upright_error[36:].mean() + 0.03


def test_turned_gray_and_mirrored_faces_are_found_level_by_their_eye_line(detector, astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    for angle in (-35.0, 25.0):
        rotation = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
        turned = cv2.warpAffine(gray[:, ::-1], rotation, (width, height), borderMode=cv2.BORDER_REFLECT)
        (face,) = detector.detect(turned)
        eye_line = face.landmarks[1] - face.landmarks[0]
        # Upright the eyes are about level; rotating the photo by +angle (counter-clockwise) tilts them by -angle.
        assert math.degrees(math.atan2(eye_line[1], eye_line[0])) == pytest.approx(-angle, abs=8)
        assert face.mesh.shape == (478, 3)


def test_a_large_photo_with_small_faces_is_searched_in_tiles_and_the_smallest_face_is_stated(astronaut):
    """Issue #26: an 8000x6000 photo with faces of ~180 px had "no face detected" (the whole photo was shrunk to
    1024 px, making them 23 px). The mesh detector tiles the photo finely enough for its minimum."""
    face_size = 180
    small = cv2.resize(astronaut, None, fx=1.7, fy=1.7, interpolation=cv2.INTER_AREA)  # the face box: ~180 px
    canvas = np.full((6000, 8000, 3), 90, dtype=np.uint8)
    places = [(300, 500), (3100, 2200), (6900, 4800), (5200, 900)]
    for x, y in places:
        canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    detector = MeshFaceDetector(min_face_size=120)
    assert detector.smallest_face(canvas.shape[:2]) <= face_size
    faces = detector.detect(canvas)
    assert len(faces) == len(places)
    found = sorted((round(f.box[0], -2), round(f.box[1], -2)) for f in faces)
    assert [x for x, _ in found] == pytest.approx(sorted(x + 294 for x, _ in places), abs=150)
    assert all(f.mesh.shape == (478, 3) for f in faces)
    assert DlibFaceDetector().detect(canvas) == []  # what the dlib default found


def test_a_large_face_is_read_from_an_area_sampled_crop_like_the_same_face_small(detector, astronaut):
    """A face several times the mesh model's 256 px input is shrunk by area before cropping: its mesh matches the
    small face's, scaled."""
    (small,) = detector.detect(astronaut)
    big = cv2.resize(astronaut, None, fx=3.5, fy=3.5, interpolation=cv2.INTER_LINEAR)
    (large,) = MeshFaceDetector(min_face_size=200).detect(big)
    assert large.box[2] * 1.5 > 2 * 256  # the shrinking path is taken
    scaled = (small.mesh[:, :2] + 0.5) * 3.5 - 0.5
    error = np.linalg.norm(large.mesh[:, :2] - scaled, axis=1) / (3.5 * _eye_distance(small))
    assert np.median(error) < 0.03


@pytest.mark.parametrize("height, width, side", [(6000, 8000, 1000), (1280, 1536, 384), (720, 1280, 640), (50, 90, 9)])
def test_tiles_cover_the_photo_and_hold_every_face_up_to_a_quarter_of_their_side_whole(height, width, side):
    tiles = _tiles(height, width, side)
    covered = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in tiles:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    rng = np.random.default_rng(0)
    size = min(side, height, width) // 4
    for x, y in zip(rng.integers(0, width - size, 200), rng.integers(0, height - size, 200)):
        assert any(x0 <= x and x + size <= x1 and y0 <= y and y + size <= y1 for x0, y0, x1, y1 in tiles)


def test_smallest_face_grows_with_the_photo_and_levels_stay_bounded():
    detector = MeshFaceDetector(max_tiles=16)
    assert detector.smallest_face((480, 640)) == pytest.approx(640 * 16 / 192)  # one detector run
    assert detector.smallest_face((6000, 8000)) > detector.smallest_face((600, 800))
    with pytest.raises(ValueError, match="max_tiles"):
        MeshFaceDetector(max_tiles=0)


def test_litert_and_opencv_backends_read_the_same_mesh(astronaut):
    pytest.importorskip("ai_edge_litert")
    (fast,) = MeshFaceDetector(backend="litert").detect(astronaut)
    (fallback,) = MeshFaceDetector(backend="opencv").detect(astronaut)
    assert np.abs(fast.mesh - fallback.mesh).max() < 0.5
    assert fast.blendshapes["mouthSmileLeft"] == pytest.approx(fallback.blendshapes["mouthSmileLeft"], abs=0.02)


def test_no_face_in_noise_or_a_flat_image(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == []
    assert detector.detect(np.full((300, 300), 128, dtype=np.uint8)) == []


def _pixelated_face(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut with her face as 10 px blocks: the detector still sees a face, the mesh cannot read it."""
    image = astronaut.copy()
    face = image[40:220, 150:320]
    blocks = cv2.resize(face, (face.shape[1] // 10, face.shape[0] // 10), interpolation=cv2.INTER_AREA)
    image[40:220, 150:320] = cv2.resize(blocks, face.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    return image


def test_a_face_found_but_not_readable_is_reported_and_never_edited(detector, astronaut):
    pixelated = _pixelated_face(astronaut)
    faces = detector.detect(pixelated)
    assert faces == [] and len(faces.unreadable) == 1
    x, y, w, h = faces.unreadable[0]
    assert 150 < x + w / 2 < 320 and 40 < y + h / 2 < 220
    pipe = make_tiny_pipeline(face_detector="mesh", default_mode="geometry")
    with pytest.raises(NoFaceDetectedError, match=r"1 face\(s\) found at .* too turned, too small or too hidden"):
        pipe(pixelated, target="happy")
    with pytest.warns(UserWarning, match="too turned"):
        out = pipe(pixelated, target="happy", on_no_face="skip")
    assert np.array_equal(np.asarray(out.images[0]), pixelated)


def test_the_no_face_message_states_the_smallest_face_looked_for(astronaut):
    pipe = make_tiny_pipeline(face_detector="mesh", default_mode="geometry")
    blank = np.full((6000, 8000, 3), 100, dtype=np.uint8)
    expected = pipe.region_processor.detector.smallest_face((6000, 8000))
    message = rf"at least ~{expected:.0f} px wide are looked for in this 8000x6000 photo"
    with pytest.raises(NoFaceDetectedError, match=message):
        pipe(blank, target="happy")
    # Not only the size: half a face at the edge or a washed-out one was reported as too small.
    with pytest.raises(NoFaceDetectedError, match=r"cut by the photo's edge or washed out by over-exposure"):
        pipe(blank, target="happy")
    pipe.set_face_detector(min_face_size=400)  # looks for large faces only: fewer tiles, a larger minimum
    assert pipe.region_processor.detector.min_face_size == 400 and pipe.config.face_detector == "mesh"
    assert pipe.region_processor.detector.smallest_face((6000, 8000)) > expected
    pipe.set_face_detector("dlib", max_detection_size=4096)
    assert pipe.region_processor.detector.max_detection_size == 4096 and pipe.config.face_detector == "dlib"
    assert pipe.region_processor.detector.min_face_size == 400  # kept from the earlier call


def test_led_edit_finds_all_30_faces_of_a_1536x1280_group_and_has_the_detector_settings(astronaut, tmp_path, capsys):
    """Issue #26: a 30-face 1536x1280 photo gave "no face detected (at least ~40 px wide)" from the command line
    (dlib shrank it to 1024 px: 47 px faces, under its 80 px window). The default detector finds all 30; dlib still
    needs --max-detection-size, and its message says which size it looked for."""
    from diffusers_led.cli import edit_main

    face = cv2.resize(astronaut[40:220, 130:310], (140, 140), interpolation=cv2.INTER_AREA)  # a 70 px face
    group = np.full((1280, 1536, 3), 120, dtype=np.uint8)
    for row in range(5):
        for col in range(6):
            group[row * 256 + 60 : row * 256 + 200, col * 256 + 50 : col * 256 + 190] = face
    photo = tmp_path / "group.png"
    Image.fromarray(group).save(photo)
    model = tmp_path / "model"
    make_tiny_pipeline().save_pretrained(model)
    # The cheapest edit (one step of the tiny UNet): this test is about the faces found.
    common = [str(photo), "--target", "happy", "--model", str(model), "--threads", "1", "--strength", "0.05"]
    assert edit_main([*common, "-o", str(tmp_path / "mesh.png")]) == 0
    assert "(30 faces)" in capsys.readouterr().out
    assert edit_main([*common, "-o", str(tmp_path / "dlib.png"), "--face-detector", "dlib"]) == 1
    assert (
        "no face detected (faces at least ~120 px wide are looked for in this 1536x1280 photo"
        in capsys.readouterr().err
    )
    assert (
        edit_main(
            [*common, "-o", str(tmp_path / "dlib.png"), "--face-detector", "dlib", "--max-detection-size", "1536"]
        )
        == 0
    )
    assert "(30 faces)" in capsys.readouterr().out
    assert edit_main([*common, "-o", str(tmp_path / "x.png"), "--min-face-size", "0"]) == 1
    assert "--min-face-size must be positive" in capsys.readouterr().err


def test_a_face_the_mesh_reads_away_from_the_detectors_keypoints_is_not_a_face(detector, astronaut, monkeypatch):
    """Where the detector's nose and mouth lie far from the mesh's, the two read different things: in the astronaut
    photo upscaled to 3000 px the detector took a helmet's blurred reflection for a face, the mesh read a face there
    too (its mouth 1.27 eye distances from the detector's), and a mouth was opened in the helmet. The detector's
    keypoints moved that far on her own face, she is no face; where they lie, she is one."""
    from diffusers_led.faces import mesh as mesh_module

    (face,) = detector.detect(astronaut)
    detect_tile = mesh_module._detect_tile

    def nose_and_mouth_elsewhere(*args):
        boxes, keypoints, scores = detect_tile(*args)
        keypoints = keypoints.copy()
        keypoints[:, 2:4] += (0.0, 1.2 * _eye_distance(face))
        return boxes, keypoints, scores

    monkeypatch.setattr(mesh_module, "_detect_tile", nose_and_mouth_elsewhere)
    assert len(detector.detect(astronaut)) == 0


def test_a_box_inside_a_much_larger_face_is_not_a_face_of_its_own():
    """A fine tile sees an eye of a large face as a face; a neighbour's face beside it, or one of similar size that
    overlaps it (a group photo), is kept."""
    from diffusers_led.faces.mesh import _inside_larger_box

    boxes = np.array([[0, 0, 100, 100], [40, 40, 20, 20], [150, 0, 100, 100], [90, 10, 60, 60]], dtype=float)
    assert _inside_larger_box(boxes).tolist() == [False, True, False, False]


def test_dlibs_points_lost_off_a_turned_heads_features_give_way_to_the_meshs(detector, astronaut, monkeypatch):
    """On a head turned far from the camera dlib's predictor lays a frontal face's 68 points over the cheek; the warp
    then gets the mesh's own points, and it keeps dlib's wherever they lie on the features."""
    from diffusers_led.faces import mesh as mesh_module

    (face,) = detector.detect(astronaut)
    mesh_points = mesh_to_ibug68(face.mesh)
    assert np.array_equal(face.shape, mesh_module.dlib_shape_near(astronaut, mesh_points))
    assert not np.array_equal(face.shape, mesh_points)
    predict = mesh_module._predict_shape

    def slid_onto_the_cheek(*args):
        # dlib's prediction slid sideways by half an eye distance, as on the cheek of a turned head.
        return predict(*args) + [0.5 * _eye_distance(face), 0.0]

    monkeypatch.setattr(mesh_module, "_predict_shape", slid_onto_the_cheek)
    assert np.array_equal(mesh_module.dlib_shape_near(astronaut, mesh_points), mesh_points)


def test_a_face_is_followed_into_the_next_frame_by_the_mesh_model_alone(detector, astronaut):
    """``follow`` re-reads a face in the window its previous mesh (carried by the head's motion) gives, as MediaPipe's
    face tracking does between detections: on a frame turned 8 degrees, shifted and zoomed, its mesh lies as near
    the detector's own as two readings of one frame do; nowhere near a face, it finds none."""
    face = detector.detect(astronaut)[0]
    matrix = cv2.getRotationMatrix2D((256.0, 256.0), 8.0, 1.05)
    matrix[:, 2] += (9.0, -6.0)
    frame = cv2.warpAffine(astronaut, matrix, astronaut.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    carried = face.mesh[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    followed = detector.follow(frame, carried)
    detected = min(detector.detect(frame), key=lambda f: np.abs(f.mesh[:, :2] - carried).mean())
    eye_distance = float(np.linalg.norm(detected.landmarks[1] - detected.landmarks[0]))
    error = np.linalg.norm(followed.mesh[:, :2] - detected.mesh[:, :2], axis=1).mean() / eye_distance
    assert error < 0.03, error
    assert followed.shape.shape == (68, 2) and set(followed.blendshapes) == set(BLENDSHAPE_NAMES)
    assert detector.follow(np.full_like(astronaut, 128), carried) is None
