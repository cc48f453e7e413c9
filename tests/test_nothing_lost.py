"""No user file is deleted, replaced or degraded, and no command ends in an abort or a traceback.

Each test reproduces one way a run used to lose a user's work (issue "nothing-lost") and checks the fixed behaviour.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from unittest import mock

import numpy as np
import PIL.Image
import PIL.ImageCms
import PIL.JpegImagePlugin
import pytest
from conftest import EXAMPLE_IMAGE, StubProcessor, distinct_copy, make_tiny_pipeline
from datasets import load_dataset

from diffusers_led import LocalExpressionPipeline, data
from diffusers_led.cli import CLIError, edit_main, prepare_data_main
from diffusers_led.evaluation.metrics import psnr
from diffusers_led.image_processor import ImageLoadError, load_image
from diffusers_led.model_checks import ModelConfigError, check_model_folder
from diffusers_led.output_files import atomic_save, check_destinations, output_paths
from diffusers_led.utils import escape_file_name, unescape_file_name

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------------
# led-prepare-data deletes and replaces only what it wrote
# ---------------------------------------------------------------------------------------------------------------------


def _rafd_photos(folder: Path, subjects=("01", "02", "03", "04")) -> Path:
    for subject in subjects:
        distinct_copy(folder / f"Rafd090_{subject}_Caucasian_female_happy_frontal.png")
    return folder


def _prepare(input_dir: Path, output_dir: Path, **kwargs) -> data.PrepareReport:
    kwargs = {
        "format": "rafd",
        "test_subjects": ["04"],
        "processor": StubProcessor(),
        "progress": False,
        "crop_size": 16,
        **kwargs,
    }
    return data.prepare_dataset(input_dir, output_dir, **kwargs)


def test_prepare_data_refuses_an_output_folder_that_holds_the_input_photos(tmp_path, capsys):
    # The reproduction: the photos in D/train, the dataset asked for in D.
    photos = _rafd_photos(tmp_path / "D" / "train")
    before = _snapshot(tmp_path / "D")
    argv = [
        "--input_dir",
        str(photos),
        "--output_dir",
        str(tmp_path / "D"),
        "--format",
        "rafd",
        "--test_subjects",
        "04",
        "--quiet",
    ]
    for extra in ([], ["--allow_other_files"]):  # crops among the photos: refused even when other files are allowed
        assert prepare_data_main(argv + extra) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is inside" in err and "where the crops are written" in err, err
        assert _snapshot(tmp_path / "D") == before, "nothing deleted, nothing written"

    # The photos elsewhere inside the output folder: refused unless allowed, and then left as they are.
    photos = _rafd_photos(tmp_path / "E" / "photos")
    before = _snapshot(photos)
    with pytest.raises(data.OutputFolderError, match="is inside --output_dir .* --allow_other_files"):
        _prepare(photos, tmp_path / "E")
    assert sorted(p.name for p in (tmp_path / "E").iterdir()) == ["photos"]
    for _ in range(2):  # the first run and a rerun
        report = _prepare(photos, tmp_path / "E", allow_other_files=True)
        assert _snapshot(photos) == before
    assert report.already_done == 4 and report.splits["train"]["crops"] == 6


def test_prepare_data_never_deletes_or_replaces_files_it_did_not_write(tmp_path):
    photos = _rafd_photos(tmp_path / "photos")
    out = tmp_path / "out"
    # The user's files, some named like what an interrupted run leaves behind (a crop without metadata, a .tmp).
    user_files = {
        "notes.txt": b"mine",
        "train/holiday.png": b"\x89PNG my photo",
        "train/face_eyes.png": b"crop?",
        "train/half.png.tmp": b"",
        "test/keep.jpg": b"jpeg",
        "extra/a.png": b"nested",
    }
    for relative, content in user_files.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(content)
    listed = r"did not write \(extra, notes.txt, test/keep.jpg, .* and 1 more\)"
    with pytest.raises(data.OutputFolderError, match=listed):
        _prepare(photos, out)
    assert _snapshot(out) == user_files, "a refused run writes nothing"
    assert prepare_data_main(["--input_dir", str(photos), "--output_dir", str(out), "--quiet"]) == 1

    clean = tmp_path / "clean"
    for clutter in [".DS_Store", "train/Thumbs.db"]:  # what file managers leave: not data, no reason to refuse
        (clean / clutter).parent.mkdir(parents=True, exist_ok=True)
        (clean / clutter).write_bytes(b"clutter")
    assert _prepare(photos, clean).processed == 4 and (clean / ".DS_Store").read_bytes() == b"clutter"
    assert (clean / "train" / "Thumbs.db").read_bytes() == b"clutter"

    first = _prepare(photos, out, allow_other_files=True)
    again = _prepare(photos, out, allow_other_files=True)
    assert first.processed == 4 and again.already_done == 4
    after = _snapshot(out)
    assert {k: after[k] for k in user_files} == user_files
    written = (out / data.WRITTEN_FILE).read_text().split()
    assert set(after) - set(user_files) == {*written, data.WRITTEN_FILE}, "everything else is recorded as written"
    assert not set(written) & set(user_files)

    # A user file where a crop or the metadata must go stops the run before it is touched.
    crop = data.crop_file_name("Rafd090_05_Caucasian_female_happy_frontal.png", "eyes")
    (out / "train" / crop).write_bytes(b"user's file")
    _rafd_photos(photos, ["05"])
    with pytest.raises(data.OutputFolderError, match=f"{crop} was not written by led-prepare-data"):
        _prepare(photos, out, allow_other_files=True)
    assert (out / "train" / crop).read_bytes() == b"user's file"
    imagefolder = tmp_path / "my-imagefolder"
    (imagefolder / "train").mkdir(parents=True)
    (imagefolder / "train" / "metadata.jsonl").write_text('{"file_name": "a.png", "label": 1}\n')
    with pytest.raises(data.OutputFolderError, match="metadata.jsonl was not written by led-prepare-data"):
        _prepare(photos, imagefolder, allow_other_files=True)
    assert (imagefolder / "train" / "metadata.jsonl").read_text() == '{"file_name": "a.png", "label": 1}\n'


def test_prepare_data_completes_a_dataset_made_before_the_record_of_written_files(tmp_path):
    photos = _rafd_photos(tmp_path / "photos", ["01", "02", "04"])
    out = tmp_path / "out"
    _prepare(photos, out)
    (out / data.WRITTEN_FILE).unlink()  # as an older version left it: the report and metadata only
    _rafd_photos(photos, ["03"])
    report = _prepare(photos, out)
    assert report.already_done == 3 and report.processed == 1
    records = [json.loads(line) for line in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        ["metadata.jsonl", *(r["file_name"] for r in records)]
    )


# ---------------------------------------------------------------------------------------------------------------------
# led-edit: one output per input, never replaced without --overwrite
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """180x180 around the astronaut's face: detection on it is fast."""
    return np.ascontiguousarray(np.asarray(PIL.Image.open(EXAMPLE_IMAGE).convert("RGB"))[40:220, 130:310])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    make_tiny_pipeline().save_pretrained(folder)
    return folder


