"""Reductions over an image's channels, plane by plane.

numpy reduces a short last axis (an image's 3 or 4 channels) pixel by pixel; adding or comparing whole channel
planes gives the same values to the bit, ten to fifty times faster. Kept apart from :mod:`diffusers_led.utils` so
that the package's installer and loader import without numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["channel_max", "channel_mean"]


def channel_mean(image: np.ndarray) -> np.ndarray:
    """``image.mean(axis=2)`` of an ``HxWxC`` float image, to the bit (the channels added in order, then divided),
    about ten times faster: numpy reduces a short last axis pixel by pixel, this adds whole channel planes."""
    total = image[:, :, 0]
    for channel in range(1, image.shape[2]):
        total = total + image[:, :, channel]
    return total / image.shape[2]


def channel_max(image: np.ndarray) -> np.ndarray:
    """``image.max(axis=2)`` of an ``HxWxC`` image, to the bit, about fifty times faster (see :func:`channel_mean`)."""
    return np.maximum.reduce([image[:, :, channel] for channel in range(image.shape[2])])
