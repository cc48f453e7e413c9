"""scripts/probe_expression_judge.py: the probe refuses the final split and the held-out CK+ people before any model
loads, and its pieces (moving a judge input onto other landmarks, matching gray levels, reading a peak's movement
apart from the head's pose) do what the probe's table says they do."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import probe_expression_judge as probe  # noqa: E402

from diffusers_led.geometry.action_units import inter_ocular, neutral_shape  # noqa: E402


def test_the_final_split_and_held_out_people_are_refused(tmp_path, capsys):
    final = tmp_path / "test"
    final.mkdir()
    with pytest.raises(SystemExit):
        probe.main(["--data", str(final), "--ckplus", str(tmp_path)])
    assert "final test split" in capsys.readouterr().err
    tune = tmp_path / "tune"
    tune.mkdir()
    with pytest.raises(SystemExit):
        probe.main(["--data", str(tune), "--ckplus", str(tmp_path), "--ckplus-people", "S052,S130"])
    assert "calibration people" in capsys.readouterr().err


def _face_points(size: int = 192) -> np.ndarray:
    shape = neutral_shape()
    return (shape - shape.mean(0)) / inter_ocular(shape) * size * 0.35 + size / 2


def test_a_warp_onto_the_same_points_keeps_the_input_and_moved_points_carry_their_pixels():
    rng = np.random.default_rng(0)
    image = rng.random((192, 192)).astype(np.float32)
    points = _face_points()
    assert np.abs(probe.warp_shape(image, points, points) - image).max() < 1e-3
    # A bright dot at the nose tip follows the nose moved 6 px down.
    dot = np.zeros((192, 192), np.float32)
    x, y = np.round(points[30]).astype(int)
    dot[y - 1 : y + 2, x - 1 : x + 2] = 1.0
    moved = points.copy()
    moved[27:36, 1] += 6
    out = probe.warp_shape(dot, points, moved)
    rows, cols = np.mgrid[:192, :192]
    assert (rows * out).sum() / out.sum() == pytest.approx(y + 6, abs=1.0)
    assert (cols * out).sum() / out.sum() == pytest.approx(x, abs=1.0)


def test_gray_matching_and_a_peaks_movement_apart_from_pose():
    rng = np.random.default_rng(1)
    image, reference = rng.random((48, 48)) * 0.3, 0.5 + 0.2 * rng.random((48, 48))
    matched = probe.matched_gray(image, reference)
    assert matched.mean() == pytest.approx(reference.mean(), abs=1e-3)
    assert matched.std() == pytest.approx(reference.std(), abs=1e-3)
    neutral = _face_points()
    # The same face turned, scaled and shifted, with the upper lip raised 4 px: only the lip's movement is read.
    peak = neutral.copy()
    peak[51, 1] -= 4
    angle = np.deg2rad(10)
    turn = 1.2 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    movement = probe.peak_movement(peak @ turn.T + (7, -3), neutral)
    assert movement[51, 1] == pytest.approx(-4 / inter_ocular(neutral), abs=0.01)
    assert np.abs(np.delete(movement, 51, axis=0)).max() < 0.01


def test_region_masks_cover_their_landmarks_and_nothing_far_away():
    points = _face_points()
    for name, (indices, _) in probe.REGIONS.items():
        mask = probe.region_mask(points, name, 192)
        inside = np.round(points[indices].mean(0)).astype(int)
        assert mask[inside[1], inside[0]] > 0.9, name
        assert mask[:5].max() == 0.0 and mask[:, :5].max() == 0.0, name  # the image's edge is far from every region
    eyes, mouth = probe.region_mask(points, "eyes", 192), probe.region_mask(points, "mouth", 192)
    assert (eyes * mouth).max() < 0.01  # the eyes and the mouth do not overlap
