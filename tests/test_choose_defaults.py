"""scripts/choose_defaults.py: the rule that picks a model's default strength / guidance / negative target, and how
it is stored."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import choose_defaults  # noqa: E402

from diffusers_led import LocalExpressionPipeline  # noqa: E402


def row(guidance, strength, rise, identity, negative=""):
    return {
        "negative_target": negative,
        "guidance_scale": guidance,
        "strength": strength,
        "rise": rise,
        "identity": identity,
        "happy_hit": None,
    }


def test_the_gentlest_setting_near_the_best_rise_that_keeps_identity_wins():
    rows = [
        row(1, 0.5, 0.01, 0.98),
        row(3, 0.6, 0.10, 0.97),
        row(3, 0.7, 0.11, 0.97),  # best allowed rise; 0.6 is within the tolerance and gentler
        row(4, 0.7, 0.30, 0.90),  # the largest rise, but identity is lost too often
    ]
    assert choose_defaults.choose(rows, min_identity=0.95, tolerance=0.02) == rows[1]
    assert choose_defaults.choose(rows, min_identity=0.95, tolerance=0.0) == rows[2]
    assert choose_defaults.choose(rows, min_identity=0.85, tolerance=0.02) == rows[3]
    # Within the tolerance, keeping identity better beats a lower strength pushed by a higher guidance.
    dominated = row(4, 0.5, 0.105, 0.96)
    assert choose_defaults.choose([dominated, *rows], min_identity=0.95, tolerance=0.02) == rows[1]
    # A negative target is chosen when it does better, and plain guidance wins a tie.
    away_from_neutral = row(3, 0.6, 0.20, 0.97, negative="neutral")
    assert choose_defaults.choose([*rows, away_from_neutral], min_identity=0.95, tolerance=0.02) == away_from_neutral
    tied = row(3, 0.6, 0.10, 0.97, negative="neutral")
    assert choose_defaults.choose([tied, *rows], min_identity=0.95, tolerance=0.02) == rows[1]
    with pytest.raises(SystemExit, match="keeps identity"):
        choose_defaults.choose(rows, min_identity=0.99, tolerance=0.02)


def test_written_defaults_are_what_the_loaded_pipeline_uses(tmp_path):
    pipe = make_tiny_pipeline(conditioning_dropout_prob=0.1)
    pipe.save_pretrained(tmp_path)
    choose_defaults.write_defaults(
        str(tmp_path), {"strength": 0.6, "guidance_scale": 2.0, "negative_target": "neutral"}
    )
    assert [p.name for p in tmp_path.glob("*.tmp")] == []  # the temporary file was renamed away
    loaded = LocalExpressionPipeline.from_pretrained(tmp_path)
    config = loaded.config
    assert (config.default_strength, config.default_guidance_scale, config.default_negative_target) == (
        0.6,
        2.0,
        "neutral",
    )
    choose_defaults.write_defaults(str(tmp_path), {"strength": 0.6, "guidance_scale": 2.0, "negative_target": ""})
    assert LocalExpressionPipeline.from_pretrained(tmp_path).config.default_negative_target is None
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == "LocalExpressionPipeline"


def subject_row(subject, photos, guidance, strength, happy_rise, identity, negative=""):
    return choose_defaults.summarize(
        {
            "negative_target": negative,
            "guidance_scale": guidance,
            "strength": strength,
            "subjects": subject,
            "photos": photos,
            "rises": {"angry": 0.1, "happy": happy_rise},
            "hits": {"angry": 0.0, "happy": 1.0 if happy_rise > 0.3 else 0.0},
            "identity": identity,
        }
    )


def test_pooling_weights_subjects_by_their_photos():
    pooled = choose_defaults.pool([subject_row("A", 6, 3, 0.7, 0.5, 1.0), subject_row("B", 14, 3, 0.7, 0.0, 0.9)])
    assert pooled["photos"] == 20 and pooled["subjects"] == "A,B"
    assert pooled["rises"]["happy"] == pytest.approx(0.5 * 6 / 20)
    assert pooled["hits"]["happy"] == pytest.approx(6 / 20)
    assert pooled["identity"] == pytest.approx((6 * 1.0 + 14 * 0.9) / 20)
    assert pooled["rise"] == pytest.approx((0.1 + 0.15) / 2) and pooled["happy_hit"] == pooled["hits"]["happy"]


def test_cross_fit_measures_each_subject_at_the_setting_chosen_on_the_others():
    rows = [
        # A and B alone favour guidance 3 (guidance 4 loses identity on them); C loves guidance 4.
        subject_row("A", 10, 3, 0.7, 0.4, 1.0),
        subject_row("A", 10, 4, 0.7, 0.6, 0.8),
        subject_row("B", 10, 3, 0.7, 0.4, 1.0),
        subject_row("B", 10, 4, 0.7, 0.6, 0.8),
        subject_row("C", 10, 3, 0.7, 0.0, 1.0),
        subject_row("C", 10, 4, 0.7, 0.9, 1.0),
    ]
    held_out = choose_defaults.cross_fit(rows, min_identity=0.95, tolerance=0.0)
    assert [(r["subjects"], r["guidance_scale"]) for r in held_out] == [("A", 3), ("B", 3), ("C", 3)]
    assert held_out[2]["rises"]["happy"] == 0.0  # C is measured where the others chose, not where C does best
    # The negative target is part of the setting: C is measured at the others' choice of it too.
    rows += [
        subject_row(s, 10, 3, 0.7, rise, 1.0, negative="neutral") for s, rise in (("A", 0.5), ("B", 0.5), ("C", 0.1))
    ]
    held_out = choose_defaults.cross_fit(rows, min_identity=0.95, tolerance=0.0)
    assert [r["negative_target"] for r in held_out] == ["neutral"] * 3
    assert held_out[2]["rises"]["happy"] == 0.1
    with pytest.raises(SystemExit, match="at least two subjects"):
        choose_defaults.cross_fit(rows[:2], min_identity=0.95, tolerance=0.0)


def target_row(subject, strength, angry, happy, negative="neutral"):
    """Rises per target; `angry` and `happy` are (rise, same-identity rate) of their edits at this strength."""
    return choose_defaults.summarize(
        {
            "negative_target": negative,
            "guidance_scale": 4,
            "strength": strength,
            "subjects": subject,
            "photos": 10,
            "rises": {"angry": angry[0], "happy": happy[0]},
            "hits": {"angry": 1.0, "happy": float(happy[0] > 0.5)},
            "identities": {"angry": angry[1], "happy": happy[1]},
            "identity": (angry[1] + happy[1]) / 2,
        }
    )


def test_a_strength_per_target_when_one_target_costs_identity_sooner(tmp_path):
    # Angry brows lose identity from 0.6, a smile needs 0.7: no single strength keeps 95% with both edits done.
    grid = {0.5: ((0.40, 1.0), (0.20, 1.0)), 0.6: ((0.45, 0.8), (0.50, 1.0)), 0.7: ((0.50, 0.7), (0.90, 0.96))}
    rows = [target_row(s, strength, *values) for s in ("A", "B") for strength, values in grid.items()]
    single = choose_defaults.choose(choose_defaults.candidates(rows, per_target=False), 0.95, 0.0)
    assert single["strength"] == 0.5 and single["hits"]["happy"] == 0.0
    chosen = choose_defaults.choose(choose_defaults.candidates(rows, per_target=True), 0.95, 0.0)
    assert chosen["strengths"] == {"angry": 0.5, "happy": 0.7}
    assert chosen["rises"] == {"angry": 0.40, "happy": 0.90} and chosen["identity"] == pytest.approx(0.98)
    assert choose_defaults.describe(chosen) == "4 / 0.5, happy 0.7 / neutral"
    # Left out in turn, each subject is measured at the strengths chosen on the other, target by target.
    held_out = choose_defaults.cross_fit(rows, 0.95, 0.0, per_target=True)
    assert [r["strengths"] for r in held_out] == [{"angry": 0.5, "happy": 0.7}] * 2
    assert choose_defaults.pool(held_out)["identities"] == {"angry": 1.0, "happy": 0.96}
    # Written: the most common strength as the default, the others per target; the pipeline uses them.
    make_tiny_pipeline(conditioning_dropout_prob=0.1).save_pretrained(tmp_path)
    choose_defaults.write_defaults(str(tmp_path), chosen)
    config = LocalExpressionPipeline.from_pretrained(tmp_path).config
    assert (config.default_strength, config.target_strengths) == (0.5, {"happy": 0.7})
    choose_defaults.write_defaults(str(tmp_path), single)  # a single strength clears them
    assert LocalExpressionPipeline.from_pretrained(tmp_path).config.target_strengths is None


def test_saved_rows_are_reused_only_for_the_same_weights_and_grid(tmp_path):
    pipe = make_tiny_pipeline()
    pipe.save_pretrained(tmp_path)
    args = argparse.Namespace(
        model=str(tmp_path),
        data="crops",
        subjects="A,B",
        targets="all",
        strengths="0.5",
        guidance_scales="2",
        negative_targets="null",
        seed=0,
        cross_fit=True,
        real_photos=None,
    )
    key = choose_defaults.measurement_key(args)
    assert choose_defaults.measurement_key(argparse.Namespace(**{**vars(args), "strengths": "0.6"})) != key
    assert choose_defaults.measurement_key(argparse.Namespace(**{**vars(args), "negative_targets": "neutral"})) != key
    assert choose_defaults.measurement_key(argparse.Namespace(**{**vars(args), "real_photos": "tune"})) != key
    with torch.no_grad():
        next(pipe.unet.parameters()).add_(1.0)
    pipe.save_pretrained(tmp_path)  # retrained: the same folder, other weights
    assert choose_defaults.measurement_key(args) != key
    # The same weights editing another way (exposure matching, crop geometry) are measured again; writing the
    # chosen defaults does not change what was measured.
    key = choose_defaults.measurement_key(args)
    choose_defaults.write_defaults(str(tmp_path), {"strength": 0.7, "guidance_scale": 3.0, "negative_target": ""})
    assert choose_defaults.measurement_key(args) == key
    assert LocalExpressionPipeline.from_pretrained(tmp_path).config.default_strength == 0.7
    pipe.register_to_config(crop_statistics={"eyes": [0.3, 0.5], "mouth": [0.2, 0.4]})
    pipe.save_pretrained(tmp_path)
    assert choose_defaults.measurement_key(args) != key


def geometry_row(strength, gain, identity=1.0, dab=2.0):
    target = {
        "relative_gain": gain,
        "same_identity_rate": identity,
        "colour": {"eyes": {"dab": dab}, "mouth": {"dab": 1}},
    }
    contempt = dict(target, relative_gain=None)  # the judge has no contempt class
    return {
        "mode": "geometry",
        "strength": strength,
        "expression": {"per_target": {"happy": target, "contemptuous": contempt}},
    }


def test_geometry_strength_rule_refuses_lost_identity_colour_blotches_and_the_test_split(tmp_path, capsys):
    import choose_geometry_strength as rule

    rows = [geometry_row(0.6, 0.10), geometry_row(0.8, 0.15), geometry_row(0.9, 0.16), geometry_row(1.0, 0.30, 0.9)]
    assert rule.choose(rows, 0.95, 8.0, 0.02)["strength"] == 0.8  # 1.0 loses identity; 0.9 is within tolerance
    assert rule.choose([geometry_row(0.6, 0.1, dab=12.0)], 0.95, 8.0, 0.02) is None  # a colour blotch
    model = tmp_path / "model"
    make_tiny_pipeline().save_pretrained(model)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"data": {"path": str(tmp_path / "real" / "tune")}, "results": rows}))
    assert rule.main(["--report", str(report), "--model", str(model), "--write"]) == 0
    assert json.loads((model / "model_index.json").read_text())["geometry_strength"] == 0.8
    assert LocalExpressionPipeline.from_pretrained(model).config.geometry_strength == 0.8
    report.write_text(json.dumps({"data": {"path": str(tmp_path / "real" / "test")}, "results": rows}))
    with pytest.raises(SystemExit):
        rule.main(["--report", str(report)])
    assert "final test split" in capsys.readouterr().err


def real_row(guidance, strength, happy_rise, identity, colour=2.0, angry_identity=None):
    return {
        "negative_target": "",
        "guidance_scale": guidance,
        "strength": strength,
        "photos": 5,
        "rises": {"happy": happy_rise, "angry": 0.0},
        "identities": {"happy": identity, "angry": identity if angry_identity is None else angry_identity},
        "colours": {"happy": colour, "angry": 1.0},
    }


def lab_rows(*settings):
    """Lab rows of one subject, (guidance, strength, happy rise, identity) each."""
    identities = {"angry": 1.0, "happy": 1.0}
    return [{**subject_row("S1", 10, *setting), "identities": identities} for setting in settings]


def test_real_photos_refuse_settings_that_lose_the_person_or_blotch_colours_there():
    lab = lab_rows((3, 0.5, 0.10, 1.0), (3, 0.7, 0.30, 1.0))  # on lab frames 0.7 is clearly better
    real = [real_row(3, 0.5, 0.10, 1.0), real_row(3, 0.7, 0.40, 0.8)]  # ... but loses real people
    chosen = choose_defaults.choose(choose_defaults.candidates(lab, False, real), 0.95, 0.02, 8.0)
    assert chosen["strength"] == 0.5
    assert chosen["real"] == {"rise": 0.05, "identity": 1.0, "colour": 2.0}
    assert chosen["lab_rise"] == pytest.approx(0.10) and chosen["rise"] == pytest.approx((0.10 + 0.05) / 2)
    # One target losing the person is enough to refuse (the lowest rate over targets counts, not the mean).
    real[1] = real_row(3, 0.7, 0.40, 1.0, angry_identity=0.9)
    assert choose_defaults.choose(choose_defaults.candidates(lab, False, real), 0.95, 0.02, 8.0)["strength"] == 0.5
    # A colour blotch is refused too; without it the real-photo gain counts half of the ranking.
    real[1] = real_row(3, 0.7, 0.40, 1.0, colour=12.0)
    assert choose_defaults.choose(choose_defaults.candidates(lab, False, real), 0.95, 0.02, 8.0)["strength"] == 0.5
    real[1] = real_row(3, 0.7, 0.40, 1.0)
    chosen = choose_defaults.choose(choose_defaults.candidates(lab, False, real), 0.95, 0.02, 8.0)
    assert chosen["strength"] == 0.7 and chosen["rise"] == pytest.approx((0.20 + 0.20) / 2)
    # Without real photos the lab frames alone decide, as before.
    assert choose_defaults.choose(choose_defaults.candidates(lab, False), 0.95, 0.02)["strength"] == 0.7
    with pytest.raises(SystemExit, match="real-photo"):
        choose_defaults.choose(
            choose_defaults.candidates(lab, False, [real_row(3, s, 0.1, 0.5) for s in (0.5, 0.7)]), 0.95, 0.02, 8.0
        )


def test_real_photos_with_a_strength_per_target_read_each_target_at_its_own_strength():
    lab = lab_rows((3, 0.5, 0.10, 1.0), (3, 0.7, 0.30, 1.0))
    # At 0.7 happy keeps the person but angry does not: happy 0.7 with angry 0.5 is allowed.
    real = [real_row(3, 0.5, 0.10, 1.0), real_row(3, 0.7, 0.40, 1.0, angry_identity=0.5)]
    settings = choose_defaults.candidates(lab, True, real)
    allowed = [s for s in settings if choose_defaults.allowed_on_real_photos(s, 0.95, 8.0)]
    assert sorted((s["strengths"]["happy"], s["strengths"]["angry"]) for s in allowed) == [(0.5, 0.5), (0.7, 0.5)]
    chosen = choose_defaults.choose(settings, 0.95, 0.02, 8.0)
    assert chosen["strengths"] == {"happy": 0.7, "angry": 0.5}
    assert chosen["real"]["rise"] == pytest.approx(0.20)  # happy at 0.7 (0.40), angry at 0.5 (0.0)


def test_the_final_test_split_is_refused_by_name_and_by_content(tmp_path, capsys):
    from diffusers_led.evaluation.real_photos import final_split_photos
    from diffusers_led.utils import file_digest

    tune = tmp_path / "tune"
    tune.mkdir()
    (tune / "a.jpg").write_bytes(b"a tune photo")
    (tune / "renamed.jpg").write_bytes(b"a test photo")
    manifest = {"photos": [{"sha256": file_digest(tune / "renamed.jpg"), "split": "test"}]}
    assert final_split_photos(tune, manifest) == ["renamed.jpg"]
    assert final_split_photos(tune, {"photos": []}) == []
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "b.jpg").write_bytes(b"x")
    assert final_split_photos(tmp_path / "test") == ["b.jpg"]
    with pytest.raises(SystemExit):
        choose_defaults.main(["--model", "m", "--data", "d", "--real-photos", str(tmp_path / "test")])
    assert "final test split" in capsys.readouterr().err
