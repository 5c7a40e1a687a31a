"""Image encoder: a Hugging Face vision model that returns a grid of patch features.

Two architectures (``ImageEncoderConfig.architecture``):

* ``vit``: a vision transformer (ViT, DINOv2, ...); its patch tokens are the grid;
* ``resnet``: a convolutional network whose last feature map, at a stride of ``patch_size`` pixels, is the grid
  (built from scratch as a transformers ``ResNetBackbone``; a folder or config of any transformers backbone with
  feature maps, e.g. ConvNeXt, loads through ``AutoBackbone``). A convolution's locality makes it the better
  choice for a 2D teacher trained from a few hundred labelled frames, where a ViT from scratch memorises its rooms
  (docs/history/2026-12-03-2d-teacher.md).

Three ways to build it, all without network access:

* from scratch: a transformers ``ViTModel`` built from a small ``ViTConfig``, or a ``ResNetBackbone`` from a
  ``ResNetConfig`` (trained jointly with the points, or as a 2D teacher);
* from a local checkpoint folder (``pretrained_path``): any ViT-like model ``AutoModel.from_pretrained`` reads,
  e.g. ViT or DINOv2 (with or without register tokens), usually frozen: Concerto's own recipe, a self-supervised 2D
  model as the cross-modal target;
* around a given backbone (``ImageEncoder(config, backbone=...)``): how a concerto3d run's trained image encoder is
  reused (``concerto3d.inference.load_image_backbone`` opens the run; this module never opens a concerto3d folder).

Token layout of a ViT's last hidden state: ``[CLS, registers (R, often 0), patches (row-major)]``, so the token
of patch (row, col) is ``1 + R + row * Wp + col``. A convolutional backbone has no CLS token: its pooled feature is
the mean of the grid.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from concerto3d.errors import InputError

__all__ = ["ImageEncoderConfig", "ImageEncoderOutput", "ImageEncoder", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ImageEncoderConfig:
    """Shape of the image encoder, or the local checkpoint it is loaded from.

    Attributes:
        architecture: ``vit`` (patch tokens of a vision transformer) or ``resnet`` (the last feature map of a
            convolutional backbone, at a stride of ``patch_size`` pixels). From scratch, ``resnet`` is a ResNet of
            basic blocks (ResNet-18's), two a stage, with as many stages as the stride needs (a stride-4 stem, then
            x2 a stage: patch 16 = three stages) and widths doubling to ``hidden_size``.
        image_size: (H, W) of the input images, multiples of the patch size; None (default) in a training config:
            the data's (``data.image_size``, itself the preprocessed images' size unless set).
        patch_size: ViT patch side in pixels (a pretrained model's own value wins); None: ``data.patch_size``.
        hidden_size: token width; a ``resnet``'s last stage width (from scratch only).
        num_layers: transformer blocks (``vit`` from scratch only).
        num_heads: attention heads (``vit`` from scratch only).
        mlp_ratio: MLP width / token width (``vit`` from scratch only).
        pretrained_path: a local Hugging Face model folder (config.json + weights), a concerto3d run or model folder
            with an image encoder (whose backbone ``concerto3d.inference.load_image_backbone`` gives as
            ``backbone``), or None to build from scratch.
        backbone_config: a Hugging Face config as a dict (``model.config.to_dict()``, with ``model_type``): the
            architecture is built from it with random weights, for reloading a saved encoder without its original
            folder (see :meth:`ImageEncoder.rebuild_config`). Ignored when ``pretrained_path`` is set.
        freeze: keep the encoder's weights fixed (no gradients, always in eval mode).
        image_mean: per-channel mean of :meth:`ImageEncoder.normalize` (ImageNet's by default).
        image_std: per-channel std of :meth:`ImageEncoder.normalize`.
    """

    architecture: Literal["vit", "resnet"] = "vit"
    image_size: tuple[int, int] | None = None
    patch_size: int | None = None
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 3
    mlp_ratio: int = 4
    pretrained_path: str | None = None
    backbone_config: dict | None = None
    freeze: bool = False
    image_mean: tuple[float, float, float] = IMAGENET_MEAN
    image_std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.architecture not in ("vit", "resnet"):
            raise ValueError(f"ImageEncoderConfig: expected architecture 'vit' or 'resnet', got {self.architecture!r}")
        if self.image_size is not None:
            self.image_size = tuple(int(s) for s in self.image_size)
            if len(self.image_size) != 2 or min(self.image_size) <= 0:
                raise ValueError(f"ImageEncoderConfig: expected image_size (H, W) > 0, got {self.image_size}")
        if self.patch_size is not None and self.patch_size < 1:
            raise ValueError(f"ImageEncoderConfig: expected patch_size >= 1, got {self.patch_size}")
        self.image_mean = tuple(float(s) for s in self.image_mean)
        self.image_std = tuple(float(s) for s in self.image_std)
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError(f"ImageEncoderConfig: expected 3 means and 3 positive stds, got {self.image_mean} "
                             f"and {self.image_std}")
        if self.pretrained_path is None and self.backbone_config is None:
            if (self.image_size is not None and self.patch_size is not None
                    and (self.image_size[0] % self.patch_size or self.image_size[1] % self.patch_size)):
                raise ValueError(f"ImageEncoderConfig: image_size {self.image_size} is not a multiple of "
                                 f"patch_size {self.patch_size}")
            if self.architecture == "resnet":
                _resnet_stages(self.patch_size, self.hidden_size)  # raises on a stride or width it cannot build
            elif self.hidden_size % self.num_heads:
                raise ValueError(f"ImageEncoderConfig: hidden_size {self.hidden_size} is not a multiple of "
                                 f"num_heads {self.num_heads}")

    def following(self, image_size: tuple[int, int] | None, patch_size: int | None) -> "ImageEncoderConfig":
        """This config with its unset ``image_size`` / ``patch_size`` taken from the data's (``data.*``): the one
        rule by which the image encoder follows the data it reads."""
        return dataclasses.replace(self, image_size=self.image_size if self.image_size is not None else image_size,
                                   patch_size=self.patch_size if self.patch_size is not None else patch_size)


@dataclass
class ImageEncoderOutput:
    """What :class:`ImageEncoder` returns.

    Attributes:
        patch_grid: (B, Hp, Wp, C) feature of every patch, ``Hp = H // patch``, ``Wp = W // patch``.
        pooled: (B, C) the CLS token.
    """

    patch_grid: Tensor
    pooled: Tensor


def _vit_from_scratch(cfg: ImageEncoderConfig) -> nn.Module:
    from transformers import ViTConfig, ViTModel

    if cfg.image_size is None or cfg.patch_size is None:
        raise ValueError("ImageEncoderConfig: a ViT built from scratch needs image_size and patch_size (a training "
                         "config takes them from the data: concerto3d.config.with_data_geometry)")
    vit_config = ViTConfig(
        image_size=list(cfg.image_size), patch_size=cfg.patch_size, hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.hidden_size * cfg.mlp_ratio, num_channels=3)
    return ViTModel(vit_config, add_pooling_layer=False)


def _resnet_stages(patch_size: int | None, hidden_size: int) -> list[int]:
    """Stage widths of a ``resnet`` from scratch whose last feature map has a stride of ``patch_size``: a stride-4
    stem, then one stage at stride 4 and one more a doubling, widths doubling to ``hidden_size``."""
    if patch_size is None:
        return [hidden_size]
    stages = int(round(math.log2(patch_size))) - 1
    if patch_size < 4 or 2 ** (stages + 1) != patch_size:
        raise ValueError(f"ImageEncoderConfig: a resnet's stride (patch_size) must be a power of two >= 4, "
                         f"got {patch_size}")
    if hidden_size % 2 ** (stages - 1):
        raise ValueError(f"ImageEncoderConfig: a resnet's hidden_size {hidden_size} must be divisible by "
                         f"{2 ** (stages - 1)} (widths halve at each of its {stages} stages)")
    return [hidden_size // 2 ** (stages - 1 - i) for i in range(stages)]


def _resnet_from_scratch(cfg: ImageEncoderConfig) -> nn.Module:
    from transformers import ResNetBackbone, ResNetConfig

    if cfg.patch_size is None:
        raise ValueError("ImageEncoderConfig: a resnet built from scratch needs patch_size (its output stride)")
    widths = _resnet_stages(cfg.patch_size, cfg.hidden_size)
    config = ResNetConfig(embedding_size=widths[0], hidden_sizes=widths, depths=[2] * len(widths),
                          layer_type="basic", out_features=[f"stage{len(widths)}"])
    return ResNetBackbone(config)


def _from_config_dict(config: dict, architecture: str = "vit") -> nn.Module:
    from transformers import AutoConfig, AutoModel

    if "model_type" not in config:
        raise ValueError("ImageEncoderConfig.backbone_config: expected a Hugging Face config dict with "
                         f"'model_type', got keys {sorted(config)[:5]}")
    # model folders are data, never code: no class is loaded from files beside a config (auto_map)
    hf_config = AutoConfig.for_model(**config)
    if architecture == "resnet":
        return _backbone_class(hf_config)(hf_config)
    return AutoModel.from_config(hf_config, trust_remote_code=False)


def _backbone_class(config) -> type:
    """The transformers backbone class (feature maps) of a config, looked up locally: ``AutoBackbone
    .from_pretrained`` asks the Hub whether the path is a repository before it reads a local folder."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING

    try:
        return MODEL_FOR_BACKBONE_MAPPING[type(config)]
    except KeyError:
        raise ValueError(f"transformers has no backbone with feature maps for model_type "
                         f"{config.model_type!r}") from None


def _load_pretrained(path: str, architecture: str = "vit") -> nn.Module:
    from transformers import AutoConfig, AutoModel

    if not os.path.isfile(os.path.join(path, "config.json")):
        raise InputError("expected a Hugging Face model folder with a config.json", path)
    try:
        if architecture == "resnet":
            config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
            return _backbone_class(config).from_pretrained(path, local_files_only=True)
        return AutoModel.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"cannot load the image encoder as a Hugging Face model ({err}); a concerto3d run is "
                         "loaded with concerto3d.inference.load_image_encoder", path) from err


def _has_feature_maps(backbone: nn.Module) -> bool:
    """True for a transformers backbone that returns feature maps (``ResNetBackbone``, ``AutoBackbone``'s models),
    False for a model that returns tokens (``ViTModel``, ``Dinov2Model``). Read from the module's own attributes
    (transformers' ``BackboneMixin`` has moved between modules across versions)."""
    return hasattr(backbone, "out_features") and hasattr(backbone, "channels")


class ImageEncoder(nn.Module):
    """Vision model returning a patch grid and a pooled feature (a ViT's CLS token, a convolution's mean).

    Args:
        config: an :class:`ImageEncoderConfig` (the defaults when None; a ViT from scratch needs its
            ``image_size`` and ``patch_size`` set, which a training config takes from the data).
        backbone: a Hugging Face vision model to wrap instead of building or loading one from ``config`` (its
            ``config.patch_size``, ``hidden_size`` and ``image_size`` are read).

    Shapes:
        images: (B, 3, H, W) float, normalised with :meth:`normalize`; H, W multiples of ``patch_size``.
        returns :class:`ImageEncoderOutput` with patch_grid (B, H // p, W // p, C) and pooled (B, C).

    Attributes:
        hidden_size: C; patch_size: p; num_register_tokens: R (tokens between CLS and the patches).
        is_convolutional: the backbone gives feature maps (``architecture="resnet"``), not tokens.
    """

    def __init__(self, config: ImageEncoderConfig | None = None, backbone: nn.Module | None = None):
        super().__init__()
        cfg = config if config is not None else ImageEncoderConfig()
        self.config = cfg
        if backbone is not None:
            self.backbone = backbone
        elif cfg.pretrained_path:
            self.backbone = _load_pretrained(cfg.pretrained_path, cfg.architecture)
        elif cfg.backbone_config is not None:
            self.backbone = _from_config_dict(cfg.backbone_config, cfg.architecture)
        elif cfg.architecture == "resnet":
            self.backbone = _resnet_from_scratch(cfg)
        else:
            self.backbone = _vit_from_scratch(cfg)
        self.is_convolutional = _has_feature_maps(self.backbone)
        if self.is_convolutional:
            self._init_feature_maps(cfg)
        else:
            self._init_tokens(cfg)
        self.register_buffer("mean", torch.tensor(cfg.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.image_std).view(1, 3, 1, 1), persistent=False)
        if cfg.freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def _init_tokens(self, cfg: ImageEncoderConfig) -> None:
        """A vision transformer: patch size, width and registers from its Hugging Face config."""
        # Weights that never get a gradient upset DDP: drop the pooler (we pool with the CLS token) and fix the
        # masked-image-modelling token (we never mask patches).
        if getattr(self.backbone, "pooler", None) is not None:
            self.backbone.pooler = None
        mask_token = getattr(getattr(self.backbone, "embeddings", None), "mask_token", None)
        if isinstance(mask_token, nn.Parameter):
            mask_token.requires_grad_(False)
        model_cfg = self.backbone.config
        patch = model_cfg.patch_size
        self.patch_size = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
        self.hidden_size = int(model_cfg.hidden_size)
        self.num_register_tokens = int(getattr(model_cfg, "num_register_tokens", 0) or 0)
        native = model_cfg.image_size
        self._native_size = tuple(native) if isinstance(native, (list, tuple)) else (native, native)
        self._takes_interpolate = "interpolate_pos_encoding" in inspect.signature(self.backbone.forward).parameters
        if self.config.architecture != "vit":
            self.config = dataclasses.replace(self.config, architecture="vit")

    def _init_feature_maps(self, cfg: ImageEncoderConfig) -> None:
        """A backbone with feature maps: its last map is the grid, its stride the configured patch size."""
        if len(self.backbone.out_features) != 1:
            raise ValueError(f"ImageEncoder: a convolutional backbone must give one feature map, this one gives "
                             f"{self.backbone.out_features}")
        if cfg.patch_size is None:
            raise ValueError("ImageEncoder: a convolutional backbone needs image_encoder.patch_size, the stride of "
                             "its feature map (a training config takes it from data.patch_size)")
        self.patch_size = int(cfg.patch_size)
        self.hidden_size = int(self.backbone.channels[-1])
        self.num_register_tokens = 0
        if self.config.architecture != "resnet":
            self.config = dataclasses.replace(self.config, architecture="resnet")

    def rebuild_config(self) -> ImageEncoderConfig:
        """A config that rebuilds this architecture without any file (``pretrained_path=None``, the backbone's
        Hugging Face config inlined as ``backbone_config``); load the saved weights into the rebuilt encoder."""
        return dataclasses.replace(self.config, pretrained_path=None,
                                   backbone_config=json.loads(self.backbone.config.to_json_string(use_diff=False)))

    @property
    def out_channels(self) -> int:
        """Width C of the patch and pooled features."""
        return self.hidden_size

    def train(self, mode: bool = True) -> "ImageEncoder":
        """Like ``nn.Module.train``, but a frozen backbone stays in eval mode (no dropout)."""
        super().train(mode)
        if self.config.freeze:
            self.backbone.eval()
        return self

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> normalised with the configured mean and std."""
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def grid_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(Hp, Wp) patch grid of images of size (H, W)."""
        return image_size[0] // self.patch_size, image_size[1] // self.patch_size

    def forward(self, images: Tensor) -> ImageEncoderOutput:
        if images.dim() != 4 or images.size(1) != 3:
            raise ValueError(f"ImageEncoder: expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"ImageEncoder: expected H and W multiples of the patch size {self.patch_size}, "
                             f"got {height}x{width}")
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze):
            if self.is_convolutional:
                return self._forward_feature_maps(images)
            return self._forward_tokens(images)

    def _forward_tokens(self, images: Tensor) -> ImageEncoderOutput:
        height, width = images.shape[-2:]
        kwargs = {}
        if self._takes_interpolate and (height, width) != self._native_size:
            kwargs["interpolate_pos_encoding"] = True  # a size other than the one the position table was built for
        tokens = self.backbone(pixel_values=images, **kwargs).last_hidden_state  # (B, 1 + R + Hp*Wp, C)
        hp, wp = self.grid_size((height, width))
        patches = tokens[:, 1 + self.num_register_tokens:]
        if patches.size(1) != hp * wp:
            raise RuntimeError(f"ImageEncoder: expected {hp * wp} patch tokens, the backbone gave {patches.size(1)}")
        return ImageEncoderOutput(patch_grid=patches.reshape(images.size(0), hp, wp, -1), pooled=tokens[:, 0])

    def _forward_feature_maps(self, images: Tensor) -> ImageEncoderOutput:
        fmap = self.backbone(pixel_values=images).feature_maps[-1]  # (B, C, Hp, Wp)
        hp, wp = self.grid_size(tuple(images.shape[-2:]))
        if tuple(fmap.shape[-2:]) != (hp, wp):
            raise RuntimeError(f"ImageEncoder: expected a {hp}x{wp} feature map (stride {self.patch_size}), the "
                               f"backbone gave {fmap.shape[-2]}x{fmap.shape[-1]}")
        grid = fmap.permute(0, 2, 3, 1)
        return ImageEncoderOutput(patch_grid=grid, pooled=grid.mean(dim=(1, 2)))