def cheapest_edit(model_dir: Path) -> list[str]:
    """``led-edit`` options for the cheapest edit toward happy with the tiny model."""
    return ["--target", "happy", "--model", str(model_dir), "--steps", "10", "--strength", "0.05", "--threads", "1"]


def led_edit(model_dir: Path, *argv: str) -> int:
    """``led-edit`` in this process with the tiny model and the cheapest edit."""
    return edit_main([*map(str, argv), *cheapest_edit(model_dir)])


def test_inputs_that_would_share_an_output_name_keep_their_extension(model_dir, face, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    PIL.Image.fromarray(face).save(folder / "a.png")
    PIL.Image.fromarray(face[:, ::-1]).save(folder / "a.jpg", quality=95)
    PIL.Image.fromarray(face).save(folder / "b.png")
    out = tmp_path / "out"
    assert led_edit(model_dir, folder, "-o", out, "--overwrite") == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg_happy.png", "a_png_happy.png", "b_happy.png"]
    assert f"a.jpg -> {out / 'a_jpg_happy.png'}" in printed and f"a.png -> {out / 'a_png_happy.png'}" in printed
    flipped = np.asarray(PIL.Image.open(out / "a_jpg_happy.png"))
    assert np.abs(flipped.astype(int) - np.asarray(PIL.Image.open(out / "a_png_happy.png"))).mean() > 10
    assert output_paths([Path("a.png")], None, "happy", single_file=True) == [Path("a_happy.png")], "unique: as before"

    # Still one name for two inputs (one -o for two folders): refused before anything is loaded, with the list.
    other = tmp_path / "other"
    other.mkdir()
    PIL.Image.fromarray(face).save(other / "a.png")
    PIL.Image.fromarray(face).save(other / "a.jpg")
    argv = [str(folder), str(other), "--target", "happy", "-o", str(tmp_path / "o2"), "--model", "nowhere"]
    assert edit_main(argv) == 1
    err = capsys.readouterr().err
    assert "4 inputs would be written to the same output" in err and f"{other / 'a.jpg'}" in err
    assert not (tmp_path / "o2").exists()


def _race(images, destination: Path) -> list:
    """Every image saved to ``destination`` at once (one thread each, released together) without --overwrite;
    returns each writer's outcome: "written" or the error message."""
    barrier = threading.Barrier(len(images))
    outcomes = [None] * len(images)

    def write(index: int) -> None:
        barrier.wait()
        try:
            atomic_save(images[index], destination, overwrite=False)
            outcomes[index] = "written"
        except CLIError as error:
            outcomes[index] = str(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_no_overwrite_is_atomic_and_covers_symbolic_links(tmp_path, face):
    images = [PIL.Image.fromarray(np.roll(face, 10 * i, axis=1)) for i in range(6)]
    for round in range(20):
        destination = tmp_path / f"out{round}.png"
        outcomes = _race(images, destination)
        assert outcomes.count("written") == 1, outcomes
        assert all(o == "written" or "exists; pass --overwrite" in o for o in outcomes)
        winner = images[outcomes.index("written")]
        assert np.array_equal(np.asarray(PIL.Image.open(destination)), np.asarray(winner))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file left"

    link = tmp_path / "dangling.png"
    link.symlink_to(tmp_path / "nowhere" / "target.png")
    with pytest.raises(CLIError, match="exists; pass --overwrite"):
        atomic_save(images[0], link, overwrite=False)
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
    with pytest.raises(CLIError, match="dangling.png exists"):
        check_destinations([tmp_path / "in.png"], [link], overwrite=False)
    atomic_save(images[0], link, overwrite=True)  # asked for: the link itself is replaced, never its target
    assert not link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_show_regions_long_names_and_output_formats_are_checked_before_the_edit(model_dir, face, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(face).save(photo)
    regions = tmp_path / "out_regions.png"
    regions.write_bytes(b"the user's file")
    refused = {  # -o -> the one line printed; "nowhere" as the model shows the check comes before any loading
        "out.png": f"{regions} exists; pass --overwrite to replace.",
        "a" * 252 + ".png": "the file name is 256 bytes, above the 255-byte limit",
        "out.gif": "GIF keeps only 256 colours; use one of .png",
        "out.pdf": "cannot write .pdf files",
        "photo.png": "is one of the inputs and would be replaced by an edit",
    }
    for output, message in refused.items():
        argv = [str(photo), "--target", "happy", "-o", str(tmp_path / output), "--model", "nowhere", "--show-regions"]
        assert edit_main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (output, err)
        assert sorted(os.listdir(tmp_path)) == ["out_regions.png", "photo.png"], "nothing written, no folder"
    assert regions.read_bytes() == b"the user's file"

    long_name = "b" * 248 + ".png"  # valid; its temporary name must be shortened to stay within 255 bytes
    assert led_edit(model_dir, photo, "-o", tmp_path / long_name, "--show-regions") == 1, "regions name too long"
    assert "_regions.png: the file name is 260 bytes" in capsys.readouterr().err
    assert led_edit(model_dir, photo, "-o", tmp_path / long_name) == 0
    assert PIL.Image.open(tmp_path / long_name).size == (180, 180)
    assert led_edit(model_dir, photo, "-o", tmp_path / "out.avif") == 0
    assert PIL.Image.open(tmp_path / "out.avif").format == "AVIF"
    assert led_edit(model_dir, photo, "-o", tmp_path / "out.png", "--show-regions", "--overwrite") == 0
    assert regions.read_bytes() != b"the user's file" and PIL.Image.open(regions).size == (180, 180)


def test_outputs_inputs_and_models_that_cannot_work_are_refused_before_the_edit(
    model_dir, face, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    PIL.Image.fromarray(face).save("photo.png")
    Path("notes").write_text("the user's notes")
    os.mkfifo("fifo")
    deep = "/".join(["d" * 200] * 21)  # every folder name fits, the path does not
    refused = {  # (input, -o) -> the one line printed; "--model nowhere" shows the check comes before any loading
        ("photo.png", "notes"): "-o notes is an existing file, not a folder",
        ("photo.png", "notes/"): "-o notes/: notes is a file, not a folder",
        ("photo.png", "x.xyz"): "-o x.xyz cannot be written as .xyz: use one of .png",
        ("photo.png", ".png"): "-o .png has no name before its extension",
        ("photo.png", "d" * 300 + "/x.png"): "is 300 bytes, above the 255-byte limit of file systems",
        ("photo.png", f"{deep}/x.png"): "-byte limit of this system; use a shorter -o.",
        ("fifo", "f.png"): "fifo: not an image file (a device, pipe or socket)",
        ("/dev/zero", "z.png"): "/dev/zero: not an image file (a device, pipe or socket)",
    }
    for (photo, output), message in refused.items():
        assert edit_main([photo, "--target", "happy", "-o", output, "--model", "nowhere"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (output, err)
        assert sorted(os.listdir()) == ["fifo", "notes", "photo.png"], "nothing written, no folder"
    assert Path("notes").read_text() == "the user's notes"
    models = {"./missing_dir": "./missing_dir: no such model folder", "photo.png": "photo.png is a file, not a model"}
    for model, message in models.items():
        assert edit_main(["photo.png", "--target", "happy", "-o", "out.png", "--model", model]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (model, err)
        with pytest.raises(ModelConfigError, match=message):
            LocalExpressionPipeline.from_pretrained(model)
    assert led_edit(model_dir, "photo.png", "-o", "x.xyz/") == 0, "a trailing slash asks for a folder"
    assert Path("x.xyz/photo_happy.png").is_file()


# ---------------------------------------------------------------------------------------------------------------------
# Outputs keep the input's colour profile, resolution and EXIF; lossy formats at high quality
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """240x180 (upright, portrait) around the astronaut's face."""
    return np.ascontiguousarray(np.asarray(PIL.Image.open(EXAMPLE_IMAGE).convert("RGB"))[10:250, 130:310])


def _outside(model_dir: Path, upright: np.ndarray) -> np.ndarray:
    """Where led-edit leaves the pixels of ``upright`` untouched (its regions' composite mask is 0)."""
    pipe = LocalExpressionPipeline.from_pretrained(model_dir)
    faces = pipe.region_processor.extract(upright, regions=pipe.config.regions)
    return pipe.region_processor.composite_mask(upright.shape, faces) == 0


def test_outputs_keep_the_colour_profile_resolution_and_exif(model_dir, portrait, tmp_path, capsys):
    icc = PIL.ImageCms.ImageCmsProfile(PIL.ImageCms.createProfile("sRGB")).tobytes()
    exif = PIL.Image.Exif()
    exif[0x010F], exif[0x0112] = "TestCam", 6  # the camera stored the photo turned: the pixels are rotated 90°
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(np.rot90(portrait, k=1)).save(photo, icc_profile=icc, dpi=(300, 300), exif=exif.tobytes())
    assert led_edit(model_dir, photo, "-o", tmp_path / "out.png") == 0
    assert "warning" not in capsys.readouterr().err
    out = PIL.Image.open(tmp_path / "out.png")
    assert out.info["icc_profile"] == icc and out.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert out.getexif()[0x010F] == "TestCam" and out.getexif()[0x0112] == 1, "upright pixels, orientation 1"
    edited = np.asarray(out)
    outside = _outside(model_dir, portrait)
    assert edited.shape == portrait.shape and 0 < (~outside).mean() < 0.5
    assert np.array_equal(edited[outside], portrait[outside]), "PNG: every pixel outside the regions kept"
    assert PIL.Image.open(EXAMPLE_IMAGE).info["icc_profile"], "the bundled example has a profile to keep too"


def test_lossy_outputs_are_written_at_high_quality_with_one_warning(model_dir, portrait, tmp_path, capsys):
    photo, jpeg = tmp_path / "photo.png", tmp_path / "photo.jpg"
    PIL.Image.fromarray(portrait).save(photo)
    PIL.Image.fromarray(portrait).save(jpeg, quality=90, subsampling=1)  # 4:2:2, as some cameras write
    outside = _outside(model_dir, portrait)

    assert led_edit(model_dir, photo, "-o", tmp_path / "from-png.jpg") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        "led-edit: warning: .jpg (JPEG) is lossy: the pixels outside the edited regions will differ "
        "slightly from the input; use .png, .tif or .webp to keep them bit-identical."
    ]
    written = PIL.Image.open(tmp_path / "from-png.jpg")
    assert PIL.JpegImagePlugin.get_sampling(written) == 0, "4:4:4 for a source that had full colour resolution"
    assert psnr(np.asarray(written)[outside], portrait[outside]) > 40  # Pillow's default quality 75 gave 35.9 dB

    assert led_edit(model_dir, jpeg, "-o", tmp_path / "from-jpg.jpg") == 0
    assert "warning" not in capsys.readouterr().err, "a JPEG input has already lost what JPEG loses"
    written, source = PIL.Image.open(tmp_path / "from-jpg.jpg"), np.asarray(PIL.Image.open(jpeg))
    assert PIL.JpegImagePlugin.get_sampling(written) == 1, "the input's subsampling"
    assert psnr(np.asarray(written)[outside], source[outside]) > 40

    assert led_edit(model_dir, photo, "-o", tmp_path / "from-png.webp") == 0
    assert "warning" not in capsys.readouterr().err
    assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / "from-png.webp"))[outside], portrait[outside])


def test_lossless_webp_keeps_the_colour_under_transparent_pixels(model_dir, face, tmp_path):
    """Pillow's WebP encoder drops the RGB of fully transparent pixels unless asked to keep it exactly."""
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    rgba[:, :40, 3] = 0  # a transparent band whose colour is still there (an editor may show it again)
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(rgba).save(photo)
    assert led_edit(model_dir, photo, "-o", tmp_path / "out.webp") == 0
    out = np.asarray(PIL.Image.open(tmp_path / "out.webp"))
    assert out.shape == rgba.shape and np.array_equal(out[:, :40], rgba[:, :40])


# ---------------------------------------------------------------------------------------------------------------------
# No abort and no traceback: early errors and Ctrl-C, in real processes
# ---------------------------------------------------------------------------------------------------------------------

SUBPROCESS_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "PYTHONIOENCODING": "utf-8",
}
# What the installed `led-edit` script runs.
LED_EDIT = [sys.executable, "-c", "import sys; from diffusers_led.cli import edit_main; sys.exit(edit_main())"]


def _run_all(commands: list, timeout: float = 240) -> list:
    """Run the commands at once; returns ``(exit code, stdout, stderr)`` of each."""
    processes = [
        subprocess.Popen(command, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            results.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return results


def test_early_errors_end_with_one_line_and_exit_code_1_every_time(model_dir, face, tmp_path):
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(face).save(photo)
    existing = tmp_path / "done.png"
    existing.write_bytes(b"an earlier result")
    no_embeddings = tmp_path / "model-without-embeddings"  # found only after the detector preload has started
    shutil.copytree(model_dir, no_embeddings, ignore=shutil.ignore_patterns("embeddings"))
    cases = {  # name -> (arguments, what the line says, repetitions)
        "unknown target": ([photo, "--target", "smug"], "Unknown expression 'smug'", 20),
        "strength 2": (
            [photo, "--target", "happy", "--strength", "2"],
            "--strength must be a number in [0, 1], got 2.0",
            20,
        ),
        "missing input": ([tmp_path / "nowhere.png", "--target", "happy"], "nowhere.png: no such file or folder", 20),
        "existing output": ([photo, "--target", "happy", "-o", existing], "done.png exists", 20),
        "broken model": ([photo, "--target", "happy", "--model", no_embeddings], "led-edit: error: ", 2),
    }
    commands = [LED_EDIT + [str(a) for a in argv] for argv, _, count in cases.values() for _ in range(count)]
    results = iter(_run_all(commands))
    for name, (_, message, count) in cases.items():
        for _ in range(count):
            code, out, err = next(results)
            assert (code, out, err.count("\n")) == (1, "", 1), (name, code, err)
            assert err.startswith("led-edit: error: ") and message in err, (name, err)
    assert existing.read_bytes() == b"an earlier result"


def _wait_until(condition, process, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the moment to interrupt never came"
        time.sleep(0.01)


def test_ctrl_c_twice_at_any_moment_exits_130_with_one_line(model_dir, face, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(12):
        PIL.Image.fromarray(np.roll(face, index, axis=1)).save(folder / f"p{index:02d}.png")
    args = [*cheapest_edit(model_dir), "--batch-size", "1"]
    started = {  # moment -> process
        moment: subprocess.Popen(
            [*LED_EDIT, str(folder), *args, "-o", str(tmp_path / out)],
            env=SUBPROCESS_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for moment, out in [("importing torch", "a"), ("editing", "b")]
    }
    try:
        first = started["importing torch"]
        _wait_until(lambda: "libtorch" in Path(f"/proc/{first.pid}/maps").read_text(), first)
        first.send_signal(signal.SIGINT)
        time.sleep(0.05)
        first.send_signal(signal.SIGINT)

        second = started["editing"]
        line = second.stdout.readline()  # the first photo is written
        assert " -> " in line, (line, second.stderr.read() if second.poll() is not None else "")
        second.send_signal(signal.SIGINT)
        time.sleep(0.05)
        second.send_signal(signal.SIGINT)
        for moment, process in started.items():
            out, err = process.communicate(timeout=120)
            assert process.returncode == 130, (moment, process.returncode, err)
            assert err.count("\n") == 1 and "led-edit: interrupted" in err, (moment, err)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
    written = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert 1 <= len(written) < 12 and not [n for n in written if n.startswith(".")], "no temporary file left"
    for name in written:
        assert PIL.Image.open(tmp_path / "b" / name).size == (180, 180), "every file written is complete"


def test_the_detector_preload_is_finished_when_led_edit_returns(model_dir, face, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(face).save(photo)
    assert edit_main([str(photo), "--target", "happy", "--model", str(tmp_path / "nowhere")]) == 1
    assert led_edit(model_dir, photo, "-o", tmp_path / "out.png") == 0
    assert not [t for t in threading.enumerate() if t.name == "led-detector-preload"]
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# File names in any encoding
# ---------------------------------------------------------------------------------------------------------------------

LATIN1_NAME = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name on a UTF-8 system: not decodable


def test_led_edit_reports_any_file_name_on_any_console(model_dir, face, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ["a😀.png", "b.png", LATIN1_NAME]:
        PIL.Image.fromarray(face).save(folder / name)
    console = {name: io.TextIOWrapper(io.BytesIO(), encoding="cp1252") for name in ("stdout", "stderr")}
    for name, stream in console.items():
        monkeypatch.setattr(sys, name, stream)
    assert led_edit(model_dir, folder, "-o", tmp_path / "out") == 0
    printed = {}
    for name, stream in console.items():
        stream.flush()
        printed[name] = stream.buffer.getvalue().decode("cp1252")
    monkeypatch.undo()
    written = sorted(os.listdir(tmp_path / "out"))
    assert written == sorted(["a😀_happy.png", "b_happy.png", os.fsdecode(b"caf\xe9_happy.png")])
    assert "a\\U0001f600.png -> " in printed["stdout"] and "caf\\udce9.png -> " in printed["stdout"], printed
    assert printed["stderr"] == ""


def test_prepare_data_takes_file_names_in_any_encoding(tmp_path, capsys):
    photos = tmp_path / "photos"
    for name in ["happy/" + LATIN1_NAME, "happy/smile😀.png", "sad/b.png"]:
        distinct_copy(photos / name)
    out = tmp_path / "crops"
    argv = ["--input_dir", str(photos), "--output_dir", str(out), "--format", "folders", "--test_fraction", "0"]
    with mock.patch.object(data.writer, "FaceRegionProcessor", lambda **kwargs: StubProcessor()):
        assert prepare_data_main(argv + ["--quiet"]) == 0
    assert "3 cropped now" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "train" / "metadata.jsonl").read_text().splitlines()]
    sources = {r["source"] for r in records}
    assert sources == {"happy/caf\\xe9.png", "happy/smile😀.png", "sad/b.png"}, "valid text, the byte escaped"
    assert {r["subject"] for r in records} == {"caf\\xe9", "smile😀", "b"}
    assert all((photos / unescape_file_name(source)).is_file() for source in sources), "the name comes back"
    loaded = load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert sorted(set(loaded["train"]["source"])) == sorted(sources)
    assert escape_file_name("plain/é.png") == "plain/é.png" and unescape_file_name("a\\x41.png") == "a\\x41.png"


def test_every_per_file_failure_names_its_file(tmp_path, monkeypatch):
    photos = _rafd_photos(tmp_path / "photos", ["01", "02"])

    def disk_full(array, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.writer, "_save_png_atomically", disk_full)
    with pytest.raises(
        OSError,
        match=r"Rafd090_01_Caucasian_female_happy_frontal.png: its eyes crop could not be "
        r"written \(\[Errno 28\] No space left on device\)",
    ):
        _prepare(photos, tmp_path / "out", test_subjects=None, test_fraction=0.0)


# ---------------------------------------------------------------------------------------------------------------------
# Multi-frame files are refused; a folder's other files are reported
# ---------------------------------------------------------------------------------------------------------------------


def test_animations_and_multi_page_files_are_refused_and_folders_report_what_they_skip(
    model_dir, face, tmp_path, capsys
):
    frames = [PIL.Image.fromarray(np.roll(face, 20 * i, axis=0)) for i in range(3)]
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ["anim.gif", "pages.tif", "anim.png"]:
        frames[0].save(folder / name, save_all=True, append_images=frames[1:])
    frames[0].save(folder / "still.avif", quality=95)
    frames[0].save(folder / "still.gif")
    frames[0].save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=frames[1:2])  # photo + preview
    (folder / "notes.txt").write_text("not a photo")
    (folder / "face.heic").write_bytes(b"an image type not read")

    for name in ["anim.gif", "pages.tif", "anim.png"]:
        with pytest.raises(ImageLoadError, match=f"{name}: has 3 frames .* only single images are edited"):
            load_image(folder / name)
    assert load_image(tmp_path / "phone.jpg").size == (180, 180), "a JPEG's extra pictures are not frames"

    assert led_edit(model_dir, folder, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err.splitlines()
    assert sorted(os.listdir(tmp_path / "out")) == ["still_avif_happy.png", "still_gif_happy.png"]
    for name in ["face.heic", "notes.txt"]:
        assert [line for line in err if line.startswith(f"led-edit: skipped {folder / name}: not an image type")]
    for name in ["anim.gif", "pages.tif", "anim.png"]:
        assert [line for line in err if line.startswith(f"led-edit: skipped {folder / name}: has 3 frames")], err
    assert err[-1] == "led-edit: error: 3 of 5 images failed (see above)."


# ---------------------------------------------------------------------------------------------------------------------
# Model folders: absurd configs and missing components are named before anything is allocated
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative, field, value",
    [
        ("unet/config.json", "block_out_channels", [40000, 40000]),
        ("unet/config.json", "sample_size", 60000),
        ("unet/config.json", "sample_size", 1024),  # passed, then needed 7.5 GB
        ("scheduler/scheduler_config.json", "num_train_timesteps", 3_000_000_000),
        ("model_index.json", "default_num_inference_steps", 2_000_000_000),
        ("embeddings/config.json", "embedding_dim", float("nan")),
    ],
)
def test_absurd_model_configs_are_refused_before_anything_is_allocated(model_dir, tmp_path, relative, field, value):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    config = json.loads((broken / relative).read_text())
    config[field] = value
    (broken / relative).write_text(json.dumps(config))
    tracemalloc.start()
    try:
        with pytest.raises(ModelConfigError, match=rf"{relative}: {field} = .* is outside the range any model uses"):
            LocalExpressionPipeline.from_pretrained(broken)
        assert tracemalloc.get_traced_memory()[1] < 50 * 2**20, "nothing big was allocated"
    finally:
        tracemalloc.stop()


def test_a_config_field_that_is_not_a_number_is_named_so(model_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    config = json.loads((broken / "unet/config.json").read_text())
    config["layers_per_block"] = "16"
    (broken / "unet/config.json").write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match="layers_per_block = '16' is not a number \\(a str\\)"):
        LocalExpressionPipeline.from_pretrained(broken)


def test_a_missing_model_component_is_named(model_dir, face, tmp_path, capsys):
    broken = tmp_path / "m8"
    shutil.copytree(model_dir, broken, ignore=shutil.ignore_patterns("embeddings"))
    with pytest.raises(
        ModelConfigError, match="m8 has no embeddings/ folder, but model_index.json lists the embeddings component"
    ):
        LocalExpressionPipeline.from_pretrained(broken)
    photo = tmp_path / "photo.png"
    PIL.Image.fromarray(face).save(photo)
    assert edit_main([str(photo), "--target", "happy", "--model", str(broken)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no embeddings/ folder" in err
    check_model_folder(model_dir)  # a good model passes


# ---------------------------------------------------------------------------------------------------------------------
# led-prepare-data: each photo once, each person once
# ---------------------------------------------------------------------------------------------------------------------


def _labelled_folder(folder: Path, rows: list, links: dict) -> Path:
    """Photos (distinct files; ``links``: name -> the photo it links to) listed in a metadata.jsonl of ``rows``."""
    for name in sorted({row["file_name"] for row in rows} - set(links)):
        distinct_copy(folder / name)
    for name, target in links.items():
        (folder / name).symlink_to(folder / target)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_prepare_data_uses_each_photo_once_and_each_person_once(tmp_path):
    rows = [
        *({"file_name": f"p{i}.png", "expression": "happy", "subject": s} for i, s in enumerate(["1", "01", "001"])),
        {"file_name": "q.png", "expression": "sad", "subject": "2"},
        {"file_name": "q.png", "expression": "sad", "subject": "2"},  # listed twice
        {"file_name": "link.png", "expression": "sad", "subject": "02"},  # a symbolic link to q.png
        {"file_name": "r.png", "expression": "happy", "subject": "3"},
        {"file_name": "r.png", "expression": "sad", "subject": "3"},  # the same photo with another label
    ]
    photos = _labelled_folder(tmp_path / "photos", rows, {"link.png": "q.png"})
    report = _prepare(photos, tmp_path / "out", format="metadata", test_subjects=["1"])
    assert report.splits["test"]["subjects"] == ["001"] and report.splits["test"]["photos"] == 3, "one person"
    assert report.splits["train"]["subjects"] == ["02"] and report.splits["train"]["photos"] == 1
    reasons = sorted((item["source"], item["reason"].split(" (")[0].split(":")[0]) for item in report.skipped)
    assert reasons == [
        ("link.png", "duplicate of q.png"),
        ("q.png", "duplicate of q.png"),
        ("r.png", "the same photo"),
        ("r.png", "the same photo"),
    ], report.skipped
    assert "has different expressions: r.png (happy), r.png (sad)" in report.skipped[-1]["reason"]

    # A copy of one photo on both sides of the split is refused before anything is written.
    rows = [
        {"file_name": "s.png", "expression": "happy", "subject": "4"},
        {"file_name": "t.png", "expression": "happy", "subject": "5"},
    ]
    photos = _labelled_folder(tmp_path / "photos2", rows, {"t.png": "s.png"})
    with pytest.raises(
        data.DatasetFormatError,
        match=r"s.png, t.png are the same photo .* subjects \['4', '5'\], "
        "which the split puts in train and test",
    ):
        _prepare(photos, tmp_path / "out2", format="metadata", test_subjects=["5"])
    assert not (tmp_path / "out2").exists()
    assert data.split_subjects(["1", "01", "7"], test_subjects=["001"]) == {"1"}
