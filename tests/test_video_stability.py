"""What keeps a clip's edit still on a moving, talking face: landmarks and boxes carried by the head's own motion,
the warp field filtered along the flow, the photos' shading on video, and a progress bar that reports frames/s."""

from __future__ import annotations

import math
import re

import cv2
import numpy as np
import pytest
from conftest import make_tiny_pipeline
from PIL import Image

from diffusers_led.faces.detection import face_shape
from diffusers_led.faces.mesh import MeshFaceDetector
from diffusers_led.geometry.transforms import alignment_matrix
from diffusers_led.geometry.warp import action_unit_warp
from diffusers_led.texture import load_ratio_maps
from diffusers_led.video import ExpressionSchedule, VideoExpressionEditor, transcode_video
from diffusers_led.video.io import iter_frames
from diffusers_led.video.synthetic import make_photo_clip
from diffusers_led.video.tracking import FaceTracker, head_motion
from diffusers_led.video.warp_filter import WarpFieldFilter


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline(default_mode="geometry", ratio_maps=load_ratio_maps())


@pytest.fixture(scope="module")
def face(example_image, pipe):
    """The astronaut's head and shoulders at 320 px, and her 68 landmarks."""
    photo = cv2.resize(np.asarray(example_image)[:360, 60:420], (320, 320), interpolation=cv2.INTER_AREA)
    faces = pipe.region_processor.detector.detect(photo)
    return photo, face_shape(photo, faces[0]).astype(np.float64)


def similarity(angle_degrees: float, scale: float, shift: tuple[float, float], centre=(160.0, 160.0)) -> np.ndarray:
    """The ``2x3`` rotation/zoom about ``centre`` followed by ``shift``."""
    matrix = cv2.getRotationMatrix2D(centre, angle_degrees, scale)
    matrix[:, 2] += shift
    return matrix


