"""Why the paper edits 64x64 eye and mouth crops: the cost of one UNet step of the local design (the model's UNet on
the 2 crops of a face) vs SDEdit of the whole aligned 320x320 face with a UNet of the same widths and depth.

    python benchmarks/bench_local_vs_global.py --model /tmp/led-cpu

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, and attention, which torch
does not count on CPU by itself); times are the median of interleaved repeats. The whole-face UNet has random
weights: only its cost matters here.
"""

from __future__ import annotations

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--face-size", type=int, default=320, help="Side of the aligned face (the paper's 320).")
    p.add_argument("--faces", type=int, default=1, help="Faces edited together.")
    p.set_defaults(repeats=3)
    args = p.parse_args()

    import torch
    from diffusers import UNet2DConditionModel

    threads = c.set_threads(args.threads)
    pipe, _ = c.load_pipeline(args.model)
    local = pipe.unet.eval()
    config = {k: v for k, v in local.config.items() if not k.startswith("_")}
    config["sample_size"] = args.face_size
    torch.manual_seed(args.seed)
    whole = UNet2DConditionModel(**config).eval()
    channels, crop = local.config.in_channels, local.config.sample_size
    embedding = torch.randn(1, 1, local.config.cross_attention_dim)
    crops_per_face = len(pipe.config.regions)
    cases = {
        f"local: {crops_per_face * args.faces} crops of {crop}x{crop}": (
            local,
            torch.randn(crops_per_face * args.faces, channels, crop, crop),
        ),
        f"whole face: {args.faces} x {args.face_size}x{args.face_size}": (
            whole,
            torch.randn(args.faces, channels, args.face_size, args.face_size),
        ),
    }
    timestep = torch.tensor(200)

    def step(model, sample):
        states = embedding.expand(len(sample), -1, -1)
        labels = c.region_labels(model, len(sample))
        return model(sample, timestep, encoder_hidden_states=states, class_labels=labels).sample

    flops, times, pixels = {}, {name: [] for name in cases}, {}
    with torch.inference_mode():
        for name, (model, sample) in cases.items():
            with c.flop_counter() as counter:
                step(model, sample)
            flops[name] = counter.get_total_flops()
            pixels[name] = sample[0, 0].numel() * len(sample)
        for _ in range(args.repeats):
            for name, (model, sample) in cases.items():
                times[name].append(c.timed(lambda m=model, s=sample: step(m, s)))

    names = list(cases)
    base_t, base_f = c.median(times[names[0]]), flops[names[0]]
    rows = [
        (
            name,
            sum(p.numel() for p in cases[name][0].parameters()) / 1e6,
            pixels[name],
            flops[name] / 1e9,
            flops[name] / base_f,
            c.median(times[name]) * 1000,
            c.median(times[name]) / base_t,
        )
        for name in names
    ]
    print(f"## Local crops vs the whole aligned face, one UNet step ({args.faces} face(s))\n")
    print(c.machine_line(threads))
    print(
        f"model: {c.model_path(args.model)}; UNet blocks {list(local.config.block_out_channels)}; "
        f"median of {args.repeats}\n"
    )
    print(
        c.table(
            ["input", "UNet params (M)", "pixels", "GFLOP per step", "FLOP ratio", "ms per step", "time ratio"], rows
        )
    )
    print(
        f"\nThe whole face costs {rows[1][4]:.0f}x the FLOPs and {rows[1][6]:.0f}x the time of the local crops "
        f"per step ({rows[1][2] / rows[0][2]:.0f}x the pixels; self-attention grows with the square of the pixels)."
    )
    print(f"\n`{c.command_line()}`")


if __name__ == "__main__":
    main()
