"""led-edit on clips: ``led-edit clip.mp4 --target happy -o clip_happy.mp4`` (and folders of clips), with
``--keyframes`` and ``--video-quality``. The photo options that do not apply to a warp (diffusion, texture) are
ignored for clips: video edits are geometry only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..commands import ArgumentParser, CLIError
from ..output_files import check_destinations, refuse_shared_names
from ..utils import IMAGE_EXTENSIONS
from .formats import DEFAULT_VIDEO_QUALITY, OUTPUT_CONTAINERS, is_video_path

__all__ = ["add_video_arguments", "clip_destinations", "edit_clips", "split_clips"]


def add_video_arguments(parser: ArgumentParser) -> None:
    """The options of ``led-edit`` that only clips use."""
    parser.add_argument(
        "--keyframes",
        default=None,
        metavar="0:neutral,2.5:happy@0.8",
        help="Clips: the expression over time instead of --target (seconds:expression[@strength], eased between).",
    )
    parser.add_argument(
        "--video-quality",
        type=int,
        default=DEFAULT_VIDEO_QUALITY,
        help=f"Clips: the encoder's CRF, 0 (best) to 51 (default {DEFAULT_VIDEO_QUALITY}, visually lossless).",
    )


def split_clips(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The clips among ``inputs`` (clip files, and the clips in folders) and the inputs left for the photo path
    (files that are not clips, and folders holding photos)."""
    clips: list[Path] = []
    others: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            clips += [p for p in files if is_video_path(p)]
            if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in files) or not any(map(is_video_path, files)):
                others.append(item)
        elif is_video_path(path):
            if not path.exists():
                raise CLIError(f"{item}: no such file or folder.")
            clips.append(path)
        else:
            others.append(item)
    return list(dict.fromkeys(clips)), others


def clip_destinations(clips: Sequence[Path], output: str | None, label: str, single_file: bool) -> list[Path]:
    """Where each edited clip goes: ``-o`` itself for one input clip (when it names a clip file), else
    ``<stem>_<label><ext>`` in ``-o`` (a folder, default: beside each input), ``<ext>`` the input's own container
    when it can be written, else ``.mkv`` (which takes any audio as it is)."""
    if output and Path(output).suffix:
        if Path(output).suffix.lower() not in OUTPUT_CONTAINERS:
            raise CLIError(f"-o {output}: clips are written as {', '.join(OUTPUT_CONTAINERS)}.")
        if not single_file:
            raise CLIError(f"-o {output} names one clip, but {len(clips)} clips are edited: give a folder.")
        return [Path(output)]
    destinations = []
    for clip in clips:
        suffix = clip.suffix.lower() if clip.suffix.lower() in OUTPUT_CONTAINERS else ".mkv"
        folder = Path(output) if output else clip.parent
        destinations.append(folder / f"{clip.stem}_{label.replace(' ', '-')}{suffix}")
    refuse_shared_names(clips, destinations)
    return destinations


def edit_clips(args: argparse.Namespace, clips: Sequence[Path], single_file: bool) -> list[str]:
    """Edit every clip (geometry mode, the faces tracked); prints one line per clip, returns the failures."""
    from ..geometry.action_units import parse_action_units
    from ..labels import canonical_expression
    from .editor import edit_video

    target = None if args.target is None else canonical_expression(args.target)  # fail fast, before loading
    action_units = parse_action_units(args.au) or None
    if args.strength is not None and not 0.0 <= args.strength <= 1.0:
        raise CLIError(f"--strength must be in [0, 1], got {args.strength}.")

    if args.keyframes is not None and target is not None:
        raise CLIError("pass --target or --keyframes for clips, not both.")
    if not 0 <= args.video_quality <= 51:
        raise CLIError(f"--video-quality must be in [0, 51], got {args.video_quality}.")
    if args.keyframes is not None:
        from .schedule import parse_keyframes

        parse_keyframes(args.keyframes)  # a bad spec fails before anything loads
    label = target or ("keyframes" if args.keyframes else "au")
    destinations = clip_destinations(clips, args.output, label, single_file)
    check_destinations(clips, destinations, args.overwrite)  # the photos' checks: nothing lost, names that fit

    from diffusers.utils import logging as diffusers_logging

    from ..pipeline_led import LocalExpressionPipeline
    from ..pretrained import resolve_model

    diffusers_logging.disable_progress_bar()
    pipe = LocalExpressionPipeline.from_pretrained(resolve_model(args.model))
    failures = []
    for clip, destination in zip(clips, destinations):
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = edit_video(
                pipe,
                clip,
                target,
                destination,
                keyframes=args.keyframes,
                strength=args.strength,
                action_units=action_units,
                video_quality=args.video_quality,
                overwrite=args.overwrite,
                progress=sys.stderr.isatty(),
            )
        except (ValueError, OSError) as error:
            failures.append(f"{clip}: {error}")
            print(f"led-edit: skipped {clip}: {error}", file=sys.stderr)
            continue
        stats, written = result.stats, result.written
        if written.stopped_early:
            print(
                f"led-edit: warning: {clip}: {written.stopped_early}; the frames before it are all kept.",
                file=sys.stderr,
            )
        if stats.frames_with_faces == 0:
            print(
                f"led-edit: warning: {clip}: no face found in any frame; written unchanged (re-encoded).",
                file=sys.stderr,
            )
        print(
            f"{clip} -> {destination} ({written.frames} frames, a face in {stats.frames_with_faces}, edited "
            f"{stats.frames_edited}; {stats.faces} face{'s' if stats.faces != 1 else ''}; "
            f"{written.audio_packets} audio packets copied)"
        )
    return failures
