"""Every script in examples/ runs as documented (on tiny settings): each Python example as `python examples/<x>.py`
in a fresh interpreter with a tiny random model passed by `--model` or `$LED_MODEL`, and `examples/train_small.sh` on
six RaFD-named copies of the bundled photo with the tiny UNet preset and two training steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE_IMAGE, QUICK_VALIDATION, REPO, make_tiny_pipeline
from PIL import Image, ImageEnhance, ImageOps

EXAMPLES = REPO / "examples"
BIN = Path(sys.executable).parent  # the environment's console scripts (led-prepare-data, accelerate)


def run(command, cwd, timeout=300, **env):
    environment = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",  # tiny models: one thread beats two fighting over a busy CPU
        **env,
    }
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )
    return done


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random pipeline with 2 default steps (strength 0.5 -> 1 UNet call)."""
    path = tmp_path_factory.mktemp("tiny") / "tiny-led"
    make_tiny_pipeline(default_num_inference_steps=2).save_pretrained(path)
    return path


def assert_only_the_face_changed(edited: Image.Image, source: Image.Image = None):
    source = np.asarray((source or Image.open(EXAMPLE_IMAGE)).convert("RGB"))
    edited = np.asarray(edited.convert("RGB"))
    assert edited.shape == source.shape
    changed = np.any(edited != source, axis=-1)
    assert changed.sum() > 200 and not changed[:60].any() and not changed[300:].any()


def test_edit_one(tiny_model, tmp_path):
    # As documented: no argument but the model (by environment variable) -> <photo>_<target>.png in the cwd.
    done = run([sys.executable, EXAMPLES / "edit_one.py"], cwd=tmp_path, LED_MODEL=str(tiny_model))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "astronaut_happy.png (1 face(s) edited toward 'happy')" in done.stdout
    assert_only_the_face_changed(Image.open(tmp_path / "astronaut_happy.png"))


