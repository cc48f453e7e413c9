"""``led-demo``: a local Gradio app to try LocalExpressionPipeline on a photo.

Upload a photo (or pick the bundled example), choose the target expression and the strength, and see the photo
before and after side by side, optionally with the detected faces and the eye / mouth regions drawn on top; the
result downloads as a PNG. Install the optional extra (``pip install "diffusers-led[demo]"``) and run::

    led-demo                                  # the bundled model, http://127.0.0.1:7860
    led-demo --model path/or/hub-id --port 8080

The app makes no network connection of its own: Gradio's analytics and version check are turned off before Gradio is
imported, the page uses system fonts (no font CDN), and the server binds to 127.0.0.1 unless ``--host`` says
otherwise. ``--share`` (a public gradio.live tunnel) is off unless asked for.

Gradio is imported only inside the functions that need it, so ``diffusers_led`` itself never needs Gradio. The edit
logic (:class:`~diffusers_led.demo.editor.ExpressionEditor`) does not import Gradio either and is tested on its own.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..commands import ArgumentParser, report_errors
from ..devices import add_device_arguments
from ..expressions import UntrainedExpressionError
from ..image_processor import ImageLoadError
from ..labels import EDIT_MODES
from ..pretrained import MODEL_ENV_VAR, resolve_model
from .editor import DemoInputError, ExpressionEditor

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
TITLE = "diffusers-led: change a facial expression"
#: The action units with a slider of their own in the demo (the ones the expressions are made of).
DEMO_ACTION_UNITS = (
    ("AU1", "inner brow raiser"),
    ("AU2", "outer brow raiser"),
    ("AU4", "brow lowerer"),
    ("AU5", "upper lid raiser"),
    ("AU6", "cheek raiser"),
    ("AU7", "lid tightener"),
    ("AU9", "nose wrinkler"),
    ("AU12", "lip corner puller"),
    ("AU15", "lip corner depressor"),
    ("AU26", "jaw drop"),
)
# The example photo of the repository (public domain, see the README); absent from a wheel install.
REPO_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "astronaut.png"

# Environment that keeps Gradio (and huggingface_hub inside it) off the network; set before Gradio is imported.
OFFLINE_ENVIRONMENT = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

CSS = """
#led-after img, #led-before img { object-fit: contain; }
.led-notice { border-left: 4px solid #f59e0b; padding: 0.4em 0.8em; }
"""


OUT_OF_MEMORY = (
    "Out of memory while editing. Downscale the photo (a few megapixels is plenty: only the faces are edited) "
    "or crop it around the faces, and try again."
)


def model_notice(model_path: str | None) -> str | None:
    """A warning when the model card of a local model says it is a placeholder (random weights)."""
    if not model_path:
        return None
    card = Path(model_path) / "README.md"
    try:
        text = card.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return None
    front = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    if re.search(r"\bplaceholder\b", front, re.IGNORECASE):  # a `placeholder` tag in the card
        return (
            "This model is a **random-weight placeholder**: the page works end to end, but the edits are noise-like "
            "changes of the eyes and mouth, not expressions. Pass `--model` with a trained model."
        )
    return None


def find_examples(extra: Sequence[str] = ()) -> list[str]:
    """The example photos offered under the upload box: the repository's ``examples/astronaut.png`` when present,
    then ``extra``."""
    found = [str(REPO_EXAMPLE)] if REPO_EXAMPLE.is_file() else []
    for item in extra:
        if not Path(item).is_file():
            raise FileNotFoundError(f"--example {item}: no such file.")
        found.append(str(Path(item).resolve()))
    return found


# ---------------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------------


def _import_gradio():
    """Import Gradio with its analytics and version check off (they read the environment at import and launch)."""
    os.environ.update(OFFLINE_ENVIRONMENT)
    try:
        import gradio as gr
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            'led-demo needs Gradio: pip install "diffusers-led[demo]" (or pip install gradio).'
        ) from error
    return gr


def _photo_input(gr, **kwargs):
    """A ``gr.Image`` upload box that passes the file path on even when the file is not a readable image, so the
    editor can say why (Gradio's own preprocessing would fail with a bare "Error").

    The instance's ``preprocess`` is wrapped rather than subclassing ``gr.Image``: Gradio writes a ``.pyi`` stub next
    to the source file of every component subclass, which must not happen inside an installed package.
    """
    photo = gr.Image(**kwargs)
    preprocess = photo.preprocess

    def tolerant_preprocess(payload):
        try:
            return preprocess(payload)
        except Exception:
            path = getattr(payload, "path", None)
            return str(path) if path else None

    photo.preprocess = tolerant_preprocess
    return photo


def _escape(message: str) -> str:
    """Gradio renders alert messages as HTML; show file names and labels literally."""
    return html.escape(str(message), quote=False)


def make_handlers(editor: ExpressionEditor, gr):
    """The event functions of the page (plain functions of their inputs, so tests can call them directly)."""
    from ..pipeline_led import NoFaceDetectedError

    def views(state: dict | None, show_regions: bool, image_path: str | None = None):
        """``(before, after, status)`` to display: the stored edit, with the overlay when asked. Before any edit (or
        for a newly uploaded photo) with the overlay on, the faces found in the photo are drawn on it."""
        if state and (image_path is None or state.get("source") == image_path):
            before, after = state["before"], state["after"]
            if show_regions:
                after_rgb = np.asarray(after.convert("RGB"))
                before, after = editor.overlay(before, state["faces"]), editor.overlay(after_rgb, state["faces"])
            return before, after, state.get("summary", "")
        if image_path and show_regions:
            try:
                rgb, faces = editor.detect(editor.load(image_path))
            except (ImageLoadError, DemoInputError) as error:
                raise gr.Error(_escape(error), title="Cannot show the regions", print_exception=False) from None
            count = len(faces)
            note = f"{count} face{'s' if count != 1 else ''} found." if count else "No face found in this photo."
            return editor.overlay(rgb, faces), None, note
        return None, None, ""

    def fail(message: str, title: str):
        """A message box in the page (no traceback in the page or in the server log: these are user errors)."""
        return gr.Error(_escape(message), title=title, print_exception=False)

    def run_edit(
        image_path,
        target,
        strength,
        steps,
        seed,
        guidance_scale,
        regions,
        show_regions,
        mode=None,
        *unit_values,
        progress=gr.Progress(),  # noqa: B008 - Gradio injects its progress tracker through this default
    ):
        def report(done: int, total: int, description: str) -> None:
            progress((done, total), desc=description, unit="steps")

        units = {name: value for (name, _), value in zip(DEMO_ACTION_UNITS, unit_values)}
        try:
            result = editor.edit(
                image_path,
                target,
                strength,
                steps,
                seed,
                guidance_scale,
                regions,
                progress=report,
                mode=mode,
                action_units=units,
            )
        except DemoInputError as error:
            raise fail(str(error), "Cannot edit") from None
        except ImageLoadError as error:
            # Uploads live in Gradio's cache under their own name: show the name, not the cache path.
            message = str(error).replace(str(image_path), Path(str(image_path)).name) if image_path else str(error)
            raise fail(message, "Bad file") from None
        except NoFaceDetectedError:
            raise fail(
                "No face found in this photo. Use a photo with a clearly visible, roughly frontal face at least "
                "~40 pixels wide (profile views and very small or blurred faces are not detected).",
                "No face found",
            ) from None
        except UntrainedExpressionError as error:
            raise fail(str(error), "Expression not available") from None
        except MemoryError:
            raise fail(OUT_OF_MEMORY, "Out of memory") from None
        except (ValueError, RuntimeError) as error:
            if "out of memory" in str(error).lower():
                raise fail(OUT_OF_MEMORY, "Out of memory") from None
            raise fail(str(error), "Edit failed") from None
        for message in result.warnings:
            gr.Warning(_escape(message))
        state = {
            "source": image_path,
            "before": result.before,
            "after": result.after,
            "faces": result.faces,
            "summary": result.summary,
        }
        before, after, summary = views(state, show_regions)
        download = gr.DownloadButton(value=result.path, interactive=True)
        return before, after, state, download, summary

    def toggle_regions(state, show_regions, image_path):
        return views(state, show_regions, image_path)

    def new_photo(image_path, show_regions):
        """A new photo: forget the last edit; with the overlay on, show the faces found in the new photo."""
        before, after, note = views(None, show_regions, image_path)
        return before, after, None, gr.DownloadButton(value=None, interactive=False), note

    def target_strength(target: str | None, mode: str | None = None) -> float:
        """The strength slider follows the model's default for the chosen target and mode."""
        return editor.strength_for(target, mode)

    return {
        "views": views,
        "run_edit": run_edit,
        "toggle_regions": toggle_regions,
        "new_photo": new_photo,
        "target_strength": target_strength,
    }


def build_demo(
    pipe=None,
    model: str | None = None,
    examples: Sequence[str] = (),
    output_dir: str | None = None,
):
    """The Gradio ``Blocks`` of the demo for a loaded pipeline (or the model at ``model``, default the bundled one).

    Returns ``(blocks, launch_kwargs)``: pass ``launch_kwargs`` to ``blocks.launch`` (Gradio 6 takes the theme and
    CSS there) together with the server options.
    """
    gr = _import_gradio()
    if pipe is None:
        pipe = load_pipeline(model)
    model_path = model or getattr(pipe, "name_or_path", None)
    editor = ExpressionEditor(pipe, output_dir=output_dir, model_name=model_path)
    handlers = make_handlers(editor, gr)
    examples = list(examples)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as blocks:
        _header(gr, editor, pipe, model_path)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                ui = _input_column(gr, editor, examples)
            with gr.Column(scale=2):
                ui.update(_result_column(gr))
        state = gr.State(None)

        shown = [ui["before"], ui["after"], state, ui["download"], ui["status"]]
        settings = ["photo", "target", "strength", "steps", "seed", "guidance", "regions", "show_regions", "mode"]
        ui["run"].click(
            handlers["run_edit"],
            inputs=[ui[name] for name in settings] + ui["unit_sliders"],
            outputs=shown,
            concurrency_limit=1,
        )
        for control in (ui["target"], ui["mode"]):
            control.change(handlers["target_strength"], inputs=[ui["target"], ui["mode"]], outputs=[ui["strength"]])
        ui["show_regions"].change(
            handlers["toggle_regions"],
            inputs=[state, ui["show_regions"], ui["photo"]],
            outputs=[ui["before"], ui["after"], ui["status"]],
        )
        ui["photo"].change(handlers["new_photo"], inputs=[ui["photo"], ui["show_regions"]], outputs=shown)
        from ..video.demo import video_section

        video_section(gr, pipe, editor.output_dir)

    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )  # system fonts: nothing to fetch
    allowed = sorted({str(Path(p).resolve().parent) for p in examples})
    launch_kwargs = {"theme": theme, "css": CSS, "allowed_paths": allowed, "show_error": True}
    blocks.editor = editor  # for tests and embedding
    return blocks, launch_kwargs


def _header(gr, editor: ExpressionEditor, pipe, model_path: str | None) -> None:
    """The title, what the demo does, the model line and the model's notice (if any)."""
    trained = editor.trained_labels
    model_line = (
        f"Model: `{Path(str(model_path)).name if model_path else 'custom'}` "
        f"({'edits luminance, keeps the colours' if pipe.color_mode == 'luminance' else 'edits RGB'}; trained on "
        f"{', '.join(trained)}; guidance {'available' if editor.supports_guidance else 'not available'})."
    )
    gr.Markdown(
        f"# {TITLE}\n"
        "Each face's own brows, eyelids, lips and jaw are moved along the facial action units of the chosen "
        "expression (a smooth warp of its own pixels); every pixel outside the face's edited area stays as it "
        "was. " + model_line
    )
    notice = model_notice(model_path)
    if notice:
        gr.Markdown(notice, elem_classes=["led-notice"], elem_id="led-notice")


def _input_column(gr, editor: ExpressionEditor, examples: list[str]) -> dict[str, Any]:
    """The left column: the photo, the target and its strength, the action units, the settings and the button."""
    strength_info = (
        "Geometry modes: how far the face moves toward the expression's action units (1 = a full expression). "
        f"Diffusion mode: how far the eyes and mouth are noised before being re-generated: t_i = strength x "
        f"{editor.num_train_timesteps} (0.5 = the paper's t_250)."
    )
    ui: dict[str, Any] = {}
    ui["photo"] = _photo_input(
        gr,
        label="Photo",
        type="filepath",
        image_mode=None,
        sources=["upload", "clipboard"],
        elem_id="led-photo",
        height=320,
    )
    if examples:
        gr.Examples(examples=[[path] for path in examples], inputs=[ui["photo"]], label="Example photo")
    ui["target"] = gr.Dropdown(
        choices=editor.target_choices(),
        value=editor.default_target(),
        label="Target expression",
        allow_custom_value=True,
        elem_id="led-target",
        info="Also accepts aliases such as joy, anger, surprise, contempt.",
    )
    ui["strength"] = gr.Slider(
        0.0,
        1.0,
        value=editor.strength_for(editor.default_target()),
        step=0.05,
        label="Strength",
        info=strength_info,
        elem_id="led-strength",
    )
    with gr.Accordion("Action units", open=False):
        gr.Markdown("Move single facial action units, alone or on top of the target (geometry modes).")
        ui["unit_sliders"] = [
            gr.Slider(-1.0, 1.0, value=0.0, step=0.1, label=f"{name} {description}", elem_id=f"led-{name}")
            for name, description in DEMO_ACTION_UNITS
        ]
    with gr.Accordion("More settings", open=False):
        ui.update(_more_settings(gr, editor))
    ui["show_regions"] = gr.Checkbox(value=False, label="Show detected faces and regions", elem_id="led-show-regions")
    ui["run"] = gr.Button("Change expression", variant="primary", elem_id="led-run")
    return ui


def _more_settings(gr, editor: ExpressionEditor) -> dict[str, Any]:
    """The "More settings" accordion: mode, steps, seed, guidance and regions."""
    return {
        "mode": gr.Radio(
            choices=list(EDIT_MODES),
            value=editor.default_mode,
            label="Mode",
            info="geometry: warp the face's own features (all expressions); +texture: the model re-draws "
            "opened mouths; diffusion: the paper's method (trained expressions only).",
            elem_id="led-mode",
        ),
        "steps": gr.Slider(
            1,
            100,
            value=editor.default_steps,
            step=1,
            label="Steps (of the full schedule)",
            info="Only the steps below t_i run, about steps x strength.",
            elem_id="led-steps",
        ),
        "seed": gr.Number(value=0, precision=0, label="Seed", elem_id="led-seed"),
        "guidance": gr.Slider(
            1.0,
            10.0,
            value=editor.default_guidance_scale,
            step=0.5,
            label="Guidance scale",
            info="Classifier-free guidance toward the target; 1 = off.",
            visible=editor.supports_guidance,
            elem_id="led-guidance",
        ),
        "regions": gr.CheckboxGroup(
            choices=editor.regions, value=editor.regions, label="Regions", elem_id="led-regions"
        ),
    }


def _result_column(gr) -> dict[str, Any]:
    """The right column: the photo before and after, the download button and the status line."""
    ui = {}
    with gr.Row():
        ui["before"] = gr.Image(
            label="Before", type="numpy", interactive=False, elem_id="led-before", buttons=["fullscreen"], format="png"
        )
        ui["after"] = gr.Image(
            label="After", type="pil", interactive=False, elem_id="led-after", buttons=["fullscreen"], format="png"
        )
    ui["download"] = gr.DownloadButton("Download result (PNG)", value=None, interactive=False, elem_id="led-download")
    ui["status"] = gr.Markdown("", elem_id="led-status")
    return ui


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def load_pipeline(
    model: str | None = None,
    variant: str | None = None,
    device: str = "auto",
    face_detector=None,
    dtype: str = "auto",
):
    """Load the pipeline for the demo (``model``: folder or Hub id; default ``$LED_MODEL`` or the bundled model) on
    ``device`` in ``dtype`` (see :mod:`diffusers_led.devices`)."""
    from ..devices import load_pipeline_on

    model = resolve_model(model, use_env=True)
    kwargs = {"variant": variant} if variant else {}
    pipe = load_pipeline_on(model, device, dtype, **kwargs)
    if face_detector:
        pipe.set_face_detector(face_detector)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="led-demo",
        description="A local web page to change the facial expression in a photo (Gradio). Nothing leaves this "
        "machine: the server listens on 127.0.0.1 unless --host is given, and no public link is made without --share.",
    )
    add = parser.add_argument
    add("--model", default=None, help=f"Model folder or Hub id (default: ${MODEL_ENV_VAR} or the bundled model).")
    add("--variant", default=None, help='Weights variant, e.g. "non_ema" for the raw training weights.')
    add(
        "--host",
        default=DEFAULT_HOST,
        help=f"Address to listen on (default {DEFAULT_HOST}; 0.0.0.0 = every interface).",
    )
    add("--port", type=int, default=DEFAULT_PORT, help=f"Port (default {DEFAULT_PORT}).")
    add(
        "--share",
        action="store_true",
        help="Also open a public gradio.live link (needs the internet). Off by default.",
    )
    add_device_arguments(parser)
    add("--face-detector", default=None, help='Face detector: "dlib" or "yunet:/path/to/face_detection_yunet.onnx".')
    add(
        "--example",
        action="append",
        default=[],
        help="An extra example photo offered under the upload box (repeatable).",
    )
    add("--output-dir", default=None, help="Where edited PNGs are kept (default: a temporary folder).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``led-demo``."""
    args = build_parser().parse_args(argv)
    return report_errors("led-demo", lambda: _serve(args), errors=(ImportError, OSError, ValueError))


def _serve(args: argparse.Namespace) -> int:
    _import_gradio()  # fail before loading the model when Gradio is missing
    pipe = load_pipeline(args.model, args.variant, args.device, args.face_detector, args.dtype)
    examples = find_examples(args.example)
    model = resolve_model(args.model, use_env=True)
    blocks, launch_kwargs = build_demo(pipe, model=model, examples=examples, output_dir=args.output_dir)
    print(f"led-demo: model {model}; open http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    blocks.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        inbrowser=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        **launch_kwargs,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
