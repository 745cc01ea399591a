"""``prp``: prototypical relevance propagation (Gautam et al. 2022) as an LRP composite on any PrototypeModel.

The relevance of prototype k starts at its max similarity s_k (the value the head uses) at the map
cell where it peaks, and flows back to the pixels in one modified backward pass (the "gradient x
input" trick of Zennit / Montavon et al.: each hooked layer keeps its forward value, but its local
gradient is replaced so that activation x gradient equals the LRP relevance):

- similarity layer, L2-based families (similarity kind ``log`` or ``exp_neg_l2``, prototype vectors
  exposed): PRP's rule. At the peak cell, latent channel c receives
  R_c = s_k * w_c / sum_c' w_c' with w_c = 1 / ((z_c - p_c)^4 + 1e-12): the channels where the patch
  is closest to the prototype carry the similarity. Channels where the prototype vector is exactly 0
  are left out (ST-ProtoPNet-style stacked latents pad the other sets' channels with zeros);
- similarity layer, other families (cosine, projection, softmax, focal ...): the gradient rule
  R(z) = z * ds_k/dz, non-zero only at the peak cell (max-pooling is winner-take-all);
- every Conv layer except the first: the z+ rule (alpha=1, beta=0) generalised to signed inputs,
  R_j = sum_k (x_j+ w_jk+ + x_j- w_jk-) / z_k R_k, biases ignored (as PRP does);
- the first Conv layer (pixels, 3 input channels): the z^B rule with the bounds of a [0, 1] image
  after the model's normalisation;
- BatchNorm and element-wise activations (ReLU, Sigmoid, ...): relevance passes through unchanged;
- Linear layers, pooling and residual additions: LRP-0 (the plain gradient splits relevance in
  proportion to each input's contribution).

What it is not. PRP fuses each BatchNorm into the convolution before it ("canonization") and applies
z+ to the fused weights; here BatchNorm is passed through and z+ uses the raw weights, which gives the
same result except for channels with a negative BatchNorm scale. Functional operations a family calls
outside modules (e.g. ``F.relu``) get the plain gradient; the gradient rule at non-L2 similarity layers
does not conserve relevance (sum R != s_k). Maps are signed: negative = evidence against the prototype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from protoviz.errors import ModelError
from protoviz.heatmaps.methods.registry import HeatmapOptions, expand_rows, max_similarity, register_method
from protoviz.models.base import PrototypeModel

L2_SIMILARITIES = ("log", "exp_neg_l2")

# ReLU and LeakyReLU are not hooked: their gradient already equals output / input, the pass-through rule.
PASS_THROUGH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.GELU, nn.SiLU,
                nn.ELU, nn.ReLU6)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _stabilise(z: Tensor, epsilon: float) -> Tensor:
    return z + epsilon * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


@dataclass
class _Composite:
    """Forward hooks implementing the rules; ``pixel_terms`` keeps (x, low, high) of the z^B layer."""

    low: Tensor
    high: Tensor
    epsilon: float
    pixel_terms: list[Tensor] = field(default_factory=list)
    seen_conv: bool = False

    def conv(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        conv = cast(nn.Conv2d, module)  # hooked on CONVS only; _conv_forward has one signature for all of them
        x = inputs[0]
        weight = conv.weight
        pos, neg = weight.clamp(min=0), weight.clamp(max=0)
        if not self.seen_conv and x.shape[1] == 3:
            low = self.low.to(x.dtype).expand_as(x).clone().requires_grad_(True)
            high = self.high.to(x.dtype).expand_as(x).clone().requires_grad_(True)
            self.pixel_terms = [x, low, high]
            z = conv._conv_forward(x, weight, None) - conv._conv_forward(low, pos, None) \
                - conv._conv_forward(high, neg, None)
        elif bool((x < 0).any()):
            z = conv._conv_forward(x.clamp(min=0), pos, None) \
                + conv._conv_forward(x.clamp(max=0), neg, None)
        else:  # post-ReLU input: the negative half is empty, skip its convolution
            z = conv._conv_forward(x, pos, None)
        self.seen_conv = True
        return z * (output / _stabilise(z, self.epsilon)).detach()

    def pass_through(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        x = inputs[0]
        return x * (output / _stabilise(x, self.epsilon)).detach()

    def attach(self, model: nn.Module) -> list[RemovableHandle]:
        handles = []
        for module in model.modules():
            if isinstance(module, CONVS):
                handles.append(module.register_forward_hook(self.conv))
            elif isinstance(module, PASS_THROUGH):
                handles.append(module.register_forward_hook(self.pass_through))
        return handles


def _pixel_bounds(model: PrototypeModel) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(model.input_spec.mean, device=model.device).view(1, 3, 1, 1)
    std = torch.tensor(model.input_spec.std, device=model.device).view(1, 3, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


def prp_vectors(model: PrototypeModel) -> Tensor | None:
    """(P, D) prototype vectors when PRP's L2 rule applies to ``model`` (L2-based similarity), else None."""
    if model.similarity_kind not in L2_SIMILARITIES:
        return None
    try:
        vectors = model.prototype_embeddings
    except ModelError:
        return None
    return vectors if vectors.dim() == 2 else None