def test_expression_grid(tiny_model, tmp_path):
    other = tmp_path / "mirrored.png"
    ImageOps.mirror(Image.open(EXAMPLE_IMAGE)).save(other)
    done = run(
        [
            sys.executable,
            EXAMPLES / "expression_grid.py",
            other,
            "--model",
            tiny_model,
            "--targets",
            "happy,contempt",
            "--timesteps",
            "100,400",
            "--steps",
            "10",
            "--cell",
            "96",
            "-o",
            tmp_path / "g.png",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 photo(s) x 2 targets x t_i 100, 400" in done.stdout
    grid = np.asarray(Image.open(tmp_path / "g.png").convert("RGB")).astype(int)
    label_width, header, cell, top = int(96 * 0.9), int(96 * 0.28), 96, 28
    assert grid.shape[1] >= label_width + 3 * cell and grid.shape[0] == top + 2 * (header + 2 * cell)

    def cell_at(block, row, column):
        y = top + block * (header + 2 * cell) + header + row * cell
        x = label_width + column * cell
        return grid[y : y + cell, x : x + cell]

    for block in (0, 1):
        for row in (0, 1):
            assert np.array_equal(cell_at(block, row, 0), cell_at(block, 0, 0))  # the input column
            assert np.abs(cell_at(block, row, 1) - cell_at(block, row, 0)).mean() > 0.5  # t_i 100 edits
            # a higher t_i changes more
            assert (
                np.abs(cell_at(block, row, 2) - cell_at(block, row, 0)).mean()
                > np.abs(cell_at(block, row, 1) - cell_at(block, row, 0)).mean()
            )
    assert not np.array_equal(cell_at(0, 0, 0), cell_at(1, 0, 0))  # the second photo is the mirrored one


@pytest.mark.parametrize("script", ["expression_grid.py", "expression_sheet.py"])
def test_figure_scripts_keep_an_existing_output_without_overwrite(script, tiny_model, tmp_path):
    output = tmp_path / "figure.png"
    output.write_bytes(b"the user's figure")
    done = run([sys.executable, EXAMPLES / script, "--model", tiny_model, "-o", output], cwd=tmp_path)
    assert done.returncode == 2 and "exists; pass --overwrite" in done.stderr
    assert output.read_bytes() == b"the user's figure"


def test_batch_folder(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    source = Image.open(EXAMPLE_IMAGE).convert("RGB")
    source.save(photos / "a.png")
    ImageEnhance.Brightness(source).enhance(0.8).save(photos / "b.jpg", quality=95)
    Image.new("RGB", (120, 90), "gray").save(photos / "wall.png")  # no face
    (photos / "broken.png").write_bytes(b"not a png")
    (photos / "notes.txt").write_text("ignored")
    done = run(
        [
            sys.executable,
            EXAMPLES / "batch_folder.py",
            photos,
            tmp_path / "out",
            "--target",
            "sadness",
            "--batch-size",
            "2",
            "--model",
            tiny_model,
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # some photos were skipped
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sad.png", "b_sad.png"]
    assert "skipped broken.png" in done.stderr and "skipped wall.png: no face found" in done.stderr
    assert "2 of 4 photos edited toward 'sad'" in done.stdout
    assert_only_the_face_changed(Image.open(tmp_path / "out/a_sad.png"))


def test_train_small_sh(tmp_path):
    # Six RaFD-named photos: subjects 01 and 02 train, 03 is held out; two expressions each.
    photos = tmp_path / "rafd"
    photos.mkdir()
    source = Image.open(EXAMPLE_IMAGE).convert("RGB")
    for s, subject in enumerate(("01", "02", "03")):
        for e, expression in enumerate(("happy", "sad")):
            image = source if (s + e) % 2 == 0 else ImageOps.mirror(source)
            ImageEnhance.Brightness(image).enhance(0.9 + 0.1 * s).save(
                photos / f"Rafd090_{subject}_Caucasian_female_{expression}_frontal.png"
            )
    # A stand-in led-evaluate that records how it was called (the real one is tested with the evaluation module).
    stub = tmp_path / "stub-bin"
    stub.mkdir()
    (stub / "led-evaluate").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$LED_EVALUATE_ARGS"\n')
    (stub / "led-evaluate").chmod(0o755)

    out = tmp_path / "run"
    done = run(
        [
            "bash",
            EXAMPLES / "train_small.sh",
            photos,
            out,
            *QUICK_VALIDATION,
            "--checkpointing_steps",
            "1",
        ],
        cwd=tmp_path,
        timeout=400,
        MAX_STEPS="2",
        UNET="tiny",
        BATCH_SIZE="2",
        TEST_SUBJECTS="03",
        PYTHON=sys.executable,
        LED_EVALUATE_ARGS=str(tmp_path / "evaluate-args.txt"),
        PATH=f"{stub}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    assert "rafd: 6 labelled photos" in done.stdout and "train: 8 crops of 2 subjects" in done.stdout
    assert "test: 4 crops of 1 subjects" in done.stdout
    model = out / "model"
    for name in (
        "model_index.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "README.md",
        "checkpoint-2",
    ):
        assert (model / name).exists(), name
    card = (model / "README.md").read_text()
    assert "RaFD" in card and "private" in card
    embeddings = json.loads((model / "embeddings/config.json").read_text())
    assert embeddings["text_encoder"] == "sentence-transformers/all-mpnet-base-v2"  # the bundled table, reused
    assert embeddings["trained_labels"] == ["happy", "sad"] and embeddings["conditioning_dropout_prob"] == 0.1
    arguments = (tmp_path / "evaluate-args.txt").read_text().split("\n")
    assert arguments[:6] == ["--model", str(model), "--data", str(out / "crops"), "--out", str(out / "report")]
    assert "--no-realism" in arguments

    # The trained model edits the photo (through the first example).
    command = [sys.executable, EXAMPLES / "edit_one.py", "--model", model, "--target", "sad", "-o", tmp_path / "s.png"]
    done = run(command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_only_the_face_changed(Image.open(tmp_path / "s.png"))
