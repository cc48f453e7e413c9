"""The fast default vs the paper's DDPM from t_250 (251 UNet calls): time ratio and how close the results are, plus a
sweep of few-step samplers and step counts to choose the default by measurement.

    python benchmarks/bench_schedulers.py --model /tmp/led-cpu [--images examples/astronaut.png ...] [--quick]

Closeness is the PSNR (dB) between a sampler's edit and the paper mode's edit (same photo, target and seed), over
the pixels the edit may change (the blend masks). The paper mode is stochastic, so the PSNR between two paper-mode
edits with different seeds is printed as the floor: a sampler that reaches it is as close to the paper mode as the
paper mode is to itself. The deterministic samplers (DDIM, DPM-Solver++, UniPC, Euler) all approximate one ODE
solution, which DDIM with every step computes: the PSNR to it isolates a sampler's discretisation error, i.e. how
many steps are enough. When an expression classifier is installed
(``diffusers_led.evaluation.judges.ExpressionJudge``) the table adds its probability of the target and the hit rate
(target = arg max). Times exclude face detection (the faces are detected once and passed in) so they compare the
diffusion itself.
"""

from __future__ import annotations

import _common as c
import numpy as np

SAMPLERS = {
    "DDIM": ("DDIMScheduler", {}),
    "DPM-Solver++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
}


def make_scheduler(pipe, class_name: str, overrides: dict):
    import diffusers

    return getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)


