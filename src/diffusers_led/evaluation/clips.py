"""led-evaluate on a clip: what the video path keeps (frame count, timestamps, duration, audio packets), how many
frames with a face it edits, whether the person stays the same person on sampled frames, and the flicker of its edit
beside that of independent per-frame photo edits of the same frames, and the expression classifier's probability of
the target on sampled frames before and after (see :mod:`diffusers_led.video.flicker`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data import OutputFolderError
from .report import ReportFiles

__all__ = ["evaluate_clip"]


def _timestamps_and_audio(path: Path) -> tuple[list[float | None], list[bytes]]:
    """Every frame's time (seconds, to the millisecond Matroska keeps) and every audio packet's bytes."""
    import av

    with av.open(os.fspath(path)) as container:
        streams = container.streams.audio  # demux() of no stream would read them all
        audio = [bytes(p) for p in container.demux(*streams) if p.dts is not None] if streams else []
    with av.open(os.fspath(path)) as container:
        pts = [None if f.time is None else round(f.time, 3) for f in container.decode(video=0)]
    return pts, audio


def evaluate_clip(
    pipe: Any,
    clip: str | os.PathLike,
    out_dir: str | os.PathLike,
    target: str = "happy",
    compare_frames: int = 120,
    flicker_window: int = 40,
    identity_every: int = 12,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Edit ``clip`` toward ``target`` with the video path and measure it; writes ``report.json`` and the edited
    clip into ``out_dir`` and returns the report.

    Args:
        compare_frames: the first this many frames are also edited one by one as photos (``pipe(frame)``, the
            independent edits the flicker is compared with); 120 is four to five seconds, long enough for a
            talking face to move its head and mouth many times (a short window can favour either path).
        flicker_window: the flicker is also reported per window of this many frames (how much it varies along the
            clip).
        identity_every: the identity judge compares input and output faces on every this many frames.
        overwrite: replace the files an earlier led-evaluate run wrote in ``out_dir`` (never other files).
    """
    from ..labels import canonical_expression
    from ..video import FlickerMeter, edit_video, iter_frames, probe_video
    from ..video.formats import OUTPUT_CONTAINERS
    from .judges import ExpressionJudge, IdentityJudge, JudgeNotInstalledError
    from .metrics import identity_distances

    clip, out_dir = Path(clip), Path(out_dir)
    # The input's container when it can be written (else Matroska, which takes any audio as it is).
    suffix = clip.suffix.lower() if clip.suffix.lower() in OUTPUT_CONTAINERS else ".mkv"
    edited_path = out_dir / f"{clip.stem}_{target}{suffix}"
    written = _claim_report_files(out_dir, [edited_path.name, "report.json"], clip, overwrite)
    start = time.perf_counter()
    result = edit_video(pipe, clip, target, edited_path, overwrite=True, progress=progress)
    seconds = time.perf_counter() - start
    before, after = probe_video(clip), probe_video(edited_path)
    (pts_in, audio_in), (pts_out, audio_out) = _timestamps_and_audio(clip), _timestamps_and_audio(edited_path)

    # Flicker and identity on the frames in memory (the written clip adds the encoder's loss to both).
    smoothed, independent = FlickerMeter(), FlickerMeter()
    windows: list[tuple[int, FlickerMeter, FlickerMeter]] = []  # (first frame, video path, photo edits)
    judge, distances = IdentityJudge(), []
    try:
        expression_judge = ExpressionJudge()
    except JudgeNotInstalledError:  # the classifier is an optional install (see the README)
        expression_judge = None
    label = None if expression_judge is None else expression_judge.class_index(canonical_expression(target))
    p_target: list[tuple[float, float]] = []
    detector = pipe.region_processor.detector
    sources = (frame.rgb for frame in iter_frames(clip))
    for index, (source, edited) in enumerate(zip(sources, edit_video(pipe, clip, target))):
        if index < compare_frames:
            photo = pipe(source, target=target, mode="geometry", on_no_face="skip", output_type="np").images[0]
            photo = np.clip(np.rint(photo * 255), 0, 255).astype(np.uint8)
            if index % flicker_window == 0:
                windows.append((index, FlickerMeter(), FlickerMeter()))
            for video_meter, photo_meter in ((smoothed, independent), windows[-1][1:]):
                video_meter.update(source, edited)
                photo_meter.update(source, photo)
        if index % identity_every == 0:
            faces = detector.detect(source)
            if faces:
                embeddings = judge.embed_chips([judge.chip(image, faces[0].box) for image in (source, edited)])
                distances.append(float(identity_distances(embeddings[:1], embeddings[1:])["euclidean"][0]))
                if label is not None:
                    inputs = [expression_judge.face_input(image, faces[0].landmarks) for image in (source, edited)]
                    p_input, p_edited = expression_judge.predict_inputs(inputs)[:, label]
                    p_target.append((float(p_input), float(p_edited)))
    report = {
        "clip": str(clip),
        "target": target,
        "edited_clip": str(edited_path),
        "seconds": seconds,
        "frames_per_second": result.written.frames / seconds,
        "kept": {
            "frames": [len(pts_in), len(pts_out)],
            "timestamps_identical": pts_in == pts_out,
            "frame_rate": [str(before.frame_rate), str(after.frame_rate)],
            "duration_s": [before.duration, after.duration],
            "audio_packets": [len(audio_in), len(audio_out)],
            "audio_identical": audio_in == audio_out,
            "stopped_early": result.written.stopped_early,
        },
        "faces": {
            "frames_with_faces": result.stats.frames_with_faces,
            "frames_edited": result.stats.frames_edited,
            "distinct_faces": result.stats.faces,
            "held_back_face_frames": result.stats.held_back,
        },
        "identity": {
            "sampled_frames": len(distances),
            "distance_max": max(distances, default=None),
            "kept": sum(d < judge.threshold for d in distances),
            "threshold": judge.threshold,
        },
        "expression": {
            "sampled_frames": len(p_target),
            "p_target_input": float(np.mean([b for b, _ in p_target])) if p_target else None,
            "p_target_edited": float(np.mean([a for _, a in p_target])) if p_target else None,
        },
        "flicker": {
            "frames": smoothed.pairs + 1,
            "video_path": smoothed.value,
            "independent_photo_edits": independent.value,
            "ratio": _ratio(smoothed, independent),
            "windows": [
                {
                    "frames": [first, first + video.pairs],
                    "video_path": video.value,
                    "independent_photo_edits": photos.value,
                    "ratio": _ratio(video, photos),
                }
                for first, video, photos in windows
                if video.pairs
            ],
        },
    }
    written.write("report.json", lambda stream: stream.write((json.dumps(report, indent=2) + "\n").encode()))
    return report


def _ratio(video: Any, photos: Any) -> float | None:
    """The video path's flicker as a share of the independent photo edits' (``None`` when they have none)."""
    return video.value / photos.value if photos.value > 0 else None


def _claim_report_files(out_dir: Path, names: list[str], clip: Path, overwrite: bool) -> ReportFiles:
    """Record ``names`` in ``out_dir`` as led-evaluate's, refusing first (as every led-evaluate report does) a file
    it did not write (:meth:`ReportFiles.claim`), one of its own without ``overwrite``, or the input clip."""
    written = ReportFiles(out_dir)
    for name in names:
        path = out_dir / name
        if path.resolve() == clip.resolve():
            raise OutputFolderError(f"{path} is the input clip and would be replaced; choose another --out.")
        if (path.exists() or path.is_symlink()) and written.owns(name) and not overwrite:
            raise OutputFolderError(f"{path} exists (an earlier report); pass --overwrite to replace it.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written.claim(names)
    return written