def l2_rule(latent: Tensor, vectors: Tensor, cells: Tensor, scores: Tensor) -> Tensor:
    """PRP's similarity-layer rule: relevance (N, D, h, w) at the latent (N, D, h, w), all of it at each
    row's peak cell (N,) (flat index), split over channels by 1 / ((z_c - p_c)^4 + 1e-12); rows' prototype
    vectors (N, D) and scores (N,)."""
    n, d = latent.shape[:2]
    at_cell = latent.detach().flatten(2).gather(2, cells.view(n, 1, 1).expand(n, d, 1)).squeeze(2)  # (N, D)
    weights = 1.0 / ((at_cell - vectors) ** 4 + 1e-12) * (vectors != 0)
    share = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-30)
    relevance = torch.zeros_like(latent.detach()).flatten(2)
    relevance.scatter_(2, cells.view(n, 1, 1).expand(n, d, 1), (share * scores[:, None]).unsqueeze(2))
    return relevance.view_as(latent)


def relevance_rows(model: PrototypeModel, rows: Tensor, prototypes: Tensor, epsilon: float) -> Tensor:
    """LRP relevance of each row's prototype (N,) for rows (N, 3, H, W) -> (N, H, W), summed over channels."""
    with torch.no_grad():
        maps = model.similarity_maps(rows)[torch.arange(rows.shape[0], device=rows.device), prototypes].flatten(1)
    scores, cells = maps.max(dim=1)
    low, high = _pixel_bounds(model)
    composite = _Composite(low, high, epsilon)
    handles = composite.attach(model)
    try:
        with torch.enable_grad():
            x = rows.detach().clone().requires_grad_(True)
            vectors = prp_vectors(model)
            latent = model.latent(x) if vectors is not None else None
            if latent is not None and vectors is not None and vectors.shape[1] == latent.shape[1]:
                relevance_latent = l2_rule(latent, vectors[prototypes].to(latent.dtype), cells, scores)
                output, grad_output = latent, relevance_latent / _stabilise(latent.detach(), epsilon)
            else:  # the gradient rule at the similarity layer
                composite.pixel_terms, composite.seen_conv = [], False
                output, grad_output = max_similarity(model, x, prototypes), torch.ones_like(scores)
            terms = composite.pixel_terms if composite.pixel_terms and composite.pixel_terms[0] is x else [x]
            grads = torch.autograd.grad(output, terms, grad_outputs=grad_output)
            relevance = sum(t.detach() * g for t, g in zip(terms, grads, strict=True))
    finally:
        for handle in handles:
            handle.remove()
    return relevance.sum(dim=1)  # type: ignore[union-attr]


@register_method(
    "prp", "PRP (LRP composite)",
    "Prototypical relevance propagation (Gautam et al.) as an LRP composite: PRP's rule at L2 similarity "
    "layers (gradient rule at others), z+ through convolutions, z^B at the pixels. Signed: blue = against.",
    uses_gradients=True, signed=True,
)
def prp_method(model: PrototypeModel, images: Tensor, indices: Tensor, options: HeatmapOptions) -> Tensor:
    """(B, 3, H, W), (B, K) -> signed relevance (B, K, H, W)."""
    rows, prototypes = expand_rows(images, indices)
    chunks = [relevance_rows(model, rows[s:s + options.batch_rows], prototypes[s:s + options.batch_rows],
                             options.lrp_epsilon) for s in range(0, rows.shape[0], options.batch_rows)]
    b, k = indices.shape
    return torch.cat(chunks).reshape(b, k, *images.shape[-2:])
