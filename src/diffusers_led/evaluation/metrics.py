"""The evaluation's metrics as plain numpy/scipy functions (no models, no I/O).

- :func:`frechet_distance` (FID on given features), :func:`kernel_inception_distance` (KID),
- :func:`expression_inception_score` (the paper's Eq. 6-7 over classifier probabilities),
- :func:`identity_distances` (Euclidean and cosine between embeddings),
- :func:`preservation` (pixels outside the edit masks) and :func:`psnr`,
- :func:`seam_score` (the edit's gradient at the blend border relative to the texture around it),
- :func:`lab_change` (lightness and colour change in CIELAB inside a mask) and :func:`relative_gain` (expression
  gain over what was possible).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "PSNR_CAP",
    "expression_inception_score",
    "frechet_distance",
    "frechet_distance_sqrtm",
    "identity_distances",
    "kernel_inception_distance",
    "lab_change",
    "luminance",
    "preservation",
    "psnr",
    "relative_gain",
    "seam_score",
]

#: PSNR of identical images (an infinite value) is reported as this many dB.
PSNR_CAP = 100.0


# ---------------------------------------------------------------------------------------------------------------------
# Distribution distances on features
# ---------------------------------------------------------------------------------------------------------------------


def _features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{name} must be (N >= 2, D) features, got shape {x.shape}")
    return x


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID on Inception features).

    ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` with unbiased covariances (``N - 1``), as pytorch-fid and
    clean-fid. The paper's Eq. 8 writes the mean term without the square and the product as ``sqrt(S1 x S2)``; this
    is the standard definition (Heusel et al. 2017) that its numbers come from.

    The trace term is computed exactly without a matrix square root: with centred features ``A1``, ``A2``,
    ``Tr (S1 S2)^(1/2)`` is the sum of the singular values of ``A1 A2^T / sqrt((n1 - 1)(n2 - 1))``, an
    ``n1 x n2`` matrix. This is exact for any rank (small sets have singular 2048 x 2048 covariances, where
    ``scipy.linalg.sqrtm`` is slow and inaccurate), and it gives 0 for identical sets up to rounding.
    See :func:`frechet_distance_sqrtm` for the textbook computation.
    """
    real, fake = _features(real, "real"), _features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: {real.shape[1]} vs {fake.shape[1]}")
    mu1, mu2 = real.mean(0), fake.mean(0)
    a1, a2 = real - mu1, fake - mu2
    n1, n2 = len(real), len(fake)
    trace1 = float((a1 * a1).sum()) / (n1 - 1)
    trace2 = float((a2 * a2).sum()) / (n2 - 1)
    singular = np.linalg.svd(a1 @ a2.T, compute_uv=False)
    trace_sqrt = float(singular.sum()) / math.sqrt((n1 - 1) * (n2 - 1))
    value = float(((mu1 - mu2) ** 2).sum()) + trace1 + trace2 - 2.0 * trace_sqrt
    return max(value, 0.0)


