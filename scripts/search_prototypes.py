#!/usr/bin/env python
"""Score candidate action-unit prototypes for one expression on the TUNING split of the real-photo set (and,
optionally, on neutral CK+ frames of the calibration people), as the geometry mode would edit them.

    python scripts/search_prototypes.py --target fearful --candidates candidates.json \
        --data data/real_photos/tune --ckplus data/ckplus_sample --out runs/fearful.csv

``candidates.json`` maps a name to a prototype, e.g. ``{"today": {"AU1": 1.3, "AU5": 1.5, "AU20": 1.5}}``; negative
intensities are the target's ``RELAXATION`` (``{"relaxed": {"AU4": -0.5, "AU7": -0.5}}`` for neutral). Each
candidate stands in for the target's entry of ``EXPRESSION_PROTOTYPES`` while every face is edited toward the target
at strength 1 (the face's own expression is undone as in the shipped pipeline), and is scored by the three
instruments of ``led-evaluate``: the expression judge (mean p(target), and top-1 on faces it did not already call
that), the identity judge (largest dlib distance; the same person below 0.6) and the blendshape reading (how many
faces' intended blendshapes rose). One row per edit goes to ``--out`` (CSV); a summary line per candidate and set is
printed. Choosing needs the contact sheets too (``--sheets``: before above after, per candidate): a prototype the
judge likes can still be a caricature.

The final test split is refused, and so are the held-out CK+ people: the CK+ frames used are the first neutral frame
of each person in ``--ckplus-people``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusers_led.commands import ArgumentParser
from diffusers_led.data import ckplus_sample_rows
from diffusers_led.evaluation.blendshapes import intended_rise, shared_judge
from diffusers_led.evaluation.judges import EXPRESSION_JUDGE_CLASSES, ExpressionJudge, IdentityJudge
from diffusers_led.evaluation.real_photos import FINAL_SPLIT, final_split_photos
from diffusers_led.faces.regions import FaceRegions
from diffusers_led.geometry.action_units import EXPRESSION_PROTOTYPES, RELAXATION, parse_action_units
from diffusers_led.image_processor import prepare_image
from diffusers_led.labels import canonical_expression
from diffusers_led.serialization import write_text_atomically

#: The CK+ people whose frames calibrated the action units; the held-out ones (S106 S111 S124 S130 S132) never.
CALIBRATION_PEOPLE = ("S052", "S055", "S074", "S113", "S125")
#: Side of one face in the contact sheets (px).
SHEET_FACE = 240


def tune_data_and_people(parser: ArgumentParser, data: str, people: str) -> tuple[Path, set[str]]:
    """``--data`` as a path and ``--ckplus-people`` as a set, after refusing (``parser.error``) the final test split
    and any CK+ person who is not a calibration person."""
    path = Path(data)
    if path.name == FINAL_SPLIT or final_split_photos(path):
        parser.error(f"{path} holds photos of the final test split; use the tune split only.")
    chosen = {p.strip() for p in people.split(",") if p.strip()}
    if chosen - set(CALIBRATION_PEOPLE):
        parser.error(f"only the calibration people may be used: {', '.join(CALIBRATION_PEOPLE)}")
    return path, chosen


@dataclass
class Face:
    """One face to edit: where it comes from, its photo and its detection."""

    name: str
    source: str  # "tune" or "ckplus"
    rgb: np.ndarray
    regions: FaceRegions


@contextlib.contextmanager
def prototype(target: str, units: dict[str, float]) -> Iterator[None]:
    """``units`` as ``target``'s prototype for the duration of the block: the positive ones as its
    ``EXPRESSION_PROTOTYPES`` entry, the negative ones as its ``RELAXATION`` (how far it relaxes an expressive face
    past its own rest; a prototype's own units only add what a face lacks, so a negative one would do nothing)."""
    shipped, relaxed = EXPRESSION_PROTOTYPES[target], RELAXATION.get(target)
    EXPRESSION_PROTOTYPES[target] = {name: value for name, value in units.items() if value > 0}
    RELAXATION[target] = {name: -value for name, value in units.items() if value < 0}
    try:
        yield
    finally:
        EXPRESSION_PROTOTYPES[target] = shipped
        if relaxed is None:
            del RELAXATION[target]
        else:
            RELAXATION[target] = relaxed


def ckplus_neutral_frames(folder: Path, people: set[str]) -> list[Path]:
    """The first neutral frame of each of ``people`` in a CK+ sample's ``labels.csv``."""
    first: dict[str, Path] = {}
    for row in ckplus_sample_rows(folder):
        if row["subject"] in people and row["kind"] == "neutral" and row["subject"] not in first:
            first[row["subject"]] = folder / row["file_name"]
    return list(first.values())


def detect(pipe, paths: list[Path], source: str) -> list[Face]:
    """Every face of every photo, numbered from the left."""
    faces = []
    for path in paths:
        rgb = prepare_image(str(path)).rgb
        found = pipe.region_processor.extract(
            rgb, faces=pipe.region_processor.detect(rgb), regions=tuple(pipe.config.regions)
        )
        for k, regions in enumerate(sorted(found, key=lambda f: f.face.box[0])):
            faces.append(Face(f"{path.name}#{k}", source, rgb, regions))
    return faces


def summary(rows: list[dict], target: str) -> str:
    """Mean p(target), top-1 on faces not already read as the target, largest identity distance, blendshape rises."""
    others = [r for r in rows if r["predicted_before"] != target]
    hits = sum(r["predicted"] == target for r in others)
    rises = [r["blendshape_rise"] for r in rows if r["blendshape_rise"] is not None]
    return (
        f"mean p {np.mean([r['p_target'] for r in rows]):.3f}  top-1 {hits}/{len(others)}  "
        f"largest distance {max(r['id_distance'] for r in rows):.3f}  "
        f"blendshapes rose {sum(x > 0 for x in rises)}/{len(rises)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="The expression whose prototype is searched.")
    parser.add_argument("--candidates", required=True, help="JSON file: {name: {unit: intensity}}.")
    parser.add_argument("--data", required=True, help="The tune split's folder of photos.")
    parser.add_argument("--ckplus", default=None, help="A CK+ sample folder (labels.csv) for the second check.")
    parser.add_argument("--ckplus-people", default=",".join(CALIBRATION_PEOPLE), help="CK+ people to use.")
    parser.add_argument("--model", default=None, help="Model folder or Hub id (default: the bundled model).")
    parser.add_argument("--out", required=True, help="CSV of one row per edit.")
    parser.add_argument("--sheets", default=None, help="Folder for one contact sheet per candidate (PNG).")
    parser.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    args = parser.parse_args(argv)

    target = canonical_expression(args.target)
    candidates = {}
    for name, units in json.loads(Path(args.candidates).read_text()).items():
        try:
            candidates[name] = parse_action_units(units)
        except ValueError as error:
            parser.error(f"{args.candidates}, candidate {name!r}: {error}")
    data, people = tune_data_and_people(parser, args.data, args.ckplus_people)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        parser.error(f"{out} exists; pass --overwrite to replace it.")

    from diffusers_led.devices import load_pipeline_on
    from diffusers_led.pretrained import resolve_model

    pipe = load_pipeline_on(resolve_model(args.model), "cpu", "float32")
    photos = sorted(p for p in data.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    faces = detect(pipe, photos, "tune")
    if args.ckplus:
        faces += detect(pipe, ckplus_neutral_frames(Path(args.ckplus), people), "ckplus")
    judge, identity, blendshapes = ExpressionJudge(), IdentityJudge(), shared_judge()
    k = judge.class_index(target)
    before = judge.predict_inputs([judge.face_input(f.rgb, f.regions.face.landmarks) for f in faces])
    embeddings = identity.embed_chips([identity.chip(f.rgb, f.regions.face.box) for f in faces])
    shapes = [blendshapes.read(f.rgb, f.regions.face.box) for f in faces]

    rows = []
    for name, units in candidates.items():
        with prototype(target, units):
            edited = [
                pipe(f.rgb, target=target, strength=1.0, mode="geometry", output_type="np", faces=[[f.regions]])
                for f in faces
            ]
        outputs = [np.clip(np.rint(e.images[0] * 255), 0, 255).astype(np.uint8) for e in edited]
        after = judge.predict_inputs([judge.face_input(o, f.regions.face.landmarks) for o, f in zip(outputs, faces)])
        moved = identity.embed_chips([identity.chip(o, f.regions.face.box) for o, f in zip(outputs, faces)])
        distances = np.linalg.norm(moved - embeddings, axis=1)
        for i, (face, output) in enumerate(zip(faces, outputs)):
            read = blendshapes.read(output, face.regions.face.box) if shapes[i] else None
            rows.append(
                {
                    "candidate": name,
                    "units": json.dumps(units),
                    "face": face.name,
                    "source": face.source,
                    "p_before": float(before[i, k]),
                    "p_target": float(after[i, k]),
                    "predicted_before": EXPRESSION_JUDGE_CLASSES[int(before[i].argmax())],
                    "predicted": EXPRESSION_JUDGE_CLASSES[int(after[i].argmax())],
                    "id_distance": float(distances[i]),
                    "blendshape_rise": intended_rise(shapes[i], read, target) if read else None,
                }
            )
        for source in ("tune", "ckplus"):
            chosen = [r for r in rows if r["candidate"] == name and r["source"] == source]
            if chosen:
                print(f"{name:24s} {source:6s} {summary(chosen, target)}", flush=True)
        if args.sheets:
            save_sheet(Path(args.sheets) / f"{target}_{name}.png", faces, outputs, pipe, args.overwrite)

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(out, text.getvalue())
    print(f"wrote {out}")
    return 0


def save_sheet(path: Path, faces: list[Face], outputs: list[np.ndarray], pipe, overwrite: bool) -> None:
    """The tune faces before (top row) and after (bottom row), aligned, ``SHEET_FACE`` px each (no CK+ pixels)."""
    from PIL import Image

    from diffusers_led.evaluation.runner import _thumbnail
    from diffusers_led.output_files import atomic_save

    canonical = pipe.region_processor.canonical_size
    tune = [i for i, face in enumerate(faces) if face.source == "tune"]
    pairs = ([faces[i].rgb for i in tune], [outputs[i] for i in tune])
    rows = [
        np.concatenate(
            [_thumbnail(image, faces[i].regions.matrix, canonical, SHEET_FACE) for image, i in zip(images, tune)],
            axis=1,
        )
        for images in pairs
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(Image.fromarray(np.concatenate(rows, axis=0)), path, overwrite)


if __name__ == "__main__":
    raise SystemExit(main())
