"""Regenerate docs/images/demo.png: led-demo with a model (default: the bundled one) after one edit of the example.

    python docs/images/make_demo_screenshot.py [--model path/or/hub-id] [--target surprised] [--strength 0.7]

Needs the `demo` extra (Gradio), the `playwright` pip package and a Chromium (Debian: apt-get install -y chromium;
set LED_CHROMIUM to use another binary). Nothing is fetched from the network.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def model_strength(model, target: str) -> float:
    """The strength the demo's slider moves to for `target`: the model's default for it."""
    from diffusers_led import LocalExpressionPipeline
    from diffusers_led.pretrained import resolve_model

    return LocalExpressionPipeline.from_pretrained(resolve_model(model)).default_strength_for(target)


def main():
    from diffusers_led.commands import ArgumentParser

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--target", default="surprised")
    parser.add_argument("--strength", type=float, default=None, help="Default: the model's (the slider's start).")
    parser.add_argument("-o", "--output", default=str(HERE / "demo.png"))
    args = parser.parse_args()
    chromium = os.environ.get("LED_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("No Chromium found: apt-get install -y chromium, or set LED_CHROMIUM.")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "diffusers_led.demo", "--port", str(port)]
    command += ["--model", args.model] if args.model else []
    server = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=chromium,
                headless=True,
                viewport={"width": 1280, "height": 900},
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-proxy-server"],
            )
            page = context.new_page()
            page.set_default_timeout(300_000)
            page.goto(url)
            page.locator("#led-photo input[type=file]").set_input_files(str(REPO / "examples" / "astronaut.png"))
            expect(page.locator("#led-photo img")).to_be_visible()
            target = page.locator("#led-target input")
            target.click()
            target.fill(args.target)
            target.press("Enter")
            strength = page.locator("#led-strength input[type=number]")
            if args.strength is not None:
                strength.fill(str(args.strength))
                strength.press("Enter")
            else:  # the slider follows the target: let it arrive before clicking, or the edit runs at the old value
                expect(strength).to_have_value(f"{model_strength(args.model, args.target):g}")
            page.click("#led-run")
            expect(page.locator("#led-status")).to_contain_text("Edited", timeout=600_000)
            page.wait_for_timeout(500)
            page.screenshot(path=args.output, full_page=True)
            context.close()
        print(f"wrote {args.output}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
