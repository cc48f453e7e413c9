"""How closing lips slide and grow over what is left of a mouth's inside (part of the geometry stage).

:func:`~.mouth_closing.close_lips` plans a closing in the face's upright frame, one column across the mouth at a time:
each lip slides toward the line where the lips meet, grows a little toward it (a relaxed mouth's lips are fuller
than a laugh's stretched ones) and the skin just beyond it stretches to follow. :func:`lips_slid_together` plans that
slide from the gap's rows per column; :class:`LipSlide` says, for any row, which row of the photo it is drawn from.
Torch-free: numpy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "LIP_FULLNESS",
    "LIP_STRETCH",
    "LOWER_SHARE",
    "SLIDE_TAPER",
    "UPPER_SHARE",
    "LipSlide",
    "lips_slid_together",
]

#: How much of the closing each point makes: the lower lip goes with the jaw, the upper lip comes down a little,
#: the chin rises with the jaw but less than the lip (the lower lip also rolls up over the teeth).
LOWER_SHARE = 0.75
UPPER_SHARE = 0.25
#: Beyond the gap's ends each lip's slide tapers off along the mouth by at most this much per column (px per px).
SLIDE_TAPER = 0.5
#: How much taller each lip grows toward the line where the lips meet instead of sliding whole (a relaxed mouth's
#: lips are fuller than a laugh's stretched ones; 1.7 and 2.0 filled the astronaut's lips more but drew a light bump
#: under a laughing man's seam, t1.jpg, where his lower lip is a dark line over the teeth), and the least and most
#: of its height it is drawn at where the gap's edge is ragged or its outer edge can slide no further.
LIP_FULLNESS = 1.4
LIP_STRETCH = (0.75, 2.0)


class LipSlide(NamedTuple):
    """How the lips slide together, per column of the upright window (rows, y down): where they meet, how far the
    upper lip's outer edge slides down and the lower lip's up, the lips' outer edges once slid, and how much taller
    each lip is drawn than it was (1: slid whole)."""

    meet: np.ndarray
    down: np.ndarray
    up: np.ndarray
    upper_edge: np.ndarray
    lower_edge: np.ndarray
    upper_stretch: np.ndarray
    lower_stretch: np.ndarray

    def at(self, columns: np.ndarray) -> LipSlide:
        """The slide at (fractional) ``columns`` of any shape: smooth along the mouth, so interpolated."""
        grid = np.arange(len(self.meet), dtype=np.float64)
        return LipSlide(*(np.interp(columns, grid, values) for values in self))

    def source_rows(self, rows: np.ndarray, reach: float) -> np.ndarray:
        """The row each of ``rows`` (fractional, broadcast with the slide's columns) takes its colour from: each
        lip's rows, from its outer edge to the line where the lips meet, come from its own rows (stretched by its
        ``stretch``); the skin from a lip's outer edge to ``reach`` px beyond it stretches to follow. Evaluated at
        any row, so a tilted face is resampled once and never across the seam where the lips meet."""
        above = self.upper_edge - reach - self.down  # where the skin stops following
        below = self.lower_edge + reach + self.up
        source = np.asarray(rows, dtype=np.float64)  # np.where broadcasts it with the columns
        over_skin_above = (rows > above) & (rows < self.upper_edge)
        over_skin_below = (rows > self.lower_edge) & (rows < below)
        source = np.where(over_skin_above, above + (rows - above) * (reach / (reach + self.down)), source)
        upper_lip = self.upper_edge - self.down + (rows - self.upper_edge) / self.upper_stretch
        lower_lip = self.lower_edge + self.up - (self.lower_edge - rows) / self.lower_stretch
        source = np.where((rows >= self.upper_edge) & (rows <= self.meet), upper_lip, source)
        source = np.where((rows > self.meet) & (rows <= self.lower_edge), lower_lip, source)
        return np.where(over_skin_below, below - (below - rows) * (reach / (reach + self.up)), source)


def lips_slid_together(
    gap: np.ndarray,
    line: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray],
    reach: float,
    radius: int,
    thinnest: float = 0.0,
    edge_radius: int | None = None,
) -> LipSlide:
    """How the lips slide over the crop of ``gap`` (:class:`LipSlide`) until they meet within the gap (on the
    meeting ``line``, rows per column, where no gap shows): the upper lip down over what shows below it, the lower
    lip up, each a little taller than it was (:func:`_fuller_lips`). The skin between a lip's outer edge
    (``edges``, rows per column) and ``reach`` px beyond it stretches to follow, so the lips keep their texture (a
    lip mirrored or stretched over a gap taller than itself is drawn as vertical streaks). How far each lip slides
    is smoothed along the mouth and never less than the gap next to it (over ``radius`` columns), so no column
    stands out; a gap too tall to cover without folding the skin is covered as far as it can be. Each lip brings at
    least ``thinnest`` px of itself to the line; its outer edge slides by an amount smoothed over ``edge_radius``
    columns each side (``2 radius`` when not given), the lip growing toward the line for the rest."""
    height = gap.shape[0]
    shows = gap.any(0)
    # The gap's top and bottom rows in each column it crosses, and how far each lip must slide to reach the line.
    top = np.where(shows, gap.argmax(0) - 1.0, line)
    bottom = np.where(shows, height - gap[::-1].argmax(0), line)
    # Each lip slides at least ``thinnest`` rows of itself: where the outer lip points lie about on the gap (a thin
    # lip, or one the gap's teeth took in) the skin stretched down to the seam, and the lip was lost (t1.jpg).
    thinner = (np.maximum(edges[0] - (top - thinnest), 0.0), np.maximum((bottom + thinnest) - edges[1], 0.0))
    upper, lower = (_smooth_cover(np.where(shows, lack, 0.0), radius) for lack in thinner)
    edges = (edges[0] - upper, edges[1] + lower)
    # As a jaw rises, the lower lip covers most of the gap (the upper lip would drag a moustache or the skin under
    # the nose down with it); smoothed so the seam has no steps.
    meet = np.where(shows, top + UPPER_SHARE * (bottom - top), line)
    # But no higher than the upper lip grown to LIP_FULLNESS times its height (within the gap): a thin gap under a
    # talking mouth's upper lip left it as thin as it was stretched over the teeth, a dark line over the seam
    # (sample photo of a woman talking, 68 px between the eyes).
    fuller = np.minimum(top + (LIP_FULLNESS - 1.0) * np.maximum(top - edges[0], 0.0), bottom)
    meet = np.where(shows, np.maximum(meet, fuller), meet)
    # The skin beyond each lip may stretch to at most 1.5 times its length (further, it would fold): where the lower
    # lip cannot rise that far, the upper lip comes down the rest (a laugh's tall gap, closed toward sad, left a row
    # or two of lower teeth under the seam, t1.jpg).
    cap = 0.5 * reach
    # A gap taller than both lips may slide at that (a laugh on a tilted head) stretches the skin up to 1.75 times.
    cap = _smooth_cover(np.where(shows, np.clip((bottom - top) / 2, cap, 0.75 * reach), cap), radius)
    meet = np.where(shows, np.maximum(meet, np.minimum(bottom - cap, top + cap)), meet)
    meet = _running_mean(meet, 2 * radius)
    need_down = np.where(shows, np.maximum(meet - top, 0.0), 0.0)
    need_up = np.where(shows, np.maximum(bottom - meet, 0.0), 0.0)
    # Smoothed, but never past the gap next to it: a lip slid further than the gap goes under the other lip and is
    # cut away (a lower lip slid up by the widest gap nearby was erased where the gap was thin).
    down = np.minimum(_smooth_cover(need_down, radius), _running_max(need_down, 1))
    up = np.minimum(_smooth_cover(need_up, radius), _running_max(need_up, 1))
    # Beyond the gap's ends the slide tapers off instead of stopping in one column: stopped, it cut a step into
    # the lip there (a lower lip slid up beside its own corner, t1.jpg toward angry and neutral).
    down, up = _tapered(down, shows, SLIDE_TAPER), _tapered(up, shows, SLIDE_TAPER)
    # Where the gap shows, each lip reaches the line from its own last row beside the gap (slid whole by the slide
    # smoothed along the mouth, it went further under the other lip than the gap asked), but not from a column
    # or two out of line (a tooth's light pixel): a thin lip drawn from there showed the skin beyond it as a light
    # tick under the seam (t1.jpg's laughing man).
    upper_inner = np.where(shows, np.clip(-_running_max(-top, 1), meet - down, meet), meet - down)
    lower_inner = np.where(shows, np.clip(_running_max(bottom, 1), meet, meet + up), meet + up)
    # And from a row smoothed along the mouth, never nearer the gap than its own: following the gap's ragged edge,
    # each column drew its lip at a different stretch, vertical streaks under a jagged seam (t1.jpg's laughing man).
    upper_inner = np.minimum(_running_mean(upper_inner, 1), upper_inner)
    lower_inner = np.maximum(_running_mean(lower_inner, 1), lower_inner)
    edge_radius = 2 * radius if edge_radius is None else edge_radius
    return _fuller_lips(meet, (edges[0], upper_inner), (edges[1], lower_inner), cap, edge_radius)


def _fuller_lips(
    meet: np.ndarray,
    upper: tuple[np.ndarray, np.ndarray],
    lower: tuple[np.ndarray, np.ndarray],
    cap: np.ndarray | float,
    radius: int,
) -> LipSlide:
    """The slide (:class:`LipSlide`) that takes each lip (its outer edge and its last row beside the gap, rows per
    column: ``upper``, ``lower``) to the ``meet`` line: a lip grows up to :data:`LIP_FULLNESS` times its height
    toward the line and its outer edge (and the skin beyond, at most ``cap`` px) slides the rest, smoothed along
    the mouth over ``radius`` columns each side. A laugh's stretched lips slid whole
    met as a line between skin; a relaxed mouth's lips are fuller."""
    slides, stretches = [], []
    for (outer, inner), sign in ((upper, 1.0), (lower, -1.0)):
        height = np.maximum(sign * (inner - outer), 0.0)
        need = sign * (meet - inner)  # slid whole
        grown = need - (LIP_FULLNESS - 1.0) * height
        # Smoothed along the mouth, so the lip's outer edge has no steps or bumps; where the gap's
        # edge is ragged the lip is stretched a little more or less instead, within LIP_STRETCH (further, it is
        # drawn as streaks: where the skin can follow no further, what the lip cannot reach stays uncovered).
        slide = _running_mean(grown, radius)
        slide = np.clip(slide, need - (LIP_STRETCH[1] - 1.0) * height, need + (1.0 - LIP_STRETCH[0]) * height)
        slide = np.clip(slide, 0.0, cap)
        thick = height >= 1.0  # a lip thinner than a pixel (beyond the corners) slides whole
        slides.append(np.where(thick, slide, np.clip(need, 0.0, cap)))
        stretch = np.minimum((height + need - slide) / np.maximum(height, 1.0), LIP_STRETCH[1])
        stretches.append(np.where(thick, stretch, 1.0))
    (down, up), (upper_stretch, lower_stretch) = slides, stretches
    return LipSlide(meet, down, up, upper[0] + down, lower[0] - up, upper_stretch, lower_stretch)


