"""Pre- and post-processing for LocalExpressionPipeline: user images in and out, crops to and from the UNet.

Everything here is format conversion; no diffusion and no face geometry. The pipeline works on
upright RGB ``uint8`` arrays; :class:`PreparedImage` remembers what the user passed (grayscale,
alpha channel, type) so the result goes back in the same form and size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Literal, Optional, Union

import cv2
import numpy as np
import PIL.Image
import PIL.ImageOps
import torch


ImageInput = Union[PIL.Image.Image, np.ndarray, torch.Tensor, str, os.PathLike]
ColorMode = Literal["rgb", "luminance"]


class ImageLoadError(ValueError):
    """Raised when an input cannot be read or understood as an image."""


@dataclass
class PreparedImage:
    """An upright RGB ``uint8`` copy of a user image and what is needed to give the result back in its form.

    Attributes:
        rgb: ``(H, W, 3)`` uint8, upright (EXIF orientation applied).
        alpha: the alpha channel as ``(H, W)`` uint8 when the input had one, else ``None``.
        grayscale: whether the input had a single luminance channel.
        name: a name for messages (the file name when known, else ``"image <index>"``).
        source: the input as given, returned as is when nothing is edited.
    """

    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    grayscale: bool
    name: str
    source: object = None


def load_image(path: Union[str, os.PathLike]) -> PIL.Image.Image:
    """Open an image file fully (so truncated files fail here), raising :class:`ImageLoadError` with the reason."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageLoadError(f"{path}: no such file.")
    try:
        with PIL.Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as error:
        raise ImageLoadError(f"{path}: not a readable image ({error}).") from error


def _pil_to_prepared(image: PIL.Image.Image, name: str) -> PreparedImage:
    image = PIL.ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit or float grayscale: scale to 8 bits by its own range type, not by clipping.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I") and array.max() > 255 else 255.0
        gray = np.clip(np.rint(array / peak * 255.0), 0, 255).astype(np.uint8)
        return PreparedImage(np.repeat(gray[..., None], 3, axis=2), None, True, name)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    grayscale = image.mode in ("L", "LA", "1")
    alpha = np.asarray(image.convert("RGBA"))[..., 3].copy() if has_alpha else None
    rgb = np.asarray(image.convert("RGB")).copy()
    return PreparedImage(rgb, alpha, grayscale, name)