def load_judge():
    try:
        from diffusers_led.evaluation.judges import ExpressionJudge

        return ExpressionJudge()
    except Exception as error:  # noqa: BLE001 - the judge is optional
        print(f"(no expression classifier: {type(error).__name__}: {error})")
        return None


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--images", nargs="+", default=[str(c.EXAMPLE_IMAGE)], help="Photos and/or folders.")
    p.add_argument("--max-images", type=int, default=8)
    p.add_argument("--targets", default="auto", help="Comma-separated, or 'auto': up to 3 trained non-neutral labels.")
    p.add_argument("--strength", type=float, default=0.5)
    p.add_argument("--steps", default="4,6,8,10,12,16,20", help="num_inference_steps values of the sweep.")
    p.add_argument("--samplers", default=",".join(SAMPLERS), help=f"Comma-separated subset of {list(SAMPLERS)}.")
    p.add_argument(
        "--spacings",
        default="trailing",
        help="Comma-separated timestep_spacing values (trailing, leading, linspace) of the sweep.",
    )
    p.add_argument("--quick", action="store_true", help="Only the model's default sampler vs the paper mode.")
    p.set_defaults(repeats=3)
    args = p.parse_args()

    import time

    import torch
    from PIL import Image

    from diffusers_led.evaluation.metrics import psnr
    from diffusers_led.image_processor import prepare_image

    threads = c.set_threads(args.threads)
    pipe, _ = c.load_pipeline(args.model)
    saved_scheduler = pipe.scheduler
    default_steps = pipe.config.default_num_inference_steps
    if args.targets == "auto":
        preferred = ["happy", "surprised", "angry", "sad", "disgusted", "fearful", "contemptuous"]
        targets = [t for t in preferred if t in pipe.embeddings.trained_labels][:3]
    else:
        targets = pipe.embeddings.resolve([t.strip() for t in args.targets.split(",") if t.strip()])

    photos, faces = [], []
    for path in c.collect_images(args.images):
        image = Image.open(path)
        image.load()
        found = pipe.region_processor.extract(prepare_image(image).rgb)
        if found:
            photos.append(image)
            faces.append(found)
        if len(photos) >= args.max_images:
            break
    if not photos:
        raise SystemExit("no face found in --images")
    jobs = [(k, target) for k in range(len(photos)) for target in targets]
    masks = [
        pipe.region_processor.composite_mask(np.asarray(photos[k].convert("RGB")).shape, faces[k]) for k, _ in jobs
    ]

    def rgb(image: np.ndarray) -> np.ndarray:
        image = image.reshape(*image.shape[:2], -1)
        return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]

    def run(scheduler, steps: int, seed: int) -> tuple[list[np.ndarray], float]:
        pipe.scheduler = scheduler
        images = [photos[k] for k, _ in jobs]
        start = time.perf_counter()
        out = pipe(
            images,
            target=[t for _, t in jobs],
            strength=args.strength,
            num_inference_steps=steps,
            faces=[faces[k] for k, _ in jobs],
            output_type="np",
            generator=[torch.Generator().manual_seed(seed + i) for i in range(len(jobs))],
        )
        seconds = time.perf_counter() - start
        return [rgb(np.rint(np.asarray(img) * 255.0)) for img in out.images], seconds / len(jobs)

    from diffusers import DDPMScheduler

    ddpm = DDPMScheduler.from_config(saved_scheduler.config)
    T = ddpm.config.num_train_timesteps
    start_t = int(T * args.strength)

    def unet_calls(scheduler, steps: int) -> str:
        pipe.scheduler = scheduler
        timesteps = pipe.get_timesteps(start_t, steps, torch.device("cpu"))
        return f"{len(timesteps)} ({int(timesteps[0]) if len(timesteps) else '-'})"

    configs: list[tuple[str, object, int]] = [
        (
            f"model default: {type(saved_scheduler).__name__} ({saved_scheduler.config.get('timestep_spacing', '?')})",
            saved_scheduler,
            default_steps,
        ),
    ]
    if not args.quick:
        spacings = [x.strip() for x in args.spacings.split(",") if x.strip()]
        for name in [x.strip() for x in args.samplers.split(",") if x.strip()]:
            class_name, overrides = SAMPLERS[name]
            for spacing in spacings:
                label = f"{name}, {spacing}" if len(spacings) > 1 else name
                for steps in [int(x) for x in args.steps.split(",")]:
                    scheduler = make_scheduler(pipe, class_name, {**overrides, "timestep_spacing": spacing})
                    configs.append((label, scheduler, steps))

    print(f"## Fast samplers vs the paper's DDPM from t_{start_t} (UNet calls (first t): {unet_calls(ddpm, T)})\n")
    print(c.machine_line(threads))
    print(
        f"model: {c.model_path(args.model)}; {len(photos)} photo(s) x targets {targets} = {len(jobs)} edits per "
        f"pipeline call (batched); strength {args.strength}; seed {args.seed}\n"
    )

    reference, paper_s = run(ddpm, T, args.seed)
    floor_images, floor_s = run(ddpm, T, args.seed + 1000)
    # The deterministic samplers all approximate one ODE solution; DDIM with every step is that solution, so the
    # PSNR to it measures a sampler's discretisation error alone (the paper-mode PSNR mixes in DDPM's sampling noise).
    ode = make_scheduler(pipe, "DDIMScheduler", {})
    ode_images, ode_s = run(ode, T, args.seed)
    paper_s = (paper_s + floor_s) / 2  # the same 251 calls twice: their mean is the paper mode's time
    times: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    outputs: dict[int, list[np.ndarray]] = {}
    for _ in range(args.repeats):  # interleaved, so load changes hit every configuration alike
        for i, (_, scheduler, steps) in enumerate(configs):
            images, seconds = run(scheduler, steps, args.seed)
            times[i].append(seconds)
            outputs.setdefault(i, images)

    judge = load_judge()

    def expression(images: list[np.ndarray]) -> tuple[float, float]:
        if judge is None:
            return float("nan"), float("nan")
        probs, hits = [], []
        for (k, target), image in zip(jobs, images):
            index = judge.class_index(target)
            if index is None:
                continue
            for face in faces[k]:
                pr = judge.predict_inputs(judge.face_input(image.astype(np.uint8), face.face.landmarks)[None])[0]
                probs.append(pr[index])
                hits.append(float(np.argmax(pr) == index))
        return (float(np.mean(probs)), float(np.mean(hits))) if probs else (float("nan"), float("nan"))

    def closeness(images: list[np.ndarray], to: list[np.ndarray] | None = None) -> float:
        return float(np.mean([psnr(a, b, m) for a, b, m in zip(images, reference if to is None else to, masks)]))

    def ode_closeness(images: list[np.ndarray]) -> float:
        return closeness(images, ode_images)

    originals = [np.asarray(photos[k].convert("RGB"), dtype=np.float64) for k, _ in jobs]
    rows = [
        (
            "unedited photo",
            "-",
            0,
            float("nan"),
            float("nan"),
            closeness(originals),
            ode_closeness(originals),
            *expression(originals),
        ),
        (
            "paper: DDPM (reference)",
            T,
            unet_calls(ddpm, T),
            paper_s,
            1.0,
            float("inf"),
            ode_closeness(reference),
            *expression(reference),
        ),
        (
            "paper: DDPM, another seed (floor)",
            T,
            unet_calls(ddpm, T),
            floor_s,
            paper_s / floor_s,
            closeness(floor_images),
            ode_closeness(floor_images),
            *expression(floor_images),
        ),
        (
            "converged ODE: DDIM, every step",
            T,
            unet_calls(ode, T),
            ode_s,
            paper_s / ode_s,
            closeness(ode_images),
            float("inf"),
            *expression(ode_images),
        ),
    ]
    for i, (name, scheduler, steps) in enumerate(configs):
        seconds = c.median(times[i])
        rows.append(
            (
                name,
                steps,
                unet_calls(scheduler, steps),
                seconds,
                paper_s / seconds,
                closeness(outputs[i]),
                ode_closeness(outputs[i]),
                *expression(outputs[i]),
            )
        )
    pipe.scheduler = saved_scheduler
    print(
        c.table(
            [
                "sampler",
                "num_inference_steps",
                "UNet calls (first t)",
                "s per edit (no detection)",
                "speed-up vs paper",
                "PSNR vs paper (dB)",
                "PSNR vs converged ODE (dB)",
                "p(target)",
                "hit rate",
            ],
            rows,
        )
    )
    print(f"\n`{c.command_line()}`")


if __name__ == "__main__":
    main()
