"""The command lines ``led-edit``, ``led-prepare-data`` and ``led-evaluate``: their arguments, checked before a model
is loaded (:mod:`diffusers_led.settings` for an edit; output files by :mod:`diffusers_led.output_files`: atomic, never
over an existing file without ``--overwrite``); the edits, the data preparation and the evaluation themselves are the
library's."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .commands import ArgumentParser, CLIError, command
from .devices import add_device_arguments
from .labels import EDIT_MODES
from .output_files import (
    atomic_save,
    check_destinations,
    collect_images,
    output_format,
    output_paths,
    regions_path,
    warn_if_lossy,
)
from .video.cli import add_video_arguments, edit_clips, split_clips
from .video.formats import is_video_path

NEGATIVE_TARGET_HELP = (
    "Expression that guidance pushes away from, e.g. neutral; '' for none "
    "(default: the model's default_negative_target)."
)
UNTRAINED_HELP = "Allow (with a warning) targets the model has an embedding for but was not trained on."


def build_edit_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="led-edit", description="Change the facial expression of every face in photos (eyes and mouth only)."
    )
    parser.add_argument("inputs", nargs="+", help="Image or video files and/or folders of them.")
    parser.add_argument("--target", default=None, help="Target expression, e.g. happy, sad, surprise, contempt.")
    parser.add_argument(
        "--au",
        default=None,
        metavar="AU12=0.8,AU6=0.4",
        help="Facial action units to add (alone or on top of --target); R/L prefixes act on one side, e.g. R12=0.5.",
    )
    parser.add_argument(
        "--mode",
        choices=EDIT_MODES,
        default=None,
        help="geometry+texture: warp the face's own features along action units, the UNet re-draws opened mouths; "
        "geometry: the warp alone (fastest, no UNet); diffusion: the paper's SDEdit (default: the model's mode).",
    )
    parser.add_argument("--texture-strength", type=float, default=None, help="UNet strength inside opened mouths.")
    parser.add_argument(
        "--strength",
        type=float,
        default=None,
        help="Edit strength in [0, 1] (0.5 = the paper's t_250; default: the model's strength for the target).",
    )
    parser.add_argument(
        "--start-timestep", type=int, default=None, help="The paper's t_i directly; overrides --strength."
    )
    parser.add_argument("--steps", type=int, default=None, help="Inference steps of the full schedule.")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="Classifier-free guidance (models with label dropout; default: the model's default_guidance_scale).",
    )
    parser.add_argument("--negative-target", default=None, help=NEGATIVE_TARGET_HELP)
    parser.add_argument("--seed", type=int, default=0, help="Random seed (per image).")
    parser.add_argument("--model", default=None, help="A model folder or Hub id (default: the bundled model).")
    parser.add_argument(
        "--face-detector",
        default=None,
        help="mesh (BlazeFace + Face Mesh: turned, gray and small faces), dlib (frontal faces) or "
        "yunet:<path to the YuNet ONNX file> (default: the model's).",
    )
    parser.add_argument(
        "--min-face-size",
        type=float,
        default=None,
        help="Smallest face looked for, in pixels (default 40; larger photos may raise it, as the message says).",
    )
    parser.add_argument(
        "--max-detection-size",
        type=int,
        default=None,
        help="dlib/YuNet: the long side the photo is shrunk to for detection (default 1024); mesh tiles instead.",
    )
    parser.add_argument("-o", "--output", default=None, help="Output file (one input) or folder.")
    parser.add_argument("--overwrite", action="store_true", help="Replace existing output files.")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="Images edited together in one call (default: about 16 crops per UNet call, 4 photos with guidance).",
    )
    parser.add_argument(
        "--show-regions",
        action="store_true",
        help="Also write <output>_regions.png with the detected faces and boxes.",
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="Paper mode: the diffusion mode with DDPM and all 500 steps from the start step.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="Torch threads for the UNet (default: this process's share of the idle cores).",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="Run the UNet in bfloat16 autocast: 1.4-1.9x faster on CPUs with AVX512-BF16 or AMX, results within "
        "about a grey level of float32; slower elsewhere.",
    )
    parser.add_argument(
        "--no-prefetch",
        action="store_true",
        help="Detect faces of the next batch only after the current one is edited (no background thread).",
    )
    parser.add_argument("--allow-untrained-targets", action="store_true", help=UNTRAINED_HELP)
    add_video_arguments(parser)
    add_device_arguments(parser)
    return parser


@command(
    "led-edit",
    errors=(CLIError, ValueError, OSError),
    interrupted="the files written so far are complete, the others were not written.",
)
def edit_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``led-edit``."""
    return _edit(build_edit_parser().parse_args(argv))


