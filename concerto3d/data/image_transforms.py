"""Image-side augmentations: photometric only, so a pixel (u, v) still shows the same point afterwards.

Each transform is called as ``transform(image, rng) -> image`` on one ``(3, H, W)`` float tensor with values in
[0, 1] (before normalisation), draws its randomness from the ``numpy.random.Generator`` it is given, returns a new
tensor (the input is not modified) and prints itself like the point transforms. Nothing here moves, resizes or crops
pixels: correspondences stay valid. :class:`Normalize` ends a pipeline with the ImageNet mean and std. The one
geometric step, :func:`mirror_labelled_frames`, is for labelled frames only and drops the correspondences it breaks.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from concerto3d.data.base_transform import Transform, _check_p, _check_range
from concerto3d.data.compose import Compose

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ITU-R 601 luma weights, as torchvision uses for grayscale
_LUMA = (0.299, 0.587, 0.114)


def to_float_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [0, 1]."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)


def grayscale(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> (1, H, W) luma."""
    w = torch.tensor(_LUMA, dtype=image.dtype, device=image.device)
    return (w @ image.reshape(3, -1)).reshape(1, *image.shape[1:])


def gaussian_kernel1d(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """(K,) normalised Gaussian weights, K = 2 * ceil(3 sigma) + 1."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (C, H, W) image with reflected borders (kernel radius capped by the size)."""
    k = gaussian_kernel1d(sigma, image.dtype, image.device)
    radius = min(len(k) // 2, image.shape[-1] - 1, image.shape[-2] - 1)
    if radius < 1:
        return image.clone()
    centre = len(k) // 2
    k = k[centre - radius: centre + radius + 1]
    k = k / k.sum()
    c = image.shape[0]
    x = image[None]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x[0]


class ImageColorJitter(Transform):
    """Brightness, contrast and saturation, each a factor uniform in [1 - s, 1 + s], applied in random order
    (as torchvision's ColorJitter, without hue); the result is clipped to [0, 1]."""

    _repr_fields = ("brightness", "contrast", "saturation")

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.2, p: float = 0.8):
        for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0 <= v < 1:
                raise ValueError(f"ImageColorJitter {name}: expected a strength in [0, 1), got {v}")
        self.brightness, self.contrast, self.saturation = float(brightness), float(contrast), float(saturation)
        self.p = _check_p(p)

    def apply(self, image: torch.Tensor, rng):
        factors = [rng.uniform(1 - s, 1 + s) for s in (self.brightness, self.contrast, self.saturation)]
        out = image
        for op in rng.permutation(3):
            f = float(factors[op])
            if op == 0:
                out = out * f
            elif op == 1:
                mean = grayscale(out).mean()
                out = (out - mean) * f + mean
            else:
                gray = grayscale(out)
                out = (out - gray) * f + gray
            out = out.clamp(0.0, 1.0)
        return out


class ImageGaussianBlur(Transform):
    """Gaussian blur with sigma uniform in ``sigma`` pixels."""

    _repr_fields = ("sigma",)

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5):
        self.sigma = _check_range("ImageGaussianBlur sigma", sigma, low=1e-3)
        self.p = _check_p(p)

    def apply(self, image: torch.Tensor, rng):
        return gaussian_blur(image, float(rng.uniform(*self.sigma)))


class ImageGrayscale(Transform):
    """Replace the colours by their luma (kept as 3 channels)."""

    def __init__(self, p: float = 0.2):
        self.p = _check_p(p)

    def apply(self, image: torch.Tensor, rng):
        return grayscale(image).expand_as(image).clone()


class Normalize(Transform):
    """Subtract ``mean`` and divide by ``std`` per channel (ImageNet by default); always applied."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean, self.std, self.p = tuple(map(float, mean)), tuple(map(float, std)), 1.0
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"Normalize: expected 3 means and 3 positive stds, got {self.mean}, {self.std}")

    def apply(self, image: torch.Tensor, rng):
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device)[:, None, None]
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device)[:, None, None]
        return (image - mean) / std

    def __repr__(self) -> str:
        return "Normalize(mean=imagenet, std=imagenet)" if (self.mean, self.std) == (IMAGENET_MEAN, IMAGENET_STD) \
            else f"Normalize(mean={self.mean}, std={self.std})"


def denormalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Undo :class:`Normalize`: (..., 3, H, W) normalised -> values in [0, 1] (for display and tests)."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device)[:, None, None]
    s = torch.tensor(std, dtype=images.dtype, device=images.device)[:, None, None]
    return images * s + m


def mirror_labelled_frames(images: list[torch.Tensor], labels: np.ndarray, corr: np.ndarray, p: float,
                           rng: np.random.Generator) -> tuple[list[torch.Tensor], np.ndarray, np.ndarray]:
    """Mirror each frame left to right with probability ``p``, together with its pixel labels.

    A mirrored frame's pixels no longer show the points its correspondences name, so its rows of ``corr`` (column 0
    is the frame) are dropped. Only the ``2d-supervised`` objective, whose targets are the labels, uses this.

    Args:
        images: F frames, each (3, H, W).
        labels: (F, H, W) pixel labels.
        corr: (K, >=1) correspondences, column 0 the frame index.
        p: probability of mirroring a frame.
        rng: the sample's generator (one draw per frame).
    """
    mirrored = rng.random(len(images)) < p
    images = [x.flip(-1) if m else x for x, m in zip(images, mirrored)]
    labels = np.where(mirrored[:, None, None], labels[:, :, ::-1], labels)
    return images, labels, corr[~mirrored[corr[:, 0]]]


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "to_float_image", "grayscale", "gaussian_kernel1d", "gaussian_blur",
           "ImageColorJitter", "ImageGaussianBlur", "ImageGrayscale", "Normalize", "denormalize",
           "mirror_labelled_frames", "Compose"]
