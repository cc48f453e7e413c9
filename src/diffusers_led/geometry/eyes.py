"""Eyes opened as real eyes open (the upper lid raiser, AU5, on the dense Face Mesh): the upper lid margin lifts off
the eyeball while the eyeball stays where it is, so the iris keeps its place and its round shape and the white of
the eye shows above it.

A warp of the sparse 68 points can only stretch the whole eye (lid, lashes, iris) upward. Here only the lid band
between the margin and the brow moves: its skin folds into the crease (compressed, never stretched), and the band of
eyeball the lid uncovers is filled as an eyeball looks there: the rest of the iris (its own visible half, mirrored)
inside the iris circle, and outside it the person's own sclera colour, sampled from the white visible beside the
iris and shaded darker under the lid.

Squeezed eyes (a smile's cheek raiser undone) reopen the same way from below: the lower lid margin comes down, the
cheek band under it takes up the move, and the eyeball it uncovers is filled alike. Torch-free: numpy and OpenCV
only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["EYES", "EyeOpening", "open_eyes", "shows_white"]

#: Face Mesh V2 vertices of each eye: its upper and lower lid margin from corner to corner, and its iris (centre
#: first, then 4 points on the iris edge). "right" is the person's right eye (on the image's left).
EYES: dict[str, dict[str, list[int]]] = {
    "right": {
        "upper": [33, 246, 161, 160, 159, 158, 157, 173, 133],
        "lower": [33, 7, 163, 144, 145, 153, 154, 155, 133],
        "iris": [468, 469, 470, 471, 472],
    },
    "left": {
        "upper": [263, 466, 388, 387, 386, 385, 384, 398, 362],
        "lower": [263, 249, 390, 373, 374, 380, 381, 382, 362],
        "iris": [473, 474, 475, 476, 477],
    },
}

#: How far the upper lid margin rises per unit of AU5, in inter-ocular distances (the 68-point pattern's lid move).
LID_LIFT = 0.04
#: Height of the lid band that moves (margin to under the brow), in inter-ocular distances: its skin folds into the
#: crease, compressed by the lift over this height.
LID_BAND = 0.22
#: How far below the old margin the filled eyeball reaches and blends into the photo's own (inter-ocular distances):
#: the old margin's lashes and shadow lie there and would otherwise stay as a second lash line.
MARGIN_BLEND = 0.012
#: The lid's shadow on the eyeball: this much darker right under the margin, falling off over this share of the
#: uncovered band's height.
LID_SHADOW = 0.3
LID_SHADOW_FALL = 0.6
#: The lower lid, lowered off the eyeball (squeezed eyes reopened): how far per unit (inter-ocular distances; the
#: cheek raiser's lower-lid rise), the cheek band below it that takes up the move, and its lighter shadow.
LOWER_LID_DROP = 0.03
LOWER_LID_BAND = 0.12
LOWER_LID_SHADOW = 0.1
#: The uncovered sclera against the white visible beside the iris (the white above an iris is a little duller).
UPPER_SCLERA = 0.95
#: The least number of visible sclera pixels to sample the eye's white from, and how much brighter than the iris
#: that white must be: a closed, tiny or shadowed eye shows no white to sample (its lid is left to the 68-point warp).
MIN_SCLERA_PIXELS = 6
MIN_SCLERA_CONTRAST = 1.35
#: ... and at most this colourful against the lid's skin (a white sampled off a blurred eye is skin, pink).
MAX_SCLERA_CHROMA = 0.6


@dataclass
class EyeOpening:
    """The opened eyes of one face: the edited image and the pixels it changed.

    Attributes:
        image: the image with the lids moved (the input, unchanged, unless ``opened``).
        changed: ``bool`` ``HxW``, the pixels that differ from the input (all within the eyes' lid bands).
        opened: whether both eyes showed enough white to be opened this way (every lid moved, or none).
    """

    image: np.ndarray
    changed: np.ndarray
    opened: bool


def open_eyes(
    image: np.ndarray, mesh: np.ndarray, intensity: float, inter_ocular: float, lower: float = 0.0
) -> EyeOpening:
    """Raise both upper lids of the face whose Face Mesh V2 points are ``mesh`` (``(478, 2 or 3)``, image px) by
    ``intensity`` units of AU5 (0 to 1.5), and lower both lower lids by ``lower`` units of the cheek raiser's lid
    rise, on an ``HxW`` or ``HxWxC`` uint8 ``image``.

    Args:
        image: the photo.
        mesh: the face's 478 points (with the irises, 468-477).
        intensity: the upper lid raiser's intensity; 0 or less leaves the upper lids as they are.
        inter_ocular: the face's eye distance in px (the unit of the lift and band).
        lower: how far the lower lids come down (squeezed eyes reopened), in units of the cheek raiser; 0 or less
            leaves them as they are.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"open_eyes needs an HxW or HxWxC uint8 image, got {image.dtype} {image.shape}")
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.shape[0] < 478:
        raise ValueError(f"open_eyes needs the 478 Face Mesh V2 points (with irises), got {mesh.shape[0]}")
    out = image.copy()
    changed = np.zeros(image.shape[:2], dtype=bool)
    # Each lid that moves: (its margin, the opposite margin, the move, the skin band taking it up, its shadow).
    lids = []
    for eye in EYES.values():
        upper, lower_margin = mesh[eye["upper"], :2], mesh[eye["lower"], :2]
        if intensity > 0:
            lids.append((eye, upper, lower_margin, intensity * LID_LIFT, LID_BAND, LID_SHADOW))
        if lower > 0:
            lids.append((eye, lower_margin, upper, lower * LOWER_LID_DROP, LOWER_LID_BAND, LOWER_LID_SHADOW))
    if not lids:
        return EyeOpening(out, changed, opened=False)
    for eye, margin, opposite, move, band, shadow in lids:
        lid = _Lid(margin, opposite, move * inter_ocular, band * inter_ocular, shadow)
        if not _open_eye(out, changed, image, mesh[eye["iris"], :2], lid, inter_ocular):
            return EyeOpening(image.copy(), np.zeros_like(changed), opened=False)  # every lid or none
    return EyeOpening(out, changed, opened=True)


