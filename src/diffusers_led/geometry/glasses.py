"""Glasses stay where they are: a frame sits on the nose, so when an edit raises or lowers the brows and lids, its
rims, bridge and temples do not move with the skin behind them.

Finding the frame (:func:`find_glasses`): a rim is a thin line, darker or brighter than both of its sides, that runs
all the way around an eye at some distance from it (the bare skin there has a brow above, but a smooth cheek below
and beside the eye: wrinkles and crow's feet do not close a loop, and make no line as contrasty as a frame). Around
each eye the photo is unrolled into polar coordinates (angle x distance from the eye's centre, in the face's own
scale), each sample's line contrast is measured across the radius (the least step up to either side at up to
:data:`MAX_HALF_WIDTH`, so edges, which are darker on one side only, give nothing), and the closed, smooth path of
greatest contrast around the eye is found by dynamic programming. The frame is there when that loop's contrast stays
high nearly all the way round (its :data:`LOOP_PERCENTILE` th percentile at least :data:`MIN_LOOP_CONTRAST` grey
levels). Its pixels are then the loop and the thin-line pixels joined to it (at least :data:`GROW_SHARE` of its
median contrast), which takes in the parts the loop passed by (a rim's corner, the bridge, the nose pads, the
temples), outside the lenses (where the lids and their creases are) and the eyes.

Keeping it still (:func:`keep_frame`): the photo's own frame pixels are laid back over the edit through a soft mask
a pixel wider than the frame, and so is the photo's skin where the edit drew the moved frame (the frame's mask
carried by the warp's field): the skin the edit would show there lay behind the frame in the photo. Inpainted
instead, that place was a smooth blotch several pixels wide along a raised temple. Torch-free: numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .eyes import EYES

if TYPE_CHECKING:
    from .warp import FaceWarp

__all__ = ["GlassesFrame", "find_glasses", "keep_frame"]

#: Face Mesh V2 eye corners (outer, inner) of each eye, "right" being the person's right: the ends of its upper lid.
EYE_CORNERS = {eye: (lids["upper"][0], lids["upper"][-1]) for eye, lids in EYES.items()}
#: The band searched for a rim around each eye, from and to this distance from its centre in inter-ocular distances
#: (3-D, so a turned head's far eye is searched as far): a lens reaches 0.25-0.55 from the eye's centre; nearer
#: than 0.2 the loop followed the lid's crease (Walter's, breakingbad.jpg) instead of the rim above it.
RIM_NEAREST, RIM_FARTHEST = 0.2, 0.7
#: Angles the loop is sampled at, and how many radius samples it may move from one angle to the next (a square
#: rim's corner turns fast).
LOOP_ANGLES = 120
MAX_RADIUS_STEP = 3
#: The loop's cost per radius sample it moves between angles (grey levels): keeps it smooth among equal lines.
RADIUS_STEP_COST = 0.5
#: The eye itself (its lid margins, lashes and their shadow) is no rim: its outline grown by this many inter-ocular
#: distances is left out of the search.
EYE_MARGIN = 0.06
#: A line's half-width is at most this many inter-ocular distances (a thick plastic frame: 3-4 mm of 63).
MAX_HALF_WIDTH = 0.05
#: A rim is found when this percentile of the loop's line contrast (grey levels) reaches this: on the 30 bare faces
#: of the tune and fresh photos and 58 CK+ calibration frames the 10th percentile of the best loop is at most 4.3
#: (wrinkled, heavily made-up, blurred and grey lab faces); Walter's metal rim (breakingbad.jpg) is at 29.
LOOP_PERCENTILE = 10
MIN_LOOP_CONTRAST = 12.0
#: In a clip, a face seen wearing glasses keeps them: its frame is sought at this least contrast on later frames, so
#: that a rim near :data:`MIN_LOOP_CONTRAST` is not kept on some frames and left to move on others (a flicker); still
#: above every bare face's best loop (4.3). Walter's rim (breakingbad.jpg made into a 360 px talking clip) read 15-22.
SEEN_LOOP_CONTRAST = 6.0
#: The frame's pixels: the loop, and the thin-line pixels of at least this share of its median contrast joined to
#: it (at 0.35 Walter's forehead wrinkles and the lids' creases joined it too).
GROW_SHARE = 0.5
#: The lens's inside (the loop shrunk by this many inter-ocular distances) holds the eye, its lids and creases:
#: no frame there.
LENS_INSET = 0.04
#: The frame's pixels are searched within this many inter-ocular distances of the eyes and brows (the warp moves
#: nothing much farther out).
FRAME_REACH = 0.8
#: The kept frame's mask reaches this many px beyond the line (its anti-aliased edge), then falls to 0 over as many.
FRAME_GROW = 1
#: The moved frame's place takes the photo's skin through a mask feathered by this Gaussian (px).
GHOST_FEATHER = 1.5


@dataclass
class GlassesFrame:
    """A frame of glasses found on a face.

    Attributes:
        mask: ``bool`` ``HxW``, the frame's pixels in the photo.
        contrast: the loop's :data:`LOOP_PERCENTILE` th-percentile line contrast (grey levels) of each eye searched
            (an upper bound of it where no loop could reach :data:`MIN_LOOP_CONTRAST`).
    """

    mask: np.ndarray
    contrast: dict[str, float]


def find_glasses(
    image: np.ndarray, mesh: np.ndarray | None, min_contrast: float = MIN_LOOP_CONTRAST
) -> GlassesFrame | None:
    """The frame of glasses on the face with Face Mesh V2 points ``mesh`` (``(478, 2 or 3)``, image px, z in px) in
    the ``HxW`` or ``HxWxC`` uint8 ``image``, or ``None`` when it wears none (or no mesh is given). ``min_contrast``:
    the rim loop's least contrast (:data:`MIN_LOOP_CONTRAST`; a clip lowers it for a face already seen wearing
    glasses, :data:`SEEN_LOOP_CONTRAST`)."""
    if mesh is None or len(mesh) < 468:
        return None
    mesh = np.asarray(mesh, dtype=np.float64)
    scale = _eye_distance(mesh)
    # Only the eyes' and brows' surroundings are read (a large photo's whole grey image cost 20-30 ms a face).
    x0, y0, x1, y1 = _frame_box(mesh, scale, image.shape[:2])
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    grey = crop if crop.ndim == 2 else cv2.cvtColor(crop[:, :, :3], cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 0.7)  # JPEG blocks and grain are no line
    mesh = mesh.copy()
    mesh[:, :2] -= (x0, y0)
    loops = {eye: _rim_loop(grey, mesh, eye, scale, min_contrast) for eye in EYES}
    contrast = {eye: float(np.percentile(loop[0], LOOP_PERCENTILE)) for eye, loop in loops.items()}
    found = [eye for eye in EYES if loops[eye][1] is not None and contrast[eye] >= min_contrast]
    if not found:
        return None
    level = float(np.median(np.concatenate([loops[eye][0] for eye in found])))
    # The loop is the rim itself (its contrast is high nearly all the way round): drawn, it is both frame and the
    # seeds the rest of the frame is grown from.
    seeds = np.zeros(grey.shape, dtype=np.uint8)
    loops_drawn = [np.round(loops[eye][1] * 16).astype(np.int32) for eye in found]
    cv2.polylines(seeds, loops_drawn, True, 1, 1, cv2.LINE_8, shift=4)
    lines = _line_contrast(grey, max(1, round(MAX_HALF_WIDTH * scale))) >= GROW_SHARE * level
    lenses = np.zeros(grey.shape, dtype=np.uint8)
    for eye in found:
        cv2.fillPoly(lenses, [np.round(loops[eye][1]).astype(np.int32)], 1)
    inset = max(1, round(LENS_INSET * scale))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inset + 1,) * 2)
    lenses = cv2.erode(lenses, disc)
    # Nor do the eyes (either of them: the far eye of a turned head lies beyond the bridge). The brows are left in:
    # a temple leaves the rim beside them, and left out they cut it off.
    features = np.zeros(grey.shape, dtype=np.uint8)
    for eye in EYES:
        cv2.fillPoly(features, [np.round(_eye_outline(mesh, eye)[:, :2]).astype(np.int32)], 1)
    features = cv2.dilate(features, disc)
    lines &= (lenses | features) == 0
    _, labels = cv2.connectedComponents(lines.astype(np.uint8), connectivity=8)
    touched = np.unique(labels[(seeds > 0) & lines])
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[y0:y1, x0:x1] = np.isin(labels, touched[touched > 0]) | (seeds > 0)
    return GlassesFrame(mask=mask, contrast=contrast)


def keep_frame(original: np.ndarray, edited: np.ndarray, frame: GlassesFrame, warp: FaceWarp) -> np.ndarray:
    """``edited`` (the warped and shaded photo) with the glasses ``frame`` of ``original`` (the photo) kept where it
    is: the frame the warp moved (its mask carried by ``warp``'s field, a
    :class:`~diffusers_led.geometry.warp.FaceWarp`) filled from the edited skin around it, and the photo's own frame
    pixels laid back over through a soft mask :data:`FRAME_GROW` px wider. Only pixels within the warp's window
    change."""
    x0, y0, x1, y1 = warp.roi
    kept = frame.mask[y0:y1, x0:x1].astype(np.uint8)
    moving = warp.weight > 0
    if not (kept.any() and moving.any()):
        return edited
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FRAME_GROW + 1,) * 2)
    # Where the warped image shows the frame: each output pixel takes its source's, so the mask follows the field.
    moved = cv2.remap(
        cv2.dilate(kept, grow) * np.uint8(255), warp.map_x - x0, warp.map_y - y0, cv2.INTER_LINEAR, borderValue=0
    )
    ghost = ((moved > 0) & moving).astype(np.uint8)
    out = edited.copy()
    window = np.ascontiguousarray(out[y0:y1, x0:x1])
    # The photo's frame laid back over the edit, with the skin it left in the photo where the moved frame was
    # drawn (the skin the edit would show there was behind the frame), softly: its anti-aliased edge and a pixel
    # beyond come with it.
    alpha = cv2.GaussianBlur(cv2.dilate(kept | ghost, grow).astype(np.float32), (0, 0), GHOST_FEATHER)
    alpha = np.maximum(alpha, kept.astype(np.float32))
    alpha[~moving] = 0.0  # what the warp left alone stays bit for bit
    if window.ndim == 3:
        alpha = alpha[:, :, None]
    photo = original[y0:y1, x0:x1].astype(np.float32)
    blended = np.round(photo * alpha + window.astype(np.float32) * (1.0 - alpha))
    out[y0:y1, x0:x1] = np.where(alpha > 0, blended, window).astype(np.uint8)
    return out


def _eye_distance(mesh: np.ndarray) -> float:
    """The distance between the eyes' centres (mean of their corners), in 3-D (a turned head foreshortens it)."""
    right, left = (mesh[list(EYE_CORNERS[eye])].mean(0) for eye in ("right", "left"))
    return float(np.linalg.norm(right - left))


