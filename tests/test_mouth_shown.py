"""The one gate for closing a mouth (geometry/mouth_closing.inside_shown): what the gap between the lips shows."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import make_tiny_pipeline

from diffusers_led.faces.loader import load_face_detector
from diffusers_led.geometry.action_units import neutral_shape
from diffusers_led.geometry.mouth_closing import MESH_LIPS, close_lips, inside_shown
from diffusers_led.geometry.warp import action_unit_warp

SKIN, LIP, TEETH, DARK = (205, 160, 130), (185, 90, 95), (236, 232, 222), (45, 20, 25)


def mouth(gap: float, between: tuple[int, int, int], lip: tuple[int, int, int] = LIP) -> tuple[np.ndarray, np.ndarray]:
    """A photo of skin and ``lip``-coloured lips (inter-ocular distance 60 px) whose inner lips are ``gap`` px apart
    in the middle, the gap painted ``between``, and its 68 points."""
    shape = neutral_shape() * 60 + (5, -50)
    seam = shape[[61, 62, 63, 65, 66, 67], 1].mean()
    shape[[61, 62, 63], 1] = seam - gap / 2
    shape[[65, 66, 67], 1] = seam + gap / 2
    shape[[50, 51, 52]] -= (0, gap / 2)
    shape[[56, 57, 58]] += (0, gap / 2)
    image = np.full((200, 200, 3), SKIN, dtype=np.uint8)
    cv2.fillPoly(image, [np.round(shape[48:60] * 16).astype(np.int32)], lip, cv2.LINE_AA, shift=4)
    cv2.fillPoly(image, [np.round(shape[60:68] * 16).astype(np.int32)], between, cv2.LINE_AA, shift=4)
    return image, shape


@pytest.mark.parametrize(
    ("gap", "between", "opens"),
    [
        (3.0, TEETH, True),  # a smile's strip of teeth a few pixels tall (t1.jpg: 2.2-2.9 px) is open
        (8.0, DARK, True),
        (8.0, LIP, False),  # the inner lip points apart on the lips' own colour: shut (a lip, not a gap)
        (1.5, DARK, False),  # a shut mouth's seam: a thin dark line
    ],
)
def test_a_mouth_is_open_when_its_gap_shows_teeth_or_the_dark_inside_not_lip(gap, between, opens):
    image, shape = mouth(gap, between)
    shown = inside_shown(image, shape)
    assert shown.opens == opens
    x0, y0, x1, y1 = shown.box
    assert shown.mask.shape == (y1 - y0, x1 - x0)
    assert shown.mask.any() == opens


def test_a_grey_photo_and_an_rgba_one_read_as_the_colour_photo():
    image, shape = mouth(3.0, TEETH)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    assert inside_shown(grey, shape).opens and inside_shown(rgba, shape).opens
    shut = mouth(1.5, DARK)
    assert not inside_shown(cv2.cvtColor(shut[0], cv2.COLOR_RGB2GRAY), shut[1]).opens


def test_a_few_pixels_of_teeth_between_the_lips_are_covered_when_the_mouth_closes():
    """A smile parted 3 px over its teeth, toward a target that parts no lips: the lips close over the teeth. Three
    landmark thresholds let such a gap through (lips parted under 4 px were not covered): a strip of teeth stayed
    between the closed lips (t1.jpg's smiling man)."""
    image, shape = mouth(3.0, TEETH)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    warped = warp.apply(image)
    closed = close_lips(image, warped, warp, shape)
    lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(warp.shape[48:60]).astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((3, 3), np.uint8)) > 0

    def teeth(picture: np.ndarray) -> int:
        return int(((np.abs(picture.astype(int) - TEETH).sum(2) < 60) & lips).sum())

    assert teeth(warped) > 10  # the warp alone squeezes them into a strip
    assert teeth(closed) == 0


