"""Reading and writing clips with PyAV: frames decoded upright one at a time, edited, encoded again with the input's
timestamps, and every audio packet copied into the output untouched (remuxed, never re-encoded).

The output has the input's coded size, frame count, timestamps (so its frame rate, variable or not, and its duration)
and display rotation; nothing is held but the frame being edited, so memory does not grow with the clip's length.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..serialization import atomic_write
from .formats import DEFAULT_VIDEO_QUALITY, OUTPUT_CONTAINERS, VIDEO_EXTENSIONS, is_video_path

__all__ = [
    "VIDEO_EXTENSIONS",
    "TranscodeResult",
    "VideoInfo",
    "is_video_path",
    "iter_frames",
    "probe_video",
    "transcode_video",
]

logger = logging.getLogger(__name__)


def _open(path: str | os.PathLike):
    import av

    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as error:
        raise ValueError(f"{path}: not a video FFmpeg can read ({error}).") from error
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: has no video stream.")
    return container


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is, as its container says.

    Attributes:
        width, height: the coded frame size (before the display rotation).
        rotation: degrees counter-clockwise the frames are turned for display (0, 90, 180 or -90).
        frame_rate: the average frame rate (frames per second) the container reports.
        time_base: the unit of the video stream's timestamps.
        frames: the frame count the container reports (0 when it does not know).
        duration: seconds (0 when unknown).
        audio_codecs: the codec of every audio stream, in order.
    """

    width: int
    height: int
    rotation: int
    frame_rate: Fraction
    time_base: Fraction
    frames: int
    duration: float
    audio_codecs: tuple[str, ...]


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """The :class:`VideoInfo` of the clip at ``path`` (its first frame is decoded to read the rotation)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rotation = 0
        for frame in container.decode(stream):
            rotation = (int(round(frame.rotation or 0)) + 179) % 360 - 179  # in (-180, 180]: 180, never -180
            break
        duration = container.duration / 1_000_000 if container.duration else 0.0
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rotation=rotation,
            frame_rate=Fraction(stream.average_rate or stream.guessed_rate or 0),
            time_base=Fraction(stream.time_base),
            frames=int(stream.frames or 0),
            duration=float(duration),
            audio_codecs=tuple(audio.codec_context.name for audio in container.streams.audio),
        )
    finally:
        container.close()


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as it is displayed: turned ``rotation`` degrees counter-clockwise."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _coded(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """An upright frame turned back to the coded orientation (the inverse of :func:`_upright`)."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, -turns)) if turns else rgb


@dataclass
class DecodedFrame:
    """One frame: ``rgb`` upright ``HxWx3`` uint8, its presentation ``time`` in seconds, its ``index``."""

    rgb: np.ndarray
    time: float
    index: int


