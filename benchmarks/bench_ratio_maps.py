"""What the action units' shading (the ratio maps) costs: the median time of one geometry-mode edit of a one-face
photo with the model's ratio maps and with them removed (the warp alone), for every target, and their ratio
(measured in the same process, so a busy machine slows both alike).

    python benchmarks/bench_ratio_maps.py [--model DIR] [--image examples/astronaut.png] [--threads 2]
"""

from __future__ import annotations

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--image", default=str(c.EXAMPLE_IMAGE))
    args = p.parse_args()

    from PIL import Image

    from diffusers_led.expressions import EXPRESSIONS

    threads = c.set_threads(args.threads)
    pipe, _ = c.load_pipeline(args.model, optimize=True)
    if pipe.ratio_maps is None:
        raise SystemExit(f"{c.model_path(args.model)} has no ratio maps")
    pipe.region_processor.detector.load()
    image = Image.open(args.image)
    image.load()
    maps = pipe.ratio_maps

    def edit(target: str, with_maps: bool) -> None:
        pipe.ratio_maps = maps if with_maps else None
        pipe(image, target=target, mode="geometry")

    rows, totals = [], {True: 0.0, False: 0.0}
    for target in EXPRESSIONS:
        times = {}
        for with_maps in (False, True):
            edit(target, with_maps)  # warm-up
            times[with_maps] = c.median(c.timed(lambda t=target, w=with_maps: edit(t, w)) for _ in range(args.repeats))
            totals[with_maps] += times[with_maps]
        rows.append((target, times[False], times[True], times[True] / times[False]))
    pipe.ratio_maps = maps
    print(f"## Ratio maps: {args.image}, geometry mode\n")
    print(c.machine_line(threads))
    print(f"model: {c.model_path(args.model)}; median of {args.repeats} edits after one warm-up\n")
    print(c.table(["target", "warp alone (s)", "warp + shading (s)", "ratio"], rows))
    print(
        f"\nmean over the targets: {totals[True] / len(rows):.3f} s per edit with shading; ratio to the warp alone "
        f"{totals[True] / totals[False]:.2f}x"
    )
    print(f"\n`{c.command_line()}`")


if __name__ == "__main__":
    main()
