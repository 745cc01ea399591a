"""Every research family loads from its original format and matches a float64 reference within 1e-5."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protoviz.errors import CheckpointError
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from protoviz.models.prototree import ProtoTree
from tests.models.legacy import writers as w
from tests.models.legacy.cases import CASES, images, measure

TOLERANCE = 1e-5


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_the_reference(case, tmp_path: Path) -> None:
    logits_diff, maps_diff, model = measure(case, tmp_path)
    print(f"{case.name}: max |logits diff| {logits_diff:.2e}, max |maps diff| {maps_diff:.2e}")
    assert model.family == case.family
    assert logits_diff <= TOLERANCE and maps_diff <= TOLERANCE
    with torch.no_grad():  # batch of one (ProtoPool's original crashes on it) gives the same row
        x = images(case, 3)
        torch.testing.assert_close(model(x[:1]).logits, model(x).logits[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [c for c in CASES if "zip" in c.name or c.family in ("stprotopnet", "pipnet", "protopool")][:8],
                         ids=lambda c: c.name)
def test_native_conversion_is_lossless(case, tmp_path: Path) -> None:
    path, _ = case.write(tmp_path)
    model = load_model(path, family=case.hint, **dict(case.hints))
    native = load_model(save_model(model, tmp_path / "native.safetensors"))
    x = images(case)
    with torch.no_grad():
        assert torch.equal(model(x).logits, native(x).logits)
        assert torch.equal(model(x).similarity_maps, native(x).similarity_maps)
    assert native.family == model.family and native.summary() == model.summary()


def test_pruned_protopnet_keeps_its_pickled_identity(tmp_path: Path) -> None:
    net = w.ppnet(pruned=True)
    model = load_model(w.save(net, tmp_path / "pruned.pth", "legacy", w.research_classes(net)))
    assert model.num_prototypes == 4 and model.num_classes == 3
    assert torch.equal(model.prototype_class_identity, net.prototype_class_identity)
    assert model.input_spec.image_size == (64, 64)


def test_protopnet_and_tesnet_state_dicts_need_a_hint(tmp_path: Path) -> None:
    path = w.save(w.ppnet().state_dict(), tmp_path / "state.pth", "zip")
    with pytest.raises(CheckpointError, match="family hint"):
        load_model(path)
    assert load_model(path, family="tesnet").family == "tesnet"
    whole = w.ppnet("tesnet")
    file = w.save(whole, tmp_path / "tes.pth", "zip", w.research_classes(whole))
    with pytest.raises(CheckpointError, match="tesnet checkpoint, not protopnet"):
        load_model(file, family="protopnet")


def test_protopool_class_weights_reproduce_the_slot_head(tmp_path: Path) -> None:
    net = w.protopool(prototypes=4, slots=3)
    model = load_model(w.save(w.protopool_checkpoint(net), tmp_path / "best_model_push.pth", "zip"))  # hard slots
    slots = net.proto_presence.detach().argmax(dim=1)  # (C, S)
    expected = torch.zeros(3, 4)
    for c_out in range(3):
        for c in range(3):
            for s in range(3):
                expected[c_out, slots[c, s]] += net.last_layer.weight[c_out, c * 3 + s].item()
    torch.testing.assert_close(model.class_weights, expected)
    out = model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(out.logits, out.max_similarities @ model.class_weights.t())


def test_prototree_state_dict_alone_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = w.save_prototree_folder(w.prototree(), tmp_path / "run")
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "model_state.pth").write_bytes((folder / "model_state.pth").read_bytes())
    for path in (lone, lone / "model_state.pth"):
        with pytest.raises(CheckpointError, match="cannot be re-attached"):
            load_model(path)
    assert load_model(folder / "model_state.pth").family == "prototree"  # model.pth beside it is used


def test_prototree_exposes_its_tree_and_decision_path(tmp_path: Path) -> None:
    net = w.prototree(depth=2)
    model = load_model(w.save_prototree_folder(net, tmp_path / "run"))
    assert isinstance(model, ProtoTree) and model.output_kind == "probs"
    nodes = model.decision_tree()
    branches = [n for n in nodes if not n.is_leaf]
    assert len(branches) == 3 and len(nodes) == 7
    assert sorted(n.prototype for n in branches) == sorted(net._out_map.values())
    x = torch.randn(1, 3, 64, 64)
    path = model.decision_path(x)
    assert len(path.steps) == 2
    with torch.no_grad():
        sims = model(x).max_similarities[0]
        probs = model(x).logits[0]
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))
    position = 0
    for step in path.steps:
        node = nodes[position]
        assert step.prototype == node.prototype and step.similarity == pytest.approx(float(sims[node.prototype]))
        position = node.right if step.went_right else node.left
    assert path.leaf_position == position and nodes[position].is_leaf


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_loads_on_the_requested_device(tmp_path: Path, fmt: str) -> None:
    net = w.ppnet()
    path = w.save(net, tmp_path / "m.pth", fmt, w.research_classes(net))
    target = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(path, device=target)
    assert model.device.type == target
    assert model(torch.randn(1, 3, 64, 64, device=target)).logits.device.type == target


def test_deformable_state_dict_loads_with_recorded_assumptions(tmp_path: Path) -> None:
    net = w.deformable(hidden=6)
    whole = load_model(w.save(net, tmp_path / "whole.pth", "zip", w.research_classes(net)))
    bare = load_model(w.save(net.state_dict(), tmp_path / "state.pth", "zip"))
    assert bare.family == "deformable" and "assumed" in bare.metadata and "assumed" not in whole.metadata
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # the assumptions hold for this writer (dilation 2, padding 1, ReLU between convs)
        torch.testing.assert_close(bare(x).logits, whole(x).logits)
    assert whole.part_offsets(x).shape == (2, 4, 2, 8, 8)
