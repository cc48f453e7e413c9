"""Folder editing: batches, the detection thread, per-file failures, `python -m diffusers_led.cli` and
`accelerate launch` splitting a folder across processes; the pipeline's `faces=` argument."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXAMPLE_IMAGE, edit_example_args, make_tiny_pipeline
from PIL import Image

from diffusers_led.batch import crops_per_face, default_batch_size, edit_files
from diffusers_led.cli import edit_main
from diffusers_led.cpu import available_cpus, recommended_num_threads


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny-model")
    make_tiny_pipeline().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Three faces (one mirrored), an unreadable file and a photo without a face."""
    folder = tmp_path_factory.mktemp("photos")
    image = Image.open(EXAMPLE_IMAGE).convert("RGB")
    image.save(folder / "a.png")
    image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.png")
    image.resize((384, 384)).save(folder / "c.jpg")
    (folder / "broken.png").write_bytes(b"not an image")
    Image.new("RGB", (160, 120), (120, 120, 120)).save(folder / "blank.png")
    return folder


def _run_cli(args, **kwargs):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kwargs)


def edit_folder_args(folder, out, model: str, steps: int) -> list[str]:
    """``led-edit`` arguments that edit every photo of ``folder`` toward happy into ``out``, two at a time."""
    return [
        str(folder),
        "--target",
        "happy",
        "-o",
        str(out),
        "--model",
        model,
        "--steps",
        str(steps),
        "--batch-size",
        "2",
    ]


def test_folder_edit_reports_failures_per_file_and_writes_the_rest(tiny_model, photo_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = edit_main([*edit_folder_args(photo_folder, out, tiny_model, steps=4), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_happy.png", "b_happy.png", "c_happy.png"]
    assert "broken.png" in captured.err and "blank.png: no face detected" in captured.err
    assert "2 of 5 images failed" in captured.err
    assert Image.open(out / "c_happy.png").size == (384, 384)


def test_batching_and_prefetch_do_not_change_results(tiny_model, photo_folder):
    from diffusers_led import LocalExpressionPipeline

    pipe = LocalExpressionPipeline.from_pretrained(tiny_model)
    pipe.set_progress_bar_config(disable=True)
    paths = sorted(photo_folder.iterdir())
    runs = [
        list(edit_files(pipe, paths, "happy", batch_size=1, prefetch=False, num_inference_steps=4)),
        list(edit_files(pipe, paths, "happy", batch_size=3, prefetch=True, num_inference_steps=4)),
        list(edit_files(pipe, paths, "happy", batch_size=8, prefetch=False, num_inference_steps=4)),
    ]
    for results in runs:
        assert [r.path for r in results] == paths  # every file, in order
        assert [r.error is None for r in results] == [True, True, False, False, True]  # a, b, blank, broken, c
    for one, other in zip(runs[0], runs[1] + runs[2]):
        if one.error is None:
            difference = np.abs(np.asarray(one.image, dtype=int) - np.asarray(other.image, dtype=int))
            assert difference.max() <= 1  # float rounding of batched convolutions at most


def test_pipeline_reuses_given_faces(tiny_pipeline, example_image):
    first = tiny_pipeline(
        example_image, target="happy", num_inference_steps=4, generator=torch.Generator().manual_seed(0)
    )
    calls = []
    original = tiny_pipeline.region_processor.detector.detect
    tiny_pipeline.region_processor.detector.detect = lambda *a, **k: calls.append(1) or original(*a, **k)
    again = tiny_pipeline(
        [example_image, example_image],
        target=["happy", "surprised"],
        num_inference_steps=4,
        faces=first.faces * 2,
        generator=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)],
    )
    assert not calls  # no detection
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(first.images[0]))
    with pytest.raises(ValueError, match="one list of faces per image"):
        tiny_pipeline(example_image, target="happy", faces=first.faces * 2)
    with pytest.raises(ValueError, match="lack the crops"):
        tiny_pipeline(example_image, target="happy", faces=[[object()]])


def test_schedulers_without_a_generator_argument_work(tiny_pipeline, example_image):
    from diffusers import UniPCMultistepScheduler

    tiny_pipeline.scheduler = UniPCMultistepScheduler.from_config(tiny_pipeline.scheduler.config)
    out = tiny_pipeline(
        example_image, target="happy", num_inference_steps=6, generator=torch.Generator().manual_seed(0)
    )
    assert out.images[0].size == example_image.size
    # UniPC denoised the regions (the edit is not a no-op) and nothing outside them changed.
    before, after = np.asarray(example_image, dtype=np.int16), np.asarray(out.images[0], dtype=np.int16)
    changed = np.abs(after - before).max(axis=2) > 0
    mask = tiny_pipeline.region_processor.composite_mask(before.shape, out.faces[0]) > 0
    assert changed.any() and not (changed & ~mask).any()