def iter_frames(path: str | os.PathLike) -> Iterator[DecodedFrame]:
    """The clip's frames one at a time, upright (rotation applied), as RGB. A damaged end stops the iteration with
    a warning (the frames before it are all given)."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        try:
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                yield DecodedFrame(_upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0), time, index)
                index += 1
        except av.FFmpegError as error:
            warnings.warn(f"{path}: stopped reading after frame {index}: {error}", stacklevel=2)
    finally:
        container.close()


@dataclass
class TranscodeResult:
    """What :func:`transcode_video` wrote: ``frames`` video frames, ``audio_packets`` copied audio packets, and the
    reason reading stopped early (a damaged tail), if it did."""

    frames: int
    audio_packets: int
    stopped_early: str | None = None


def _output_container(destination: Path) -> tuple[str, str, frozenset[str] | None]:
    suffix = destination.suffix.lower()
    if suffix not in OUTPUT_CONTAINERS:
        raise ValueError(
            f"{destination}: cannot write {suffix or 'no extension'!r} clips; use one of "
            f"{', '.join(OUTPUT_CONTAINERS)}."
        )
    return OUTPUT_CONTAINERS[suffix]


def check_audio_fits(info: VideoInfo, source: Path, destination: Path) -> None:
    """Raise a clear error when the input's audio cannot be copied into ``destination``'s container as it is."""
    _, _, audio_codecs = _output_container(destination)
    refused = [codec for codec in info.audio_codecs if audio_codecs is not None and codec not in audio_codecs]
    if refused:
        raise ValueError(
            f"{source}: its audio ({', '.join(refused)}) cannot go into a {destination.suffix} file without "
            "re-encoding, and audio is only ever copied: write .mkv (takes any audio) or the input's own container."
        )


def transcode_video(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    edit_frame: Callable[[np.ndarray, float], np.ndarray],
    quality: int = DEFAULT_VIDEO_QUALITY,
    overwrite: bool = False,
    progress: bool = True,
) -> TranscodeResult:
    """Write ``source`` with each frame replaced by ``edit_frame(rgb, seconds)`` to ``destination``, atomically.

    Args:
        source: the input clip (any container and codec FFmpeg reads).
        destination: ``.mp4``, ``.m4v``, ``.mov``, ``.mkv`` (H.264, yuv420p: plays everywhere) or ``.webm`` (VP9).
        edit_frame: called on each upright ``HxWx3`` uint8 RGB frame (the display rotation applied) with its time
            in seconds; returns the frame to write, same shape.
        quality: the encoder's CRF (0 best .. 51 worst; 18 is visually lossless).
        overwrite: replace an existing ``destination``; without it, ``FileExistsError``.
        progress: show a progress bar with frames per second.

    The output keeps the input's coded size, rotation metadata, frame count and every timestamp (frame rate,
    variable or not, and duration); every audio stream's packets are copied bit for bit. A crash or Ctrl-C leaves
    no file at ``destination``.
    """
    source, destination = Path(source), Path(destination)
    if not 0 <= int(quality) <= 51:
        raise ValueError(f"the video quality (CRF) must be in [0, 51], got {quality}.")
    if not overwrite and os.path.lexists(destination):
        raise FileExistsError(f"{destination} exists (pass overwrite=True / --overwrite to replace it).")
    info = probe_video(source)
    check_audio_fits(info, source, destination)
    result = TranscodeResult(frames=0, audio_packets=0)

    def write(stream) -> None:
        _transcode(source, stream, destination, info, edit_frame, int(quality), progress, result)

    atomic_write(destination, write, overwrite=overwrite)
    return result


def _transcode(source, stream, destination, info, edit_frame, quality, progress, result) -> None:
    """The body of :func:`transcode_video`, writing into the open binary ``stream``."""
    import av
    from tqdm.auto import tqdm

    container_format, encoder, _ = _output_container(destination)
    reader = _open(source)
    writer = av.open(stream, mode="w", format=container_format)
    try:
        video_in = reader.streams.video[0]
        video_in.thread_type = "AUTO"
        video_out = writer.add_stream(encoder, rate=video_in.average_rate or video_in.guessed_rate or 25)
        video_out.width, video_out.height = info.width, info.height
        even = info.width % 2 == 0 and info.height % 2 == 0
        # yuv420p plays everywhere but halves the chroma size: odd sizes need full chroma.
        video_out.pix_fmt = "yuv420p" if even else "yuv444p"
        video_out.time_base = video_in.time_base
        video_out.codec_context.time_base = video_in.time_base
        options = {"crf": str(quality)}
        options.update(
            {"preset": "veryfast"} if encoder == "libx264" else {"b": "0", "row-mt": "1", "deadline": "good"}
        )
        video_out.options = options
        if info.rotation:
            video_out.set_display_rotation(info.rotation)
        audio_pairs = {audio.index: writer.add_stream_from_template(audio) for audio in reader.streams.audio}
        bar = tqdm(total=info.frames or None, unit="frame", desc=source.name, disable=not progress, leave=False)
        last_pts = None
        try:
            for packet in reader.demux(video_in, *reader.streams.audio):
                if packet.stream.type == "audio":
                    if packet.dts is None:  # the demuxer's end-of-stream marker, not data
                        continue
                    packet.stream = audio_pairs[packet.stream.index]
                    writer.mux(packet)
                    result.audio_packets += 1
                    continue
                for frame in packet.decode():  # the last, empty packet flushes the frames the decoder holds
                    last_pts = _encode(frame, result.frames, info, edit_frame, video_in, video_out, writer, last_pts)
                    result.frames += 1
                    bar.update()
        except av.FFmpegError as error:
            if result.frames == 0:
                raise ValueError(f"{source}: no frame could be decoded ({error}).") from error
            # A damaged tail (a copy cut short): keep everything decoded before it.
            result.stopped_early = f"stopped reading after frame {result.frames}: {error}"
        finally:
            bar.close()
        for packet in video_out.encode(None):
            writer.mux(packet)
        if result.frames == 0:
            raise ValueError(f"{source}: no video frame could be decoded.")
    finally:
        writer.close()
        reader.close()


def _encode(frame, index, info, edit_frame, video_in, video_out, writer, last_pts):
    """Edit one decoded frame and encode it at its own timestamp; returns the timestamp used."""
    import av

    rgb = _upright(frame.to_ndarray(format="rgb24"), info.rotation)
    time = float(frame.time) if frame.time is not None else index / float(info.frame_rate or 25)
    edited = edit_frame(rgb, time)
    if edited.shape != rgb.shape or edited.dtype != np.uint8:
        raise ValueError(f"the frame edit returned {edited.shape} {edited.dtype}, expected {rgb.shape} uint8.")
    out = av.VideoFrame.from_ndarray(_coded(edited, info.rotation), format="rgb24")
    pts = frame.pts
    if pts is None:  # containers without timestamps (raw streams): the frame's place at the average rate
        pts = round(index / float(info.frame_rate or 25) / float(video_in.time_base))
    if last_pts is not None and pts <= last_pts:  # a repeated timestamp would stop the encoder
        pts = last_pts + 1
    out.pts, out.time_base = pts, video_in.time_base
    for packet in video_out.encode(out):
        writer.mux(packet)
    return pts
