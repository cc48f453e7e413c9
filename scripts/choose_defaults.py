"""Choose a trained model's default strength and guidance scale on validation photos, and store them in the model.

The defaults are what `pipe(image, target)`, `led-edit` and the demo use. They are picked by measurement on photos
that are neither trained on nor used for the reported evaluation (for led-default: held-out subject S111; the
model card's numbers are on S130 and S132), with the same independent judges as `led-evaluate`:

    python scripts/choose_defaults.py --model RUN/model --data RUN/crops --subjects S111 \
        --strengths 0.4,0.5,0.6,0.7 --guidance-scales 1,2,3 --write

Rule: among the settings that keep the identity of at least `--min-identity` of the edits (dlib distance < 0.6),
take the largest mean rise of p(target) over the unedited photos; settings within `--tolerance` of it count as
equal, and of those the gentlest (lowest strength, then lowest guidance) wins.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List


def measure(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """One row per (guidance, strength): mean p(target) rise, happy hit rate, identity rate."""
    from diffusers_led import LocalExpressionPipeline
    from diffusers_led.evaluation import evaluate

    pipe = LocalExpressionPipeline.from_pretrained(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for guidance in [float(g) for g in args.guidance_scales.split(",")]:
            report = evaluate(
                model=pipe, data=args.data, out_dir=Path(scratch) / f"g{guidance:g}", targets=args.targets,
                strengths=[float(s) for s in args.strengths.split(",")], modes=["blend"], seed=args.seed,
                subjects=args.subjects.split(",") if args.subjects else None, guidance_scale=guidance,
                realism=False, time_budget=0, progress=not args.quiet, num_threads=args.threads,
            ).report  # fmt: skip
            baseline = report["baseline"]["expression"]["per_target"]
            for entry in report["results"]:
                per_target = entry["expression"]["per_target"]
                rises = [per_target[t]["p_target"] - baseline[t]["p_target"] for t in baseline]
                rows.append(
                    {
                        "guidance_scale": guidance,
                        "strength": entry["strength"],
                        "rise": sum(rises) / len(rises),
                        "happy_hit": per_target.get("happy", {}).get("hit_rate"),
                        "identity": entry["identity"]["same_identity_rate"],
                        "photos": entry["n_photos"],
                    }
                )
    return rows


def choose(rows: List[Dict[str, Any]], min_identity: float, tolerance: float) -> Dict[str, Any]:
    """The gentlest setting whose rise is within ``tolerance`` of the best among those keeping identity."""
    allowed = [r for r in rows if r["identity"] >= min_identity]
    if not allowed:
        raise SystemExit(f"No setting keeps identity for {min_identity:.0%} of the edits; lower the strengths.")
    best = max(r["rise"] for r in allowed)
    return min((r for r in allowed if r["rise"] >= best - tolerance), key=lambda r: (r["strength"], r["guidance_scale"]))


def write_defaults(model: str, chosen: Dict[str, Any]) -> None:
    """Set default_strength / default_guidance_scale in the model's model_index.json (atomic replace)."""
    index = Path(model) / "model_index.json"
    config = json.loads(index.read_text(encoding="utf-8"))
    config.update(default_strength=chosen["strength"], default_guidance_scale=chosen["guidance_scale"])
    with tempfile.NamedTemporaryFile("w", dir=index.parent, prefix=".model_index.", delete=False) as handle:
        json.dump(config, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(handle.name, index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A saved LocalExpressionPipeline folder.")
    parser.add_argument("--data", required=True, help="Validation photos: a crop dataset (with --subjects) or a folder.")
    parser.add_argument("--subjects", default=None, help="Comma-separated validation subjects of a crop dataset.")
    parser.add_argument("--targets", default="all")
    parser.add_argument("--strengths", default="0.4,0.5,0.6,0.7")
    parser.add_argument("--guidance-scales", default="1,2,3")
    parser.add_argument("--min-identity", type=float, default=0.95, help="Required same-identity rate.")
    parser.add_argument("--tolerance", type=float, default=0.02, help="Rises this close to the best count as equal.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--write", action="store_true", help="Store the choice in the model's model_index.json.")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    rows = measure(args)
    print("| guidance | strength | mean p(target) rise | happy top-1 | same identity | photos |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["guidance_scale"], r["strength"])):
        happy = "n/a" if r["happy_hit"] is None else f"{r['happy_hit']:.0%}"
        print(f"| {r['guidance_scale']:g} | {r['strength']:g} | {r['rise']:+.3f} | {happy} | {r['identity']:.0%} | "
              f"{r['photos']} |")  # fmt: skip
    chosen = choose(rows, args.min_identity, args.tolerance)
    print(f"Chosen: strength {chosen['strength']:g}, guidance scale {chosen['guidance_scale']:g}")
    if args.write:
        write_defaults(args.model, chosen)
        print(f"Written to {Path(args.model) / 'model_index.json'}")


if __name__ == "__main__":
    main()