def _edit(args: argparse.Namespace) -> int:
    from .settings import check_request

    if args.target is None and args.au is None and args.keyframes is None:
        raise CLIError("pass --target (an expression) and/or --au (action units, e.g. --au AU12=0.8,AU6=0.4).")
    clips, args.inputs = split_clips(args.inputs)
    if clips:  # clips have their own path (tracking, PyAV); photos given beside them go on below
        failures = edit_clips(args, clips, single_file=len(clips) == 1 and not args.inputs)
        if failures:
            raise CLIError(f"{len(failures)} of {len(clips)} clips failed (see above).")
        if not args.inputs:
            return 0
    if args.keyframes is not None:
        raise CLIError("--keyframes applies to clips; for photos give --target.")
    if args.paper:
        args.mode = "diffusion"
    if args.mode == "diffusion" and args.target is None:
        raise CLIError("the diffusion mode (--mode diffusion, --paper) needs --target; --au needs a geometry mode.")
    # The pipeline's own checks, before loading anything (the mode-dependent ones again once the model is known).
    try:
        request = check_request(args.target, args.au, args.mode, args.strength, args.texture_strength)
    except ValueError as error:  # the same message, naming the flags rather than the Python arguments
        message = str(error)
        for argument, flag in (("strength", "--strength"), ("texture_strength", "--texture-strength")):
            message = message.replace(f"`{argument}`", flag)
        raise CLIError(message) from None
    target, args.action_units = request.targets[0], request.units or None
    if (args.batch_size is not None and args.batch_size < 1) or (args.threads is not None and args.threads < 1):
        raise CLIError("--batch-size and --threads must be at least 1.")
    if (args.min_face_size is not None and args.min_face_size <= 0) or (
        args.max_detection_size is not None and args.max_detection_size < 32
    ):
        raise CLIError("--min-face-size must be positive and --max-detection-size at least 32.")
    paths = collect_images(args.inputs)
    single_file = len(args.inputs) == 1 and not Path(args.inputs[0]).is_dir()
    destinations = output_paths(paths, args.output, target or "au", single_file)
    check_destinations(paths, destinations, args.overwrite, args.show_regions)

    from .batch import preload_face_detector

    preloading = preload_face_detector(args.model)  # dlib's models load while torch and the UNet do

    import torch

    from .batch import default_batch_size
    from .cpu import optimize_for_cpu, recommended_num_threads
    from .devices import load_pipeline_on, resolve_device_and_dtype
    from .pretrained import resolve_model

    device, dtype = resolve_device_and_dtype(args.device, args.dtype)  # each process's own GPU under accelerate
    if args.bf16 and dtype != torch.float32:
        name = str(dtype).replace("torch.", "")
        raise CLIError(f"--bf16 autocasts float32 weights, these are {name}: add --dtype float32 or drop --bf16.")
    warn_if_lossy(paths, destinations)

    # Under `accelerate launch` (several processes), each process edits its own share of the files.
    state = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        state = PartialState(cpu=device.type != "cuda")
        with state.split_between_processes(list(zip(paths, destinations))) as share:
            share = list(share)
        paths, destinations = [p for p, _ in share], [d for _, d in share]
    prefix = f"[process {state.process_index} of {state.num_processes}] " if state is not None else ""
    num_processes = state.num_processes if state is not None else 1

    # The detection thread needs no core of its own: measured on 2 idle cores, batches of 8 gave 3.15 faces/s with it
    # beside 2 torch threads and 2.50 with it beside 1 (one photo at a time: 2.96 with 2 threads).
    torch.set_num_threads(args.threads or recommended_num_threads(num_processes))

    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components" is noise on a command line
    pipe = load_pipeline_on(resolve_model(args.model), device, dtype)
    pipe.set_progress_bar_config(disable=True)
    if args.face_detector or args.min_face_size or args.max_detection_size:
        pipe.set_face_detector(args.face_detector, args.min_face_size, args.max_detection_size)
    optimize_for_cpu(pipe)
    if (args.mode or pipe.config.default_mode) == "diffusion":
        pipe.embeddings.resolve([target], args.allow_untrained_targets)  # an untrained target fails once, not per file
    if args.paper:
        from diffusers import DDPMScheduler

        pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        args.steps = pipe.scheduler.config.num_train_timesteps
    if preloading is not None:
        preloading.join()
    if args.batch_size is None:
        args.batch_size = default_batch_size(pipe, args.guidance_scale)
    prefetch = not args.no_prefetch and len(paths) > args.batch_size

    try:
        failures = _edit_files(args, pipe, paths, destinations, target, prefetch, prefix)
    finally:
        if state is not None:
            state.wait_for_everyone()  # a process that ends first must not make the launcher stop the others
    if failures:
        raise CLIError(f"{prefix}{len(failures)} of {len(paths)} images failed (see above).")
    return 0


