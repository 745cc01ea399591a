"""The research variants a file cannot fully tell (issue 10): ProtoTree's own node numbers after pruning,
ProtoPool's soft and hard slots, the linear activation, ST-ProtoPNet full/ with a VGG, and the hints that
choose them (load_model keywords, --slots/--activation on info and convert), recorded in converted files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protoviz.cli import main
from protoviz.errors import CheckpointError, ConfigError, ModelError
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.prototree import ProtoTree
from tests.models.legacy import reference as ref
from tests.models.legacy import writers as w

X = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.double(), b.double(), rtol=0, atol=1e-5)


# ----- ProtoTree ------------------------------------------------------------------------------
@pytest.mark.parametrize("depth,prune", [(2, (3,)), (3, (4, 9)), (3, (2, 13))])
def test_pruned_prototree_keeps_prototrees_node_numbers(tmp_path: Path, depth: int, prune: tuple[int, ...]) -> None:
    net = w.prototree(depth=depth, prune=prune)
    model = load_model(w.save_prototree_folder(net, tmp_path / "run"))
    assert isinstance(model, ProtoTree)
    reachable = [m for m in net._root.modules() if isinstance(m, w.Node)]
    nodes = model.decision_tree()
    assert sorted(n.index for n in nodes) == sorted(m._index for m in reachable)
    assert [n.index for n in nodes] != list(range(len(nodes)))  # pruning leaves gaps: numbers are not positions
    by_number = {n.index: n for n in nodes}
    for m in reachable:  # same children and the same prototype row behind each branch
        node = by_number[m._index]
        assert node.is_leaf == hasattr(m, "_dist_params")
        if not node.is_leaf:
            assert node.prototype == net._out_map[m]
            assert (nodes[node.left].index, nodes[node.right].index) == (m.l._index, m.r._index)
    for i, leaf in enumerate(ref.prototree_greedy_leaf(net, X)):
        path = model.decision_path(X[i:i + 1])
        assert path.leaf_node == leaf == nodes[path.leaf_position].index
        assert [row["node"] for row in path.as_rows()] == [s.node for s in path.steps]
        assert path.as_record()["leaf_node"] == leaf
    native = load_model(save_model(model, tmp_path / "tree.safetensors"))
    assert [n.index for n in native.decision_tree()] == [n.index for n in nodes]


def test_prototree_node_without_its_number_is_refused(tmp_path: Path) -> None:
    net = w.prototree()
    del net._root.l._index  # not what ProtoTree writes
    with pytest.raises(CheckpointError, match="_index"):
        load_model(w.save_prototree_folder(net, tmp_path / "run") / "model.pth")


# ----- ProtoPool ------------------------------------------------------------------------------
def test_protopool_slot_mode_follows_the_file_name_and_is_recorded(tmp_path: Path) -> None:
    net = w.protopool()
    soft = load_model(w.save(w.protopool_checkpoint(net), tmp_path / "best_model.pth", "zip"))
    hard = load_model(w.save(w.protopool_checkpoint(net), tmp_path / "best_model_push.pth", "zip"))
    assert (soft.config.slots, hard.config.slots) == ("soft", "hard")
    assert "does not name a pushed model" in soft.metadata["load_hints"]["slots"]
    assert soft.summary().settings["slots"].startswith("soft") and hard.summary().settings["slots"].startswith("hard")
    with torch.no_grad():
        _close(soft(X).logits, ref.protopool(net, X, "soft")[0])
        _close(hard(X).logits, ref.protopool(net, X, "hard")[0])
        assert (soft(X).logits - hard(X).logits).abs().max() > 1e-3  # 100x the tolerance: the modes differ here
        torch.testing.assert_close(soft(X).similarity_maps, hard(X).similarity_maps)
    assert not soft.logits_from_pooled and hard.logits_from_pooled
    with pytest.raises(ModelError, match="soft slots"):
        soft.logits_from_similarities(soft(X).similarity_maps, soft(X).max_similarities)
    presence = torch.softmax(net.proto_presence.detach(), dim=1)  # soft class weights: the expected slot weights
    expected = net.last_layer.weight.detach() @ presence.permute(0, 2, 1).reshape(-1, presence.shape[1])
    torch.testing.assert_close(soft.class_weights, expected)
    torch.testing.assert_close(soft.prototype_class_identity, hard.prototype_class_identity)


def test_protopool_slots_survive_conversion_and_can_be_switched(tmp_path: Path) -> None:
    net = w.protopool(last_layer=False)
    path = w.save(w.protopool_checkpoint(net), tmp_path / "best_model.pth", "zip")
    native_path = save_model(load_model(path), tmp_path / "pool.safetensors")
    native = load_model(native_path)
    assert native.config.slots == "soft" and "slots" in native.metadata["load_hints"]
    switched = load_model(native_path, slots="hard")
    assert switched.config.slots == "hard" and "given" in switched.metadata["load_hints"]["slots"]
    with torch.no_grad():
        _close(native(X).logits, ref.protopool(net, X, "soft")[0])
        _close(switched(X).logits, ref.protopool(net, X, "hard")[0])
    with pytest.raises(CheckpointError, match="records activation 'log'"):
        load_model(native_path, activation="linear")


# ----- activation -----------------------------------------------------------------------------
def test_a_pickled_protopnet_tells_its_activation_and_a_contradicting_hint_is_refused(tmp_path: Path) -> None:
    net = w.ppnet(activation="linear")
    path = w.save(net, tmp_path / "m.pth", "zip", w.research_classes(net))
    model = load_model(path)
    assert model.similarity_kind == "linear" and "load_hints" not in model.metadata
    assert load_model(path, activation="linear").similarity_kind == "linear"
    with pytest.raises(CheckpointError, match="records prototype_activation_function 'linear'"):
        load_model(path, activation="log")
    state = w.save(net.state_dict(), tmp_path / "state.pth", "zip")
    assumed = load_model(state, family="protopnet")
    assert assumed.similarity_kind == "log" and "assumed" in assumed.metadata["load_hints"]["activation"]
    told = load_model(state, family="protopnet", activation="linear")
    with torch.no_grad():
        _close(told(X).logits, ref.protopnet(net, X)[0])
        _close(told(X).similarity_maps, ref.protopnet(net, X)[1])
    native = load_model(save_model(told, tmp_path / "lin.safetensors"))
    assert native.config.similarity == "linear"


def test_hints_that_do_not_apply_are_refused(tmp_path: Path) -> None:
    tes = w.ppnet("tesnet")
    path = w.save(tes, tmp_path / "tes.pth", "zip", w.research_classes(tes))
    with pytest.raises(ConfigError, match="activation hint .* applies only to protopnet, protopool"):
        load_model(path, activation="linear")
    with pytest.raises(ConfigError, match="slots hint"):
        load_model(path, slots="soft")
    with pytest.raises(ConfigError, match="slots must be one of"):
        load_model(path, slots="gumbel")
    with pytest.raises(ConfigError, match="unknown load hint"):
        load_model(path, temperature="0.5")


# ----- ST-ProtoPNet full/ with a VGG ----------------------------------------------------------
def test_st_full_vgg_has_no_final_pool(tmp_path: Path) -> None:
    net = w.st_net("full", backbone="vgg")
    model = load_model(w.save(net.state_dict(), tmp_path / "st.pth", "zip"))
    with torch.no_grad():  # the writer's VGG has 4 pools: stride 8 without the last one, 16 with it (cropped/)
        assert model(X).similarity_maps.shape[-2:] == (8, 8)
        _close(model(X).logits, ref.st(net, X, "full")[0])
    assert model.backbone_name == "vgg:cfg=8,M,16,M,16,M,16;bn=0"
    cropped = load_model(w.save(w.st_net("cropped", backbone="vgg").state_dict(), tmp_path / "c.pth", "zip"))
    assert cropped(X).similarity_maps.shape[-2:] == (4, 4)
    assert cropped.backbone_name == "vgg:cfg=8,M,16,M,16,M,16,M;bn=0"


def test_standard_vggs_without_their_last_pool_get_stride16_names() -> None:
    from torchvision.models import vgg11

    state = {f"features.{k}": v for k, v in vgg11(weights=None).state_dict().items() if k.startswith("features.")}
    assert infer_backbone(state, "features.") == "vgg11"
    assert infer_backbone(state, "features.", final_pool=False) == "vgg11_stride16"


# ----- command line ---------------------------------------------------------------------------
def test_info_and_convert_take_the_hints(tmp_path: Path, capsys) -> None:
    net = w.protopool()
    path = w.save(w.protopool_checkpoint(net), tmp_path / "best_model.pth", "zip")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "slots" in out and "soft (softmax of proto_presence)" in out and "slots chosen" in out
    assert main(["info", str(path), "--slots", "hard", "--activation", "linear"]) == 0
    out = capsys.readouterr().out
    assert "hard (argmax of proto_presence)" in out and "focal_linear" in out
    target = tmp_path / "pool.safetensors"
    assert main(["convert", str(path), str(target), "--slots", "hard"]) == 0
    assert load_model(target).config.slots == "hard"


def test_cli_refuses_a_bad_slot_mode(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["info", "x.pth", "--slots", "sometimes"])


def test_a_pipnet_resnet_run_folder_loads_without_backbone_choices(tmp_path: Path) -> None:
    net = w.pipnet()
    folder = w.save_pipnet_run(net, tmp_path / "run", {"net": "resnet18", "num_features": 0, "bias": False})
    model = load_model(folder)
    assert model.backbone_name.startswith("resnet:") and "load_hints" not in model.metadata
    with torch.no_grad():
        _close(model(X).logits, ref.pipnet(net, X)[0])


def test_soft_protopool_runs_through_explanations_and_scans(tmp_path: Path) -> None:
    from protoviz.compare.scan import forward_maps
    from protoviz.heatmaps import explain_image

    net = w.protopool()
    model = load_model(w.save(w.protopool_checkpoint(net), tmp_path / "best_model.pth", "zip"))
    with torch.no_grad():
        expected = ref.protopool(net, X, "soft")[0]
        _, logits, _ = forward_maps(model, X, with_latent=False)
        _close(logits, expected)
        explanations = explain_image(model, X, top_k=3)
    for i, explanation in enumerate(explanations):
        assert explanation.class_logit == pytest.approx(float(expected[i, explanation.predicted]), abs=1e-5)
        assert not explanation.sums_to_logit  # soft slots mix distances: contributions are indicative only
