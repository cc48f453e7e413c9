"""Thin command-line entry points; all logic lives in the library modules."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from .image_processor import ImageLoadError


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class CLIError(Exception):
    """A failure reported as one line and a non-zero exit code."""


def collect_images(inputs: Sequence[str]) -> List[Path]:
    """Expand files and folders (non-recursive) into a sorted list of image paths."""
    paths: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif path.exists():
            paths.append(path)
        else:
            raise CLIError(f"{item}: no such file or folder.")
    if not paths:
        raise CLIError(f"no images found in {', '.join(inputs)} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return paths


def atomic_save(image, destination: Path, overwrite: bool) -> None:
    """Save a PIL image to ``destination`` through a temporary file in the same folder and an atomic rename."""
    if destination.exists() and not overwrite:
        raise CLIError(f"{destination} exists; pass --overwrite to replace it.")
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.stem}.", suffix=destination.suffix, dir=destination.parent)
    os.close(handle)
    try:
        if destination.suffix.lower() in (".jpg", ".jpeg") and image.mode in ("RGBA", "LA"):
            image = image.convert("RGB" if image.mode == "RGBA" else "L")
        image.save(temporary)
        os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def output_paths(paths: Sequence[Path], output: Optional[str], target: str, single_file: bool) -> List[Path]:
    """Where each edited image goes: ``-o`` itself for one input file, else ``<stem>_<target>.png`` in ``-o`` (a
    folder, default: beside each input)."""
    if single_file and output and Path(output).suffix.lower() in IMAGE_SUFFIXES:
        return [Path(output)]
    suffix = f"_{target.replace(' ', '-')}"
    if output:
        return [Path(output) / f"{p.stem}{suffix}.png" for p in paths]
    return [p.with_name(f"{p.stem}{suffix}.png") for p in paths]


def build_edit_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="led-edit", description="Change the facial expression of every face in photos (eyes and mouth only)."
    )
    parser.add_argument("inputs", nargs="+", help="Image files and/or folders of images.")
    parser.add_argument("--target", required=True, help="Target expression, e.g. happy, sad, surprise, contempt.")
    parser.add_argument("--strength", type=float, default=0.5, help="Edit strength in [0, 1] (0.5 = the paper's t_250).")
    parser.add_argument("--start-timestep", type=int, default=None, help="The paper's t_i directly; overrides --strength.")
    parser.add_argument("--steps", type=int, default=None, help="Inference steps of the full schedule.")
    parser.add_argument("--guidance-scale", type=float, default=1.0, help="Classifier-free guidance (models with label dropout).")
    parser.add_argument("--seed", type=int, default=0, help="Random seed (per image).")
    parser.add_argument("--model", default=None, help="A model folder or Hub id (default: the bundled model).")
    parser.add_argument("-o", "--output", default=None, help="Output file (one input) or folder.")
    parser.add_argument("--overwrite", action="store_true", help="Replace existing output files.")
    parser.add_argument("--batch-size", type=int, default=8, help="Images edited together in one call.")
    parser.add_argument("--show-regions", action="store_true", help="Also write <output>_regions.png with the detected faces and boxes.")
    parser.add_argument("--paper", action="store_true", help="Paper mode: DDPM with all 500 steps from the start step.")
    return parser


def edit_main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``led-edit``."""
    args = build_edit_parser().parse_args(argv)
    try:
        return _edit(args)
    except (CLIError, ValueError, OSError) as error:
        print(f"led-edit: error: {error}", file=sys.stderr)
        return 1


