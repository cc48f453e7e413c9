"""Every expression on every face: one row per photo and mode, the input and its edit toward each of the eight targets.

    python examples/expression_sheet.py                                  # the bundled photo -> expression_sheet.png
    python examples/expression_sheet.py me.jpg group.jpg -o sheet.png    # the bundled photo and yours
    python examples/expression_sheet.py --modes geometry,geometry+texture --strength 1.0

Each cell is the first face of the edited photo, enlarged; every face of a group photo is edited, the sheet shows
the first. All cells share one seed.
"""

from pathlib import Path

import torch
from expression_grid import face_window, font, parse_with_output
from PIL import Image, ImageDraw, ImageOps

from diffusers_led import EXPRESSIONS, LocalExpressionPipeline
from diffusers_led.commands import ArgumentParser
from diffusers_led.image_processor import prepare_image
from diffusers_led.output_files import atomic_save
from diffusers_led.pretrained import resolve_model

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="Extra photos (the bundled example is always the first row).")
    parser.add_argument("--model", default=resolve_model(use_env=True), help="Model folder.")
    parser.add_argument("--modes", default=None, help="Comma-separated modes, one row each (default: the model's).")
    parser.add_argument("--targets", default=",".join(EXPRESSIONS), help="Comma-separated targets.")
    parser.add_argument("--strength", type=float, default=None, help="Strength (default: the model's).")
    parser.add_argument("--seed", type=int, default=0, help="One seed for every cell.")
    parser.add_argument("--cell", type=int, default=160, help="Cell size in pixels.")
    parser.add_argument("--no-example", action="store_true", help="Leave out the bundled photo.")
    return parse_with_output(parser, argv, default="expression_sheet.png")


def main(argv=None):
    args = parse_args(argv)
    pipe = LocalExpressionPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    photos = ([] if args.no_example else [HERE / "astronaut.png"]) + [Path(p) for p in args.images]
    modes = args.modes.split(",") if args.modes else [pipe.config.default_mode]
    targets = args.targets.split(",")
    cell, label_width, header = args.cell, int(args.cell * 1.1), int(args.cell * 0.22)
    rows = [(photo, mode) for photo in photos for mode in modes]
    sheet = Image.new("RGB", (label_width + cell * (len(targets) + 1), header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    small = font(max(11, cell // 11))
    for column, title in enumerate(["input"] + targets):
        draw.text((label_width + cell * column + cell // 2, header // 2), title, fill="black", font=small, anchor="mm")
    for row, (photo, mode) in enumerate(rows):
        image = ImageOps.exif_transpose(Image.open(photo))
        top = header + cell * row
        draw.text(
            (label_width - 6, top + cell // 2),
            f"{photo.stem}\n{mode}",
            fill="black",
            font=small,
            anchor="rm",
            align="right",
        )
        faces = pipe.detect_faces([prepare_image(image)], tuple(pipe.config.regions), on_no_face="error")
        window = face_window(faces[0][0], *image.size)
        for column, target in enumerate([None] + targets):
            edited = image
            if target is not None:
                generator = torch.Generator().manual_seed(args.seed)
                edited = pipe(
                    image,
                    target=target,
                    mode=mode,
                    strength=args.strength,
                    generator=generator,
                    faces=faces,
                    allow_untrained_targets=True,
                ).images[0]
            cropped = edited.convert("RGB").crop(window).resize((cell, cell), Image.LANCZOS)
            sheet.paste(cropped, (label_width + cell * column, top))
        print(f"  {photo.name} ({mode}) done", flush=True)
    atomic_save(sheet, Path(args.output), overwrite=args.overwrite)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
