"""Faces followed through a clip: found by the pipeline's detector every few frames (or when a face is lost), their
68 landmarks predicted on every frame from the box the last frame's landmarks give, and smoothed in time with a
One-Euro filter (still faces are held steady, moving ones followed without lag). Each face keeps its id, and its
``presence`` eases from 0 to 1 when it appears and back to 0 when it leaves, so an edit fades in and out instead of
popping."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..faces.detection import DetectedFace, FaceDetector, face_shape, five_landmarks, plausible_landmarks
from ..faces.detection import _iou as box_overlap  # one definition of a box's overlap
from ..geometry.action_units import inter_ocular
from ..geometry.transforms import Box

__all__ = ["FaceTrack", "FaceTracker", "OneEuroFilter"]


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) of an array signal: a low-pass whose cutoff rises with the
    signal's speed, so jitter is removed when the signal is still and lag is small when it moves.

    Args:
        min_cutoff: cutoff (Hz) of a still signal; lower is steadier.
        beta: how fast the cutoff rises with speed (per unit of speed / ``scale``).
        derivative_cutoff: cutoff (Hz) of the speed estimate.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, derivative_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.derivative_cutoff = float(min_cutoff), float(beta), float(derivative_cutoff)
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None
        self.time: float | None = None

    @staticmethod
    def _alpha(cutoff: float | np.ndarray, elapsed: float) -> float | np.ndarray:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / elapsed)

    def __call__(self, value: np.ndarray, time: float, scale: float = 1.0) -> np.ndarray:
        """The filtered ``value`` at ``time`` (seconds). ``scale`` is the size speeds are measured in (e.g. the
        face's eye distance), so one ``beta`` suits every resolution."""
        value = np.asarray(value, dtype=np.float64)
        if self.value is None or self.time is None or time <= self.time:
            self.value, self.speed, self.time = value.copy(), np.zeros_like(value), time
            return self.value.copy()
        elapsed = time - self.time
        speed = (value - self.value) / elapsed
        self.speed = self.speed + self._alpha(self.derivative_cutoff, elapsed) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed) / max(scale, 1e-9)
        self.value = self.value + self._alpha(cutoff, elapsed) * (value - self.value)
        self.time = time
        return self.value.copy()


def _landmark_box(shape: np.ndarray) -> np.ndarray:
    """``(x0, y0, x1, y1)`` of the landmarks."""
    return np.concatenate([shape.min(0), shape.max(0)])


@dataclass
class FaceTrack:
    """One face followed through the clip.

    Attributes:
        id: the face's number, kept for as long as it is followed (0, 1, ... in order of appearance).
        box: the ``(x, y, w, h)`` box its landmarks were last predicted in.
        raw_shape: the 68 landmarks predicted on this frame.
        shape: the landmarks smoothed in time: what the edit moves.
        presence: in [0, 1], how much of the edit this face gets: eases in when it appears, out when it leaves
            (or goes past the frame's edge).
        misses: detections in a row that did not find it.
        jumped: its box's content changed at once on this frame (see :data:`MAX_CONTENT_CHANGE`).
    """

    id: int
    box: Box
    raw_shape: np.ndarray
    shape: np.ndarray
    presence: float = 0.0
    misses: int = 0
    jumped: bool = False
    patch: np.ndarray | None = None
    box_in_landmarks: np.ndarray = field(default_factory=lambda: np.zeros(4))
    landmark_filter: OneEuroFilter | None = None

    def set_box(self, box: Box, shape: np.ndarray) -> None:
        """Take a detector's box, remembering where it lies relative to the landmarks (to follow them)."""
        self.box = tuple(float(v) for v in box)
        x0, y0, x1, y1 = _landmark_box(shape)
        size = max(x1 - x0, y1 - y0, 1.0)
        bx, by, bw, bh = self.box
        self.box_in_landmarks = np.array([(bx - x0) / size, (by - y0) / size, bw / size, bh / size])

    def followed_box(self) -> Box:
        """The box this frame's landmarks give, placed as the detector placed it around them."""
        x0, y0, x1, y1 = _landmark_box(self.raw_shape)
        size = max(x1 - x0, y1 - y0, 1.0)
        dx, dy, w, h = self.box_in_landmarks * size
        return (float(x0 + dx), float(y0 + dy), float(w), float(h))


#: Mean change (grey levels) of a face box's 16x16 thumbnail from one frame to the next beyond which the face may be
#: gone (a cut): a talking, moving face changes it by a few levels per frame.
MAX_CONTENT_CHANGE = 30.0


