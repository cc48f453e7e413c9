"""The expression vocabulary: the eight labels of the paper and their aliases, and the names of the edit modes (no
torch, so the command line can check them before loading anything)."""

from __future__ import annotations

EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
"""The eight RaFD expression labels used by the paper, in its order."""

EDIT_MODES = ("geometry", "geometry+texture", "diffusion")
"""How a pipeline call edits: the action-unit warp alone, the warp with the UNet re-generating opened mouths, or the
paper's label-conditioned SDEdit of the regions."""

EXPRESSION_ALIASES: dict[str, str] = {
    "anger": "angry",
    "mad": "angry",
    "contempt": "contemptuous",
    "disgust": "disgusted",
    "fear": "fearful",
    "afraid": "fearful",
    "scared": "fearful",
    "joy": "happy",
    "joyful": "happy",
    "happiness": "happy",
    "smile": "happy",
    "smiling": "happy",
    "calm": "neutral",
    "none": "neutral",
    "sadness": "sad",
    "unhappy": "sad",
    "surprise": "surprised",
}


def canonical_expression(name: str) -> str:
    """Map a label or an alias (case-insensitive) to one of :data:`EXPRESSIONS`.

    Raises:
        ValueError: if ``name`` is not a known expression; the message lists the known ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"An expression must be a string, got {type(name).__name__}: {name!r}.")
    key = name.strip().lower()
    if key in EXPRESSIONS:
        return key
    if key in EXPRESSION_ALIASES:
        return EXPRESSION_ALIASES[key]
    raise ValueError(
        f"Unknown expression {name!r}. Known expressions: {', '.join(EXPRESSIONS)} "
        f"(aliases: {', '.join(sorted(EXPRESSION_ALIASES))})."
    )
