"""Editing the expression of the faces in a clip: decoding and encoding with PyAV (audio copied bit for bit), faces
followed and smoothed across frames, and the pipeline's own warp applied to each frame."""

from .editor import VideoEditResult, VideoEditStats, VideoExpressionEditor, edit_video
from .io import VIDEO_EXTENSIONS, TranscodeResult, VideoInfo, is_video_path, iter_frames, probe_video, transcode_video
from .schedule import ExpressionKey, ExpressionSchedule, parse_keyframes
from .tracking import FaceTrack, FaceTracker, OneEuroFilter

__all__ = [
    "VIDEO_EXTENSIONS",
    "ExpressionKey",
    "ExpressionSchedule",
    "FaceTrack",
    "FaceTracker",
    "OneEuroFilter",
    "TranscodeResult",
    "VideoEditResult",
    "VideoEditStats",
    "VideoExpressionEditor",
    "VideoInfo",
    "edit_video",
    "is_video_path",
    "iter_frames",
    "parse_keyframes",
    "probe_video",
    "transcode_video",
]
