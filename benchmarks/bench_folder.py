"""Faces per second when editing a folder: one photo at a time vs batches vs batches with the next batch's faces
detected in a background thread (what ``led-edit folder/`` does), and optionally one ``led-edit`` process per photo
vs one for the whole folder.

    python benchmarks/bench_folder.py --model /tmp/led-cpu [--folder photos/] [--images 16] [--batch-size N] [--cli 4]

Without ``--folder`` the photos are variants of examples/astronaut.png (mirrored, rescaled, rotated, relit), written
to a temporary folder. Runs go through ``diffusers_led.batch.edit_files`` (the code of ``led-edit``) without saving;
the configurations are interleaved and the median is reported. Threads: as ``led-edit`` chooses them
(``recommended_num_threads``) unless ``--threads`` is given.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c
import numpy as np


def make_folder(folder: Path, count: int) -> list:
    import cv2
    from PIL import Image

    base = np.asarray(Image.open(c.EXAMPLE_IMAGE).convert("RGB"))
    paths = []
    for i in range(count):
        image = base[:, ::-1] if i % 2 else base
        scale = (0.8, 1.0, 1.25, 0.9)[i // 2 % 4]
        angle = (-8.0, 0.0, 6.0)[i % 3]
        h, w = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
        image = np.clip(image.astype(np.float32) * (0.85 + 0.05 * (i % 5)), 0, 255).astype(np.uint8)
        path = folder / f"face_{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def main() -> None:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--folder", default=None, help="A folder of photos (default: astronaut variants).")
    p.add_argument("--images", type=int, default=16, help="Photos used (generated, or the first of --folder).")
    p.add_argument("--batch-size", type=int, default=None, help="Default: led-edit's (about 16 crops per UNet call).")
    p.add_argument("--target", default="happy")
    c.add_sampler_args(p)
    p.add_argument("--cli", type=int, default=0, help="Also time N photos as N led-edit processes vs one (slow).")
    p.set_defaults(repeats=2)
    args = p.parse_args()

    import torch

    from diffusers_led.batch import default_batch_size, edit_files
    from diffusers_led.cpu import recommended_num_threads

    tmp = tempfile.TemporaryDirectory(prefix="led-bench-folder-")
    if args.folder:
        paths = c.collect_images([args.folder])[: args.images]
    else:
        paths = make_folder(Path(tmp.name), args.images)
    pipe, _ = c.load_pipeline(args.model, optimize=True)
    if args.fast_scheduler:
        pipe.use_fast_scheduler()
    pipe.region_processor.detector.load()
    if args.batch_size is None:
        args.batch_size = default_batch_size(pipe)

    def threads_for(prefetch: bool) -> int:  # as led-edit: the detection thread shares the cores
        return args.threads or recommended_num_threads()

    configs = {
        "one by one (batch 1)": dict(batch_size=1, prefetch=False),
        f"batch {args.batch_size}": dict(batch_size=args.batch_size, prefetch=False),
        f"batch {args.batch_size} + detection thread (led-edit)": dict(batch_size=args.batch_size, prefetch=True),
    }
    results = {name: [] for name in configs}
    faces = {}
    next(edit_files(pipe, paths[:1], args.target, batch_size=1, prefetch=False, bf16=args.bf16))  # warm-up
    for _ in range(args.repeats):
        for name, kwargs in configs.items():
            n = threads_for(kwargs["prefetch"])
            torch.set_num_threads(n)
            start = time.perf_counter()
            found = sum(
                len(r.faces)
                for r in edit_files(pipe, paths, args.target, num_inference_steps=args.steps, bf16=args.bf16, **kwargs)
            )
            results[name].append(time.perf_counter() - start)
            faces[name] = (found, n)

    base = c.median(results[next(iter(configs))])
    rows = []
    for name in configs:
        seconds = c.median(results[name])
        found, n = faces[name]
        rows.append((name, n, found, seconds, found / seconds, base / seconds))

    if args.cli:
        out = Path(tmp.name) / "out"
        model = c.model_path(args.model)
        if args.fast_scheduler:  # the led-edit processes load the model from disk: save it with the fast sampler
            fresh, _ = c.load_pipeline(args.model)
            fresh.use_fast_scheduler()
            model = str(Path(tmp.name) / "model")
            fresh.save_pretrained(model)
        command = [
            sys.executable,
            "-m",
            "diffusers_led.cli",
            "edit",
            "--target",
            args.target,
            "--model",
            model,
            "--overwrite",
        ]
        if args.steps:
            command += ["--steps", str(args.steps)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.bf16:
            command += ["--bf16"]
        subset = [str(p) for p in paths[: args.cli]]
        env = dict(os.environ)
        per_file = c.timed(
            lambda: [
                subprocess.run(command + [p, "-o", str(out)], check=True, capture_output=True, env=env) for p in subset
            ]
        )
        folder = Path(tmp.name) / "cli_in"
        folder.mkdir(exist_ok=True)
        for p in subset:
            (folder / Path(p).name).write_bytes(Path(p).read_bytes())
        whole = c.timed(
            lambda: subprocess.run(command + [str(folder), "-o", str(out)], check=True, capture_output=True, env=env)
        )
        rows.append(
            (
                f"{args.cli} x `led-edit photo` (a process each)",
                "auto",
                args.cli,
                per_file,
                args.cli / per_file,
                float("nan"),
            )
        )
        rows.append(
            (
                f"`led-edit folder/` ({args.cli} photos, one process)",
                "auto",
                args.cli,
                whole,
                args.cli / whole,
                float("nan"),
            )
        )

    print(f"## Folder editing: faces per second ({len(paths)} photos)\n")
    print(c.machine_line())
    print(
        f"model: {c.model_path(args.model)}; scheduler {type(pipe.scheduler).__name__}, num_inference_steps "
        f"{args.steps or pipe.config.default_num_inference_steps}; median of {args.repeats} interleaved runs; "
        f"images read and faces detected inside the timing, nothing saved\n"
    )
    print(c.table(["configuration", "torch threads", "faces", "seconds", "faces/s", "speed-up vs one by one"], rows))
    if args.cli:
        print(
            f"\nOne process per photo vs one for the folder: {rows[-2][3] / rows[-1][3]:.1f}x "
            "(process start + model load per photo)."
        )
    print(f"\n`{c.command_line()}`")


if __name__ == "__main__":
    main()
