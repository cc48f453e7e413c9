"""Tests of train_led.py at tiny scale: loss, presets, save layout, exact resume, overfitting, errors, Hub upload,
and one real `accelerate launch` with two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState, GradientState, PartialState
from conftest import QUICK_VALIDATION
from PIL import Image
from safetensors.torch import load_file

from diffusers_led import EXPRESSIONS, ExpressionEmbeddings, LocalExpressionPipeline
from diffusers_led.image_processor import crop_statistics, crops_to_tensor
from diffusers_led.text_encoder import TextEncoderNotAvailableError
from diffusers_led.unet_presets import UNET_PRESETS, build_unet, unet_config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train_led  # noqa: E402

EMBEDDING_DIM = 16
FAST = ["--unet_config", "tiny", "--train_batch_size", "2", "--seed", "0", *QUICK_VALIDATION]


def _crop(label_index: int, region_index: int, variant: int, gray: bool = False) -> np.ndarray:
    """A smooth 64x64 pattern that differs by label, region and a small per-photo variation."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    base = 0.5 + 0.4 * np.sin((label_index + 1) * 3.0 * x + region_index * 2.0 * y + 0.3 * variant)
    rgb = np.stack([base, np.roll(base, 7 * (region_index + 1), axis=1), 1.0 - base], axis=-1)
    if gray:
        rgb = np.repeat(base[..., None], 3, axis=-1)
    return np.rint(rgb * 255).astype(np.uint8)


