"""scripts/search_prototypes.py: a prototype is searched on the tune split only, with the calibration CK+ people
only, and an earlier search's results are not overwritten by accident. Each refusal comes before a model loads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import search_prototypes  # noqa: E402

from diffusers_led.geometry.action_units import EXPRESSION_PROTOTYPES, RELAXATION, expression_action_units  # noqa: E402


@pytest.fixture
def candidates(tmp_path: Path) -> Path:
    path = tmp_path / "candidates.json"
    path.write_text(json.dumps({"wider": {"AU1": 1.3, "AU5": 1.5}}))
    return path


def run(candidates: Path, data: Path, out: Path, *extra: str) -> None:
    search_prototypes.main(
        ["--target", "fear", "--candidates", str(candidates), "--data", str(data), "--out", str(out), *extra]
    )


def test_the_final_split_and_held_out_people_are_refused(tmp_path, candidates, capsys):
    final = tmp_path / "test"
    final.mkdir()
    with pytest.raises(SystemExit):
        run(candidates, final, tmp_path / "out.csv")
    assert "final test split" in capsys.readouterr().err
    tune = tmp_path / "tune"
    tune.mkdir()
    with pytest.raises(SystemExit):
        run(candidates, tune, tmp_path / "out.csv", "--ckplus-people", "S052,S106")
    assert "only the calibration people" in capsys.readouterr().err
    (tmp_path / "out.csv").write_text("earlier results\n")
    with pytest.raises(SystemExit):
        run(candidates, tune, tmp_path / "out.csv")
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "out.csv").read_text() == "earlier results\n"


def test_a_bad_candidate_is_refused_by_name(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"typo": {"AU55": 1.0}}))
    with pytest.raises(SystemExit):
        run(bad, tmp_path, tmp_path / "out.csv")
    assert "candidate 'typo': unknown action unit 'AU55'" in capsys.readouterr().err


def test_a_candidate_stands_in_for_the_prototype_only_inside_the_block():
    shipped = dict(EXPRESSION_PROTOTYPES["fearful"])
    with search_prototypes.prototype("fearful", {"AU5": 1.0}):
        assert EXPRESSION_PROTOTYPES["fearful"] == {"AU5": 1.0}
    assert EXPRESSION_PROTOTYPES["fearful"] == shipped
    with pytest.raises(RuntimeError), search_prototypes.prototype("fearful", {"AU5": 1.0}):
        raise RuntimeError("a failed edit")
    assert EXPRESSION_PROTOTYPES["fearful"] == shipped and "fearful" not in RELAXATION
    # Negative units are how far the target relaxes an expressive face past its rest (neutral's RELAXATION).
    relaxed = dict(RELAXATION["neutral"])
    with search_prototypes.prototype("neutral", {"AU4": -0.3, "AU7": -0.2}):
        assert EXPRESSION_PROTOTYPES["neutral"] == {} and RELAXATION["neutral"] == {"AU4": 0.3, "AU7": 0.2}
        assert expression_action_units("neutral", 1.0, {"AU12": 1.0}) == {
            "AU12": -1.0,
            "AU4": pytest.approx(-0.3),
            "AU7": pytest.approx(-0.2),
        }
    assert RELAXATION["neutral"] == relaxed