def frechet_distance_sqrtm(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """The textbook FID from means and covariances with ``scipy.linalg.sqrtm`` (pytorch-fid's recipe, including its
    ``eps`` regularisation when the product is singular). Slow for 2048-d; kept as the reference for tests."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _mmd2(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray, estimator: str) -> float:
    m, n = len(k_xx), len(k_yy)
    sum_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    sum_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    if estimator == "unbiased":
        return float(sum_xx + sum_yy - 2.0 * k_xy.mean())
    # U-statistic (Gretton et al. 2012, Eq. 3): the cross term also leaves out the i == j pairs.
    return float(sum_xx + sum_yy - 2.0 * (k_xy.sum() - np.trace(k_xy)) / (m * (m - 1)))


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    coef0: float = 1.0,
    gamma: float | None = None,
    seed: int = 0,
    estimator: str = "unbiased",
) -> tuple[float, float]:
    """Kernel Inception Distance (Bińkowski et al. 2018): MMD² with the polynomial kernel
    ``(gamma x.y + coef0)^degree``, ``gamma = 1 / D``. Returns ``(mean, std)`` over subsets.

    When both sets are no larger than ``subset_size`` the estimate uses all samples once (std 0): deterministic and
    the best estimate for the small sets this project has. Otherwise ``subsets`` random subsets of ``subset_size``
    (seeded) are averaged, as torchmetrics and the reference implementation do.

    ``estimator="unbiased"`` (default) is the reference implementation's and torchmetrics' estimator, so numbers are
    comparable with theirs. It is unbiased for two *independent* samples (about 0 for two samples of one
    distribution, possibly slightly negative), but a set compared with *itself* gets
    ``-2/m (mean k(x, x) - mean k(x, y))``, a small negative O(1/m) value, because the cross term then contains the
    ``k(x_i, x_i)`` pairs. ``"u-statistic"`` (Gretton et al. 2012, Eq. 3; equal set sizes only) leaves those pairs
    out and is exactly 0 for identical sets.
    """
    real, fake = _features(real, "real"), _features(fake, "fake")
    if estimator not in ("unbiased", "u-statistic"):
        raise ValueError(f"estimator must be 'unbiased' or 'u-statistic', got {estimator!r}")
    if estimator == "u-statistic" and len(real) != len(fake) and max(len(real), len(fake)) <= subset_size:
        raise ValueError("the u-statistic KID needs sets of equal size")
    gamma = 1.0 / real.shape[1] if gamma is None else gamma

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (gamma * (a @ b.T) + coef0) ** degree

    if len(real) <= subset_size and len(fake) <= subset_size:
        return _mmd2(kernel(real, real), kernel(fake, fake), kernel(real, fake), estimator), 0.0
    rng = np.random.default_rng(seed)
    size = min(subset_size, len(real), len(fake))
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), size, replace=False)]
        y = fake[rng.choice(len(fake), size, replace=False)]
        values.append(_mmd2(kernel(x, x), kernel(y, y), kernel(x, y), estimator))
    return float(np.mean(values)), float(np.std(values))


def expression_inception_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """The paper's Inception Score, Eq. 6-7, over an expression classifier's probabilities ``p(y|x_i)``, ``(N, C)``.

    ``p(y) = 1/N sum_i p(y|x_i)`` (Eq. 6); ``IS = exp(1/N sum_i KL(p(y|x_i) || p(y)))`` (Eq. 7), natural logs.
    1 when all predictions agree, at most ``C`` (confident and evenly spread over the classes). Computed in one
    split (the paper gives no split count).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"probs must be (N >= 1, C), got shape {probs.shape}")
    marginal = probs.mean(axis=0, keepdims=True)
    kl = (probs * (np.log(probs + eps) - np.log(marginal + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))


# ---------------------------------------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------------------------------------


def identity_distances(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Row-wise ``euclidean`` and ``cosine`` (``1 - cos``) distances between two ``(N, D)`` embedding sets."""
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    euclidean = np.linalg.norm(a - b, axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = 1.0 - (a * b).sum(axis=1) / np.maximum(norms, 1e-12)
    return {"euclidean": euclidean, "cosine": cosine}


# ---------------------------------------------------------------------------------------------------------------------
# Pixels: preservation, PSNR, seams
# ---------------------------------------------------------------------------------------------------------------------


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB (or gray) image as float32 in [0, 255]."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float32)
    rgb = image[..., :3].astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def preservation(original: np.ndarray, edited: np.ndarray, weight: np.ndarray) -> dict[str, float]:
    """How much the pixels the edit must not touch changed: max and mean absolute difference (uint8 levels) where
    the composite ``weight`` (``FaceRegionProcessor.composite_mask``) is 0. Both must be 0 for this pipeline."""
    original, edited = np.asarray(original), np.asarray(edited)
    if original.shape != edited.shape:
        raise ValueError(f"image shapes differ: {original.shape} vs {edited.shape}")
    outside = np.asarray(weight) <= 0
    diff = np.abs(original.astype(np.int16) - edited.astype(np.int16))
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    values = diff[outside]
    return {
        "max_abs_outside": float(values.max()) if values.size else 0.0,
        "mean_abs_outside": float(values.mean()) if values.size else 0.0,
        "changed_pixels_outside": int((values > 0).sum()),
        "pixels_outside": int(values.size),
    }


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, max_value: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(max_value**2 / MSE)``, the MSE over all channels of the pixels
    where ``mask`` is non-zero (all pixels without one; a weight map counts where it is above 0). Identical images
    give :data:`PSNR_CAP` instead of infinity, so that means and JSON stay finite. The project's one PSNR: the
    evaluation's face PSNR, the benchmarks and the tests use it."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sq = (a - b) ** 2
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        sq = sq[mask]
    mse = float(sq.mean()) if sq.size else 0.0
    if mse <= 0.0:
        return PSNR_CAP
    return float(min(10.0 * math.log10(max_value**2 / mse), PSNR_CAP))


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    return np.sqrt(gx * gx + gy * gy)


def seam_score(original: np.ndarray, edited: np.ndarray, weight: np.ndarray, band: int = 4) -> dict[str, float | None]:
    """A boundary score for a composited edit.

    The *border* is where the edit fades in: the pixels whose composite weight is strictly between 0 and 1, plus
    the one-pixel ring where it first becomes non-zero (a hard paste has only that ring and bilinear edge pixels; a
    feathered blend has its whole ramp). The *inside band* is the fully edited pixels (weight 1) and the *outside
    band* the untouched ones (weight 0) within ``band`` pixels of the border.

    With ``change = luma(edited) - luma(original)`` and ``|grad|`` a Sobel gradient magnitude:

    - ``score`` = mean ``|grad change|`` on the border / mean ``|grad edited|`` in the inside and outside bands:
      how sharp the edit's change is where it meets the untouched image, relative to the image's own texture
      there. 0 for an unchanged image; a hard paste of a different crop makes a step, which scores high.

    Returns ``{"score", "border_change", "texture", "border_pixels"}`` (the score's numerator and denominator, in
    luma levels per pixel); ``score`` is 0 when nothing changed.
    """
    weight = np.asarray(weight, dtype=np.float32)
    touched = weight > 0
    if not touched.any():
        return {"score": 0.0, "border_change": 0.0, "texture": None, "border_pixels": 0}
    ys, xs = np.nonzero(touched)
    pad = band + 3
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, weight.shape[0])
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, weight.shape[1])
    w = weight[y0:y1, x0:x1]
    before = luminance(np.asarray(original)[y0:y1, x0:x1])
    after = luminance(np.asarray(edited)[y0:y1, x0:x1])

    full = w >= 1.0 - 1e-4
    untouched = w <= 0
    kernel = np.ones((3, 3), np.uint8)
    ring = cv2.dilate((~untouched).astype(np.uint8), kernel).astype(bool) & untouched
    border = (~full & ~untouched) | ring
    # Distance (px) of every pixel from the border, for the bands on either side.
    distance = cv2.distanceTransform((~border).astype(np.uint8), cv2.DIST_L2, 3)
    near = (distance > 0) & (distance <= band)
    inside_band = near & full
    outside_band = near & untouched & ~ring

    change = _gradient_magnitude(after - before)
    texture = _gradient_magnitude(after)
    border_change = float(change[border].mean()) if border.any() else 0.0
    if border_change == 0.0 and not np.any(after != before):
        return {"score": 0.0, "border_change": 0.0, "texture": None, "border_pixels": int(border.sum())}
    bands = inside_band | outside_band
    reference = float(texture[bands].mean()) if bands.any() else 0.0
    score = border_change / max(reference, 1e-6)
    return {"score": score, "border_change": border_change, "texture": reference, "border_pixels": int(border.sum())}


# ---------------------------------------------------------------------------------------------------------------------
# Colour inside the regions, expression gain
# ---------------------------------------------------------------------------------------------------------------------


def _lab(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    rgb = image[..., :3].astype(np.float32) / 255.0
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)  # float input: L* in [0, 100], a* b* about [-127, 127] (D65)


def lab_change(original: np.ndarray, edited: np.ndarray, weight: np.ndarray) -> dict[str, float | None]:
    """How much lightness and colour changed inside a mask, in CIELAB (sRGB, D65).

    ``dL`` is the mean ``|L*(edited) - L*(original)|`` and ``dab`` the mean chroma-plane distance
    ``sqrt(da*^2 + db*^2)``, both averaged over the pixels with weight > 0 and weighted by ``weight`` (the region's
    blend mask, so the feathered rim counts as much as it is edited). A ``dL`` of 1 is about one just-noticeable
    step in lightness. ``None`` when the mask is empty.
    """
    original, edited = np.asarray(original), np.asarray(edited)
    if original.shape != edited.shape:
        raise ValueError(f"image shapes differ: {original.shape} vs {edited.shape}")
    weight = np.asarray(weight, dtype=np.float64)
    total = float(weight[weight > 0].sum())
    if total <= 0:
        return {"dL": None, "dab": None}
    delta = _lab(edited).astype(np.float64) - _lab(original).astype(np.float64)
    d_l = np.abs(delta[..., 0])
    d_ab = np.hypot(delta[..., 1], delta[..., 2])
    inside = weight > 0
    return {
        "dL": float((d_l[inside] * weight[inside]).sum() / total),
        "dab": float((d_ab[inside] * weight[inside]).sum() / total),
    }


def relative_gain(p_before: float, p_after: float) -> float | None:
    """``(p_after - p_before) / (1 - p_before)``: the share of the possible gain in the target's probability that an
    edit achieved (1: now certain, 0: unchanged, negative: less of the target than before). ``None`` when the face
    already had ``p_before == 1`` (nothing to gain), so already-smiling faces do not count as wins."""
    if p_before is None or p_after is None or p_before >= 1.0:
        return None
    return float((p_after - p_before) / (1.0 - p_before))
