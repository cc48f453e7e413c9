"""Hostile inputs and interrupted work: every bad input gets a correct result or one specific error naming it and
saying what to do (never a traceback from inside OpenCV or torch), and a crash or a kill loses no finished work.

Real faces (the astronaut portrait, or a 180x180 crop around its face for speed) and a tiny random pipeline; the
few subprocess tests (real SIGKILLs) run concurrently.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zlib
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import PIL.Image
import pytest
import torch
from accelerate.state import PartialState
from conftest import EXAMPLE_IMAGE, StubProcessor, make_tiny_pipeline

from diffusers_led import LocalExpressionPipeline, NoFaceDetectedError
from diffusers_led import data as data_module
from diffusers_led.cli import edit_main
from diffusers_led.image_processor import ImageLoadError, load_image, prepare_image
from diffusers_led.output_files import atomic_save
from diffusers_led.pipeline_led import UnsafeWeightsError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train_led  # noqa: E402

SUBPROCESS_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(PIL.Image.open(EXAMPLE_IMAGE).convert("RGB"))


@pytest.fixture(scope="module")
def face(astronaut) -> np.ndarray:
    """180x180 around the astronaut's face (a 90 px face): detection on it is fast."""
    return np.ascontiguousarray(astronaut[40:220, 130:310])


@pytest.fixture(scope="module")
def pipe() -> LocalExpressionPipeline:
    return make_tiny_pipeline()


