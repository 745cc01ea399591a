"""``prp``: prototypical relevance propagation, as an LRP composite over any PrototypeModel.

What it is. The relevance of prototype k starts at its max similarity s_k (the value the head uses)
and flows back to the pixels in one modified backward pass (the "gradient x input" trick of Zennit /
Montavon et al.: each hooked layer keeps its forward value but its local gradient is replaced so that
activation x gradient equals the LRP relevance):

- similarity layer (log-L2 or cosine, whatever the family computes): the gradient rule
  R(z) = z * ds_k/dz at the latent z, which is non-zero only at the map cell where s_k peaks
  (max-pooling is winner-take-all). This is the rule CaBRNet's PRP applies to its similarity layer;
- every Conv layer except the first: the z+ rule generalised to signed inputs,
  R_j = sum_k (x_j+ w_jk+ + x_j- w_jk-) / z_k R_k;
- the first Conv layer (pixels, 3 input channels): the z^B rule with the bounds of a [0, 1] image
  after the model's normalisation;
- BatchNorm and element-wise activations (ReLU, Sigmoid, ...): relevance passes through unchanged;
- Linear layers, pooling and residual additions: LRP-0 (the plain gradient splits relevance in
  proportion to each input's contribution).

What it is not. Gautam et al.'s PRP ("This looks more like that", 2022) derives a dedicated rule for
the log-L2 similarity layer and uses LRP-epsilon/alpha-beta rules per layer of their backbones; here the
similarity layer uses the gradient rule, so relevance is not exactly conserved there (sum R != s_k),
and functional operations a family calls outside modules (e.g. ``F.relu``) get the plain gradient.
Maps are signed: negative relevance is evidence against the prototype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from protoviz.heatmaps.methods.registry import HeatmapOptions, expand_rows, max_similarity, register_method
from protoviz.models.base import PrototypeModel

PASS_THROUGH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh,
                nn.Softplus, nn.GELU, nn.SiLU, nn.ELU, nn.ReLU6)
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
        x = inputs[0]
        weight = module.weight  # type: ignore[union-attr]
        pos, neg = weight.clamp(min=0), weight.clamp(max=0)
        if not self.seen_conv and x.shape[1] == 3:
            low = self.low.to(x.dtype).expand_as(x).clone().requires_grad_(True)
            high = self.high.to(x.dtype).expand_as(x).clone().requires_grad_(True)
            self.pixel_terms = [x, low, high]
            z = module._conv_forward(x, weight, None) - module._conv_forward(low, pos, None) \
                - module._conv_forward(high, neg, None)  # type: ignore[operator]
        else:
            z = module._conv_forward(x.clamp(min=0), pos, None) \
                + module._conv_forward(x.clamp(max=0), neg, None)  # type: ignore[operator]
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


def relevance_rows(model: PrototypeModel, rows: Tensor, prototypes: Tensor, epsilon: float) -> Tensor:
    """LRP relevance of each row's prototype (N,) for rows (N, 3, H, W) -> (N, H, W), summed over channels."""
    low, high = _pixel_bounds(model)
    composite = _Composite(low, high, epsilon)
    handles = composite.attach(model)
    try:
        with torch.enable_grad():
            x = rows.detach().clone().requires_grad_(True)
            score = max_similarity(model, x, prototypes).sum()
            if composite.pixel_terms and composite.pixel_terms[0] is x:
                terms = composite.pixel_terms
                grads = torch.autograd.grad(score, terms)
                relevance = sum(t.detach() * g for t, g in zip(terms, grads, strict=True))
            else:  # no pixel conv seen: gradient x input at the pixels
                relevance = x.detach() * torch.autograd.grad(score, x)[0]
    finally:
        for handle in handles:
            handle.remove()
    return relevance.sum(dim=1)  # type: ignore[union-attr]


@register_method(
    "prp", "PRP (LRP composite)",
    "Prototypical relevance propagation as an LRP composite: gradient rule at the similarity layer, "
    "z+ through convolutions, z^B at the pixels. Signed: blue = evidence against.",
    uses_gradients=True, signed=True,
)
def prp_method(model: PrototypeModel, images: Tensor, indices: Tensor, options: HeatmapOptions) -> Tensor:
    """(B, 3, H, W), (B, K) -> signed relevance (B, K, H, W)."""
    rows, prototypes = expand_rows(images, indices)
    chunks = [relevance_rows(model, rows[s:s + options.batch_rows], prototypes[s:s + options.batch_rows],
                             options.lrp_epsilon) for s in range(0, rows.shape[0], options.batch_rows)]
    b, k = indices.shape
    return torch.cat(chunks).reshape(b, k, *images.shape[-2:])