def _edit_files(args, pipe, paths, destinations, target, prefetch, prefix) -> list[str]:
    """Edit and save ``paths`` (this process's share); prints one line per file, returns the failures."""
    from .batch import edit_files
    from .image_processor import save_options

    failures = []
    destination_of = dict(zip(paths, destinations))
    results = edit_files(
        pipe,
        paths,
        target,
        batch_size=args.batch_size,
        prefetch=prefetch,
        seed=args.seed,
        strength=args.strength,
        start_timestep=args.start_timestep,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        negative_target=args.negative_target,
        mode=args.mode,
        action_units=args.action_units,
        texture_strength=args.texture_strength,
        bf16=args.bf16,
        allow_untrained_targets=args.allow_untrained_targets,
    )
    for result in results:
        if result.error is not None:
            failures.append(result.error)
            continue
        destination = destination_of[result.path]
        faces = result.faces
        try:
            options = save_options(result.source, output_format(destination), result.image.mode)
            atomic_save(result.image, destination, args.overwrite, **options)
            if args.show_regions:
                import numpy as np
                from PIL import Image

                debug = pipe.region_processor.draw_regions(np.asarray(result.source.convert("RGB")), faces)
                atomic_save(Image.fromarray(debug), regions_path(destination), args.overwrite)
        except (CLIError, OSError) as error:
            failures.append(f"{result.path}: {error}")
            continue
        print(f"{prefix}{result.path} -> {destination} ({len(faces)} face{'s' if len(faces) != 1 else ''})")
    for failure in failures:
        print(f"led-edit: {prefix}skipped {failure}", file=sys.stderr)
    return failures


