"""The report's contact sheets: every edited face, unedited and at every strength, one sheet per target."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .files import ReportFiles


def _label(draw: Any, xy: tuple[int, int], text: str, width: int) -> None:
    draw.text(xy, text[: max(4, width // 6)], fill=(0, 0, 0))


def write_contact_sheets(
    written: ReportFiles, report: dict[str, Any], thumbs: dict, input_thumbs: list[np.ndarray], names: list[str]
) -> dict[str, Any]:
    """Per target, ``contact_<target>.png``: one row per edited face (its unedited crop first), one column per
    (mode, strength) of every mode that kept every face's edit (the DDPM modes keep only a sample), so that the modes
    can be compared face by face. Returns ``{"modes", "files"}``."""
    from PIL import Image, ImageDraw

    results = report["results"]
    modes = list(dict.fromkeys(e["mode"] for e in results))
    if not results or not input_thumbs:
        return {}
    last_face = len(input_thumbs) - 1
    kept = [m for m in modes if any(key[0] == m and key[2] == last_face for key in thumbs)]
    columns_of = sorted(
        ((e["mode"], e["strength"]) for e in results if e["mode"] in kept), key=lambda c: (kept.index(c[0]), c[1])
    )
    size, head, side = input_thumbs[0].shape[0], 14, 110
    files = {}
    for target in report["settings"]["targets"]:
        columns = 1 + len(columns_of)
        sheet = Image.new("RGB", (side + columns * size, head + len(input_thumbs) * size), "white")
        draw = ImageDraw.Draw(sheet)
        _label(draw, (side + 2, 1), "unedited", size)
        for c, (mode, strength) in enumerate(columns_of, start=1):
            title = f"{mode} s={strength:g}" if len(kept) > 1 else f"{target} s={strength:g}"
            _label(draw, (side + c * size + 2, 1), title, size)
        for r, (name, unedited) in enumerate(zip(names, input_thumbs)):
            y = head + r * size
            _label(draw, (2, y + size // 2 - 5), os.path.basename(name), side)
            sheet.paste(Image.fromarray(unedited), (side, y))
            for c, (mode, strength) in enumerate(columns_of, start=1):
                edited = thumbs.get((mode, strength, r, target))
                if edited is not None:
                    sheet.paste(Image.fromarray(edited), (side + c * size, y))
        name = f"contact_{target}.png"
        written.write(name, lambda stream, sheet=sheet: sheet.save(stream, format="PNG"))
        files[target] = name
    return {"modes": kept, "files": files}
