"""Change the facial expression in one photo: the three-line API.

    python examples/edit_one.py                                   # the bundled photo -> astronaut_happy.png
    python examples/edit_one.py me.jpg --target surprise --strength 0.6 -o me_surprised.png
    python examples/edit_one.py --model path/or/hub-id            # another model (or set LED_MODEL)

The three lines that matter are marked below; the rest is argument parsing.
"""

from pathlib import Path

from PIL import Image

from diffusers_led import LocalExpressionPipeline
from diffusers_led.commands import ArgumentParser
from diffusers_led.pretrained import resolve_model

HERE = Path(__file__).resolve().parent

parser = ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument(
    "image", nargs="?", default=str(HERE / "astronaut.png"), help="The photo (default: the bundled one)."
)
parser.add_argument("--target", default="happy", help="Target expression: happy, sad, surprise, contempt, ...")
parser.add_argument(
    "--strength", type=float, default=0.5, help="0..1; the regions are noised to t_i = 500 x strength."
)
parser.add_argument("--model", default=resolve_model(use_env=True), help="Model folder or Hub id.")
parser.add_argument("-o", "--output", default=None, help="Output file (default: <photo>_<target>.png here).")
args = parser.parse_args()
output = args.output or f"{Path(args.image).stem}_{args.target}.png"

# --- the three lines --------------------------------------------------------------------------------
pipe = LocalExpressionPipeline.from_pretrained(args.model)
result = pipe(Image.open(args.image), target=args.target, strength=args.strength)
result.images[0].save(output)
# ----------------------------------------------------------------------------------------------------

print(f"{args.image} -> {output} ({len(result.faces[0])} face(s) edited toward {args.target!r})")