def _edit(args: argparse.Namespace) -> int:
    import torch

    from .expressions import canonical_expression
    from .image_processor import load_image
    from .pretrained import default_model_path
    from .pipeline_led import LocalExpressionPipeline

    target = canonical_expression(args.target)  # fail fast, before loading anything
    if not 0.0 <= args.strength <= 1.0:
        raise CLIError(f"--strength must be in [0, 1], got {args.strength}.")
    paths = collect_images(args.inputs)
    single_file = len(args.inputs) == 1 and not Path(args.inputs[0]).is_dir()
    destinations = output_paths(paths, args.output, target, single_file)
    existing = [str(d) for d in destinations if d.exists()]
    if existing and not args.overwrite:
        raise CLIError(f"{existing[0]} exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}; pass --overwrite to replace.")

    pipe = LocalExpressionPipeline.from_pretrained(args.model or default_model_path())
    pipe.set_progress_bar_config(disable=True)
    if args.paper:
        from diffusers import DDPMScheduler

        pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        args.steps = pipe.scheduler.config.num_train_timesteps

    failures = []
    for start in range(0, len(paths), args.batch_size):
        batch = list(zip(paths, destinations))[start : start + args.batch_size]
        loaded = []
        for path, destination in batch:
            try:
                loaded.append((path, destination, load_image(path)))
            except ImageLoadError as error:
                failures.append(str(error))
        if not loaded:
            continue
        result = pipe(
            [image for _, _, image in loaded],
            target=target,
            strength=args.strength,
            start_timestep=args.start_timestep,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale,
            generator=[torch.Generator().manual_seed(args.seed) for _ in loaded],
            on_no_face="skip",
        )
        for (path, destination, image), edited, faces in zip(loaded, result.images, result.faces):
            if not faces:
                failures.append(f"{path}: no face detected; nothing written.")
                continue
            atomic_save(edited, destination, args.overwrite)
            print(f"{path} -> {destination} ({len(faces)} face{'s' if len(faces) != 1 else ''})")
            if args.show_regions:
                from PIL import Image
                import numpy as np

                debug = pipe.region_processor.draw_regions(np.asarray(image.convert("RGB")), faces)
                atomic_save(Image.fromarray(debug), destination.with_name(destination.stem + "_regions.png"), True)
    for failure in failures:
        print(f"led-edit: skipped {failure}", file=sys.stderr)
    if failures:
        raise CLIError(f"{len(failures)} of {len(paths)} images failed (see above).")
    return 0


def build_prepare_data_parser() -> argparse.ArgumentParser:
    from .data import FORMATS

    parser = argparse.ArgumentParser(
        prog="led-prepare-data",
        description="Turn a folder of labelled face photos into the eye/mouth region-crop dataset train_led.py uses "
        "(a datasets imagefolder with train/ and test/ splits, split by subject).",
    )
    add = parser.add_argument
    add("--input_dir", required=True, help="The labelled photos.")
    add("--output_dir", required=True, help="Where the crop dataset goes (an existing one is completed).")
    add("--format", default="auto", choices=("auto", *FORMATS), help="Label source (default: from the layout).")
    add("--test_subjects", default=None, help="Comma-separated subject ids for the test split.")
    add("--test_fraction", type=float, default=0.05, help="Fraction of subjects held out without --test_subjects.")
    add("--seed", type=int, default=0, help="Seed of the subject draw for --test_fraction.")
    add("--regions", default="eyes,mouth", help="Comma-separated regions to crop.")
    add("--detector", default="dlib", help="Face detector: dlib or yunet:<path to the YuNet ONNX file>.")
    add("--crop_size", type=int, default=64, help="Side of the square crops (the training --resolution).")
    add("--rafd_angles", default="090", help="Comma-separated RaFD camera angles to keep (090 = frontal).")
    add("--ckplus_peak_frames", type=int, default=1, help="CK+: last frames of a labelled sequence used.")
    add("--ckplus_neutral_frames", type=int, default=1, help="CK+: first frames used as neutral.")
    add("--quiet", action="store_true", help="No progress bar.")
    return parser


def _split_list(text: Optional[str]) -> List[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def prepare_data_main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``led-prepare-data``: prints a summary (the full report goes to
    ``<output_dir>/prepare_report.json``); returns the exit code."""
    from .data import REPORT_FILE, prepare_dataset

    args = build_prepare_data_parser().parse_args(argv)
    try:
        report = prepare_dataset(
            args.input_dir,
            args.output_dir,
            format=args.format,
            test_subjects=_split_list(args.test_subjects) or None,
            test_fraction=args.test_fraction,
            seed=args.seed,
            regions=_split_list(args.regions),
            detector=args.detector,
            crop_size=args.crop_size,
            rafd_angles=_split_list(args.rafd_angles),
            ckplus_peak_frames=args.ckplus_peak_frames,
            ckplus_neutral_frames=args.ckplus_neutral_frames,
            progress=not args.quiet,
        )
    except (ValueError, OSError) as error:
        print(f"led-prepare-data: error: {error}", file=sys.stderr)
        return 1
    print(
        f"{report.format}: {report.photos_found} labelled photos; {report.processed} cropped now, "
        f"{report.already_done} already done, {len(report.skipped)} skipped."
    )
    for split, summary in report.splits.items():
        print(f"  {split}: {summary['crops']} crops of {len(summary['subjects'])} subjects {summary['expressions']}")
    for item in report.skipped:
        print(f"  skipped {item['source']}: {item['reason']}", file=sys.stderr)
    print(f"Report: {Path(args.output_dir) / REPORT_FILE}")
    return 0
