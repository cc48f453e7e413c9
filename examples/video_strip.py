"""The README's video strip: a clip made from the example photo (a slow push-in, the jaw moving as in speech), edited
with keyframes neutral -> happy -> surprised; every 8th frame of the input above the edit.

    python examples/video_strip.py --output docs/images/video_strip.png --overwrite
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from diffusers_led import LocalExpressionPipeline
from diffusers_led.commands import ArgumentParser
from diffusers_led.output_files import atomic_save
from diffusers_led.pretrained import resolve_model
from diffusers_led.video import iter_frames
from diffusers_led.video.synthetic import make_photo_clip

EXAMPLE = Path(__file__).resolve().parent / "astronaut.png"


def main() -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="video_strip.png")
    parser.add_argument("--keyframes", default="0:neutral,0.6:happy,1.4:surprised")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --output.")
    args = parser.parse_args()
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        parser.error(f"{output} exists; pass --overwrite to replace it")
    photo = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    pipe = LocalExpressionPipeline.from_pretrained(resolve_model(None))
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder, "clip.mp4")
        camera = [(0.0, 256, 150, 2.4), (1.0, 250, 140, 2.8)]
        make_photo_clip(photo, clip, (320, 240), frames=48, camera=camera, talk_hz=1.5)
        sources = [frame.rgb for frame in iter_frames(clip)]
        edited = list(pipe.edit_video(clip, keyframes=args.keyframes))
    picks = range(0, len(sources), 8)
    strip = np.vstack([np.hstack([frames[k] for k in picks]) for frames in (sources, edited)])
    atomic_save(Image.fromarray(strip), output, overwrite=args.overwrite)
    print(f"wrote {args.output} ({len(sources)} frames, every 8th shown; top: input, bottom: {args.keyframes})")


if __name__ == "__main__":
    main()
