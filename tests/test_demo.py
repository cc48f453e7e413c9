"""Tests of the led-demo Gradio app: the edit logic without Gradio, the event handlers' error messages, and one real
session in a headless Chromium (the page loads with no request leaving 127.0.0.1, a photo is uploaded and edited,
the before / after images and the overlay show, the result downloads, a photo without a face gives a message).

The browser test needs Debian's ``chromium`` (``apt-get install -y chromium``) and the ``playwright`` and ``gradio``
pip packages; it never runs ``playwright install``. Without them it is skipped, except under CI (``CI=true``), where
it fails. Its screenshots go to ``$LED_TEST_ARTIFACTS`` (default: pytest's tmp folder) and the path is printed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE_IMAGE, REPO, make_tiny_pipeline
from PIL import Image

from diffusers_led import ImageLoadError, NoFaceDetectedError
from diffusers_led.demo.app import build_parser, find_examples, model_notice
from diffusers_led.demo.editor import DemoInputError, ExpressionEditor, count_denoising_steps
from diffusers_led.pretrained import default_model_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY_STEPS = 4  # default_num_inference_steps of the tiny test model: strength 0.5 runs 2 UNet calls


@pytest.fixture(scope="module")
def editor(tmp_path_factory) -> ExpressionEditor:
    pipe = make_tiny_pipeline(conditioning_dropout_prob=0.1, default_num_inference_steps=TINY_STEPS)
    return ExpressionEditor(pipe, output_dir=str(tmp_path_factory.mktemp("demo-out")), model_name="tiny")


@pytest.fixture(scope="module")
def faceless_png(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("faceless") / "wall.png"
    y, x = np.mgrid[0:160, 0:200]
    Image.fromarray(((x + y) % 256).astype(np.uint8)).convert("RGB").save(path)
    return str(path)


@pytest.fixture(scope="module")
def not_an_image(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("bad") / "holiday.png"
    path.write_text("this is not a PNG")
    return str(path)


# ---------------------------------------------------------------------------------------------------------------------
# The edit logic (no Gradio)
# ---------------------------------------------------------------------------------------------------------------------


def test_editor_edits_saves_and_reports_progress(editor):
    calls = []
    result = editor.edit(str(EXAMPLE_IMAGE), "joy", strength=0.5, seed=3, progress=lambda *a: calls.append(a))
    source = np.asarray(Image.open(EXAMPLE_IMAGE).convert("RGB"))
    after = np.asarray(result.after.convert("RGB"))
    assert after.shape == source.shape and np.array_equal(result.before, source)
    changed = np.any(after != source, axis=-1)
    assert changed.any() and not changed[:60].any()  # the face changed, the top rows (flag) did not
    assert len(result.faces) == 1 and Path(result.path).name == "astronaut_happy.png"
    assert np.array_equal(np.asarray(Image.open(result.path).convert("RGB")), after)
    # Progress: "Finding faces" at 0, then one call per denoising step, ending at done == total.
    assert calls[0][0] == 0 and "faces" in calls[0][2]
    assert [c[0] for c in calls[1:]] == list(range(1, result.steps + 1)) and calls[-1][0] == calls[-1][1]
    assert result.steps == count_denoising_steps(editor.pipe.scheduler, 250, TINY_STEPS)
    assert "**happy**" in result.summary and "t_i = 250" in result.summary and not result.warnings
    # Deterministic for a seed.
    again = editor.edit(str(EXAMPLE_IMAGE), "happy", strength=0.5, seed=3)
    assert np.array_equal(np.asarray(again.after.convert("RGB")), after)


def test_editor_overlay_and_untrained_target(editor):
    result = editor.edit(str(EXAMPLE_IMAGE), "contempt", strength=0.3, regions=["mouth"])
    assert len(result.warnings) == 1 and "not trained on 'contemptuous'" in result.warnings[0]
    assert "(mouth)" in result.summary
    drawn = editor.overlay(result.before, result.faces)
    assert drawn.shape == result.before.shape and np.any(drawn != result.before)
    rgb, faces = editor.detect(Image.open(EXAMPLE_IMAGE))
    assert len(faces) == 1 and np.array_equal(rgb, result.before)
    assert ("contemptuous (not trained)", "contemptuous") in editor.target_choices()
    assert editor.default_target() == "happy"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"image_path": None}, DemoInputError, "Upload a photo"),
        ({"target": "grumpy"}, DemoInputError, "Unknown expression 'grumpy'.*Known expressions: angry"),
        ({"target": ""}, DemoInputError, "Choose a target"),
        ({"strength": 1.5}, DemoInputError, r"strength` must be a number in \[0, 1\]"),
        ({"regions": []}, DemoInputError, "at least one region"),
        ({"image_path": "not_an_image"}, ImageLoadError, r"holiday\.png: not a"),
        ({"image_path": "faceless_png"}, NoFaceDetectedError, "No face detected"),
    ],
)
def test_editor_errors(editor, request, kwargs, error, match):
    arguments = {"image_path": str(EXAMPLE_IMAGE), "target": "happy", **kwargs}
    if arguments["image_path"] in ("not_an_image", "faceless_png"):
        arguments["image_path"] = request.getfixturevalue(arguments["image_path"])
    with pytest.raises(error, match=match):
        editor.edit(**arguments)


def test_guidance_needs_a_model_trained_with_label_dropout(tmp_path):
    plain = ExpressionEditor(make_tiny_pipeline(default_num_inference_steps=TINY_STEPS), output_dir=str(tmp_path))
    assert not plain.supports_guidance
    with pytest.raises(DemoInputError, match="no guidance"):
        plain.edit(str(EXAMPLE_IMAGE), "happy", guidance_scale=3.0)


def test_summary_names_the_guidance_and_what_it_pushes_away_from(tmp_path):
    pipe = make_tiny_pipeline(
        conditioning_dropout_prob=0.1,
        default_num_inference_steps=TINY_STEPS,
        default_guidance_scale=2.0,
        default_negative_target="neutral",
    )
    result = ExpressionEditor(pipe, output_dir=str(tmp_path)).edit(str(EXAMPLE_IMAGE), "happy")
    assert ", guidance 2 away from neutral," in result.summary
    unguided = ExpressionEditor(pipe, output_dir=str(tmp_path)).edit(str(EXAMPLE_IMAGE), "happy", guidance_scale=1.0)
    assert "guidance" not in unguided.summary


def test_the_strength_follows_the_models_default_for_the_target(tmp_path):
    pipe = make_tiny_pipeline(
        default_num_inference_steps=TINY_STEPS, default_strength=0.5, target_strengths={"happy": 0.75}
    )
    editor = ExpressionEditor(pipe, output_dir=str(tmp_path))
    assert (editor.strength_for("joy"), editor.strength_for("angry"), editor.strength_for("grumpy")) == (
        0.75,
        0.5,
        0.5,
    )
    assert "at strength 0.75 (t_i = 375)" in editor.edit(str(EXAMPLE_IMAGE), "happy").summary
    assert "at strength 0.50 (t_i = 250)" in editor.edit(str(EXAMPLE_IMAGE), "angry").summary
    gr = pytest.importorskip("gradio")
    from diffusers_led.demo.app import make_handlers

    assert make_handlers(editor, gr)["target_strength"]("happy") == 0.75  # the slider moves with the target


@pytest.mark.parametrize("scheduler_name", ["DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler"])
def test_count_denoising_steps_matches_the_pipeline(scheduler_name):
    import diffusers
    import torch

    pipe = make_tiny_pipeline()
    pipe.scheduler = getattr(diffusers, scheduler_name).from_config(pipe.scheduler.config)
    for steps, start in ((20, 250), (7, 100), (50, 499)):
        expected = count_denoising_steps(pipe.scheduler, start, steps)
        assert len(pipe.get_timesteps(start, steps, torch.device("cpu"))) == expected, (steps, start)


def test_model_notice_and_examples(tmp_path):
    assert model_notice(default_model_path()) is None  # the bundled model is trained: no notice
    make_tiny_pipeline().save_pretrained(tmp_path / "model")
    assert model_notice(str(tmp_path / "model")) is None and model_notice("some-org/led-rafd") is None
    (tmp_path / "model" / "README.md").write_text("---\ntags: [diffusers-led, placeholder]\n---\n# random\n")
    assert "placeholder" in model_notice(str(tmp_path / "model"))
    assert find_examples() == [str(EXAMPLE_IMAGE)]
    with pytest.raises(FileNotFoundError, match="no such file"):
        find_examples([str(tmp_path / "missing.png")])


def test_cli_defaults_are_private():
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.share, args.model) == ("127.0.0.1", 7860, False, None)


def test_core_package_does_not_need_gradio():
    """`import diffusers_led` (and its CLI, and even `diffusers_led.demo`) works with Gradio unimportable."""
    code = (
        "import sys; sys.modules['gradio'] = None; "
        "import diffusers_led, diffusers_led.cli, diffusers_led.demo; print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------------------
# The Gradio handlers: errors become messages in the page
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handlers(editor):
    gr = pytest.importorskip("gradio")
    from diffusers_led.demo.app import make_handlers

    return gr, make_handlers(editor, gr)


def _run(handlers, image_path, target="happy", regions=("eyes", "mouth"), show=False):
    gr, functions = handlers
    return functions["run_edit"](
        image_path, target, 0.5, TINY_STEPS, 0, 1.0, list(regions), show, progress=lambda *a, **k: None
    )


@pytest.mark.parametrize(
    "case, title, text",
    [
        ("faceless", "No face found", "No face found in this photo"),
        ("bad_file", "Bad file", "holiday.png: not a"),
        ("unknown", "Cannot edit", "Unknown expression &#x27;grumpy&#x27;"),
        ("nothing", "Cannot edit", "Upload a photo first"),
    ],
)
def test_handler_errors_are_messages(handlers, faceless_png, not_an_image, case, title, text):
    gr, _ = handlers
    path = {"faceless": faceless_png, "bad_file": not_an_image, "unknown": str(EXAMPLE_IMAGE), "nothing": None}[case]
    with pytest.raises(gr.Error) as caught:
        _run(handlers, path, target="grumpy" if case == "unknown" else "happy")
    assert caught.value.title == title and text.replace("&#x27;", "'") in html_unescape(caught.value.message)
    assert "Traceback" not in caught.value.message and (case != "bad_file" or not_an_image not in caught.value.message)


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_handler_outputs_and_overlay_toggle(handlers):
    gr, functions = handlers
    before, after, state, download, status = _run(handlers, str(EXAMPLE_IMAGE))
    assert isinstance(before, np.ndarray) and after.size == Image.open(EXAMPLE_IMAGE).size
    saved = download.value["path"] if isinstance(download.value, dict) else download.value  # Gradio 6 wraps it
    assert Path(saved).is_file() and download.interactive and status.startswith("Edited 1 face")
    *with_regions, same_status = functions["toggle_regions"](state, True, str(EXAMPLE_IMAGE))
    assert all(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(with_regions, (before, after.convert("RGB"))))
    assert same_status == status and functions["toggle_regions"](state, False, str(EXAMPLE_IMAGE))[0] is before
    # A new photo with the overlay on: the detected faces are drawn before any edit, the old result is dropped.
    shown_before, shown_after, new_state, new_download, new_status = functions["new_photo"](str(EXAMPLE_IMAGE), True)
    assert shown_before.shape == before.shape and shown_after is None and new_state is None
    assert new_status == "1 face found." and not new_download.interactive


def test_build_demo_leaves_the_package_alone_and_tolerates_bad_uploads(handlers, editor, not_an_image, tmp_path):
    from gradio.data_classes import ImageData

    import diffusers_led
    from diffusers_led.demo.app import build_demo

    package = Path(diffusers_led.__file__).parent
    stubs = set(package.rglob("*.pyi"))
    blocks, launch_kwargs = build_demo(editor.pipe, model="tiny", examples=find_examples(), output_dir=str(tmp_path))
    assert set(package.rglob("*.pyi")) == stubs  # Gradio writes .pyi stubs next to component subclasses: none here
    assert blocks.analytics_enabled is False and launch_kwargs["allowed_paths"] == [str(EXAMPLE_IMAGE.parent)]
    assert launch_kwargs["theme"]._stylesheets == []  # system fonts: no font files or CDN stylesheets to fetch
    photo = next(block for block in blocks.blocks.values() if getattr(block, "elem_id", None) == "led-photo")
    # A file that is not an image reaches the editor (which explains) instead of failing in Gradio's preprocessing.
    assert photo.preprocess(ImageData(path=not_an_image, orig_name="holiday.png")) == not_an_image
    assert photo.preprocess(ImageData(path=str(EXAMPLE_IMAGE), orig_name="astronaut.png")) == str(EXAMPLE_IMAGE)


# ---------------------------------------------------------------------------------------------------------------------
# The real thing: `python -m diffusers_led.demo` driven by headless Chromium
# ---------------------------------------------------------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",  # talk to 127.0.0.1 directly even if the environment names a proxy
]

# Loaded into the demo server through PYTHONPATH: refuses and records every connection to a non-loopback address,
# so the test proves the server makes no network call (analytics, version check, fonts, share link).
NETWORK_GUARD = textwrap.dedent(
    """
    import ipaddress, os, socket

    _LOG = os.environ["LED_NETWORK_GUARD_LOG"]
    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

    def _outside(address):
        if not isinstance(address, tuple):
            return False  # Unix sockets
        host = address[0]
        try:
            return not ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return host != "localhost"

    def _guard(original):
        def connect(self, address):
            if _outside(address):
                with open(_LOG, "a") as log:
                    log.write(f"{address}\\n")
                raise OSError(101, "network blocked by the led-demo test")
            return original(self, address)
        return connect

    socket.socket.connect, socket.socket.connect_ex = _guard(_connect), _guard(_connect_ex)
    """
)


def _chromium() -> str | None:
    candidates = [
        os.environ.get("LED_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def _browser_or_skip():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright pip package")
    try:
        import gradio  # noqa: F401
    except ImportError:
        missing.append("the gradio pip package")
    chromium = _chromium()
    if chromium is None:
        missing.append("Chromium (apt-get install -y chromium)")
    if missing:
        message = "browser test needs " + ", ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI must install them)")
        pytest.skip(message)
    return chromium


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`python -m diffusers_led.demo --model <tiny> --port <free>` behind the network guard."""
    _browser_or_skip()
    root = tmp_path_factory.mktemp("demo-server")
    make_tiny_pipeline(conditioning_dropout_prob=0.1, default_num_inference_steps=TINY_STEPS).save_pretrained(
        root / "tiny"
    )
    (root / "guard").mkdir()
    (root / "guard" / "sitecustomize.py").write_text(NETWORK_GUARD)
    guard_log = root / "network.log"
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "guard"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "LED_NETWORK_GUARD_LOG": str(guard_log),
        "OMP_NUM_THREADS": "1",  # tiny UNet: one thread is faster than two fighting over a busy CPU
        "GRADIO_TEMP_DIR": str(root / "gradio-tmp"),
        "NO_PROXY": "127.0.0.1,localhost",  # Gradio checks its own server with httpx at startup
        "no_proxy": "127.0.0.1,localhost",
    }
    env.pop("GRADIO_ANALYTICS_ENABLED", None)  # led-demo must turn analytics off by itself
    command = [
        sys.executable,
        "-m",
        "diffusers_led.demo",
        "--model",
        str(root / "tiny"),
        "--port",
        str(port),
        "--output-dir",
        str(root / "out"),
    ]
    log = open(root / "server.log", "w+")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(root))
    url = f"http://127.0.0.1:{port}/"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for 127.0.0.1
    deadline = time.monotonic() + 90
    try:
        while True:
            if server.poll() is not None:
                log.seek(0)
                pytest.fail(f"led-demo exited with {server.returncode}:\n{log.read()[-3000:]}")
            try:
                with direct.open(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"led-demo did not answer on {url} within 90 s:\n{log.read()[-3000:]}")
            time.sleep(0.3)
        yield {"url": url, "port": port, "network_log": guard_log, "server_log": root / "server.log", "root": root}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_demo_in_a_real_browser(demo_server, tmp_path, faceless_png, capsys):
    from playwright.sync_api import expect, sync_playwright

    chromium = _browser_or_skip()
    expect.set_options(timeout=30_000)  # a busy CI machine: page updates may take more than Playwright's 5 s
    artifacts = Path(os.environ.get("LED_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    url, started = demo_server["url"], time.monotonic()
    requests = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            accept_downloads=True,
        )
        try:
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.set_default_timeout(45_000)

            # 1. The page loads.
            page.goto(url)
            expect(page.locator("#led-run")).to_be_visible()
            expect(page.get_by_text("change a facial expression").first).to_be_visible()

            # 2. Upload the example photo, pick a target by alias, edit.
            page.locator("#led-photo input[type=file]").set_input_files(str(EXAMPLE_IMAGE))
            expect(page.locator("#led-photo img")).to_be_visible()
            target = page.locator("#led-target input")
            target.click()
            target.fill("surprise")
            target.press("Enter")
            page.click("#led-run")
            expect(page.locator("#led-status")).to_contain_text("Edited 1 face", timeout=60_000)
            expect(page.locator("#led-status")).to_contain_text("surprised")
            expect(page.locator("#led-after img")).to_be_visible()
            expect(page.locator("#led-before img")).to_be_visible()
            shot = artifacts / "led_demo_before_after.png"
            page.screenshot(path=str(shot), full_page=True)

            # 3. The result downloads, is the photo's size, and differs from it only around the face.
            with page.expect_download() as download_info:
                page.click("#led-download")
            download = download_info.value
            assert download.suggested_filename == "astronaut_surprised.png"
            download.save_as(tmp_path / "downloaded.png")
            source = np.asarray(Image.open(EXAMPLE_IMAGE).convert("RGB"))
            edited = np.asarray(Image.open(tmp_path / "downloaded.png").convert("RGB"))
            assert edited.shape == source.shape
            changed = np.any(edited != source, axis=-1)
            assert changed.sum() > 500 and not changed[:60].any() and not changed[300:].any()

            # 4. The overlay of faces and regions toggles on the displayed images.
            plain_src = page.locator("#led-before img").get_attribute("src")
            page.locator("#led-show-regions input").check()
            expect(page.locator("#led-before img")).not_to_have_attribute("src", plain_src)
            shot_regions = artifacts / "led_demo_regions.png"
            page.screenshot(path=str(shot_regions), full_page=True)

            # 5. A photo without a face: a message in the page, no traceback.
            page.locator("#led-photo input[type=file]").set_input_files(faceless_png)
            expect(page.locator("#led-status")).to_have_text("No face found in this photo.")  # overlay still on
            page.click("#led-run")
            toast = page.locator(".toast-body.error")
            expect(toast).to_contain_text("No face found in this photo")
            assert "Traceback" not in page.content()
            page.wait_for_timeout(800)  # let the message box finish sliding in before the screenshot
            page.screenshot(path=str(artifacts / "led_demo_no_face.png"), full_page=True)
        finally:
            context.close()
    elapsed = time.monotonic() - started

    # 6. Nothing left 127.0.0.1: not the page's requests, not the server's own connections.
    hosts = {request.split("/")[2] for request in requests if "://" in request and not request.startswith("data:")}
    assert hosts == {f"127.0.0.1:{demo_server['port']}"}, hosts
    network_log = demo_server["network_log"]
    assert not network_log.exists() or not network_log.read_text(), network_log.read_text()
    assert "Traceback" not in demo_server["server_log"].read_text()
    with capsys.disabled():
        print(f"\nled-demo browser session: {elapsed:.1f} s; screenshots: {shot} {shot_regions}")
    assert Image.open(shot).size[0] >= 1000


def test_geometry_mode_and_action_unit_sliders(tmp_path):
    pipe = make_tiny_pipeline(default_num_inference_steps=TINY_STEPS, default_mode="geometry", geometry_strength=0.7)
    editor = ExpressionEditor(pipe, output_dir=str(tmp_path))
    assert editor.strength_for("happy") == 0.7 and editor.strength_for("happy", "diffusion") == 0.5
    result = editor.edit(str(EXAMPLE_IMAGE), "contempt", action_units={"AU2": 0.5, "AU12": 0.0})
    assert "toward **contemptuous** at strength 0.70 + AU2 +0.50" in result.summary and not result.warnings
    assert result.steps == 0 and result.faces[0].warp is not None
    with pytest.raises(DemoInputError, match="need a geometry mode"):
        editor.edit(str(EXAMPLE_IMAGE), "happy", mode="diffusion", action_units={"AU12": 1.0})
    gr = pytest.importorskip("gradio")
    from diffusers_led.demo.app import DEMO_ACTION_UNITS, make_handlers

    functions = make_handlers(editor, gr)
    sliders = [1.0 if name == "AU26" else 0.0 for name, _ in DEMO_ACTION_UNITS]
    before, after, state, _, summary = functions["run_edit"](
        str(EXAMPLE_IMAGE),
        "neutral",
        0.0,
        TINY_STEPS,
        0,
        1.0,
        ["eyes", "mouth"],
        False,
        "geometry",
        *sliders,
        progress=lambda *a, **k: None,
    )
    assert "AU26 +1.00" in summary and not np.array_equal(np.asarray(after.convert("RGB")), before)
    assert functions["target_strength"]("happy", "geometry") == 0.7
