"""Gradient heatmaps of a prototype's max similarity w.r.t. the input pixels (Captum).

- ``saliency`` (Simonyan et al. 2014): |d s_k / d x|, max over colour channels.
- ``smoothgrad`` (Smilkov et al. 2017): the mean of |d s_k / d x| over noisy copies of the image,
  max over colour channels (Captum's NoiseTunnel around Saliency).
- ``random`` (CaBRNet's "random gradients" sanity baseline): ``saliency`` of a copy of the model
  whose Conv/Linear layers are all re-randomised. It shows what a gradient map looks like when it
  carries no information about the trained model; a method that resembles it is not to be trusted.

s_k is the prototype's max similarity over the map (the value the head uses). Each (image, prototype)
pair is one row of an expanded batch, so one backward pass covers all K prototypes of a chunk.
"""

from __future__ import annotations

import torch
from captum.attr import NoiseTunnel, Saliency
from torch import Tensor

from protoviz.heatmaps.methods.randomise import randomised_copy
from protoviz.heatmaps.methods.registry import (
    HeatmapOptions,
    expand_rows,
    max_similarity,
    register_method,
)
from protoviz.models.base import PrototypeModel


def _forward(model: PrototypeModel):
    def forward(rows: Tensor, prototypes: Tensor) -> Tensor:
        return max_similarity(model, rows, prototypes)

    return forward


def input_range(model: PrototypeModel) -> float:
    """Width of the normalised input range of a [0, 1] image (mean over channels): 1 / std."""
    std = torch.tensor(model.input_spec.std, dtype=torch.float64)
    return float((1.0 / std).mean())


def gradient_maps(model: PrototypeModel, images: Tensor, indices: Tensor, options: HeatmapOptions,
                  samples: int = 0) -> Tensor:
    """(B, 3, H, W), (B, K) -> (B, K, H, W): |gradient| (``samples`` = 0) or SmoothGrad over ``samples``."""
    rows, prototypes = expand_rows(images, indices)
    saliency = Saliency(_forward(model))
    per_chunk = max(1, options.batch_rows // max(1, samples))
    chunks = []
    for start in range(0, rows.shape[0], per_chunk):
        x = rows[start:start + per_chunk].detach().clone().requires_grad_(True)
        p = prototypes[start:start + per_chunk]
        if samples:
            tunnel = NoiseTunnel(saliency)
            grads = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=samples,
                                     stdevs=options.smoothgrad_noise * input_range(model),
                                     additional_forward_args=(p,), abs=True)
        else:
            grads = saliency.attribute(x, additional_forward_args=(p,), abs=True)
        chunks.append(grads.detach().amax(dim=1))
    b, k = indices.shape
    return torch.cat(chunks).reshape(b, k, *images.shape[-2:])


@register_method(
    "saliency", "Saliency (gradient)",
    "Absolute gradient of the prototype's max similarity w.r.t. the pixels, max over colour channels "
    "(Simonyan et al. 2014, via Captum). Sharp but noisy.",
    uses_gradients=True,
)
def saliency_method(model: PrototypeModel, images: Tensor, indices: Tensor, options: HeatmapOptions) -> Tensor:
    return gradient_maps(model, images, indices, options)


@register_method(
    "smoothgrad", "SmoothGrad",
    "Saliency averaged over noisy copies of the image (Smilkov et al. 2017, Captum's NoiseTunnel); "
    "costs smoothgrad_samples backward passes per (image, prototype).",
    uses_gradients=True,
)
def smoothgrad_method(model: PrototypeModel, images: Tensor, indices: Tensor, options: HeatmapOptions) -> Tensor:
    return gradient_maps(model, images, indices, options, samples=options.smoothgrad_samples)


@register_method(
    "random", "Random gradients (sanity baseline)",
    "Saliency of a copy of the model whose Conv/Linear layers are re-randomised (CaBRNet's random-"
    "gradient baseline). It knows nothing the model learned; trust a method only if it differs.",
    uses_gradients=True,
)
def random_method(model: PrototypeModel, images: Tensor, indices: Tensor, options: HeatmapOptions) -> Tensor:
    return gradient_maps(randomised_copy(model, seed=options.random_seed), images, indices, options)
