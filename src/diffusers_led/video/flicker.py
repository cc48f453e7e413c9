"""Temporal stability of a clip's edit: how much the edit (output minus input) changes from one frame to the next in
the face window, relative to the edit's own size, after following the input's motion (the previous frame's edit is
carried along the input's optical flow, as in the warping error of video-consistency work). 0 is an edit that stays
on the face as it moves; an edit that jitters from frame to frame scores high. Compare paths on the same clip (e.g.
the smoothed video path against independent per-frame photo edits)."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

__all__ = ["FlickerMeter", "edit_flicker"]

#: Gaussian blur (px) of both edits before they are compared: a flow error of half a pixel on skin texture changes
#: an edit's finest detail without any visible flicker (on the carphone clip it made the measure of a steady edit
#: and of jittering independent edits nearly equal); what a viewer sees jitter is the coarser change.
BLUR = 1.5


class FlickerMeter:
    """Accumulates the flicker of an edit frame by frame (:meth:`update`), holding only the previous frame's edit.

    ``value`` is ``sum_t mean_W |e_t - e'_(t-1)| / sum_t mean_W (|e_t| + |e'_(t-1)|) / 2`` with ``e_t`` the edit
    (output minus input, float) of frame ``t``, ``e'_(t-1)`` the previous edit moved along the input's optical flow
    (OpenCV's DIS), both blurred by ``blur`` px (:data:`BLUR`), and ``W`` the pixels either edit changed: 0 for an
    edit that stays on the moving face, up to 2 for one that flips sign every frame.
    """

    def __init__(self, blur: float = BLUR) -> None:
        self.blur = float(blur)
        self._previous: np.ndarray | None = None
        self._previous_gray: np.ndarray | None = None
        self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._change = 0.0
        self._size = 0.0
        self.pairs = 0

    def update(self, source: np.ndarray, edited: np.ndarray) -> None:
        """Add the next frame (its input and its edit, same shape, uint8)."""
        if source.shape != edited.shape:
            raise ValueError(f"the edited frame is {edited.shape}, its input {source.shape}.")
        edit = edited.astype(np.float32) - source.astype(np.float32)
        gray = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY) if source.ndim == 3 else source
        previous, self._previous = self._previous, edit
        previous_gray, self._previous_gray = self._previous_gray, gray
        if previous is None or previous.shape != edit.shape:
            return
        previous = self._follow(previous, previous_gray, gray)
        if self.blur > 0:
            edit, previous = (cv2.GaussianBlur(e, (0, 0), self.blur) for e in (edit, previous))
        touched = (edit != 0) | (previous != 0)
        if edit.ndim == 3:
            touched = touched.any(axis=2)
        if not touched.any():
            return
        self._change += float(np.abs(edit - previous)[touched].mean())
        self._size += float(((np.abs(edit) + np.abs(previous)) / 2)[touched].mean())
        self.pairs += 1

    def _follow(self, edit: np.ndarray, before: np.ndarray, now: np.ndarray) -> np.ndarray:
        """The previous frame's ``edit`` moved along the input's motion into the current frame."""
        flow = self._flow.calc(now, before, None)  # for each pixel now: where it was before
        height, width = now.shape
        map_x = np.arange(width, dtype=np.float32)[None, :] + flow[..., 0]
        map_y = np.arange(height, dtype=np.float32)[:, None] + flow[..., 1]
        return cv2.remap(edit, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    @property
    def value(self) -> float:
        """The flicker so far (``nan`` before two edited frames)."""
        return self._change / self._size if self._size > 0 else float("nan")


def edit_flicker(sources: Iterable[np.ndarray], edits: Iterable[np.ndarray]) -> float:
    """The flicker (:class:`FlickerMeter`) of ``edits`` of the frames ``sources``, both in frame order."""
    meter = FlickerMeter()
    for source, edited in zip(sources, edits):
        meter.update(source, edited)
    return meter.value
