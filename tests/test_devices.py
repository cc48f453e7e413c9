"""Devices and precision: `--device` / `--dtype` resolution, a low-precision UNet end to end, tensors made on the
pipeline's device (no hidden CPU tensors), and the model's own regions as the default.

No GPU exists on the machines these tests run on: CUDA and MPS are simulated by patching torch's availability checks,
and "on the pipeline's device" is checked by auditing every tensor the package's own code creates."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXAMPLE_IMAGE, edit_example_args, make_tiny_pipeline
from PIL import Image
from torch.overrides import TorchFunctionMode

import diffusers_led
from diffusers_led import devices
from diffusers_led.batch import edit_files
from diffusers_led.cli import edit_main, evaluate_main
from diffusers_led.devices import DeviceError, resolve_device, resolve_device_and_dtype, resolve_dtype
from diffusers_led.image_processor import crop_statistics, prepare_image

PACKAGE = Path(diffusers_led.__file__).resolve().parent


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_cuda_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


# ---------------------------------------------------------------------------------------------------------------------
# Resolution of --device and --dtype
# ---------------------------------------------------------------------------------------------------------------------


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    assert resolve_device_and_dtype("auto", "auto") == (torch.device("cpu"), torch.float32)
    assert resolve_dtype("bfloat16", torch.device("cpu")) is torch.bfloat16


def test_auto_prefers_cuda_then_mps(two_cuda_gpus, monkeypatch):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device_and_dtype("auto", "auto") == (torch.device("cuda", 0), torch.float16)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "1")  # accelerate launch / torchrun: this process's own GPU
    assert resolve_device("cuda") == resolve_device("auto") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_dtype("auto", torch.device("mps")) is torch.float32


def test_unavailable_or_unknown_devices_are_clear_errors(no_gpu):
    for name, message in [
        ("cuda", "CUDA is not available here"),
        ("cuda:1", "CUDA is not available here"),
        ("mps", "MPS backend is not available"),
        ("gpu", "is not a device"),
        ("meta", "is not supported"),
    ]:
        with pytest.raises(DeviceError, match=message) as caught:
            resolve_device(name)
        assert "\n" not in str(caught.value) and "--device" in str(caught.value)
    with pytest.raises(DeviceError, match="use one of auto, float32, float16, bfloat16"):
        resolve_dtype("float64", torch.device("cpu"))


@pytest.mark.parametrize("main", [edit_main, evaluate_main], ids=["led-edit", "led-evaluate"])
def test_cli_device_cuda_without_cuda_is_a_one_line_error(main, no_gpu, tmp_path, capsys):
    args = {
        edit_main: [str(EXAMPLE_IMAGE), "--target", "happy", "-o", str(tmp_path / "out.png")],
        evaluate_main: ["--data", str(EXAMPLE_IMAGE), "--out", str(tmp_path / "report")],
    }[main]
    assert main([*args, "--device", "cuda"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "CUDA is not available here" in error and "--device cpu" in error
    assert not (tmp_path / "out.png").exists()


def test_demo_device_cuda_without_cuda_is_a_one_line_error(no_gpu, capsys):
    pytest.importorskip("gradio")
    from diffusers_led import demo

    assert demo.main(["--device", "cuda"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "CUDA is not available here" in error


def test_the_three_commands_share_the_options():
    from diffusers_led import cli
    from diffusers_led.demo import app as demo

    for parser in (cli.build_edit_parser(), demo.build_parser()):
        args = parser.parse_args(
            ["--device", "cuda:1", "--dtype", "bfloat16"]
            + (["x", "--target", "happy"] if parser.prog == "led-edit" else [])
        )
        assert (args.device, args.dtype) == ("cuda:1", "bfloat16")
    with pytest.raises(SystemExit):
        cli.build_edit_parser().parse_args(["x", "--target", "happy", "--dtype", "half"])


def test_bf16_autocast_needs_float32_weights(tmp_path, capsys):
    out = tmp_path / "out.png"
    assert edit_main([str(EXAMPLE_IMAGE), "--target", "happy", "-o", str(out), "--bf16", "--dtype", "float16"]) == 1
    assert "these are float16: add --dtype float32 or drop --bf16" in capsys.readouterr().err and not out.exists()


# ---------------------------------------------------------------------------------------------------------------------
# Low precision end to end
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example():
    return Image.open(EXAMPLE_IMAGE).convert("RGB")


@pytest.mark.parametrize("dtype, output_type", [(torch.bfloat16, "pil"), (torch.float16, "pt")])
def test_a_low_precision_unet_edits_end_to_end(dtype, output_type, example, one_torch_thread):
    """CPUs emulate half precision (a UNet call takes several times longer), so the edits here take 2 steps."""
    reference = make_tiny_pipeline()
    faces = reference.detect_faces([prepare_image(example)], ("eyes", "mouth"), "error")
    kwargs = {"strength": 0.3, "num_inference_steps": 4, "faces": faces}  # DDPM from t_125: 2 UNet calls
    full = reference(example, "happy", output_type="np", generator=torch.Generator().manual_seed(0), **kwargs)
    pipe = make_tiny_pipeline()
    pipe.unet.to(dtype)
    pipe.embeddings.to(dtype)
    seen = []
    forward = pipe.unet.forward

    def spy(sample, timestep, encoder_hidden_states, **kwargs):
        seen.append((sample.dtype, sample.device, encoder_hidden_states.dtype, encoder_hidden_states.device))
        return forward(sample, timestep, encoder_hidden_states, **kwargs)

    pipe.unet.forward = spy
    outputs = {
        kind: pipe(example, "happy", output_type=kind, generator=torch.Generator().manual_seed(0), **kwargs)
        for kind in ("np", output_type)
    }
    assert len(seen) == 4 and set(seen) == {(dtype, pipe.device, dtype, pipe.device)}

    array = outputs["np"].images[0]
    assert (
        array.dtype == np.float32 and array.shape == (*example.size[::-1], 3) and 0 <= array.min() <= array.max() <= 1
    )
    other = outputs[output_type].images[0]
    if output_type == "pil":
        assert other.mode == "RGB" and other.size == example.size
        assert np.array_equal(np.asarray(other), np.rint(array * 255).astype(np.uint8))
    else:
        assert other.dtype == torch.float32 and tuple(other.shape) == (3, *example.size[::-1])
        assert torch.equal(other, torch.from_numpy(array).permute(2, 0, 1))

    difference = np.abs(full.images[0] - array) * 255
    changed = np.abs(full.images[0] - np.asarray(example, dtype=np.float32) / 255) * 255
    # The same edit within low-precision rounding: far smaller than the edit itself.
    assert changed.mean() > 0.05 and difference.mean() < 0.2 * changed.mean()


def test_led_edit_dtype_option_casts_the_model(tmp_path, one_torch_thread):
    model = tmp_path / "model"
    make_tiny_pipeline().save_pretrained(model)
    loaded = {}
    original = devices.load_pipeline_on

    def spy(*args, **kwargs):
        loaded["pipe"] = original(*args, **kwargs)
        return loaded["pipe"]

    out = tmp_path / "bf16.png"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(devices, "load_pipeline_on", spy)
        code = edit_main(edit_example_args(out, model, "--steps", "4", "--device", "cpu", "--dtype", "bfloat16"))
    assert code == 0
    assert loaded["pipe"].unet.dtype is torch.bfloat16 and loaded["pipe"].device == torch.device("cpu")
    assert Image.open(out).size == Image.open(EXAMPLE_IMAGE).size and Image.open(out).mode == "RGB"


# ---------------------------------------------------------------------------------------------------------------------
# Every tensor on the pipeline's device
# ---------------------------------------------------------------------------------------------------------------------

_FACTORIES = {
    torch.tensor,
    torch.as_tensor,
    torch.zeros,
    torch.ones,
    torch.full,
    torch.empty,
    torch.arange,
    torch.linspace,
    torch.eye,
    torch.rand,
    torch.randn,
    torch.randint,
}


class DeviceAudit(TorchFunctionMode):
    """Records the tensors that the package's own code creates or moves without saying where: factories without a
    `device`, and moves to a device given as a string literal such as "cpu" (a tensor derived from another one or
    moved to the pipeline's device is fine). On a GPU each of these would be a CPU tensor meeting a GPU one."""

    def __init__(self, host_side=()):
        super().__init__()
        self.host_side = set(host_side)  # functions that must work in host memory (OpenCV, numpy outputs)
        self.violations = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        frame = sys._getframe(1)
        while frame is not None and "/torch/" in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(PACKAGE):
            where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} ({frame.f_code.co_name})"
            name = getattr(func, "__name__", str(func))
            if func in _FACTORIES and kwargs.get("device") is None:
                self.violations.append(f"{where}: torch.{name} without a device")
            moved_to = kwargs.get("device", args[1] if name == "to" and len(args) > 1 else None)
            if isinstance(moved_to, str) or (name == "cpu" and frame.f_code.co_name not in self.host_side):
                self.violations.append(f"{where}: {name} to {moved_to or 'cpu'}")
        return func(*args, **kwargs)