def build_prepare_data_parser() -> ArgumentParser:
    from .data.formats import FORMATS
    from .faces.regions import REGION_ANCHORS

    parser = ArgumentParser(
        prog="led-prepare-data",
        description="Turn a folder of labelled face photos into the eye/mouth region-crop dataset train_led.py uses "
        "(a datasets imagefolder with train/ and test/ splits, split by subject).",
    )
    add = parser.add_argument
    add("--input_dir", required=True, help="The labelled photos.")
    add("--output_dir", required=True, help="Where the crop dataset goes (an existing one is completed).")
    add(
        "--allow_other_files",
        action="store_true",
        help="Use an --output_dir that holds files led-prepare-data did not write (by default it is refused); they "
        "are never replaced or deleted.",
    )
    add("--format", default="auto", choices=("auto", *FORMATS), help="Label source (default: from the layout).")
    add("--test_subjects", default=None, help="Comma-separated subject ids for the test split.")
    add("--test_fraction", type=float, default=0.05, help="Fraction of subjects held out without --test_subjects.")
    add("--seed", type=int, default=0, help="Seed of the subject draw for --test_fraction.")
    add("--regions", default="eyes,mouth", help="Comma-separated regions to crop.")
    add("--detector", default="dlib", help="Face detector: dlib or yunet:<path to the YuNet ONNX file>.")
    add("--crop_size", type=int, default=64, help="Side of the square crops (the training --resolution).")
    add(
        "--region_anchor",
        default="landmarks",
        choices=REGION_ANCHORS,
        help="Where the eye/mouth boxes sit: on the face's own landmarks (the paper; the mouth box follows the "
        "mouth corners) or at a fixed place on the aligned face (template; a smile can widen the mouth inside the "
        "crop). The trained model keeps the choice.",
    )
    add("--rafd_angles", default="090", help="Comma-separated RaFD camera angles to keep (090 = frontal).")
    add("--ckplus_peak_frames", type=int, default=1, help="CK+: last frames of a labelled sequence used.")
    add("--ckplus_neutral_frames", type=int, default=1, help="CK+: first frames used as neutral.")
    add("--quiet", action="store_true", help="No progress bar.")
    return parser


def _split_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