class FaceTracker:
    """Follow every face of a clip, one frame at a time (:meth:`update`).

    Args:
        detector: the pipeline's face detector (``pipe.region_processor.detector``).
        detect_every: run the detector every this many frames (and on any frame where a face's landmarks stop
            looking like a face); between detections the 68-point predictor follows each face.
        min_face_size: smallest face (px) the detector looks for: the detector's cost grows with the upsampling
            small faces need.
        min_cutoff, beta: the One-Euro filter of the landmarks (Hz; per eye distance per second).
        fade_seconds: how long a face's edit takes to fade in or out.
        max_misses: detections in a row that may miss a face before it is dropped (the detector misses turned
            faces now and then; the predictor still follows them).
    """

    def __init__(
        self,
        detector: FaceDetector,
        detect_every: int = 10,
        min_face_size: float = 64.0,
        min_cutoff: float = 1.0,
        beta: float = 3.0,
        fade_seconds: float = 0.3,
        max_misses: int = 2,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}.")
        self.detector = detector
        self.detect_every = int(detect_every)
        self.min_face_size = float(min_face_size)
        self.min_cutoff, self.beta = float(min_cutoff), float(beta)
        self.fade_seconds = float(fade_seconds)
        self.max_misses = int(max_misses)
        # Faces already followed are re-found without dlib's CNN check (a quarter second per call): the check is for
        # false positives, and a face followed since it was checked is not one.
        self._recheck = detector
        if getattr(detector, "verify_below", None) is not None:
            self._recheck = copy.copy(detector)
            self._recheck.verify_below = -math.inf
        self.tracks: list[FaceTrack] = []
        self.frame_index = 0
        self.detections = 0
        self._next_id = 0
        self._time: float | None = None

    @property
    def faces_seen(self) -> int:
        """How many distinct faces (ids) have been followed so far."""
        return self._next_id

    def update(self, rgb: np.ndarray, time: float) -> list[FaceTrack]:
        """Follow the faces into this frame (``HxWx3`` uint8 RGB at ``time`` seconds); returns the faces being
        followed (some may be fading out, with ``presence`` going to 0)."""
        lost = False
        for track in self.tracks:
            box = track.followed_box()
            track.raw_shape = face_shape(rgb, DetectedFace(box, np.zeros((5, 2)), 0.0)).astype(np.float64)
            # The box's content changing at once (a scene cut, the face gone): the predictor would draw a face on
            # whatever is there now, so the detector decides.
            patch, track.patch = track.patch, _thumbnail(rgb, box)
            track.jumped = patch is not None and float(np.abs(track.patch - patch).mean()) > MAX_CONTENT_CHANGE
            lost |= track.jumped or not plausible_landmarks(five_landmarks(track.raw_shape))
        if self.frame_index % self.detect_every == 0 or lost:
            self._detect(rgb)
        self.tracks = [t for t in self.tracks if plausible_landmarks(five_landmarks(t.raw_shape))]
        elapsed = 0.0 if self._time is None else max(time - self._time, 0.0)
        for track in self.tracks:
            if track.landmark_filter is None:
                track.landmark_filter = OneEuroFilter(self.min_cutoff, self.beta)
            track.shape = track.landmark_filter(track.raw_shape, time, scale=inter_ocular(track.raw_shape))
            wanted = 0.0 if track.misses else _inside_share(track.raw_shape, rgb.shape[:2])
            step = elapsed / self.fade_seconds if self.fade_seconds > 0 else 1.0
            track.presence = float(np.clip(wanted, track.presence - step, track.presence + step))
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses or t.presence > 0]
        self._time = time
        self.frame_index += 1
        return list(self.tracks)

    def _detect(self, rgb: np.ndarray) -> None:
        """Run the detector: match its faces to the followed ones (by box overlap), start new tracks for the
        others, count a miss for each followed face it did not find."""
        self.detections += 1
        detector = self._recheck if self.tracks else self.detector
        # A followed face near min_face_size must not be missed when its box shrinks a little (a face of 53 px
        # followed at min_face_size 64 was lost and found again under a new id): look for it at its own size.
        min_face_size = min([self.min_face_size] + [0.7 * max(t.followed_box()[2:]) for t in self.tracks])
        faces = detector.detect(rgb, min_face_size=min_face_size)
        if detector is not self.detector and any(
            max((box_overlap(t.followed_box(), f.box) for t in self.tracks), default=0.0) < 0.3 for f in faces
        ):  # a face not followed yet: the full detector (with its false-positive check) decides
            faces = self.detector.detect(rgb, min_face_size=min_face_size)
        unmatched = list(range(len(faces)))
        for track in self.tracks:
            box = track.followed_box()
            best = max(unmatched, key=lambda k: box_overlap(box, faces[k].box), default=None)
            if best is not None and box_overlap(box, faces[best].box) >= 0.3:
                unmatched.remove(best)
                track.misses = 0
                shape = face_shape(rgb, faces[best]).astype(np.float64)
                track.raw_shape = shape
                track.set_box(faces[best].box, shape)
            elif track.jumped:  # gone, not missed: the edit must not stay on what replaced the face
                track.misses, track.presence = self.max_misses + 1, 0.0
            else:
                track.misses += 1
        for k in unmatched:
            shape = face_shape(rgb, faces[k]).astype(np.float64)
            track = FaceTrack(id=self._next_id, box=faces[k].box, raw_shape=shape, shape=shape)
            if self.frame_index == 0:  # in the clip from its start: edited from the first frame, not faded in
                track.presence = _inside_share(shape, rgb.shape[:2])
            track.set_box(faces[k].box, shape)
            self._next_id += 1
            self.tracks.append(track)


def _thumbnail(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The box's content as a 16x16 grey thumbnail (float32), zeros where it leaves the frame."""
    x, y, w, h = box
    matrix = np.float32([[16 / max(w, 1.0), 0, -x * 16 / max(w, 1.0)], [0, 16 / max(h, 1.0), -y * 16 / max(h, 1.0)]])
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.warpAffine(gray, matrix, (16, 16), flags=cv2.INTER_AREA).astype(np.float32)


def _inside_share(shape: np.ndarray, image_hw: tuple[int, int]) -> float:
    """How fully the face is in the frame, eased: 1 when the landmarks (and a margin the warp needs around them) are
    inside, falling to 0 as half of them leaves."""
    height, width = image_hw
    x0, y0, x1, y1 = _landmark_box(shape)
    margin = 0.3 * max(x1 - x0, y1 - y0)
    x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
    area = (x1 - x0) * (y1 - y0)
    inside = max(0.0, min(x1, width) - max(x0, 0)) * max(0.0, min(y1, height) - max(y0, 0))
    share = float(np.clip((inside / max(area, 1e-9) - 0.5) / 0.4, 0.0, 1.0))
    return share * share * (3 - 2 * share)
