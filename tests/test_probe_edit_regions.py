"""scripts/probe_edit_regions.py: the probe refuses the final split, the held-out CK+ people and a target the judge
has no class for before any model loads, and a region is swapped into a judge input exactly where its mask is."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import probe_edit_regions as probe  # noqa: E402


def run(data: Path, *extra: str) -> None:
    probe.main(["--target", "fearful", "--compare", "surprised", "--data", str(data), *extra])


def test_the_final_split_held_out_people_and_unjudged_targets_are_refused(tmp_path, capsys):
    final = tmp_path / "test"
    final.mkdir()
    with pytest.raises(SystemExit):
        run(final)
    assert "final test split" in capsys.readouterr().err
    tune = tmp_path / "tune"
    tune.mkdir()
    with pytest.raises(SystemExit):
        run(tune, "--ckplus", str(tmp_path), "--ckplus-people", "S055,S124")
    assert "calibration people" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        probe.main(["--target", "contempt", "--compare", "happy", "--data", str(tune)])
    assert "no class 'contemptuous'" in capsys.readouterr().err


def test_a_region_replaces_the_input_where_its_mask_is_and_nowhere_else():
    rng = np.random.default_rng(0)
    edited, unedited = rng.random((2, 48, 48)), rng.random((2, 48, 48))
    mask = np.zeros((2, 48, 48))
    mask[:, 30:40, 10:38] = 1.0
    mask[:, 29, 10:38] = 0.5  # the soft edge blends the two
    out = probe.with_region(edited, unedited, mask)
    inside, outside = mask == 1.0, mask == 0.0
    assert np.array_equal(out[inside], unedited[inside])
    assert np.array_equal(out[outside], edited[outside])
    assert np.allclose(out[:, 29, 10:38], 0.5 * (edited[:, 29, 10:38] + unedited[:, 29, 10:38]))


def test_the_per_face_table_has_a_line_per_face_with_its_own_values():
    lines = probe.face_table(
        ["t1.jpg#3", "biden.jpg#0"],
        np.array([0.21, 0.15]),
        {"brows": np.array([0.14, 0.02]), "mouth": np.array([0.01, 0.5])},
    )
    assert len(lines) == 3 and "brows" in lines[0] and "mouth" in lines[0]
    assert lines[1].split() == ["t1.jpg#3", "0.210", "0.140", "0.010"]
    assert lines[2].split() == ["biden.jpg#0", "0.150", "0.020", "0.500"]