@command(
    "led-prepare-data",
    errors=(ValueError, OSError),
    interrupted="the photos finished so far are kept: run the same command again to complete the dataset.",
)
def prepare_data_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``led-prepare-data``: prints a summary (the full report goes to
    ``<output_dir>/prepare_report.json``); returns the exit code."""
    from .data.formats import REPORT_FILE
    from .data.writer import prepare_dataset

    args = build_prepare_data_parser().parse_args(argv)
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
        region_anchor=args.region_anchor,
        rafd_angles=_split_list(args.rafd_angles),
        ckplus_peak_frames=args.ckplus_peak_frames,
        ckplus_neutral_frames=args.ckplus_neutral_frames,
        progress=not args.quiet,
        allow_other_files=args.allow_other_files,
    )
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


def build_evaluate_parser() -> ArgumentParser:
    from .evaluation.modes import DEFAULT_MODES, DEFAULT_STRENGTHS, MODES

    parser = ArgumentParser(
        prog="led-evaluate",
        description="Evaluate a LocalExpressionPipeline: independent expression classifier, identity, pixels outside "
        "the regions, seams (soft blend vs the paper's hard paste), per-region FID/KID and the paper's IS.",
    )
    parser.add_argument("--model", default=None, help="Model folder or Hub id (default: the bundled model).")
    parser.add_argument(
        "--data",
        required=True,
        help="A led-prepare-data crop dataset (its --split source photos are edited), a folder of photos "
        "(optionally labelled), one photo, or a clip (the video path's stability, speed and what it keeps).",
    )
    parser.add_argument("--out", required=True, help="Output folder for report.json, report.md and the plots.")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace the files an earlier led-evaluate run wrote in --out (never other files).",
    )
    parser.add_argument(
        "--targets", default="all", help="'all' (the model's trained labels) or comma-separated names."
    )
    parser.add_argument(
        "--strengths",
        default=",".join(f"{s:g}" for s in DEFAULT_STRENGTHS),
        help="Comma-separated strengths in [0, 1].",
    )
    parser.add_argument(
        "--modes",
        default=None,
        help=f"Comma-separated, of: {', '.join(MODES)} (the pipeline's modes and variants of the diffusion mode; see "
        f"docs/evaluation.md). Default: the model's default mode, then {','.join(DEFAULT_MODES)}.",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed; one generator per (photo, target), shared by all modes."
    )
    parser.add_argument("--split", default="test", help="Split of a crop dataset whose photos are edited.")
    parser.add_argument(
        "--photos-root", default=None, help="Folder of a crop dataset's source photos (default: recorded)."
    )
    parser.add_argument(
        "--subjects", default=None, help="Comma-separated subjects to edit (default: all of the split)."
    )
    parser.add_argument("--max-images", type=int, default=None, help="Edit at most this many photos.")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="Photos per pipeline call (default: about 16 crops per UNet call).",
    )
    parser.add_argument("--steps", type=int, default=None, help="Fast sampler steps (default: the model's).")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="Classifier-free guidance in every mode (default: the model's default_guidance_scale).",
    )
    parser.add_argument("--negative-target", default=None, help=NEGATIVE_TARGET_HELP)
    parser.add_argument(
        "--paper-steps", type=int, default=None, help="DDPM steps in the paper modes (default: T, the paper)."
    )
    parser.add_argument("--paper-strengths", default=None, help="Strengths of the DDPM modes (default: 0.5).")
    parser.add_argument("--paper-max-images", type=int, default=2, help="Photos edited in the DDPM modes (0: all).")
    parser.add_argument("--no-realism", action="store_true", help="Skip FID/KID (the Inception network).")
    parser.add_argument(
        "--realism-max-crops", type=int, default=50, help="Generated crops per row and region for FID/KID (0: all)."
    )
    parser.add_argument(
        "--reference-data", default=None, help="Real crops (crop dataset or labelled photos) for FID/KID."
    )
    parser.add_argument("--cache-dir", default="default", help="Inception feature cache folder ('none' to disable).")
    parser.add_argument(
        "--time-budget", type=float, default=15.0, help="Minutes; fewer photos are edited to fit (0: no limit)."
    )
    parser.add_argument("--allow-untrained-targets", action="store_true", help=UNTRAINED_HELP)
    parser.add_argument(
        "--threads", type=int, default=None, help="Torch threads (1 is faster on a busy shared machine)."
    )
    parser.add_argument("--quiet", action="store_true", help="No progress bars.")
    add_device_arguments(parser)
    return parser


def _numbers(flag: str, text: str | None) -> list[float]:
    """The comma-separated numbers of option ``flag``."""
    try:
        return [float(value) for value in _split_list(text)]
    except ValueError:
        raise CLIError(f"{flag} takes comma-separated numbers such as 0.35,0.5, got {text!r}.") from None


def _print_evaluation_summary(report: dict, files: dict[str, str]) -> None:
    """The headline numbers of an evaluation's ``report``, one line per (mode, strength), and where it is."""
    base = report["baseline"]["expression"]
    print(f"unedited: p(target) {base['p_target'] or 0:.3f}, hit {100 * (base['hit_rate'] or 0):.1f}%")
    for entry in report["results"]:
        x, ident, seams = entry["expression"], entry["identity"], entry["seams"]
        p_target = x["p_target"] if x["p_target"] is not None else float("nan")
        new_hits = 100 * (x.get("hit_rate_not_shown_before") or 0)
        print(
            f"{entry['mode']:>10} s={entry['strength']:<5g} p(target) {p_target:.3f}"
            f"  hit {100 * (x['hit_rate'] or 0):5.1f}% (on faces not showing it before {new_hits:.1f}%)"
            f"  id {ident['distance_mean']:.3f}"
            f"  outside max {entry['preservation']['max_abs_outside']:g}  seam {seams['score'] or 0:.3f}"
        )
    print(f"Report: {files['markdown']} (and report.json, plots) in {report['timings']['total_s'] / 60:.1f} min")


