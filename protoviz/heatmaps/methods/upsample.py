"""``upsample``: ProtoPNet's own heatmap, the similarity map resized bicubically to the input size."""

from __future__ import annotations

import torch
from torch import Tensor

from protoviz.heatmaps.methods.registry import HeatmapOptions, register_method
from protoviz.models.base import PrototypeModel


@register_method(
    "upsample", "Upsampled similarity (bicubic)",
    "The prototype's similarity map (h, w) resized bicubically to the image, as in ProtoPNet. Cheap, "
    "but it assumes each latent cell sees only the pixels under it, which deep backbones do not.",
    uses_gradients=False,
)
def upsample_method(model: PrototypeModel, images: Tensor, indices: Tensor, options: HeatmapOptions) -> Tensor:
    """(B, 3, H, W), (B, K) -> the selected similarity maps upsampled to (B, K, H, W)."""
    from protoviz.heatmaps.upsample import upsample_maps  # the base implementation shared by every page

    with torch.no_grad():
        maps = model.similarity_maps(images)
    picked = torch.gather(maps, 1, indices[:, :, None, None].expand(-1, -1, *maps.shape[-2:]))
    return upsample_maps(picked, (int(images.shape[2]), int(images.shape[3])))