def test_the_audit_catches_a_tensor_made_without_a_device():
    with DeviceAudit() as audit:
        crop_statistics(torch.zeros(2, 1, 4, 4), ["eyes", "mouth"])  # creates its index on the crops' device
    assert audit.violations == []
    source = "import torch\ndef made():\n    return torch.tensor([1.0]).to('cpu')\n"
    namespace = {}
    # Compiled as if it were a file of the package (nothing is written there), so the audit watches it.
    exec(compile(source, str(PACKAGE / "_audit_probe.py"), "exec"), namespace)  # noqa: S102
    with DeviceAudit() as audit:
        namespace["made"]()
    assert len(audit.violations) == 2 and "without a device" in audit.violations[0] and "to cpu" in audit.violations[1]


def test_the_pipeline_makes_every_tensor_on_its_device(example, one_torch_thread):
    """All branches that create tensors: guidance with a named negative, region classes, exposure matching."""
    statistics = {"eyes": [0.1, 0.3], "mouth": [-0.1, 0.25]}
    pipe = make_tiny_pipeline(
        conditioning_dropout_prob=0.1,
        num_class_embeds=2,
        crop_statistics=statistics,
        default_guidance_scale=2.0,
        default_negative_target="neutral",
    )
    with DeviceAudit(host_side={"tensor_to_crops", "prepare_image"}) as audit:
        output = pipe(
            example,
            "happy",
            strength=0.4,
            num_inference_steps=10,
            output_type="pt",
            generator=[torch.Generator().manual_seed(0)],
        )
    assert output.images[0].shape[0] == 3
    assert audit.violations == []


