"""Push (ProtoPNet's prototype projection): each prototype becomes its nearest training patch of its own class.

After :func:`push_prototypes` every prototype vector equals, exactly, the latent vector (add-on output) at
one location of one training image of the prototype's class, and its :class:`PrototypeSource` records that
image, the location, ProtoPNet's 95th-percentile high-activation box (the similarity map upsampled
bicubically to the input size, as OpenCV's INTER_CUBIC; `protoviz.heatmaps`) and thumbnails.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeSource
from protoviz.models.protopnet import ProtoPNet
from protoviz.train.data import ImageTensors, to_model_input
from protoviz.train.losses import set_distances

ProgressFn = Callable[[str, int, int], None]


@torch.no_grad()
def nearest_own_class_patches(model: ProtoPNet, data: ImageTensors, batch_size: int,
                              progress: ProgressFn | None = None) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """For every prototype, its nearest latent patch among the images of its own class.

    Returns (distance (P,), image index (P,) into ``data``, flat map location (P,) = row * w + col, and
    per prototype set the latent vectors (P_set, D) at those patches). Distance is inf (and the image
    index -1) for a prototype whose class has no image in ``data``.
    """
    device = model.device
    sets = model.config.prototype_sets
    groups = model.prototype_groups()
    total = model.num_prototypes
    best = torch.full((total,), float("inf"), device=device)
    best_image = torch.full((total,), -1, dtype=torch.long, device=device)
    best_loc = torch.zeros(total, dtype=torch.long, device=device)
    vectors = {n: model._set_parts(n)[1].detach().flatten(1).clone() for n in sets}
    proto_class = model.prototype_class_identity.argmax(dim=1)  # (P,)
    steps = (len(data) + batch_size - 1) // batch_size
    for step, start in enumerate(range(0, len(data), batch_size)):
        images = to_model_input(data.images[start:start + batch_size], model)
        labels = data.labels[start:start + batch_size].to(device)
        latents = model.set_latents(images)
        distances = set_distances(model, latents)
        for name in sets:
            a, b = groups[name]
            dist = distances[name]  # (B, P_s, h, w)
            _n_img, _, h, w = dist.shape
            foreign = labels[:, None] != proto_class[None, a:b]  # (B, P_s)
            dist = dist.masked_fill(foreign[:, :, None, None], float("inf"))
            values, flat = dist.permute(1, 0, 2, 3).reshape(b - a, -1).min(dim=1)  # over (B, h, w)
            better = values < best[a:b]
            latent = latents[name].permute(1, 0, 2, 3).reshape(latents[name].shape[1], -1)  # (D, B*h*w)
            vectors[name][better] = latent[:, flat].t()[better]
            best[a:b] = torch.where(better, values, best[a:b])
            best_image[a:b] = torch.where(better, start + flat // (h * w), best_image[a:b])
            best_loc[a:b] = torch.where(better, flat % (h * w), best_loc[a:b])
        if progress is not None:
            progress("push", step + 1, steps)
    return best, best_image, best_loc, vectors


@torch.no_grad()
def push_prototypes(model: ProtoPNet, data: ImageTensors, batch_size: int = 64, image_thumbnail: int = 96,
                    patch_thumbnail: int = 64, progress: ProgressFn | None = None) -> list[PrototypeSource | None]:
    """Replace each prototype by its nearest own-class latent patch in ``data``; set and return its sources.

    The model is left in eval mode. A prototype whose class has no image in ``data`` keeps its vector and
    gets ``None`` as source.
    """
    model.eval()
    _distance, image_index, location, vectors = nearest_own_class_patches(model, data, batch_size, progress)
    for name, vec in vectors.items():
        parameter = model._set_parts(name)[1]
        parameter.copy_(vec.view_as(parameter))
    found = torch.nonzero(image_index >= 0).flatten()
    sources: list[PrototypeSource | None] = [None] * model.num_prototypes
    if found.numel() == 0:
        model.prototype_sources = sources
        return sources
    maps = _source_maps(model, data, image_index[found], found, batch_size)  # (K, h, w)
    map_w = maps.shape[-1]
    boxes = percentile_boxes(upsample_maps(maps, model.input_spec.image_size)).tolist()
    for k, j in enumerate(found.tolist()):
        index = int(image_index[j])
        image = data.images[index].permute(1, 2, 0).numpy()
        loc = int(location[j])
        y0, y1, x0, x1 = (int(v) for v in boxes[k])
        sources[j] = PrototypeSource(
            image_id=data.image_ids[index], box=(y0, y1, x0, x1),
            image_thumbnail=thumbnail(image, image_thumbnail),
            patch_thumbnail=thumbnail(image[y0:y1, x0:x1], patch_thumbnail),
            map_location=(loc // map_w, loc % map_w), class_index=int(data.labels[index]))
    model.prototype_sources = sources
    return sources


def _source_maps(model: ProtoPNet, data: ImageTensors, image_index: Tensor, prototypes: Tensor,
                 batch_size: int) -> Tensor:
    """Similarity map of prototype ``prototypes[k]`` on image ``image_index[k]``: (K, h, w)."""
    unique, inverse = torch.unique(image_index, return_inverse=True)
    parts = []
    for start in range(0, unique.numel(), batch_size):
        chunk = unique[start:start + batch_size].cpu()
        parts.append(model.similarity_maps(to_model_input(data.images[chunk], model)))
    maps = torch.cat(parts)  # (U, P, h, w)
    return maps[inverse, prototypes].cpu()


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> the same image with its longer side ``size`` px (aspect ratio kept)."""
    picture = Image.fromarray(np.ascontiguousarray(image))
    scale = size / max(picture.size)
    target = (max(1, round(picture.size[0] * scale)), max(1, round(picture.size[1] * scale)))
    return np.array(picture.resize(target, Image.Resampling.BICUBIC), dtype=np.uint8)  # a writable copy
