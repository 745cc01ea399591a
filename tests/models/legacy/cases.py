"""Research-format checkpoints for every family, each with its reference computation.

``python -m tests.models.legacy.cases`` prints the measured max |protoviz - reference| per case.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from protoviz.models import load_model
from tests.models.legacy import reference as ref
from tests.models.legacy import writers as w


@dataclass(frozen=True)
class Case:
    """A checkpoint writer, the family it must load as, and its reference."""

    name: str
    family: str
    write: Callable[[Path], tuple[Path, nn.Module]]
    reference: Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]
    hint: str | None = None
    image_size: int = 64
    hints: tuple[tuple[str, str], ...] = ()  # other load_model hints (slots, activation, backbone)


def _whole(family: str, fmt: str, **kwargs) -> Callable[[Path], tuple[Path, nn.Module]]:
    def write(folder: Path) -> tuple[Path, nn.Module]:
        net = w.ppnet(family, **kwargs)
        return w.save(net, folder / "10_18push0.7822.pth", fmt, w.research_classes(net)), net
    return write


def _state(make: Callable[[], nn.Module], wrap: Callable[[nn.Module], object], fmt: str = "zip",
           name: str = "checkpoint.pth"):
    def write(folder: Path) -> tuple[Path, nn.Module]:
        net = make()
        return w.save(wrap(net), folder / name, fmt), net
    return write


def _module(make: Callable[[], nn.Module], fmt: str) -> Callable[[Path], tuple[Path, nn.Module]]:
    def write(folder: Path) -> tuple[Path, nn.Module]:
        net = make()
        return w.save(net, folder / "deformable.pth", fmt, w.research_classes(net)), net
    return write


def _tree(file: str, fmt: str, **kwargs) -> Callable[[Path], tuple[Path, nn.Module]]:
    def write(folder: Path) -> tuple[Path, nn.Module]:
        net = w.prototree(**kwargs)
        w.save_prototree_folder(net, folder / "run", fmt)
        return (folder / "run" / file if file else folder / "run"), net
    return write


CASES: tuple[Case, ...] = (
    Case("protopnet zip vgg", "protopnet", _whole("protopnet", "zip"), ref.protopnet),
    Case("protopnet legacy vgg", "protopnet", _whole("protopnet", "legacy"), ref.protopnet),
    Case("protopnet zip resnet", "protopnet", _whole("protopnet", "zip", backbone="resnet"), ref.protopnet),
    Case("protopnet legacy densenet bottleneck", "protopnet",
         _whole("protopnet", "legacy", backbone="densenet", dim=4, add_on="bottleneck"), ref.protopnet),
    Case("protopnet legacy pruned", "protopnet", _whole("protopnet", "legacy", pruned=True), ref.protopnet),
    Case("protopnet state dict + hint", "protopnet", _state(lambda: w.ppnet("protopnet"), lambda n: n.state_dict()),
         ref.protopnet, hint="protopnet"),
    Case("tesnet zip", "tesnet", _whole("tesnet", "zip"), ref.tesnet),
    Case("tesnet legacy resnet", "tesnet", _whole("tesnet", "legacy", backbone="resnet"), ref.tesnet),
    Case("protopnet linear whole", "protopnet", _whole("protopnet", "zip", backbone="resnet", activation="linear"),
         ref.protopnet),
    Case("protopnet linear state dict + hints", "protopnet",
         _state(lambda: w.ppnet("protopnet", activation="linear"), lambda n: n.state_dict()), ref.protopnet,
         hint="protopnet", hints=(("activation", "linear"),)),
    Case("st full", "stprotopnet", _state(lambda: w.st_net("full"), lambda n: n.state_dict()),
         lambda n, x: ref.st(n, x, "full")),
    Case("st full vgg (no final pool)", "stprotopnet", _state(lambda: w.st_net("full", backbone="vgg"),
                                                              lambda n: n.state_dict()), lambda n, x: ref.st(n, x, "full")),
    Case("st full densenet legacy", "stprotopnet",
         _state(lambda: w.st_net("full", backbone="densenet"), lambda n: n.state_dict(), "legacy"),
         lambda n, x: ref.st(n, x, "full")),
    Case("st cropped legacy", "stprotopnet", _state(lambda: w.st_net("cropped"), lambda n: n.state_dict(), "legacy"),
         lambda n, x: ref.st(n, x, "cropped")),
    Case("st cropped vgg", "stprotopnet", _state(lambda: w.st_net("cropped", backbone="vgg"), lambda n: n.state_dict()),
         lambda n, x: ref.st(n, x, "cropped")),
    Case("protopool pushed: hard slots", "protopool",
         _state(w.protopool, w.protopool_checkpoint, name="best_model_push.pth"), ref.protopool),
    Case("protopool sum over slots: soft", "protopool",
         _state(lambda: w.protopool(last_layer=False), w.protopool_checkpoint, name="best_model.pth"),
         lambda n, x: ref.protopool(n, x, "soft")),
    Case("protopool last layer: soft", "protopool", _state(w.protopool, w.protopool_checkpoint, name="best_model.pth"),
         lambda n, x: ref.protopool(n, x, "soft")),
    Case("protopool hard given", "protopool", _state(w.protopool, w.protopool_checkpoint, name="best_model.pth"),
         ref.protopool, hints=(("slots", "hard"),)),
    Case("protopool linear thresh soft legacy", "protopool",
         _state(lambda: w.protopool(use_thresh=True), w.protopool_checkpoint, "legacy", "best_model.pth"),
         lambda n, x: ref.protopool(n, x, "soft", "linear"), hints=(("activation", "linear"),)),
    Case("protopool linear pushed hard", "protopool",
         _state(lambda: w.protopool(last_layer=False), w.protopool_checkpoint, name="best_model_push.pth"),
         lambda n, x: ref.protopool(n, x, "hard", "linear"), hints=(("activation", "linear"),)),
    Case("pipnet", "pipnet", _state(w.pipnet, w.pipnet_checkpoint), ref.pipnet),
    Case("pipnet add-on + bias legacy", "pipnet",
         _state(lambda: w.pipnet(num_features=6, bias=True), w.pipnet_checkpoint, "legacy"), ref.pipnet),
    Case("prototree folder (model.pth zip)", "prototree", _tree("", "zip"), ref.prototree),
    Case("prototree model.pth legacy", "prototree", _tree("model.pth", "legacy"), ref.prototree),
    Case("prototree tree.pkl", "prototree", _tree("tree.pkl", "zip"), ref.prototree),
    Case("prototree pruned kontschieder", "prototree", _tree("model.pth", "zip", pruned=True, kontschieder=True),
         ref.prototree),
    Case("prototree depth 3 pruned twice (tree.pkl)", "prototree", _tree("tree.pkl", "zip", depth=3, prune=(4, 9)),
         ref.prototree),
    Case("deformable zip (unverified vs CUDA kernel)", "deformable", _module(w.deformable, "zip"), ref.deformable),
    Case("deformable legacy hidden offsets", "deformable", _module(lambda: w.deformable(hidden=6), "legacy"),
         ref.deformable),
)


def images(case: Case, batch: int = 3, seed: int = 1) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, case.image_size, case.image_size, generator=generator)


def measure(case: Case, folder: Path, batch: int = 3) -> tuple[float, float, object]:
    """(max |logits diff|, max |maps diff|, loaded model) of protoviz against the reference, float32."""
    path, net = case.write(folder)
    model = load_model(path, family=case.hint, **dict(case.hints))
    x = images(case, batch)
    with torch.no_grad():
        out = model(x)
    logits, maps = case.reference(net, x)
    assert out.similarity_maps.shape == maps.shape, (out.similarity_maps.shape, maps.shape)
    return (float((out.logits.double() - logits).abs().max()), float((out.similarity_maps.double() - maps).abs().max()),
            model)


def main() -> None:
    print(f"{'case':36s} {'family':12s} {'max |logits diff|':>18s} {'max |maps diff|':>16s}  maps")
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            dl, dm, model = measure(case, Path(tmp))
        print(f"{case.name:36s} {case.family:12s} {dl:18.3e} {dm:16.3e}  {model.map_size()}")


if __name__ == "__main__":
    main()
