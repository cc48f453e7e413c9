"""The per-frame edit of a clip: every followed face moved along the action units of its scheduled expression by
the pipeline's own warp (:func:`~diffusers_led.geometry.warp.action_unit_warp`) and shaded by the model's ratio maps
as photos are, with its landmarks, its action-unit change, its warp field and then the edit itself (output minus
input, where the flow explains the picture) smoothed in time so the edit stays on the skin it moves, and eased in
and out as faces come and go.

Only the warp and its shading run on video: the UNet's texture re-draws noise on every frame and would flicker.
Open mouths are not closed (as photos toward a closed-mouth target are): on video that would stop the person
talking."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ..faces.detection import five_landmarks
from ..geometry.action_units import ACTION_UNITS, estimate_action_units
from ..geometry.glasses import MIN_LOOP_CONTRAST, SEEN_LOOP_CONTRAST, find_glasses, keep_frame
from ..geometry.transforms import alignment_matrix
from ..geometry.warp import action_unit_warp
from .edit_filter import EditFilter
from .io import DEFAULT_VIDEO_QUALITY, TranscodeResult, iter_frames, transcode_video
from .schedule import ExpressionKey, ExpressionSchedule, parse_keyframes
from .tracking import FOLLOW_SECONDS, FaceTracker, OneEuroFilter
from .warp_filter import WarpFieldFilter

__all__ = ["VideoEditResult", "VideoExpressionEditor", "edit_video"]

#: Readings of a face that are speech, not expression: a talking jaw opens and closes many times a second, and
#: undoing it (as an edit toward a target without it would) would stop the person talking.
SPEECH_UNITS = ("AU26",)
#: Every unit's place in the vector the change is smoothed as.
_UNIT_NAMES = tuple(sorted(ACTION_UNITS))
#: Cutoff (Hz) of the action-unit change's low-pass: expressions change over a third of a second or more, the readings
#: of one face jitter from frame to frame.
CHANGE_CUTOFF = 1.0
#: Cutoff (Hz) of the low-pass on the face's own expression as read on each frame, which the change is planned
#: against (target minus current). Slower than the change's: the target is steady (or eased between keyframes), but
#: the reading of a talking face moves with every syllable and with the landmarks' jitter, and an edit that undid
#: each of those would move the face with them. A held expression is still read within a second or two. On a talking
#: clip made from a tune photo (video/synthetic.py, noise and CRF 28) it took sad's flicker from 0.164 to 0.158.
OWN_CUTOFF = 0.3
#: The share of the asked-for movement below which a face's warp counts as held back (a fold avoided).
HELD_BACK = 0.5


@dataclass
class VideoEditStats:
    """What the edit of a clip did: ``frames`` seen, ``frames_with_faces`` (a followed face present),
    ``frames_edited`` (at least one face warped), ``faces`` (distinct ids), ``detections`` (detector runs),
    ``held_back`` (face-frames whose warp kept under half the movement, to avoid folding) and ``glasses_kept``
    (face-frames whose frame of glasses was kept where it is: :mod:`~diffusers_led.geometry.glasses`)."""

    frames: int = 0
    frames_with_faces: int = 0
    frames_edited: int = 0
    faces: int = 0
    detections: int = 0
    held_back: int = 0
    glasses_kept: int = 0


class VideoExpressionEditor:
    """Edits the frames of one clip, in order (it keeps each face's track and filters between calls).

    Args:
        pipe: a [`LocalExpressionPipeline`] (its detector, and its `ratio_maps` when it has them, are used).
        schedule: what each face is moved toward over time (:class:`~diffusers_led.video.ExpressionSchedule`).
        detect_every: run the face detector every this many frames (and whenever a face is lost).
        smooth: smooth landmarks, the face's own expression, action-unit changes, warp fields and edits in time (off:
            each frame's own reading, as independent photo edits would; for comparison).
        min_face_size: smallest face (px) looked for.
    """

    def __init__(
        self,
        pipe: Any,
        schedule: ExpressionSchedule,
        detect_every: int = 10,
        smooth: bool = True,
        min_face_size: float = 64.0,
    ) -> None:
        self.schedule = schedule
        self.smooth = bool(smooth)
        self.tracker = FaceTracker(
            pipe.region_processor.detector,
            detect_every=detect_every,
            min_face_size=min_face_size,
            follow_seconds=FOLLOW_SECONDS if smooth else 0.0,
        )
        self.canonical_size = pipe.region_processor.canonical_size
        self.ratio_maps = getattr(pipe, "ratio_maps", None)
        self._change_filters: dict[int, OneEuroFilter] = {}
        self._own_filters: dict[int, OneEuroFilter] = {}
        self._field_filters: dict[int, WarpFieldFilter] = {}
        self._edit_filters: dict[int, EditFilter] = {}
        self.stats = VideoEditStats()
        self._wears_glasses: set[int] = set()  # the followed faces seen wearing glasses (ids)

    def _change(self, track_id: int, shape: np.ndarray, time: float, presence: float) -> dict[str, float]:
        """The face's action-unit change at ``time``: scheduled, scaled by its presence, smoothed in time."""
        reading = estimate_action_units(shape)
        own = np.array([0.0 if name in SPEECH_UNITS else reading.get(name, 0.0) for name in _UNIT_NAMES])
        if self.smooth:
            own = self._own_filters.setdefault(track_id, OneEuroFilter(OWN_CUTOFF))(own, time)
        change = self.schedule.change_at(time, {name: float(value) for name, value in zip(_UNIT_NAMES, own) if value})
        vector = np.array([presence * change.get(name, 0.0) for name in _UNIT_NAMES])
        if self.smooth:
            smoother = self._change_filters.setdefault(track_id, OneEuroFilter(CHANGE_CUTOFF))
            vector = smoother(vector, time)
        return {name: float(value) for name, value in zip(_UNIT_NAMES, vector) if abs(value) > 1e-4}

    def __call__(self, rgb: np.ndarray, time: float) -> np.ndarray:
        """The edited frame (``HxWx3`` uint8 RGB at ``time`` seconds); pixels away from the faces are untouched."""
        tracks = self.tracker.update(rgb, time)
        self.stats.frames += 1
        self.stats.frames_with_faces += bool(tracks)
        self.stats.detections = self.tracker.detections
        self.stats.faces = self.tracker.faces_seen
        out, edited = rgb, False
        gray = self.tracker.gray  # this frame, in grey, as the tracker measured the motion on it
        followed = {track.id for track in tracks}  # a face no longer followed leaves its filters behind
        self._wears_glasses &= followed
        for filters in (self._change_filters, self._own_filters, self._field_filters, self._edit_filters):
            for track_id in set(filters) - followed:
                del filters[track_id]
        for track in tracks:
            change = self._change(track.id, track.shape, time, track.presence)
            if not change:
                continue
            shape = track.shape
            matrix = alignment_matrix(five_landmarks(shape), self.canonical_size)
            warp = action_unit_warp(shape, matrix, change, rgb.shape[:2])
            if warp is not None:
                if self.smooth:
                    field_filter = self._field_filters.setdefault(track.id, WarpFieldFilter())
                    warp = field_filter(warp, gray, time)
                source, out = out, warp.apply(out)
                if self.ratio_maps is not None:
                    # The head's turn from the mesh of the face's latest detection (the 68 points it is followed by
                    # read a three-quarter view as frontal): the shading fades on a turned cheek as on photos.
                    out = self.ratio_maps.shade(out, warp, change, yaw=track.yaw)
                if self.smooth:
                    edit_filter = self._edit_filters.setdefault(track.id, EditFilter())
                    out = edit_filter(source, out, warp, field_filter.motion, time)
                # Glasses sit on the nose, as on photos: the frame of this very frame stays where it is. A face seen
                # wearing them is looked at more leniently after (a frame kept on some frames only flickers).
                seen = track.id in self._wears_glasses
                glasses = find_glasses(source, track.mesh, SEEN_LOOP_CONTRAST if seen else MIN_LOOP_CONTRAST)
                if glasses is not None:
                    out = keep_frame(source, out, glasses, warp)
                    self._wears_glasses.add(track.id)
                    self.stats.glasses_kept += 1
                edited = True
                self.stats.held_back += warp.kept < HELD_BACK
        self.stats.frames_edited += edited
        return out


@dataclass
class VideoEditResult:
    """A written clip: its ``path``, what was written (:class:`~diffusers_led.video.io.TranscodeResult`) and what
    the edit did (:class:`VideoEditStats`)."""

    path: Path
    written: TranscodeResult
    stats: VideoEditStats = field(default_factory=VideoEditStats)


def _schedule(pipe, target, keyframes, strength, action_units) -> ExpressionSchedule:
    """The clip's schedule from a constant ``target`` or ``keyframes`` (a spec string or keys), plus units."""
    default = pipe.config.geometry_strength if strength is None else float(strength)
    if not 0.0 <= default <= 1.0:
        raise ValueError(f"`strength` must be in [0, 1], got {strength}.")
    if keyframes is not None:
        if target is not None:
            raise ValueError("Pass either a `target` or `keyframes`, not both.")
        keys = parse_keyframes(keyframes) if isinstance(keyframes, str) else [ExpressionKey(*k) for k in keyframes]
        return ExpressionSchedule(keys, default, action_units)
    return ExpressionSchedule.constant(target, default, action_units)


def edit_video(
    pipe: Any,
    video: str | os.PathLike | Iterable[np.ndarray],
    target: str | None = None,
    output: str | os.PathLike | None = None,
    keyframes: str | list[ExpressionKey] | None = None,
    strength: float | None = None,
    action_units: str | Mapping[str, float] | None = None,
    fps: float = 25.0,
    video_quality: int = DEFAULT_VIDEO_QUALITY,
    overwrite: bool = False,
    progress: bool = True,
    detect_every: int = 10,
    smooth: bool = True,
) -> VideoEditResult | Iterator[np.ndarray]:
    """Change the expression of every face in a clip (geometry only: the faces' own pixels are warped, and shaded by
    the model's ratio maps when it has them).

    Args:
        pipe: a [`LocalExpressionPipeline`].
        video: a clip's path (any container and codec FFmpeg reads), or ``HxWx3`` uint8 RGB frames.
        target: the expression for the whole clip ("happy", ...).
        output: where to write the edited clip (``.mp4``, ``.mov``, ``.mkv``: H.264; ``.webm``: VP9). Without it
            the edited frames are returned one at a time (an iterator: the clip is never held in memory).
        keyframes: instead of `target`, ``"0:neutral,2.5:happy@0.8,5:surprised"`` (seconds:expression[@strength])
            or a list of :class:`~diffusers_led.video.ExpressionKey`; eased from one to the next.
        strength: the strength of the target and of keys without one (default: the model's geometry strength).
        action_units: units added throughout, e.g. ``"AU12=0.5"``.
        fps: the frame rate of ``video`` given as frames (a file's own timestamps are used).
        video_quality: the encoder's CRF (0 best .. 51; 18 is visually lossless).
        overwrite: replace an existing `output`.
        progress: show a progress bar with frames per second.
        detect_every: run the face detector every this many frames (and whenever a face is lost).
        smooth: smooth landmarks and the edit in time (off only to compare with independent per-frame edits).

    Returns:
        With `output`, a :class:`VideoEditResult` (every audio stream copied bit for bit, timestamps and frame count
        kept); otherwise an iterator of the edited frames.
    """
    schedule = _schedule(pipe, target, keyframes, strength, action_units)
    editor = VideoExpressionEditor(pipe, schedule, detect_every=detect_every, smooth=smooth)
    if output is not None:
        if not isinstance(video, (str, os.PathLike)):
            raise ValueError(
                "`output` needs `video` to be a clip's path (frames have no audio or timestamps to keep)."
            )
        with threadpool_limits(limits=1, user_api="blas"):
            written = transcode_video(video, output, editor, video_quality, overwrite=overwrite, progress=progress)
        return VideoEditResult(path=Path(output), written=written, stats=editor.stats)
    return _edited_frames(editor, video, fps)


def _edited_frames(editor: VideoExpressionEditor, video, fps: float) -> Iterator[np.ndarray]:
    """The edited frames of a clip's path or of frames, one at a time."""
    if isinstance(video, (str, os.PathLike)):
        timed = ((frame.rgb, frame.time) for frame in iter_frames(video))
    else:
        timed = ((np.asarray(frame, dtype=np.uint8), index / fps) for index, frame in enumerate(video))
    for rgb, time in timed:
        with threadpool_limits(limits=1, user_api="blas"):
            edited = editor(rgb, time)
        yield edited
