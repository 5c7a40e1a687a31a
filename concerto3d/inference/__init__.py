"""Trained model folders and inference on them: ``load_model(RUN).embed(points, colors, normals)``."""

from concerto3d.inference.embedding import (DEFAULT_TILE_MARGIN, DEFAULT_TILE_POINTS, NORMAL_RADIUS, PretrainedModel,
                                           cloud_normals, load_model, spatial_tiles)
from concerto3d.inference.model_folder import (MODEL_FORMAT, find_model_folder, image_encoder_digest,
                                               load_image_backbone, load_image_encoder, model_dir_of,
                                               save_model, save_pretrained)

__all__ = ["load_model", "save_model", "save_pretrained", "model_dir_of", "find_model_folder", "load_image_backbone",
           "load_image_encoder", "image_encoder_digest", "PretrainedModel", "spatial_tiles", "MODEL_FORMAT",
           "DEFAULT_TILE_POINTS", "DEFAULT_TILE_MARGIN", "cloud_normals", "NORMAL_RADIUS"]
