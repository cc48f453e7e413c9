"""The bundled model (src/diffusers_led/pretrained/led-default) end to end, as a new user runs it: every target on the
example photo at the default settings keeps the person (dlib's face descriptor) and visibly moves the face, and
nothing outside the edited area changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusers_led import EXPRESSIONS, LocalExpressionPipeline
from diffusers_led.evaluation.judges import IdentityJudge
from diffusers_led.pretrained import default_model_path


@pytest.fixture(scope="module")
def shipped(one_torch_thread) -> LocalExpressionPipeline:
    pipe = LocalExpressionPipeline.from_pretrained(default_model_path())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_every_target_keeps_the_person_and_moves_the_face(shipped, example_image):
    judge = IdentityJudge()
    before = np.asarray(example_image)
    for target in EXPRESSIONS:
        output = shipped(example_image, target=target, generator=torch.Generator().manual_seed(0))
        after, faces = np.asarray(output.images[0]), output.faces[0]
        assert len(faces) == 1 and after.shape == before.shape, target
        box = faces[0].face.box
        distance = float(np.linalg.norm(judge.embed(before, box) - judge.embed(after, box)))
        assert distance < judge.threshold, (target, distance)  # the same person (dlib's threshold, 0.6)
        changed = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2) > 8
        # The face moved: a warp was made and at least ~1% of the face box changed visibly...
        assert faces[0].warp is not None and changed.sum() > 0.01 * box[2] * box[3], (target, int(changed.sum()))
        # ...and only inside the edited area.
        edited = shipped.region_processor.composite_mask(before.shape, faces) > 0
        assert not (changed & ~edited).any(), target


def test_the_example_smile_read_by_its_blendshapes_is_undone_toward_neutral(shipped, example_image):
    from diffusers_led.evaluation.blendshapes import shared_judge

    judge = shared_judge()
    before = np.asarray(example_image)
    output = shipped(example_image, target="neutral", generator=torch.Generator().manual_seed(0))
    box = output.faces[0][0].face.box
    smile = [
        (shapes["mouthSmileLeft"] + shapes["mouthSmileRight"]) / 2
        for shapes in (judge.read(before, box), judge.read(np.asarray(output.images[0]), box))
    ]
    assert output.faces[0][0].blendshapes is not None  # the default detector reads the face's own expression
    assert smile[0] > 0.8 and smile[1] < 0.3, smile  # a broad smile in, no smile out (MediaPipe's own reading)


def test_the_example_toward_contempt_reads_one_sided_by_its_blendshapes(shipped, example_image):
    from diffusers_led.evaluation.blendshapes import intended_rise, shared_judge

    judge = shared_judge()
    output = shipped(example_image, target="contempt", generator=torch.Generator().manual_seed(0))
    box = output.faces[0][0].face.box
    before, after = judge.read(np.asarray(example_image), box), judge.read(np.asarray(output.images[0]), box)
    # The difference between the two sides' smile and dimple (MediaPipe's reading of the output) grows: a smirk on
    # one side, not a smile taken away on both (+0.17 with the half smile the prototype had before; +0.33 now).
    assert intended_rise(before, after, "contempt") > 0.25


def test_the_example_laugh_closes_toward_neutral_with_no_dark_gaps_at_its_corners(shipped, example_image):
    import cv2

    output = shipped(example_image, target="neutral", generator=torch.Generator().manual_seed(0))
    after, warp = np.asarray(output.images[0]).astype(int), output.faces[0][0].warp
    lips = np.zeros(after.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(warp.shape[48:60]).astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((5, 5), np.uint8)) > 0  # the mouth corners included
    # The dark of the inside of the mouth (and the teeth's gaps at the corners) is gone: nothing within the closed
    # lips is darker than half their median; the line where they meet is a little darker, not a slit.
    dark = (after.sum(2) < 0.5 * np.median(after[lips].sum(1))) & lips
    assert dark.sum() == 0, int(dark.sum())
