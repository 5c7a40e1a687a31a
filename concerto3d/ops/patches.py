"""Pooling of point features onto image patches, the meeting place of the 2D and 3D encoders.

A *patch key* names one patch of one image in a batch: ``key = image * (Hp * Wp) + patch`` with
``patch = row * Wp + col`` (the ViT patch order, also ``data.correspondence.pixel_to_patch``). Correspondences
(image, u, v, point) become (point, key) pairs with :func:`correspondence_patch_keys`; :func:`pool_to_patches`
averages the point features that fall on each patch; :func:`gather_patches` picks the image encoder's features of
the same keys, so that row ``i`` of both is one matched (points, patch) pair.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["patch_key", "split_patch_key", "correspondence_patch_keys", "pool_to_patches", "majority_patch_labels",
           "gather_patches"]


def patch_key(image: Tensor, patch: Tensor, patches_per_image: int) -> Tensor:
    """Key of patch ``patch`` of image ``image``: ``image * patches_per_image + patch``.

    Args:
        image: (M,) long, image index in the batch.
        patch: (M,) long, ``row * Wp + col``, in ``[0, patches_per_image)``.
        patches_per_image: ``Hp * Wp``.

    Returns:
        (M,) long keys.
    """
    return image.long() * int(patches_per_image) + patch.long()


def split_patch_key(key: Tensor, patches_per_image: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`patch_key`: (M,) keys -> ((M,) image index, (M,) patch index)."""
    return torch.div(key, patches_per_image, rounding_mode="floor"), key % patches_per_image


def correspondence_patch_keys(corr: Tensor, image_size: tuple[int, int], patch_size: int) -> tuple[Tensor, Tensor]:
    """Turn pixel correspondences into (point, patch key) pairs.

    Args:
        corr: (M, 4) long rows ``(image, u, v, point)``: point ``point`` is seen at column ``u``, row ``v`` of
            image ``image``.
        image_size: (H, W) of the images, both multiples of ``patch_size``.
        patch_size: ViT patch side in pixels.

    Returns:
        ``(point (M,), key (M,))`` long, ``key = image * (Hp * Wp) + (v // p) * Wp + (u // p)``.
    """
    if corr.dim() != 2 or corr.size(1) != 4:
        raise ValueError(f"correspondence_patch_keys: expected corr of shape (M, 4), got {tuple(corr.shape)}")
    height, width = int(image_size[0]), int(image_size[1])
    if height % patch_size or width % patch_size:
        raise ValueError(f"correspondence_patch_keys: image size {height}x{width} is not a multiple of the "
                         f"patch size {patch_size}")
    hp, wp = height // patch_size, width // patch_size
    image, u, v, point = corr.long().unbind(dim=1)
    if corr.numel() and (bool((u < 0).any()) or bool((u >= width).any()) or bool((v < 0).any())
                         or bool((v >= height).any())):
        raise ValueError(f"correspondence_patch_keys: pixel outside the {height}x{width} image")
    patch = torch.div(v, patch_size, rounding_mode="floor") * wp + torch.div(u, patch_size, rounding_mode="floor")
    return point, patch_key(image, patch, hp * wp)