@pytest.fixture(scope="module")
def model_dir(pipe, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    pipe.save_pretrained(folder)
    return folder


def quick_edit(pipe, image, **kwargs):
    """One denoising step on the mouth only: exercises the whole pipeline at the lowest cost."""
    kwargs = {"target": "happy", "strength": 0.05, "num_inference_steps": 10, "regions": ("mouth",), **kwargs}
    return pipe(image, generator=torch.Generator().manual_seed(0), **kwargs)


def assert_only_masked_pixels_changed(pipe, source_rgb: np.ndarray, output_rgb: np.ndarray, faces) -> None:
    assert output_rgb.shape == source_rgb.shape
    untouched = pipe.region_processor.composite_mask(source_rgb.shape, faces) == 0
    assert np.array_equal(output_rgb[untouched], source_rgb[untouched])


def png_header_only(path: Path, width: int, height: int, mode_bytes=(8, 0)) -> Path:
    """A PNG whose header says ``width x height`` and whose image data stops after a few rows (no decoding cost)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, mode_bytes[0], mode_bytes[1], 0, 0, 0)
    compressor = zlib.compressobj()
    rows = compressor.compress(b"\x00" * (width + 1) * 4) + compressor.flush(zlib.Z_SYNC_FLUSH)  # stream not ended
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows))
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Files that are not (whole) images
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path, face) -> dict:
    good = tmp_path / "good.png"
    PIL.Image.fromarray(face).save(good)
    png, jpeg = good.read_bytes(), io.BytesIO()
    PIL.Image.fromarray(face).save(jpeg, format="JPEG")
    files = {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 2],
        "corrupt.png": png[:60] + bytes(range(256)) * 8 + png[60 + 2048 :],
        "text.png": b"this is not an image, whatever its extension says\n",
        "html.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
    }
    # A complete compressed stream holding only the top half of the rows: Pillow decoded it, the rest black.
    height, width = face.shape[:2]
    top = b"".join(b"\x00" + face[y].tobytes() for y in range(height // 2))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    files["short.png"] = png[:8] + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(top))
    files["short.png"] += _png_chunk(b"IEND", b"")
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return {name: tmp_path / name for name in files}


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


EXPECTED_FILE_ERRORS = {
    "empty.png": "the file is empty (0 bytes); re-export or re-download it",
    "truncated.png": "truncated",
    "truncated.jpg": "truncated",
    "short.png": "the image data is truncated (fewer pixel rows than its header says)",
    "corrupt.png": "re-export or re-download",
    "text.png": "not an image file that can be read",
    "html.jpg": "not an image file that can be read",
}


def test_unreadable_files_give_one_clear_error_naming_the_file(bad_files, tmp_path):
    for name, path in bad_files.items():
        with pytest.raises(ImageLoadError) as caught:
            prepare_image(path)
        message = str(caught.value)
        assert message.startswith(str(path)) and EXPECTED_FILE_ERRORS[name] in message, message
    with pytest.raises(ImageLoadError, match="is a folder, not an image file"):
        load_image(tmp_path)
    with pytest.raises(ImageLoadError, match="no such file; check the path"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="/dev/zero: not an image file \\(a device, pipe or socket\\)"):
        load_image("/dev/zero")
    black = tmp_path / "black.png"  # complete files whose last rows are 0 are read as they are
    PIL.Image.new("RGB", (300, 200)).save(black)
    assert not np.asarray(load_image(black)).any()


def test_pipeline_reports_the_bad_file_of_a_list(pipe, bad_files, face):
    with pytest.raises(ImageLoadError, match="truncated.jpg: the image data is truncated"):
        quick_edit(pipe, [face, bad_files["truncated.jpg"]])


def test_image_size_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    """20000x15000 (300 MP) passes the size check although Pillow's own guard refuses anything above ~179 MP; 600 MP
    is refused by its header, with the limit and the way to raise it. Neither file is decoded."""
    monkeypatch.delenv("DIFFUSERS_LED_MAX_IMAGE_PIXELS", raising=False)
    big = png_header_only(tmp_path / "big.png", 20000, 15000)
    with pytest.raises(PIL.Image.DecompressionBombError):
        PIL.Image.open(big)  # what a plain Pillow user meets
    with pytest.raises(ImageLoadError) as caught:
        load_image(big)
    assert "truncated" in str(caught.value)  # got past the size check: the header-only file is cut short

    start = time.perf_counter()
    with pytest.raises(ImageLoadError) as caught:
        load_image(png_header_only(tmp_path / "huge.png", 30000, 20000))
    message = str(caught.value)
    assert "30000x20000 is 600 megapixels, above the limit of 400 megapixels" in message
    assert "DIFFUSERS_LED_MAX_IMAGE_PIXELS" in message and time.perf_counter() - start < 1.0
    assert PIL.Image.MAX_IMAGE_PIXELS == 89478485, "Pillow's global guard is left as it was"

    small = tmp_path / "small.png"
    PIL.Image.new("L", (2000, 1000)).save(small)
    monkeypatch.setenv("DIFFUSERS_LED_MAX_IMAGE_PIXELS", "1000000")
    with pytest.raises(ImageLoadError, match="2000x1000 is 2 megapixels, above the limit of 1 megapixels"):
        load_image(small)
    monkeypatch.delenv("DIFFUSERS_LED_MAX_IMAGE_PIXELS")
    with pytest.raises(ImageLoadError, match="20001x20000 is 400.02 megapixels, above the limit of 400.00 megapixels"):
        load_image(png_header_only(tmp_path / "just-above.png", 20001, 20000))
    monkeypatch.setenv("DIFFUSERS_LED_MAX_IMAGE_PIXELS", "0")  # no limit
    assert load_image(small).size == (2000, 1000)


# ---------------------------------------------------------------------------------------------------------------------
# Image formats: each is read as the right upright RGB and comes back in its own form
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def format_files(tmp_path, face) -> dict:
    rgb = PIL.Image.fromarray(face)
    gray = rgb.convert("L")
    files = {}
    files["gray16.png"] = tmp_path / "gray16.png"
    PIL.Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(files["gray16.png"])
    files["rgb16.png"] = tmp_path / "rgb16.png"
    cv2.imwrite(str(files["rgb16.png"]), face[..., ::-1].astype(np.uint16) * 257)
    files["palette.png"] = tmp_path / "palette.png"
    rgb.quantize(256).save(files["palette.png"])
    files["palette_transparent.png"] = tmp_path / "palette_transparent.png"
    rgb.quantize(256).save(files["palette_transparent.png"], transparency=0)
    files["cmyk.jpg"] = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(files["cmyk.jpg"], quality=95)
    files["rgba.png"] = tmp_path / "rgba.png"
    rgba = rgb.copy()
    rgba.putalpha(PIL.Image.linear_gradient("L").resize(rgb.size))
    rgba.save(files["rgba.png"])
    files["gray.png"] = tmp_path / "gray.png"
    gray.save(files["gray.png"])
    exif = PIL.Image.Exif()
    exif[0x0112] = 8  # "rotate 90 counter-clockwise to view": undoes the clockwise ROTATE_270 below
    files["exif_rotated.png"] = tmp_path / "exif_rotated.png"
    rgb.transpose(PIL.Image.Transpose.ROTATE_270).save(files["exif_rotated.png"], exif=exif)
    bad = PIL.Image.Exif()
    bad[0x0112] = 9  # not an orientation
    files["bad_orientation.png"] = tmp_path / "bad_orientation.png"
    rgb.save(files["bad_orientation.png"], exif=bad)
    return files


def test_formats_are_read_upright_in_rgb(format_files, face):
    gray = np.asarray(PIL.Image.fromarray(face).convert("L"))
    expect = {  # name -> (rgb, grayscale, has alpha, max abs error)
        "gray16.png": (np.repeat(gray[..., None], 3, 2), True, False, 0),
        "rgb16.png": (face, False, False, 0),
        "palette.png": (np.asarray(PIL.Image.fromarray(face).quantize(256).convert("RGB")), False, False, 0),
        "palette_transparent.png": (None, False, True, None),
        "cmyk.jpg": (face, False, False, 40),
        "rgba.png": (face, False, True, 0),
        "gray.png": (np.repeat(gray[..., None], 3, 2), True, False, 0),
        "exif_rotated.png": (face, False, False, 0),
        "bad_orientation.png": (face, False, False, 0),
    }
    for name, (rgb, grayscale, has_alpha, tolerance) in expect.items():
        prepared = prepare_image(format_files[name])
        assert prepared.rgb.shape == face.shape and prepared.rgb.dtype == np.uint8, name
        assert prepared.grayscale == grayscale and (prepared.alpha is not None) == has_alpha, name
        if rgb is not None:
            error = np.abs(prepared.rgb.astype(int) - rgb.astype(int))
            assert error.max() <= tolerance and error.mean() < 3, (name, error.max(), error.mean())


@pytest.mark.parametrize(
    "mode, grayscale, alpha",
    [
        ("I", True, False),
        ("F", True, False),
        ("1", True, False),
        ("LA", True, True),
        ("La", True, True),
        ("RGBa", False, True),
        ("PA", False, True),
        ("YCbCr", False, False),
        ("LAB", False, False),
        ("HSV", False, False),
    ],
)
def test_every_pil_mode_is_understood(face, mode, grayscale, alpha):
    prepared = prepare_image(PIL.Image.fromarray(face).convert(mode))
    assert prepared.rgb.shape == face.shape and prepared.grayscale == grayscale
    assert (prepared.alpha is not None) == alpha


def test_formats_through_the_pipeline_come_back_in_their_form(pipe, format_files, face):
    names = ["gray16.png", "palette.png", "cmyk.jpg", "rgba.png", "exif_rotated.png", "palette_transparent.png"]
    result = quick_edit(pipe, [format_files[name] for name in names])
    modes = [image.mode for image in result.images]
    assert modes == ["L", "RGB", "RGB", "RGBA", "RGB", "RGBA"]
    assert all(image.size == (180, 180) for image in result.images)
    assert [len(faces) for faces in result.faces] == [1] * len(names)
    for name, image, faces in zip(names, result.images, result.faces):
        source = prepare_image(format_files[name])
        output = np.asarray(image.convert("RGB"))
        assert_only_masked_pixels_changed(
            pipe,
            source.rgb
            if source.grayscale is False
            else np.asarray(PIL.Image.fromarray(source.rgb).convert("L").convert("RGB")),
            output,
            faces,
        )
        if source.alpha is not None:
            assert np.array_equal(np.asarray(image)[..., 3], source.alpha), f"{name}: alpha must be kept"


# ---------------------------------------------------------------------------------------------------------------------
# Arrays and tensors
# ---------------------------------------------------------------------------------------------------------------------


def test_array_and_tensor_dtypes(face):
    as_float = face.astype(np.float32) / 255.0
    tensor = torch.from_numpy(as_float).permute(2, 0, 1)
    for value in (
        tensor.bfloat16(),
        tensor.half(),
        tensor.double(),
        (tensor * 255).round().to(torch.uint8),
        (tensor * 255).round().long(),
        tensor.clone().requires_grad_(),
        face.astype(np.int64),
        face.astype(np.uint16) * 257,
        as_float.astype(np.float16),
    ):
        prepared = prepare_image(value)
        error = np.abs(prepared.rgb.astype(int) - face.astype(int)).max()
        assert error <= (2 if getattr(value, "dtype", None) in (torch.bfloat16,) else 1), (value.dtype, error)
    assert prepare_image(face > 127).grayscale is False
    assert prepare_image(torch.rand(50, 40)).rgb.shape == (50, 40, 3)  # (H, W) tensor: grayscale


@pytest.mark.parametrize(
    "value, message",
    [
        (np.full((20, 20, 3), np.nan, np.float32), "NaN or infinite values; fix the computation"),
        (np.full((20, 20), np.inf), "NaN or infinite"),
        (torch.full((3, 20, 20), float("nan")), "NaN or infinite"),
        (np.linspace(-1, 1, 1200, dtype=np.float32).reshape(20, 20, 3), r"\[-1, 1\].*\(x \+ 1\) / 2"),
        (np.full((20, 20, 3), 200.0), r"\[0, 255\]: divide by 255 or pass uint8"),
        (np.full((20, 20, 3), 300, np.int32), r"\[300, 300\]; pass uint8, uint16"),
        (np.zeros((20, 20, 3), np.complex64), "unsupported dtype complex64"),
        (np.zeros((20, 20, 3), object), "unsupported dtype object"),
        (torch.zeros(3, 20, 20, dtype=torch.complex64), "unsupported dtype"),
        (np.zeros((3, 20, 20), np.uint8), "channels-first: transpose arrays"),
        (np.zeros((20, 20, 2), np.uint8), r"\(H, W\), \(H, W, 1\)"),
        (torch.zeros(20, 20, 3), r"channels-last: pass tensor.permute\(2, 0, 1\)"),
        (torch.zeros(2, 20, 20), "C in 1, 3, 4"),
        (np.zeros((0, 20, 3), np.uint8), "empty"),
        (None, "unsupported image type NoneType"),
        ("no/such/file.png", "no such file"),
    ],
)
def test_bad_arrays_and_tensors_are_refused_clearly(value, message):
    with pytest.raises(ImageLoadError, match=message):
        prepare_image(value, index=3)


def test_batched_tensor_and_array_inputs(pipe, face):
    batch = torch.from_numpy(face).permute(2, 0, 1)[None].repeat(3, 1, 1, 1).float() / 255.0
    out = pipe(batch, target="happy", strength=0.0, output_type="pt").images
    assert len(out) == 3 and all(torch.equal(image, batch[0]) for image in out)
    out = pipe(np.stack([face, face]), target="sad", strength=0.0).images
    assert len(out) == 2 and out[0].size == (180, 180)


# ---------------------------------------------------------------------------------------------------------------------
# Call arguments
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strength": 1.5}, r"`strength` must be a number in \[0, 1\], got 1.5"),
        ({"strength": -0.1}, "strength"),
        ({"strength": float("nan")}, "strength"),
        ({"strength": "0.5"}, "strength"),
        ({"strength": True}, "strength"),
        ({"num_inference_steps": 0}, "positive integer"),
        ({"num_inference_steps": 2.5}, "positive integer"),
        ({"start_timestep": 500}, r"\[0, 499\]"),
        ({"start_timestep": -1}, r"\[0, 499\]"),
        ({"guidance_scale": "3"}, "guidance_scale` must be a number >= 1"),  # None means the model default
        ({"guidance_scale": 0.5}, "guidance_scale"),
        ({"target": "smug"}, "Unknown expression 'smug'. Known expressions: angry"),
        ({"target": None}, "Pass a `target` expression, `action_units`, or both"),  # target=None needs action units
        ({"target": 3}, "An expression must be a string"),
        ({"target": []}, "Got 0 targets for 1 images"),
        ({"target": ["happy", "sad"]}, "Got 2 targets for 1 images: pass one target for all images or one per image"),
        ({"regions": "cheeks"}, "non-empty subset"),
        ({"regions": []}, "non-empty subset"),  # None is the model's own regions
        ({"output_type": "jpeg"}, "output_type"),
        ({"on_no_face": "ignore"}, "on_no_face"),
        ({"generator": [torch.Generator(), torch.Generator()]}, "2 generators for 1 images"),
    ],
)
def test_bad_arguments_fail_before_any_work(pipe, face, kwargs, message):
    with mock.patch.object(pipe.region_processor, "extract", side_effect=AssertionError("detection ran")):
        with pytest.raises(ValueError, match=message):
            pipe(face, **{"target": "happy", **kwargs})


def test_numpy_numbers_and_a_region_name_are_accepted(pipe, face):
    with mock.patch.object(pipe.region_processor, "extract", side_effect=AssertionError("detection ran")):
        out = pipe(face, target="happy", strength=np.float32(0.0), num_inference_steps=np.int64(3), regions="mouth")
    assert np.array_equal(np.asarray(out.images[0]), face)
    with pytest.raises(ValueError, match="Got 3 targets for 2 images"):
        pipe([face, face], target=["happy", "sad", "angry"])
    with pytest.raises(ValueError, match="`image` is empty"):
        pipe([], target="happy")


# ---------------------------------------------------------------------------------------------------------------------
# Sizes and faces
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 1), (2, 3, 4), (1, 3000, 3), (3000, 1)])
def test_degenerate_sizes(pipe, shape):
    image = np.full(shape, 128, np.uint8)
    with pytest.raises(NoFaceDetectedError, match=r"No face detected in image 0.*at least ~\d+ px wide"):
        quick_edit(pipe, image)
    with pytest.warns(UserWarning, match="No face detected"):
        out = quick_edit(pipe, image, on_no_face="skip", output_type="np")
    assert out.images[0].shape[:2] == shape[:2] and out.faces == [[]]


def test_tiny_faces(pipe, face):
    small = cv2.resize(face, (70, 70), interpolation=cv2.INTER_AREA)  # a 36 px face: still found
    result = quick_edit(pipe, small)
    # BlazeFace's box spans brows to chin: 43 px for this face (36 px in dlib's box).
    assert len(result.faces[0]) == 1 and result.faces[0][0].face.box[2] < 48
    assert_only_masked_pixels_changed(pipe, small, np.asarray(result.images[0]), result.faces[0])
    tiny = cv2.resize(face, (32, 32), interpolation=cv2.INTER_AREA)  # a 16 px face: below what can be edited
    with pytest.raises(NoFaceDetectedError, match="at least ~40 px wide"):
        quick_edit(pipe, tiny)


def test_twenty_faces_are_all_edited(pipe, face):
    group = np.tile(face, (4, 5, 1))
    result = quick_edit(pipe, group)
    assert len(result.faces[0]) == 20
    noses = [f.face.landmarks[2] for f in result.faces[0]]
    centres = sorted((int(y // 180), int(x // 180)) for x, y in noses)
    assert centres == [(row, col) for row in range(4) for col in range(5)], "one face per tile"
    assert_only_masked_pixels_changed(pipe, group, np.asarray(result.images[0]), result.faces[0])


def test_face_cut_by_the_border(pipe, astronaut):
    cut = np.ascontiguousarray(astronaut[:, 198:])  # the right eye is 5 px from the left border
    result = quick_edit(pipe, cut, regions=("eyes", "mouth"), strength=0.6)
    assert len(result.faces[0]) == 1
    quad = result.faces[0][0].region_quad("eyes")
    assert quad[:, 0].min() < 0, "the eye box reaches past the border"
    output = np.asarray(result.images[0])
    assert_only_masked_pixels_changed(pipe, cut, output, result.faces[0])
    assert (output != cut).any()


@pytest.mark.parametrize("detector", ["mesh", "dlib"])
def test_large_image_is_detected_downscaled_and_edited_at_full_resolution(face, detector):
    """12 MP: detection sees small copies (dlib: at most 1024 px; mesh: 192 px tiles), the edit is composited at full
    size, and the extra memory is about one copy of the image (tracemalloc follows numpy and OpenCV arrays; Pillow's
    buffers are not traced, so the output is asked for as numpy)."""
    pipe = make_tiny_pipeline(face_detector=detector)
    big = np.full((3000, 4000, 3), 90, np.uint8)
    big[:, :3000] = cv2.resize(face, (3000, 3000), interpolation=cv2.INTER_LINEAR)
    seen = []
    model = pipe.region_processor.detector
    real = model._detect

    def spy(image, scaled, scale):
        seen.append(scaled.shape)
        return real(image, scaled, scale)

    with mock.patch.object(model, "_detect", spy):
        tracemalloc.start()
        try:
            result = quick_edit(pipe, big, output_type="pil")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(result.faces[0]) == 1
    if detector == "dlib":
        assert max(seen[0][:2]) <= 1024
    assert result.images[0].size == (4000, 3000)
    assert peak < 2 * big.nbytes + 64 * 2**20, f"peak {peak / 2**20:.0f} MiB for a {big.nbytes / 2**20:.0f} MiB image"
    assert_only_masked_pixels_changed(pipe, big, np.asarray(result.images[0]), result.faces[0])


def test_300_megapixel_file_end_to_end(tmp_path, face):
    """The real thing in a fresh process: a 20000x15000 PNG is read, detected downscaled, edited at full resolution;
    peak memory stays a small multiple of the decoded image (900 MB)."""
    script = textwrap.dedent(
        f"""
        import resource, sys, time, numpy as np, cv2, PIL.Image, torch
        from conftest import make_tiny_pipeline
        big = np.full((15000, 20000, 3), 90, np.uint8)
        face = np.asarray(PIL.Image.open({str(EXAMPLE_IMAGE)!r}).convert("RGB"))[40:220, 130:310]
        big[:, :15000] = cv2.resize(face, (15000, 15000))
        PIL.Image.fromarray(big).save({str(tmp_path / "big.png")!r}, compress_level=1)
        del big
        pipe = make_tiny_pipeline()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.time()
        out = pipe({str(tmp_path / "big.png")!r}, target="happy", strength=0.05, regions=("mouth",),
                   num_inference_steps=10)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(len(out.faces[0]), out.images[0].size, round(time.time() - start, 1), peak // 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    faces, *_, seconds, peak_mib = done.stdout.split()
    print(f"20000x15000 PNG: {faces} face, edit {seconds} s, peak RSS {peak_mib} MiB")
    assert faces == "1" and int(peak_mib) < 6 * 1024, done.stdout


# ---------------------------------------------------------------------------------------------------------------------
# led-edit
# ---------------------------------------------------------------------------------------------------------------------


def test_led_edit_folder_reports_each_failure_and_finishes_the_rest(model_dir, bad_files, face, tmp_path, capsys):
    folder = bad_files["empty.png"].parent
    PIL.Image.new("RGB", (120, 90), (120, 130, 140)).save(folder / "noface.png")
    png_header_only(folder / "huge.png", 30000, 20000)
    PIL.Image.fromarray(np.tile(face, (1, 2, 1))).save(folder / "two.jpg")
    (folder / "._two.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # hidden: not a photo
    out = tmp_path / "edited"
    code = edit_main(
        [
            str(folder),
            "--target",
            "joy",
            "--model",
            str(model_dir),
            "-o",
            str(out),
            "--steps",
            "10",
            "--strength",
            "0.05",
            "--batch-size",
            "3",
            "--threads",
            "1",
        ]
    )
    printed = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good_happy.png", "two_happy.png"], "no temporary files left"
    assert PIL.Image.open(out / "two_happy.png").size == (360, 180)
    failed = [line for line in printed.err.splitlines() if line.startswith("led-edit: skipped")]
    for name in [*bad_files, "noface.png", "huge.png"]:
        lines = [line for line in failed if f"{name}:" in line]
        assert len(lines) == 1, (name, printed.err)
    assert "noface.png: no face detected" in printed.err and "600 megapixels" in printed.err
    assert "9 of 11 images failed" in printed.err
    assert "Traceback" not in printed.err
    assert "good.png ->" in printed.out and "(2 faces)" in printed.out


def test_led_edit_refuses_bad_models_and_arguments_clearly(model_dir, pipe, face, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(face).save(photo)
    pickled = tmp_path / "pickled-model"
    pipe.save_pretrained(pickled, safe_serialization=False)
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(model_dir, corrupt)
    weights = corrupt / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"\x00" * 16 + weights.read_bytes()[16:])
    cases = [
        (["--model", str(pickled)], "has only pickled weights (embeddings: diffusion_pytorch_model.bin; unet"),
        (["--model", str(corrupt)], "The file is corrupt or truncated"),
        (["--model", str(tmp_path / "nowhere")], "led-edit: error:"),
        (["--model", str(model_dir), "--strength", "2"], "--strength must be a number in [0, 1]"),
        (["--model", str(model_dir), "--target", "smug"], "Unknown expression 'smug'"),
    ]
    for extra, message in cases:
        argv = [str(photo), "--target", "happy", "--steps", "10", "--strength", "0.05", "--threads", "1", *extra]
        if "--target" in extra:
            argv[1:3] = []
        code = edit_main(argv)
        err = capsys.readouterr().err
        assert code != 0 and message in err and "Traceback" not in err, (extra, err)


def test_atomic_save_never_leaves_a_partial_image(tmp_path, face):
    destination = tmp_path / "out.png"
    atomic_save(PIL.Image.fromarray(face), destination, overwrite=False)
    before = destination.read_bytes()
    with pytest.raises(Exception, match="exists; pass --overwrite"):
        atomic_save(PIL.Image.fromarray(face), destination, overwrite=False)

    class Crash(Exception):
        pass

    def half_then_crash(self, stream, format=None, **kwargs):
        stream.write(before[: len(before) // 2])
        raise Crash("disk full")

    with mock.patch.object(PIL.Image.Image, "save", half_then_crash), pytest.raises(Crash):
        atomic_save(PIL.Image.fromarray(255 - face), destination, overwrite=True)
    assert destination.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["out.png"]
    atomic_save(PIL.Image.fromarray(face).convert("RGBA"), tmp_path / "out.jpg", overwrite=False)  # no alpha in JPEG
    assert PIL.Image.open(tmp_path / "out.jpg").mode == "RGB"
    mode = (tmp_path / "out.jpg").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask, oct(mode)


# ---------------------------------------------------------------------------------------------------------------------
# Interrupted saves: save_pretrained, checkpoints, led-prepare-data
# ---------------------------------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_save_pretrained_keeps_diffusers_signature():
    ours = inspect.signature(LocalExpressionPipeline.save_pretrained).parameters
    for name in ("save_directory", "safe_serialization", "variant", "max_shard_size", "push_to_hub", "kwargs"):
        assert name in ours
    assert ours["safe_serialization"].default is True and ours["push_to_hub"].default is False


def test_crash_during_save_pretrained_leaves_the_previous_save_intact(pipe, tmp_path):
    target = tmp_path / "model"
    pipe.save_pretrained(target)
    before = _snapshot(target)
    other = make_tiny_pipeline(seed=1)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while saving the embeddings")

    with mock.patch.object(other.embeddings, "save_pretrained", crash), pytest.raises(RuntimeError):
        other.save_pretrained(target)
    assert _snapshot(target) == before, "the previous files are untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no staging folder left"
    LocalExpressionPipeline.from_pretrained(target)

    other.save_pretrained(target)  # and a save that completes replaces them
    loaded = LocalExpressionPipeline.from_pretrained(target)
    assert all(torch.equal(a, b) for a, b in zip(loaded.unet.state_dict().values(), other.unet.state_dict().values()))


def test_save_pretrained_into_a_training_folder_keeps_its_other_files(pipe, tmp_path):
    target = tmp_path / "run"
    (target / "checkpoint-10").mkdir(parents=True)
    (target / "checkpoint-10" / "model.safetensors").write_bytes(b"state")
    (target / "README.md").write_text("model card")
    (target / "unet").mkdir()
    make_tiny_pipeline(seed=2).unet.save_pretrained(target / "unet", variant="non_ema")
    stale = target / "unet" / "diffusion_pytorch_model-00001-of-00002.safetensors"
    stale.write_bytes(b"old shard")
    pipe.save_pretrained(target)
    assert (target / "checkpoint-10" / "model.safetensors").read_bytes() == b"state"
    assert (target / "README.md").read_text() == "model card"
    assert (target / "unet" / "diffusion_pytorch_model.non_ema.safetensors").is_file()
    assert not stale.exists(), "a shard of an older save of the same weights is removed, as diffusers does"
    assert not [p for p in tmp_path.iterdir() if ".saving-" in p.name]
    LocalExpressionPipeline.from_pretrained(target)
    LocalExpressionPipeline.from_pretrained(target, variant="non_ema")


def test_push_to_hub_uploads_the_complete_folder_after_the_save(pipe, tmp_path):
    target = tmp_path / "led-tiny"
    uploads = []

    class Card:
        def save(self, path):
            Path(path).write_text("card")

    def upload(self, folder, repo_id, **kwargs):
        uploads.append((folder, repo_id, kwargs, _snapshot(Path(folder))))

    with (
        mock.patch("diffusers_led.pipeline_led.create_repo") as create_repo,
        mock.patch("diffusers_led.pipeline_led.load_or_create_model_card", return_value=Card()),
        mock.patch("diffusers_led.pipeline_led.populate_model_card", side_effect=lambda card: card),
        mock.patch.object(LocalExpressionPipeline, "_upload_folder", upload),
    ):
        create_repo.return_value.repo_id = "me/led-tiny"
        pipe.save_pretrained(target, push_to_hub=True, private=True, token="hf_x", commit_message="hi")
    create_repo.assert_called_once_with("led-tiny", exist_ok=True, private=True, token="hf_x")
    ((folder, repo_id, kwargs, files),) = uploads
    assert Path(folder) == target and repo_id == "me/led-tiny" and kwargs["commit_message"] == "hi"
    assert {"model_index.json", "README.md", "unet/diffusion_pytorch_model.safetensors"} <= set(files)


CHILD_SAVE = """
import os, sys, time
import safetensors.torch
from diffusers_led import LocalExpressionPipeline
source, target, ready = sys.argv[1:4]
pipe = LocalExpressionPipeline.from_pretrained(source)
real = safetensors.torch.save_file
def save_half_then_hang(tensors, filename, metadata=None):
    real(tensors, filename, metadata=metadata)
    data = open(filename, "rb").read()
    open(filename, "wb").write(data[: len(data) // 2])  # the kill lands in the middle of writing the weights
    open(ready, "w").write(filename)
    time.sleep(600)
safetensors.torch.save_file = save_half_then_hang
pipe.save_pretrained(target)
"""

CHILD_PREPARE = """
import sys, time, numpy as np, cv2
from diffusers_led import data
from diffusers_led.faces.detection import DetectedFace
from diffusers_led.faces.regions import FaceRegions
input_dir, output_dir, ready = sys.argv[1:4]

class Stub:
    def extract(self, image, regions=None):
        face = DetectedFace(box=(0.0, 0.0, 8.0, 8.0), landmarks=np.zeros((5, 2), np.float32), score=1.0)
        crops = {r: cv2.resize(np.ascontiguousarray(image), (16, 16)) for r in regions}
        boxes = {r: (0, 0, 1, 1) for r in regions}
        return [FaceRegions(face=face, matrix=np.eye(2, 3), boxes=boxes, crops=crops, masks={})]

calls = {"n": 0}
real = data.writer._append_lines
def append_or_tear(path, records):
    calls["n"] += 1
    if calls["n"] == 4:  # killed in the middle of a metadata line, after the photo's crops were written
        text = "".join(__import__("json").dumps(r) + "\\n" for r in records)
        with open(path, "a") as handle:
            handle.write(text[: len(text) // 2])
        open(ready, "w").write("torn")
        time.sleep(600)
    real(path, records)
data.writer._append_lines = append_or_tear
data.prepare_dataset(input_dir, output_dir, format="folders", test_fraction=0.0, processor=Stub(), progress=False,
                     crop_size=16)
"""


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory):
    """Two child processes, started together and each SIGKILLed mid-write: a save_pretrained over an existing model
    and a led-prepare-data run. Returns their folders and what was there before."""
    root = tmp_path_factory.mktemp("killed")
    old, new = make_tiny_pipeline(seed=0), make_tiny_pipeline(seed=3)
    old.save_pretrained(root / "model")
    new.save_pretrained(root / "new-source")
    before = _snapshot(root / "model")
    photos = root / "photos"
    rng = np.random.default_rng(0)
    for index in range(8):
        folder = photos / ("happy", "sad")[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(folder / f"p{index}.png")
    children = {  # name -> (python -c arguments, the file the child writes when it is about to be killed)
        "save": (
            [CHILD_SAVE, str(root / "new-source"), str(root / "model"), str(root / "save.ready")],
            root / "save.ready",
        ),
        "prepare": (
            [CHILD_PREPARE, str(photos), str(root / "crops"), str(root / "prepare.ready")],
            root / "prepare.ready",
        ),
    }
    running = {
        name: subprocess.Popen([sys.executable, "-c", *argv], env=SUBPROCESS_ENV, stderr=subprocess.PIPE, text=True)
        for name, (argv, _) in children.items()
    }
    deadline = time.time() + 240
    try:
        for name, (_, ready) in children.items():
            while not ready.exists():
                if running[name].poll() is not None:
                    pytest.fail(f"{name} child ended early: {running[name].stderr.read()[-2000:]}")
                assert time.time() < deadline, f"{name} child never got ready"
                time.sleep(0.05)
            running[name].send_signal(signal.SIGKILL)
            assert running[name].wait(30) == -signal.SIGKILL
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
    return {"root": root, "before": before, "new": new, "photos": photos}


def test_sigkill_during_save_pretrained_leaves_the_previous_model(killed_runs):
    root = killed_runs["root"]
    assert _snapshot(root / "model") == killed_runs["before"], "the previous files are byte for byte intact"
    leftovers = [p for p in root.iterdir() if p.name.startswith(".model.saving-")]
    assert len(leftovers) == 1, "the killed save's staging folder (with its half-written weights) is all that remains"
    LocalExpressionPipeline.from_pretrained(root / "model")
    killed_runs["new"].save_pretrained(root / "model")  # the next save cleans up after the killed one
    assert not [p for p in root.iterdir() if p.name.startswith(".model.saving-")]
    loaded = LocalExpressionPipeline.from_pretrained(root / "model").unet.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in killed_runs["new"].unet.state_dict().items())


def test_sigkill_during_prepare_data_then_rerun_gives_the_complete_dataset(killed_runs):
    root, photos = killed_runs["root"], killed_runs["photos"]
    crops = root / "crops"
    torn = (crops / "train" / "metadata.jsonl").read_text().splitlines(keepends=True)
    assert len(torn) == 8 and not torn[-1].endswith("\n"), "3 photos done (6 lines) + half of the 4th's two lines"
    with pytest.raises(json.JSONDecodeError):
        json.loads(torn[-1])
    kwargs = dict(format="folders", test_fraction=0.0, processor=StubProcessor(), progress=False, crop_size=16)
    resumed = data_module.prepare_dataset(photos, crops, **kwargs)
    assert resumed.already_done == 3 and resumed.processed == 5
    fresh = data_module.prepare_dataset(photos, root / "fresh", **kwargs)
    lines = (crops / "train" / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 16, "every photo once, both regions"
    assert sorted(lines) == sorted((root / "fresh" / "train" / "metadata.jsonl").read_text().splitlines())
    assert _snapshot(crops / "train").keys() == _snapshot(root / "fresh" / "train").keys()
    assert all(
        a == b for a, b in zip(_snapshot(crops / "train").values(), _snapshot(root / "fresh" / "train").values())
    )
    assert fresh.processed == 8


class FakeAccelerator:
    """What save_checkpoint needs of an Accelerator; save_state writes two files and can crash half-way."""

    is_main_process = True
    num_processes = 1

    def __init__(self, payload: bytes, crash: bool = False):
        self.payload, self.crash = payload, crash

    def wait_for_everyone(self):
        pass

    def save_state(self, folder):
        os.makedirs(folder, exist_ok=True)
        Path(folder, "model.safetensors").write_bytes(self.payload)
        if self.crash:
            Path(folder, "optimizer.bin").write_bytes(self.payload[:3])
            raise KeyboardInterrupt("killed while checkpointing")
        Path(folder, "optimizer.bin").write_bytes(self.payload * 2)


def test_interrupted_and_corrupt_checkpoints(tmp_path, caplog):
    PartialState()  # accelerate's logger needs it
    position = {"epoch": 0, "batch_in_epoch": 1, "seed": 0}
    train_led.save_checkpoint(FakeAccelerator(b"step-10"), str(tmp_path), 10, position, None)
    saved = _snapshot(tmp_path / "checkpoint-10")
    with pytest.raises(KeyboardInterrupt):
        train_led.save_checkpoint(FakeAccelerator(b"step-20", crash=True), str(tmp_path), 20, position, None)
    assert _snapshot(tmp_path / "checkpoint-10") == saved
    assert not (tmp_path / "checkpoint-20").exists()
    assert train_led.find_resume_checkpoint(str(tmp_path), "latest") == tmp_path / "checkpoint-10"

    train_led.save_checkpoint(FakeAccelerator(b"step-30"), str(tmp_path), 30, position, None)
    assert json.loads((tmp_path / "checkpoint-30" / train_led.CHECKPOINT_STATE_FILE).read_text())["sha256"]
    (tmp_path / "checkpoint-30" / "model.safetensors").write_bytes(b"step-99")  # same size, other bytes
    assert "model.safetensors is corrupt" in train_led.checkpoint_problem(tmp_path / "checkpoint-30")
    with caplog.at_level("WARNING"):
        assert train_led.find_resume_checkpoint(str(tmp_path), "latest") == tmp_path / "checkpoint-10"
    assert "Skipping checkpoint" in caplog.text and "corrupt" in caplog.text
    with pytest.raises(ValueError, match="Cannot resume from checkpoint .*-30: model.safetensors is corrupt"):
        train_led.find_resume_checkpoint(str(tmp_path), "checkpoint-30")

    # Re-reaching a saved step (after resuming from an older checkpoint) replaces it whole.
    train_led.save_checkpoint(FakeAccelerator(b"step-3X"), str(tmp_path), 30, position, None)
    assert train_led.checkpoint_problem(tmp_path / "checkpoint-30") is None
    # Left: the two checkpoints and the killed save's temporary folder (train_led.main removes those at start).
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-checkpoint-20", "checkpoint-10", "checkpoint-30"]


# ---------------------------------------------------------------------------------------------------------------------
# Loading safety
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pickled_model(pipe, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pickled")
    pipe.save_pretrained(folder, safe_serialization=False)
    assert not list(folder.rglob("*.safetensors"))
    return folder


def test_pipeline_refuses_pickled_weights_unless_allowed(pickled_model):
    with pytest.raises(UnsafeWeightsError) as caught:
        LocalExpressionPipeline.from_pretrained(pickled_model)
    message = str(caught.value)
    assert str(pickled_model) in message and "unet: diffusion_pytorch_model.bin" in message
    assert "can run arbitrary code" in message and "use_safetensors=False" in message
    assert isinstance(caught.value, OSError)  # what diffusers' own loading errors are
    LocalExpressionPipeline.from_pretrained(pickled_model, use_safetensors=False)


def test_training_refuses_pickled_weights_unless_allowed(pickled_model, tmp_path):
    args = train_led.parse_args(["--train_data_dir", "x", "--pretrained_model_name_or_path", str(pickled_model)])
    with pytest.raises(UnsafeWeightsError, match=r"unet.*diffusion_pytorch_model.bin.*--allow_pickled_weights"):
        train_led.load_or_build_unet(args, [], 32, ["eyes", "mouth"])
    with pytest.raises(UnsafeWeightsError, match="pickled"):
        train_led.load_expression_embeddings(None, str(pickled_model), ["happy"], 0.0)
    with pytest.raises(UnsafeWeightsError, match="pickled"):  # a saved table given as --text_encoder
        train_led.load_expression_embeddings(str(pickled_model), None, ["happy"], 0.0)
    allowed = train_led.parse_args(
        ["--train_data_dir", "x", "--pretrained_model_name_or_path", str(pickled_model), "--allow_pickled_weights"]
    )
    unet, _ = train_led.load_or_build_unet(allowed, [], 32, ["eyes", "mouth"])
    assert unet.config.in_channels == 1
    table = train_led.load_expression_embeddings(None, str(pickled_model), ["happy"], 0.0, allow_pickled_weights=True)
    assert table.config.embedding_dim == 32


def _crop_dataset(root: Path, rows) -> Path:
    (root / "train").mkdir(parents=True)
    PIL.Image.new("RGB", (64, 64)).save(root / "train" / "a.png")
    lines = [{"file_name": name, "expression": "happy", "region": "eyes"} for name in ["a.png", *rows]]
    (root / "train" / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


@pytest.mark.parametrize("file_name", ["../../outside.png", "/etc/passwd", "file:///etc/passwd", "link.png"])
def test_dataset_metadata_cannot_reach_outside_the_dataset(tmp_path, file_name):
    PIL.Image.new("RGB", (64, 64)).save(tmp_path / "outside.png")
    root = _crop_dataset(tmp_path / "crops", [file_name])
    (root / "train" / "link.png").symlink_to(tmp_path / "outside.png")
    args = train_led.parse_args(["--train_data_dir", str(root), "--report_to", "none"])
    with pytest.raises(ValueError, match=r"names files outside the dataset folder.*metadata.jsonl:2"):
        train_led.load_crop_data(args)

    photos = tmp_path / "photos"
    photos.mkdir()
    PIL.Image.new("RGB", (64, 64)).save(photos / "inside.png")
    (photos / "link.png").symlink_to(tmp_path / "outside.png")
    rows = [{"file_name": "inside.png", "expression": "happy"}, {"file_name": file_name, "expression": "sad"}]
    (photos / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    _, listing = data_module.list_labelled_photos(photos)
    assert [p.source for p in listing.photos] == ["inside.png"]
    assert listing.skipped[0]["reason"].startswith("file_name refused:")
