"""Pre- and post-processing for LocalExpressionPipeline: user images in and out, crops to and from the UNet.

Everything here is format conversion; no diffusion and no face geometry. The pipeline works on
upright RGB ``uint8`` arrays; :class:`PreparedImage` remembers what the user passed (grayscale,
alpha channel, type) so the result goes back in the same form and size.
"""

from __future__ import annotations

import math
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | str | os.PathLike
ColorMode = Literal["rgb", "luminance"]


class ImageLoadError(ValueError):
    """Raised when an input cannot be read or understood as an image. The message names the input and says what to
    do about it."""


#: Largest image (in pixels) that :func:`load_image` decodes: 400 MP, e.g. 20000x20000. Pillow's own
#: decompression-bomb guard refuses files above ~179 MP; a 20000x15000 (300 MP) photo is legitimate, so files are
#: checked against this limit instead, before any pixel is decoded. Editing costs about 4 full-size RGB copies
#: (about 12 bytes per pixel, 3.6 GB at 300 MP). Override it with the environment variable
#: ``DIFFUSERS_LED_MAX_IMAGE_PIXELS`` or by setting this attribute (``None`` or 0 disables the check).
MAX_IMAGE_PIXELS: int | None = 400_000_000

_PIL_LIMIT_LOCK = threading.Lock()
# Arrays are converted to uint8 this many values at a time, so that a float or 16-bit input of hundreds of
# megapixels never needs a full-size float64 copy.
_CHUNK_VALUES = 1 << 24


def max_image_pixels() -> int | None:
    """The pixel limit of :func:`load_image`: ``DIFFUSERS_LED_MAX_IMAGE_PIXELS`` if set, else
    :data:`MAX_IMAGE_PIXELS`; ``None`` means no limit."""
    value = os.environ.get("DIFFUSERS_LED_MAX_IMAGE_PIXELS")
    if value is not None and value.strip():
        try:
            limit = int(float(value))
        except ValueError as error:
            raise ImageLoadError(
                f"DIFFUSERS_LED_MAX_IMAGE_PIXELS={value!r} is not a number; set it to a pixel count such as "
                "400000000, or to 0 for no limit."
            ) from error
    else:
        limit = MAX_IMAGE_PIXELS
    return limit if limit and limit > 0 else None


@dataclass
class PreparedImage:
    """An upright RGB ``uint8`` copy of a user image and what is needed to give the result back in its form.

    Attributes:
        rgb: ``(H, W, 3)`` uint8, upright (EXIF orientation applied).
        alpha: the alpha channel as ``(H, W)`` uint8 when the input had one, else ``None``.
        grayscale: whether the input had a single luminance channel.
        name: a name for messages (the file name when known, else ``"image <index>"``).
        source: the input as given, returned as is when nothing is edited.
        precise: an array input holding more than 8 bits a value (uint16, float), ``(H, W[, C])`` as given: the
            pixels an edit leaves as they were come back from it, not from ``rgb``.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    grayscale: bool
    name: str
    source: object = None
    precise: np.ndarray | None = None


def _check_size(name: str, width: int, height: int) -> None:
    limit = max_image_pixels()
    if width < 1 or height < 1:
        raise ImageLoadError(f"{name}: the image is empty ({width}x{height} pixels).")
    if limit is not None and width * height > limit:
        digits = 0  # as many decimals as it takes to tell the two apart (400.02 is above 400.00)
        while digits < 6 and round(width * height / 1e6, digits) == round(limit / 1e6, digits):
            digits += 1
        raise ImageLoadError(
            f"{name}: {width}x{height} is {width * height / 1e6:.{digits}f} megapixels, above the limit of "
            f"{limit / 1e6:.{digits}f} megapixels (a guard against decompression bombs; editing needs about "
            f"{12 * width * height / 2**30:.1f} GiB of memory). Downscale the image, or raise the limit with the "
            "environment variable DIFFUSERS_LED_MAX_IMAGE_PIXELS (0 = no limit) if you trust the file."
        )


def _open(path: str) -> PIL.Image.Image:
    """``PIL.Image.open`` (header only) with this module's size limit in place of Pillow's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        try:
            return PIL.Image.open(path)
        except PIL.Image.DecompressionBombError:
            pass
        # Above twice Pillow's limit (about 179 MP): re-open with Pillow's guard off; our own limit applies next.
        with _PIL_LIMIT_LOCK:
            saved = PIL.Image.MAX_IMAGE_PIXELS
            PIL.Image.MAX_IMAGE_PIXELS = None
            try:
                return PIL.Image.open(path)
            finally:
                PIL.Image.MAX_IMAGE_PIXELS = saved


