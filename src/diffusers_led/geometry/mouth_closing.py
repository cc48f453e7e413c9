"""Closing an open mouth: the landmark movement that brings the inner lips together, as the jaw rises.

An open mouth (a surprised face, a toothy laugh) edited toward an expression whose prototype parts no lips (neutral,
sad, angry, contempt) must close: the lips meet and the inside of the mouth disappears behind them. The
jaw-drop unit (AU26) moves the lower lip by a fixed pattern and cannot reach every opening (an open laugh is wider
than a full unit), so the gap is read from the inner lip points and closed directly: the lower lip and the chin
rise with the jaw, the upper lip comes down a little, and the lips slide over the teeth (``mouth_inside.MouthInside``).
After the warp, :func:`close_lips` stretches each lip over whatever of the inside of the mouth is still between
them (dlib puts a laugh's inner lip points on the teeth, so closing those points leaves teeth and dark corners) and
draws the soft line where the lips meet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from ..labels import canonical_expression
from .action_units import ACTION_UNITS, EXPRESSION_PROTOTYPES, inter_ocular
from .lip_slide import LOWER_SHARE, UPPER_SHARE, LipSlide, lips_slid_together
from .lip_tone import IBUG_LIPS, MESH_LIPS, lip_tinted, lip_tone_across, lips_chroma, upper_lip_lightness
from .transforms import transform_points

if TYPE_CHECKING:
    from .warp import FaceWarp

__all__ = [
    "MOUTH_OPENING_UNITS",
    "ShownInside",
    "close_lips",
    "closes_mouth",
    "inner_lips_on_mesh",
    "inside_shown",
    "jaw_closing_limit",
    "mouth_closing",
]

#: Units that part the lips: a target with any of them keeps (or makes) an open mouth.
MOUTH_OPENING_UNITS = ("AU25", "AU26", "AU27")
#: Smiles may show teeth: a laughing face edited toward happy keeps its open mouth.
KEEPS_TEETH = ("happy",)
#: Inner lip points facing each other (upper, lower).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
#: A shut mouth's seam still reads as a small gap (inter-ocular distances); the lips close to it, not through it.
SEAM = 0.02
#: How much closer (inter-ocular distances) the middle pair of inner lip points may be left by a closing than the mean
#: of its neighbours (a tent in the line where the lips meet; :func:`mouth_closing`). Where the gaps are read on
#: the points that move, every pair closes to the seam (no tent); read on the mesh, the tune and sample photos'
#: closings left 0.009 or less where the lips met smoothly and 0.031-0.059 on the grins that met in a tent.
MAX_SEAM_TENT = 0.01
#: The outer lips and chin points and the share of the lower lip's rise they make.
LOWER_OUTER = {56: 1.0, 57: 1.0, 58: 1.0, 55: 0.6, 59: 0.6}
UPPER_OUTER = {50: 1.0, 51: 1.0, 52: 1.0, 49: 0.5, 53: 0.5}
#: The mesh's mouth corners, and the 68 points' they stand for.
MESH_MOUTH_CORNERS = {48: 61, 54: 291}
#: How far the inside of the lips is grown before the warp carries it (inter-ocular distances): the soft edge
#: between lips and teeth, and the gaps at the corners.
INSIDE_GROW = 0.01
#: How far beyond a lip's outer edge the skin stretches to follow the lip as it slides over the gap, and the
#: half-width over which the slide is smoothed along the mouth (inter-ocular distances).
SKIN_REACH = 0.25
SLIDE_SMOOTHING = 0.02
#: The half-width over which each lip's outer edge slide is smoothed along the mouth (inter-ocular distances): over
#: twice the slide's own (0.09 on t1.jpg's smiling man) the lower lip's outer edge followed a gap deeper in the middle
#: of the mouth and rose there, a bump between two dips (a "W": 3.7 px of 5.5 toward neutral, 2.7 toward sad); the lip
#: now grows toward the seam for the rest. 0.3 smoothed a toothy grin's lower lip a little more (a fresh sample photo)
#: but the astronaut toward angry read 0.592 from herself (0.559 at 0.2).
EDGE_SMOOTHING = 0.2
#: The fewest rows of itself (inter-ocular distances) each lip brings to the line where the lips meet.
THINNEST_LIP = 0.06
#: The line where closed lips meet: how much darker than the lips at its middle, its half-width (inter-ocular
#: distances, Gaussian sigma) and the share of the mouth's width over which it fades in from each corner.
LIP_LINE_SHADE = 0.2
LIP_LINE_WIDTH = 0.012
LIP_LINE_FADE = 0.2
#: The band either side of that line (inter-ocular distances, Gaussian sigma; at least a pixel) smoothed along it:
#: the lips' inner rows meet there, and each pixel of a tilted line falls to one lip or the other (a zipper).
LIP_LINE_SMOOTHING = 0.03
#: How far (inter-ocular distances) teeth may show beyond the carried gap, toward each lip, and how much lighter
#: than the lip's own middle (0-255 lightness) a pixel there is to count as teeth, not lip.
TEETH_REACH = 0.05
TEETH_LIGHTER = 25
#: ... and at most this share of the lip's own saturation (a colour photo): the lit top of a smiling man's lower
#: lip (t1.jpg) is as light as teeth but keeps 0.72-0.84 of the lip's saturation, and taken for teeth it went under
#: the seam in the middle of the mouth only (a dark notch between two lit lobes). Teeth it still grows over keep
#: 0.47-0.73 (t1.jpg's blonde woman); 26 px beside the laughing woman's gap (0.74-0.90) are no longer grown over,
#: and on 4x crops of her closed lips (neutral, sad, angry, contempt) no teeth show.
TEETH_SATURATION = 0.8
#: How far from the line where closed lips meet (inter-ocular distances) the rows each lip brings of itself
#: (:data:`THINNEST_LIP`, skin over a laugh's thin stretched lip) take the lips' colour, thinning toward the corners:
#: the astronaut's closed lips read a* 13.5-14.7 over the Face Mesh's lips at 0 (16.6 in the photo; 12.3-13.0
#: before the lips took their colour), 14.5-15.4 at 0.08.
LIP_TINT_REACH = 0.08
#: A lip's row next to the gap that is this much lighter than its middle is part teeth (0-255 lightness).
MIXED_LIGHTER = 10
#: What the gap between the inner lips shows (:func:`inside_shown`): teeth are this much lighter than the lips' own
#: middle (0-255 lightness) and at most this share of their saturation; the dark inside is at most this share of
#: their lightness, over this many inter-ocular distances down a column (a shut mouth's seam is a thin dark line),
#: and lips part when the inside shows along this much of the mouth (inter-ocular distances: about a tooth's width).
SHOWN_TEETH_LIGHTER = 25
SHOWN_TEETH_SATURATION = 0.8
SHOWN_DARK = 0.6
SHOWN_DARK_HEIGHT = 0.1
SHOWN_WIDTH = 0.1
#: Lips at least this light (0-255 lightness: :data:`SHOWN_TEETH_LIGHTER` short of white) leave teeth no room to be
#: lighter: an over-exposed photo clips lips and teeth alike (the example astronaut brightened 1.6 times: lips 252,
#: teeth 255). Between such lips, teeth are what is as light as the lips' middle over a column as tall as the dark
#: inside must be (:data:`SHOWN_DARK_HEIGHT`; a shut mouth's seam is thinner), and the rest of the mouth is read as
#: before. Tune, fresh and CK+ calibration photos' lips lie at 50-190.
OVEREXPOSED_LIPS = 255 - SHOWN_TEETH_LIGHTER
#: The share of the mouth's width at each corner where the gap is not read.
SHOWN_CORNER = 0.1
#: Teeth are also told from the lips by being less red than their middle by this much (the log of red over green):
#: a colour cast scales each channel, which leaves that difference as it was but not the saturation's share. Under a
#: warm cast (red 1.15, blue 0.8) a fresh sample photo's teeth rose from 0.77 to 0.86 of the lips' saturation and
#: were no longer teeth; they lie 0.26-0.37 less red with or without the cast (10th-90th percentile), the tune and
#: fresh photos' teeth 0.04-0.59, and the light pixels between shut lips (lit lip, skin at the corners) at most 0.18.
TEETH_LESS_RED = 0.25
#: Lips below this median saturation (HSV, 0-255) tell teeth by lightness alone, as a grey photo's: under a cold cast
#: the astronaut's lips (37) were greyer than her blue-tinted teeth (57); tune and fresh photos' lips lie at 70-193.
NEAR_GREY_LIPS = 50.0
CHIN = {7: 0.6, 8: 0.7, 9: 0.6, 6: 0.35, 10: 0.35, 5: 0.15, 11: 0.15}


def closes_mouth(target: str | None, extra: Mapping[str, float] | None = None) -> bool:
    """Whether an edit toward ``target`` (plus ``extra`` units) closes an open mouth: the target's prototype and the
    extra units part no lips, and the target is not a smile (smiles may show teeth)."""
    if target is None:
        return False
    name = canonical_expression(target)
    units = {**EXPRESSION_PROTOTYPES[name], **{k: v for k, v in (extra or {}).items() if v > 0}}
    return name not in KEEPS_TEETH and not any(unit in units for unit in MOUTH_OPENING_UNITS)


def jaw_closing_limit(shape: np.ndarray) -> float:
    """The largest intensity of the jaw drop (AU26) whose undoing closes the lips of ``shape`` (68 points, any frame
    of the face) no further than to the seam: a jaw drop read from the blendshapes can be larger than the gap that
    dlib's inner lip points show, and undoing all of it would push the lower lip through the upper one (the warp then
    folds)."""
    shape = np.asarray(shape, dtype=np.float64)
    iod = inter_ocular(shape)
    gap = _inner_lip_gaps(shape).mean() / iod
    pattern = ACTION_UNITS["AU26"]
    per_unit = np.mean([pattern[lower, 1] - pattern[upper, 1] for upper, lower in INNER_LIP_PAIRS])
    return float(max(gap - SEAM, 0.0) / per_unit)


def inner_lips_on_mesh(shape: np.ndarray, mesh: np.ndarray | None) -> np.ndarray:
    """``shape`` (68 points, image px) with each pair of inner lip points that face each other
    (:data:`INNER_LIP_PAIRS`) put on Face Mesh V2's inner lips (``mesh``, at the same shares of each lip's length: a
    quarter, half and three quarters of the way from corner to corner) where the mesh reads the lips closer there;
    ``shape`` itself without a mesh. dlib's inner points on a turned face sit on the lower lip's body (Joey, t1.jpg:
    0.18-0.21 inter-ocular distances apart where the mesh's lips are 0.04-0.08), and a closing by their gap slid the
    lower lip up under the upper one, where it vanished. Where the mesh reads the wider gap (a smile's lips rolled
    over its teeth) the 68 points' reading stays: closing the few pixels of such a smile drew a scratchy seam."""
    shape = np.asarray(shape, dtype=np.float64)
    if mesh is None:
        return shape
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    on_mesh = shape.copy()
    for contour, points in ((MESH_LIPS[1][1:-1], [61, 62, 63]), (MESH_LIPS[2][1:-1], [67, 66, 65])):
        lip = mesh[contour]
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(lip, axis=0), axis=1))])
        shares = np.array([0.25, 0.5, 0.75]) * along[-1]
        on_mesh[points] = np.stack([np.interp(shares, along, lip[:, k]) for k in range(2)], axis=1)
    closer = _inner_lip_gaps(on_mesh) < _inner_lip_gaps(shape)
    pairs = np.array(INNER_LIP_PAIRS)[closer].ravel()
    read = shape.copy()
    read[pairs] = on_mesh[pairs]
    return read


