"""The eye and mouth regions of detected faces: their boxes (paper Eq. 1-4) in the canonical face, the aligned
crops and blend masks, and compositing edited crops (and geometric warps) back into the photo.

Data flow::

    image --FaceRegionProcessor.detect--> DetectedFace (box + 5 landmarks, image px; faces/detection.py)
          --extract--> FaceRegions (image->canonical similarity, Eq. 1-4 boxes, 64x64 crops, masks)
          --(the warp moves the face; the UNet re-draws crops)-->
          --composite--> image with only the edited area's pixels changed

Conventions:

* Images are numpy ``uint8`` arrays, ``HxWx3`` RGB or ``HxW`` grayscale.
* Point coordinates and the canonical face: see :mod:`diffusers_led.geometry.transforms`. Region boxes are computed
  in the canonical face, so they are level and of a fixed size relative to the face whatever its pose in the photo.

Torch-free: numpy and OpenCV only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..geometry.transforms import (
    CANONICAL_SIZE,
    Box,
    alignment_matrix,
    canonical_template,
    transform_points,
)
from .detection import DetectedFace, FaceDetector, _as_image
from .loader import load_face_detector

if TYPE_CHECKING:  # the warp is made after the regions are cut; only its type is named here
    from ..geometry.warp import FaceWarp

__all__ = [
    "CROP_SIZE",
    "REGION_ANCHORS",
    "REGION_LANDMARKS",
    "REGION_MARGINS",
    "TEMPLATE_REGION_MARGINS",
    "FaceRegionProcessor",
    "FaceRegions",
    "blend_mask",
    "region_box",
]

CROP_SIZE = 64
#: (mx, my) margins in canonical (320x320) pixels, paper Sec. 3.1.
REGION_MARGINS: dict[str, tuple[float, float]] = {"eyes": (50, 50), "mouth": (10, 40)}
#: Where region boxes are anchored: on the face's own aligned landmarks (the paper, Eq. 1-4) or on the
#: canonical template's, i.e. at a fixed place on the aligned face.
REGION_ANCHORS = ("landmarks", "template")
#: Default margins for template-anchored boxes. A smile moves each mouth corner ~15 canonical px outward
#: (CK+ peaks: up to 118 px corner to corner vs the template's 83), so the mouth box needs room beside the corners
#: that the paper's corner-anchored box (which moves with them) does not, and a surprised jaw drops below
#: the paper's 40 px.
TEMPLATE_REGION_MARGINS: dict[str, tuple[float, float]] = {"eyes": (50, 50), "mouth": (46, 48)}
#: Indices into LANDMARK_NAMES of the (a1, a2) pair that spans each region in Eq. 1-4.
REGION_LANDMARKS: dict[str, tuple[int, int]] = {"eyes": (0, 1), "mouth": (3, 4)}

ImageShape = tuple[int, int] | tuple[int, int, int]
Feather = float | tuple[float, float]  # one fraction, or (horizontal, vertical)


def region_box(a1: Sequence[float], a2: Sequence[float], mx: float, my: float) -> Box:
    """Paper Eq. 1-4: the region box ``(x, y, w, h)`` spanned by two landmarks plus margins.

    ``x = a1.x - mx``, ``y = a1.y - my``, ``w = (a2.x + mx) - (a1.x - mx)``, ``h = 2 * my``.
    ``a1`` is the subject's right eye / mouth corner (the image-left one) and ``a2`` the other,
    both in canonical coordinates, where alignment has made the pair (nearly) level, which is why
    the paper can use ``a1.y`` alone for the vertical placement.

    Raises:
        ValueError: if the box would have a non-positive size (``a2`` far left of ``a1``).
    """
    x = float(a1[0]) - mx
    y = float(a1[1]) - my
    w = (float(a2[0]) + mx) - x
    h = 2.0 * my
    if w <= 0 or h <= 0:
        raise ValueError(f"degenerate region box (w={w:.2f}, h={h:.2f}) from a1={a1}, a2={a2}")
    return (x, y, w, h)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``2x3`` affine equal to applying ``inner`` first, then ``outer``."""
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = outer[:, :2] @ inner[:, :2]
    out[:, 2] = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return out


def _box_to_crop(box: Box, width: float, height: float) -> np.ndarray:
    """Anisotropic scaling of the canonical ``box`` onto a ``width x height`` crop.

    The box is treated as an area (like ``cv2.resize``), so its centre lands on the crop centre
    ``((width - 1) / 2, (height - 1) / 2)`` in pixel-index coordinates.
    """
    x, y, w, h = box
    sx, sy = width / w, height / h
    return np.array([[sx, 0.0, -sx * x - 0.5], [0.0, sy, -sy * y - 0.5]], dtype=np.float64)


