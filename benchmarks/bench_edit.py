"""One edit of a one-face photo with the model's default settings: wall time split into detect / align+crop /
diffusion / composite, model load time, and peak memory.

    python benchmarks/bench_edit.py --model /tmp/led-cpu [--image examples/astronaut.png] [--threads 1]
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import resource  # noqa: E402
import tracemalloc  # noqa: E402

import _common as c  # noqa: E402


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--image", default=str(c.EXAMPLE_IMAGE))
    p.add_argument("--target", default="happy")
    p.add_argument("--strength", type=float, default=None, help="Default: the model's strength for the target.")
    c.add_sampler_args(p)
    p.add_argument("--no-optimize", action="store_true", help="Without led-edit's channels_last setting.")
    args = p.parse_args()

    import torch
    from PIL import Image

    import diffusers_led.pipeline_led  # noqa: F401
    from diffusers_led.batch import crops_per_face

    import_s = time.perf_counter() - _START
    threads = c.set_threads(args.threads)

    # Model load: the pipeline (UNet, scheduler, embeddings), then the face detector's models (dlib's load lazily on
    # the first detection; led-edit loads them in a thread while torch/diffusers import and the UNet loads).
    pipe, pipeline_s = c.load_pipeline(args.model, optimize=not args.no_optimize)
    if args.fast_scheduler:
        pipe.use_fast_scheduler()
    detector_s = c.timed(pipe.region_processor.detector.load)
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    image = Image.open(args.image)
    image.load()
    steps = args.steps or pipe.config.default_num_inference_steps
    if args.strength is None:  # the model's default for the target, as `pipe(image, target)` uses
        args.strength = pipe.default_strength_for(args.target)
    guidance = float(pipe.config.default_guidance_scale)
    start_timestep = int(pipe.scheduler.config.num_train_timesteps * args.strength)
    timesteps = pipe.get_timesteps(start_timestep, steps, torch.device("cpu"))
    steps_run, first_t = len(timesteps), int(timesteps[0]) if len(timesteps) else start_timestep

    def edit():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            return pipe(
                image,
                target=args.target,
                strength=args.strength,
                num_inference_steps=args.steps,
                generator=torch.Generator().manual_seed(args.seed),
            )

    cold_s = c.timed(edit)
    faces = edit().faces[0]

    processor = pipe.region_processor
    diffusion_owner, diffusion_name = (
        (pipe, "denoise_crops") if hasattr(pipe, "denoise_crops") else (pipe.unet, "forward")
    )
    runs = []
    for _ in range(args.repeats):
        totals = {}
        with (
            c.wrapped(processor.detector, "detect", totals),
            c.wrapped(processor, "extract", totals),
            c.wrapped(diffusion_owner, diffusion_name, totals, "diffusion"),
            c.wrapped(processor, "composite", totals),
        ):
            totals["total"] = c.timed(edit)
        runs.append(totals)

    tracemalloc.start()
    edit()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    med = {
        key: c.median(run.get(key, 0.0) for run in runs)
        for key in ("detect", "extract", "diffusion", "composite", "total")
    }
    n_crops = crops_per_face(len(pipe.config.regions), guidance) * len(faces)
    stages = [
        ("detect (face + 5 landmarks)", med["detect"]),
        ("align + crop (2 regions)", med["extract"] - med["detect"]),
        (
            f"diffusion ({steps_run} UNet calls on {n_crops} crops)",
            med["diffusion"],
        ),
        ("composite", med["composite"]),
        ("other (image in/out, tensors)", med["total"] - med["extract"] - med["diffusion"] - med["composite"]),
        ("**total per edit**", med["total"]),
    ]
    print(f"## One edit: {args.image}, target {args.target}, strength {args.strength}, guidance {guidance:g}\n")
    print(c.machine_line(threads))
    print(
        f"model: {c.model_path(args.model)} ({sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.2f}M UNet "
        f"parameters), scheduler {type(pipe.scheduler).__name__}, num_inference_steps {steps} -> {steps_run} steps "
        f"from t={first_t}; {'bfloat16 autocast' if args.bf16 else 'float32'}"
        f"{'' if args.no_optimize else ', channels_last'}; {len(faces)} face(s); "
        f"median of {args.repeats} edits after one warm-up\n"
    )
    print(c.table(["stage", "seconds", "share"], [(n, s, f"{100 * s / med['total']:.0f}%") for n, s in stages]))
    print(
        f"\nper UNet call: {med['diffusion'] / max(steps_run, 1) * 1000:.0f} ms; first (cold) edit: {cold_s:.3f} s\n"
    )
    print(
        c.table(
            ["load", "seconds"],
            [
                ("import torch + diffusers + diffusers_led", import_s),
                ("pipeline from_pretrained (UNet, scheduler, embeddings)", pipeline_s),
                ("face detector models (dlib HOG, 68-point landmarks, CNN check)", detector_s),
                ("**model load (pipeline + detector)**", pipeline_s + detector_s),
            ],
        )
    )
    print()
    print(
        c.table(
            ["memory", "MiB"],
            [
                ("peak RSS after loading (ru_maxrss)", rss_loaded),
                ("peak RSS after the edits (ru_maxrss)", rss_peak),
                ("peak Python/numpy allocations during one edit (tracemalloc)", traced_peak / 2**20),
            ],
        )
    )
    print(f"\n`{c.command_line()}`")


if __name__ == "__main__":
    main()
