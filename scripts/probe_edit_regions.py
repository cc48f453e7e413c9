#!/usr/bin/env python
"""Which region of an edit carries its expression for the judge? Each region of the geometry mode's edit toward a
target, undone or taken from an edit toward another target, inside the judge's own 48 x 48 input.

    python scripts/probe_edit_regions.py --target fearful --compare surprised --data data/real_photos/tune \
        --ckplus data/ckplus_sample

For the faces of the tune photos and the first neutral frame of each CK+ calibration person, every face is edited
toward ``--target`` and toward ``--compare`` (strength 1, the shipped pipeline). Per region of
``probe_expression_judge.REGIONS`` (brows, glabella, eyes, nose bridge, nose wings and folds, upper lip, mouth), the
edit's judge input gets that region from the unedited face (``undone``: does the region carry the expression?) and
from the compare edit (``from <compare>``: would that edit's region serve the target better?). Printed per set of
faces: mean p(target) of each input, and on how many faces it is above / below the edit's by more than 0.005.
With ``--per-face``, each face's p(target) too (which region a missed face lacks).

The final test split and the held-out CK+ people are refused. Nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from probe_expression_judge import REGIONS, judge_frame, region_mask  # the sibling scripts: the same refusals
from search_prototypes import CALIBRATION_PEOPLE, ckplus_neutral_frames, detect, tune_data_and_people

from diffusers_led.commands import ArgumentParser
from diffusers_led.evaluation.judges import EXPRESSION_JUDGE_CLASSES, FER_INPUT_SIZE, ExpressionJudge
from diffusers_led.labels import canonical_expression

#: A region's p(target) counts as above or below the edit's beyond this difference.
MOVED = 0.005


def with_region(inputs: np.ndarray, region: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``inputs`` (judge inputs) with ``region``'s pixels where the soft ``mask`` is 1, blended where it is between."""
    return inputs * (1.0 - mask) + region * mask


def summary(p_edit: np.ndarray, p_probe: np.ndarray) -> str:
    """Mean p of the probe inputs and how many are above / below the edit's."""
    up, down = int((p_probe > p_edit + MOVED).sum()), int((p_probe < p_edit - MOVED).sum())
    return f"{p_probe.mean():.3f} (up {up:2d}, down {down:2d})"


def face_table(names: list[str], p_edit: np.ndarray, columns: dict[str, np.ndarray]) -> list[str]:
    """One line per face (``--per-face``): its name, the edit's p(target), then each column's p for that face."""
    header = f"    {'face':22s} {'edit':>6s} " + " ".join(f"{name[:12]:>12s}" for name in columns)
    rows = [
        f"    {name[:22]:22s} {p_edit[i]:6.3f} " + " ".join(f"{values[i]:12.3f}" for values in columns.values())
        for i, name in enumerate(names)
    ]
    return [header, *rows]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="The edit's expression (a class of the judge).")
    parser.add_argument("--compare", required=True, help="The expression of the edit whose regions are swapped in.")
    parser.add_argument("--data", required=True, help="A folder of photos of the TUNE split.")
    parser.add_argument("--ckplus", default=None, help="The CK+ sample folder (labels.csv), for its neutral frames.")
    parser.add_argument("--ckplus-people", default=",".join(CALIBRATION_PEOPLE), help="Calibration people to use.")
    parser.add_argument("--model", default=None, help="Model folder or Hub id (default: the bundled model).")
    parser.add_argument("--per-face", action="store_true", help="Also print each face's p per region and swap.")
    args = parser.parse_args(argv)

    target, compare = canonical_expression(args.target), canonical_expression(args.compare)
    data, people = tune_data_and_people(parser, args.data, args.ckplus_people)
    if target not in EXPRESSION_JUDGE_CLASSES:
        parser.error(f"the judge has no class {target!r}; it has {', '.join(EXPRESSION_JUDGE_CLASSES)}")
    judge = ExpressionJudge()
    label = judge.class_index(target)

    from diffusers_led.devices import load_pipeline_on
    from diffusers_led.pretrained import resolve_model

    pipe = load_pipeline_on(resolve_model(args.model), "cpu", "float32")
    photos = sorted(p for p in data.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    sets = {"tune": detect(pipe, photos, "tune")}
    if args.ckplus:
        sets["CK+ neutral"] = detect(pipe, ckplus_neutral_frames(Path(args.ckplus), people), "ckplus")

    def judge_input(face, expression: str | None) -> np.ndarray:
        rgb = face.rgb
        if expression is not None:
            regions = [[face.regions]]
            edit = pipe(rgb, target=expression, strength=1.0, mode="geometry", output_type="np", faces=regions)
            rgb = np.clip(np.rint(edit.images[0] * 255), 0, 255).astype(np.uint8)
        return judge.face_input(rgb, face.regions.face.landmarks)

    for name, faces in sets.items():
        if not faces:
            continue
        unedited = np.stack([judge_input(f, None) for f in faces])
        edited = np.stack([judge_input(f, target) for f in faces])
        compared = np.stack([judge_input(f, compare) for f in faces])
        shapes = [judge_frame(f.regions.face.landmarks, f.regions.face.shape, FER_INPUT_SIZE) for f in faces]
        p_edit = judge.predict_inputs(edited)[:, label]
        p_unedited = judge.predict_inputs(unedited)[:, label]
        p_compare = judge.predict_inputs(compared)[:, label]
        print(
            f"{name} ({len(faces)} faces): mean p({target}) unedited {p_unedited.mean():.3f}, edit toward {target} "
            f"{p_edit.mean():.3f}, toward {compare} {p_compare.mean():.3f}",
            flush=True,
        )
        print(f"  {'region':22s} {'undone':24s} from {compare}")
        undone, swapped = {}, {}
        for region in REGIONS:
            masks = np.stack([region_mask(shape, region, FER_INPUT_SIZE) for shape in shapes])
            undone[region] = judge.predict_inputs(with_region(edited, unedited, masks))[:, label]
            swapped[region] = judge.predict_inputs(with_region(edited, compared, masks))[:, label]
            moved = f"{summary(p_edit, undone[region]):24s} {summary(p_edit, swapped[region])}"
            print(f"  {region:22s} {moved}", flush=True)
        if args.per_face:
            names = [face.name for face in faces]
            for kind, columns in (("undone", undone), (f"from {compare}", swapped)):
                print(f"  each face, region {kind}:")
                print("\n".join(face_table(names, p_edit, columns)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
