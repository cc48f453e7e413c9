"""How much of a photo outside the edited regions each output format keeps: the share of those pixels that change,
the largest change and the PSNR, when ``led-edit`` saves the edit as PNG, lossless WebP, TIFF or JPEG (its quality-95
settings from ``diffusers_led.image_processor.save_options``, and Pillow's default quality 75 for comparison).

    python benchmarks/bench_output_formats.py [--model DIR] [--image photo.png]

The pixels are the input's own (an edit changes only the inside of the regions), so this measures the file format
alone; the regions are the model's, found on the photo.
"""

from __future__ import annotations

import io

import _common as c
import numpy as np


def main() -> None:
    p = c.parser(__doc__.split("\n\n")[0])
    p.add_argument("--image", default=str(c.EXAMPLE_IMAGE), help="A photo (default: examples/astronaut.png).")
    args = p.parse_args()
    from PIL import Image

    from diffusers_led.evaluation.metrics import psnr
    from diffusers_led.image_processor import save_options

    pipe, _ = c.load_pipeline(args.model)
    source = Image.open(args.image)
    rgb = np.asarray(source.convert("RGB"))
    faces = pipe.region_processor.extract(rgb, regions=pipe.config.regions)
    outside = pipe.region_processor.composite_mask(rgb.shape, faces) == 0
    rows = []
    for name, image_format, options in [
        ("PNG", "PNG", save_options(source, "PNG", "RGB")),
        ("WebP (lossless input)", "WEBP", save_options(source, "WEBP", "RGB")),
        ("TIFF", "TIFF", save_options(source, "TIFF", "RGB")),
        ("JPEG, led-edit (quality 95)", "JPEG", save_options(source, "JPEG", "RGB")),
        ("JPEG, Pillow's default (quality 75)", "JPEG", {}),
    ]:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format=image_format, **options)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).astype(np.int64)
        change = np.abs(decoded - rgb)[outside].max(axis=-1)
        kept = psnr(decoded, rgb, outside)  # identical pixels: PSNR_CAP (100 dB)
        kilobytes = len(buffer.getvalue()) / 1e3
        rows.append([name, f"{100 * np.mean(change > 0):.0f}%", int(change.max()), round(kept, 1), round(kilobytes)])
    print(c.command_line() + "\n")
    print(c.table(["format", "pixels changed outside the regions", "largest change", "PSNR (dB)", "kB"], rows))


if __name__ == "__main__":
    main()
