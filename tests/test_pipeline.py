"""LocalExpressionPipeline on a real face with tiny random-weight UNets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import make_tiny_pipeline
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

from diffusers_led import LocalExpressionPipeline, NoFaceDetectedError, UntrainedExpressionError
from diffusers_led.image_processor import CropExposure, crop_statistics, prepare_image


def edit(pipe, image, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 10)
    return pipe(image, target="happy", generator=torch.Generator().manual_seed(seed), **kwargs)


def editable_area(pipe, image, faces) -> np.ndarray:
    """Where the composite may change pixels: the warped blend masks are above zero."""
    return pipe.region_processor.composite_mask(prepare_image(image).rgb.shape, faces) > 0


def test_edit_changes_only_pixels_inside_the_masks(tiny_pipeline, example_image):
    result = edit(tiny_pipeline, example_image, strength=0.6)
    output = np.asarray(result.images[0])
    source = np.asarray(example_image)
    assert output.shape == source.shape and output.dtype == np.uint8
    assert len(result.faces[0]) == 1
    area = editable_area(tiny_pipeline, example_image, result.faces[0])
    changed = np.any(output != source, axis=2)
    assert changed.any(), "a random model at strength 0.6 must change something"
    assert not changed[~area].any(), "pixels outside the blend masks must be bit-identical"
    assert 0.002 < area.mean() < 0.2  # eyes and mouth of one face, not the whole photo


@pytest.mark.parametrize("strength_kwargs", [{"strength": 0.0}, {"start_timestep": 0}])
def test_strength_zero_is_identity(tiny_pipeline, example_image, strength_kwargs):
    output = edit(tiny_pipeline, example_image, **strength_kwargs).images[0]
    assert output.mode == example_image.mode
    assert np.array_equal(np.asarray(output), np.asarray(example_image))
    array = np.asarray(example_image).astype(np.float32) / 255.0 * 0.999
    out = edit(tiny_pipeline, array, output_type="np", **strength_kwargs).images[0]
    assert np.array_equal(out, array)


def test_same_generator_same_result_and_start_timestep_matches_strength(tiny_pipeline, example_image):
    first = np.asarray(edit(tiny_pipeline, example_image, strength=0.5).images[0])
    second = np.asarray(edit(tiny_pipeline, example_image, strength=0.5).images[0])
    by_step = np.asarray(edit(tiny_pipeline, example_image, start_timestep=250).images[0])
    other = np.asarray(edit(tiny_pipeline, example_image, strength=0.5, seed=1).images[0])
    assert np.array_equal(first, second)
    assert np.array_equal(first, by_step)
    assert not np.array_equal(first, other)


def test_input_forms_come_back_in_their_form(tiny_pipeline, example_image):
    gray = example_image.convert("L")
    rgba = example_image.convert("RGBA")
    rgba.putalpha(PIL.Image.linear_gradient("L").resize(example_image.size))
    out_gray, out_rgba = edit(tiny_pipeline, [gray, rgba]).images
    assert out_gray.mode == "L" and out_gray.size == gray.size
    assert out_rgba.mode == "RGBA" and out_rgba.size == rgba.size
    assert np.array_equal(np.asarray(out_rgba)[..., 3], np.asarray(rgba)[..., 3]), "alpha must be kept"

    array = np.asarray(example_image)
    out_np = edit(tiny_pipeline, array, output_type="np").images[0]
    assert out_np.shape == array.shape and out_np.dtype == np.float32
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255.0
    out_pt = edit(tiny_pipeline, tensor, output_type="pt").images[0]
    assert out_pt.shape == tensor.shape
    assert np.allclose(out_pt.permute(1, 2, 0).numpy(), out_np, atol=1 / 255)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "float32 tensor"])
def test_precise_inputs_keep_their_values_outside_the_edit(tiny_pipeline, example_image, dtype):
    """16-bit and float inputs hold values between the 8-bit steps; the edit must not round the rest of the photo."""
    rng = np.random.default_rng(0)
    fine = np.clip(
        np.asarray(example_image) / 255.0 + rng.uniform(-1.5e-3, 1.5e-3, (*example_image.size[::-1], 3)), 0.0, 1.0
    )
    if dtype == "uint16":
        image = np.round(fine * 65535).astype(np.uint16)
        expected = image.astype(np.float32) / np.float32(65535.0)
    else:
        image = expected = fine.astype(np.float32)
    output_type = "np"
    if dtype.endswith("tensor"):
        image, output_type = torch.from_numpy(image).permute(2, 0, 1), "pt"
    result = edit(tiny_pipeline, image, output_type=output_type, strength=0.6, num_inference_steps=2)
    out = result.images[0]
    out = out.permute(1, 2, 0).numpy() if output_type == "pt" else out
    area = editable_area(tiny_pipeline, example_image, result.faces[0])
    assert out.dtype == np.float32 and not np.array_equal(out[area], expected[area]), "the face is edited"
    assert np.array_equal(out[~area], expected[~area]), "pixels outside the edit must keep their exact values"
    assert np.array_equal(np.round(out[~area] * 65535), np.round(expected[~area] * 65535))


def test_exif_rotated_input_is_edited_upright(tiny_pipeline, example_image, tmp_path):
    rotated = example_image.transpose(PIL.Image.Transpose.ROTATE_90)
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": undoes the counter-clockwise ROTATE_90 above
    path = tmp_path / "rotated.jpg"
    rotated.save(path, exif=exif, quality=95)
    result = edit(tiny_pipeline, str(path))
    assert result.images[0].size == example_image.size
    assert len(result.faces[0]) == 1


def test_color_photo_keeps_its_colour_under_a_luminance_model(tiny_pipeline, example_image):
    output = np.asarray(edit(tiny_pipeline, example_image, strength=0.8).images[0]).astype(np.int32)
    source = np.asarray(example_image).astype(np.int32)
    area = editable_area(tiny_pipeline, example_image, edit(tiny_pipeline, example_image, strength=0.8).faces[0])
    chroma = lambda rgb: (rgb[..., 0] - rgb[..., 1], rgb[..., 2] - rgb[..., 1])  # noqa: E731
    # Luminance edits move R, G and B together, so channel differences stay near the source's.
    for out_c, src_c in zip(chroma(output), chroma(source)):
        assert np.abs(out_c - src_c)[area].mean() < 12


def test_rgb_model_edits_grayscale_input(example_image):
    pipe = make_tiny_pipeline(in_channels=3)
    gray = example_image.convert("L")
    output = edit(pipe, gray).images[0]
    assert output.mode == "L" and output.size == gray.size


def test_every_face_of_a_group_photo_is_edited_in_one_batch(tiny_pipeline, two_face_image):
    batch_sizes = []
    original_forward = tiny_pipeline.unet.forward
    tiny_pipeline.unet.forward = lambda sample, *a, **k: (
        batch_sizes.append(sample.shape[0]) or original_forward(sample, *a, **k)
    )
    result = edit(tiny_pipeline, [two_face_image, two_face_image], num_inference_steps=4)
    assert [len(faces) for faces in result.faces] == [2, 2]
    assert set(batch_sizes) == {8}, "2 images x 2 faces x 2 regions share each UNet call"


def test_regions_argument_limits_the_edit(tiny_pipeline, example_image):
    result = edit(tiny_pipeline, example_image, regions=("mouth",), strength=0.6)
    assert list(result.faces[0][0].crops) == ["mouth"]
    face = tiny_pipeline.region_processor.extract(np.asarray(example_image))[0]
    eyes_only = editable_area(tiny_pipeline, example_image, [_only(face, "eyes")])
    changed = np.any(np.asarray(result.images[0]) != np.asarray(example_image), axis=2)
    mouth_area = editable_area(tiny_pipeline, example_image, [_only(face, "mouth")])
    assert changed.any() and not changed[~mouth_area].any()
    assert not changed[eyes_only & ~mouth_area].any()


def _only(face, region):
    import dataclasses

    keep = lambda table: {region: table[region]}  # noqa: E731
    return dataclasses.replace(
        face,
        boxes=keep(face.boxes),
        crops=keep(face.crops),
        masks=keep(face.masks),
        crop_matrices=keep(face.crop_matrices),
    )


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler])
def test_scheduler_swap(tiny_pipeline, example_image, scheduler_cls):
    tiny_pipeline.scheduler = scheduler_cls.from_config(tiny_pipeline.scheduler.config)
    result = edit(tiny_pipeline, example_image, strength=0.5, num_inference_steps=8)
    output = np.asarray(result.images[0])
    area = editable_area(tiny_pipeline, example_image, result.faces[0])
    changed = np.any(output != np.asarray(example_image), axis=2)
    assert changed.any() and not changed[~area].any()


def test_callback_and_progress_conventions(tiny_pipeline, example_image):
    seen = []

    def callback(pipe, step, timestep, kwargs):
        seen.append((step, int(timestep), tuple(kwargs["latents"].shape)))
        return kwargs

    edit(tiny_pipeline, example_image, strength=0.5, num_inference_steps=10, callback_on_step_end=callback)
    # The 10-step DDPM schedule is 450, 400, ..., 0: the edit starts at exactly t=250 and runs 250..0.
    assert [s[1] for s in seen] == [250, 200, 150, 100, 50, 0]
    assert [s[0] for s in seen] == list(range(6)) and seen[0][2] == (2, 1, 64, 64)
    images, faces = edit(tiny_pipeline, example_image, return_dict=False)
    assert isinstance(images[0], PIL.Image.Image) and len(faces[0]) == 1


def test_guidance_needs_a_model_trained_with_dropout(example_image):
    with pytest.raises(ValueError, match="label dropout"):
        edit(make_tiny_pipeline(), example_image, guidance_scale=3.0)
    guided = make_tiny_pipeline(conditioning_dropout_prob=0.1)
    a = np.asarray(edit(guided, example_image, guidance_scale=3.0).images[0])
    b = np.asarray(edit(guided, example_image, guidance_scale=1.0).images[0])
    assert not np.array_equal(a, b)


def test_negative_target_is_what_guidance_pushes_away_from(example_image, tmp_path):
    pipe = make_tiny_pipeline(conditioning_dropout_prob=0.1, default_guidance_scale=3.0)
    seen = []
    forward = pipe.unet.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["encoder_hidden_states"][:, 0].clone())
        return forward(*args, **kwargs)

    pipe.unet.forward = spy
    plain = np.asarray(edit(pipe, example_image).images[0])
    assert torch.count_nonzero(seen[0][:2]) == 0  # the null label for both crops
    seen.clear()
    away = np.asarray(edit(pipe, example_image, negative_target="calm").images[0])  # an alias of neutral
    neutral = pipe.embeddings(["neutral"])[0, 0]
    assert all(torch.equal(half, neutral) for half in seen[0][:2])
    assert torch.equal(seen[0][2], pipe.embeddings(["happy"])[0, 0])
    del pipe.unet.forward
    assert not np.array_equal(plain, away)
    assert np.array_equal(plain, np.asarray(edit(pipe, example_image, negative_target="").images[0]))
    # Away from the target itself, guidance has nothing to push: the unguided edit.
    same = np.asarray(edit(pipe, example_image, negative_target="happy").images[0]).astype(int)
    unguided = np.asarray(edit(pipe, example_image, guidance_scale=1.0).images[0]).astype(int)
    assert np.abs(same - unguided).max() <= 1

    pipe.register_to_config(default_negative_target="neutral")
    assert np.array_equal(away, np.asarray(edit(pipe, example_image).images[0]))
    assert np.array_equal(plain, np.asarray(edit(pipe, example_image, negative_target="").images[0]))
    pipe.save_pretrained(tmp_path / "model")
    assert LocalExpressionPipeline.from_pretrained(tmp_path / "model").config.default_negative_target == "neutral"
    assert make_tiny_pipeline().config.default_negative_target is None  # older models: plain guidance

    with pytest.raises(ValueError, match="Unknown expression 'bored'. Known expressions: angry"):
        edit(pipe, example_image, negative_target="bored")
    with pytest.raises(ValueError, match="one for all images or one per image"):
        edit(pipe, example_image, negative_target=["neutral", "sad"])


def test_region_conditioned_unet_is_told_each_crops_region(example_image, tmp_path):
    pipe = make_tiny_pipeline(num_class_embeds=2, conditioning_dropout_prob=0.1)
    seen = []
    forward = pipe.unet.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["class_labels"].tolist())
        return forward(*args, **kwargs)

    pipe.unet.forward = spy
    edit(pipe, example_image)
    assert seen and all(labels == [0, 1] for labels in seen)  # the face's eyes, then its mouth
    seen.clear()
    edit(pipe, example_image, regions=("mouth",), guidance_scale=2.0)
    assert seen and all(labels == [1, 1] for labels in seen)  # unconditional and conditional halves
    del pipe.unet.forward

    # The label reaches the UNet: the same crop and noise, told it is eyes or mouth, comes out differently.
    crop = torch.zeros(1, 1, 64, 64)
    as_eyes, as_mouth = (
        pipe.denoise_crops(crop, ["happy"], 250, 10, torch.Generator().manual_seed(0), crop_regions=[r])
        for r in ("eyes", "mouth")
    )
    assert not torch.allclose(as_eyes, as_mouth)
    with pytest.raises(ValueError, match="crop_regions"):
        pipe.denoise_crops(crop, ["happy"], 250, 10)
    with pytest.raises(ValueError, match=r"Unknown regions \['nose'\]"):
        pipe.denoise_crops(crop, ["happy"], 250, 10, crop_regions=["nose"])

    pipe.save_pretrained(tmp_path / "model")
    loaded = LocalExpressionPipeline.from_pretrained(tmp_path / "model")
    assert loaded.unet.config.num_class_embeds == 2
    assert np.array_equal(
        np.asarray(edit(loaded, example_image).images[0]), np.asarray(edit(pipe, example_image).images[0])
    )


def test_model_config_sets_default_strength_and_guidance(example_image, tmp_path):
    pipe = make_tiny_pipeline(conditioning_dropout_prob=0.1, default_strength=0.3, default_guidance_scale=2.0)
    implicit = np.asarray(edit(pipe, example_image).images[0])
    explicit = np.asarray(edit(pipe, example_image, strength=0.3, guidance_scale=2.0).images[0])
    assert np.array_equal(implicit, explicit)
    assert not np.array_equal(
        implicit, np.asarray(edit(pipe, example_image, strength=0.3, guidance_scale=1.0).images[0])
    )
    pipe.save_pretrained(tmp_path / "model")
    loaded = LocalExpressionPipeline.from_pretrained(tmp_path / "model")
    assert (loaded.config.default_strength, loaded.config.default_guidance_scale) == (0.3, 2.0)
    # Without them, the paper: t_250 (strength 0.5), no guidance.
    assert make_tiny_pipeline().config.default_strength == 0.5


def test_model_config_sets_a_default_strength_per_target(example_image, tmp_path):
    pipe = make_tiny_pipeline(default_strength=0.6, target_strengths={"joy": 0.3})
    assert pipe.config.target_strengths == {"happy": 0.3}  # aliases are stored as the label
    single = {}
    for target, strength in (("happy", 0.3), ("angry", 0.6)):
        implicit = np.asarray(pipe(example_image, target=target, generator=torch.Generator().manual_seed(0)).images[0])
        explicit = pipe(example_image, target=target, strength=strength, generator=torch.Generator().manual_seed(0))
        assert np.array_equal(implicit, np.asarray(explicit.images[0])), target
        single[target] = implicit
    assert not np.array_equal(single["happy"], np.asarray(edit(pipe, example_image, strength=0.6).images[0]))
    # One call with both targets: each image at its target's strength, as if edited alone (one generator each).
    both = pipe(
        [example_image] * 2, target=["happy", "angry"], generator=[torch.Generator().manual_seed(0) for _ in range(2)]
    )
    assert all(np.array_equal(np.asarray(image), single[t]) for image, t in zip(both.images, ("happy", "angry")))
    # An explicit strength is for every target.
    forced = pipe([example_image] * 2, target=["happy", "angry"], strength=0.0).images
    assert all(np.array_equal(np.asarray(image), np.asarray(example_image)) for image in forced)
    pipe.save_pretrained(tmp_path / "model")
    assert LocalExpressionPipeline.from_pretrained(tmp_path / "model").config.target_strengths == {"happy": 0.3}
    with pytest.raises(ValueError, match=r"`target_strengths` must be in \(0, 1\]"):
        make_tiny_pipeline(target_strengths={"happy": 1.5})


def test_crop_geometry_comes_from_the_model_config(example_image, tmp_path):
    margins = {"eyes": [40.0, 45.0], "mouth": [30.0, 44.0]}
    pipe = make_tiny_pipeline(region_anchor="template", region_margins=margins)
    pipe.save_pretrained(tmp_path / "model")
    loaded = LocalExpressionPipeline.from_pretrained(tmp_path / "model")
    assert loaded.region_processor.geometry == {"region_anchor": "template", "region_margins": margins}
    paper = make_tiny_pipeline()
    assert paper.region_processor.geometry["region_anchor"] == "landmarks"
    # Different boxes: the edits differ even with the same weights and seed.
    assert not np.array_equal(
        np.asarray(edit(loaded, example_image).images[0]), np.asarray(edit(paper, example_image).images[0])
    )


def test_crops_are_edited_at_the_training_exposure_and_given_back_their_own(tmp_path):
    statistics = {"eyes": [0.3, 0.5], "mouth": [0.2, 0.4]}
    pipe = make_tiny_pipeline(crop_statistics=statistics)
    seen = []
    forward = pipe.unet.forward

    def spy(sample, *args, **kwargs):
        seen.append(sample.clone())
        return forward(sample, *args, **kwargs)

    pipe.unet.forward = spy
    # One textured crop twice, the second darker and flatter (a dim photo): the model sees the same crop.
    bright = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8
    dim = 0.6 * bright - 0.4
    crops = torch.cat([bright, dim])

    def run(pipe, crops):  # the same noise for each crop (t=1)
        generators = [torch.Generator().manual_seed(0) for _ in crops]
        return pipe.denoise_crops(
            crops, ["happy"] * len(crops), 1, 10, generators, [1] * len(crops), crop_regions=["eyes"] * len(crops)
        )

    edited = run(pipe, crops)
    first_input = seen[0]
    assert torch.allclose(first_input[0], first_input[1], atol=1e-5)
    # ... at the training statistics of its region (up to the noise of the first step, t=1) ...
    assert abs(first_input[0].mean() - 0.3) < 0.02 and abs(first_input[0].std() - 0.5) < 0.02
    # ... and each result comes back at its own photo's exposure: the dim one is the bright one, dimmed.
    assert torch.allclose(edited[1], 0.6 * edited[0] - 0.4, atol=1e-4)
    assert (edited - crops).abs().mean() < 0.05  # t=1 barely changes a crop: it came back where it was
    del pipe.unet.forward

    # Without statistics (older models, the paper) the crops go in as they are, and the two edits differ.
    plain = run(make_tiny_pipeline(), crops)
    assert not torch.allclose(plain[1], 0.6 * plain[0] - 0.4, atol=1e-3)
    # A nearly flat crop is not amplified beyond the gain limit.
    flat = torch.full((1, 1, 64, 64), 0.1) + 1e-3 * torch.randn(1, 1, 64, 64)
    assert pipe.crop_exposure(flat, ["mouth"]).scale.item() == pytest.approx(CropExposure.MAX_GAIN)
    with pytest.raises(ValueError, match=r"crop_regions"):
        pipe.denoise_crops(crops, ["happy"] * 2, 100, 10)
    with pytest.raises(ValueError, match=r"Unknown regions \['nose'\] for this model; it knows \['eyes', 'mouth'\]"):
        pipe.crop_exposure(crops, ["nose", "eyes"])

    pipe.save_pretrained(tmp_path / "model")
    assert LocalExpressionPipeline.from_pretrained(tmp_path / "model").config.crop_statistics == statistics
    assert make_tiny_pipeline().config.crop_statistics is None


def test_crop_statistics_are_per_region_level_and_contrast():
    crops = torch.stack(
        [torch.full((1, 4, 4), 0.2), torch.tensor([[-1.0, 1.0] * 8]).view(1, 4, 4), torch.zeros(1, 4, 4)]
    )
    statistics = crop_statistics(crops, ["mouth", "eyes", "mouth"])
    assert list(statistics) == ["eyes", "mouth"]
    assert statistics["eyes"] == [pytest.approx(0.0), pytest.approx(float(torch.tensor([-1.0, 1.0] * 8).std()))]
    assert statistics["mouth"] == [pytest.approx(0.1), pytest.approx(0.0)]


def test_input_errors(tiny_pipeline, example_image):
    with pytest.raises(ValueError, match=r"strength.*\[0, 1\]"):
        edit(tiny_pipeline, example_image, strength=1.5)
    with pytest.raises(ValueError, match="Unknown expression 'smug'.*angry"):
        tiny_pipeline(example_image, target="smug")
    with pytest.raises(ValueError, match="3 targets for 2 images"):
        tiny_pipeline([example_image, example_image], target=["happy", "sad", "angry"])
    with pytest.raises(UntrainedExpressionError, match="not trained on 'contemptuous'"):
        tiny_pipeline(example_image, target="contempt")
    with pytest.raises(ValueError, match="regions"):
        edit(tiny_pipeline, example_image, regions=("cheeks",))
    with pytest.raises(ValueError, match="NaN"):
        edit(tiny_pipeline, np.full((64, 64, 3), np.nan, dtype=np.float32))


def test_no_face_raises_or_passes_through(tiny_pipeline):
    blank = PIL.Image.new("RGB", (200, 160), (120, 130, 140))
    with pytest.raises(NoFaceDetectedError, match="No face detected in image 0"):
        edit(tiny_pipeline, blank)
    with pytest.warns(UserWarning, match="No face detected"):
        result = edit(tiny_pipeline, blank, on_no_face="skip")
    assert result.faces == [[]]
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(blank))


def test_save_load_round_trip_is_identical(tiny_pipeline, example_image, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "LocalExpressionPipeline"
    assert index["embeddings"] == ["diffusers_led.expressions", "ExpressionEmbeddings"]
    assert index["face_detector"] == "mesh"  # the default detector
    for component in ("unet", "embeddings"):
        assert (tmp_path / component / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "scheduler" / "scheduler_config.json").is_file()
    assert not list(tmp_path.rglob("*.bin")), "only safetensors are written"

    loaded = LocalExpressionPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.embeddings.trained_labels == tiny_pipeline.embeddings.trained_labels
    a = np.asarray(edit(tiny_pipeline, example_image).images[0])
    b = np.asarray(edit(loaded, example_image).images[0])
    assert np.array_equal(a, b)


def test_non_ema_variant_loads(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path)
    raw = make_tiny_pipeline(seed=1).unet
    raw.save_pretrained(tmp_path / "unet", variant="non_ema")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.non_ema.safetensors").is_file()
    main = LocalExpressionPipeline.from_pretrained(tmp_path)
    variant = LocalExpressionPipeline.from_pretrained(tmp_path, variant="non_ema")
    for name, tensor in variant.unet.state_dict().items():
        assert torch.equal(tensor, raw.state_dict()[name])
    assert not all(torch.equal(t, variant.unet.state_dict()[n]) for n, t in main.unet.state_dict().items())


def test_pickled_weights_are_refused_by_default(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path, safe_serialization=False)
    with pytest.raises(Exception, match="safetensors"):
        LocalExpressionPipeline.from_pretrained(tmp_path)


def test_loads_offline_from_a_populated_hub_cache(tiny_pipeline, tmp_path):
    cache = tmp_path / "hub"
    snapshot = cache / "models--some-org--led-tiny" / "snapshots" / ("0" * 40)
    tiny_pipeline.save_pretrained(snapshot)
    (cache / "models--some-org--led-tiny" / "refs").mkdir()
    (cache / "models--some-org--led-tiny" / "refs" / "main").write_text("0" * 40)
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    code = (
        "from diffusers_led import LocalExpressionPipeline;"
        "pipe = LocalExpressionPipeline.from_pretrained('some-org/led-tiny');"
        "print(type(pipe.unet).__name__, pipe.embeddings.config.embedding_dim)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["UNet2DConditionModel", "32"]