def test_the_pipeline_asks_for_its_tensors_on_its_execution_device(example, monkeypatch, one_torch_thread):
    """A device that compares unequal to "cpu" but runs on it: every device the pipeline passes on must be it."""
    from diffusers_led import LocalExpressionPipeline

    sentinel = torch.device("cpu", 0)
    assert sentinel != torch.device("cpu")
    monkeypatch.setattr(LocalExpressionPipeline, "_execution_device", property(lambda self: sentinel))
    monkeypatch.setattr(LocalExpressionPipeline, "device", property(lambda self: sentinel))
    pipe = make_tiny_pipeline(conditioning_dropout_prob=0.1, num_class_embeds=2, default_guidance_scale=2.0)
    asked = []
    for name in ("get_timesteps", "prepare_noise", "region_class_labels"):
        method = getattr(pipe, name)
        monkeypatch.setattr(pipe, name, lambda *a, _m=method, _n=name, **k: asked.append((_n, a, k)) or _m(*a, **k))
    moves = []
    to = torch.Tensor.to

    def record_to(self, *args, **kwargs):
        moves.append(kwargs.get("device", args[0] if args else None))
        return to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", record_to)
    pipe(example, "happy", strength=0.4, num_inference_steps=10, generator=torch.Generator().manual_seed(0))
    monkeypatch.undo()
    assert sentinel in moves  # the crops and masks go to the execution device
    assert not [m for m in moves if isinstance(m, str)]
    assert {name for name, _, _ in asked} == {"get_timesteps", "prepare_noise", "region_class_labels"}

    from diffusers_led.evaluation.runner import _num_steps

    pipe = make_tiny_pipeline()
    devices_asked = []
    get_timesteps = pipe.get_timesteps
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LocalExpressionPipeline, "device", property(lambda self: sentinel))
        patch.setattr(
            pipe, "get_timesteps", lambda s, n, d, **k: devices_asked.append(d) or get_timesteps(s, n, d, **k)
        )
        assert _num_steps(pipe, 250, 10) == 6  # DDPM's 10 steps: 250, 200, ..., 0
    assert devices_asked == [sentinel]