class ShownInside(NamedTuple):
    """What the gap between a face's inner lips shows in the photo (:func:`inside_shown`)."""

    #: Bool over ``box``: the gap between the inner lips when it shows teeth or the dark inside (else none).
    mask: np.ndarray
    #: The image box (``x0, y0, x1, y1``, px) ``mask`` covers.
    box: tuple[int, int, int, int]
    #: Whether they show along enough of the mouth (:data:`SHOWN_WIDTH`) that closing lips must cover them.
    opens: bool
    #: ``float32`` ``(2, 2)``: the Lab chroma (a, b; OpenCV's 8-bit scale) of the upper and the lower lip, the median
    #: of each one's pixels beside the gap; ``None`` in a grey photo.
    lips_chroma: np.ndarray | None = None
    #: Whether saturation tells teeth from the lips: not in a grey photo nor below :data:`NEAR_GREY_LIPS`.
    reads_saturation: bool = True


def inside_shown(image: np.ndarray, shape: np.ndarray, mesh: np.ndarray | None = None) -> ShownInside:
    """The one gate for closing a mouth: what the gap between the inner lips of a face (``shape``, its 68 points,
    and its Face Mesh V2 ``mesh`` when there is one) shows in ``image`` (uint8, any channels), read by colour
    against the lips' own middle: teeth (lighter and less saturated than the lips, :data:`SHOWN_TEETH_LIGHTER`) or
    the dark inside (:data:`SHOWN_DARK`, taller than a shut mouth's seam), not lip or skin.

    Landmark gaps alone disagreed (dlib's inner points sit on a laugh's teeth or on the lower lip's body, the mesh's
    under-read a laugh; a woman's laugh parted 3.8 px and a smiling man's 2.2-2.9 px kept a strip of teeth at a
    corner). Between the mesh's inner lips when there is one: they meet on a shut mouth, where dlib's read a
    moustache over shut lips as a gap and its light skin at a corner as teeth (breakingbad.jpg)."""
    shape = np.asarray(shape, dtype=np.float64)
    iod = inter_ocular(shape)
    points, contours = (shape, IBUG_LIPS) if mesh is None else (np.asarray(mesh, dtype=np.float64)[:, :2], MESH_LIPS)
    inner = points[contours[1] + contours[2][::-1]]  # along the upper lip and back
    outer = points[contours[0] + contours[3][::-1]]
    height, width = image.shape[:2]
    x0, y0 = np.clip(np.floor(outer.min(0)).astype(int) - 1, 0, (width, height))
    x1, y1 = np.clip(np.ceil(outer.max(0)).astype(int) + 2, 0, (width, height))
    box = (int(x0), int(y0), int(x1), int(y1))

    def polygon(outline: np.ndarray) -> np.ndarray:
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round((outline - (x0, y0)) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        return mask > 0

    between = polygon(inner)
    lips = polygon(outer) & ~between
    # Read away from the corners, where lip, skin and shadow meet in a few pixels (skin is as light as teeth).
    left, right = np.sort(inner[[0, len(contours[1]) - 1], 0]) - x0
    margin = SHOWN_CORNER * (right - left)
    read = np.flatnonzero((np.arange(x1 - x0) > left + margin) & (np.arange(x1 - x0) < right - margin))
    if not lips.any() or not between[:, read].any():
        return ShownInside(np.zeros_like(between), box, False)
    # A shut mouth's seam is a thin dark line, not an open mouth.
    dark_rows = max(3, round(SHOWN_DARK_HEIGHT * iod))
    grey, saturation, redness = _grey_and_saturation(image[y0:y1, x0:x1])
    # Nearly grey lips (and a grey photo's, which have no saturation): teeth are told by lightness alone.
    reads_saturation = bool(np.median(saturation[lips]) >= NEAR_GREY_LIPS)
    saturation, redness = saturation * reads_saturation, redness * reads_saturation
    columns = _columns_showing_inside(
        grey[:, read], saturation[:, read], lips[:, read], between[:, read], iod, dark_rows, redness[:, read]
    )
    # The whole gap is closed over, not the columns that showed the inside: a lip slid up beside one left unslid
    # was cut by a step (t1.jpg's smiling man, toward neutral and contempt). But not the lip inside it: the mesh's
    # inner lips can lie on a laugh's upper lip, which was slid away under the lower one (t1.jpg's blonde woman).
    # Each lip's own colour: a laugh's upper lip is darker than its lower one, and its pink teeth lie between.
    upper_lip, lower_lip = (polygon(points[contours[i] + contours[i + 1][::-1]]) & ~between for i in (0, 2))
    upper_coloured, lower_coloured = (
        _lip_coloured(grey, lip if lip.any() else lips) for lip in (upper_lip, lower_lip)
    )
    # Not in a grey photo: teeth in shadow at the sides and bottom of a laugh's gap are as light as lips there, and
    # left under the lower lip they were slid up beside the covered middle as light blobs (CK+ S052's smile).
    if not reads_saturation:
        upper_coloured = lower_coloured = np.zeros_like(between)
    gap = _lip_trimmed(between, upper_coloured, lower_coloured) & columns.any()
    chroma = lips_chroma(image[y0:y1, x0:x1], [lip if lip.any() else lips for lip in (upper_lip, lower_lip)])
    return ShownInside(gap, box, _opens(columns, iod), chroma, reads_saturation)


def _lip_trimmed(between: np.ndarray, upper_lip: np.ndarray, lower_lip: np.ndarray) -> np.ndarray:
    """``between`` (bool, the gap between the inner lips) without the rows at the top of each column coloured as
    the ``upper_lip`` and those at its bottom coloured as the ``lower_lip``: each column keeps from its first pixel
    that is not upper lip to its last that is not lower lip, or its middle row where none is left (every column
    keeps a gap, so the slide along the mouth has no step)."""
    below_upper = np.cumsum((between & ~upper_lip).astype(np.int32), axis=0) > 0
    above_lower = np.cumsum((between & ~lower_lip)[::-1].astype(np.int32), axis=0)[::-1] > 0
    trimmed = between & below_upper & above_lower
    all_lip = between.any(0) & ~trimmed.any(0)
    rows = np.arange(between.shape[0])[:, None]
    first, last = between.argmax(0), between.shape[0] - 1 - between[::-1].argmax(0)
    return trimmed | (all_lip & (rows == (first + last) // 2))


def _grey_and_saturation(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``float32`` lightness and saturation (0-255) of ``crop`` (uint8, any channels; a grey one has none), and its
    redness, the log of red over green (a grey crop's is 0)."""
    colour = np.ascontiguousarray(crop[..., :3] if crop.ndim == 3 else crop)
    if colour.ndim == 3:
        red, green = (colour[..., k].astype(np.float32) + 1.0 for k in (0, 1))
        saturation = cv2.cvtColor(colour, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32)
        return _lightness(colour), saturation, np.log(red / green)
    return _lightness(colour), *np.zeros((2, *colour.shape), dtype=np.float32)


def _paler(saturation: np.ndarray, redness: np.ndarray | None, lip: np.ndarray, share: float) -> np.ndarray:
    """Bool: the pixels paler than the median of the ``lip`` pixels, as teeth are: at most ``share`` of their
    ``saturation`` or, given the ``redness`` (:func:`_grey_and_saturation`), less red by :data:`TEETH_LESS_RED`."""
    paler = saturation <= share * np.median(saturation[lip])
    if redness is not None:
        paler |= redness <= np.median(redness[lip]) - TEETH_LESS_RED
    return paler


def _lip_coloured(grey: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Bool over ``grey`` (lightness, :func:`_grey_and_saturation`): pixels neither clearly lighter (teeth, pink ones
    too) nor clearly darker (the inside) than the median of the ``lips``' own pixels."""
    lip_grey = float(np.median(grey[lips]))
    return (grey <= lip_grey + SHOWN_TEETH_LIGHTER) & (grey >= SHOWN_DARK * lip_grey)


def _opens(columns: np.ndarray, iod: float) -> bool:
    """Whether the inside shows along enough of the mouth (``columns``, bool) to close the lips over it."""
    return bool(columns.sum() >= max(SHOWN_WIDTH * iod, 3.0))


def _columns_showing_inside(
    grey: np.ndarray,
    saturation: np.ndarray,
    lips: np.ndarray,
    between: np.ndarray,
    iod: float,
    dark_rows: int,
    redness: np.ndarray | None = None,
) -> np.ndarray:
    """Bool per column of a crop (its ``grey`` lightness and ``saturation``, :func:`_grey_and_saturation`): whether
    the pixels ``between`` the inner lips show teeth or the dark inside (at least ``dark_rows`` tall) there, against
    the median of the ``lips``' own pixels (:func:`inside_shown`), and the few columns between two that do (the dark
    gaps between teeth). A grey photo has no saturation: teeth are told from lips by lightness alone; given the
    ``redness``, teeth less red than the lips are paler too (:func:`_paler`)."""
    if not lips.any():  # no lip in the columns read (a small mouth in a clip's frame): nothing to tell them by
        return np.zeros(lips.shape[1], dtype=bool)
    lip_grey = float(np.median(grey[lips]))
    paler = _paler(saturation, redness, lips, SHOWN_TEETH_SATURATION)
    tall = np.ones((dark_rows, 1), dtype=np.uint8)
    teeth = (grey > lip_grey + SHOWN_TEETH_LIGHTER) & paler & between
    if lip_grey >= OVEREXPOSED_LIPS:  # clipped lips: teeth as light as they are, over an opening's height
        clipped = ((grey >= lip_grey) & paler & between).astype(np.uint8)
        teeth = cv2.morphologyEx(clipped, cv2.MORPH_OPEN, tall) > 0
    dark = ((grey < SHOWN_DARK * lip_grey) & between).astype(np.uint8)
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, tall) > 0
    columns = (teeth | dark).any(0).astype(np.uint8)[None, :]
    reach = 2 * max(1, round(SLIDE_SMOOTHING * iod)) + 1
    return cv2.morphologyEx(columns, cv2.MORPH_CLOSE, np.ones((1, reach), np.uint8))[0] > 0


def mouth_closing(aligned: np.ndarray, strength: float = 1.0, moved: np.ndarray | None = None) -> np.ndarray:
    """The ``(68, 2)`` displacement (px of ``aligned``, the aligned face: y down) that closes the inner lips of
    ``aligned`` to a seam at ``strength`` (zeros for lips that meet already). Whether a mouth closes at all is
    :func:`inside_shown`'s to decide, from what its gap shows.

    ``moved``: the points the displacement moves when the gaps are read on others (dlib's, where
    :func:`inner_lips_on_mesh` reads the gaps on the mesh); their middle pair closes no further than leaves a
    smooth line where the lips meet (:func:`_without_tent`)."""
    aligned = np.asarray(aligned, dtype=np.float64)
    iod = inter_ocular(aligned)
    gaps = _inner_lip_gaps(aligned)
    displacement = np.zeros_like(aligned)
    closing = strength * np.maximum(gaps - SEAM * iod, 0.0)
    pairs = closing if moved is None else _without_tent(closing, _inner_lip_gaps(np.asarray(moved)), iod)
    for (upper, lower), gap in zip(INNER_LIP_PAIRS, pairs):
        displacement[lower, 1] -= LOWER_SHARE * gap
        displacement[upper, 1] += UPPER_SHARE * gap
    mean = closing.mean()  # the jaw rises by the opening as read: only the middle inner points are held back
    for point, share in LOWER_OUTER.items():
        displacement[point, 1] -= share * LOWER_SHARE * mean
    for point, share in UPPER_OUTER.items():
        displacement[point, 1] += share * UPPER_SHARE * mean
    for point, share in CHIN.items():
        displacement[point, 1] -= share * LOWER_SHARE * mean
    return displacement


def _without_tent(closing: np.ndarray, gaps: np.ndarray, iod: float) -> np.ndarray:
    """``closing`` (px per pair of :data:`INNER_LIP_PAIRS`, read where the mesh sees the lips) with the middle pair's
    held back where, applied to the points that move (their ``gaps``), it would leave that pair closer than the
    mean of its neighbours by more than :data:`MAX_SEAM_TENT`: a tent in the line where the lips meet.

    The mesh's gaps are read at a quarter, half and three quarters of the lips' length, dlib's points can sit
    elsewhere (bunched toward one corner on a grin, a sample photo): the lens-shaped gap read at the quarters closed
    the middle pair by 14 px and its neighbours by 10 and 12, where dlib's points were 18-20 px apart; the middle
    pair was left 4.3 px closer than its neighbours, and the lips were stretched over that tent (a beak)."""
    left = gaps - closing
    tent = 0.5 * (left[0] + left[2]) - left[1] - MAX_SEAM_TENT * iod
    if tent <= 0.0:
        return closing
    held = closing.copy()
    held[1] = max(closing[1] - tent, 0.0)
    return held


def close_lips(
    original: np.ndarray,
    warped: np.ndarray,
    warp: FaceWarp,
    shape: np.ndarray,
    mesh: np.ndarray | None = None,
    shown: ShownInside | None = None,
) -> np.ndarray:
    """``warped`` (``warp`` applied to ``original``, a warp that closed an open mouth; uint8, any channels) with the
    lips meeting: whatever of the inside of the mouth the warp left between the lips is covered by the lips
    themselves, each slid toward the line where they meet, and that line is drawn as a soft shadow from mouth
    corner to mouth corner.

    What showed between the lips before (``shown``, :func:`inside_shown` of ``original`` with ``shape``, the 68
    points before the warp, and the Face Mesh ``mesh`` when there is one; read here when not given: nothing is
    closed unless it opens) is carried by the warp's own map, so teeth and dark corners are found where they ended
    up; lip between the inner lip points (dlib's stray onto a laugh's lower lip) is not slid away. Each lip then slides
    whole over the gap, the lower lip most of the way as the jaw rises, and the skin just beyond the lips follows
    (:func:`lips_slid_together`). The lips slide along the face's own vertical axis (a head tilted in the photo
    closes as an upright one would): the closing is planned in the face's upright frame and drawn back into the
    photo with one resampling. Lip colour and texture are the person's own; only pixels the closing changes inside
    the warp's window change."""
    shape = np.asarray(shape, dtype=np.float64)
    shown = inside_shown(original, shape, mesh) if shown is None else shown
    if not shown.opens:  # shut lips: their line moved with them
        return warped
    upright = _upright_frame(shape)
    before_up = transform_points(upright, shape)
    after_up = transform_points(upright, warp.shape)
    iod = inter_ocular(after_up)
    pad = 1.5 * SKIN_REACH * iod + 2
    low = np.floor(np.minimum(before_up[48:60].min(0), after_up[48:60].min(0)) - pad).astype(int)
    high = np.ceil(np.maximum(before_up[48:60].max(0), after_up[48:60].max(0)) + pad).astype(int)
    window = (low[0], low[1], high[0], high[1])  # upright frame px
    corners = after_up[[48, 54]]
    if mesh is not None:  # the mesh's corners, carried as the 68 points' were
        mesh_corners = transform_points(
            upright, np.asarray(mesh, dtype=np.float64)[list(MESH_MOUTH_CORNERS.values()), :2]
        )
        corners = corners - before_up[[48, 54]] + mesh_corners
    carried, remade = _shown_between_lips(shown, warp, upright, window, iod)
    gap = carried | remade
    if not gap.any():
        return warped
    x0, y0 = low
    columns = np.arange(x0, high[0], dtype=np.float64)
    line = np.polyval(_meeting_line(after_up, corners), columns) - y0
    # The lips' outer edges after the warp, out to the corners the gap was read to (the mesh's reach past dlib's on
    # a turned face; between, the lips were flat and only the skin slid, a step beside the lip that slid whole):
    # each lip slides whole from there toward the line.
    lips = after_up.copy()
    lips[[48, 54]] = corners
    edges = tuple(_outline_at(lips[IBUG_LIPS[i]], columns) - y0 for i in (0, 3))
    # Only if the warped gap still shows teeth or the dark inside, read as the photo's was: where the warp's own
    # closing met the lips (a few pixels' gap, a dark seam left) a lip slid over it was erased (Courteney, t1.jpg).
    # Read between the lips' outer edges and corners only: the skin beyond them is as light as teeth.
    rows = np.arange(gap.shape[0])[:, None]
    left, right = np.sort(corners[:, 0])
    within = (rows > edges[0]) & (rows < edges[1]) & (columns > left) & (columns < right)
    warped_up = _upright_crop(warped, upright, window)
    # The warp closes the lips to a seam (SEAM): dark beyond it is inside left showing.
    seam = max(3, round(SEAM * iod) + 2)
    grey, saturation, redness = _grey_and_saturation(warped_up)
    saturation, redness = saturation * shown.reads_saturation, redness * shown.reads_saturation
    reach = round(TEETH_REACH * iod)
    # What the warp re-made beyond the teeth's reach of the carried gap is the inside only where it is not coloured
    # like the lips: on a small face it lies on the bottom of the upper lip and the top of the lower one, and closed
    # over as gap, the upper lip went under (t1.jpg's small tilted woman); teeth it re-made further off stay gap.
    if (within & ~gap).any():
        gap = carried | (remade & (_within_rows(carried, reach) | ~_lip_coloured(grey, within & ~gap)))
    # Read over the gap and the rows beside it where teeth may show (TEETH_REACH): the warp re-makes a smile's
    # teeth as a squeezed strip 2-3 rows below the carried gap, which itself lay on lip; read over the gap alone, the
    # mouth no longer opened and the strip stayed between the closed lips (t1.jpg's smiling man, toward contempt).
    near = _within_rows(gap, reach)
    reading = _columns_showing_inside(grey, saturation, within & ~near, within & near, iod, seam, redness)
    if not (within & ~gap).any() or not _opens(reading, iod):
        return warped
    # Not in a grey photo, where the lit top of a lip is as light as teeth and nothing else tells them apart (CK+
    # S052's lower lip, lit in the middle only, went under there and stood up as two light blobs beside it); the
    # gap carried from the photo takes in its teeth whole there (inside_shown).
    if shown.reads_saturation:
        gap = _with_teeth_beside(gap, grey, edges, reach, saturation=saturation, redness=redness)
    # Each lip's row next to the gap is part teeth, part dark gaps between them: slid to the seam, it drew a
    # stippled line (t1.jpg's laughing woman). Where it is lighter than the lip it goes under with the gap (every
    # such row, a small face's thin upper lip went under too).
    gap = _with_teeth_beside(gap, grey, edges, 1, MIXED_LIGHTER, saturation, redness)
    radius = max(2, round(SLIDE_SMOOTHING * iod))
    slide = lips_slid_together(
        gap, line, edges, SKIN_REACH * iod, radius, THINNEST_LIP * iod, max(2 * radius, round(EDGE_SMOOTHING * iod))
    )
    shade = _lip_line_shade(slide.meet, columns, corners, gap.shape, max(LIP_LINE_WIDTH * iod, 0.7))
    band = max(LIP_LINE_SMOOTHING * iod, 1.0)
    seam = _across_line(slide.meet, gap.shape, band)
    # The line is the lips' own colour in shadow: smoothed along, the lips' inner rows (teeth, their grey shadows)
    # left a cool grey line on warm lips. And so are the closed lips over their whole height: a laugh's lips are
    # reddest in the rows next to the teeth, which go under with the gap or are blurred along the line (the
    # astronaut's closed lips a* 12.4 from 16.6). The colour is read from the lips in the photo, not the warped
    # lips' rows, which take in skin. Beyond the mouth's corners the line runs over skin, which keeps its own colour.
    tint = None
    if shown.lips_chroma is not None:
        # The rows brought as lip thin out toward the corners as lips do (a band of even height was an orange halo
        # along a turned woman's line near her mouth's corner, t1.jpg).
        along = _along_mouth(columns, corners)
        tint_reach = LIP_TINT_REACH * iod * np.sqrt(1.0 - (2.0 * along - 1.0) ** 2)
        body, brought = _closed_lips(slide, edges, rows, SKIN_REACH * iod, tint_reach)
        fade = _corner_fade(along)[None, :]
        # The upper lip's lightness only (its own rows, and the skin brought as lip): the lower lip slides more than
        # it grows, and a wet lower lip's shine is its own.
        lightest = [upper_lip_lightness(original, shape, mesh), [255.0, 255.0]]
        colour = np.hstack([shown.lips_chroma, lightest]).astype(np.float32)
        colour = lip_tone_across(colour, slide.meet, gap.shape[0], band)
        colour[..., 2] += brought * (colour[..., 3] - colour[..., 2])
        tint = (np.ascontiguousarray(colour[..., :3]), seam * fade, body * fade)
    return _draw_closing(warped, warp, upright, window, slide, SKIN_REACH * iod, shade, seam, tint)


def _closed_lips(
    slide: LipSlide, edges: tuple[np.ndarray, np.ndarray], rows: np.ndarray, reach: float, near: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two ``float32`` over the upright window (``rows``, a column of its row numbers, by ``slide``'s columns): 1 where
    the closed lips are drawn from the lips themselves (between their outer ``edges`` before the slide; the skin
    beyond follows them, ``reach`` px, :meth:`LipSlide.source_rows`) and, within ``near`` px (per column) of the
    line where they meet, from the rows the slide brings as lip (:data:`THINNEST_LIP`), fading to 0 over a pixel
    at their edges; and how much of each pixel is drawn from those brought rows alone (skin, not lip)."""
    source = slide.source_rows(rows.astype(np.float64), reach)
    own = np.minimum(source - edges[0][None, :], edges[1][None, :] - source)
    brought = np.minimum(rows - slide.upper_edge[None, :], slide.lower_edge[None, :] - rows)
    brought = np.minimum(brought, near[None, :] - np.abs(rows - slide.meet[None, :]))
    own, brought = (np.clip(weight + 0.5, 0.0, 1.0).astype(np.float32) for weight in (own, brought))
    return np.maximum(own, brought), brought * (1.0 - own)


def _within_rows(mask: np.ndarray, reach: int) -> np.ndarray:
    """Bool: ``mask`` grown by ``reach`` rows up and down each column (across the mouth, in the upright frame)."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * reach + 1, 1), np.uint8)) > 0


def _upright_frame(shape: np.ndarray) -> np.ndarray:
    """The ``2x3`` rotation (about the mouth) from image px to the face's upright frame, where the eye line of
    ``shape`` (68 points) is level: there each column runs across the mouth, from nose to chin."""
    rotation = _face_axes(shape)
    centre = shape[48:68].mean(0)
    return np.hstack([rotation, (centre - rotation @ centre)[:, None]])


def _draw_closing(
    warped: np.ndarray,
    warp: FaceWarp,
    upright: np.ndarray,
    window: tuple[int, int, int, int],
    slide: LipSlide,
    reach: float,
    shade: np.ndarray,
    seam: np.ndarray,
    tint: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``warped`` with the closing planned over the ``window`` of the upright frame (``slide``, the skin following
    over ``reach`` px; ``shade``: how much darker each pixel gets; ``seam``: how much of each pixel is smoothed along
    the face's eye line, 0-1; ``tint``: the lips' Lab tone, :func:`~.lip_tone.lip_tone_across`, and how much of it
    each pixel takes along the line and over the lips, :func:`~.lip_tone.lip_tinted`) drawn into the image: only
    pixels inside ``warp``'s window that the closing changes are written, the rest stay bit-identical."""
    x0, y0, x1, y1 = window
    # The image box the upright window covers, clipped to what the warp may change.
    to_image = cv2.invertAffineTransform(upright)
    covered = transform_points(to_image, np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64))
    rx0, ry0, rx1, ry1 = warp.roi
    ix0, iy0 = np.maximum(np.floor(covered.min(0)).astype(int) - 1, (rx0, ry0))
    ix1, iy1 = np.minimum(np.ceil(covered.max(0)).astype(int) + 2, (rx1, ry1))
    if ix1 - ix0 < 1 or iy1 - iy0 < 1:
        return warped
    # Each image pixel's place in the upright window, where the slide was planned: evaluated there exactly (an
    # interpolated slide would blend the two lips' slides into the mouth's inside at the seam).
    columns, rows = _pixels_through(upright, (ix0, iy0, ix1, iy1), (x0, y0))
    across = (columns >= 0) & (columns <= x1 - x0 - 1)
    offset = np.where(across, slide.at(columns).source_rows(rows, reach) - rows, 0.0)
    at_x, at_y = columns.astype(np.float32), rows.astype(np.float32)

    def sampled(field: np.ndarray) -> np.ndarray:  # a field of the upright window at the image's pixels
        return cv2.remap(field, at_x, at_y, cv2.INTER_LINEAR)

    shade, seam = sampled(shade), sampled(seam)
    # A slide down the face is, in the image, a slide along the face's vertical axis.
    image_x, image_y = np.meshgrid(np.arange(ix0, ix1, dtype=np.float64), np.arange(iy0, iy1, dtype=np.float64))
    map_x = (image_x + to_image[0, 1] * offset).astype(np.float32)
    map_y = (image_y + to_image[1, 1] * offset).astype(np.float32)
    closed = cv2.remap(warped, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    closed = _smoothed_along(closed, to_image[:, 0].astype(np.float32), seam)
    colour = closed[..., :3] if closed.ndim == 3 else closed
    tinted = np.zeros(offset.shape, dtype=bool)
    if tint is not None and closed.ndim == 3:
        tone, line, body = (sampled(field) for field in tint)
        colour[...], tinted = lip_tinted(colour, tone, line, body)
    darker = 1.0 - (shade[:, :, None] if closed.ndim == 3 else shade)
    colour[...] = np.clip(np.rint(colour.astype(np.float32) * darker), 0, 255)
    # Inside the warp's ring only (its window is also 0 inside where the warp moved nothing, e.g. held teeth).
    inside_ring = np.zeros((iy1 - iy0, ix1 - ix0), dtype=np.uint8)
    cv2.fillPoly(inside_ring, [np.round((warp.ring - [ix0, iy0]) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    changed = ((offset != 0) | (shade > 0) | (seam > 0) | tinted) & (inside_ring > 0)
    out = warped.copy()
    out[iy0:iy1, ix0:ix1][changed] = closed[changed]
    return out


def _smoothed_along(image: np.ndarray, axis: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``image`` (uint8, any channels) blended, by ``weight`` (0-1 per pixel), with itself smoothed along the unit
    vector ``axis`` (image px; a 1-4-6-4-1 kernel): the line where the lips meet runs along it, and is smoothed
    along its length, not across it."""
    height, width = image.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    along = np.zeros(image.shape, dtype=np.float32)
    for step, share in zip(range(-2, 3), (1, 4, 6, 4, 1)):
        shifted = cv2.remap(
            image, xs + step * axis[0], ys + step * axis[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        along += share / 16 * shifted
    weight = weight[:, :, None] if image.ndim == 3 else weight
    return np.clip(np.rint(image * (1.0 - weight) + along * weight), 0, 255).astype(np.uint8)


def _pixels_through(
    matrix: np.ndarray, box: tuple[int, int, int, int], origin: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of ``box`` (``x0, y0, x1, y1``) goes through the ``2x3`` affine ``matrix``, relative to
    ``origin``: ``x`` and ``y`` (float64, ``box``'s shape)."""
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
    return (
        matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2] - origin[0],
        matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2] - origin[1],
    )


def _inner_lip_gaps(shape: np.ndarray) -> np.ndarray:
    """The gaps (px) between the inner lip points facing each other (:data:`INNER_LIP_PAIRS`), along the face's
    vertical axis (square to the eye line: a tilted head's lips part along it, not along the image's columns)."""
    down = _face_axes(shape)[1]
    return np.array([(shape[lower] - shape[upper]) @ down for upper, lower in INNER_LIP_PAIRS])


def _face_axes(shape: np.ndarray) -> np.ndarray:
    """``2x2``: the unit vectors (rows, image px) across the face of ``shape`` (68 points), along its eye line from
    the subject's right eye to the left, and down the face, square to it."""
    direction = shape[42:48].mean(0) - shape[36:42].mean(0)
    cos, sin = direction / np.linalg.norm(direction)
    return np.array([[cos, sin], [-sin, cos]])


def _shown_between_lips(
    shown: ShownInside,
    warp: FaceWarp,
    upright: np.ndarray,
    window: tuple[int, int, int, int],
    iod: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Two booleans over ``window`` (px of the ``upright`` frame) of the warped photo: the pixels that show what was
    between the lips before the warp (``shown``'s gap, grown by :data:`INSIDE_GROW`, carried through the warp's
    map), and what the warp re-made there (``warp.mouth.inside``). Not both landmark sets' gaps: dlib's inner lip
    points on an open mouth stray onto the lower lip, and a lip marked as gap was slid away under the other lip."""
    rx0, ry0, rx1, ry1 = warp.roi
    before = np.zeros((ry1 - ry0, rx1 - rx0), dtype=np.uint8)
    rows, columns = np.nonzero(shown.mask)
    rows, columns = rows + shown.box[1] - ry0, columns + shown.box[0] - rx0
    in_roi = (rows >= 0) & (rows < ry1 - ry0) & (columns >= 0) & (columns < rx1 - rx0)
    before[rows[in_roi], columns[in_roi]] = 255
    grow = round(INSIDE_GROW * iod)
    before = cv2.dilate(before, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
    # Where each pixel of the upright window lies in the ROI, and where the warp took it from: one resampling.
    at_x, at_y = (
        at.astype(np.float32) for at in _pixels_through(cv2.invertAffineTransform(upright), window, (rx0, ry0))
    )

    def sample(field: np.ndarray) -> np.ndarray:
        return cv2.remap(field, at_x, at_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    source_x, source_y = sample(warp.map_x - rx0), sample(warp.map_y - ry0)
    carried = cv2.remap(before, source_x, source_y, cv2.INTER_LINEAR) > 96
    remade = np.zeros_like(carried) if warp.mouth is None else sample(warp.mouth.inside.astype(np.float32)) > 0.4
    warped = sample(warp.weight.astype(np.float32)) > 0
    return carried & warped, remade & warped


def _upright_crop(image: np.ndarray, upright: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` (uint8, any channels; at most its colour) over ``window`` of the ``upright`` frame."""
    x0, y0, x1, y1 = window
    # Only the image box the window covers (and the next pixel, for the interpolation) is resampled, not the photo.
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64)
    covered = transform_points(cv2.invertAffineTransform(upright), corners)
    height, width = image.shape[:2]
    bx0, by0 = np.clip(np.floor(covered.min(0)).astype(int) - 1, 0, (width, height))
    bx1, by1 = np.clip(np.ceil(covered.max(0)).astype(int) + 2, 0, (width, height))
    matrix = upright.copy()
    matrix[:, 2] += matrix[:, :2] @ (bx0, by0) - (x0, y0)
    colour = np.ascontiguousarray(image[by0:by1, bx0:bx1, :3] if image.ndim == 3 else image[by0:by1, bx0:bx1])
    return cv2.warpAffine(colour, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)


def _lightness(colour: np.ndarray) -> np.ndarray:
    """``float32`` lightness (0-255) of ``colour`` (uint8, grey or RGB)."""
    return (cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY) if colour.ndim == 3 else colour).astype(np.float32)


def _with_teeth_beside(
    gap: np.ndarray,
    lightness: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    reach: int,
    lighter: float = TEETH_LIGHTER,
    saturation: np.ndarray | None = None,
    redness: np.ndarray | None = None,
) -> np.ndarray:
    """``gap`` grown in each column over the teeth just beyond it: up to ``reach`` rows above its top and below its
    bottom that are ``lighter`` (:data:`TEETH_LIGHTER`) than the middle of the lip on that side (between the
    lip's outer edge, ``edges``, and the gap) and, given the ``saturation``, paler (:data:`TEETH_SATURATION`, or
    less red given the ``redness``: :func:`_paler`), and
    no more rows than the median of the columns within ``reach``.
    The carried inner lips stop short of a laugh's teeth where the lips roll over them, and teeth left under a lip
    were slid up with it as a pale band under the seam."""
    if reach < 1:
        return gap
    grown = gap.copy()
    rows = np.arange(gap.shape[0])[:, None]
    columns = np.arange(gap.shape[1])
    shows = gap.any(0)
    ends = (np.where(shows, gap.argmax(0), 0), np.where(shows, gap.shape[0] - 1 - gap[::-1].argmax(0), 0))
    for side, edge, end in zip((-1, 1), edges, ends):
        # The lip's own middle: between its outer edge and the gap, beyond where teeth may show.
        lip = ((rows - edge) * (rows - end) < 0) & (np.abs(rows - end) > reach) & shows
        if not lip.any():
            continue
        teeth = lightness > np.median(lightness[lip]) + lighter
        if saturation is not None:  # and paler than the lip (TEETH_SATURATION): not its own lit middle
            teeth &= _paler(saturation, redness, lip, TEETH_SATURATION)
        # A row beyond the gap is teeth only while every row between it and the gap is.
        growing, rows_of_teeth = shows.copy(), np.zeros(gap.shape[1], dtype=int)
        for step in range(1, reach + 1):
            row = end + side * step
            growing &= (row >= 0) & (row < gap.shape[0])
            growing[growing] = teeth[row[growing], columns[growing]]
            rows_of_teeth += growing
        # Teeth show along the mouth, a tooth's width at least: a light pixel of lip in a column or two counted as
        # teeth slid that lip a row further than beside it, a stair-step in the lip's edge (a lip corner, t1.jpg).
        window = np.lib.stride_tricks.sliding_window_view(np.pad(rows_of_teeth, reach, mode="edge"), 2 * reach + 1)
        rows_of_teeth = np.minimum(rows_of_teeth, np.median(window, axis=1))
        for step in range(1, reach + 1):
            teeth_here = rows_of_teeth >= step
            grown[(end + side * step)[teeth_here], columns[teeth_here]] = True
    return grown


def _meeting_line(after: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Coefficients of the quadratic ``y(x)`` (image px) where the closed lips meet: through the mouth corners and
    midway between the moved inner lips (a curve: through dlib's points it would zigzag)."""
    middle = (after[[60, 61, 62, 63, 64]] + after[[60, 67, 66, 65, 64]]) / 2
    points = np.vstack([corners, middle])
    weights = np.array([2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    return np.polyfit(points[:, 0], points[:, 1], 2, w=weights)


def _outline_at(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The y of the polyline ``points`` (from one mouth corner to the other) at each ``x``."""
    order = np.argsort(points[:, 0])
    return np.interp(x, points[order, 0], points[order, 1])


def _lip_line_shade(
    line: np.ndarray, columns: np.ndarray, corners: np.ndarray, size: tuple[int, int], width: float
) -> np.ndarray:
    """``float32`` of ``size``: how much darker each pixel is along the line where the lips meet (``line``: its row
    in each crop column at image x ``columns``), fading in from each mouth corner and zero beyond them."""
    return LIP_LINE_SHADE * _across_line(line, size, width) * _corner_fade(_along_mouth(columns, corners))[None, :]


def _corner_fade(along: np.ndarray) -> np.ndarray:
    """``float32`` per column, ``along`` the mouth (:func:`_along_mouth`): 1 along its middle, fading to 0 at its
    corners (over :data:`LIP_LINE_FADE` of its width) and 0 beyond them."""
    fade = np.clip(np.minimum(along, 1.0 - along) / LIP_LINE_FADE, 0.0, 1.0)
    return np.sin(0.5 * np.pi * fade).astype(np.float32)


def _along_mouth(columns: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """How far along the mouth each image x of ``columns`` is, from one of its ``corners`` (0) to the other (1)."""
    left, right = sorted(corners[:, 0])
    return np.clip((columns - left) / max(right - left, 1e-9), 0.0, 1.0)


def _across_line(line: np.ndarray, size: tuple[int, int], width: float) -> np.ndarray:
    """``float32`` of ``size``: a Gaussian (sigma ``width`` px) across the ``line`` (its row in each column), 1 on
    it; below 1/50 it is 0 (the pixels beyond stay as they were)."""
    rows = np.arange(size[0], dtype=np.float64)[:, None]
    across = np.exp(-0.5 * ((rows - line[None, :]) / width) ** 2)
    return np.where(across < 0.02, 0.0, across).astype(np.float32)