def test_default_batch_holds_about_16_crops_per_unet_call():
    plain = make_tiny_pipeline()
    guided = make_tiny_pipeline(conditioning_dropout_prob=0.1, default_guidance_scale=3.0)
    assert default_batch_size(plain) == 8  # 8 photos x 2 regions
    assert default_batch_size(guided) == 4  # x 2 for the unconditional half
    assert default_batch_size(guided, guidance_scale=1.0) == 8
    assert default_batch_size(plain, faces_per_image=20) == 1
    assert (crops_per_face(2, 1.0), crops_per_face(2, 3.0), crops_per_face(1, 1.5)) == (2, 4, 2)


def test_thread_recommendation_stays_within_the_cores():
    cores = available_cpus()
    assert 1 <= recommended_num_threads() <= cores
    assert recommended_num_threads(num_processes=cores * 4) == 1
    assert recommended_num_threads(background_threads=cores, use_load=False) == 1
    assert recommended_num_threads(use_load=False) == cores


def test_python_dash_m_entry_point(tiny_model, tmp_path):
    result = _run_cli(
        [
            sys.executable,
            "-m",
            "diffusers_led.cli",
            "edit",
            str(EXAMPLE_IMAGE),
            "--target",
            "sad",
            "-o",
            str(tmp_path / "sad.png"),
            "--model",
            tiny_model,
            "--steps",
            "2",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sad.png").is_file()
    assert _run_cli([sys.executable, "-m", "diffusers_led.cli", "nonsense"]).returncode == 2


@pytest.mark.skipif(
    shutil.which("accelerate") is None and not (Path(sys.executable).parent / "accelerate").exists(),
    reason="accelerate's launcher is not installed",
)
def test_accelerate_launch_splits_a_folder_across_two_processes(tiny_model, photo_folder, tmp_path):
    launcher = Path(sys.executable).parent / "accelerate"
    out = tmp_path / "out"
    result = _run_cli(
        [
            str(launcher) if launcher.exists() else "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "diffusers_led.cli",
            "edit",
            *edit_folder_args(photo_folder, out, tiny_model, steps=2),
        ]
    )
    # Both processes ran, each on its own share; the failures are reported per file and the exit code says so.
    assert "[process 0 of 2]" in result.stdout and "[process 1 of 2]" in result.stdout, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_happy.png", "b_happy.png", "c_happy.png"]
    assert "broken.png" in result.stderr and "blank.png: no face detected" in result.stderr
    assert result.returncode != 0


def test_fast_default_and_the_paper_mode_one_argument_away(tmp_path, example_image):
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

    from diffusers_led import LocalExpressionPipeline
    from diffusers_led.pipeline_led import FAST_NUM_INFERENCE_STEPS

    pipe = make_tiny_pipeline()
    training = DDPMScheduler.from_config(pipe.scheduler.config)
    pipe.use_fast_scheduler()
    pipe.save_pretrained(tmp_path / "model")
    loaded = LocalExpressionPipeline.from_pretrained(tmp_path / "model")
    assert isinstance(loaded.scheduler, DPMSolverMultistepScheduler)
    assert loaded.scheduler.config.timestep_spacing == "trailing"
    assert loaded.config.default_num_inference_steps == FAST_NUM_INFERENCE_STEPS
    timesteps = loaded.get_timesteps(250, FAST_NUM_INFERENCE_STEPS, torch.device("cpu"))
    assert len(timesteps) == FAST_NUM_INFERENCE_STEPS // 2 and int(timesteps[0]) == 249  # starts where asked

    # The paper's DDPM comes back exactly from the saved fast scheduler's config.
    paper = DDPMScheduler.from_config(loaded.scheduler.config)
    assert torch.equal(paper.betas, training.betas) and paper.config.clip_sample == training.config.clip_sample
    paper.set_timesteps(500)
    training.set_timesteps(500)
    assert torch.equal(paper.timesteps, training.timesteps)

    out = tmp_path / "paper.png"
    assert edit_main(edit_example_args(out, tmp_path / "model", "--paper")) == 0
    assert out.is_file()


def test_bf16_option_runs(tiny_model, tmp_path):
    out = tmp_path / "bf16.png"
    assert edit_main(edit_example_args(out, tiny_model, "--steps", "4", "--bf16")) == 0
    assert Image.open(out).size == Image.open(EXAMPLE_IMAGE).size


def test_negative_target_option_reaches_the_pipeline(tmp_path):
    from diffusers_led import LocalExpressionPipeline

    model = tmp_path / "guided"
    make_tiny_pipeline(conditioning_dropout_prob=0.1, default_guidance_scale=3.0).save_pretrained(model)
    common = [str(EXAMPLE_IMAGE), "--target", "happy", "--model", str(model), "--steps", "4", "--threads", "1"]
    assert edit_main([*common, "-o", str(tmp_path / "plain.png")]) == 0
    assert edit_main([*common, "-o", str(tmp_path / "away.png"), "--negative-target", "neutral"]) == 0
    plain, away = (np.asarray(Image.open(tmp_path / name)) for name in ("plain.png", "away.png"))
    assert not np.array_equal(plain, away)
    pipe = LocalExpressionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        Image.open(EXAMPLE_IMAGE),
        target="happy",
        num_inference_steps=4,
        negative_target="neutral",
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert np.abs(np.asarray(expected, dtype=int) - away.astype(int)).max() <= 1
