"""``python -m diffusers_led.demo``: the same as ``led-demo``."""

import sys

from .app import main

sys.exit(main())
