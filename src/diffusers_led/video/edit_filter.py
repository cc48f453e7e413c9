"""A face's edit filtered in time along the clip's own motion, where that motion explains the picture.

A warp's edit, output minus input, is ``in(x + u) - in(x)``: it carries every frame's sensor noise and compression
and the interpolation error of a sub-pixel warp of a small face, so it flickers even when the warp's field stands
still on the skin. As in flow-guided temporal consistency (Lai et al. 2018, "Learning blind video temporal
consistency", whose warping error is the flicker :class:`~diffusers_led.video.FlickerMeter` measures), the edit is
blended with the previous frame's edit carried along the flow the warp's field filter already measured
(:class:`~diffusers_led.video.warp_filter.WarpFieldFilter`), and the sum is laid on this frame's own pixels.

The previous edit is carried only where the flow explains the input: where this frame's input differs from the
previous one carried along the flow by more than the camera's noise (a talking mouth's lips, a blink, an occlusion,
a cut, a face's edge) the fresh edit is taken alone, so nothing of an earlier frame is laid where the picture
changed. The edit stays in its warp's window: pixels the warp leaves alone stay bit for bit."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..channels import channel_mean
from ..geometry.warp import FaceWarp

__all__ = ["EDIT_SECONDS", "EditFilter"]

#: Time constant (s) of the edit's filter where the flow explains the input: the fresh edit's share of a frame is
#: ``1 - exp(-dt / EDIT_SECONDS)``.
EDIT_SECONDS = 0.1
#: The input's change along the flow (grey levels, mean over the channels after a 3x3 box blur) below which the
#: previous edit is carried in full, and above which it is dropped: a camera's noise and compression stay under the
#: first, a lip, a lid or an occlusion passes the second.
EXPLAINED_BELOW = 6.0
UNEXPLAINED_ABOVE = 14.0
#: The same for the edit's own change along the flow (the fresh edit against the carried one): noise and a warp's
#: sub-pixel error stay under the first; a lip's edge the warp moved elsewhere passes the second.
EDIT_STEADY_BELOW = 10.0
EDIT_CHANGED_ABOVE = 25.0


class EditFilter:
    """Filters one face's edit in time (:meth:`__call__` once per frame, in order)."""

    def __init__(self, seconds: float = EDIT_SECONDS) -> None:
        self.seconds = float(seconds)
        self._edit: np.ndarray | None = None  # (h, w, c) float32, the last filtered edit over its roi
        self._roi: tuple[int, int, int, int] | None = None
        self._source: np.ndarray | None = None  # the last input frame (whole)
        self._time: float | None = None

    def __call__(
        self, source: np.ndarray, edited: np.ndarray, warp: FaceWarp, motion: np.ndarray | None, time: float
    ) -> np.ndarray:
        """``edited`` (``source`` moved and shaded by ``warp`` at ``time`` s, same shape) with its edit blended with
        the last frame's, carried along ``motion`` (the flow over ``warp``'s ROI: for each pixel now, how far away it
        was on the last frame; ``None``: not measured, the fresh edit is kept)."""
        x0, y0, x1, y1 = warp.roi
        now = source[y0:y1, x0:x1].astype(np.float32)
        fresh = edited[y0:y1, x0:x1].astype(np.float32) - now
        previous, previous_roi, previous_source = self._edit, self._roi, self._source
        previous_time, self._source, self._time = self._time, source, time
        if motion is None or previous is None or previous_source.shape != source.shape or self.seconds <= 0:
            self._edit, self._roi = fresh, warp.roi
            return edited
        share = 1.0 - math.exp(-max(time - previous_time, 0.0) / self.seconds)
        if share >= 1.0:
            self._edit, self._roi = fresh, warp.roi
            return edited
        # Where each pixel now was on the last frame, in the last frame's pixels and in its edit's ROI.
        map_x = np.arange(x0, x1, dtype=np.float32)[None, :] + motion[..., 0]
        map_y = np.arange(y0, y1, dtype=np.float32)[:, None] + motion[..., 1]
        before = cv2.remap(previous_source, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        px0, py0, px1, py1 = previous_roi
        carried = cv2.remap(previous, map_x - px0, map_y - py0, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        explained = _below(now - before.astype(np.float32), EXPLAINED_BELOW, UNEXPLAINED_ABOVE)
        explained *= _below(fresh - carried, EDIT_STEADY_BELOW, EDIT_CHANGED_ABOVE)
        # Only inside this frame's window, and only from inside the last one's ROI.
        inside = (map_x >= px0) & (map_x <= px1 - 1) & (map_y >= py0) & (map_y <= py1 - 1) & (warp.weight > 0)
        keep = (1.0 - share) * explained * inside
        if fresh.ndim == 3:
            keep = keep[:, :, None]
        edit = fresh + keep * (carried - fresh)
        self._edit, self._roi = edit, warp.roi
        out = edited.copy()
        out[y0:y1, x0:x1] = np.clip(np.rint(now + edit), 0, 255).astype(edited.dtype)
        return out


def _below(difference: np.ndarray, low: float, high: float) -> np.ndarray:
    """1 where ``|difference|`` (mean over channels, 3x3 box blur) is under ``low``, 0 over ``high``, linear
    between."""
    size = np.abs(difference)
    size = cv2.blur(channel_mean(size) if size.ndim == 3 else size, (3, 3))
    return np.clip((high - size) / (high - low), 0.0, 1.0)
