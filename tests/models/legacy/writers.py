"""Writers of research-format checkpoints for the tests, without the research code.

The classes here carry the research repositories' class paths (``model.PPNet``,
``resnet_features.BasicBlock``, ``prototree.branch.Branch`` ...), attribute names and state-dict keys,
so the files they write have the same pickled structure as the originals. Their forwards (written
here from the papers, used only by the reference computations) are not the research code.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

FORMATS = ("zip", "legacy")


@cache
def research_type(base: type, module: str, name: str) -> type:
    """A subclass of ``base`` pickled as ``module.name``."""
    return type(name, (base,), {"__module__": module, "__qualname__": name})


@contextmanager
def importable(objects: list[Any]) -> Iterator[None]:
    """Make ``objects`` findable under their ``__module__`` while pickling (pickle checks that)."""
    added = []
    for obj in objects:
        parts = obj.__module__.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        setattr(sys.modules[obj.__module__], obj.__qualname__, obj)
    try:
        yield
    finally:
        for name in added:
            del sys.modules[name]


def research_classes(obj: nn.Module) -> list[type]:
    return sorted({type(m) for m in obj.modules() if type(m).__module__.split(".")[0] not in ("torch", "torchvision")},
                  key=str)


def save(obj: Any, path: Path, fmt: str, classes: list[type] = ()) -> Path:
    """torch.save in the zip (``zip``) or pre-1.6 (``legacy``) format, or ``pickle`` (plain pickle.dump)."""
    with importable(list(classes)):
        if fmt == "pickle":  # ProtoTree's save_state: pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)
            with open(path, "wb") as handle:
                pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            torch.save(obj, path, _use_new_zipfile_serialization=fmt == "zip")
    return path


# ----- backbones ---------------------------------------------------------------------------
class VGGFeatures(nn.Module):
    """The research ``VGG_features``; ``final_maxpool=False`` drops the last pool, as ST-ProtoPNet's full/."""

    def __init__(self, cfg: list[int | str], final_maxpool: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        self.kernel_sizes, self.strides, self.paddings = [], [], []
        for i, item in enumerate(cfg):
            if item == "M":
                if i == len(cfg) - 1 and not final_maxpool:
                    continue
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.batch_norm = False
        self.n_layers = sum(1 for v in cfg if v != "M")

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNetFeatures(nn.Module):
    def __init__(self, block: type, widths: tuple[int, ...], stride8: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = widths[0]
        for i, width in enumerate(widths, start=1):
            stride = 1 if i == 1 or (stride8 and i >= 3) else 2
            setattr(self, f"layer{i}", nn.Sequential(block(channels, width, stride)))
            channels = width
        self.kernel_sizes, self.strides, self.paddings = [7, 3], [2, 2], [3, 1]
        self.block, self.layers, self.inplanes = block, [1] * len(widths), channels  # pickled as the original does

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial weights and BatchNorm statistics, deterministic."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=generator))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=generator))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=generator))
    return module.eval()


def vgg(module: str, cfg: list[int | str] | None = None, seed: int = 0, final_maxpool: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    cls = research_type(VGGFeatures, module, "VGG_features")
    return randomize(cls(cfg or [8, "M", 16, "M", 16, "M", 16, "M"], final_maxpool), seed)


def resnet(module: str, widths: tuple[int, ...] = (8, 16, 16, 16), stride8: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    block = research_type(BasicBlock, module, "BasicBlock")
    cls = research_type(ResNetFeatures, module, "ResNet_features")
    return randomize(cls(block, widths, stride8), seed)


class DenseLayer(nn.Sequential):
    """The research ``_DenseLayer``: norm1, relu1, conv1 (1x1), norm2, relu2, conv2 (3x3); concatenates its input."""

    def __init__(self, channels: int, growth: int, bn_size: int = 4):
        super().__init__()
        self.add_module("norm1", nn.BatchNorm2d(channels))
        self.add_module("relu1", nn.ReLU(inplace=True))
        self.add_module("conv1", nn.Conv2d(channels, bn_size * growth, 1, bias=False))
        self.add_module("norm2", nn.BatchNorm2d(bn_size * growth))
        self.add_module("relu2", nn.ReLU(inplace=True))
        self.add_module("conv2", nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False))
        self.drop_rate = 0

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, super().forward(x)], 1)


class DenseNetFeatures(nn.Module):
    """The research ``DenseNet_features``: its blocks, transitions, norm5 and ``final_relu`` in ``features``."""

    def __init__(self, module: str, growth: int, blocks: tuple[int, ...], init: int):
        super().__init__()
        layer_cls = research_type(DenseLayer, module, "_DenseLayer")
        block_cls = research_type(nn.Sequential, module, "_DenseBlock")
        transition_cls = research_type(nn.Sequential, module, "_Transition")
        self.kernel_sizes, self.strides, self.paddings, self.n_layers = [7, 3], [2, 2], [3, 1], 0
        self.features = nn.Sequential(OrderedDict([
            ("conv0", nn.Conv2d(3, init, 7, 2, 3, bias=False)), ("norm0", nn.BatchNorm2d(init)),
            ("relu0", nn.ReLU(inplace=True)), ("pool0", nn.MaxPool2d(3, 2, 1))]))
        channels = init
        for i, count in enumerate(blocks, start=1):
            block = block_cls()
            block.block_kernel_sizes, block.block_strides, block.block_paddings = [], [], []
            block.num_layers = 2 * count
            for j in range(count):
                block.add_module(f"denselayer{j + 1}", layer_cls(channels + j * growth, growth))
            self.features.add_module(f"denseblock{i}", block)
            channels += count * growth
            if i != len(blocks):
                transition = transition_cls(OrderedDict([
                    ("norm", nn.BatchNorm2d(channels)), ("relu", nn.ReLU(inplace=True)),
                    ("conv", nn.Conv2d(channels, channels // 2, 1, bias=False)), ("pool", nn.AvgPool2d(2, 2))]))
                self.features.add_module(f"transition{i}", transition)
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.features.add_module("final_relu", nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def densenet(module: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize(research_type(DenseNetFeatures, module, "DenseNet_features")(module, 4, (2, 2), 8), seed)


def out_channels(features: nn.Module) -> int:
    if isinstance(getattr(features, "features", None), nn.Sequential) and hasattr(features.features, "norm5"):
        return features.features.norm5.num_features
    return [m for m in features.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


# ----- ProtoPNet / TesNet ---------------------------------------------------------------------
class PPNet(nn.Module):
    """The attributes and children ProtoPNet's (and TesNet's) model.py gives its network."""

    def __init__(self, features: nn.Module, identity: Tensor, dim: int, seed: int, add_on: str = "regular",
                 activation: str = "log"):
        super().__init__()
        torch.manual_seed(seed)
        P, C = identity.shape
        self.img_size = 64
        self.prototype_shape = (P, dim, 1, 1)
        self.num_prototypes = P
        self.num_classes = C
        self.epsilon = 1e-4
        self.prototype_activation_function = activation
        self.prototype_class_identity = identity
        self.proto_layer_rf_info = [4, 16, 64, 0.5]
        self.features = features
        channels = out_channels(features)
        if add_on == "regular":
            self.add_on_layers = nn.Sequential(nn.Conv2d(channels, dim, 1), nn.ReLU(), nn.Conv2d(dim, dim, 1),
                                               nn.Sigmoid())
        else:  # ProtoPNet's bottleneck: 1x1 conv pairs halving the channels down to dim
            layers: list[nn.Module] = []
            while channels > dim or not layers:
                out = max(dim, channels // 2)
                layers += [nn.Conv2d(channels, out, 1), nn.ReLU(), nn.Conv2d(out, out, 1)]
                layers.append(nn.ReLU() if out > dim else nn.Sigmoid())
                channels //= 2
            self.add_on_layers = nn.Sequential(*layers)
        self.prototype_vectors = nn.Parameter(torch.rand(self.prototype_shape))
        self.ones = nn.Parameter(torch.ones(self.prototype_shape), requires_grad=False)
        self.last_layer = nn.Linear(P, C, bias=False)
        with torch.no_grad():
            self.last_layer.weight.copy_(identity.t() - 0.5 * (1 - identity.t()) + 0.1 * torch.randn(C, P))
        self.eval()


def ppnet(family: str = "protopnet", classes: int = 3, per_class: int = 2, dim: int = 8, pruned: bool = False,
          backbone: str = "vgg", add_on: str = "regular", seed: int = 0, activation: str = "log") -> nn.Module:
    """A whole ``model.PPNet`` (ProtoPNet) or ``model.TESNet`` (TesNet) with tiny sizes;
    ``activation`` is ``prototype_activation_function`` (``log`` or ``linear``)."""
    prefix = "models." if family == "tesnet" else ""
    builders = {"vgg": vgg, "resnet": resnet, "densenet": densenet}
    features = builders[backbone](f"{prefix}{backbone}_features", seed=seed)
    P = classes * per_class
    identity = torch.zeros(P, classes)
    identity[torch.arange(P), torch.arange(P) // per_class] = 1
    if pruned:  # drop prototypes 1 and 4, as prune.py deletes rows of the identity too
        keep = [j for j in range(P) if j not in (1, 4)]
        identity = identity[keep]
    cls = research_type(PPNet, "model", "TESNet" if family == "tesnet" else "PPNet")
    model = cls(features, identity, dim, seed, add_on, activation)
    if family == "tesnet":
        model.num_prototypes_per_class = per_class
    if pruned:
        with torch.no_grad():
            model.prototype_vectors = nn.Parameter(model.prototype_vectors[: identity.shape[0]].clone())
            model.ones = nn.Parameter(torch.ones_like(model.prototype_vectors), requires_grad=False)
            model.last_layer = nn.Linear(identity.shape[0], classes, bias=False)
        model.num_prototypes = identity.shape[0]
    return model


# ----- ST-ProtoPNet ------------------------------------------------------------------------
def st_net(variant: str, classes: int = 3, per_class: int = 2, dim: int = 8, seed: int = 0,
           backbone: str = "resnet") -> nn.Module:
    """An ST-ProtoPNet (full/ or cropped/) with a tiny ResNet, VGG or DenseNet; save its ``state_dict()``.

    full/: add-on [Upsample(x2) (Identity for VGG), conv, conv] and VGG features without the final max-pool
    (``VGG_features(final_maxpool=False)``); cropped/: add-on [conv, Tanh, conv, Tanh], VGG with all pools.
    """
    torch.manual_seed(seed)
    net = nn.Module()
    if backbone == "vgg":
        net.features = vgg("models.vgg_features", seed=seed, final_maxpool=variant == "cropped")
    elif backbone == "densenet":
        net.features = densenet("models.densenet_features", seed=seed)
    else:
        net.features = resnet("models.resnet_features", seed=seed)
    channels, P = out_channels(net.features), classes * per_class
    for name in ("trivial", "support"):
        if variant == "full":
            first = nn.Identity() if backbone == "vgg" else nn.Upsample(scale_factor=2, mode="bilinear")
            add_on = nn.Sequential(first, nn.Conv2d(channels, dim, 1), nn.Conv2d(dim, dim, 1))
        else:
            add_on = nn.Sequential(nn.Conv2d(channels, dim, 1), nn.Tanh(), nn.Conv2d(dim, dim, 1), nn.Tanh())
        setattr(net, f"add_on_layers_{name}", add_on)
        setattr(net, f"prototype_vectors_{name}", nn.Parameter(torch.randn(P, dim, 1, 1)))
        last = nn.Linear(P, classes, bias=False)
        setattr(net, f"last_layer_{name}", last)
    net.ones = nn.Parameter(torch.ones(P, dim, 1, 1), requires_grad=False)
    return net.eval()


# ----- ProtoPool ---------------------------------------------------------------------------
def protopool(classes: int = 3, prototypes: int = 5, slots: int = 3, dim: int = 8, last_layer: bool = True,
              seed: int = 0, use_thresh: bool = False) -> nn.Module:
    """ProtoPool's ``PrototypeChooser`` state: ``alfa`` only with ``--use_thresh`` (it is the int 1 otherwise)."""
    torch.manual_seed(seed)
    net = nn.Module()
    if use_thresh:
        net.alfa = nn.Parameter(torch.randn(1, classes, slots))
    net.proto_presence = nn.Parameter(torch.randn(classes, prototypes, slots))
    net.features = vgg("vgg_features", seed=seed)
    net.add_on_layers = nn.Sequential(nn.Conv2d(out_channels(net.features), dim, 1), nn.Sigmoid())
    net.prototype_vectors = nn.Parameter(torch.rand(prototypes, dim, 1, 1))
    net.ones = nn.Parameter(torch.ones(prototypes, dim, 1, 1), requires_grad=False)
    net.last_layer = nn.Linear(classes * slots, classes, bias=False) if last_layer else nn.Identity()
    with torch.no_grad():  # as after training: latents that differ across locations, prototypes near some of
        net.add_on_layers[0].weight.mul_(5)  # them, and the last layer's init (1 on own-class slots, 0 else) moved
        net.prototype_vectors.copy_((net.prototype_vectors > 0.5).float() * 0.9 + 0.05)
        if last_layer:
            own = torch.eye(classes).repeat_interleave(slots, dim=1)
            net.last_layer.weight.copy_(own + 0.1 * torch.randn(classes, classes * slots))
    return net.eval()


def protopool_checkpoint(net: nn.Module, epoch: int = 7) -> dict[str, Any]:
    """ProtoPool's ``save_model``: ``{'model_state_dict', 'epoch'}``."""
    return {"model_state_dict": net.state_dict(), "epoch": epoch}


# ----- PIP-Net -----------------------------------------------------------------------------
class NonNegLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.normalization_multiplier = nn.Parameter(torch.ones(1) * 2.0)
        self.bias = nn.Parameter(torch.randn(out_features)) if bias else None


def convnext(threshold: int, seed: int = 0) -> nn.Module:
    """PIP-Net's ``convnext_tiny_{26,13}_features``: torchvision's convnext_tiny without avgpool/classifier,
    stride-2 convolutions with more than ``threshold`` input channels set to stride 1 (100 -> 26, 300 -> 13)."""
    from torchvision.models import convnext_tiny

    torch.manual_seed(seed)
    model = convnext_tiny(weights=None)
    model.avgpool, model.classifier = nn.Identity(), nn.Identity()
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.stride[0] == 2 and module.in_channels > threshold:
            module.stride = tuple(s // 2 for s in module.stride)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # LayerNorms away from their defaults; the last block scaled up so prototypes peak
        for m in model.modules():
            if type(m).__name__ == "LayerNorm2d" or isinstance(m, nn.LayerNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=generator))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
        model.features[-1][-1].layer_scale.fill_(10.0)
    return model.eval()


CONVNEXT_THRESHOLDS = {"convnext_tiny_26": 100, "convnext_tiny_13": 300}


def pipnet(classes: int = 3, num_features: int = 0, bias: bool = False, seed: int = 0, net: str = "resnet") -> nn.Module:
    """PIP-Net's network: ``_net`` (a tiny stride-8 ResNet, or ``convnext_tiny_26`` / ``convnext_tiny_13``),
    ``_add_on`` (optional 1x1 conv, softmax over channels), ``_classification`` (NonNegLinear)."""
    torch.manual_seed(seed)
    model = nn.Module()
    if net in CONVNEXT_THRESHOLDS:
        model._net = convnext(CONVNEXT_THRESHOLDS[net], seed)
        channels = 768
    else:
        model._net = resnet("features.resnet_features", stride8=True, seed=seed)
        channels = out_channels(model._net)
    if num_features:
        model._add_on = nn.Sequential(nn.Conv2d(channels, num_features, 1), nn.Softmax(dim=1))
    else:
        model._add_on = nn.Sequential(nn.Softmax(dim=1))
    model._classification = NonNegLinear(num_features or channels, classes, bias)
    model._multiplier = model._classification.normalization_multiplier
    return model.eval()


def pipnet_checkpoint(net: nn.Module) -> dict[str, Any]:
    """PIP-Net's saved dict: the DataParallel state and the optimizer states."""
    state = OrderedDict(("module." + k, v) for k, v in net.state_dict().items())  # nn.DataParallel's keys
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    return {"model_state_dict": state, "optimizer_net_state_dict": optimizer.state_dict(),
            "optimizer_classifier_state_dict": optimizer.state_dict()}


def save_pipnet_run(net: nn.Module, folder: Path, args: dict[str, Any], fmt: str = "zip") -> Path:
    """A PIP-Net run folder as main.py leaves it: ``metadata/args.txt`` and ``args.pickle`` (``save_args``)
    and ``checkpoints/net_trained_last``; returns the checkpoints folder."""
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    (folder / "checkpoints").mkdir(exist_ok=True)
    with open(folder / "metadata" / "args.txt", "w") as handle:
        for name, value in args.items():  # strings quoted, as save_args writes them
            text = "'" + value + "'" if isinstance(value, str) else str(value)
            handle.write(f"{name}: {text}\n")
    with open(folder / "metadata" / "args.pickle", "wb") as handle:
        pickle.dump(argparse.Namespace(**args), handle)
    save(pipnet_checkpoint(net), folder / "checkpoints" / "net_trained_last", fmt)
    return folder / "checkpoints"


# ----- ProtoTree ---------------------------------------------------------------------------
class Node(nn.Module):
    """prototree.node.Node: the node's number lives in ``_index``; ``index`` is a property (not pickled)."""

    def __init__(self, index: int):
        super().__init__()
        self._index = index

    @property
    def index(self) -> int:
        return self._index


class Leaf(Node):
    def __init__(self, index: int, classes: int):
        super().__init__(index)
        self._dist_params = nn.Parameter(torch.randn(classes), requires_grad=False)
        self._log_probabilities = False
        self._kontschieder_normalization = False


class Branch(Node):
    def __init__(self, index: int, left: nn.Module, right: nn.Module):
        super().__init__(index)
        self.l = left
        self.r = right
        self._log_probabilities = False


class L2Conv2D(nn.Module):
    def __init__(self, prototypes: int, dim: int, w: int, h: int):
        super().__init__()
        self.prototype_vectors = nn.Parameter(torch.randn(prototypes, dim, w, h), requires_grad=True)


class ProtoTreeNet(nn.Module):
    """prototree.prototree.ProtoTree's attributes: nodes numbered in preorder (``_init_tree``), ``_parents``,
    ``_out_map`` (branch -> prototype row, in an arbitrary order), ``prototype_layer``."""

    def __init__(self, classes: int, depth: int, dim: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        leaf_cls = research_type(Leaf, "prototree.leaf", "Leaf")
        branch_cls = research_type(Branch, "prototree.branch", "Branch")

        def grow(i: int, d: int) -> nn.Module:  # _init_tree_recursive: left is i + 1, right i + left.size + 1
            if d == depth:
                return leaf_cls(i, classes)
            left = grow(i + 1, d + 1)
            size = sum(1 for _ in left.modules() if isinstance(_, Node))
            return branch_cls(i, left, grow(i + size + 1, d + 1))

        self._num_classes = classes
        self._root = grow(0, 0)
        self.num_features = dim
        self.num_prototypes = 2 ** depth - 1
        self.prototype_shape = (1, 1, dim)
        self._parents: dict[nn.Module, nn.Module | None] = {self._root: None}
        for node in self._root.modules():
            if isinstance(node, Branch):
                self._parents[node.r] = self._parents[node.l] = node
        self._net = vgg("features.vgg_features", seed=seed)
        self._add_on = nn.Sequential(nn.Conv2d(out_channels(self._net), dim, 1, bias=False), nn.Sigmoid())
        self._log_probabilities = False
        self._kontschieder_normalization = False
        self._kontschieder_train = False
        branches = [m for m in self._root.modules() if type(m) is branch_cls]
        order = torch.randperm(len(branches)).tolist()  # the map is arbitrary, as with ProtoTree's id-ordered set
        self._out_map = {b: order[i] for i, b in enumerate(branches)}
        self.prototype_layer = research_type(L2Conv2D, "util.l2conv", "L2Conv2D")(len(branches), dim, 1, 1)
        with torch.no_grad():
            self.prototype_layer.prototype_vectors.mul_(0.3).add_(0.5)
        self.eval()


def prune_nodes(tree: nn.Module, indices: tuple[int, ...]) -> None:
    """prototree/prune.py's splice: a pruned node's sibling takes its parent's place under the grandparent
    (nodes keep their ``_index``; the pruned branches stay in ``_out_map`` and their prototype rows stay)."""
    by_index = {m._index: m for m in tree._root.modules() if isinstance(m, Node)}
    for index in indices:
        node = by_index[index]
        parent = tree._parents[node]
        if parent._index == 0:  # prune.py never removes the root
            continue
        grand = tree._parents[parent]
        sibling = parent.r if node is parent.l else parent.l
        tree._parents[sibling] = grand
        if parent is grand.l:
            grand.l = sibling
        else:
            grand.r = sibling


def prototree(classes: int = 3, depth: int = 2, dim: int = 8, seed: int = 0, pruned: bool = False,
              kontschieder: bool = False, prune: tuple[int, ...] = ()) -> nn.Module:
    """A ProtoTree. ``prune`` lists node numbers pruned as prune.py does; ``pruned`` prunes node 3 (a leaf
    under node 1, so node 2 moves up under the root: numbers and preorder positions then differ);
    ``kontschieder`` uses leaf distributions dist_params / sum (positive params)."""
    tree = research_type(ProtoTreeNet, "prototree.prototree", "ProtoTree")(classes, depth, dim, seed)
    prune_nodes(tree, prune or ((3,) if pruned else ()))
    for leaf in tree._root.modules():
        if hasattr(leaf, "_dist_params") and kontschieder:
            leaf._kontschieder_normalization = True
            with torch.no_grad():
                leaf._dist_params.abs_().add_(0.1)
    tree._kontschieder_normalization = kontschieder
    return tree


def save_prototree_folder(tree: nn.Module, folder: Path, fmt: str = "zip") -> Path:
    """ProtoTree's save_tree: model.pth, model_state.pth and tree.pkl."""
    folder.mkdir(parents=True, exist_ok=True)
    classes = research_classes(tree)
    save(tree, folder / "model.pth", fmt, classes)
    save(tree.state_dict(), folder / "model_state.pth", fmt)
    save(tree, folder / "tree.pkl", "pickle", classes)
    return folder


# ----- Deformable ProtoPNet ----------------------------------------------------------------
class DeformablePPNet(nn.Module):
    """Deformable ProtoPNet's model.PPNet: upsample add-on, (P, D, 2, 2) prototypes, conv_offset."""

    def __init__(self, classes: int, per_class: int, hidden: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.features = vgg("vgg_features", seed=seed)
        D, P = out_channels(self.features), classes * per_class
        self.img_size = 64
        self.prototype_shape = (P, D, 2, 2)
        self.num_classes = classes
        self.epsilon_val = 1e-5
        self.input_vector_length = 64
        self.prototype_activation_function = "cos"
        self.add_on_layers = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"))
        self.prototype_vectors = nn.Parameter(torch.rand(self.prototype_shape))
        self.ones = nn.Parameter(torch.ones(self.prototype_shape), requires_grad=False)
        if hidden:
            self.conv_offset = nn.Sequential(nn.Conv2d(D + 1, hidden, 2, padding=1, dilation=2), nn.ReLU(),
                                             nn.Conv2d(hidden, 8, 1))
        else:
            self.conv_offset = nn.Sequential(nn.Conv2d(D + 1, 8, 2, padding=1, dilation=2))
        with torch.no_grad():  # offsets of about a pixel, so the sampling is really deformed
            for conv in self.conv_offset:
                if isinstance(conv, nn.Conv2d):
                    conv.weight.mul_(0.15)
        identity = torch.zeros(P, classes)
        identity[torch.arange(P), torch.arange(P) // per_class] = 1
        self.prototype_class_identity = identity
        self.last_layer = nn.Linear(P, classes, bias=False)
        self.eval()


def deformable(classes: int = 3, per_class: int = 2, hidden: int = 0, seed: int = 0) -> nn.Module:
    return research_type(DeformablePPNet, "model", "PPNet")(classes, per_class, hidden, seed)