def _quad_roi(
    crop_to_image: np.ndarray, crop_w: int, crop_h: int, image_hw: tuple[int, int], margin: int
) -> tuple[int, int, int, int]:
    """Integer ``(x0, y0, x1, y1)`` image ROI covering a crop's footprint plus ``margin`` px.

    Clipped to the image but never empty, so that a crop lying wholly outside the image still
    has edge pixels to replicate.
    """
    corners = np.array([[-0.5, -0.5], [crop_w - 0.5, -0.5], [-0.5, crop_h - 0.5], [crop_w - 0.5, crop_h - 0.5]])
    pts = transform_points(crop_to_image, corners)
    height, width = image_hw
    x0 = min(max(math.floor(pts[:, 0].min()) - margin, 0), width - 1)
    y0 = min(max(math.floor(pts[:, 1].min()) - margin, 0), height - 1)
    x1 = max(min(math.ceil(pts[:, 0].max()) + margin + 1, width), x0 + 1)
    y1 = max(min(math.ceil(pts[:, 1].max()) + margin + 1, height), y0 + 1)
    return x0, y0, x1, y1


def _translate(matrix: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``matrix`` applied to points shifted by ``(dx, dy)``, i.e. ``matrix(p + (dx, dy))``."""
    out = np.array(matrix, dtype=np.float64)
    out[:, 2] += out[:, :2] @ np.array([dx, dy], dtype=np.float64)
    return out


# Upper bound on the supersampling factor per axis: bounds memory (64*16 = 1024 px per axis)
# when a huge face is squeezed into a small crop.
_MAX_SUPERSAMPLE = 16


def _warp_to_crop(image: np.ndarray, image_to_crop: np.ndarray, crop_w: int, crop_h: int) -> np.ndarray:
    """Sample a crop from the original image through ``image_to_crop`` with anti-aliasing.

    A single bilinear ``warpAffine`` from the original pixels; when the crop is smaller than its
    footprint (e.g. a 300 px wide eye box squeezed to 64 px), the warp runs on a grid
    ``k`` times finer per axis and is box-averaged down (``INTER_AREA`` with an integer factor),
    which is area sampling rather than the aliasing of point sampling. Only the ROI under the crop
    is touched, so huge images cost no more than small ones. Out-of-image samples replicate the
    image edge.
    """
    crop_to_image = cv2.invertAffineTransform(image_to_crop)
    # Image pixels advanced per crop pixel along each crop axis = the supersampling needed.
    steps = np.linalg.norm(crop_to_image[:, :2], axis=0)
    kx, ky = (int(min(max(math.ceil(s - 1e-6), 1), _MAX_SUPERSAMPLE)) for s in steps)
    x0, y0, x1, y1 = _quad_roi(crop_to_image, crop_w, crop_h, image.shape[:2], margin=2)
    fine = np.array([[kx, 0.0, 0.5 * (kx - 1)], [0.0, ky, 0.5 * (ky - 1)]])  # crop -> fine grid
    roi_to_fine = _translate(_compose(fine, image_to_crop), x0, y0)
    warped = cv2.warpAffine(
        image[y0:y1, x0:x1],
        roi_to_fine,
        (crop_w * kx, crop_h * ky),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if kx == 1 and ky == 1:
        return warped
    return cv2.resize(warped, (crop_w, crop_h), interpolation=cv2.INTER_AREA)


def _feather_profile(size: int, feather: float) -> np.ndarray:
    """1-D raised-cosine ramp: 0 on the end pixels, 1 beyond ``feather * (size - 1)`` px."""
    idx = np.arange(size, dtype=np.float64)
    dist = np.minimum(idx, size - 1 - idx)  # pixels from the nearest end pixel centre
    ramp_len = feather * (size - 1)
    ramp = np.clip(dist / ramp_len, 0.0, 1.0) if ramp_len > 0 else np.ones(size)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)  # C1-smooth: no visible Mach band where the ramp ends


@lru_cache(maxsize=32)
def _cached_mask(crop_size: int, feather_x: float, feather_y: float) -> np.ndarray:
    mask = np.outer(_feather_profile(crop_size, feather_y), _feather_profile(crop_size, feather_x))
    mask = mask.astype(np.float32)
    mask.setflags(write=False)
    return mask


def blend_mask(crop_size: int = CROP_SIZE, feather: Feather = 0.25) -> np.ndarray:
    """Soft blend mask in crop coordinates, ``(crop_size, crop_size)`` float32 in ``[0, 1]``.

    Separable raised-cosine: 1 in the interior, falling smoothly to exactly 0 on the outermost
    pixel ring over ``feather * (crop_size - 1)`` pixels on each side. ``feather`` is one fraction
    or a ``(horizontal, vertical)`` pair, each in ``[0, 0.5]``; 0 gives a hard edge. Returns a
    fresh writable array.
    """
    fx, fy = (feather, feather) if np.isscalar(feather) else feather  # type: ignore[misc]
    if not (0.0 <= fx <= 0.5 and 0.0 <= fy <= 0.5):
        raise ValueError(f"feather must be in [0, 0.5] (or a pair of such), got {feather}")
    return _cached_mask(int(crop_size), float(fx), float(fy)).copy()


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------


@dataclass
class FaceRegions:
    """A face with its aligned regions, as produced by :meth:`FaceRegionProcessor.extract`.

    Attributes:
        face: the detection.
        matrix: ``2x3`` float64 similarity, original image -> canonical face.
        boxes: region -> ``(x, y, w, h)`` in canonical coordinates (paper Eq. 1-4).
        crops: region -> ``crop x crop x 3`` uint8 RGB (``crop x crop`` for gray images).
        masks: region -> ``crop x crop`` float32 soft blend mask (editable before compositing).
        crop_matrices: region -> ``2x3`` float64 affine, original image -> crop pixels.
        warp: the geometric warp applied to this face before its crops were cut (a
            :class:`~diffusers_led.geometry.warp.FaceWarp`), or ``None``; its window counts as edited area.
    """

    face: DetectedFace
    matrix: np.ndarray
    boxes: dict[str, Box]
    crops: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    crop_matrices: dict[str, np.ndarray] = field(default_factory=dict)
    warp: FaceWarp | None = None

    @property
    def mesh(self) -> np.ndarray | None:
        """``(478, 3)`` Face Mesh V2 points in image pixels (``face.mesh``); ``None`` unless the ``"mesh"`` detector
        found the face."""
        return self.face.mesh

    @property
    def blendshapes(self) -> dict[str, float] | None:
        """The 52 MediaPipe blendshape scores by name (``face.blendshapes``); ``None`` unless the ``"mesh"``
        detector found the face."""
        return self.face.blendshapes

    def region_quad(self, region: str) -> np.ndarray:
        """The region box's 4 corners in original-image coordinates, ``(4, 2)`` (clockwise)."""
        x, y, w, h = self.boxes[region]
        corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        return transform_points(cv2.invertAffineTransform(self.matrix), corners)


class FaceRegionProcessor:
    """Detect faces, cut the paper's eye/mouth regions and paste edited regions back.

    Cheap to construct and picklable (models load lazily, once per process), so it can live in a
    pipeline config or be sent to dataloader workers.

    Args:
        detector: ``"dlib"`` (default, offline), ``"yunet:<path.onnx>"``, a ``.onnx`` path or a
            :class:`FaceDetector` instance (used as is, with its own size settings).
        regions: the regions to extract, keys of ``margins``.
        canonical_size: side of the canonical aligned face (320 in the paper).
        crop_size: side of the square region crops (64 in the paper).
        margins: region -> ``(mx, my)`` in canonical pixels; ``None`` for the anchor's defaults
            (:data:`REGION_MARGINS` or :data:`TEMPLATE_REGION_MARGINS`).
        region_anchor: ``"landmarks"`` (the paper: each box spans the face's own aligned landmark pair, so
            the mouth box follows the mouth corners) or ``"template"`` (each box spans the canonical
            template's pair: a fixed place on the aligned face, so a crop shows the corners moving, e.g.
            a smile widening the mouth). A model must be used with the geometry its crops were cut with.
        feather: blend-mask falloff as a fraction of the crop side, or a ``(horizontal,
            vertical)`` pair, see :func:`blend_mask`. The mouth box has only ``mx = 10`` of ~110
            canonical px beside each corner, so horizontal feathering fades the mouth corners
            (mean mask weight at the corners on 22 real faces: 0.27 at 0.25, 0.93 at 0.1).
        max_detection_size: long side cap of the image the detector sees.
        min_face_size: smallest face (px) to find, by upsampling small images.
    """

    def __init__(
        self,
        detector: str | os.PathLike | FaceDetector = "dlib",
        regions: Sequence[str] = ("eyes", "mouth"),
        canonical_size: int = CANONICAL_SIZE,
        crop_size: int = CROP_SIZE,
        margins: Mapping[str, Sequence[float]] | None = None,
        feather: Feather = 0.25,
        max_detection_size: int = 1024,
        min_face_size: float = 40.0,
        region_anchor: str = "landmarks",
    ) -> None:
        if region_anchor not in REGION_ANCHORS:
            raise ValueError(f"unknown region_anchor {region_anchor!r}; known: {', '.join(REGION_ANCHORS)}")
        self.region_anchor = region_anchor
        if margins is None:
            margins = TEMPLATE_REGION_MARGINS if region_anchor == "template" else REGION_MARGINS
        self.margins = {name: (float(m[0]), float(m[1])) for name, m in margins.items()}
        self.regions = tuple(self._check_regions(regions))
        self.canonical_size = int(canonical_size)
        self.crop_size = int(crop_size)
        self.feather = feather if np.isscalar(feather) else tuple(feather)  # type: ignore[arg-type]
        blend_mask(self.crop_size, self.feather)  # validates feather early
        if isinstance(detector, FaceDetector):
            self.detector = detector
        else:
            self.detector = load_face_detector(
                detector, max_detection_size=max_detection_size, min_face_size=min_face_size
            )

    def _check_regions(self, regions: Sequence[str]) -> Sequence[str]:
        if isinstance(regions, str):
            regions = (regions,)
        unknown = [r for r in regions if r not in self.margins or r not in REGION_LANDMARKS]
        if unknown:
            raise ValueError(f"unknown regions {unknown}; known: {sorted(set(self.margins) & set(REGION_LANDMARKS))}")
        return regions

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in an RGB / gray uint8 image (original coordinates), largest first."""
        return self.detector.detect(image)

    def no_face_reason(self, image_hw: tuple[int, ...], faces: Sequence[DetectedFace] = ()) -> str:
        """Why :meth:`detect` returned no face for a photo of this size, for messages: the faces found but not
        readable (``faces.unreadable`` of the ``"mesh"`` detector: too turned, small or hidden), or the smallest face
        size looked for, which grows with the photo, and what else hides a larger face: half a face at the photo's
        edge and a face washed out by over-exposure were reported as too small alone, and looking for faces down to
        16 px did not find them."""
        unreadable = getattr(faces, "unreadable", ())
        if unreadable:
            where = ", ".join(f"({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f} px)" for x, y, w, h in unreadable)
            return (
                f"{len(unreadable)} face(s) found at {where} but too turned, too small or too hidden to read their "
                "landmarks; they are left unchanged"
            )
        smallest = self.detector.smallest_face(tuple(image_hw[:2]))
        return (
            f"faces at least ~{smallest:.0f} px wide are looked for in this {image_hw[1]}x{image_hw[0]} photo; "
            "min_face_size / --min-face-size looks for smaller ones. A face cut by the photo's edge or washed out by "
            "over-exposure may not be found at any size"
        )

    def extract(
        self,
        image: np.ndarray,
        faces: Sequence[DetectedFace] | None = None,
        regions: Sequence[str] | None = None,
    ) -> list[FaceRegions]:
        """Align each face and cut its regions into ``crop_size`` crops.

        Args:
            image: ``HxWx3`` RGB or ``HxW`` gray uint8.
            faces: detections to use; detected when ``None``.
            regions: subset of regions; ``self.regions`` when ``None``.

        Each crop is one anti-aliased warp from the original pixels (image -> canonical ->
        region box -> crop composed into a single affine); parts of a box past the image edge
        replicate the edge pixels.
        """
        image = _as_image(image)
        regions = self.regions if regions is None else tuple(self._check_regions(regions))
        faces = self.detect(image) if faces is None else faces
        mask = blend_mask(self.crop_size, self.feather)
        results = []
        for face in faces:
            matrix = alignment_matrix(face.landmarks, self.canonical_size)
            if self.region_anchor == "template":
                anchors = canonical_template(self.canonical_size)
            else:
                anchors = transform_points(matrix, face.landmarks)
            out = FaceRegions(face=face, matrix=matrix, boxes={}, crops={}, masks={})
            for region in regions:
                i1, i2 = REGION_LANDMARKS[region]
                box = region_box(anchors[i1], anchors[i2], *self.margins[region])
                to_crop = _compose(_box_to_crop(box, self.crop_size, self.crop_size), matrix)
                out.boxes[region] = box
                out.crop_matrices[region] = to_crop
                out.crops[region] = _warp_to_crop(image, to_crop, self.crop_size, self.crop_size)
                out.masks[region] = mask.copy()
            results.append(out)
        return results

    def _warp_back(
        self, face: FaceRegions, region: str, crop: np.ndarray | None, image_hw: tuple[int, int]
    ) -> tuple[tuple[slice, slice], np.ndarray | None, np.ndarray]:
        """Warp a crop (optional) and its mask into the image ROI they cover.

        Returns ``((rows, cols), crop_roi float32 or None, mask_roi float32)``. Bilinear weights
        leave float dust (~1e-7) where the mask should vanish; it is zeroed so "mask == 0" means
        "pixel untouched".
        """
        to_crop = face.crop_matrices[region]
        mask = face.masks[region]
        crop_h, crop_w = mask.shape
        x0, y0, x1, y1 = _quad_roi(cv2.invertAffineTransform(to_crop), crop_w, crop_h, image_hw, margin=1)
        roi_to_crop = _translate(to_crop, x0, y0)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # matrix maps destination -> crop
        size = (x1 - x0, y1 - y0)
        mask_roi = cv2.warpAffine(
            np.asarray(mask, dtype=np.float32),
            roi_to_crop,
            size,
            flags=flags,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        mask_roi[mask_roi < 1e-6] = 0.0
        np.clip(mask_roi, 0.0, 1.0, out=mask_roi)
        crop_roi = None
        if crop is not None:
            crop_roi = cv2.warpAffine(
                np.asarray(crop, dtype=np.float32),
                roi_to_crop,
                size,
                flags=flags,
                borderMode=cv2.BORDER_REPLICATE,
            )
        return (slice(y0, y1), slice(x0, x1)), crop_roi, mask_roi

    def composite(
        self,
        image: np.ndarray,
        faces: Sequence[FaceRegions],
        edited: Sequence[Mapping[str, np.ndarray]],
        residual: bool = False,
    ) -> np.ndarray:
        """Paste edited crops back into the original-resolution image.

        For each face (in order) and each region present in its ``edited`` dict, the crop and
        ``face.masks[region]`` are warped back with the inverse of the extraction warp, over the
        region's bounding ROI only, and blended: ``out = m * edit + (1 - m) * out``. Faces are
        applied sequentially, so overlapping regions stack like layers.

        Args:
            image: the original ``HxWx3`` RGB or ``HxW`` gray uint8 image (not modified).
            faces: from :meth:`extract` on this image.
            edited: one dict per face, region -> edited crop, uint8 or float in ``[0, 255]``
                (clipped). Its shape must match the image's channels: ``crop x crop x 3`` for an
                RGB image, ``crop x crop`` (or ``x 1``) for a gray one. A luminance-only model's
                output must therefore be merged with the source chroma by the caller first.
                Missing regions are left unedited.
            residual: add only the change ``edit - face.crops[region]``, warped back, instead of
                replacing the region by the (upsampled) crop. The photo keeps its own detail (lashes,
                teeth) wherever the model changed nothing, at any resolution; an unchanged crop leaves the
                image bit-identical.

        Returns:
            uint8 image of the same shape; every pixel where all warped masks are 0 is
            bit-identical to ``image``.
        """
        image = _as_image(image)
        if len(edited) != len(faces):
            raise ValueError(f"got {len(edited)} edit dicts for {len(faces)} faces")
        out = image.copy()
        for face, edits in zip(faces, edited, strict=True):
            for region, crop in edits.items():
                crop = self._check_crop(np.asarray(crop), face, region, image)
                if residual:
                    source = face.crops[region].reshape(crop.shape).astype(np.float32)
                    crop = np.clip(crop, 0, 255).astype(np.float32) - source
                rows_cols, crop_roi, mask_roi = self._warp_back(face, region, crop, image.shape[:2])
                base = out[rows_cols]
                if image.ndim == 3:
                    mask_roi = mask_roi[:, :, None]
                if residual:
                    blended = base + mask_roi * crop_roi
                else:
                    blended = base + mask_roi * (np.clip(crop_roi, 0, 255) - base)
                blended = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
                # Exactness: pixels the mask does not reach keep their value bit for bit.
                out[rows_cols] = np.where(mask_roi > 0, blended, base)
        return out

    @staticmethod
    def _check_crop(crop: np.ndarray, face: FaceRegions, region: str, image: np.ndarray) -> np.ndarray:
        if region not in face.crop_matrices:
            raise KeyError(f"region {region!r} was not extracted for this face ({list(face.boxes)})")
        if crop.ndim == 3 and crop.shape[2] == 1:
            crop = crop[:, :, 0]
        expected = face.masks[region].shape + image.shape[2:]
        if crop.shape != expected:
            raise ValueError(
                f"edited {region!r} crop has shape {crop.shape}, expected {expected} "
                "(same size as the extracted crop and the image's channel count)"
            )
        if not (crop.dtype == np.uint8 or np.issubdtype(crop.dtype, np.floating)):
            raise TypeError(f"edited crops must be uint8 or float in [0, 255], got {crop.dtype}")
        return crop

    def composite_mask(
        self, image_shape: ImageShape, faces: Sequence[FaceRegions], regions: Sequence[str] | None = None
    ) -> np.ndarray:
        """Total weight the edits of :meth:`composite` receive per pixel, ``HxW`` float32.

        ``1 - prod(1 - m_i)`` over the warped masks of all faces/regions (all extracted ones when
        ``regions`` is None) and the windows of the faces' geometric warps. Zero exactly where :meth:`composite`
        leaves pixels untouched; useful for evaluation (pixels outside the regions) and seam scores. Allocates a
        full-size float image, unlike :meth:`composite`.
        """
        keep = np.ones(tuple(image_shape[:2]), dtype=np.float32)
        for face in faces:
            if face.warp is not None:
                keep *= 1.0 - face.warp.mask(keep.shape)
            for region in face.crop_matrices if regions is None else regions:
                rows_cols, _, mask_roi = self._warp_back(face, region, None, keep.shape)
                keep[rows_cols] *= 1.0 - mask_roi
        return 1.0 - keep

    def draw_regions(self, image: np.ndarray, faces: Sequence[FaceRegions | DetectedFace]) -> np.ndarray:
        """Debug view: face boxes (green), the 5 landmarks, eye (cyan) / mouth (magenta) quads.

        Accepts :class:`FaceRegions` or bare :class:`DetectedFace` (boxes and landmarks only).
        Returns a new RGB uint8 image.
        """
        image = _as_image(image)
        canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
        thick = max(1, round(max(canvas.shape[:2]) / 400))
        shift = 4  # sub-pixel drawing: OpenCV takes fixed-point coordinates with `shift` bits

        def fixed(points: Any) -> np.ndarray:
            return np.round(np.asarray(points, dtype=np.float64) * (1 << shift)).astype(np.int32)

        region_colors = {"eyes": (0, 220, 255), "mouth": (255, 0, 220)}
        point_colors = [(255, 0, 0), (0, 0, 255), (255, 255, 0), (255, 128, 0), (0, 128, 255)]
        for item in faces:
            det = item.face if isinstance(item, FaceRegions) else item
            x, y, w, h = det.box
            cv2.rectangle(
                canvas, tuple(fixed([x, y])), tuple(fixed([x + w, y + h])), (0, 255, 0), thick, cv2.LINE_AA, shift
            )
            if isinstance(item, FaceRegions):
                if item.warp is not None:  # the outline of what the geometric warp may move
                    cv2.polylines(canvas, [fixed(item.warp.ring)], True, (255, 255, 0), thick, cv2.LINE_AA, shift)
                for region in item.boxes:
                    quad = fixed(item.region_quad(region))
                    color = region_colors.get(region, (255, 255, 255))
                    cv2.polylines(canvas, [quad], True, color, thick, cv2.LINE_AA, shift)
            for point, color in zip(det.landmarks, point_colors, strict=True):
                cv2.circle(canvas, tuple(fixed(point)), 2 * thick << shift, color, -1, cv2.LINE_AA, shift)
        return canvas

    @property
    def geometry(self) -> dict[str, Any]:
        """What decides which pixels a crop shows (JSON-ready): a model trained on crops of one geometry must
        edit with the same one, so data preparation records it and training copies it into the model."""
        return {
            "region_anchor": self.region_anchor,
            "region_margins": {region: list(self.margins[region]) for region in self.regions},
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(detector={self.detector!r}, regions={self.regions}, "
            f"canonical_size={self.canonical_size}, crop_size={self.crop_size}, "
            f"region_anchor={self.region_anchor!r}, margins={self.margins}, feather={self.feather})"
        )