def test_the_evaluation_timing_runs_on_the_unet_device(one_torch_thread):
    from diffusers_led.evaluation.planning import _plan

    pipe = make_tiny_pipeline(num_class_embeds=2)
    pipe.unet.to(torch.bfloat16)
    with DeviceAudit() as audit:
        plan = _plan(
            pipe,
            [],
            ["happy"],
            ("eyes", "mouth"),
            ["diffusion"],
            {"diffusion": [0.5]},
            {("diffusion", 0.5): 5},
            3,
            1,
            False,
            0,
            2,
            time_budget=10.0,
        )
    assert plan["unet_s_per_crop_step"] > 0 and audit.violations == []


def test_no_string_cpu_device_in_the_inference_code():
    """A backstop for code paths the tests above do not run: the inference modules never name the CPU."""
    files = [
        PACKAGE / name
        for name in (
            "pipeline_led.py",
            "sdedit.py",
            "settings.py",
            "image_processor.py",
            "batch.py",
            "cpu.py",
            "cli.py",
        )
    ]
    files += [
        *sorted((PACKAGE / "demo").glob("*.py")),
        *sorted((PACKAGE / "geometry").glob("*.py")),
        *sorted((PACKAGE / "faces").glob("*.py")),
    ]
    # The judges (measuring instruments, not inference) default to the CPU; the evaluation passes them its device.
    files += sorted(path for path in (PACKAGE / "evaluation").rglob("*.py") if path.name != "judges.py")
    # The string constants of the code (an alias or a constant spelled elsewhere cannot hide one; docs may say "cpu").
    found = [
        f"{path.name}:{node.lineno}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip().lower() == "cpu"
    ]
    assert found == []


# ---------------------------------------------------------------------------------------------------------------------
# The model's regions are the default
# ---------------------------------------------------------------------------------------------------------------------


def test_a_mouth_only_model_edits_with_a_plain_call(example, one_torch_thread):
    """(test_train.py trains one with `--regions mouth` and runs led-edit on it.)"""
    pipe = make_tiny_pipeline(regions=["mouth"])
    output = pipe(example, "happy", strength=0.3, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    (face,) = output.faces[0]
    assert list(face.crops) == ["mouth"]
    assert not np.array_equal(np.asarray(output.images[0]), np.asarray(example))
    with pytest.raises(ValueError, match=r"subset of this model's regions \('mouth',\)"):
        pipe(example, "happy", regions=("eyes", "mouth"))
    (result,) = edit_files(pipe, [EXAMPLE_IMAGE], "happy", num_inference_steps=4)
    assert result.error is None and list(result.faces[0].crops) == ["mouth"]