def shows_white(image: np.ndarray, mesh: np.ndarray, inter_ocular: float) -> dict[str, bool]:
    """Whether each eye (``"right"``, ``"left"``) of the face whose Face Mesh V2 points are ``mesh`` shows white
    beside its iris: the test :func:`open_eyes` makes before it raises an upper lid (a squeezed, closed, tiny or
    shadowed eye does not). ``image``: the ``HxW`` or ``HxWxC`` uint8 photo; ``inter_ocular``: the eye distance (px).
    """
    mesh = np.asarray(mesh, dtype=np.float64)
    shows = {}
    for side, eye in EYES.items():
        upper, lower = mesh[eye["upper"], :2], mesh[eye["lower"], :2]
        lid = _Lid(upper, lower, LID_LIFT * inter_ocular, LID_BAND * inter_ocular, LID_SHADOW)
        shows[side] = _open_eye(image, None, image, mesh[eye["iris"], :2], lid, inter_ocular)
    return shows


@dataclass(frozen=True)
class _Lid:
    """One lid margin moving off the eyeball: its points (corner to corner), the opposite lid's, how far it moves
    (px), the height of the skin band beyond it that takes up the move (px), and its shadow on the eyeball."""

    margin: np.ndarray
    opposite: np.ndarray
    lift: float
    band: float
    shadow: float


