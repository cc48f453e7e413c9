"""Shared helpers of the benchmark scripts: arguments, threads, timing and markdown tables.

Benchmarks print ratios measured in one run, interleaving the things compared, because absolute times on a shared
machine move with whatever else runs; the machine line of every report says what the load was.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from diffusers_led.commands import ArgumentParser
from diffusers_led.utils import IMAGE_EXTENSIONS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_IMAGE = REPO / "examples" / "astronaut.png"


def parser(description: str) -> ArgumentParser:
    p = ArgumentParser(description=description)
    p.add_argument("--model", default=None, help="Model folder or Hub id (default: the bundled model).")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: diffusers_led.cpu.recommended_num_threads(), as led-edit uses).",
    )
    p.add_argument("--repeats", type=int, default=5, help="Timed repetitions (the median is reported).")
    p.add_argument("--seed", type=int, default=0)
    return p


def add_sampler_args(p: ArgumentParser) -> None:
    """The sampler options of the scripts that edit with the model's settings."""
    p.add_argument("--steps", type=int, default=None, help="num_inference_steps (default: the model's).")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast, as led-edit --bf16.")
    p.add_argument(
        "--fast-scheduler",
        action="store_true",
        help="Use LocalExpressionPipeline.use_fast_scheduler() instead of the model's saved sampler.",
    )


def region_labels(unet, count: int):
    """The class labels a region-conditioned UNet needs for ``count`` crops (eyes, mouth, eyes ...); ``None`` for a
    UNet without region classes. They do not change the cost."""
    import torch

    classes = unet.config.num_class_embeds
    return None if classes is None else torch.arange(count) % classes


def model_path(model: str | None) -> str:
    from diffusers_led.pretrained import resolve_model

    return resolve_model(model)


def set_threads(threads: int | None, background_threads: int = 0) -> int:
    import torch

    from diffusers_led.cpu import recommended_num_threads

    n = threads or recommended_num_threads(background_threads=background_threads)
    torch.set_num_threads(n)
    return n


def load_pipeline(model: str | None, optimize: bool = False):
    """``(pipe, seconds)``: the pipeline loaded with progress bars off; ``optimize`` applies led-edit's inference
    settings (``diffusers_led.cpu.optimize_for_cpu``: channels_last) after the timed load."""
    import diffusers

    from diffusers_led import LocalExpressionPipeline

    diffusers.utils.logging.disable_progress_bar()
    start = time.perf_counter()
    pipe = LocalExpressionPipeline.from_pretrained(model_path(model))
    seconds = time.perf_counter() - start
    pipe.set_progress_bar_config(disable=True)
    if optimize:
        from diffusers_led.cpu import optimize_for_cpu

        optimize_for_cpu(pipe)
    return pipe, seconds


def collect_images(items: Sequence[str]) -> list[Path]:
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            paths.append(path)
    return paths


def machine_line(threads: int | None = None) -> str:
    import torch

    from diffusers_led.cpu import available_cpus

    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        load = "n/a"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"machine: {cpu}, {available_cpus()} usable cores, torch {torch.__version__}, "
        f"{threads or torch.get_num_threads()} torch threads, 1-min load average {load} at start, "
        f"python {sys.version.split()[0]}"
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


@contextmanager
def wrapped(obj, name: str, totals: dict[str, float], key: str | None = None):
    """Time every call of ``obj.name`` into ``totals[key]`` (an instance attribute shadows the method)."""
    original = getattr(obj, name)
    key = key or name

    def timed_call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - start

    setattr(obj, name, timed_call)
    try:
        yield totals
    finally:
        try:
            delattr(obj, name)
        except AttributeError:
            setattr(obj, name, original)


def flop_counter():
    """``torch.utils.flop_counter.FlopCounterMode`` that also counts CPU attention: torch's CPU kernel of
    ``scaled_dot_product_attention`` (``_scaled_dot_product_flash_attention_for_cpu``) has no FLOP formula of its
    own and would count as 0."""
    import torch
    from torch.utils import flop_counter

    def attention_flops(query, key, value, *args, out_shape=None, **kwargs):
        return flop_counter.sdpa_flop_count(query, key, value)

    custom = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        custom[op] = attention_flops
    return flop_counter.FlopCounterMode(display=False, custom_mapping=custom)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            if np.isnan(value):
                return "n/a"
            if value == float("inf"):
                return "inf"
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])
