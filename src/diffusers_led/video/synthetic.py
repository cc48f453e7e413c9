"""Short clips made from one real photo, for tests, benchmarks and the demo: a camera that pans and zooms over the
photo (so a face can enter or leave the frame) and rolls a little, a jaw that opens and closes as in speech and brief
expressions (the project's own action-unit warp, so the face moves like a talking one), a camera's sensor noise, the
encoder's loss at a chosen quality, variable frame rate and a tone as the audio track."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

import cv2
import numpy as np

__all__ = ["CameraKey", "ExpressionBump", "make_photo_clip"]

#: A camera position: ``(time in [0, 1] of the clip, centre x, centre y, zoom)``; centre in photo pixels, zoom 1
#: shows the photo's full height.
CameraKey = tuple[float, float, float, float]
#: A brief expression of the clip's face: ``(start s, end s, action units)``, eased in over its first and out over
#: its last third.
ExpressionBump = tuple[float, float, Mapping[str, float]]


def _camera_at(keys: Sequence[CameraKey], t: float) -> tuple[float, float, float]:
    """The camera at clip time ``t`` in [0, 1]: keys eased in and out (smoothstep), as a hand-held move."""
    keys = sorted(keys)
    if t <= keys[0][0]:
        return keys[0][1:]
    for (t0, *a), (t1, *b) in zip(keys, keys[1:]):
        if t <= t1:
            u = (t - t0) / max(t1 - t0, 1e-9)
            u = u * u * (3 - 2 * u)
            return tuple(p + u * (q - p) for p, q in zip(a, b))
    return keys[-1][1:]


def _moving_face(photo: np.ndarray) -> Callable[[Mapping[str, float]], np.ndarray]:
    """A function of action units giving ``photo`` with its first face moved by them (the photo itself when it has
    no face or no unit is set)."""
    from ..faces.detection import face_shape
    from ..faces.loader import load_face_detector
    from ..geometry.transforms import alignment_matrix
    from ..geometry.warp import action_unit_warp

    faces = load_face_detector("dlib").detect(photo)
    if not faces:
        return lambda units: photo
    shape = face_shape(photo, faces[0])

    def move(units: Mapping[str, float]) -> np.ndarray:
        units = {name: value for name, value in units.items() if value}
        warp = action_unit_warp(shape, alignment_matrix(faces[0].landmarks), units, photo.shape[:2]) if units else None
        return photo if warp is None else warp.apply(photo)

    return move


def _face_units(time: float, talk_hz: float, bumps: Sequence[ExpressionBump]) -> dict[str, float]:
    """The face's action units at ``time`` s: the jaw of speech (AU26, ``talk_hz`` openings a second) plus the
    brief expressions under way."""
    units = {"AU26": 0.3 - 0.3 * math.cos(2 * math.pi * talk_hz * time)} if talk_hz else {}
    for start, end, bump in bumps:
        if start < time < end:
            ramp = max(end - start, 1e-9) / 3
            weight = min((time - start) / ramp, (end - time) / ramp, 1.0)
            weight = weight * weight * (3 - 2 * weight)
            for name, value in bump.items():
                units[name] = units.get(name, 0.0) + weight * value
    return units


def make_photo_clip(
    photo: np.ndarray,
    path: str | os.PathLike,
    size: tuple[int, int] = (320, 180),
    frames: int = 12,
    fps: float = 25.0,
    camera: Sequence[CameraKey] | None = None,
    talk_hz: float = 0.0,
    variable_rate: bool = False,
    audio: bool = True,
    rotation: int = 0,
    codec: str = "libx264",
    expressions: Sequence[ExpressionBump] = (),
    roll_degrees: float = 0.0,
    noise: float = 0.0,
    video_quality: int | None = None,
) -> None:
    """Write a clip of ``photo`` (``HxWx3`` uint8 RGB) seen by a moving camera.

    Args:
        photo: the real photo the clip is made of.
        path: the clip to write (its container from the extension).
        size: ``(width, height)`` of the frames as displayed.
        frames: how many frames.
        fps: the frame rate (the average one when ``variable_rate``).
        camera: camera keys (see :data:`CameraKey`); default a slow zoom in on the photo's centre.
        talk_hz: jaw movements per second of the photo's first face (0: it stays still).
        variable_rate: frame times jitter between 0.5 and 1.5 frame periods (as phones record).
        audio: add a mono AAC tone (Opus in .webm) as long as the clip.
        rotation: display rotation metadata (degrees counter-clockwise); frames are stored turned the other way,
            so they display upright.
        codec: the video encoder.
        expressions: brief expressions of the face (see :data:`ExpressionBump`), on top of its speech.
        roll_degrees: the camera rolls back and forth this far (degrees, once every 3 s), as a hand-held one.
        noise: a camera's sensor noise, its standard deviation in grey levels, fresh on every frame.
        video_quality: the H.264 encoder's CRF (23, its default, when ``None``).
    """
    import av

    height, width = photo.shape[:2]
    if camera is None:
        camera = [(0.0, width / 2, height / 2, 1.0), (1.0, width / 2, height / 2, 1.3)]
    out_w, out_h = size
    time_base = Fraction(1, 90000)
    move = _moving_face(photo) if talk_hz or expressions else None
    rng = np.random.default_rng(0)
    steps = rng.uniform(0.5, 1.5, frames) if variable_rate else np.ones(frames)
    times = np.concatenate([[0.0], np.cumsum(steps[:-1])]) / fps
    container = av.open(os.fspath(path), mode="w")
    try:
        video = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        coded_w, coded_h = (out_h, out_w) if rotation % 180 else (out_w, out_h)
        video.width, video.height, video.pix_fmt = coded_w, coded_h, "yuv420p"
        if video_quality is not None:
            video.options = {"crf": str(video_quality)}
        video.time_base = video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = container.add_stream("libopus" if str(path).endswith(".webm") else "aac", rate=48000)
            sound.layout = "mono"
        for index, time in enumerate(times):
            t = index / max(frames - 1, 1)
            cx, cy, zoom = _camera_at(camera, t)
            source = photo if move is None else move(_face_units(time, talk_hz, expressions))
            roll = roll_degrees * math.sin(2 * math.pi * time / 3.0)
            matrix = cv2.getRotationMatrix2D((cx, cy), roll, out_h / (height / zoom))
            matrix[:, 2] += (out_w / 2 - cx, out_h / 2 - cy)
            frame = cv2.warpAffine(
                source,
                matrix,
                (out_w, out_h),
                flags=cv2.INTER_AREA,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(90, 90, 90),
            )
            if noise:
                frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
            frame = np.ascontiguousarray(np.rot90(frame, -(rotation // 90) % 4))
            encoded = av.VideoFrame.from_ndarray(frame, format="rgb24")
            encoded.pts, encoded.time_base = round(time / time_base), time_base
            for packet in video.encode(encoded):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            duration = times[-1] + 1.0 / fps
            samples = np.arange(round(duration * 48000)) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * samples)).astype(np.float32)[None]
            chunk = 960 if sound.codec_context.name == "libopus" else 1024
            for start in range(0, tone.shape[1], chunk):
                piece = tone[:, start : start + chunk]
                if piece.shape[1] < chunk:  # the encoder takes whole frames only
                    piece = np.pad(piece, ((0, 0), (0, chunk - piece.shape[1])))
                audio_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece), format="flt", layout="mono")
                audio_frame.sample_rate, audio_frame.pts = 48000, start
                for packet in sound.encode(audio_frame):
                    container.mux(packet)
            for packet in sound.encode(None):
                container.mux(packet)
    finally:
        container.close()
