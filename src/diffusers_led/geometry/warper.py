"""The geometry stage of the pipeline as one component: :class:`ExpressionWarper` moves each detected face along the
facial action units that take its own expression to a target (:mod:`.action_units`), by a smooth warp of its own
pixels (:mod:`.warp`), and picks the mouths the warp opened for the UNet to re-draw (the texture stage).

Like the pipeline's :class:`~diffusers_led.faces.regions.FaceRegionProcessor`, it holds no weights: the pipeline
builds it from its config. Torch-free: numpy, OpenCV and dlib only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..texture import ExpressionRatioMaps

from ..faces.detection import face_shape, five_landmarks
from ..faces.regions import FaceRegionProcessor, FaceRegions
from .action_units import estimate_action_units, expression_action_units, inter_ocular
from .eyes import open_eyes, shows_white
from .glasses import find_glasses, keep_frame
from .mouth_closing import close_lips, closes_mouth, inner_lips_on_mesh, inside_shown, jaw_closing_limit
from .warp import action_unit_warp, inner_mouth_mask, slit_eyes

__all__ = [
    "FOLD_WARNING",
    "ExpressionWarper",
    "lid_moves",
    "units_beside_opened_lids",
    "unopened_eyes",
    "unshaded_eyes",
]

#: Below this share of an edit's movement (FaceWarp.kept), the pipeline says that a face could not be edited fully.
FOLD_WARNING = 0.5
#: Lower-lid drop (units of geometry.eyes.LOWER_LID_DROP) per unit of cheek raiser undone: squeezed eyes reopen.
SQUINT_REOPENING = 1.0
#: An ``eyeBlink`` blendshape from which an eye that shows no white counts as closed (kept shut by the warp): 0.49-0.67
#: on the tune photos' downcast and laughing eyes, at most 0.27 on every open one.
CLOSED_BLINK = 0.4


class ExpressionWarper:
    """Warp faces toward target expressions and cut the mouths the warp opened.

    Args:
        region_processor: the pipeline's, which cuts the re-drawn mouths (the same boxes as the diffusion mode's).
        crop_size: the UNet's crop size (its ``sample_size``), for the mask of the inside of a mouth.
    """

    def __init__(self, region_processor: FaceRegionProcessor, crop_size: int) -> None:
        self.region_processor = region_processor
        self.crop_size = int(crop_size)

    def warp_faces(
        self,
        rgbs: list[np.ndarray],
        faces_per_image: list[list[FaceRegions]],
        targets: list[str | None],
        strength: float,
        units: dict[str, float],
        ratio_maps: ExpressionRatioMaps | None = None,
    ) -> tuple[list[np.ndarray], list[list[FaceRegions]]]:
        """The geometry stage: each face's landmarks moved along the action units that take its own expression to
        its image's target at `strength` (plus `units`), by a smooth warp of its own pixels; an open mouth closes
        toward a target that parts no lips; with `ratio_maps`, the units' shading is laid on the warped skin.
        Returns the warped images and the faces, each with its `warp` (whose window is part of the edited area)."""
        warped_images, warped_faces = [], []
        for rgb, faces, target in zip(rgbs, faces_per_image, targets):
            out, moved = rgb, []
            for face in faces:
                shape = face_shape(rgb, face.face)
                if target is None:
                    change = dict(units)
                else:
                    # The mesh detector's blendshapes read the face's own expression apart from its shape.
                    own = estimate_action_units(shape, blendshapes=face.blendshapes)
                    change = expression_action_units(
                        target, strength, own, extra=units, from_blendshapes=bool(face.blendshapes)
                    )
                    if change.get("AU26", 0.0) < 0.0:  # the face's own jaw drop, undone no further than the lips meet
                        change["AU26"] = max(change["AU26"], -jaw_closing_limit(inner_lips_on_mesh(shape, face.mesh)))
                # An open mouth closes toward a target that parts no lips: the jaw-drop unit undone takes the jaw,
                # chin and lip corners back, and the lips then close what is left (the unit alone cannot). Whether
                # the mouth is open is what its gap shows (teeth or the dark inside, not lip: one gate for the warp
                # and close_lips); a shut one stays as it is.
                shown = inside_shown(rgb, shape, face.mesh) if closes_mouth(target, units) else None
                closing = strength if shown is not None and shown.opens else 0.0
                # With the dense mesh, the upper lids rise off the eyeball (geometry/eyes.py) instead of the 68-point
                # warp stretching the whole eye, and squeezed eyes reopen from below; eyes that show no white to
                # sample keep the 68-point warp's lids.
                eyes, (widen, reopen) = None, lid_moves(change, closing)
                if face.mesh is not None and (widen > 0 or reopen > 0):
                    eyes = open_eyes(out, face.mesh, widen, inter_ocular(shape), lower=reopen)
                    eyes = eyes if eyes.opened else None
                # An eye squeezed to a slit that shows no white (a laugh) is not stretched open by the 68-point warp
                # either: its lashes and dark slit would be drawn tall, as a smear. Without the mesh, no white is seen.
                # Over every eye the mesh sees without white (a downcast one too), the brow stretches the lid skin
                # no more than over a slit, and the lid raiser's shading is left off: both drew a dark streaky band.
                slits, unopened = unopened_eyes(out, shape, face.mesh, face.blendshapes) if eyes is None else ((), ())
                warped_units = units_beside_opened_lids(change) if eyes else change
                warp = (
                    action_unit_warp(
                        shape,
                        face.matrix,
                        warped_units,
                        rgb.shape[:2],
                        close_mouth=closing,
                        mesh=face.mesh,
                        slits=slits,
                        unopened=unopened,
                    )
                    if warped_units or closing
                    else None
                )
                if warp is not None and warp.leaves_photo(shape, rgb.shape[:2]):
                    warnings.warn(
                        f"The face at {tuple(round(v) for v in face.face.box)} is cut by the edge of the photo where "
                        "the edit would move it (e.g. a mouth at the border): it is left unchanged.",
                        stacklevel=5,
                    )
                    warp = None
                if warp is not None:
                    if eyes is not None:
                        # The opened eyes count as edited (the warp may hold them still) and the warp keeps them.
                        warp = warp.with_edited(eyes.changed)
                        out = eyes.image
                    warped = warp.apply(out)
                    covers = closing and warp.mouth is not None
                    out = close_lips(out, warped, warp, shape, face.mesh, shown) if covers else warped
                    if out is not warped:  # the slid lips may cover teeth the warp held still: edited too
                        warp = warp.with_edited(_changed(warped, out, warp.roi))
                    if ratio_maps is not None:
                        out = ratio_maps.shade(out, warp, unshaded_eyes(change, unopened), mesh=face.mesh)
                    # Glasses sit on the nose: the frame stays where it is while the brows and lids move behind it.
                    frame = find_glasses(rgb, face.mesh)
                    if frame is not None:
                        out = keep_frame(rgb, out, frame, warp)
                    if warp.kept < FOLD_WARNING:
                        warnings.warn(
                            f"The face at {tuple(round(v) for v in face.face.box)} was edited at {warp.kept:.0%} of "
                            "the asked-for movement: its landmarks crowd (a turned or partly hidden face?) and the "
                            "full movement would fold the photo over itself. Check them with --show-regions / "
                            "draw_regions.",
                            stacklevel=5,  # the caller of __call__ (under torch.no_grad's wrapper)
                        )
                moved.append(replace(face, warp=warp))
            warped_images.append(out)
            warped_faces.append(moved)
        return warped_images, warped_faces

    def texture_faces(self, rgb: np.ndarray, faces: list[FaceRegions]) -> list[FaceRegions]:
        """The mouths of `faces` (already warped, in the warped image `rgb`) that the warp opened, re-cut around
        their moved landmarks, each with a mask of the inside of its lips: what the UNet re-generates. A mouth is
        opened when the warp parted its lips (``FaceWarp.mouth.opens``: the one decision, so texture goes exactly
        where the warp showed more of the inside of the mouth)."""
        opened = []
        for face in faces:
            if face.warp is None or face.warp.mouth is None or not face.warp.mouth.opens:
                continue
            shape = face.warp.shape
            moved = replace(face.face, landmarks=five_landmarks(shape), shape=shape)
            regions = self.region_processor.extract(rgb, faces=[moved], regions=("mouth",))[0]
            regions.masks["mouth"] = inner_mouth_mask(shape, regions.crop_matrices["mouth"], self.crop_size)
            opened.append(regions)
        return opened


def _changed(before: np.ndarray, after: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """``HxW`` bool: the pixels where ``after`` differs from ``before`` (same shape, any channels), compared only
    within ``roi`` (``x0, y0, x1, y1``), where a step beside a face's warp may change them."""
    x0, y0, x1, y1 = roi
    changed = np.zeros(before.shape[:2], dtype=bool)
    window = before[y0:y1, x0:x1] != after[y0:y1, x0:x1]
    changed[y0:y1, x0:x1] = window.any(axis=2) if window.ndim == 3 else window
    return changed


