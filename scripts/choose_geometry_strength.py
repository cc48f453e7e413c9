"""Choose a model's geometry strength (the strength of `pipe(image, target)` in the geometry modes) from a led-evaluate
report on the TUNING split of the real-photo set, and store it in the model.

    python scripts/fetch_real_photos.py --output_dir data/real_photos
    led-evaluate --data data/real_photos/tune --modes geometry --targets all --strengths 0.6,0.8,1.0 \
        --time-budget 0 --out runs/geometry-tune
    python scripts/choose_geometry_strength.py --report runs/geometry-tune/report.json \
        --model src/diffusers_led/pretrained/led-default --write

Rule: among the measured strengths whose edits keep the person (dlib distance < 0.6) in at least `--min-identity` of
the edits of EVERY target, and whose mean colour change in every region stays at or under `--max-colour` (|Δa*b*| in
CIELAB; a warp moves the face's own colours, so a large mean change means a blotch, not an expression), take the one
with the largest mean relative expression gain over the targets the judge knows; gains within `--tolerance` of it
count as equal and the gentlest (lowest strength) of those wins.

The report of a `test` split is refused: the final test split is only for reporting a model already chosen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from diffusers_led.commands import ArgumentParser
from diffusers_led.evaluation.real_photos import FINAL_SPLIT, final_split_photos
from diffusers_led.serialization import write_text_atomically


def passes(row: dict[str, Any], min_identity: float, max_colour: float) -> bool:
    """Whether a report row keeps identity for every target and stays within the colour limit in every region."""
    for values in row["expression"]["per_target"].values():
        if values["same_identity_rate"] < min_identity:
            return False
        if any(region["dab"] > max_colour for region in values["colour"].values()):
            return False
    return True


def mean_gain(row: dict[str, Any]) -> float:
    gains = [v["relative_gain"] for v in row["expression"]["per_target"].values() if v["relative_gain"] is not None]
    return sum(gains) / max(len(gains), 1)


def choose(rows: list[dict[str, Any]], min_identity: float, max_colour: float, tolerance: float) -> dict | None:
    """The chosen report row (see the module's rule), or ``None`` when no strength passes."""
    allowed = [row for row in rows if passes(row, min_identity, max_colour)]
    if not allowed:
        return None
    best = max(mean_gain(row) for row in allowed)
    return min((row for row in allowed if mean_gain(row) >= best - tolerance), key=lambda row: row["strength"])


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--report", required=True, help="report.json of led-evaluate --modes geometry on the tune split"
    )
    parser.add_argument("--model", default=None, help="The model folder to --write the choice into.")
    parser.add_argument("--mode", default="geometry", help="The report's mode whose rows are compared.")
    parser.add_argument("--min-identity", type=float, default=0.95, help="Same-identity rate every target needs.")
    parser.add_argument("--max-colour", type=float, default=8.0, help="Largest mean |Δa*b*| of a region.")
    parser.add_argument("--tolerance", type=float, default=0.02, help="Gains this close to the best count as equal.")
    parser.add_argument("--write", action="store_true", help="Store the choice as the model's geometry_strength.")
    args = parser.parse_args(argv)

    report = json.loads(Path(args.report).read_text())
    data = str(report.get("data", {}).get("path", report.get("data", "")))
    if Path(data.rstrip("/")).name == FINAL_SPLIT or final_split_photos(data):
        parser.error(f"{args.report} measured the final test split ({data}); choose on the tune split only.")
    rows = [row for row in report["results"] if row["mode"] == args.mode]
    if not rows:
        parser.error(f"{args.report} has no rows of mode {args.mode!r}.")
    for row in sorted(rows, key=lambda r: r["strength"]):
        verdict = "ok" if passes(row, args.min_identity, args.max_colour) else "refused"
        print(f"strength {row['strength']:.2f}: mean relative gain {mean_gain(row):+.3f} ({verdict})")
    chosen = choose(rows, args.min_identity, args.max_colour, args.tolerance)
    if chosen is None:
        print("no strength keeps identity and colour: nothing chosen")
        return 1
    print(f"chosen geometry_strength {chosen['strength']:.2f}")
    if args.write:
        if not args.model:
            parser.error("--write needs --model.")
        index = Path(args.model) / "model_index.json"
        config = json.loads(index.read_text())
        config["geometry_strength"] = float(chosen["strength"])
        write_text_atomically(index, json.dumps(config, indent=2) + "\n")
        print(f"wrote {index}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