def _check_single_frame(name: str, image: PIL.Image.Image) -> None:
    """Refuse animations and multi-page files (GIF, APNG, WebP, TIFF, AVIF): which frame to edit is the user's
    choice, and editing the first one silently would drop the others. A JPEG's extra pictures (MPO: a phone's depth
    map or preview) are not frames of the photo; the first picture is the photo."""
    try:
        frames = getattr(image, "n_frames", 1)
    except Exception:  # noqa: BLE001 - a file whose frames cannot be counted is judged by its first frame
        return
    if frames > 1 and image.format != "MPO":
        raise ImageLoadError(
            f"{name}: has {frames} frames (an animation or a multi-page {image.format} file); only single images "
            "are edited. Save the frame to edit as its own file (e.g. PNG) and edit that."
        )


def load_image(path: str | os.PathLike) -> PIL.Image.Image:
    """Open an image file fully (so truncated files fail here), raising :class:`ImageLoadError` with the reason.

    The size is checked against :func:`max_image_pixels` from the header, before any pixel is decoded. Animations and
    multi-page files are refused (see :func:`_check_single_frame`).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ImageLoadError(f"{path}: is a folder, not an image file; pass the image files (led-edit takes folders).")
    if not os.path.isfile(path):
        if os.path.exists(path):
            raise ImageLoadError(f"{path}: not an image file (a device, pipe or socket); pass an image file.")
        raise ImageLoadError(f"{path}: no such file; check the path.")
    if os.path.getsize(path) == 0:
        raise ImageLoadError(f"{path}: the file is empty (0 bytes); re-export or re-download it.")
    try:
        image = _open(path)
    except PIL.UnidentifiedImageError as error:
        raise ImageLoadError(
            f"{path}: not an image file that can be read (unknown format or corrupt header, whatever its "
            "extension); use a PNG, JPEG, WebP, BMP or TIFF file."
        ) from error
    except OSError as error:
        raise ImageLoadError(f"{path}: cannot be read ({error}).") from error
    with image:
        _check_size(path, *image.size)
        _check_single_frame(path, image)
        try:
            image.load()
        except MemoryError as error:
            raise ImageLoadError(
                f"{path}: not enough memory to decode {image.size[0]}x{image.size[1]} pixels; downscale the image."
            ) from error
        except Exception as error:  # decoders raise OSError, SyntaxError, struct.error, zlib.error, EOFError ...
            reason = "truncated" if "truncated" in str(error) else "corrupt"
            raise ImageLoadError(
                f"{path}: the image data is {reason} ({type(error).__name__}: {error}); re-export or re-download "
                "the file."
            ) from error
        if image.format == "PNG" and _png_data_is_short(path, image):
            raise ImageLoadError(
                f"{path}: the image data is truncated (fewer pixel rows than its header says); re-export or "
                "re-download the file."
            )
    return image  # closing the file keeps the decoded pixels


# Channels of each PNG colour type, and the Adam7 passes (x0, y0, dx, dy) of an interlaced file.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_data_is_short(path: str, image: PIL.Image.Image) -> bool:
    """Whether a PNG file holds less pixel data than its header promises. Pillow decodes one whose compressed stream
    is complete but ends early without an error and leaves the missing rows 0 (black), so the data is counted (by
    inflating it, in bounded memory) when the last row is 0 or the file is interlaced; ``False`` when unsure."""
    width, height = image.size
    last_row = np.asarray(image.crop((0, height - 1, width, height)))
    if not image.info.get("interlace") and last_row.any():
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(8)  # the signature
            length, kind = struct.unpack(">I4s", handle.read(8))
            header = handle.read(length)
            if kind != b"IHDR" or len(header) != 13:
                return False
            bit_depth, colour, interlace = header[8], header[9], header[12]
            bits = bit_depth * _PNG_CHANNELS[colour]
            passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
            expected = 0
            for x0, y0, dx, dy in passes:
                columns, rows = math.ceil((width - x0) / dx), math.ceil((height - y0) / dy)
                if columns > 0 and rows > 0:
                    expected += rows * (1 + math.ceil(columns * bits / 8))  # a filter byte a row
            handle.seek(4, os.SEEK_CUR)  # IHDR's CRC
            inflater, produced = zlib.decompressobj(), 0
            while produced < expected:
                chunk_header = handle.read(8)
                if len(chunk_header) < 8:
                    break
                length, kind = struct.unpack(">I4s", chunk_header)
                if kind == b"IEND":
                    break
                if kind != b"IDAT":
                    handle.seek(length + 4, os.SEEK_CUR)
                    continue
                for offset in range(0, length, 1 << 20):
                    data = handle.read(min(1 << 20, length - offset))
                    while data and produced < expected:
                        produced += len(inflater.decompress(data, 1 << 22))
                        data = inflater.unconsumed_tail
                handle.seek(4, os.SEEK_CUR)  # the CRC
            while produced < expected:  # output the inflater holds back once max_length was reached
                more = len(inflater.decompress(b"", 1 << 22))
                if not more:
                    break
                produced += more
    except (OSError, KeyError, struct.error, zlib.error):
        return False
    return produced < expected


def _scale_to_uint8(array: np.ndarray, peak: float) -> np.ndarray:
    """``rint(array / peak * 255)`` clipped to uint8, a few rows at a time (bounded temporary memory)."""
    out = np.empty(array.shape, dtype=np.uint8)
    rows = max(1, _CHUNK_VALUES // max(1, array[:1].size))
    for start in range(0, array.shape[0], rows):
        chunk = array[start : start + rows].astype(np.float32) * np.float32(255.0 / peak)
        np.clip(np.rint(chunk, out=chunk), 0, 255, out=chunk)
        out[start : start + rows] = chunk
    return out


_ALPHA_MODES = ("RGBA", "LA", "PA")
_GRAY_MODES = ("L", "LA", "1")
_HIGH_DEPTH_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _pil_to_prepared(image: PIL.Image.Image, name: str) -> PreparedImage:
    try:
        if image.getexif().get(0x0112, 1) not in (None, 1):  # transposing copies: only when EXIF says so
            image = PIL.ImageOps.exif_transpose(image)
    except Exception as error:  # a corrupt EXIF block must not make the photo unusable
        warnings.warn(f"{name}: unreadable EXIF orientation ({error}); using the pixels as stored.", stacklevel=3)
    if image.width < 1 or image.height < 1:
        raise ImageLoadError(f"{name}: the image is empty ({image.width}x{image.height} pixels).")
    if image.mode in ("La", "RGBa"):  # premultiplied alpha: Pillow converts these only to their plain forms
        image = image.convert(image.mode[:-1] + "A")
    if image.mode in _HIGH_DEPTH_GRAY:
        # 16-bit, 32-bit or float grayscale: scale to 8 bits by the range of its type, not by clipping.
        array = np.asarray(image)
        if image.mode == "F":
            array = np.nan_to_num(array, nan=0.0, posinf=255.0, neginf=0.0)
            peak = 1.0 if array.size and float(array.max()) <= 1.0 else 255.0
        elif image.mode.startswith("I;16"):
            peak = 65535.0
        else:  # "I": 32-bit integers, usually 16-bit data (PNG, TIFF) or 8-bit values
            peak = 65535.0 if array.size and int(array.max()) > 255 else 255.0
        gray = _scale_to_uint8(array, peak)
        return PreparedImage(np.repeat(gray[..., None], 3, axis=2), None, True, name)
    has_alpha = image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)
    grayscale = image.mode in _GRAY_MODES
    try:
        alpha = np.array(image.convert("RGBA").getchannel("A")) if has_alpha else None
        rgb = np.array(image if image.mode == "RGB" else image.convert("RGB"))
    except (ValueError, OSError) as error:
        raise ImageLoadError(
            f"{name}: images in mode {image.mode!r} cannot be converted to RGB ({error}); convert it to RGB first."
        ) from error
    return PreparedImage(rgb, alpha, grayscale, name)


def _range_hint(low: float, high: float) -> str:
    if low >= -1.0 and high <= 1.0 and low < 0:
        return " It looks like [-1, 1] (diffusers' model range): pass (x + 1) / 2."
    if low >= 0 and high <= 255.0:
        return " It looks like [0, 255]: divide by 255 or pass uint8."
    if low >= 0 and high <= 65535.0:
        return " It looks like 16-bit values: divide by 65535 or pass uint16."
    return " Rescale it to [0, 1]."


def _array_to_prepared(array: np.ndarray, name: str) -> PreparedImage:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = " It looks channels-first: transpose arrays to (H, W, C) (tensors are (C, H, W))."
        elif array.ndim == 4:
            hint = " For a batch, pass a list of images."
        raise ImageLoadError(
            f"{name}: expected an array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}.{hint}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageLoadError(f"{name}: the image is empty ({array.shape}).")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * np.uint8(255)
    elif array.dtype == np.uint16:
        pixels = _scale_to_uint8(array, 65535.0)
    elif np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageLoadError(
                f"{name}: integer images of dtype {array.dtype} must hold 8-bit values in [0, 255], got values in "
                f"[{low}, {high}]; pass uint8, uint16 (16-bit) or float in [0, 1]."
            )
        pixels = array.astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        low, high = float(array.min()), float(array.max())  # NaN propagates through min/max
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ImageLoadError(
                f"{name}: the image contains NaN or infinite values; fix the computation that produced it "
                "(e.g. np.nan_to_num) before editing."
            )
        if low < 0 or high > 1:
            raise ImageLoadError(
                f"{name}: float images must be in [0, 1], got values in [{low:.3g}, {high:.3g}]."
                + _range_hint(low, high)
            )
        pixels = _scale_to_uint8(array, 1.0)
    else:
        raise ImageLoadError(
            f"{name}: unsupported dtype {array.dtype}; use uint8, uint16 (16-bit) or float in [0, 1]."
        )
    precise = array if array.dtype == np.uint16 or np.issubdtype(array.dtype, np.floating) else None
    if pixels.ndim == 2:
        return PreparedImage(np.repeat(pixels[..., None], 3, axis=2), None, True, name, precise=precise)
    alpha = pixels[..., 3].copy() if pixels.shape[-1] == 4 else None
    return PreparedImage(np.ascontiguousarray(pixels[..., :3]), alpha, False, name, precise=precise)


def is_image_batch(image: object) -> bool:
    """Whether ``image`` is a batch of images in one array: a ``(N, C, H, W)`` tensor or an ``(N, H, W[, C])`` array
    (the pipeline then treats it as a list of ``N`` images)."""
    if isinstance(image, torch.Tensor):
        return image.ndim == 4
    if isinstance(image, np.ndarray):
        return image.ndim == 4
    return False


def prepare_image(image: ImageInput, index: int = 0) -> PreparedImage:
    """Turn a PIL image, a file path, an ``(H, W[, C])`` array or a ``(C, H, W)`` (or ``(H, W)``) tensor in [0, 1]
    into a :class:`PreparedImage`.

    Raises:
        ImageLoadError: the input cannot be read or understood; the message names it and says what to do.
    """
    name = f"image {index}"
    source = image
    if isinstance(image, (str, os.PathLike)):
        name = os.fspath(image)
        image = load_image(image)
    if isinstance(image, PIL.Image.Image):
        name = getattr(image, "filename", None) or name
        prepared = _pil_to_prepared(image, name)
    elif isinstance(image, torch.Tensor):
        if image.ndim == 2:
            image = image[None]
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            hint = ""
            if image.ndim == 3 and image.shape[-1] in (1, 3, 4):
                hint = " It looks channels-last: pass tensor.permute(2, 0, 1)."
            elif image.ndim == 4:
                hint = " For a batch, pass the (N, C, H, W) tensor itself or a list of (C, H, W) tensors."
            raise ImageLoadError(
                f"{name}: expected a (C, H, W) tensor with C in 1, 3, 4, got {tuple(image.shape)}.{hint}"
            )
        tensor = image.detach().cpu()  # OpenCV and the compositing work in host memory, wherever the input is
        if tensor.is_complex():
            raise ImageLoadError(f"{name}: unsupported dtype {tensor.dtype}; use uint8 or float in [0, 1].")
        if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
            tensor = tensor.float()  # bfloat16 / float8 have no numpy equivalent
        prepared = _array_to_prepared(tensor.permute(1, 2, 0).numpy(), name)
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
    [0, 1]) or ``"pt"`` (float32 ``(C, H, W)`` in [0, 1]); ``C`` is 1 for grayscale input, 4 with alpha. With
    ``"np"`` and ``"pt"`` the pixels of a 16-bit or float array input that the edit did not change keep their values
    exactly (a float64 input as float32); a PIL image has 8 bits a value.
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
    if prepared.precise is not None:
        # A 16-bit or float input: the pixels the edit left as they were keep its values, not their 8-bit rounding.
        precise = prepared.precise
        precise = precise.astype(np.float32) / np.float32(65535.0 if precise.dtype == np.uint16 else 1.0)
        unchanged = np.all(rgb == prepared.rgb, axis=-1)
        np.copyto(as_float, precise.reshape(as_float.shape), where=unchanged[..., None])
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


#: Pillow formats whose files may have lost detail to compression. A WebP source counts as lossy (its header does not
#: say); an edit saved in a lossy format changes the pixels outside the edited regions too.
LOSSY_FORMATS = ("JPEG", "MPO", "WEBP", "AVIF", "HEIF")
#: Quality of JPEG, lossy WebP and AVIF outputs: near-invisible loss (measured in tests/test_nothing_lost.py).
OUTPUT_QUALITY = 95
# The colour space an ICC profile describes (bytes 16-20 of its header) that an image mode needs.
_ICC_SPACES = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY"}
_EXIF_ORIENTATION = 0x0112


def is_lossy_output(image_format: str, lossy_source: bool) -> bool:
    """Whether :func:`save_options` writes ``image_format`` with loss: JPEG and AVIF always, WebP when the source was
    itself lossy (a lossless source gives lossless WebP)."""
    return image_format in ("JPEG", "AVIF") or (image_format == "WEBP" and lossy_source)


def save_options(source: PIL.Image.Image | None, image_format: str, mode: str) -> dict[str, Any]:
    """Pillow ``save`` options that give an edited copy (in ``mode``) of the file image ``source`` its format-level
    properties: the ICC colour profile (when it fits ``mode``), the resolution (DPI) and the EXIF data with the
    orientation set to 1 (the pixels were turned upright when read). JPEG is written at :data:`OUTPUT_QUALITY` with
    the source's chroma subsampling (4:4:4 for other sources), WebP lossless for a lossless source, else at
    :data:`OUTPUT_QUALITY`, AVIF at :data:`OUTPUT_QUALITY`. Only lossless outputs (PNG, TIFF, lossless WebP) keep
    the pixels outside the edited regions bit-identical.
    """
    options: dict[str, Any] = {}
    info = getattr(source, "info", None) or {}
    profile = info.get("icc_profile")
    if isinstance(profile, bytes) and len(profile) >= 20 and profile[16:20] == _ICC_SPACES.get(mode):
        options["icc_profile"] = profile
    if info.get("dpi"):
        options["dpi"] = tuple(float(value) for value in info["dpi"])
    if source is not None:
        try:
            exif = source.getexif()
        except Exception:  # noqa: BLE001 - a corrupt EXIF block is dropped, not a reason to lose the edit
            exif = None
        if exif:
            if _EXIF_ORIENTATION in exif:
                exif[_EXIF_ORIENTATION] = 1
            options["exif"] = exif.tobytes()
    if image_format == "JPEG":
        from PIL import JpegImagePlugin

        sampling = JpegImagePlugin.get_sampling(source) if getattr(source, "format", None) == "JPEG" else -1
        options.update(quality=OUTPUT_QUALITY, subsampling=max(sampling, 0))
    elif image_format == "WEBP":
        lossy = is_lossy_output(image_format, getattr(source, "format", None) in LOSSY_FORMATS)
        # exact: lossless WebP otherwise drops the colour of fully transparent pixels.
        options.update({"quality": OUTPUT_QUALITY} if lossy else {"lossless": True, "quality": 100, "exact": True})
    elif image_format == "AVIF":
        options["quality"] = OUTPUT_QUALITY
    return options


def crops_to_tensor(crops: list[np.ndarray], color_mode: ColorMode) -> torch.Tensor:
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


def tensor_to_crops(samples: torch.Tensor, sources: list[np.ndarray], color_mode: ColorMode) -> list[np.ndarray]:
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


@dataclass
class CropExposure:
    """A per-crop affine map of brightness and contrast, ``crops * scale + shift``, and its inverse.

    A small model trained on few people learns their lighting along with their expressions (the CK+ peak frames of
    the training people are much brighter than other photos). Mapping every crop to the training crops' mean level
    and contrast before denoising, and the result back afterwards, shows the model a crop it knows whatever the
    exposure of the photo, and gives the photo back its own.
    """

    scale: torch.Tensor  # (N, 1, 1, 1)
    shift: torch.Tensor  # (N, 1, 1, 1)

    # A nearly flat crop (a blown-out or black region) would otherwise have its noise amplified without limit.
    MAX_GAIN = 2.0

    @classmethod
    def matching(cls, crops: torch.Tensor, means: torch.Tensor, stds: torch.Tensor) -> CropExposure:
        """The map that gives each crop of ``crops`` (``(N, C, S, S)``) the mean ``means[i]`` and the standard
        deviation ``stds[i]`` (both ``(N,)``, in the crops' units), with the gain kept within
        ``[1 / MAX_GAIN, MAX_GAIN]``."""
        flat = crops.flatten(1)
        mean, std = flat.mean(dim=1), flat.std(dim=1)
        scale = (stds / std.clamp_min(1e-6)).clamp(1.0 / cls.MAX_GAIN, cls.MAX_GAIN)
        shift = means - mean * scale
        return cls(scale=scale.view(-1, 1, 1, 1), shift=shift.view(-1, 1, 1, 1))

    @classmethod
    def to_statistics(
        cls, crops: torch.Tensor, regions: Sequence[str], statistics: dict[str, list[float]]
    ) -> CropExposure:
        """The map that gives each crop its region's ``[mean, std]`` in ``statistics`` (see :func:`crop_statistics`);
        ``regions[i]`` names crop ``i``'s region."""
        values = [statistics[region] for region in regions]
        means, stds = torch.tensor(values, dtype=crops.dtype, device=crops.device).T
        return cls.matching(crops, means, stds)

    def apply(self, crops: torch.Tensor) -> torch.Tensor:
        return crops * self.scale + self.shift

    def invert(self, crops: torch.Tensor) -> torch.Tensor:
        return (crops - self.shift) / self.scale


def crop_statistics(crops: torch.Tensor, regions: Sequence[str]) -> dict[str, list[float]]:
    """Per region, the mean level and the mean per-crop standard deviation of ``crops`` (``(N, C, S, S)`` in the
    UNet's units, ``regions[i]`` naming crop ``i``'s region): what :class:`CropExposure` maps other crops to. Training
    stores them in the model as ``crop_statistics``."""
    flat = crops.flatten(1)
    means, stds = flat.mean(dim=1), flat.std(dim=1)
    statistics = {}
    for region in sorted(set(regions)):
        index = torch.tensor([r == region for r in regions], device=crops.device)
        statistics[region] = [round(float(means[index].mean()), 6), round(float(stds[index].mean()), 6)]
    return statistics