def _running_max(values: np.ndarray, radius: int) -> np.ndarray:
    """The largest of ``values`` within ``radius`` columns each side of each column."""
    window = np.lib.stride_tricks.sliding_window_view(np.pad(values, radius, mode="edge"), 2 * radius + 1)
    return window.max(1)


def _running_mean(values: np.ndarray, radius: int) -> np.ndarray:
    """The mean of ``values`` within ``radius`` columns each side of each column."""
    kernel = np.ones(2 * radius + 1) / (2 * radius + 1)
    return np.convolve(np.pad(values, radius, mode="edge"), kernel, mode="valid")


def _tapered(slide: np.ndarray, shows: np.ndarray, slope: float) -> np.ndarray:
    """``slide`` (px per column) raised beyond the first and last columns where ``shows`` to a ramp from the slide
    there, falling by ``slope`` px per column."""
    if not shows.any():
        return slide
    columns = np.arange(len(slide))
    first, last = shows.argmax(), len(shows) - 1 - shows[::-1].argmax()
    ramp = np.where(columns < first, slide[first] - slope * (first - columns), 0.0)
    ramp = np.where(columns > last, slide[last] - slope * (columns - last), ramp)
    return np.maximum(slide, ramp)


def _smooth_cover(need: np.ndarray, radius: int) -> np.ndarray:
    """``need`` (px per column) smoothed along the mouth and never less than it was: a running maximum over
    ``2 radius`` columns each side, then two running means over ``radius`` each side (each mean stays above the
    maximum over the columns the next one reaches)."""
    spread = _running_max(need, 2 * radius)
    for _ in range(2):
        spread = _running_mean(spread, radius)
    return np.maximum(spread, need)
