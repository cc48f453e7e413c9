"""The lips' own tone, read from the photo and laid on closed lips: their Face Mesh and 68-point contours, their
Lab chroma, the lightness a closed upper lip is drawn no lighter than, and the tint that gives closed lips the colour
of the photo's lips (:func:`~.mouth_closing.close_lips`)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "IBUG_LIPS",
    "LIP_LIGHTEST",
    "MESH_LIPS",
    "lip_tinted",
    "lip_tone_across",
    "lips_chroma",
    "upper_lip_lightness",
]

#: MediaPipe Face Mesh V2's lip contours, each from mouth corner to mouth corner (subject's right to left): outer
#: and inner edge of the upper lip, inner and outer edge of the lower lip. The 68 points' stand-ins follow.
MESH_LIPS = (
    [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291],
    [61, 78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 291],
    [61, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 291],
    [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291],
)
IBUG_LIPS = ([48, 49, 50, 51, 52, 53, 54], [48, 60, 61, 62, 63, 64, 54], [48, 60, 67, 66, 65, 64, 54])
IBUG_LIPS += ([48, 59, 58, 57, 56, 55, 54],)
#: The shares of the upper lip's pixels in the photo (Lab lightness) its closed lip is drawn no lighter than, over the
#: rows the lips' colour reaches (:data:`~.mouth_closing.LIP_TINT_REACH`): its own rows, and the skin brought as
#: lip (:data:`~.mouth_closing.THINNEST_LIP`). A grinning woman's lit thin tubercle (a fresh sample photo) grown
#: toward the seam was a pale streak down to it: gone at 0.75 and at 0.5, where 0.5 over her own rows also
#: flattened the rest of her lip. The astronaut's lip is a thin line under lit skin, brought as lip: her closed upper
#: lip reads L* 65.5-67.2 over the Face Mesh's upper lip (68.3-70.7 before, 66.3-68.0 with 0.75 for both; 61.0 in
#: the photo).
LIP_LIGHTEST = (0.75, 0.5)


def lips_chroma(image: np.ndarray, lips: list[np.ndarray]) -> np.ndarray | None:
    """``float32`` ``(len(lips), 2)``: the Lab chroma (a, b; OpenCV's 8-bit scale) of ``image`` (uint8 RGB; ``None``
    for a grey one, which has none), the median over each of the ``lips`` (bool masks)."""
    if image.ndim != 3 or not all(lip.any() for lip in lips):
        return None
    colour = np.ascontiguousarray(image[..., :3])
    lab = cv2.cvtColor(colour, cv2.COLOR_RGB2LAB)
    # A pixel with a channel at white has lost its colour: where most of a lip is clipped (an over-exposed photo),
    # its colour is what the rest of it shows (clipped white lips gave a neutral grey line on cream skin, blue-grey).
    kept = colour.max(-1) < 255
    clear = [lip & kept for lip in lips]
    lips = [own if own.any() and own.sum() * 2 < lip.sum() else lip for own, lip in zip(clear, lips)]
    return np.array([np.median(lab[..., 1:][lip], axis=0) for lip in lips], dtype=np.float32)


def upper_lip_lightness(image: np.ndarray, shape: np.ndarray, mesh: np.ndarray | None) -> np.ndarray:
    """``float32`` ``(2,)``: the Lab lightness (OpenCV's 8-bit scale) that each share of :data:`LIP_LIGHTEST` of
    the upper lip's pixels in ``image`` (uint8 RGB) are no lighter than: between its outer and inner edge, on the Face
    Mesh V2 ``mesh`` when there is one, else on the 68 points of ``shape`` (255 where it covers no pixel)."""
    points, contours = (shape, IBUG_LIPS) if mesh is None else (np.asarray(mesh, dtype=np.float64)[:, :2], MESH_LIPS)
    outline = points[contours[0] + contours[1][::-1]]
    height, width = image.shape[:2]
    x0, y0 = np.clip(np.floor(outline.min(0)).astype(int) - 1, 0, (width, height))
    x1, y1 = np.clip(np.ceil(outline.max(0)).astype(int) + 2, 0, (width, height))
    lip = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    # Without the row along its inner edge, which a laugh's teeth share (as inside_shown reads the lips).
    gap = points[contours[1] + contours[2][::-1]]
    for polygon, value in ((outline, 1), (gap, 0)):
        cv2.fillPoly(lip, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], value, cv2.LINE_8, shift=4)
    if not lip.any():
        return np.full(len(LIP_LIGHTEST), 255.0, dtype=np.float32)
    lightness = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1, :3]), cv2.COLOR_RGB2LAB)[..., 0]
    return np.percentile(lightness[lip > 0], 100 * np.array(LIP_LIGHTEST)).astype(np.float32)


def lip_tone_across(tone: np.ndarray, line: np.ndarray, height: int, width: float) -> np.ndarray:
    """``float32`` ``(height, len(line), C)``: the upper lip's Lab ``tone`` (``tone[0]``: chroma a, b, and any more
    channels such as the lightness it is drawn no lighter than) above the ``line`` (its row in each column) and the
    lower lip's (``tone[1]``) below it, blended across it over ``width`` px."""
    rows = np.arange(height, dtype=np.float32)[:, None]
    below = np.clip(0.5 + (rows - line[None, :].astype(np.float32)) / (2 * width), 0.0, 1.0)[..., None]
    return (tone[0] * (1.0 - below) + tone[1] * below).astype(np.float32)


def lip_tinted(
    colour: np.ndarray, tone: np.ndarray, line: np.ndarray, body: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``colour`` (uint8 RGB) toward the lips' Lab ``tone`` (``(H, W, 3)``: a, b and the lightness drawn no lighter
    than, :data:`LIP_LIGHTEST`; :func:`lip_tone_across`), its lightness capped by ``max(line, body)``: by ``line``
    (0-1 per pixel) in both a and b (the line where the lips meet is the lips' colour in shadow), by ``body`` in a
    alone (the closed lips are as red as the lips: their b follows the light, which can change along the mouth;
    a laugh's lavender lips under a blue light painted purple patches on her orange-lit cheek, a sample photo), each
    only where a pixel is less red than the lips (a redder row of lip keeps its own). Also the bool of the pixels
    it changes (Lab and back is not exact: only those are converted)."""
    lab = cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_RGB2LAB).astype(np.float32)
    lips = np.maximum(line, body)
    # No lighter than the lips' lit parts (the tone's third channel, :data:`LIP_LIGHTEST`): a thin lit lip grown
    # toward the line was drawn as a pale streak down to it.
    darker = lips * np.maximum(lab[..., 0] - tone[..., 2], 0.0)
    lab[..., 0] -= darker
    redder = np.clip(tone[..., 0] - lab[..., 1], 0.0, 1.0)
    line, body = line * redder, lips * redder
    lab[..., 1] += body * (tone[..., 0] - lab[..., 1])
    lab[..., 2] += line * (tone[..., 1] - lab[..., 2])
    tinted = (body > 0) | (darker > 0)
    out = colour.copy()
    out[tinted] = cv2.cvtColor(np.clip(np.rint(lab), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)[tinted]
    return out, tinted
