"""The demo's video section: upload a short clip, pick an expression (or keyframes), get the edited clip back with
its sound. The edit is the video path's warp (faces tracked, smoothed), never the UNet."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..labels import EXPRESSIONS

__all__ = ["MAX_CLIP_SECONDS", "video_section"]

#: Longer clips are refused: the demo edits while the visitor waits (about 20 frames per second on 2 cores).
MAX_CLIP_SECONDS = 30.0


def edit_clip(pipe: Any, clip: str | None, target: str, keyframes: str, strength: float, output_dir: Path) -> Path:
    """The edited copy of ``clip`` in ``output_dir`` (``ValueError`` with a reason a visitor can act on)."""
    from .editor import edit_video
    from .io import check_audio_fits, probe_video

    if not clip:
        raise ValueError("Upload a clip first.")
    info = probe_video(clip)
    if info.duration > MAX_CLIP_SECONDS:
        raise ValueError(f"The clip is {info.duration:.0f} s long; the demo takes up to {MAX_CLIP_SECONDS:.0f} s.")
    keyframes = keyframes.strip() or None
    output = output_dir / f"{Path(clip).stem}_{'keyframes' if keyframes else target}.mp4"  # plays in browsers
    try:
        check_audio_fits(info, Path(clip), output)
    except ValueError:  # audio MP4 cannot hold as it is: Matroska takes any
        output = output.with_suffix(".mkv")
    edit_video(
        pipe,
        clip,
        None if keyframes else target,
        output,
        keyframes=keyframes,
        strength=strength,
        overwrite=True,
        progress=False,
    )
    return output


def video_section(gr: Any, pipe: Any, output_dir: Path) -> None:
    """Add the video section to the ``gr.Blocks`` being built."""
    lock = threading.Lock()  # one edit at a time: the pipeline is shared with the photo section

    def run(clip, target, keyframes, strength):
        try:
            with lock:
                output = edit_clip(pipe, clip, target, keyframes, strength, output_dir)
        except ValueError as error:
            raise gr.Error(str(error)) from None
        return str(output), f"Edited {Path(clip).name}: every frame with a face, the sound copied as it was."

    with gr.Accordion("Video: edit a short clip", open=False):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                clip = gr.Video(label=f"Clip (up to {MAX_CLIP_SECONDS:.0f} s)", sources=["upload"])
                target = gr.Dropdown(list(EXPRESSIONS), value="happy", label="Expression")
                keyframes = gr.Textbox(
                    label="Keyframes (instead of one expression)", placeholder="0:neutral,2.5:happy@0.8,5:surprised"
                )
                strength = gr.Slider(0.0, 1.0, value=pipe.config.geometry_strength, step=0.05, label="Strength")
                button = gr.Button("Edit the clip", variant="primary")
            with gr.Column(scale=2):
                result = gr.Video(label="Edited clip", interactive=False)
                status = gr.Markdown()
        button.click(run, inputs=[clip, target, keyframes, strength], outputs=[result, status], concurrency_limit=1)