def _open_eye(
    out: np.ndarray,
    changed: np.ndarray | None,
    image: np.ndarray,
    iris_points: np.ndarray,
    moving: _Lid,
    inter_ocular: float,
) -> bool:
    """Move one lid margin off the eyeball in ``out`` (a copy of ``image``), marking the pixels in ``changed``;
    ``False`` (nothing done) where the eye shows no white to sample. With ``changed`` ``None``, only that test is
    made (nothing is drawn). ``iris_points``: the iris centre, then 4
    points on its edge. Written for the upper lid ("upper" is the moving margin, "lower" the opposite one); the lower
    lid is the same with the frame turned over."""
    upper, lower, lift = moving.margin, moving.opposite, moving.lift
    iris_centre = iris_points[0]
    iris_radius = float(np.linalg.norm(iris_points[1:] - iris_centre, axis=1).mean())
    # The eye's own frame: u along the corners, v across them pointing away from the moving lid.
    origin = (upper[0] + upper[-1]) / 2
    along = upper[-1] - upper[0]
    width = float(np.linalg.norm(along))
    if width < 4 or lift < 0.5:
        return False
    along /= width
    across = np.array([-along[1], along[0]])
    if ((upper - origin) @ across).mean() > ((lower - origin) @ across).mean():
        across = -across

    band = moving.band
    blend = max(MARGIN_BLEND * inter_ocular, 1.0)
    reach = np.concatenate([upper - across * (band + lift + 2), upper + across * (blend + 2), lower])
    x0, y0 = np.floor(reach.min(0)).astype(int) - 2
    x1, y1 = np.ceil(reach.max(0)).astype(int) + 3
    height, width_px = image.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width_px), min(y1, height)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return False
    pixels = np.stack(np.meshgrid(np.arange(x0, x1), np.arange(y0, y1)), axis=-1).astype(np.float64) - origin
    u, v = pixels @ along, pixels @ across

    def lid_line(points: np.ndarray) -> np.ndarray:
        local = (points - origin) @ np.stack([along, across]).T
        local = local[np.argsort(local[:, 0])]
        return np.interp(u, local[:, 0], local[:, 1])

    margin, lower_margin = lid_line(upper), lid_line(lower)
    ends = (upper[[0, -1]] - origin) @ along
    share = np.clip((u - ends.min()) / max(ends.max() - ends.min(), 1e-9), 0.0, 1.0)
    rise = lift * np.sin(np.pi * share)  # 0 at the corners, the full lift mid-eye
    new_margin = margin - rise

    # The lid band [margin - band, new margin] takes the skin of [margin - band, margin]: the output pixel at v takes
    # the source pixel at v + rise * smoothstep(s), so the band's top stays and the margin lands on the new margin.
    top = margin - band
    s = np.clip((v - top) / np.maximum(new_margin - top, 1e-9), 0.0, 1.0)
    source_v = np.where(v <= new_margin, v + rise * s * s * (3 - 2 * s), v)
    lid = _sample(image, origin, along, across, u, source_v)

    # The eyeball the lid uncovered: the white sampled beside the iris, the iris mirrored from its visible half.
    to_iris = np.hypot(*(pixels + origin - iris_centre).transpose(2, 0, 1))
    opening = (v > margin + 1) & (v < lower_margin - 1) & (share > 0) & (share < 1)
    candidates = opening & (to_iris > 1.25 * iris_radius)
    channels = 1 if image.ndim == 2 else image.shape[2]
    photo = image[y0:y1, x0:x1].reshape(*u.shape, channels).astype(np.float32)
    brightness = photo[..., : min(3, channels)].mean(-1)
    iris_seen = opening & (to_iris < 0.8 * iris_radius)
    if candidates.sum() < MIN_SCLERA_PIXELS or not iris_seen.any():
        return False
    whitest = candidates & (brightness >= np.percentile(brightness[candidates], 60))
    if np.median(brightness[whitest]) < MIN_SCLERA_CONTRAST * np.median(brightness[iris_seen]):
        return False
    chroma = photo[..., : min(3, channels)].max(-1) - photo[..., : min(3, channels)].min(-1)
    lid_skin = (v > top) & (v < margin - 2) & (share > 0.2) & (share < 0.8)
    if lid_skin.any() and np.median(chroma[whitest]) > MAX_SCLERA_CHROMA * max(np.median(chroma[lid_skin]), 8.0):
        return False
    if changed is None:
        return True
    sclera = np.median(photo[whitest], axis=0) * UPPER_SCLERA
    uncovered = np.maximum(margin + blend - new_margin, 1e-9)
    shade = 1.0 - moving.shadow * np.exp(-np.clip(v - new_margin, 0, None) / (LID_SHADOW_FALL * uncovered))
    white = shade[..., None] * sclera

    iris_v = (iris_centre - origin) @ across
    mirrored_v = np.minimum(2 * iris_v - v, lower_margin - 1)  # the iris below its centre, where the lid left it
    iris = _sample(image, origin, along, across, u, np.maximum(mirrored_v, v))
    in_iris = np.clip(iris_radius - to_iris + 0.5, 0.0, 1.0)[..., None]
    eyeball = in_iris * iris + (1.0 - in_iris) * white

    # Where the eyeball shows: from the new margin (anti-aliased) to a little below the old one, fading into the photo.
    shows = np.clip(v - new_margin + 0.5, 0.0, 1.0) * np.clip((margin + blend - v) / blend, 0.0, 1.0)
    shows *= (rise > 0.25).astype(np.float64)
    shows = shows[..., None]
    result = shows * eyeball + (1.0 - shows) * lid
    patch = np.clip(np.rint(result), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        patch = patch[..., 0]
    edited = (source_v != v) | (shows[..., 0] > 0)
    region = out[y0:y1, x0:x1]
    region[edited] = patch[edited]
    changed[y0:y1, x0:x1] |= edited & np.any((region != image[y0:y1, x0:x1]).reshape(*edited.shape, -1), axis=-1)
    return True


def _sample(
    image: np.ndarray, origin: np.ndarray, along: np.ndarray, across: np.ndarray, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """``float32`` ``h x w x C`` pixels of ``image`` at the eye-frame points ``(u, v)`` (bicubic)."""
    points = origin + u[..., None] * along + v[..., None] * across
    sampled = cv2.remap(
        image,
        points[..., 0].astype(np.float32),
        points[..., 1].astype(np.float32),
        interpolation=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT101,
    ).astype(np.float32)
    return sampled[..., None] if sampled.ndim == 2 else sampled
