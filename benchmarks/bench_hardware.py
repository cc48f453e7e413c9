"""How close the UNet runs to the machine's limit: achieved UNet GFLOP/s (FLOPs counted with
``torch.utils.flop_counter.FlopCounterMode``, attention included) against the measured GFLOP/s of a large
``torch.matmul``.

    python benchmarks/bench_hardware.py --model /tmp/led-cpu [--threads 1]

Rows: the UNet at the batch of one edit (2 crops: one face), of a folder batch (16 crops: 8 faces), with
``channels_last`` memory format, and in bfloat16 autocast (when the CPU supports it); the matmul in float32 and
bfloat16. Measurements are interleaved and the median is reported.
"""

from __future__ import annotations

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--matmul-size", type=int, default=1024)
    p.add_argument("--batches", default="2,16", help="UNet batch sizes (crops).")
    args = p.parse_args()

    import copy

    import torch

    threads = c.set_threads(args.threads)
    pipe, _ = c.load_pipeline(args.model)
    unet = pipe.unet.eval()
    unet_cl = copy.deepcopy(unet).to(memory_format=torch.channels_last)
    size = args.matmul_size
    a32, b32 = torch.randn(size, size), torch.randn(size, size)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    timestep = torch.tensor(200)
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    dim = unet.config.cross_attention_dim

    def unet_case(model, batch, channels_last=False, bf16=False):
        sample = torch.randn(batch, *shape)
        if channels_last:
            sample = sample.contiguous(memory_format=torch.channels_last)
        states = torch.randn(batch, 1, dim)
        labels = c.region_labels(model, batch)

        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(sample, timestep, encoder_hidden_states=states, class_labels=labels).sample

        return run

    cases = {
        f"matmul {size}x{size} float32": (lambda: torch.matmul(a32, b32), 2 * size**3),
        f"matmul {size}x{size} bfloat16": (lambda: torch.matmul(a16, b16), 2 * size**3),
    }
    for batch in [int(b) for b in args.batches.split(",")]:
        cases[f"UNet, {batch} crops, float32"] = (unet_case(unet, batch), None)
        cases[f"UNet, {batch} crops, channels_last"] = (unet_case(unet_cl, batch, channels_last=True), None)
        cases[f"UNet, {batch} crops, bfloat16 autocast"] = (unet_case(unet, batch, bf16=True), None)
    times = {name: [] for name in cases}
    with torch.inference_mode():
        for name, (run, flops) in list(cases.items()):
            if flops is None:
                with c.flop_counter() as counter:
                    run()
                cases[name] = (run, counter.get_total_flops())
            run()  # warm-up
        for _ in range(args.repeats):
            for name, (run, _) in cases.items():
                times[name].append(c.timed(run))

    peak = max(cases[n][1] / c.median(times[n]) for n in cases if n.startswith("matmul") and "float32" in n)
    rows = []
    for name, (_, flops) in cases.items():
        seconds = c.median(times[name])
        rate = flops / seconds
        rows.append((name, flops / 1e9, seconds * 1000, rate / 1e9, f"{100 * rate / peak:.0f}%"))
    print("## Achieved GFLOP/s vs the machine's matmul\n")
    print(c.machine_line(threads))
    print(f"model: {c.model_path(args.model)}; median of {args.repeats} interleaved runs\n")
    print(c.table(["computation", "GFLOP", "ms", "GFLOP/s", "of float32 matmul"], rows))
    print(f"\n`{c.command_line()}`")


if __name__ == "__main__":
    main()