def _array_to_prepared(array: np.ndarray, name: str) -> PreparedImage:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageLoadError(
            f"{name}: expected an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}."
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageLoadError(f"{name}: the image is empty ({array.shape}).")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = (array.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_:
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise ImageLoadError(f"{name}: the image contains NaN or infinite values.")
        if array.min() < 0 or array.max() > 1:
            raise ImageLoadError(
                f"{name}: float images must be in [0, 1], got values in [{array.min():.3g}, {array.max():.3g}]."
            )
        pixels = np.rint(array * 255.0).astype(np.uint8)
    else:
        raise ImageLoadError(f"{name}: unsupported dtype {array.dtype}; use uint8, uint16 or float in [0, 1].")
    if pixels.ndim == 2:
        return PreparedImage(np.repeat(pixels[..., None], 3, axis=2), None, True, name)
    alpha = pixels[..., 3].copy() if pixels.shape[-1] == 4 else None
    return PreparedImage(np.ascontiguousarray(pixels[..., :3]), alpha, False, name)


def prepare_image(image: ImageInput, index: int = 0) -> PreparedImage:
    """Turn a PIL image, a file path, an ``(H, W[, C])`` array or a ``(C, H, W)`` tensor in [0, 1] into a
    :class:`PreparedImage`."""
    name = f"image {index}"
    source = image
    if isinstance(image, (str, os.PathLike)):
        name = os.fspath(image)
        image = load_image(image)
    if isinstance(image, PIL.Image.Image):
        name = getattr(image, "filename", None) or name
        prepared = _pil_to_prepared(image, name)
    elif isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            raise ImageLoadError(f"{name}: expected a (C, H, W) tensor with C in 1, 3, 4, got {tuple(image.shape)}.")
        prepared = _array_to_prepared(image.detach().cpu().permute(1, 2, 0).numpy(), name)
    elif isinstance(image, np.ndarray):
        prepared = _array_to_prepared(image, name)
    else:
        raise ImageLoadError(
            f"{name}: unsupported image type {type(image).__name__}; pass a PIL image, a numpy array, "
            "a torch tensor or a file path."
        )
    prepared.source = source
    return prepared


def restore_image(rgb: np.ndarray, prepared: PreparedImage, output_type: str = "pil"):
    """Give an edited upright RGB ``uint8`` image back in the form the input came in.

    ``output_type`` is ``"pil"`` (a PIL image in mode L, LA, RGB or RGBA), ``"np"`` (float32 ``(H, W, C)`` in
    [0, 1]) or ``"pt"`` (float32 ``(C, H, W)`` in [0, 1]); ``C`` is 1 for grayscale input, 4 with alpha.
    """
    if prepared.grayscale:
        # Grayscale inputs edit with three equal channels; any drift between them is rounding.
        pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None]
    else:
        pixels = rgb
    if prepared.alpha is not None:
        pixels = np.concatenate([pixels, prepared.alpha[..., None]], axis=2)
    if output_type == "pil":
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
        return PIL.Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode)
    as_float = pixels.astype(np.float32) / 255.0
    if output_type == "np":
        return as_float
    if output_type == "pt":
        return torch.from_numpy(as_float).permute(2, 0, 1).contiguous()
    raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}.")


def return_unchanged(prepared: PreparedImage, output_type: str = "pil"):
    """The input itself (a copy) when it is already of the requested output type, else :func:`restore_image`."""
    source = prepared.source
    if output_type == "pil" and isinstance(source, PIL.Image.Image):
        return source.copy()
    if output_type == "np" and isinstance(source, np.ndarray):
        return source.copy()
    if output_type == "pt" and isinstance(source, torch.Tensor):
        return source.clone()
    return restore_image(prepared.rgb, prepared, output_type)


def crops_to_tensor(crops: List[np.ndarray], color_mode: ColorMode) -> torch.Tensor:
    """Stack RGB ``uint8`` crops into the UNet's input in [-1, 1]: ``(N, 3, S, S)`` for ``"rgb"``, ``(N, 1, S, S)``
    (the Y of YCrCb) for ``"luminance"``."""
    if color_mode == "luminance":
        planes = [cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb)[..., :1] for crop in crops]
    elif color_mode == "rgb":
        planes = crops
    else:
        raise ValueError(f"color_mode must be 'rgb' or 'luminance', got {color_mode!r}.")
    stacked = torch.from_numpy(np.stack(planes)).permute(0, 3, 1, 2).float()
    return stacked / 127.5 - 1.0


def tensor_to_crops(samples: torch.Tensor, sources: List[np.ndarray], color_mode: ColorMode) -> List[np.ndarray]:
    """Turn UNet samples in [-1, 1] back into RGB float crops in [0, 255].

    In ``"luminance"`` mode the edited Y is merged with the chroma of the ``sources`` crops, so colour photos keep
    their colour under a model trained on grayscale.
    """
    values = ((samples.float().clamp(-1, 1) + 1.0) * 127.5).permute(0, 2, 3, 1).cpu().numpy()
    if color_mode == "rgb":
        return list(values)
    edited = []
    for luma, source in zip(values, sources):
        # Float conversions work in [0, 1] (OpenCV's chroma offset is 0.5 there).
        ycrcb = cv2.cvtColor(source.astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb)
        ycrcb[..., 0] = luma[..., 0] / 255.0
        edited.append(cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB).clip(0.0, 1.0) * 255.0)
    return edited
