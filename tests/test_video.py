"""Video: clips made from the real example photo (a moving camera, a talking jaw, a face entering), decoded and
encoded with PyAV; timestamps, frame count, rotation and audio kept; faces tracked and the edit smoothed."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pytest
from conftest import make_tiny_pipeline

from diffusers_led.video import (
    ExpressionKey,
    ExpressionSchedule,
    FlickerMeter,
    OneEuroFilter,
    edit_video,
    iter_frames,
    parse_keyframes,
    probe_video,
    transcode_video,
)
from diffusers_led.video.synthetic import make_photo_clip

#: The camera close on the astronaut's face (a face of about 100 px in a 320x180 frame), moving a little.
ON_FACE = [(0.0, 256, 150, 2.6), (1.0, 246, 144, 2.8)]


@pytest.fixture(scope="module")
def photo(example_image) -> np.ndarray:
    return np.asarray(example_image)


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline(default_mode="geometry")


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory, photo):
    path = tmp_path_factory.mktemp("clips") / "talking.mp4"
    make_photo_clip(photo, path, (320, 180), frames=8, camera=ON_FACE, talk_hz=3.0)
    return path


def audio_packets(path) -> list[bytes]:
    with av.open(os.fspath(path)) as container:
        return [bytes(p) for p in container.demux(*container.streams.audio) if p.dts is not None]


def frame_times(path) -> list[tuple[int, float]]:
    with av.open(os.fspath(path)) as container:
        return [(frame.pts, frame.time) for frame in container.decode(video=0)]


@pytest.mark.parametrize(
    "suffix, rotation, variable, codec",
    [
        (".mp4", 0, False, "libx264"),
        (".mkv", -90, True, "libx264"),
        (".webm", 0, False, "libvpx-vp9"),
        (".mov", 180, False, "libx265"),
    ],
)
def test_transcode_keeps_size_timestamps_rotation_and_audio_bit_exact(
    tmp_path, photo, suffix, rotation, variable, codec
):
    source = tmp_path / f"in{suffix}"  # .webm: VP9 with Opus audio; .mov: HEVC
    make_photo_clip(photo, source, (160, 96), frames=7, rotation=rotation, variable_rate=variable, codec=codec)
    seen = []

    def edit(rgb, time):
        seen.append((rgb.shape, time))
        return 255 - rgb

    out = tmp_path / f"out{suffix}"
    result = transcode_video(source, out, edit, progress=False)
    before, after = probe_video(source), probe_video(out)
    assert result.frames == 7 and result.stopped_early is None
    assert seen[0][0] == (96, 160, 3)  # frames reach the edit upright, whatever the rotation
    assert (after.width, after.height, after.rotation) == (before.width, before.height, rotation)
    assert frame_times(out) == frame_times(source)  # every timestamp: frame count, rate (variable too), duration
    assert audio_packets(out) == audio_packets(source) and len(audio_packets(out)) > 0
    first = next(iter_frames(out)).rgb.astype(int)
    assert abs(first.mean() - (255 - next(iter_frames(source)).rgb.astype(int)).mean()) < 3  # the edit was written


def test_existing_output_and_interrupted_writes_leave_files_alone(tmp_path, talking_clip):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        transcode_video(talking_clip, out, lambda rgb, t: rgb, progress=False)
    assert out.read_bytes() == b"keep"

    def interrupted(rgb, time):
        if time > 0.1:
            raise KeyboardInterrupt
        return rgb

    fresh = tmp_path / "fresh.mp4"
    with pytest.raises(KeyboardInterrupt):
        transcode_video(talking_clip, fresh, interrupted, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no partial file, no temporary left


def test_a_damaged_tail_keeps_every_frame_before_it(tmp_path, photo):
    source = tmp_path / "long.mkv"  # Matroska: its clusters still read when the file is cut short
    make_photo_clip(photo, source, (160, 96), frames=20, audio=False)
    cut = tmp_path / "cut.mkv"
    data = source.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    readable = len(list(iter_frames(cut)))
    result = transcode_video(cut, tmp_path / "out.mkv", lambda rgb, t: rgb, progress=False)
    assert 0 < result.frames == readable < 20
    assert len(frame_times(tmp_path / "out.mkv")) == readable


def test_every_frame_with_the_face_is_edited_and_only_near_the_face(pipe, talking_clip):
    sources = [frame.rgb for frame in iter_frames(talking_clip)]
    edited = list(edit_video(pipe, talking_clip, "happy", strength=0.8))
    assert len(edited) == len(sources) == 8
    for source, out in zip(sources, edited):
        changed = np.argwhere((source != out).any(axis=2))
        assert len(changed) > 200  # the smile moved this frame's mouth
        # Outside the face's window every pixel is the input's: the frame's top corners and bottom edge.
        assert (source[:20, :40] == out[:20, :40]).all() and (source[-10:] == out[-10:]).all()


def test_edit_video_writes_a_clip_with_the_inputs_frames_and_audio(tmp_path, pipe, talking_clip):
    result = edit_video(pipe, talking_clip, "surprised", tmp_path / "out.mov", progress=False)
    assert result.written.frames == 8 and result.stats.frames_edited == 8 and result.stats.faces == 1
    assert frame_times(tmp_path / "out.mov") == frame_times(talking_clip)
    assert audio_packets(tmp_path / "out.mov") == audio_packets(talking_clip)


def test_a_face_entering_is_eased_in_and_a_clip_without_faces_is_left_as_it_is(pipe, photo):
    # The camera starts on the suit (no face) and pans up onto the face.
    frames = []
    import cv2

    for k in range(12):
        y = 420 - min(k, 6) * 45
        crop = photo[y - 90 : y + 90, 150:390]
        frames.append(cv2.resize(crop, (320, 240)))
    edits = list(edit_video(pipe, frames, "happy", strength=0.8, detect_every=2, fps=25))
    amount = [np.abs(out.astype(int) - src).sum() for src, out in zip(frames, edits)]
    assert amount[0] == 0  # no face yet: the frame is the input
    first = next(k for k, a in enumerate(amount) if a > 0)
    assert amount[first] < 0.5 * amount[-1]  # the edit fades in rather than popping at full strength
    blurred = [cv2.GaussianBlur(f, (0, 0), 12) for f in frames[:4]]
    assert all((out == src).all() for src, out in zip(blurred, edit_video(pipe, blurred, "happy")))


def test_smoothing_makes_the_edit_steadier_than_independent_frames(pipe, talking_clip):
    sources = [frame.rgb for frame in iter_frames(talking_clip)]
    smooth, raw = FlickerMeter(), FlickerMeter()
    for source, a, b in zip(
        sources, edit_video(pipe, sources, "happy"), edit_video(pipe, sources, "happy", smooth=False)
    ):
        smooth.update(source, a)
        raw.update(source, b)
    assert smooth.pairs == raw.pairs == 7
    assert smooth.value < raw.value


def test_flicker_is_zero_for_a_still_edit_and_high_for_a_flipping_one():
    source = np.full((32, 32, 3), 100, dtype=np.uint8)
    still, flipping = FlickerMeter(), FlickerMeter()
    for k in range(4):
        edited = source.copy()
        edited[8:16, 8:16] = 120
        still.update(source, edited)
        flipped = source.copy()
        flipped[8:16, 8:16] = 120 if k % 2 else 80
        flipping.update(source, flipped)
    assert still.value == 0.0 and flipping.value > 1.5


def test_one_euro_filter_holds_a_still_signal_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    steady = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    out = [steady(np.array([10.0 + rng.normal(0, 1)]), k / 25)[0] for k in range(50)]
    assert np.std(out[25:]) < 0.5 * 1.0  # jitter of 1 reduced
    moving = OneEuroFilter(min_cutoff=1.0, beta=1.0)
    ramp = [moving(np.array([10.0 * k]), k / 25)[0] for k in range(50)]
    assert abs(ramp[-1] - 490) < 0.1 * 490  # follows a fast ramp closely


def test_keyframes_parse_and_blend_smoothly():
    keys = parse_keyframes("2.5:happy@0.8, 0:neutral ,5:surprise")
    assert keys == [ExpressionKey(0.0, "neutral"), ExpressionKey(2.5, "happy", 0.8), ExpressionKey(5.0, "surprised")]
    for bad in ("happy", "1:grumpy", "x:happy", "1:happy@2", "1:happy,1:sad", ""):
        with pytest.raises(ValueError):
            parse_keyframes(bad)
    schedule = ExpressionSchedule(keys, default_strength=0.5, action_units="AU1=0.2")
    smile = [schedule.change_at(t, {}).get("AU12", 0.0) for t in (0.0, 0.5, 1.25, 2.0, 2.5, 3.0)]
    assert smile[0] == 0.0 and smile[-2] == pytest.approx(0.8 * 1.4)  # neutral, then the keyed strength
    assert all(a <= b for a, b in zip(smile, smile[1:5]))  # rises monotonically between the keys
    assert schedule.change_at(9.0, {})["AU1"] == pytest.approx(0.5 * 1.2 + 0.2)  # the last key holds, units added


def test_led_edit_edits_a_clip_and_refuses_to_overwrite(tmp_path, talking_clip):
    out = tmp_path / "clip_happy.mp4"
    command = [sys.executable, "-m", "diffusers_led.cli", "edit", str(talking_clip), "--target", "happy"]
    done = subprocess.run([*command, "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "8 frames, a face in 8, edited 8" in done.stdout
    assert frame_times(out) == frame_times(talking_clip)
    again = subprocess.run([*command, "-o", str(out)], capture_output=True, text=True)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    webm = subprocess.run([*command, "-o", str(tmp_path / "x.webm")], capture_output=True, text=True)
    assert webm.returncode == 1 and "cannot go into a .webm" in webm.stderr
    folder = subprocess.run(  # a folder of clips: each written beside the others in -o, in its own container
        [sys.executable, "-m", "diffusers_led.cli", "edit", str(talking_clip.parent), "--au", "AU12=0.6"]
        + ["-o", str(tmp_path / "edited")],
        capture_output=True,
        text=True,
    )
    assert folder.returncode == 0, folder.stderr
    assert sorted(p.name for p in (tmp_path / "edited").iterdir()) == ["talking_au.mp4"]


def test_led_evaluate_reports_what_a_clip_keeps_and_its_flicker(tmp_path, pipe, talking_clip):
    from diffusers_led.data import OutputFolderError
    from diffusers_led.evaluation.clips import evaluate_clip

    report = evaluate_clip(
        pipe, talking_clip, tmp_path, "happy", compare_frames=6, flicker_window=3, identity_every=4, progress=False
    )
    kept = report["kept"]
    assert kept["frames"] == [8, 8] and kept["timestamps_identical"] and kept["audio_identical"]
    assert report["faces"]["frames_edited"] == 8 and report["identity"]["kept"] == 2
    assert report["flicker"]["frames"] == 6 and report["flicker"]["video_path"] >= 0
    windows = report["flicker"]["windows"]  # frames 0-2 and 3-5, each measured on its own
    assert [w["frames"] for w in windows] == [[0, 2], [3, 5]]
    assert all(w["ratio"] == w["video_path"] / w["independent_photo_edits"] for w in windows)
    assert (tmp_path / "report.json").is_file() and (tmp_path / "talking_happy.mp4").is_file()
    with pytest.raises(OutputFolderError, match="--overwrite"):  # its own report: replaced only when asked
        evaluate_clip(pipe, talking_clip, tmp_path, "happy", progress=False)
    (tmp_path / "sad").mkdir()
    (tmp_path / "sad" / "report.json").write_text("mine")
    with pytest.raises(OutputFolderError, match="not written by led-evaluate"):
        evaluate_clip(pipe, talking_clip, tmp_path / "sad", "sad", progress=False, overwrite=True)
    assert (tmp_path / "sad" / "report.json").read_text() == "mine"


def test_the_demo_edits_a_clip_and_refuses_a_missing_one(tmp_path, pipe, talking_clip):
    from diffusers_led.video.demo import edit_clip

    output = edit_clip(pipe, str(talking_clip), "sad", "", 0.6, tmp_path)
    assert output.suffix == ".mp4" and frame_times(output) == frame_times(talking_clip)
    with pytest.raises(ValueError, match="Upload a clip"):
        edit_clip(pipe, None, "sad", "", 0.6, tmp_path)


def test_a_face_gone_at_a_cut_leaves_no_edit_on_what_replaced_it(pipe, photo, talking_clip):
    import cv2

    from diffusers_led.video import VideoExpressionEditor

    frames = [frame.rgb for frame in iter_frames(talking_clip)][:4]
    elsewhere = cv2.resize(photo[330:510, 0:320], frames[0].shape[1::-1])  # the next shot: the suit, no face
    editor = VideoExpressionEditor(pipe, ExpressionSchedule.constant("happy", 1.0), detect_every=10)
    edits = [editor(frame, k / 25) for k, frame in enumerate(frames + [elsewhere] * 3)]
    assert all((src != out).any() for src, out in zip(frames, edits[:4]))
    assert all((out == elsewhere).all() for out in edits[4:])
    # ... and its filters go with it (a long clip of passers-by does not pile them up)
    filters = (editor._change_filters, editor._own_filters, editor._field_filters, editor._edit_filters)
    assert not any(filters)


def test_two_faces_keep_their_ids_while_the_camera_moves(pipe, two_face_image):
    import cv2

    from diffusers_led.video import VideoExpressionEditor

    group = np.asarray(two_face_image)[:300]  # 1024 x 300: both heads
    frames = [cv2.resize(group[:, 10 * k : 10 * k + 960], (640, 200)) for k in range(6)]  # a slow pan
    editor = VideoExpressionEditor(pipe, ExpressionSchedule.constant("happy", 0.6), detect_every=2)
    centres = []
    for k, frame in enumerate(frames):
        out = editor(frame, k / 25)
        assert (out != frame).any()
        centres.append({t.id: t.shape.mean(0)[0] for t in editor.tracker.tracks})
    assert all(sorted(c) == [0, 1] for c in centres) and editor.stats.faces == 2
    for before, after in zip(centres, centres[1:]):  # each id stays on its own face (the left one stays left)
        assert all(abs(after[i] - before[i]) < 20 for i in (0, 1))


def test_a_followed_face_smaller_than_min_face_size_is_kept_under_its_id(tmp_path, pipe, photo):
    """A face a little under the tracker's min_face_size (found at first, then its box shrinks as the camera pulls
    back) is looked for at its own size: it stays one face, followed on every frame, never dropped and re-found."""
    from diffusers_led.video.tracking import FaceTracker

    path = tmp_path / "small.mp4"
    make_photo_clip(photo, path, (320, 180), frames=12, camera=[(0.0, 256, 150, 1.5), (1.0, 256, 150, 1.3)])
    tracker = FaceTracker(pipe.region_processor.detector, detect_every=3, min_face_size=64)
    followed = [len(tracker.update(frame.rgb, k / 25)) for k, frame in enumerate(iter_frames(path))]
    assert followed == [1] * 12 and tracker.faces_seen == 1
    assert all(track.misses == 0 for track in tracker.tracks)


def test_led_edit_refuses_clip_outputs_that_would_collide_or_not_fit_before_loading(tmp_path, talking_clip, capsys):
    """Clips get the photos' output checks, before a model loads: two clips onto one output name, and an output name
    longer than file systems allow, are refused and nothing is written."""
    from diffusers_led.cli import edit_main

    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.mp4").write_bytes(talking_clip.read_bytes())
    out = tmp_path / "out"
    clips = [str(tmp_path / "x" / "a.mp4"), str(tmp_path / "y" / "a.mp4")]
    assert edit_main([*clips, "--target", "happy", "-o", str(out)]) != 0
    assert "2 inputs would be written to the same output" in capsys.readouterr().err
    long_name = tmp_path / ("c" * 250 + ".mp4")
    long_name.write_bytes(talking_clip.read_bytes())
    assert edit_main([str(long_name), "--target", "happy", "-o", str(out)]) != 0
    assert "above the 255-byte limit" in capsys.readouterr().err
    assert not out.exists()


def test_synthetic_clips_fill_beyond_the_photo_with_grey(tmp_path, photo):
    # The camera centred on the photo's top-left corner: a quarter of every frame lies beyond the photo.
    path = tmp_path / "corner.mp4"
    make_photo_clip(photo, path, (160, 96), frames=2, camera=[(0.0, 0, 0, 1.0), (1.0, 0, 0, 1.0)], audio=False)
    frame = next(iter_frames(path)).rgb
    beyond = frame[:40, :70].reshape(-1, 3).astype(int)
    assert np.abs(beyond - 90).max() <= 8  # grey in every channel, not a red fill


def turned_in_depth(mesh: np.ndarray, degrees: float) -> np.ndarray:
    """A Face Mesh rotated about the vertical axis through its centre by ``degrees`` (the head turned in depth)."""
    angle = np.radians(degrees)
    centre = mesh.mean(0)
    x, z = mesh[:, 0] - centre[0], mesh[:, 2] - centre[2]
    turned = mesh.copy()
    turned[:, 0] = centre[0] + x * np.cos(angle) + z * np.sin(angle)
    turned[:, 2] = centre[2] - x * np.sin(angle) + z * np.cos(angle)
    return turned


class TurningDetector:
    """The pipeline's mesh detector whose k-th run reports every face's mesh turned in depth by ``turns[k]``
    degrees (the last one from then on): what the detector reads of a head turned by that much."""

    def __init__(self, detector, turns: list[float]) -> None:
        self.detector, self.turns = detector, list(turns)

    def detect(self, image, **kwargs):
        import dataclasses

        turn = self.turns.pop(0) if len(self.turns) > 1 else self.turns[0]
        faces = self.detector.detect(image, **kwargs)
        return [dataclasses.replace(face, mesh=turned_in_depth(face.mesh, turn)) for face in faces]


def test_a_face_turned_in_depth_is_not_shaded_and_a_frontal_one_is(pipe, talking_clip):
    """The 68 points the tracker follows read a three-quarter view as frontal: the head's turn comes from the mesh
    of the face's latest detection, and the shading fades with it as on photos."""
    from diffusers_led.texture import load_ratio_maps
    from diffusers_led.video import VideoExpressionEditor
    from diffusers_led.video.tracking import FaceTracker

    frames = [frame.rgb for frame in iter_frames(talking_clip)][:3]
    maps = load_ratio_maps()
    edits = {}
    for turn in (0.0, 40.0):
        for shaded in (True, False):
            editor = VideoExpressionEditor(pipe, ExpressionSchedule.constant("happy", 0.8), detect_every=10)
            editor.tracker = FaceTracker(TurningDetector(pipe.region_processor.detector, [turn]), detect_every=10)
            editor.ratio_maps = maps if shaded else None
            edits[turn, shaded] = [editor(frame, k / 25) for k, frame in enumerate(frames)]
            if shaded:
                (track,) = editor.tracker.tracks
                assert abs(track.yaw - turn) < 3.0  # the example photo is close to frontal (0.8 degrees)
    assert all(np.array_equal(a, b) for a, b in zip(edits[40.0, True], edits[40.0, False]))
    assert all((a != b).any() for a, b in zip(edits[0.0, True], edits[0.0, False]))