def pool_to_patches(point_feat: Tensor, corr_point: Tensor, corr_patch_key: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of the point features that each patch sees.

    A point seen by several pixels of one patch counts once per pixel (a pixel-weighted mean).

    Args:
        point_feat: (N, C) float, per-point features.
        corr_point: (M,) long, point index of each correspondence, in ``[0, N)``.
        corr_patch_key: (M,) long, patch key of each correspondence (see :func:`patch_key`).

    Returns:
        ``(keys (P,) long, pooled (P, C))``: the distinct keys in ascending order and the mean feature of each;
        gradients flow to ``point_feat``.
    """
    if point_feat.dim() != 2:
        raise ValueError(f"pool_to_patches: expected point_feat of shape (N, C), got {tuple(point_feat.shape)}")
    if corr_point.shape != corr_patch_key.shape or corr_point.dim() != 1:
        raise ValueError(f"pool_to_patches: expected corr_point and corr_patch_key of one shape (M,), got "
                         f"{tuple(corr_point.shape)} and {tuple(corr_patch_key.shape)}")
    if corr_point.numel() and (int(corr_point.min()) < 0 or int(corr_point.max()) >= point_feat.size(0)):
        raise ValueError(f"pool_to_patches: point index outside [0, {point_feat.size(0)})")
    keys, inverse = torch.unique(corr_patch_key, sorted=True, return_inverse=True)
    # index_select, not point_feat[corr_point]: its backward is an index_add, much cheaper than an indexed put
    rows = point_feat.index_select(0, corr_point)
    sums = point_feat.new_zeros(keys.numel(), point_feat.size(1)).index_add(0, inverse, rows)
    counts = torch.bincount(inverse, minlength=keys.numel()).clamp_min(1).to(point_feat.dtype)
    return keys, sums / counts.unsqueeze(1)


def majority_patch_labels(corr_patch_key: Tensor, label: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """The most frequent label of the points each patch sees (the label counterpart of :func:`pool_to_patches`).

    A point seen by several pixels of one patch votes once per pixel; unlabelled points (label < 0) do not vote,
    and a patch without a vote is left out. Ties go to the lower class.

    Args:
        corr_patch_key: (M,) long, patch key of each correspondence.
        label: (M,) long, label of each correspondence's point, -1 = ignore.
        num_classes: K, labels lie in ``[0, K)``.

    Returns:
        ``(keys (P,) long, labels (P,) long)``: the patches with at least one vote, in ascending key order.
    """
    if corr_patch_key.shape != label.shape or label.dim() != 1:
        raise ValueError(f"majority_patch_labels: expected corr_patch_key and label of one shape (M,), got "
                         f"{tuple(corr_patch_key.shape)} and {tuple(label.shape)}")
    keep = label >= 0
    keys, inverse = torch.unique(corr_patch_key[keep], sorted=True, return_inverse=True)
    votes = torch.zeros(keys.numel(), int(num_classes), dtype=torch.long, device=label.device)
    votes.index_put_((inverse, label[keep].long()), torch.ones_like(inverse), accumulate=True)
    return keys, votes.argmax(dim=1)


def gather_patches(patch_grid: Tensor, keys: Tensor) -> Tensor:
    """Image-encoder features of the patches named by ``keys``.

    Args:
        patch_grid: (F, Hp, Wp, C) patch features of the batch's images.
        keys: (P,) long patch keys (``image * Hp * Wp + row * Wp + col``).

    Returns:
        (P, C) features, row ``i`` for ``keys[i]``.
    """
    if patch_grid.dim() != 4:
        raise ValueError(f"gather_patches: expected patch_grid of shape (F, Hp, Wp, C), got "
                         f"{tuple(patch_grid.shape)}")
    flat = patch_grid.reshape(-1, patch_grid.size(-1))
    if keys.numel() and (int(keys.min()) < 0 or int(keys.max()) >= flat.size(0)):
        raise ValueError(f"gather_patches: key outside [0, {flat.size(0)})")
    return flat[keys]


def patch_majority_labels(pixel_labels: Tensor, patch: int, num_classes: int) -> Tensor:
    """The most frequent label of each ``patch`` x ``patch`` square of label images (the targets of a patch
    classifier), -1 for a square without a labelled pixel; ties go to the lower class.

    Args:
        pixel_labels: (F, H, W) long, -1 = unlabelled; H and W multiples of ``patch``.
        num_classes: K, labels lie in ``[0, K)``.
    Returns:
        (F, H / patch, W / patch) long.
    """
    f, h, w = pixel_labels.shape
    if h % patch or w % patch:
        raise ValueError(f"patch_majority_labels: expected H, W multiples of {patch}, got {h}x{w}")
    hp, wp = h // patch, w // patch
    squares = pixel_labels.reshape(f, hp, patch, wp, patch).permute(0, 1, 3, 2, 4).reshape(f * hp * wp, -1)
    labelled = squares >= 0
    votes = torch.zeros(squares.size(0), int(num_classes), dtype=torch.long, device=pixel_labels.device)
    votes.scatter_add_(1, squares.clamp_min(0), labelled.long())
    target = votes.argmax(dim=1)
    target[votes.sum(dim=1) == 0] = -1
    return target.reshape(f, hp, wp)