def _eye_outline(mesh: np.ndarray, eye: str) -> np.ndarray:
    """The lid margins of ``eye`` as one closed outline (upper from corner to corner, lower back)."""
    return mesh[EYES[eye]["upper"] + EYES[eye]["lower"][-2:0:-1]]


def _rim_loop(
    grey: np.ndarray, mesh: np.ndarray, eye: str, scale: float, min_contrast: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """The closed path of greatest line contrast around ``eye``: its contrast (grey levels) at each of
    :data:`LOOP_ANGLES` angles, and its ``(LOOP_ANGLES, 2)`` points in image px; where no loop can reach
    ``min_contrast``, the best line's contrast at each angle (an upper bound) and ``None``."""
    outline = _eye_outline(mesh, eye)
    centre = outline[:, :2].mean(0)
    outer, inner = (mesh[index] for index in EYE_CORNERS[eye])
    across = outer[:2] - inner[:2]
    width = max(float(np.linalg.norm(across)), 1e-6)
    across /= width
    down = np.array([-across[1], across[0]]) * (1.0 if across[0] >= 0 else -1.0)
    down = down if down[1] >= 0 else -down
    # A turned head foreshortens the rim across the eye as it does the eye (2-D over 3-D width), not up and down.
    squeeze = float(np.clip(width / max(np.linalg.norm(outer - inner), 1e-6), 0.3, 1.0))
    count = int(np.clip((RIM_FARTHEST - RIM_NEAREST) * scale, 24, 200))  # about a px apart
    radii = np.linspace(RIM_NEAREST, RIM_FARTHEST, count) * scale
    angles = np.linspace(0.0, 2 * np.pi, LOOP_ANGLES, endpoint=False)
    directions = squeeze * np.cos(angles)[:, None] * across + np.sin(angles)[:, None] * down
    points = (centre + radii[None, :, None] * directions[:, None, :]).astype(np.float32)
    unrolled = cv2.remap(grey, points[..., 0], points[..., 1], cv2.INTER_LINEAR, borderValue=-1.0)
    eye_mask = np.zeros(grey.shape, dtype=np.uint8)
    cv2.fillPoly(eye_mask, [np.round(outline[:, :2]).astype(np.int32)], 1)
    grow = max(1, round(EYE_MARGIN * scale))
    eye_mask = cv2.dilate(eye_mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    left_out = cv2.remap(eye_mask, points[..., 0], points[..., 1], cv2.INTER_NEAREST, borderValue=1) > 0
    step = radii[1] - radii[0]
    contrast = _profile_contrast(unrolled, max(1, round(MAX_HALF_WIDTH * scale / step)))
    # A line runs on from one angle to the next: its contrast, averaged with its neighbours', outweighs a speck's.
    contrast = (np.roll(contrast, 1, axis=0) + contrast + np.roll(contrast, -1, axis=0)) / 3
    contrast[left_out | (unrolled < 0)] = 0.0
    # No loop reads higher at an angle than that angle's best line: where those already stay under the threshold (a
    # bare face), the loop is not sought (the search is most of this function's cost).
    best_lines = contrast.max(axis=1)
    if np.percentile(best_lines, LOOP_PERCENTILE) < min_contrast:
        return best_lines, None
    path = _best_loop(contrast)
    return contrast[np.arange(LOOP_ANGLES), path], points[np.arange(LOOP_ANGLES), path].astype(np.float64)


def _profile_contrast(rows: np.ndarray, half: int) -> np.ndarray:
    """Per sample of each row, how far it is darker (or brighter) than both of its neighbours along the row at the
    same distance, the most over distances 1 to ``half``: a thin line across the row, not an edge."""
    best = np.zeros_like(rows)
    for distance in range(1, half + 1):
        before, after = np.roll(rows, distance, axis=1), np.roll(rows, -distance, axis=1)
        line = np.maximum(np.minimum(before, after) - rows, rows - np.maximum(before, after))
        line[:, :distance] = line[:, -distance:] = 0.0  # np.roll wrapped these
        np.maximum(best, line, out=best)
    return best


def _line_contrast(grey: np.ndarray, half: int) -> np.ndarray:
    """:func:`_profile_contrast` in the image, across lines of every direction (rows, columns, both diagonals),
    the most of them: a thin line darker or brighter than both of its sides."""
    best = np.zeros_like(grey)
    for distance in range(1, half + 1):
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            shift = np.float32([[1, 0, dx * distance], [0, 1, dy * distance]])
            before = cv2.warpAffine(grey, shift, grey.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
            shift[:, 2] *= -1
            after = cv2.warpAffine(grey, shift, grey.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
            line = np.maximum(np.minimum(before, after) - grey, grey - np.maximum(before, after))
            np.maximum(best, line, out=best)
    return best


def _best_loop(contrast: np.ndarray) -> np.ndarray:
    """The radius index at each angle (row) of the closed path of greatest total ``contrast`` that moves at most
    :data:`MAX_RADIUS_STEP` samples between angles (at :data:`RADIUS_STEP_COST` per sample): found by dynamic
    programming over three turns, the middle turn kept (its ends then agree with the turns around it)."""
    angles, count = contrast.shape
    turns = np.concatenate([contrast] * 3)
    steps = np.arange(-MAX_RADIUS_STEP, MAX_RADIUS_STEP + 1)
    padded = np.full(count + 2 * MAX_RADIUS_STEP, -np.inf)
    score = turns[0].copy()
    back = np.zeros(turns.shape, dtype=np.int64)
    for row in range(1, len(turns)):
        padded[MAX_RADIUS_STEP:-MAX_RADIUS_STEP] = score
        # candidates[k, j]: coming to radius j from radius j + steps[k].
        candidates = np.stack([padded[MAX_RADIUS_STEP + s : MAX_RADIUS_STEP + s + count] for s in steps])
        candidates -= RADIUS_STEP_COST * np.abs(steps)[:, None]
        choice = np.argmax(candidates, axis=0)
        back[row] = steps[choice]
        score = candidates[choice, np.arange(count)] + turns[row]
    index = int(np.argmax(score))
    path = np.empty(len(turns), dtype=np.int64)
    for row in range(len(turns) - 1, -1, -1):
        path[row] = index
        index += back[row][index]
    return path[angles : 2 * angles]


def _frame_box(mesh: np.ndarray, scale: float, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``x0, y0, x1, y1``: the eyes and brows of the face (its mesh above the nose tip's height) and
    :data:`FRAME_REACH` inter-ocular distances around them, clipped to the image."""
    eyes = np.concatenate([mesh[EYES[eye]["upper"] + EYES[eye]["lower"], :2] for eye in EYES])
    reach = FRAME_REACH * scale
    height, width = image_hw
    x0, y0 = np.floor(eyes.min(0) - reach).astype(int)
    x1, y1 = np.ceil(eyes.max(0) + reach).astype(int)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