def test_the_head_turn_changes_smoothly_across_a_re_detection(pipe, talking_clip):
    """A re-detection reading the head 18 degrees more turned (from full shading to almost none) moves the shading's
    share a little per frame, toward the new turn, not all at once."""
    from diffusers_led.texture import frontal_share
    from diffusers_led.video.tracking import FaceTracker

    tracker = FaceTracker(TurningDetector(pipe.region_processor.detector, [10.0, 28.0]), detect_every=3)
    yaws, shares, detected = [], [], []
    for k, frame in enumerate(iter_frames(talking_clip)):
        (track,) = tracker.update(frame.rgb, k / 25)
        yaws.append(track.yaw)
        shares.append(frontal_share(track.shape, yaw=track.yaw))
        detected.append(frontal_share(track.shape, yaw=track.detected_yaw))
    assert detected[2] - detected[3] > 0.7  # the step the detections alone would make
    assert max(abs(b - a) for a, b in zip(shares, shares[1:])) < 0.15
    assert all(b > a for a, b in zip(yaws[3:], yaws[4:])) and yaws[-1] < 28.0


def test_synthetic_clips_add_a_cameras_nuisances(tmp_path, photo):
    """The tune clips' nuisances: sensor noise fresh on every frame, a rolling camera, a brief expression (here a
    jaw drop) only while it lasts, and the encoder's quality setting."""
    still = dict(camera=ON_FACE[:1] * 2, frames=6, fps=10.0, audio=False)
    clean, noisy, rolled, moved = (tmp_path / f"{name}.mp4" for name in ("clean", "noisy", "rolled", "moved"))
    make_photo_clip(photo, clean, (160, 96), video_quality=10, **still)
    make_photo_clip(photo, noisy, (160, 96), video_quality=10, noise=8.0, **still)
    make_photo_clip(photo, rolled, (160, 96), video_quality=10, roll_degrees=10.0, **still)
    make_photo_clip(photo, moved, (160, 96), video_quality=10, expressions=[(0.15, 0.45, {"AU26": 1.0})], **still)
    frames = {p.stem: [f.rgb.astype(float) for f in iter_frames(p)] for p in (clean, noisy, rolled, moved)}
    assert np.abs(frames["clean"][4] - frames["clean"][5]).mean() < 1.0  # a still camera on a still face
    assert np.abs(frames["noisy"][4] - frames["noisy"][5]).mean() > 2.0  # noise differs from frame to frame
    assert np.abs(frames["rolled"][2] - frames["clean"][2]).mean() > 5.0  # rolled at 0.2 s, level at 0
    assert np.abs(frames["rolled"][0] - frames["clean"][0]).mean() < 1.0
    jaw = [np.abs(m - c).mean() for m, c in zip(frames["moved"], frames["clean"])]
    assert jaw[3] > 5 * max(jaw[0], jaw[5])  # the jaw drops at 0.3 s only (else the encoder's differences)
    coarse = tmp_path / "coarse.mp4"
    make_photo_clip(photo, coarse, (160, 96), video_quality=40, noise=8.0, **still)
    assert coarse.stat().st_size < noisy.stat().st_size  # a higher CRF spends fewer bits