def write_crop_dataset(
    root: Path, labels=("angry", "happy"), size: int = 64, gray: bool = False, source_format="rafd"
):
    """An imagefolder like led-prepare-data's: train (subjects 01, 02) and test (subject 03), eyes and mouth."""
    for split, subjects in (("train", ("01", "02")), ("test", ("03",))):
        folder = root / split
        folder.mkdir(parents=True)
        lines = []
        for s, subject in enumerate(subjects):
            for _li, label in enumerate(labels):
                for ri, region in enumerate(("eyes", "mouth")):
                    name = f"{subject}_{label}_{region}.png"
                    crop = _crop(EXPRESSIONS.index(label), ri, s, gray)
                    Image.fromarray(crop).resize((size, size)).save(folder / name)
                    lines.append(
                        {
                            "file_name": name,
                            "region": region,
                            "expression": label,
                            "subject": subject,
                            "source": f"{subject}_{label}.png",
                            "source_format": source_format,
                        }
                    )
        (folder / "metadata.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return root


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return write_crop_dataset(tmp_path_factory.mktemp("crops"))


@pytest.fixture(scope="module")
def embeddings_dir(tmp_path_factory) -> Path:
    table = ExpressionEmbeddings(labels=EXPRESSIONS, embedding_dim=EMBEDDING_DIM, text_encoder="random-test")
    torch.manual_seed(0)
    table.embeddings.data.normal_()
    out = tmp_path_factory.mktemp("embeddings")
    table.save_pretrained(out)
    return out


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each in-process run builds its own Accelerator."""
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def train(crops: Path, embeddings_dir: Path, output_dir: Path, *extra: str) -> dict:
    argv = ["--train_data_dir", str(crops), "--text_encoder", str(embeddings_dir), "--output_dir", str(output_dir)]
    return train_led.main(train_led.parse_args(argv + FAST + list(extra)))


# ---------------------------------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------------------------------


def test_smooth_l1_loss_is_eq5_with_beta_1():
    torch.manual_seed(0)
    pred, target = torch.randn(4, 3, 8, 8) * 2, torch.randn(4, 3, 8, 8)
    d = (pred - target).abs()
    by_hand = torch.where(d < 1.0, 0.5 * d**2 / 1.0, d - 0.5 * 1.0).mean()
    assert (d >= 1).any() and (d < 1).any()
    torch.testing.assert_close(train_led.compute_loss(pred, target, "smooth_l1", 1.0), by_hand)
    torch.testing.assert_close(train_led.compute_loss(pred, target, "l2"), ((pred - target) ** 2).mean())
    with pytest.raises(ValueError, match="loss_type"):
        train_led.compute_loss(pred, target, "l3")


def test_unet_presets(tmp_path):
    unet = build_unet("tiny", in_channels=1, cross_attention_dim=EMBEDDING_DIM, sample_size=64)
    assert (unet.config.in_channels, unet.config.out_channels, unet.config.cross_attention_dim) == (1, 1, 16)
    assert set(UNET_PRESETS) == {"paper", "cpu", "tiny"}
    assert unet_config("cpu", 3, 768)["block_out_channels"] == (32, 64, 128, 128)
    path = tmp_path / "unet.json"
    path.write_text(json.dumps({"_class_name": "UNet2DConditionModel", **UNET_PRESETS["tiny"], "in_channels": 9}))
    assert unet_config(str(path), 3, 8)["in_channels"] == 3  # the caller's channels win
    with pytest.raises(ValueError, match="Unknown --unet_config"):
        unet_config("huge", 3, 8)


def test_augment_flip_and_affine_are_deterministic():
    args = train_led.parse_args(
        [
            "--train_data_dir",
            "x",
            "--random_flip",
            "--affine_degrees",
            "5",
            "--affine_translate",
            "0.05",
            "--affine_scale",
            "0.05",
        ]
    )
    batch = torch.rand(6, 3, 64, 64) * 2 - 1
    first = train_led.augment(batch, train_led.batch_generator(0, 0, 1, 2), args)
    again = train_led.augment(batch, train_led.batch_generator(0, 0, 1, 2), args)
    assert torch.equal(first, again) and first.shape == batch.shape
    flip_only = train_led.parse_args(["--train_data_dir", "x", "--random_flip"])
    flipped = train_led.augment(batch, train_led.batch_generator(0, 0, 0, 0), flip_only)
    for original, out in zip(batch, flipped):
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))


def test_brightness_and_contrast_jitter_change_each_crop_about_its_mean():
    args = train_led.parse_args(["--train_data_dir", "x", "--brightness_jitter", "0.1", "--contrast_jitter", "0.2"])
    batch = torch.rand(64, 1, 64, 64) - 0.5  # in [-0.5, 0.5]: no clamping
    jittered = train_led.augment(batch, train_led.batch_generator(0, 0, 0, 0), args)
    shift = jittered.mean(dim=(1, 2, 3)) - batch.mean(dim=(1, 2, 3))
    ratio = jittered.std(dim=(1, 2, 3)) / batch.std(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.2 + 1e-5 and shift.std() > 0.05  # +- 0.1 of the range, different per crop
    assert ((ratio >= 0.8 - 1e-4) & (ratio <= 1.2 + 1e-4)).all() and ratio.std() > 0.05
    # The shape of each crop is kept: a per-crop affine map of the intensities.
    centred = (jittered - jittered.mean(dim=(1, 2, 3), keepdim=True)) / ratio[:, None, None, None]
    assert torch.allclose(centred, batch - batch.mean(dim=(1, 2, 3), keepdim=True), atol=1e-4)
    assert train_led.augment(batch.clamp(-1, 1) * 0 + 1, train_led.batch_generator(0, 0, 0, 0), args).max() <= 1


def test_match_crop_exposure_trains_on_crops_at_their_regions_statistics(crops, embeddings_dir, tmp_path):
    mapped = []
    to_statistics = train_led.CropExposure.to_statistics

    def spy(crops, regions, statistics):
        exposure = to_statistics(crops, regions, statistics)
        mapped.append((exposure.apply(crops), list(regions), statistics))
        return exposure

    with mock.patch.object(train_led.CropExposure, "to_statistics", spy):
        train(crops, embeddings_dir, tmp_path / "model", "--max_train_steps", "1", "--match_crop_exposure")
    pixels, regions, statistics = mapped[0]  # the training crops, before the first step
    assert (
        len(pixels) == 8
        and statistics == LocalExpressionPipeline.from_pretrained(tmp_path / "model").config.crop_statistics
    )
    # The exposure the model learned at: level and contrast of the training crops, region by region.
    lines = [json.loads(line) for line in (crops / "train/metadata.jsonl").read_text().splitlines()]
    raw = crops_to_tensor([np.asarray(Image.open(crops / "train" / line["file_name"])) for line in lines], "rgb")
    assert (
        statistics == crop_statistics(raw, [line["region"] for line in lines])
        and statistics["eyes"] != statistics["mouth"]
    )
    for region, (mean, std) in statistics.items():
        chosen = pixels[[r == region for r in regions]].flatten(1)
        assert torch.allclose(chosen.mean(dim=1), torch.full((4,), mean), atol=1e-4)
        assert torch.allclose(chosen.std(dim=1), torch.full((4,), std), atol=1e-4)
    assert "match_crop_exposure" in (tmp_path / "model/README.md").read_text()


def test_embeddings_from_a_tiny_sentence_transformer(tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizer

    raw = tmp_path / "bert"
    raw.mkdir()
    (raw / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *EXPRESSIONS]) + "\n")
    BertTokenizer(str(raw / "vocab.txt")).save_pretrained(raw)
    config = BertConfig(
        vocab_size=13,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    BertModel(config).save_pretrained(raw)
    SentenceTransformer(str(raw), device="cpu").save(str(tmp_path / "st"))

    table = train_led.load_expression_embeddings(str(tmp_path / "st"), None, ["happy", "sad"], 0.1)
    assert table.config.embedding_dim == 8 and table.trained_labels == ["happy", "sad"]
    assert table.supports_guidance and table.embeddings.abs().sum() > 0
    with pytest.raises(TextEncoderNotAvailableError, match="does not exist"):
        train_led.load_expression_embeddings(str(tmp_path / "no-such-encoder"), None, ["happy"], 0.0)


def test_checkpoint_manifest_detects_incomplete_saves(tmp_path):
    PartialState()  # the accelerate logger needs it
    good = tmp_path / "checkpoint-4"
    good.mkdir()
    (good / "model.safetensors").write_bytes(b"12345")
    (good / train_led.CHECKPOINT_STATE_FILE).write_text(json.dumps({"files": {"model.safetensors": 5}}))
    assert train_led.checkpoint_problem(good) is None
    (good / "model.safetensors").write_bytes(b"123")
    assert "3 bytes instead of 5" in train_led.checkpoint_problem(good)
    (tmp_path / "checkpoint-9").mkdir()
    assert "did not finish" in train_led.checkpoint_problem(tmp_path / "checkpoint-9")
    assert train_led.find_resume_checkpoint(str(tmp_path), "latest") is None  # both broken: start afresh
    with pytest.raises(ValueError, match="Cannot resume from checkpoint"):
        train_led.find_resume_checkpoint(str(tmp_path), "checkpoint-9")


# ---------------------------------------------------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------------------------------------------------


def test_short_run_saves_a_loadable_pipeline_and_pushes(crops, embeddings_dir, tmp_path, example_image, caplog):
    out = tmp_path / "model"
    token = "hf_secret_token_value"
    with mock.patch.object(train_led, "HfApi") as hf_api:
        hf_api.return_value.create_repo.return_value.repo_id = "me/led-test"
        result = train(
            crops,
            embeddings_dir,
            out,
            "--max_train_steps",
            "3",
            "--use_ema",
            "--report_to",
            "tensorboard",
            "--push_to_hub",
            "--hub_model_id",
            "me/led-test",
            "--hub_private_repo",
            "--hub_token",
            token,
        )
    assert result["global_step"] == 3
    # Upload: the right repo, private, the whole output folder, never the token in the logs.
    hf_api.assert_called_once_with(token=token)
    hf_api.return_value.create_repo.assert_called_once_with(repo_id="me/led-test", private=True, exist_ok=True)
    upload = hf_api.return_value.upload_folder.call_args.kwargs
    assert upload["repo_id"] == "me/led-test" and Path(upload["folder_path"]) == out
    assert "checkpoint-*" in upload["ignore_patterns"]
    assert token not in caplog.text
    assert token not in "".join(
        p.read_text(errors="ignore") for p in out.rglob("*") if p.suffix in (".md", ".json", ".yml")
    )

    # Layout: a diffusers pipeline folder, EMA main weights + raw non_ema variant, card and grid.
    for name in (
        "model_index.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "embeddings/config.json",
        "scheduler/scheduler_config.json",
        "README.md",
        "validation_grid.png",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "scheduler/scheduler_config.json").read_text())["num_train_timesteps"] == 500
    card = (out / "README.md").read_text()
    assert "license: other" in card and "RaFD" in card and "private" in card and "smooth L1" in card
    assert list((out / "logs").rglob("events.out.tfevents*"))
    ema = load_file(out / "unet/diffusion_pytorch_model.safetensors")
    raw = load_file(out / "unet/diffusion_pytorch_model.non_ema.safetensors")
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)

    with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
        pipe = LocalExpressionPipeline.from_pretrained(out)
        raw_pipe = LocalExpressionPipeline.from_pretrained(out, variant="non_ema")
    key = next(iter(raw))
    assert torch.equal(raw_pipe.unet.state_dict()[key], raw[key]) and torch.equal(
        pipe.unet.state_dict()[key], ema[key]
    )
    assert pipe.embeddings.trained_labels == ["angry", "happy"] and pipe.color_mode == "rgb"
    assert (
        pipe.config.crop_statistics is None
    )  # crops are edited as they are unless trained with --match_crop_exposure
    pipe.set_progress_bar_config(disable=True)
    edited = pipe(example_image, target="happy", strength=0.2, num_inference_steps=2).images[0]
    assert edited.size == example_image.size


def test_a_ckplus_model_may_be_pushed_openly_without_its_images(embeddings_dir, tmp_path):
    """CK+'s agreement covers its images: the model is marked for non-commercial research use and uploaded without the
    validation grid; RaFD's terms forbid publishing the model at all (test_clear_errors)."""
    data = write_crop_dataset(tmp_path / "crops", source_format="ckplus_sample")
    out = tmp_path / "model"
    with mock.patch.object(train_led, "HfApi") as hf_api:
        hf_api.return_value.create_repo.return_value.repo_id = "me/led-ck"
        train(data, embeddings_dir, out, "--max_train_steps", "1", "--push_to_hub", "--hub_model_id", "me/led-ck")
    hf_api.return_value.create_repo.assert_called_once_with(repo_id="me/led-ck", private=False, exist_ok=True)
    assert train_led.VALIDATION_GRID in hf_api.return_value.upload_folder.call_args.kwargs["ignore_patterns"]
    assert (out / train_led.VALIDATION_GRID).is_file()  # kept locally
    card = (out / "README.md").read_text()
    assert "non-commercial research use only" in card and "CK+ agreement covers its images" in card
    assert "private" not in card and "](./validation_grid.png)" not in card
    assert LocalExpressionPipeline.from_pretrained(out).config.license == "non-commercial research use only"


def test_resume_is_exact(crops, embeddings_dir, tmp_path, caplog):
    """Interrupted at step 5 and resumed from checkpoint-3 (mid-epoch, with gradient accumulation) = uninterrupted."""
    common = [
        "--max_train_steps",
        "6",
        "--checkpointing_steps",
        "3",
        "--use_ema",
        "--gradient_accumulation_steps",
        "2",
        "--random_flip",
        "--conditioning_dropout_prob",
        "0.2",
        "--validation_epochs",
        "1",
    ]
    train(crops, embeddings_dir, tmp_path / "straight", *common)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()

    calls = {"n": 0}
    real_loss = train_led.compute_loss

    def crash_on_step_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 9:  # the first micro-batch of optimisation step 5
            raise KeyboardInterrupt("simulated crash")
        return real_loss(*args, **kwargs)

    interrupted = tmp_path / "interrupted"
    with mock.patch.object(train_led, "compute_loss", crash_on_step_5), pytest.raises(KeyboardInterrupt):
        train(crops, embeddings_dir, interrupted, *common)
    assert sorted(p.name for p in interrupted.glob("checkpoint-*")) == ["checkpoint-3"]
    (interrupted / "checkpoint-4").mkdir()  # a save that died before its manifest
    AcceleratorState._reset_state(True)
    GradientState._reset_state()

    result = train(crops, embeddings_dir, interrupted, *common, "--resume_from_checkpoint", "latest")
    assert result["resumed_from"].endswith("checkpoint-3") and result["global_step"] == 6
    assert "Skipping checkpoint" in caplog.text and "checkpoint-4" in caplog.text
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.non_ema.safetensors"):
        a, b = load_file(tmp_path / "straight/unet" / name), load_file(interrupted / "unet" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    state_a = torch.load(tmp_path / "straight/checkpoint-6/optimizer.bin", weights_only=False)
    state_b = torch.load(interrupted / "checkpoint-6/optimizer.bin", weights_only=False)
    assert all(torch.equal(state_a["state"][i]["exp_avg"], state_b["state"][i]["exp_avg"]) for i in state_a["state"])


def test_balanced_sampling_evens_out_the_expressions():
    data = train_led.CropDataset([None] * 100, ["neutral"] * 90 + ["happy"] * 10, ["eyes"] * 100, ["s"] * 100)
    sampler = train_led.EpochShuffleSampler(len(data), seed=3, weights=data.balanced_weights())
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == 100
        drawn += order
    happy_share = np.mean([data.expressions[i] == "happy" for i in drawn])
    assert 0.45 < happy_share < 0.55, happy_share  # 0.10 without balancing
    sampler.set_epoch(7)
    again = train_led.EpochShuffleSampler(len(data), seed=3, weights=data.balanced_weights())
    again.set_epoch(7)
    assert list(sampler) == list(again)  # a resumed run draws the same crops


def test_region_conditioning_trains_a_region_aware_unet(crops, embeddings_dir, tmp_path, example_image):
    out = tmp_path / "regions"
    result = train(
        crops,
        embeddings_dir,
        out,
        "--max_train_steps",
        "2",
        "--region_conditioning",
        "--balance_expressions",
        "--conditioning_dropout_prob",
        "0.2",
    )
    assert result["global_step"] == 2
    pipe = LocalExpressionPipeline.from_pretrained(out)
    assert pipe.unet.config.num_class_embeds == 2 and list(pipe.config.regions) == ["eyes", "mouth"]
    assert (out / "validation_grid.png").is_file()
    edited = pipe(example_image, target="happy", guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert edited.images[0].size == example_image.size


def test_a_mouth_only_model_works_with_a_plain_call_and_led_edit(crops, embeddings_dir, tmp_path, example_image):
    """`--regions mouth`: the model's config says so, and nothing downstream assumes eyes and mouth."""
    from diffusers_led.cli import edit_main

    out = tmp_path / "mouth"
    train(crops, embeddings_dir, out, "--max_train_steps", "1", "--regions", "mouth")
    pipe = LocalExpressionPipeline.from_pretrained(out)
    assert list(pipe.config.regions) == ["mouth"]
    output = pipe(example_image, "happy", num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    assert [list(face.crops) for face in output.faces[0]] == [["mouth"]]
    edited = tmp_path / "edited.png"
    assert (
        edit_main(
            [
                str(REPO / "examples" / "astronaut.png"),
                "--target",
                "happy",
                "--model",
                str(out),
                "-o",
                str(edited),
                "--steps",
                "4",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert Image.open(edited).size == example_image.size


def test_the_model_keeps_the_crop_geometry_of_its_data(embeddings_dir, tmp_path):
    data = write_crop_dataset(tmp_path / "crops")
    margins = {"eyes": [50.0, 50.0], "mouth": [46.0, 48.0]}
    report = {
        "processor": {
            "regions": ["eyes", "mouth"],
            "geometry": {"region_anchor": "template", "region_margins": margins},
        }
    }
    (data / "prepare_report.json").write_text(json.dumps(report))
    train(data, embeddings_dir, tmp_path / "model", "--max_train_steps", "1")
    pipe = LocalExpressionPipeline.from_pretrained(tmp_path / "model")
    assert pipe.region_processor.geometry == {"region_anchor": "template", "region_margins": margins}
    assert "Crop geometry: **template**-anchored boxes" in (tmp_path / "model" / "README.md").read_text()
    AcceleratorState._reset_state(True)
    with pytest.raises(ValueError, match="were cut with template"):
        train(data, embeddings_dir, tmp_path / "other", "--max_train_steps", "1", "--region_anchor", "landmarks")


def test_loss_falls_when_overfitting(crops, embeddings_dir, tmp_path):
    result = train(
        crops,
        embeddings_dir,
        tmp_path / "overfit",
        "--max_train_steps",
        "40",
        "--train_batch_size",
        "4",
        "--lr_scheduler",
        "constant",
        "--learning_rate",
        "3e-3",
        "--checkpointing_steps",
        "10",
        "--checkpoints_total_limit",
        "2",
        "--loss_type",
        "l2",
    )
    losses = result["losses"]
    assert len(losses) == 40
    assert sorted(p.name for p in (tmp_path / "overfit").glob("checkpoint-*")) == ["checkpoint-30", "checkpoint-40"]
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8]), losses


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--resolution", "32"], "Resolution mismatch"),
        (["--mixed_precision", "fp16"], "fp16 mixed precision needs a GPU"),
        (["--push_to_hub"], "forbids publishing"),
        (["--regions", "cheeks"], "training split is empty"),
    ],
)
def test_clear_errors(crops, embeddings_dir, tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        train(crops, embeddings_dir, tmp_path / "out", "--max_train_steps", "1", *extra)


def test_label_without_embedding_and_empty_data(crops, embeddings_dir, tmp_path):
    small = ExpressionEmbeddings(labels=["sad", "neutral"], embedding_dim=EMBEDDING_DIM)
    small.save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match=r"\['angry', 'happy'\] have no embedding"):
        train(crops, tmp_path / "small", tmp_path / "out", "--max_train_steps", "1")
    AcceleratorState._reset_state(True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No training crops found"):
        train(tmp_path / "empty", embeddings_dir, tmp_path / "out", "--max_train_steps", "1")


def test_gray_crops_train_a_luminance_model(tmp_path, embeddings_dir):
    data = write_crop_dataset(tmp_path / "gray", gray=True, source_format="folders")
    train(data, embeddings_dir, tmp_path / "model", "--max_train_steps", "1")
    config = json.loads((tmp_path / "model/unet/config.json").read_text())
    assert config["in_channels"] == config["out_channels"] == 1


def test_accelerate_launch_two_processes(crops, embeddings_dir, tmp_path):
    """The real launcher: 2 CPU processes (gloo), bf16 autocast and gradient accumulation."""
    out = tmp_path / "launched"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
        str(REPO / "train_led.py"),
        "--train_data_dir",
        str(crops),
        "--text_encoder",
        str(embeddings_dir),
        "--output_dir",
        str(out),
        *FAST,
        "--max_train_steps",
        "2",
        "--gradient_accumulation_steps",
        "2",
        "--mixed_precision",
        "bf16",
        "--checkpointing_steps",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MULTI_CPU" in done.stderr and "Num processes: 2" in done.stderr
    assert (out / "model_index.json").is_file()
    assert (out / "checkpoint-2/random_states_1.pkl").is_file()
    assert json.loads((out / "checkpoint-2" / train_led.CHECKPOINT_STATE_FILE).read_text())["num_processes"] == 2


def test_a_resolution_no_saved_model_could_load_is_refused_before_training(capsys):
    with pytest.raises(SystemExit):
        train_led.parse_args(["--train_data_dir", "x", "--resolution", "1024"])
    assert "--resolution must be in [8, 256] (the crop side in pixels), got 1024." in capsys.readouterr().err
    assert train_led.parse_args(["--train_data_dir", "x", "--resolution", "256"]).resolution == 256
