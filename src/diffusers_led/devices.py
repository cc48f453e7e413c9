"""Where a pipeline runs: the ``--device`` and ``--dtype`` options shared by ``led-edit``, ``led-evaluate`` and
``led-demo``, resolved in one place."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .commands import ArgumentParser

if TYPE_CHECKING:  # torch is imported where it is used: argument parsing must not pay for it
    import torch


DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: ``--dtype`` names (the torch dtypes of the same names).
DTYPES = ("float32", "float16", "bfloat16")
DEVICE_HELP = (
    "Where the UNet runs: auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps. Under accelerate "
    "launch, auto and cuda use each process's own GPU."
)
DTYPE_HELP = (
    "Weights and denoising precision: auto (float16 on CUDA, float32 elsewhere), float32, float16 or bfloat16. The "
    "edited crops are composited in float32 whatever the choice."
)


class DeviceError(ValueError):
    """A ``--device`` or ``--dtype`` this machine cannot honour (reported as one line by the command-line tools)."""


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The torch device for a ``--device`` value.

    ``"auto"`` is the first GPU there is (CUDA, then MPS), else the CPU. ``"cuda"`` without an index means this
    process's own GPU: ``LOCAL_RANK`` under ``accelerate launch --multi_gpu`` or ``torchrun``, else the current one.
    Raises :class:`DeviceError` (one line, saying what to use instead) for a device this machine does not have.
    """
    import torch

    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        text = "cuda" if _cuda_count() else "mps" if _mps_available() else "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(
            f"--device {name!r} is not a device; use one of {', '.join(DEVICE_CHOICES)} (N: a GPU index)."
        ) from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        count = _cuda_count()
        if count == 0:
            raise DeviceError(
                f"--device {text}: CUDA is not available here (torch {torch.__version__}"
                f"{', built without CUDA' if torch.version.cuda is None else ', no GPU found'}); use --device cpu or "
                "auto."
            )
        index = device.index
        if index is None:
            local_rank = os.environ.get("LOCAL_RANK")
            index = int(local_rank) if local_rank is not None else torch.cuda.current_device()
        if not 0 <= index < count:
            raise DeviceError(f"--device {text}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}.")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError(f"--device {text}: Apple's MPS backend is not available here; use --device cpu or auto.")
        return torch.device("mps")
    raise DeviceError(f"--device {name!r} is not supported; use one of {', '.join(DEVICE_CHOICES)}.")


def resolve_dtype(name: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The torch dtype for a ``--dtype`` value on ``device``: ``"auto"`` is float16 on CUDA (half the memory, tensor
    cores) and float32 elsewhere (CPU half precision is emulated by most CPUs: slower, not faster)."""
    import torch

    if isinstance(name, torch.dtype):
        if name not in [getattr(torch, known) for known in DTYPES]:
            raise DeviceError(f"--dtype {name}: use one of auto, {', '.join(DTYPES)}.")
        return name
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    if text not in DTYPES:
        raise DeviceError(f"--dtype {name!r}: use one of auto, {', '.join(DTYPES)}.")
    return getattr(torch, text)


def resolve_device_and_dtype(
    device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = "auto"
) -> tuple[torch.device, torch.dtype]:
    """:func:`resolve_device` and then :func:`resolve_dtype` for it."""
    resolved = resolve_device(device)
    return resolved, resolve_dtype(dtype, resolved)


def add_device_arguments(parser: ArgumentParser) -> None:
    """Add ``--device`` and ``--dtype`` (both default ``auto``) to a command's parser."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--dtype", default="auto", choices=("auto", *DTYPES), help=DTYPE_HELP)


def load_pipeline_on(
    model: str | os.PathLike,
    device: str | torch.device | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    **kwargs,
):
    """``LocalExpressionPipeline.from_pretrained(model, torch_dtype=..., **kwargs)`` moved to the resolved device. The
    device is resolved first, so an unavailable GPU fails before anything loads."""
    from .pipeline_led import LocalExpressionPipeline

    resolved, torch_dtype = resolve_device_and_dtype(device, dtype)
    pipe = LocalExpressionPipeline.from_pretrained(os.fspath(model), **{_dtype_keyword(): torch_dtype}, **kwargs)
    return pipe.to(resolved)


def _dtype_keyword() -> str:
    """``from_pretrained``'s name for the dtype: recent diffusers renamed ``torch_dtype`` to ``dtype`` (the old name
    warns), older ones know only ``torch_dtype``."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


__all__ = [
    "DEVICE_CHOICES",
    "DTYPES",
    "DeviceError",
    "add_device_arguments",
    "load_pipeline_on",
    "resolve_device",
    "resolve_device_and_dtype",
    "resolve_dtype",
]