def test_teeth_between_nearly_grey_lips_are_told_by_lightness_as_in_a_grey_photo():
    """Pale lips under a cold cast (the astronaut's lips and teeth, RGB scaled by 0.75, 0.9, 1.1) are nearly grey
    and the teeth, tinted blue, more saturated than they are: read by saturation the teeth were lip, the mouth shut,
    and they stayed between the lips closed toward neutral."""
    image, shape = mouth(3.0, TEETH, lip=(209, 155, 141))
    cold = np.clip(image * np.array([0.75, 0.9, 1.1]), 0, 255).astype(np.uint8)
    assert inside_shown(cold, shape).opens
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, cold.shape[:2], close_mouth=1.0)
    closed = close_lips(cold, warp.apply(cold), warp, shape)
    lips = np.zeros(cold.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(warp.shape[48:60]).astype(np.int32)], 1)
    cold_teeth = np.clip(np.array(TEETH) * [0.75, 0.9, 1.1], 0, 255)
    assert int(((np.abs(closed.astype(int) - cold_teeth).sum(2) < 60) & (lips > 0)).sum()) == 0


def test_teeth_just_beside_the_carried_gap_are_covered_when_the_gap_itself_shows_lip(monkeypatch):
    """After the warp, what was between the lips lies on lip and the teeth it re-made are a strip two rows below
    it: the lips close over the strip. Read over the carried gap alone, the mouth no longer opened and the strip
    stayed between the closed lips (t1.jpg's smiling man, toward contempt and angry)."""
    import diffusers_led.geometry.mouth_closing as mouth_closing

    image, shape = mouth(3.0, TEETH)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    warped = warp.apply(image)
    lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(lips, [np.round(warp.shape[48:60] * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    warped[lips > 0] = LIP
    seam = round(warp.shape[60:68, 1].mean())
    left, right = round(warp.shape[48, 0]) + 6, round(warp.shape[54, 0]) - 6
    carried = np.zeros(image.shape[:2], np.uint8)
    carried[seam - 1 : seam + 1, left:right] = 1
    warped[seam + 1 : seam + 3, left:right] = TEETH

    def carried_gap(shown, warp, upright, window, iod):  # the gap the warp carried over the upright window
        x0, y0, x1, y1 = window
        matrix = upright.copy()
        matrix[:, 2] -= (x0, y0)
        gap = cv2.warpAffine(carried, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_NEAREST) > 0
        return gap, np.zeros_like(gap)  # nothing re-made

    monkeypatch.setattr(mouth_closing, "_shown_between_lips", carried_gap)
    closed = close_lips(image, warped, warp, shape)

    def teeth(picture: np.ndarray) -> int:
        return int((np.abs(picture.astype(int) - TEETH).sum(2) < 60).sum())

    assert teeth(warped) > 50
    assert teeth(closed) == 0  # old code: all 82 pixels of the strip


def test_lip_the_warp_re_made_as_inside_away_from_the_carried_gap_is_not_closed_over():
    """The inside the warp re-made lies on three rows of the upper lip, beyond the teeth's reach of the gap carried
    from the photo (a small face's re-made inside lies on its lips, t1.jpg's small tilted woman): those rows are
    lip, not gap, and the closed lips keep them. Closed over as gap, the upper lip went under (old code: 16.3 rows
    of lip before, 13.0 after)."""
    import dataclasses

    image, shape = mouth(6.0, TEETH)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    warped = warp.apply(image)
    top = np.flatnonzero((np.abs(warped.astype(int) - TEETH).sum(2) < 60).any(1))[0]
    left, right = round(warp.shape[48, 0]) + 6, round(warp.shape[54, 0]) - 6
    x0, y0, x1, y1 = warp.roi
    inside = np.zeros((y1 - y0, x1 - x0), np.float32)
    inside[top - 7 - y0 : top - 4 - y0, left - x0 : right - x0] = 1.0
    warp = dataclasses.replace(warp, mouth=dataclasses.replace(warp.mouth, inside=inside))
    closed = close_lips(image, warped, warp, shape)
    columns = np.arange(left + 5, right - 5)

    def rows_of(picture: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
        return (np.abs(picture.astype(int) - colour).sum(2) < 60)[:, columns].sum(0)

    assert rows_of(closed, LIP).mean() > rows_of(warped, LIP).mean() - 1
    assert rows_of(closed, TEETH).sum() == 0


@pytest.mark.parametrize("degrees", [0.0, -8.0, 15.0])
def test_closed_lips_meet_along_a_smooth_line_not_a_zipper(degrees):
    """A laugh's teeth with dark gaps between them, closed: the lips meet along a continuous line. The lips' rows
    next to the teeth, slid to the seam, drew it stippled (alternating light and grey pixels, t1.jpg's laughing
    woman); so did a tilted line's pixels falling to one lip or the other."""
    image, shape = mouth(8.0, TEETH)
    gap = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(gap, [np.round(shape[60:68] * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    image[(gap > 0) & (np.arange(200) // 3 % 2 == 0)[None, :]] = DARK  # the dark between teeth 3 px wide
    tilt = cv2.getRotationMatrix2D(shape[48:68].mean(0), degrees, 1.0)
    image = cv2.warpAffine(image, tilt, (200, 200), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    shape = shape @ tilt[:, :2].T + tilt[:, 2]
    warp = action_unit_warp(shape, cv2.invertAffineTransform(tilt), {}, image.shape[:2], close_mouth=1.0)
    closed = close_lips(image, warp.apply(image), warp, shape)
    grey = cv2.cvtColor(closed, cv2.COLOR_RGB2GRAY).astype(float)
    # The seam: the darkest row of each column over the middle of the mouth, between the lips' outer edges.
    left, right = shape[48, 0], shape[54, 0]
    columns = np.arange(int(left + 0.25 * (right - left)), int(right - 0.25 * (right - left)))
    top, bottom = int(shape[48:60, 1].min()), int(shape[48:60, 1].max()) + 1
    seam = grey[top:bottom, columns].min(0)
    assert seam.max() < grey[top:bottom, columns].mean(), "the lips meet along a darker line"
    stipple = np.abs(seam[1:-1] - (seam[:-2] + seam[2:]) / 2)
    # Old code: 12.5, 8.5 and 12 levels; a smooth line 1.5-4.
    assert stipple.max() < 6, f"the seam's grey alternates by {stipple.max():.0f} levels along it"


def test_the_gap_handed_on_is_the_inside_not_the_lip_the_inner_points_lie_on():
    """The inner lip points lie 3 px inside the upper lip (the mesh's, on a laugh, t1.jpg): those rows are lip, not
    gap (closed over as gap, the upper lip was slid away), the teeth below them are."""
    image, shape = mouth(10.0, TEETH)
    top = int(np.ceil(shape[[61, 62, 63], 1].max()))
    on_lip = np.zeros(image.shape[:2], bool)
    on_lip[: top + 3] = np.all(image[: top + 3] == TEETH, axis=-1)
    image[on_lip] = LIP
    shown = inside_shown(image, shape)
    x0, y0, x1, y1 = shown.box
    assert shown.opens
    # Only a column's middle row stays where all of it is lip (near the corners): the old gate kept all of them.
    assert shown.mask[on_lip[y0:y1, x0:x1]].mean() < 0.2
    teeth = np.all(image[y0:y1, x0:x1] == TEETH, axis=-1)
    assert shown.mask[teeth].mean() > 0.9


def test_closed_lips_meet_along_a_darker_line_of_their_own_colour_not_grey():
    """Lips with a cool grey shadow along their inner edges (over teeth, as in a photo), closed: the line where
    they meet is the lips' colour in shadow. Their inner rows slid to it drew a blue-grey line on warm lips (t1.jpg's
    laughing woman, the astronaut)."""
    image, shape = mouth(8.0, TEETH)
    inner_edge = np.zeros(image.shape[:2], np.uint8)
    cv2.polylines(inner_edge, [np.round(shape[60:68]).astype(np.int32)], True, 1, thickness=5)
    image[(inner_edge > 0) & np.all(image == LIP, axis=-1)] = (110, 112, 125)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    closed = close_lips(image, warp.apply(image), warp, shape)
    lab = cv2.cvtColor(closed, cv2.COLOR_RGB2LAB).astype(float) - (0, 128, 128)
    lip = cv2.cvtColor(np.uint8([[LIP]]), cv2.COLOR_RGB2LAB)[0, 0].astype(float) - (0, 128, 128)
    # The line: the darkest row of each column over the middle of the mouth.
    left, right = shape[48, 0], shape[54, 0]
    columns = np.arange(int(left + 0.25 * (right - left)), int(right - 0.25 * (right - left)))
    top, bottom = int(shape[48:60, 1].min()), int(shape[48:60, 1].max()) + 1
    line = lab[top + lab[top:bottom, columns, 0].argmin(0), columns]
    assert line[:, 0].max() < lip[0], "the line is darker than the lips"
    chroma = np.linalg.norm(line[:, 1:], axis=1) / np.linalg.norm(lip[1:])
    # Old code: 0.2 of the lips' chroma at the least (grey); now 0.8.
    assert chroma.min() > 0.6, f"the line keeps {chroma.min():.2f} of the lips' chroma"
    hue = np.degrees(np.arctan2(line[:, 2], line[:, 1]) - np.arctan2(lip[2], lip[1]))
    assert np.abs(hue).max() < 15


@pytest.mark.parametrize("gap", [6.0, 10.0])
def test_closed_lips_keep_their_height(gap):
    """A laugh's lips closed over its teeth: each lip grows toward the seam (a relaxed mouth's lips are fuller than
    a laugh's stretched ones) instead of sliding whole, and no teeth are left between them. Slid whole, the lips
    met as a thin line between skin (t1.jpg's laughing faces, the astronaut): 2 of their 18 rows lost."""
    image, shape = mouth(gap, TEETH)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    closed = close_lips(image, warp.apply(image), warp, shape)
    left, right = shape[48, 0], shape[54, 0]
    columns = np.arange(int(left + 0.3 * (right - left)), int(right - 0.3 * (right - left)))

    def rows_of(picture: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
        return (np.abs(picture.astype(int) - colour).sum(2) < 60)[:, columns].sum(0)

    # Old code: 16-17 rows of lip where the photo had 18; now 20-21.
    assert rows_of(closed, LIP).mean() > rows_of(image, LIP).mean() + 1
    assert rows_of(closed, TEETH).sum() == 0


def test_a_thin_lip_grows_toward_the_seam_and_keeps_every_row():
    """A thin upper lip (3 rows) over a gap that deepens along the mouth: the lip grows toward the seam (about
    LIP_FULLNESS times its height, at most LIP_STRETCH) from its own last row in each column, and no row of the gap
    is drawn. Slid whole, a lip of 2-3 px met the other as a line (t1.jpg's small tilted woman, laughing faces)."""
    from diffusers_led.geometry.lip_slide import LIP_STRETCH, lips_slid_together

    gap = np.zeros((40, 60), dtype=bool)
    gap[15:19, 10:50] = True  # 4 rows of gap under the upper lip ...
    gap[15:21, 30:50] = True  # ... 6 on the right half
    upper_lip, lower_lip = (12.0, 15.0), (21.0, 30.0)
    slide = lips_slid_together(gap, np.full(60, 17.0), (np.full(60, upper_lip[0]), np.full(60, lower_lip[1])), 10.0, 2)
    source = slide.source_rows(np.arange(40, dtype=np.float64)[:, None], 10.0)
    columns = np.arange(12, 48)
    assert not gap[np.clip(np.rint(source).astype(int), 0, 39), np.arange(60)][:, columns].any()
    # Each lip reaches the seam from its own last row (14 and 21): none of it goes under the other lip.
    assert np.allclose(slide.source_rows(slide.meet[None, :], 10.0)[0, columns], upper_lip[1] - 1)
    # Drawn from its outer edge to the seam, the upper lip is taller than its 3 rows (old code: 3, slid whole).
    drawn = (slide.meet - slide.upper_edge)[columns] / (upper_lip[1] - 1 - upper_lip[0])
    assert drawn.min() > 1.2 and drawn.max() <= LIP_STRETCH[1] + 1e-9


def test_an_upper_lip_over_a_thin_gap_grows_to_its_fullness_not_to_a_quarter_of_the_gap():
    """An upper lip of 8 rows over a gap of 4: it grows toward the seam to about LIP_FULLNESS times its height (the
    lower lip rises less). The seam at a quarter of the gap left it 1.16 times as tall, as thin as it was stretched
    over the teeth (a woman talking, sample photo)."""
    from diffusers_led.geometry.lip_slide import LIP_FULLNESS, lips_slid_together

    gap = np.zeros((50, 60), dtype=bool)
    gap[21:25, 10:50] = True
    upper_lip = (12.0, 21.0)  # outer edge, first row of the gap
    slide = lips_slid_together(gap, np.full(60, 22.0), (np.full(60, upper_lip[0]), np.full(60, 34.0)), 10.0, 2)
    columns = np.arange(16, 44)
    grown = (slide.meet - slide.upper_edge)[columns] / (upper_lip[1] - 1 - upper_lip[0])
    assert grown.min() > LIP_FULLNESS - 0.1  # old code: 1.16
    source = slide.source_rows(np.arange(50, dtype=np.float64)[:, None], 10.0)
    assert not gap[np.clip(np.rint(source).astype(int), 0, 49), np.arange(60)][:, columns].any()


def test_a_gap_deeper_in_the_middle_does_not_bump_the_lower_lips_outer_edge():
    """A smile's thin gap that reaches deeper into the lower lip in the middle of the mouth: the lower lip grows
    toward the seam there instead of its outer edge rising in the middle only. Risen, its edge was a bump between
    two dips, a "W" (t1.jpg's smiling man toward sad and angry)."""
    from diffusers_led.geometry.lip_slide import LIP_STRETCH, lips_slid_together
    from diffusers_led.geometry.mouth_closing import EDGE_SMOOTHING, SKIN_REACH

    gap = np.zeros((50, 60), dtype=bool)
    gap[20:24, 10:50] = True  # 4 rows along the mouth ...
    gap[20:28, 24:36] = True  # ... 8 in its middle
    iod = 10.0 / SKIN_REACH  # the skin beyond each lip follows over 10 px
    edges = (np.full(60, 14.0), np.full(60, 36.0))
    slide = lips_slid_together(gap, np.full(60, 21.0), edges, 10.0, 2, 0.0, round(EDGE_SMOOTHING * iod))
    columns = np.arange(12, 48)
    # Old code (smoothed over 2 of the slide's radii): the lower lip's outer edge rose 2.1 px in the middle; now 1.4.
    assert np.ptp(slide.lower_edge[columns]) < 1.7
    assert slide.lower_stretch[columns].max() <= LIP_STRETCH[1] + 1e-9
    source = slide.source_rows(np.arange(50, dtype=np.float64)[:, None], 10.0)
    assert not gap[np.clip(np.rint(source).astype(int), 0, 49), np.arange(60)][:, columns].any()


def test_the_astronauts_laugh_closed_keeps_her_lips_red_not_skin_coloured(example_image):
    """The astronaut's toothy smile closed toward neutral: her closed lips are as red as her lips in the photo (Lab
    a over the Face Mesh's lips, outer ring minus inner). A laugh's lips are reddest next to the teeth; those rows
    went under with the gap or were blurred along the line, and the rows brought as lip were skin: with the shipped
    model the closed lips read 12.6 against 16.6, pale and lipless (now 14.6)."""
    detector = load_face_detector("mesh")
    outer, inner = MESH_LIPS[0] + MESH_LIPS[3][::-1], MESH_LIPS[1] + MESH_LIPS[2][::-1]

    def lip_redness(image: np.ndarray) -> float:
        mesh = detector.detect(image)[0].mesh[:, :2]
        lips = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(lips, [np.round(mesh[outer]).astype(np.int32)], 1)
        cv2.fillPoly(lips, [np.round(mesh[inner]).astype(np.int32)], 0)
        return float(cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 1][lips > 0].mean()) - 128.0

    pipe = make_tiny_pipeline(default_mode="geometry")
    pipe.ratio_maps = None
    photo = np.asarray(example_image)
    closed = np.asarray(pipe(example_image, target="neutral", mode="geometry").images[0])
    # Old code: 2.9 below the photo's lips; now 1.0.
    assert lip_redness(photo) - lip_redness(closed) < 2.0


def test_in_a_grey_photo_teeth_in_shadow_as_light_as_the_lips_are_part_of_the_gap():
    """A grey laugh whose lower rows of teeth are in shadow, as grey as the lips: nothing tells them from lip but
    where they are, between the inner lips, and they are all gap. Trimmed there by lightness as lip, they were left
    under the lower lip and slid up beside the covered middle as light blobs (CK+ S052's smile)."""
    image, shape = mouth(10.0, TEETH)
    between = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(between, [np.round(shape[60:68] * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    shadowed = (between > 0) & (np.arange(image.shape[0])[:, None] > shape[[65, 66, 67], 1].mean() - 4)
    image[shadowed] = LIP
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    shown = inside_shown(grey, shape)
    x0, y0, x1, y1 = shown.box
    assert shown.opens
    # Old code: 0.03 of the shadowed teeth in the gap (a column's middle row); now all of them.
    assert shown.mask[shadowed[y0:y1, x0:x1]].mean() > 0.9
    # A colour photo still tells them apart by colour: its lips' colour is lip, not teeth.
    assert inside_shown(image, shape).mask[shadowed[y0:y1, x0:x1]].mean() < 0.2


def test_a_lip_over_a_ragged_gap_is_drawn_at_a_stretch_that_varies_smoothly_along_the_mouth():
    """Teeth reaching two rows further into the lower lip every other three columns: the lower lip is drawn at
    about the same stretch in neighbouring columns, and no row of the gap is drawn. Reaching the seam from each
    column's own last row, the lip's stretch jumped with the gap's edge: vertical streaks under a jagged seam
    (t1.jpg's laughing man toward neutral, sad, angry and contempt)."""
    from diffusers_led.geometry.lip_slide import lips_slid_together

    gap = np.zeros((50, 60), dtype=bool)
    gap[20:24, 10:50] = True
    columns = np.arange(10, 50)
    gap[24:26, columns[(columns // 3) % 2 == 0]] = True
    slide = lips_slid_together(gap, np.full(60, 21.0), (np.full(60, 14.0), np.full(60, 34.0)), 10.0, 2, 0.0, 8)
    inner = np.arange(14, 46)
    # Old code: the stretch jumped by up to 0.34 from one column to the next; now 0.15.
    assert np.abs(np.diff(slide.lower_stretch[inner])).max() < 0.25
    source = slide.source_rows(np.arange(50, dtype=np.float64)[:, None], 10.0)
    assert not gap[np.clip(np.rint(source).astype(int), 0, 49), np.arange(60)][:, inner].any()


def test_a_thin_lit_middle_of_the_upper_lip_is_not_drawn_as_a_pale_streak_to_the_seam():
    """A laugh's upper lip lit in a narrow band under the cupid's bow (lighter than the rest of the lip), closed:
    the upper lip grows toward the seam there as elsewhere, but no lighter than most of its pixels in the photo
    (LIP_LIGHTEST). Grown 1.3-1.45 times, the lit band was drawn as a pale streak down to the line where the lips
    meet (fresh sample photo: the grinning woman under a blue light)."""
    image, shape = mouth(8.0, TEETH)
    middle = round(shape[62, 0])
    upper_lip = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(upper_lip, [np.round(shape[[48, 49, 50, 51, 52, 53, 54, 64, 63, 62, 61, 60]]).astype(np.int32)], 1)
    streak = (upper_lip > 0) & (np.abs(np.arange(image.shape[1]) - middle) <= 1)[None, :]
    image[streak] = (240, 170, 175)
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    closed = close_lips(image, warp.apply(image), warp, shape)
    lightness = cv2.cvtColor(closed, cv2.COLOR_RGB2LAB)[..., 0].astype(float)
    # The closed upper lip's lower rows, above the line where the lips meet (its darkest row in the middle).
    top, bottom = int(shape[[50, 51, 52], 1].min()), int(shape[[56, 57, 58], 1].max())
    line = top + int(lightness[top:bottom, middle - 8 : middle + 9].mean(1).argmin())
    rows = slice(line - 5, line - 1)
    lit = lightness[rows, middle - 1 : middle + 2].mean()
    beside = np.concatenate([lightness[rows, middle - 8 : middle - 4], lightness[rows, middle + 5 : middle + 9]], 1)
    # Old code: the lit band 63 lighter (0-255) than the lip beside it; now 4.
    assert lit - beside.mean() < 10.0


def test_columns_without_lip_pixels_show_no_inside_and_raise_no_warning():
    """Where no lip pixel lies in the columns read (carphone's small mouth on some frames), nothing tells teeth or the
    dark inside from lips: no column shows the inside, and no median of nothing is taken (numpy warned "Mean of empty
    slice" on every such frame)."""
    import warnings

    from diffusers_led.geometry.mouth_closing import _columns_showing_inside

    grey = np.full((12, 20), 200.0, dtype=np.float32)
    grey[4:8] = 20.0  # a dark band between the lips
    between = np.zeros((12, 20), dtype=bool)
    between[3:9] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        columns = _columns_showing_inside(grey, np.zeros_like(grey), np.zeros_like(between), between, 40.0, 3)
    assert columns.shape == (20,) and not columns.any()


def _lips_slid(image: np.ndarray, shape: np.ndarray) -> bool:
    """Whether, after a warp that closes the mouth of ``image``, :func:`close_lips` slides its lips over what still
    shows between them."""
    warp = action_unit_warp(shape, np.array([[1.0, 0, 0], [0, 1.0, 0]]), {}, image.shape[:2], close_mouth=1.0)
    warped = warp.apply(image)
    return not np.array_equal(close_lips(image, warped, warp, shape), warped)


def test_an_over_exposed_open_mouth_whose_lips_clip_as_white_as_its_teeth_is_open():
    """A photo over-exposed until pale lips clip near white (the astronaut brightened 1.6 times: lips 252, teeth 255)
    leaves teeth no room to be lighter than the lips: the open mouth read as shut and kept its teeth and dark corners
    toward neutral. Teeth as light as the lips over an opening's height now count; a shut clipped mouth stays shut."""
    bright = np.array([1.6, 1.6, 1.6])
    image, shape = mouth(8.0, TEETH, lip=(209, 155, 141))
    over = np.clip(image * bright, 0, 255).astype(np.uint8)
    assert inside_shown(over, shape).opens
    assert _lips_slid(over, shape)
    shut, shut_shape = mouth(1.5, (209, 155, 141), lip=(209, 155, 141))
    assert not inside_shown(np.clip(shut * bright, 0, 255).astype(np.uint8), shut_shape).opens


def test_yellowish_teeth_under_a_warm_cast_are_told_from_the_lips_by_being_less_red():
    """A warm cast (red 1.15, blue 0.8) raises yellowish teeth's saturation toward the lips' (a fresh sample photo's
    from 0.77 to 0.86 of theirs): read by saturation alone they were lip, the mouth shut, and the teeth stayed between
    the lips closed toward neutral. A cast leaves how much less red than the lips the teeth are."""
    warm = np.array([1.15, 1.0, 0.8])
    teeth = (200, 175, 130)
    image, shape = mouth(8.0, teeth, lip=(150, 80, 70))
    cast = np.clip(image * warm, 0, 255).astype(np.uint8)
    assert inside_shown(image, shape).opens and inside_shown(cast, shape).opens
    assert _lips_slid(cast, shape)
    # Lit lip as pale as that is no tooth: a shut mouth with a light band of its own lip colour stays shut.
    lit, lit_shape = mouth(8.0, (215, 140, 125), lip=(150, 80, 70))
    assert not inside_shown(np.clip(lit * warm, 0, 255).astype(np.uint8), lit_shape).opens


def test_the_colour_of_mostly_clipped_lips_is_read_from_their_unclipped_pixels():
    """Where most of a lip is clipped white (an over-exposed photo), its chroma is that of the rest of it: the white
    gave a neutral grey line between the closed lips, blue-grey on cream skin."""
    from diffusers_led.geometry.lip_tone import lips_chroma

    image = np.full((10, 10, 3), 255, dtype=np.uint8)
    image[:, :3] = (240, 170, 150)  # the lip's darker, unclipped part
    lip = np.ones((10, 10), dtype=bool)
    a, b = lips_chroma(image, [lip])[0]
    assert a > 140 and b > 135  # pink-orange (128 is neutral), not white's 128, 128
    image[:, :7] = (240, 170, 150)  # mostly unclipped: the median of all of it, as before
    assert np.allclose(lips_chroma(image, [lip])[0], cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[0, 0, 1:])