def lid_moves(change: dict[str, float], closing: float = 0.0) -> tuple[float, float]:
    """How far the dense mesh's lids move for the action-unit ``change`` of one face
    (:func:`~.action_units.expression_action_units`): the upper lids' raise (AU5 units; none when the raiser is the
    only unit asked for and no mouth closes: that stays with the 68-point warp), and, toward a target that does not
    tighten the lids (no AU7), the lower lids' drop: :data:`SQUINT_REOPENING` per unit of the face's cheek raiser
    undone -- squeezed eyes reopen at the lid margin, which the 68-point warp's 6 lid points barely move."""
    widen = max(change.get("AU5", 0.0), 0.0) if len(change) > 1 or closing else 0.0
    reopen = max(-change.get("AU6", 0.0), 0.0) if change.get("AU7", 0.0) <= 0 else 0.0
    return widen, SQUINT_REOPENING * reopen


def units_beside_opened_lids(change: dict[str, float]) -> dict[str, float]:
    """The units of ``change`` that the 68-point warp performs when the dense mesh's lids were opened at their
    margins (:func:`~.eyes.open_eyes`): not the upper lid raiser (AU5), which the margins did, nor lids loosened past
    rest (AU7 undone, neutral's :data:`~.action_units.RELAXATION`), which over an eye already reopened from below
    dropped the lower lids twice (a CK+ calibration person's laugh toward neutral stared, its whites ringed)."""
    return {
        name: value
        for name, value in change.items()
        if not (name == "AU5" and value > 0 or name == "AU7" and value < 0)
    }


