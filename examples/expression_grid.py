"""The paper's figure: one face edited toward every expression (rows) at increasing noise levels t_i (columns), in the
diffusion mode (the paper's method; `examples/expression_sheet.py` shows the default geometry mode).

    python examples/expression_grid.py                                # the bundled photo -> expression_grid.png
    python examples/expression_grid.py me.jpg -o grid.png             # the bundled photo and yours, one block each
    python examples/expression_grid.py --timesteps 50,150,250,350 --targets happy,sad,surprised
    python examples/expression_grid.py --paper                        # DDPM with every step from t_i (slow)

Each cell is the face region of the edited photo (the first face found), enlarged; the first column is the input.
All cells of one photo share one seed, so they differ only by target and t_i. By default the targets are the ones the
model was trained on (``--targets all`` adds the others, which the model never learnt).
"""

import os
import warnings
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from diffusers_led import LocalExpressionPipeline
from diffusers_led.commands import ArgumentParser
from diffusers_led.output_files import atomic_save
from diffusers_led.pretrained import resolve_model

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="Extra photos (the bundled example is always the first block).")
    parser.add_argument("--model", default=resolve_model(use_env=True), help="Model folder or Hub id.")
    parser.add_argument(
        "--targets", default=None, help="Comma-separated targets, or 'all' (default: the trained ones)."
    )
    parser.add_argument("--timesteps", default="100,200,300,400", help="Comma-separated t_i (the paper: 100..400).")
    parser.add_argument("--steps", type=int, default=None, help="Steps of the full schedule (default: the model's).")
    parser.add_argument("--paper", action="store_true", help="The paper's sampler: DDPM over every step below t_i.")
    parser.add_argument("--seed", type=int, default=0, help="One seed for every cell.")
    parser.add_argument(
        "--guidance-scale", type=float, default=None, help="Classifier-free guidance (default: the model's)."
    )
    parser.add_argument("--cell", type=int, default=160, help="Cell size in pixels.")
    parser.add_argument("--no-example", action="store_true", help="Leave out the bundled photo.")
    return parse_with_output(parser, argv, default="expression_grid.png")


def parse_with_output(parser, argv, default):
    """``parser``'s arguments plus ``-o/--output`` (a PNG, ``default``) and ``--overwrite``; an existing output is
    refused before any slow work unless ``--overwrite`` is given."""
    parser.add_argument("-o", "--output", default=default, help="The PNG to write.")
    parser.add_argument("--overwrite", action="store_true", help="Replace the output file if it exists.")
    args = parser.parse_args(argv)
    if os.path.lexists(args.output) and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it.")
    return args


def face_window(face, width, height, zoom=1.5):
    """A square around the detected face box, clipped to the image."""
    x, y, w, h = face.face.box
    side = max(w, h) * zoom
    cx, cy = x + w / 2, y + h / 2 + 0.05 * h
    left, top = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    return left, top, min(width, round(cx + side / 2)), min(height, round(cy + side / 2))


def is_placeholder(model):
    """Whether a local model's card is tagged `placeholder` (the bundled random-weight model is)."""
    card = Path(str(model)) / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    return text.startswith("---") and "placeholder" in text.split("---")[1]


def font(size):
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable built-in font
    except TypeError:
        return ImageFont.load_default()