@command(
    "led-evaluate",
    errors=(CLIError, ImportError, ValueError, OSError),
    interrupted="no report was written (cached Inception features are kept).",
)
def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``led-evaluate``: edit held-out faces to every target at every strength and write a report
    (``report.json``, ``report.md``, ``edits.csv``, PNG plots) with expression, identity, preservation, seam and
    realism metrics. All logic is in :func:`diffusers_led.evaluation.evaluate`."""
    args = build_evaluate_parser().parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        raise CLIError(f"--max-images must be at least 1 (leave it out for all photos), got {args.max_images}.")
    if is_video_path(args.data):
        return _evaluate_clip(args)
    from .evaluation import evaluate

    result = evaluate(
        model=args.model,
        data=args.data,
        out_dir=args.out,
        targets=args.targets,
        strengths=_numbers("--strengths", args.strengths),
        modes=_split_list(args.modes) or None,
        seed=args.seed,
        split=args.split,
        photos_root=args.photos_root,
        subjects=_split_list(args.subjects) or None,
        max_images=args.max_images,
        batch_size=args.batch_size,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        negative_target=args.negative_target,
        paper_steps=args.paper_steps,
        paper_strengths=_numbers("--paper-strengths", args.paper_strengths) or None,
        paper_max_images=args.paper_max_images or None,
        realism=not args.no_realism,
        realism_max_crops=args.realism_max_crops or None,
        reference_data=args.reference_data,
        cache_dir=None if args.cache_dir.lower() == "none" else args.cache_dir,
        time_budget=args.time_budget or None,
        allow_untrained_targets=args.allow_untrained_targets,
        progress=not args.quiet,
        num_threads=args.threads,
        device=args.device,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    _print_evaluation_summary(result.report, result.files)
    return 0


def _evaluate_clip(args: argparse.Namespace) -> int:
    """``led-evaluate --data clip.mp4``: the video path's report (see :func:`diffusers_led.evaluation.clips`)."""
    from .evaluation.clips import evaluate_clip
    from .pipeline_led import LocalExpressionPipeline
    from .pretrained import resolve_model

    targets = ["happy"] if args.targets == "all" else _split_list(args.targets)
    pipe = LocalExpressionPipeline.from_pretrained(resolve_model(args.model))
    for target in targets:
        out = Path(args.out) / target
        report = evaluate_clip(pipe, args.data, out, target, progress=not args.quiet, overwrite=args.overwrite)
        kept, flicker, identity = report["kept"], report["flicker"], report["identity"]
        ratios = [w["ratio"] for w in flicker["windows"] if w["ratio"] is not None]
        spread = f", {min(ratios):.2f}x-{max(ratios):.2f}x in windows" if len(ratios) > 1 else ""
        print(
            f"{target}: {kept['frames'][1]} of {kept['frames'][0]} frames, timestamps kept "
            f"{kept['timestamps_identical']}, audio identical {kept['audio_identical']}; edited "
            f"{report['faces']['frames_edited']} of {report['faces']['frames_with_faces']} frames with a face; "
            f"identity kept {identity['kept']}/{identity['sampled_frames']}; p({target}) "
            f"{report['expression']['p_target_input'] or 0:.3f} -> {report['expression']['p_target_edited'] or 0:.3f};"
            f" flicker {flicker['video_path']:.3f} vs "
            f"{flicker['independent_photo_edits']:.3f} for per-frame photo edits{spread}; "
            f"{report['frames_per_second']:.1f} frames/s -> {Path(args.out) / target / 'report.json'}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m diffusers_led.cli <command> [options]``, with command ``edit`` (``led-edit``), ``prepare-data``
    (``led-prepare-data``) or ``evaluate`` (``led-evaluate``); e.g. ``accelerate launch -m diffusers_led.cli edit
    photos/ --target happy -o out/`` splits a folder across processes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"edit": "edit_main", "prepare-data": "prepare_data_main", "evaluate": "evaluate_main"}
    entry = globals().get(commands.get(argv[0], ""), None) if argv else None
    if entry is None:
        print(f"usage: python -m diffusers_led.cli {{{','.join(commands)}}} [options]", file=sys.stderr)
        return 2
    return entry(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