def moved(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_head_motion_measures_a_known_turn_zoom_and_shift(face):
    photo, shape = face
    truth = similarity(2.0, 1.03, (3.2, -1.7))
    after = cv2.warpAffine(photo, truth, photo.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    gray = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (photo, after)]
    measured = head_motion(*gray, shape)
    assert measured is not None
    assert np.abs(moved(shape, measured) - moved(shape, truth)).max() < 0.3  # px, on a 100 px face
    assert head_motion(*(np.full((320, 320), 128, np.uint8),) * 2, shape) is None  # no texture: no motion


def test_followed_landmarks_and_box_move_with_the_face_without_lag(pipe, face):
    """A camera panning fast and zooming over a real photo: the followed landmarks stay on the face (nearer the
    truth than the predictor's own frame-by-frame landmarks, no lag behind the pan), and between detections the
    predictor's box moves and grows with the face instead of with the predictor's landmarks."""
    photo, _ = face
    tracker = FaceTracker(pipe.region_processor.detector, detect_every=100)
    followed, raw, truth, boxes = [], [], [], []
    for k in range(12):
        camera = similarity(0.5 * k, 1.0 + 0.02 * k, (4.0 * k, 1.5 * k))  # 4 px a frame, 2% zoom a frame
        frame = cv2.warpAffine(photo, camera, (320, 320), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        (track,) = tracker.update(frame, k / 25)
        if k == 0:
            first, first_box = track.raw_shape.copy(), np.array(track.box)
        truth.append(moved(first, camera))
        followed.append(track.shape)
        raw.append(track.raw_shape)
        boxes.append((np.array(track.box), camera))
    followed_error = np.mean([np.linalg.norm(f - t, axis=1).mean() for f, t in zip(followed, truth)])
    raw_error = np.mean([np.linalg.norm(r - t, axis=1).mean() for r, t in zip(raw, truth)])
    assert followed_error < raw_error
    lag = np.mean([(f - t).mean(0) for f, t in zip(followed[1:], truth[1:])], axis=0)
    assert np.abs(lag).max() < 0.5  # px: a One-Euro-style low-pass trails a 4 px/frame pan by more
    box, camera = boxes[-1]
    centre = moved(first_box[:2] + first_box[2:] / 2, camera)
    assert np.abs(box[:2] + box[2:] / 2 - centre).max() < 1.0
    assert box[2] == pytest.approx(first_box[2] * math.sqrt(np.linalg.det(camera[:, :2])), rel=0.03)


def plan(shape: np.ndarray, image_hw) -> object:
    return action_unit_warp(shape, alignment_matrix(shape[[36, 45, 30, 48, 54]]), {"AU12": 1.0}, image_hw)


def test_the_warp_field_is_carried_along_the_motion_and_kept_in_its_window(face):
    photo, shape = face
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    shift = np.float32([[1, 0, 3], [0, 1, 0]])  # the face moves 3 px right
    shifted = cv2.warpAffine(photo, shift, (320, 320), borderMode=cv2.BORDER_REFLECT)
    still, moving = WarpFieldFilter(), WarpFieldFilter()
    first = plan(shape, photo.shape[:2])
    for warp_filter in (still, moving):
        assert warp_filter(first, gray, 0.0) is first  # the first frame's warp as it is
    again = still(plan(shape, photo.shape[:2]), gray, 0.04)
    assert np.abs(again.map_x - first.map_x).max() < 1e-3  # a still face keeps its field
    fresh = plan(shape + [3, 0], photo.shape[:2])
    carried = moving(fresh, cv2.cvtColor(shifted, cv2.COLOR_RGB2GRAY), 0.04)
    inner = fresh.weight > 0.5
    # The field went with the face: the blend of the carried and the fresh one is the fresh one (without the
    # carrying it would be off by the field's change over 3 px).
    assert np.abs(carried.map_x - fresh.map_x)[inner].max() < 0.15
    untouched = fresh.mask(photo.shape[:2]) == 0
    assert (carried.apply(shifted)[untouched] == shifted[untouched]).all()
    assert (carried.weight == fresh.weight).all()


def test_video_frames_are_shaded_like_photos_only_inside_the_warp(pipe, face):
    photo, _ = face
    shaded = VideoExpressionEditor(pipe, ExpressionSchedule.constant("happy", 1.0))
    plain = VideoExpressionEditor(pipe, ExpressionSchedule.constant("happy", 1.0))
    plain.ratio_maps = None
    warps = []

    class Recorded:  # the model's maps, keeping the warp each frame is shaded under
        def shade(self, image, warp, units, **turn):
            warps.append(warp)
            return pipe.ratio_maps.shade(image, warp, units, **turn)

    shaded.ratio_maps = Recorded()
    a, b = shaded(photo, 0.0), plain(photo, 0.0)
    assert len(warps) == 1 and (a != b).any()  # the smile's folds are laid on, as in photos
    outside = warps[0].mask(photo.shape[:2]) == 0
    assert (a[outside] == photo[outside]).all()


def test_the_progress_bar_reports_frames_per_second(tmp_path, example_image, monkeypatch):
    import tqdm.auto

    bars = []

    class Recorded(tqdm.auto.tqdm):
        def close(self):
            bars.append(self.format_meter(**self.format_dict))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    source = tmp_path / "in.mp4"
    make_photo_clip(np.asarray(example_image), source, (64, 48), frames=5, audio=False)
    transcode_video(source, tmp_path / "out.mp4", lambda rgb, time: rgb, progress=True)
    line = bars[0]  # (tqdm closes a bar again when it is collected)
    assert "5/5" in line and re.search(r"\d+(\.\d+)?frame/s", line)


def test_the_faces_own_expression_is_read_slower_than_the_target_changes(pipe, monkeypatch):
    """The change is the target minus the face's own expression: a step of the target (a keyframe) arrives within
    12 frames at 25 frames/s, a smile of the face's own is read over more than 25, and a reading that flickers on
    and off with every frame (as a talking face's does) moves the change less than when it was read as fast as the
    target."""
    from diffusers_led.geometry.action_units import landmark_displacements, neutral_shape
    from diffusers_led.video import ExpressionKey, editor

    still = neutral_shape() * 60.0 + 200.0  # a neutral face with 60 px between the eyes
    smiling = still + 60.0 * landmark_displacements({"AU12": 1.0})

    def changes(schedule, shapes, key="AU12"):
        edit = VideoExpressionEditor(pipe, schedule)
        return np.array([edit._change(0, shape, k / 25, 1.0).get(key, 0.0) for k, shape in enumerate(shapes)])

    step = ExpressionSchedule(
        [ExpressionKey(0.0, "neutral"), ExpressionKey(1.0, "neutral"), ExpressionKey(1.04, "happy")], 1.0
    )
    target = changes(step, [still] * 75)
    arrived = np.flatnonzero(target >= 0.9 * target[-1])[0]
    assert target[25] == 0.0 and arrived - 26 <= 12
    to_neutral = ExpressionSchedule.constant("neutral", 1.0)
    own = -changes(to_neutral, [still] * 25 + [smiling] * 50)  # the undo of a smile that appears at 1 s
    assert own[-1] > 0.8 and own[25 + 25] < 0.9 * own[-1]

    talking = [still + 60.0 * landmark_displacements({"AU12": level}) for level in (0.6, 1.4)] * 50
    slow = np.abs(np.diff(changes(to_neutral, talking)[50:])).mean()
    monkeypatch.setattr(editor, "OWN_CUTOFF", editor.CHANGE_CUTOFF)
    fast = np.abs(np.diff(changes(to_neutral, talking)[50:])).mean()
    assert slow < 0.6 * fast


@pytest.mark.parametrize("angle", [35.0, 45.0])
def test_a_tilted_heads_landmarks_stay_on_its_features_between_detections(pipe, example_image, angle):
    """As on photos, the predictor's points of a tilted head are checked against the Face Mesh's own (carried by the
    head's motion since the last detection) and predicted upright where the head is tilted: in the box alone they
    slid off the eyes and mouth (0.22-0.55 eye distances from the truth) on every frame between two detections."""
    tilted = example_image.rotate(angle, Image.BICUBIC, expand=True, fillcolor=(128,) * 3)
    photo = np.asarray(tilted.resize((400, 400), Image.LANCZOS))
    tracker = FaceTracker(pipe.region_processor.detector, detect_every=100)
    errors = []
    for k in range(6):
        camera = similarity(0.5 * k, 1.0 + 0.01 * k, (2.0 * k, 1.0 * k), centre=(200.0, 200.0))
        frame = cv2.warpAffine(photo, camera, (400, 400), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        (track,) = tracker.update(frame, k / 25)
        if k == 0:
            first = track.raw_shape.copy()
        truth = moved(first, camera)
        eye_distance = np.linalg.norm(truth[42:48].mean(0) - truth[36:42].mean(0))
        errors.append(np.linalg.norm(track.raw_shape - truth, axis=1).mean() / eye_distance)
    assert max(errors) < 0.1, errors


def followed_errors(detector: MeshFaceDetector, photo: np.ndarray, clip) -> list[float]:
    """The followed 68 points' mean distance (eye distances) from the detector's own reading of each frame of a
    12-frame talking clip of ``photo``, on the frames between its two detections."""
    make_photo_clip(photo, clip, size=(320, 320), frames=12, talk_hz=2.0, audio=False)
    tracker = FaceTracker(detector, detect_every=10, follow_seconds=0)
    errors = []
    for decoded in iter_frames(clip):
        (track,) = tracker.update(decoded.rgb, decoded.time)
        if decoded.index % 10:
            truth = detector.detect(decoded.rgb)[0].shape
            eye_distance = np.linalg.norm(truth[42:48].mean(0) - truth[36:42].mean(0))
            errors.append(np.linalg.norm(track.raw_shape - truth, axis=1).mean() / eye_distance)
    return errors


def test_a_mesh_shaped_detectors_faces_are_followed_by_the_mesh_between_detections(example_image, tmp_path):
    """A detector whose 68 points are read off the Face Mesh re-reads the mesh on every frame between detections (as
    MediaPipe's face tracking does): dlib's points there, another layout, lay 0.06 eye distances from the detector's
    own reading of a talking face on the same frames."""
    errors = followed_errors(MeshFaceDetector(shape="mesh"), np.asarray(example_image), tmp_path / "talking.mp4")
    assert max(errors) < 0.03, errors


def test_a_turned_heads_mouth_is_followed_by_the_mesh_where_dlibs_points_are_lost(
    example_image, tmp_path, monkeypatch
):
    """Where dlib's predictor lays its points off a turned head's features, the detector gives the mesh's own 68
    points, and between detections the mesh is read again: with the mesh only carried by the head's motion, a
    talking mouth stood still between detections (up to 0.056 eye distances from the detector's reading here)."""
    from diffusers_led.faces import mesh as mesh_module

    predict = mesh_module._predict_shape

    def slid_onto_the_cheek(image, predictor, box, face_size):
        # dlib's prediction slid sideways by half a box, as on the cheek of a head turned far from the camera.
        return predict(image, predictor, box, face_size) + [0.5 * box[2], 0.0]

    monkeypatch.setattr(mesh_module, "_predict_shape", slid_onto_the_cheek)
    errors = followed_errors(MeshFaceDetector(), np.asarray(example_image), tmp_path / "talking.mp4")
    assert max(errors) < 0.03, errors
