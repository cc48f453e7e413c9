"""Shared fixtures: a real example face and tiny random-weight pipelines (fast on a CPU)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from PIL import Image

from diffusers_led import EXPRESSIONS, ExpressionEmbeddings, LocalExpressionPipeline
from diffusers_led.faces.detection import DetectedFace
from diffusers_led.faces.regions import FaceRegions
from diffusers_led.unet_presets import build_unet

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_IMAGE = REPO / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Two OpenMP threads on a 2-core machine that is busy with other work run the tiny UNet 10-30 times slower
    than one (spinning threads): the modules that use this test behaviour, not speed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tiny_pipeline(
    in_channels: int = 1,
    embedding_dim: int = 32,
    conditioning_dropout_prob: float = 0.0,
    seed: int = 0,
    num_class_embeds=None,
    **config,
) -> LocalExpressionPipeline:
    """A random-weight pipeline with the `tiny` preset's UNet (about 90k parameters; `num_class_embeds`: region
    classes)."""
    torch.manual_seed(seed)
    unet = build_unet("tiny", in_channels, embedding_dim, num_class_embeds=num_class_embeds)
    embeddings = ExpressionEmbeddings(
        labels=EXPRESSIONS,
        embedding_dim=embedding_dim,
        trained_labels=[label for label in EXPRESSIONS if label != "contemptuous"],
        conditioning_dropout_prob=conditioning_dropout_prob,
    )
    embeddings.embeddings.data.normal_()
    scheduler = DDPMScheduler(num_train_timesteps=500)
    pipe = LocalExpressionPipeline(unet=unet, scheduler=scheduler, embeddings=embeddings, **config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def example_image() -> Image.Image:
    return Image.open(EXAMPLE_IMAGE).convert("RGB")


@pytest.fixture
def tiny_pipeline() -> LocalExpressionPipeline:
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def two_face_image(example_image) -> Image.Image:
    """Two copies of the example portrait side by side (a group photo with two faces)."""
    array = np.asarray(example_image)
    return Image.fromarray(np.concatenate([array, array[:, ::-1]], axis=1))


class StubProcessor:
    """A face region processor without a detector: one fixed 'face' whose crops are the photo resized to 16x16
    (led-prepare-data tests that are about files, not faces)."""

    def extract(self, image, regions=None):
        face = DetectedFace(box=(0.0, 0.0, 8.0, 8.0), landmarks=np.zeros((5, 2), np.float32), score=1.0)
        crops = {r: cv2.resize(np.ascontiguousarray(image), (16, 16)) for r in regions}
        boxes = {r: (0, 0, 1, 1) for r in regions}
        return [FaceRegions(face=face, matrix=np.eye(2, 3), boxes=boxes, crops=crops, masks={})]


#: train_led.py options that make its validation cheapest and log nowhere.
QUICK_VALIDATION = [
    "--num_validation_samples",
    "1",
    "--validation_strengths",
    "0.5",
    "--validation_inference_steps",
    "2",
    "--report_to",
    "none",
]


def edit_example_args(out: Path, model: str | Path, *options: str) -> list[str]:
    """``led-edit`` arguments that edit the bundled example toward happy into ``out`` with ``model`` on one thread,
    then ``options``."""
    return [str(EXAMPLE_IMAGE), "--target", "happy", "-o", str(out), "--model", str(model), "--threads", "1", *options]


def distinct_copy(destination: Path, gray: bool = False) -> Path:
    """The example portrait saved as another photo (grayscale if asked): the same pixels in a file of its own (its name
    in a PNG text chunk), so that led-prepare-data does not take the copies for one photo listed twice."""
    from PIL import PngImagePlugin

    destination.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(EXAMPLE_IMAGE)
    info = PngImagePlugin.PngInfo()
    info.add_text("copy", repr(destination.name))
    (image.convert("L") if gray else image).save(destination, format="PNG", pnginfo=info)
    return destination