def unopened_eyes(
    image: np.ndarray, shape: np.ndarray, mesh: np.ndarray | None, blendshapes: Mapping[str, float] | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The eyes (``"right"``, ``"left"``) of the face with 68 points ``shape`` in ``image`` whose lids the warp holds:
    the slits, squeezed or closed eyes that show no white (:func:`~.eyes.shows_white` on its Face Mesh ``mesh``;
    without the mesh, no white is seen), which it does not stretch open (:func:`~.warp.slit_eyes`; an eye whose
    ``eyeBlink`` blendshape of the subject's side reaches :data:`CLOSED_BLINK` counts as closed), and the unopened
    eyes, every eye the mesh sees without white (without the mesh, the slits), whose lid skin the brows stretch no
    more than a slit's (:func:`~.warp.keep_lid_skin`)."""
    blendshapes = blendshapes or {}
    closed = [eye for eye in ("right", "left") if blendshapes.get(f"eyeBlink{eye.title()}", 0.0) >= CLOSED_BLINK]
    if mesh is None:
        slits = slit_eyes(shape, closed=closed)
        return slits, slits
    white = shows_white(image, mesh, inter_ocular(shape))
    without_white = tuple(eye for eye, shows in white.items() if not shows)
    return slit_eyes(shape, without_white, closed=closed), without_white


def unshaded_eyes(change: dict[str, float], unopened: tuple[str, ...]) -> dict[str, float]:
    """The action-unit ``change`` to shade, without the upper lid raiser's (AU5's) shading on the ``unopened`` eyes
    (:func:`unopened_eyes`): the map darkens where an opened eye's lashes and iris would show, a smear on a slit or
    on a lid that did not open."""
    raise_lids = change.get("AU5", 0.0)
    if raise_lids <= 0 or not unopened:
        return change
    shaded = {name: value for name, value in change.items() if name != "AU5"}
    if len(unopened) == 1:  # one-sided units are named for the subject's side ("R": the subject's right eye)
        shaded["L5" if unopened[0] == "right" else "R5"] = raise_lids
    return shaded