def grid_block(pipe, photo, name, targets, timesteps, steps, seed, cell, guidance_scale=None):
    """One photo's block: a header row of t_i, then one row per target."""
    image = ImageOps.exif_transpose(Image.open(photo))  # upright, like the pipeline's output
    first = pipe(
        image,
        target=targets[0],
        start_timestep=timesteps[0],
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=torch.Generator().manual_seed(seed),
        allow_untrained_targets=True,
        mode="diffusion",
    )
    window = face_window(first.faces[0][0], *image.size)
    label_width, header = int(cell * 0.9), int(cell * 0.28)
    block = Image.new("RGB", (label_width + cell * (len(timesteps) + 1), header + cell * len(targets)), "white")
    draw = ImageDraw.Draw(block)
    small, big = font(max(11, cell // 11)), font(max(12, cell // 9))
    draw.text((6, header // 2), name, fill="black", font=small, anchor="lm")
    for column, title in enumerate(["input"] + [f"t_i = {t}" for t in timesteps]):
        draw.text((label_width + cell * column + cell // 2, header // 2), title, fill="black", font=big, anchor="mm")
    source = image.convert("RGB").crop(window).resize((cell, cell), Image.LANCZOS)
    for row, target in enumerate(targets):
        top = header + cell * row
        trained = target in pipe.embeddings.trained_labels
        label = target if trained else f"{target}\n(untrained)"
        draw.text((label_width - 8, top + cell // 2), label, fill="black", font=big, anchor="rm", align="right")
        block.paste(source, (label_width, top))
        for column, t_i in enumerate(timesteps, start=1):
            if row == 0 and column == 1:
                edited = first.images[0]
            else:
                generator = torch.Generator().manual_seed(seed)
                result = pipe(
                    image,
                    target=target,
                    start_timestep=t_i,
                    num_inference_steps=steps,
                    generator=generator,
                    guidance_scale=guidance_scale,
                    allow_untrained_targets=True,
                    mode="diffusion",
                )
                edited = result.images[0]
            block.paste(
                edited.convert("RGB").crop(window).resize((cell, cell), Image.LANCZOS),
                (label_width + cell * column, top),
            )
        print(f"  {name}: {target} done", flush=True)
    return block


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*not trained on")  # the grid marks untrained rows itself
    pipe = LocalExpressionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    if args.paper:
        from diffusers import DDPMScheduler

        pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        args.steps = pipe.scheduler.config.num_train_timesteps
    if args.targets is None:
        targets = list(pipe.embeddings.trained_labels)
    elif args.targets == "all":
        targets = list(pipe.embeddings.labels)
    else:
        targets = pipe.embeddings.resolve([t for t in args.targets.split(",") if t.strip()], allow_untrained=True)
    timesteps = [int(t) for t in args.timesteps.split(",")]
    limit = pipe.scheduler.config.num_train_timesteps
    if not targets or any(not 0 < t < limit for t in timesteps):
        raise SystemExit(f"Need at least one target and timesteps in 1..{limit - 1}, got {targets} and {timesteps}.")
    photos = ([] if args.no_example else [str(HERE / "astronaut.png")]) + list(args.images)
    if not photos:
        raise SystemExit("No photo: drop --no-example or pass one.")

    blocks = [
        grid_block(pipe, p, Path(p).name, targets, timesteps, args.steps, args.seed, args.cell, args.guidance_scale)
        for p in photos
    ]
    steps = args.steps or pipe.config.default_num_inference_steps
    sampler = (
        "DDPM, every step" if args.paper else f"{type(pipe.scheduler).__name__}, {steps} steps of the full schedule"
    )
    lines = [(f"model: {Path(str(args.model)).name}   sampler: {sampler}   seed {args.seed}", "dimgray")]
    if is_placeholder(args.model):
        lines.append(("This model is a RANDOM-WEIGHT PLACEHOLDER: the changes are noise, not expressions.", "red"))
    caption_font, line_height = font(13), 18
    top = 10 + line_height * len(lines)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(
        [b.width for b in blocks] + [int(measure.textlength(text, font=caption_font)) + 12 for text, _ in lines]
    )
    sheet = Image.new("RGB", (width, sum(b.height for b in blocks) + top), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (text, color) in enumerate(lines):
        draw.text((6, 5 + line_height * i + line_height // 2), text, fill=color, font=caption_font, anchor="lm")
    y = top
    for b in blocks:
        sheet.paste(b, (0, y))
        y += b.height
    atomic_save(sheet, Path(args.output), overwrite=args.overwrite)
    print(
        f"wrote {args.output} ({sheet.width}x{sheet.height}: {len(photos)} photo(s) x {len(targets)} targets x "
        f"t_i {', '.join(map(str, timesteps))})"
    )
    return args.output


if __name__ == "__main__":
    main()
