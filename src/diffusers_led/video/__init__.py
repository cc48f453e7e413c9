"""Editing the expression of the faces in a clip: decoding and encoding with PyAV (audio copied bit for bit), faces
followed and smoothed across frames, and the pipeline's own warp applied to each frame.

The names below load on first use, so ``led-edit`` checks its arguments before numpy, OpenCV or PyAV load."""

from __future__ import annotations

from ..utils import lazy_exports

#: Public name -> the submodule defining it.
_EXPORTS = {
    "VideoEditResult": ".editor",
    "VideoEditStats": ".editor",
    "VideoExpressionEditor": ".editor",
    "edit_video": ".editor",
    "VIDEO_EXTENSIONS": ".formats",
    "is_video_path": ".formats",
    "TranscodeResult": ".io",
    "VideoInfo": ".io",
    "iter_frames": ".io",
    "probe_video": ".io",
    "transcode_video": ".io",
    "ExpressionKey": ".schedule",
    "ExpressionSchedule": ".schedule",
    "parse_keyframes": ".schedule",
    "FaceTrack": ".tracking",
    "FaceTracker": ".tracking",
    "OneEuroFilter": ".tracking",
    "edit_flicker": ".flicker",
    "FlickerMeter": ".flicker",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
