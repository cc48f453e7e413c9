"""Temporal stability of a clip's edit: how much the edit (output minus input) changes from one frame to the next in
the face window, relative to the edit's own size. 0 is an edit that holds perfectly still on the input; an edit
that jitters from frame to frame scores high. Camera and face motion move the edit with the face and count too, so
compare paths on the same clip (e.g. the smoothed video path against independent per-frame photo edits)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["FlickerMeter", "edit_flicker"]


class FlickerMeter:
    """Accumulates the flicker of an edit frame by frame (:meth:`update`), holding only the previous frame's edit.

    ``value`` is ``sum_t mean_W |e_t - e_(t-1)| / sum_t mean_W (|e_t| + |e_(t-1)|) / 2`` with ``e_t`` the edit
    (output minus input, float) of frame ``t`` and ``W`` the pixels either frame's edit changed: 0 for a still edit,
    up to 2 for an edit that flips sign every frame.
    """

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._change = 0.0
        self._size = 0.0
        self.pairs = 0

    def update(self, source: np.ndarray, edited: np.ndarray) -> None:
        """Add the next frame (its input and its edit, same shape, uint8)."""
        if source.shape != edited.shape:
            raise ValueError(f"the edited frame is {edited.shape}, its input {source.shape}.")
        edit = edited.astype(np.float32) - source.astype(np.float32)
        previous, self._previous = self._previous, edit
        if previous is None or previous.shape != edit.shape:
            return
        touched = (edit != 0) | (previous != 0)
        if edit.ndim == 3:
            touched = touched.any(axis=2)
        if not touched.any():
            return
        self._change += float(np.abs(edit - previous)[touched].mean())
        self._size += float(((np.abs(edit) + np.abs(previous)) / 2)[touched].mean())
        self.pairs += 1

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
