"""The edit modes side by side in one run: the median time of one edit of a one-face photo in the geometry mode (the
warp alone), geometry+texture and the diffusion mode (the paper's SDEdit), each at the model's defaults, and their
ratios (measured in the same process, so a busy machine slows all of them alike).

    python benchmarks/bench_modes.py [--model DIR] [--image examples/astronaut.png] [--target surprised] [--threads 2]
"""

from __future__ import annotations

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--image", default=str(c.EXAMPLE_IMAGE))
    p.add_argument("--target", default="surprised", help="surprised opens the mouth, so the texture stage runs.")
    args = p.parse_args()

    import torch
    from PIL import Image

    threads = c.set_threads(args.threads)
    pipe, _ = c.load_pipeline(args.model, optimize=True)
    pipe.region_processor.detector.load()
    image = Image.open(args.image)
    image.load()
    # Detection is shared by every mode: time it once and the modes on the same detected faces as well.
    from diffusers_led.image_processor import prepare_image

    prepared = [prepare_image(image)]
    detect_s = c.median(
        c.timed(lambda: pipe.detect_faces(prepared, tuple(pipe.config.regions), "error")) for _ in range(args.repeats)
    )

    def edit(mode: str, faces=None):
        return pipe(
            image,
            target=args.target,
            mode=mode,
            faces=faces,
            generator=torch.Generator().manual_seed(0),
            allow_untrained_targets=True,
        )

    rows, totals = [], {}
    for mode in ("geometry", "geometry+texture", "diffusion"):
        edit(mode)  # warm-up
        totals[mode] = c.median(c.timed(lambda mode=mode: edit(mode)) for _ in range(args.repeats))
        faces = pipe.detect_faces(prepared, tuple(pipe.config.regions), "error")
        after_detection = c.median(
            c.timed(lambda mode=mode, faces=faces: edit(mode, faces)) for _ in range(args.repeats)
        )
        rows.append((mode, totals[mode], after_detection))
    print(f"## Edit modes: {args.image}, target {args.target}\n")
    print(c.machine_line(threads))
    print(
        f"model: {c.model_path(args.model)}; median of {args.repeats} edits after one warm-up; detection alone "
        f"{detect_s:.3f} s\n"
    )
    print(c.table(["mode", "seconds per edit", "seconds after detection"], rows))
    base = totals["geometry"]
    print()
    print(
        c.table(
            ["ratio", "x"],
            [(f"{mode} / geometry", totals[mode] / base) for mode in ("geometry+texture", "diffusion")],
        )
    )
    print(f"\n`{c.command_line()}`")


if __name__ == "__main__":
    main()
