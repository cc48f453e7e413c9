"""Edit every photo in a folder, several photos per pipeline call.

    python examples/batch_folder.py photos/ edited/ --target sad
    python examples/batch_folder.py photos/ edited/ --target happy --strength 0.4 --batch-size 4 --model path/or/hub-id

Writes ``edited/<name>_<target>.png`` for every photo with a face. Photos without a face and files that are not
readable images are reported and skipped; the exit code is 1 if any were. Each photo gets its own generator seeded
with ``--seed``, so its result does not depend on which other photos share its batch. (``led-edit photos/ --target sad
-o edited/`` does the same from the command line.)
"""

import sys
from pathlib import Path

import torch

from diffusers_led import ImageLoadError, LocalExpressionPipeline
from diffusers_led.commands import ArgumentParser
from diffusers_led.image_processor import load_image
from diffusers_led.pretrained import resolve_model
from diffusers_led.utils import IMAGE_EXTENSIONS


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input_dir", help="Folder of photos (not recursive).")
    parser.add_argument("output_dir", help="Where the edited photos go (created).")
    parser.add_argument("--target", default="happy", help="Target expression for every photo.")
    parser.add_argument("--strength", type=float, default=0.5, help="0..1 (0.5 = the paper's t_250).")
    parser.add_argument("--steps", type=int, default=None, help="Steps of the full schedule (default: the model's).")
    parser.add_argument("--batch-size", type=int, default=8, help="Photos per pipeline call.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every photo's generator.")
    parser.add_argument("--model", default=resolve_model(use_env=True), help="Model folder or Hub id.")
    args = parser.parse_args(argv)

    files = sorted(p for p in Path(args.input_dir).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        sys.exit(f"No photos ({', '.join(IMAGE_EXTENSIONS)}) in {args.input_dir}.")
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    pipe = LocalExpressionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    try:
        target = pipe.embeddings.resolve(args.target)[0]  # "joy" -> "happy"; fails early on an unknown label
    except ValueError as error:
        sys.exit(f"--target: {error}")
    problems = []
    for start in range(0, len(files), args.batch_size):
        batch = []
        for path in files[start : start + args.batch_size]:
            try:
                batch.append((path, load_image(path)))
            except ImageLoadError as error:
                problems.append(f"{path.name}: {error}")
        if not batch:
            continue
        result = pipe(
            [image for _, image in batch],
            target=target,
            strength=args.strength,
            num_inference_steps=args.steps,
            generator=[torch.Generator().manual_seed(args.seed) for _ in batch],
            on_no_face="skip",  # photos without a face come back unchanged, with a warning; we skip them
        )
        for (path, _), edited, faces in zip(batch, result.images, result.faces):
            if not faces:
                problems.append(f"{path.name}: no face found")
                continue
            destination = out_dir / f"{path.stem}_{target}.png"
            edited.save(destination)
            print(f"{path.name} -> {destination} ({len(faces)} face(s))")
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"{len(files) - len(problems)} of {len(files)} photos edited toward {target!r} in {out_dir}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
