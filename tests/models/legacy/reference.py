"""Reference computations straight from the papers' formulas, in float64 with explicit loops over
prototypes and locations. They take the research-format writer modules (tests/models/legacy/writers.py),
not protoviz models, and return (logits or probabilities (B, C), similarity maps (B, P, h, w))."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn


def _double(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).double().eval()


def latent(features: nn.Module, add_on: nn.Module, x: Tensor) -> Tensor:
    """add_on(features(x)) in float64: (B, D, h, w)."""
    with torch.no_grad():
        return _double(add_on)(_double(features)(x.double()))


def _per_location(z: Tensor, prototypes: Tensor, fn) -> Tensor:
    """maps[b, p, i, j] = fn(z[b, :, i, j], prototypes[p]) by loops over p, i, j."""
    B, _, h, w = z.shape
    out = torch.zeros(B, prototypes.shape[0], h, w, dtype=torch.float64)
    for p in range(prototypes.shape[0]):
        for i in range(h):
            for j in range(w):
                out[:, p, i, j] = fn(z[:, :, i, j], prototypes[p])
    return out


def _g(d: Tensor) -> Tensor:
    return torch.log((d + 1) / (d + 1e-4))


def protopnet(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """ProtoPNet: sim = log((d+1)/(d+1e-4)) (``log``) or -d (``linear``), d = |z - p|^2; logits = W max_hw sim."""
    z = latent(net.features, net.add_on_layers, x)
    protos = net.prototype_vectors.detach().double().flatten(1)
    g = _g if net.prototype_activation_function == "log" else (lambda d: -d)
    maps = _per_location(z, protos, lambda v, p: g(((v - p) ** 2).sum(dim=1)))
    return maps.flatten(2).amax(2) @ net.last_layer.weight.detach().double().t(), maps


def tesnet(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """TesNet: sim = z . p / |p| (z unnormalised); logits = W max_hw sim."""
    z = latent(net.features, net.add_on_layers, x)
    protos = net.prototype_vectors.detach().double().flatten(1)
    maps = _per_location(z, protos, lambda v, p: (v * p).sum(dim=1) / math.sqrt(float((p * p).sum())))
    return maps.flatten(2).amax(2) @ net.last_layer.weight.detach().double().t(), maps


def st(net: nn.Module, x: Tensor, variant: str) -> tuple[Tensor, Tensor]:
    """ST-ProtoPNet: per set, ReLU(cos(z, p)) (full) or z . p/|p| (cropped); logits = sum of both heads.
    Maps are support then trivial."""
    logits, maps = 0, []
    for name in ("support", "trivial"):
        z = latent(net.features, getattr(net, f"add_on_layers_{name}"), x)
        protos = getattr(net, f"prototype_vectors_{name}").detach().double().flatten(1)
        if variant == "full":
            fn = lambda v, p: torch.clamp((v * p).sum(1) / (v.norm(dim=1) * p.norm()), min=0)
        else:
            fn = lambda v, p: (v * p).sum(1) / p.norm()
        m = _per_location(z, protos, fn)
        logits = logits + m.flatten(2).amax(2) @ getattr(net, f"last_layer_{name}").weight.detach().double().t()
        maps.append(m)
    return logits, torch.cat(maps, dim=1)


def protopool(net: nn.Module, x: Tensor, slots: str = "hard", activation: str = "log") -> tuple[Tensor, Tensor]:
    """ProtoPool's forward: pi[c, :, s] = softmax_p(presence[c, :, s]) (soft) or the one-hot of its argmax
    (hard, as gumbel_scale=10e3); per slot, mixed distances m = sum_p pi d_p of min_hw d and of mean_hw d,
    f(c, s) = g(m_min) - g(m_mean) with g(d) = log((d+1)/(d+1e-4)) (log) or 1/(d+1) (linear);
    logits = last_layer(f flattened) or the sum over slots. Maps: g(d) - g(mean d) per prototype."""
    g = _g if activation == "log" else (lambda d: 1 / (d + 1))
    z = latent(net.features, net.add_on_layers, x)
    protos = net.prototype_vectors.detach().double().flatten(1)
    d = _per_location(z, protos, lambda v, p: ((v - p) ** 2).sum(dim=1))
    dmin, dmean = d.flatten(2).amin(2), d.flatten(2).mean(2)
    presence = net.proto_presence.detach().double()
    C, P, S = presence.shape
    focal = torch.zeros(x.shape[0], C, S, dtype=torch.float64)
    for c in range(C):
        for s in range(S):
            if slots == "soft":
                e = torch.exp(presence[c, :, s] - presence[c, :, s].max())
                pi = e / e.sum()
            else:
                pi = torch.zeros(P, dtype=torch.float64)
                pi[int(presence[c, :, s].argmax())] = 1.0
            focal[:, c, s] = g((dmin * pi).sum(dim=1)) - g((dmean * pi).sum(dim=1))
    if isinstance(net.last_layer, nn.Linear):
        logits = focal.flatten(1) @ net.last_layer.weight.detach().double().t()
    else:
        logits = focal.sum(dim=2)
    return logits, g(d) - g(dmean)[:, :, None, None]


def pipnet(net: nn.Module, x: Tensor, threshold: float = 0.1) -> tuple[Tensor, Tensor]:
    """PIP-Net: softmax over prototypes at each location; max; pooled < 0.1 -> 0; relu(W) (+ bias)."""
    with torch.no_grad():
        scores = _double(net._net)(x.double())
        if len(net._add_on) > 1:
            scores = _double(net._add_on[0])(scores)
    e = torch.exp(scores - scores.amax(dim=1, keepdim=True))
    maps = e / e.sum(dim=1, keepdim=True)
    pooled = maps.flatten(2).amax(2)
    pooled = torch.where(pooled < threshold, torch.zeros_like(pooled), pooled)
    logits = pooled @ torch.clamp(net._classification.weight.detach().double(), min=0).t()
    if net._classification.bias is not None:
        logits = logits + net._classification.bias.detach().double()
    return logits, maps


def prototree(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """ProtoTree: s_p = exp(-min_hw |z - p|); out(branch) = (1 - s) out(left) + s out(right);
    out(leaf) = softmax(dist_params) (or dist_params / sum with Kontschieder normalisation). Returns class probabilities and exp(-|z - p|) maps."""
    z = latent(net._net, net._add_on, x)
    protos = net.prototype_layer.prototype_vectors.detach().double().flatten(1)
    maps = _per_location(z, protos, lambda v, p: torch.exp(-((v - p) ** 2).sum(dim=1).sqrt()))
    sims = maps.flatten(2).amax(2)

    def out(node: nn.Module) -> Tensor:
        if hasattr(node, "_dist_params"):
            params = node._dist_params.detach().double()
            dist = params / params.sum() if node._kontschieder_normalization else torch.softmax(params, dim=0)
            return dist.expand(x.shape[0], -1)
        s = sims[:, net._out_map[node]][:, None]
        return (1 - s) * out(node.l) + s * out(node.r)

    return out(net._root), maps


def prototree_greedy_leaf(net: nn.Module, x: Tensor) -> list[int]:
    """ProtoTree's greedy routing per image (right when exp(-min d) > 0.5): the reached leaf's ``_index``."""
    _, maps = prototree(net, x)
    sims = maps.flatten(2).amax(2)
    leaves = []
    for b in range(x.shape[0]):
        node = net._root
        while not hasattr(node, "_dist_params"):
            node = node.r if float(sims[b, net._out_map[node]]) > 0.5 else node.l
        leaves.append(node._index)
    return leaves


def deformable(net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Deformable ProtoPNet as its docstring in protoviz/models/deformable.py describes it, by loops:
    each of the 4 parts reads sqrt(sum of bilinear weights x zn^2 over the in-bounds corners)."""
    import torch.nn.functional as F

    eps, length = net.epsilon_val, float(net.input_vector_length)
    with torch.no_grad():
        f = F.interpolate(_double(net.features)(x.double()), scale_factor=2, mode="bilinear", align_corners=False)
        z = torch.cat((f, torch.full_like(f[:, :1], eps)), dim=1)
        zn = length * z / torch.sqrt((z * z).sum(1, keepdim=True) + eps) / 2
        offsets = _double(net.conv_offset)(zn)
    p = net.prototype_vectors.detach().double()
    p = torch.cat((p, torch.full_like(p[:, :1], eps)), dim=1)
    pn = p / (torch.sqrt((p * p).sum(1, keepdim=True) + eps) + eps) / 2
    B, _, H, W = zn.shape
    dot = torch.zeros(B, p.shape[0], H, W, dtype=torch.float64)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                for m in range(2):
                    for n in range(2):
                        k = 2 * m + n
                        y = i - 1 + 2 * m + float(offsets[b, 2 * k, i, j])
                        xx = j - 1 + 2 * n + float(offsets[b, 2 * k + 1, i, j])
                        acc = torch.zeros(zn.shape[1], dtype=torch.float64)
                        for yy in (math.floor(y), math.floor(y) + 1):
                            for xc in (math.floor(xx), math.floor(xx) + 1):
                                if 0 <= yy < H and 0 <= xc < W:
                                    acc += (1 - abs(y - yy)) * (1 - abs(xx - xc)) * zn[b, :, yy, xc] ** 2
                        dot[b, :, i, j] += pn[:, :, m, n] @ acc.sqrt()
    maps = torch.clamp(dot / (1.01 * length), min=0)
    return maps.flatten(2).amax(2) @ net.last_layer.weight.detach().double().t(), maps
