"""Importing what the original pushes wrote, for every family that writes something that maps back to an image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from protoviz.errors import CheckpointError, ModelError
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.registry import FAMILIES, build_model
from protoviz.sources import import_push_folder
from protoviz.sources.criteria import RULES
from protoviz.sources.folder import imagefolder_images
from protoviz.sources.receptive import receptive_field
from tests.conftest import make_tiny_model
from tests.sources import pushwriters as W
from tests.sources.conftest import folder_tensors, lively, make_image_folder


def _pushed_protopnet(tmp_path: Path, epochs: tuple[int, ...] = (5,)) -> tuple[torch.nn.Module, Path, Path, W.Pushed]:
    """A tiny ProtoPNet pushed by ProtoPNet's algorithm, with the folder that push writes."""
    model = lively(make_tiny_model(classes=3, per_class=2, seed=1))
    data = make_image_folder(tmp_path / "push_set", seed=2)
    unit, _x, labels, _files = folder_tensors(data, model)
    cls = model.prototype_class_identity.argmax(dim=1).numpy()
    pushed = None
    for epoch in epochs:
        pushed, vectors = W.protopnet_push(unit, labels, W.protopnet_forward(model), W.log_activation, cls,
                                           tmp_path / "run" / "img", epoch, W.tiny_cnn_field(64), batch_size=5)
        with torch.no_grad():
            model.prototype_vectors.copy_(torch.from_numpy(vectors)[:, :, None, None])
    return model, tmp_path / "run", data, pushed  # type: ignore[return-value]


def _own_boxes(model: torch.nn.Module, data: Path, images: np.ndarray) -> list[list[int]]:
    _unit, x, _labels, _files = folder_tensors(data, model)
    with torch.no_grad():
        maps = RULES[model.family].activation_maps(model, x)  # (N, P, h, w)
    picked = maps[torch.from_numpy(images), torch.arange(len(images))]
    return percentile_boxes(upsample_maps(picked, model.input_spec.image_size)).tolist()


def test_protopnet_folder_is_read_faithfully(tmp_path: Path) -> None:
    model, run, data, pushed = _pushed_protopnet(tmp_path)
    imported = import_push_folder(model, run, data, batch_size=4)
    listing = imagefolder_images(data)
    own = _own_boxes(model, data, pushed.image)
    field = receptive_field(model)
    assert field is not None
    for j, source in enumerate(imported.sources):
        assert source is not None and source.origin == "push-folder"
        assert source.image_id == listing.relative[pushed.image[j]]
        assert source.class_index == listing.labels[pushed.image[j]] == j // 2
        assert source.push_box == tuple(pushed.box[j]) and source.rf_box == tuple(pushed.rf_box[j])
        assert source.map_location == tuple(pushed.cell[j])
        assert list(source.box) == own[j]  # the pushed prototype's own box
        assert source.distance == pytest.approx(0, abs=1e-5)
        assert source.boxes_differ == (np.abs(np.array(source.box) - pushed.box[j]).max() > 1)
        assert field.box(*source.map_location, (64, 64)) == tuple(pushed.rf_box[j])  # computed = written
    assert imported.found == imported.cells_agree == 6 and imported.epoch == 5
    assert imported.boxes_differ == sum(s.boxes_differ for s in imported.sources if s is not None)
    assert any("epoch 5" in line for line in imported.summary())


def test_push_quirk_boxes_come_from_the_prototype_before_the_push(tmp_path: Path) -> None:
    """ProtoPNet's push draws its boxes with the prototypes it is about to replace: the folder's box is the
    pre-push prototype's box on the chosen image, and often not where the pushed prototype fires."""
    before = lively(make_tiny_model(classes=3, per_class=2, seed=1))
    model, run, data, pushed = _pushed_protopnet(tmp_path)
    rows = np.load(run / "img" / "epoch-5" / "bb5.npy")
    assert rows.dtype == np.int64 and rows.shape == (6, 6)  # as ProtoPNet's np.full(..., -1)
    assert _own_boxes(before, data, pushed.image) == rows[:, 1:5].tolist()
    imported = import_push_folder(model, run, data)
    assert imported.boxes_differ > 0
    assert any(s is not None and s.push_box != s.box for s in imported.sources)


def test_epoch_choice(tmp_path: Path) -> None:
    model, run, data, _pushed = _pushed_protopnet(tmp_path, epochs=(3, 7))
    assert import_push_folder(model, run, data).epoch == 7
    assert import_push_folder(model, run / "img", data, epoch=3).epoch == 3
    assert import_push_folder(model, run / "img" / "epoch-3", data).epoch == 3
    model.metadata["imported_from"] = "/models/3push0.7712.pth"
    assert import_push_folder(model, run, data).epoch == 3  # the checkpoint's own epoch
    model.metadata["imported_from"] = "/models/4_2push0.7712.pth"
    imported = import_push_folder(model, run, data)
    assert imported.epoch == 7 and any("epoch 4" in note for note in imported.notes)
    with pytest.raises(CheckpointError, match="not 9"):
        import_push_folder(model, run, data, epoch=9)


def _corrupt(tmp_path: Path, change) -> tuple[torch.nn.Module, Path, Path]:  # type: ignore[no-untyped-def]
    model, run, data, _pushed = _pushed_protopnet(tmp_path)
    change(run / "img" / "epoch-5")
    return model, run, data


def _rows(folder: Path) -> np.ndarray:
    return np.load(folder / "bb5.npy")


@pytest.mark.parametrize("change, message", [
    (lambda f: np.save(f / "bb5.npy", _rows(f)[:4]), "4 rows but the model has 6"),
    (lambda f: np.save(f / "bb5.npy", np.where(np.arange(6)[:, None] == 0, [99, 0, 4, 0, 4, 0], _rows(f))),
     "names image 99"),
    (lambda f: np.save(f / "bb5.npy", np.where(np.arange(6)[:, None] == 0, [0, 0, 4, 0, 4, 2], _rows(f))),
     "says class 2"),
    (lambda f: np.save(f / "bb5.npy", np.where(np.arange(6)[:, None] == 0, [0, 0, 90, 0, 4, 0], _rows(f))),
     "not inside"),
    (lambda f: np.save(f / "bb5.npy", _rows(f).astype(np.float64)), "numeric array of kind"),
    (lambda f: np.save(f / "bb5.npy", np.array([None] * 6, dtype=object), allow_pickle=True), "numeric array"),
    (lambda f: np.save(f / "bb5.npy", _rows(f)[:, :3]), "5 or 6 columns"),
    (lambda f: np.save(f / "prototype-self-act0.npy", np.zeros((3, 3), np.float32)), "activation map"),
    (lambda f: (f / "bb5.npy").write_bytes((f / "bb5.npy").read_bytes()[:-10]), "truncated"),
])
def test_malformed_protopnet_folders_are_refused(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    model, run, data = _corrupt(tmp_path, change)
    with pytest.raises(CheckpointError, match=message):
        import_push_folder(model, run, data)


def test_links_out_of_the_push_folder_are_refused(tmp_path: Path) -> None:
    model, run, data, _pushed = _pushed_protopnet(tmp_path)
    folder = run / "img" / "epoch-5"
    os.replace(folder / "bb5.npy", tmp_path / "elsewhere.npy")
    os.symlink(tmp_path / "elsewhere.npy", folder / "bb5.npy")
    with pytest.raises(CheckpointError, match="leads outside the push folder"):
        import_push_folder(model, run, data)


def test_missing_and_wrong_folders(tmp_path: Path) -> None:
    model, run, data, _pushed = _pushed_protopnet(tmp_path)
    with pytest.raises(CheckpointError, match="no such push folder"):
        import_push_folder(model, tmp_path / "nothing", data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no bbN.npy"):
        import_push_folder(model, tmp_path / "empty", data)
    other = make_image_folder(tmp_path / "other", per_class=1)
    with pytest.raises(CheckpointError, match="--data"):
        import_push_folder(model, run, other)
    torch.manual_seed(0)
    deformable = build_model("deformable", FAMILIES.get("deformable").example_config())
    with pytest.raises(ModelError, match="no push-folder reader"):
        import_push_folder(deformable, run, data)


def _family_model(family: str, **changes: object) -> torch.nn.Module:
    torch.manual_seed(4)
    config = {**FAMILIES.get(family).example_config(), **changes}
    return lively(build_model(family, config).eval())


def test_tesnet_folder(tmp_path: Path) -> None:
    model = _family_model("tesnet")
    data = make_image_folder(tmp_path / "push_set", seed=3)
    unit, _x, labels, _files = folder_tensors(data, model)
    cls = model.prototype_class_identity.argmax(dim=1).numpy()
    pushed, vectors = W.protopnet_push(unit, labels, W.tesnet_forward(model), W.negative, cls, tmp_path / "img", 2,
                                       W.tiny_cnn_field(64), batch_size=4)
    with torch.no_grad():
        model.prototype_vectors.copy_(torch.from_numpy(vectors)[:, :, None, None])
    imported = import_push_folder(model, tmp_path, data)
    listing = imagefolder_images(data)
    for j, source in enumerate(imported.sources):
        assert source is not None and source.image_id == listing.relative[pushed.image[j]]
        assert source.push_box == tuple(pushed.box[j]) and source.map_location == tuple(pushed.cell[j])
        assert source.distance_kind == "neg_projection"


@pytest.mark.parametrize("variant", ["full", "cropped"])
def test_st_protopnet_folders(tmp_path: Path, variant: str) -> None:
    model = _family_model("stprotopnet", variant=variant)
    data = make_image_folder(tmp_path / "push_set", seed=4)
    unit, _x, labels, _files = folder_tensors(data, model)
    count = model.config.num_prototypes
    cls = model.prototype_class_identity.argmax(dim=1).numpy()[:count]
    n, jump, size, start = W.tiny_cnn_field(64)
    field = (n * 2, jump / 2, size, start) if variant == "full" else (n, jump, size, start)  # the x2 upsampling
    results = {}
    for name in ("trivial", "support"):  # ST-ProtoPNet's main.py pushes the trivial set first
        results[name], vectors = W.protopnet_push(unit, labels, W.st_forward(model, name), W.negative, cls,
                                                  tmp_path / "run" / f"img{name}", 1, field, batch_size=4,
                                                  png_style="suffix", overlay=(0.75, 0.25))
        with torch.no_grad():
            getattr(model, f"prototype_vectors_{name}").copy_(torch.from_numpy(vectors)[:, :, None, None])
    imported = import_push_folder(model, tmp_path / "run", data)
    listing = imagefolder_images(data)
    for offset, name in ((0, "support"), (count, "trivial")):
        pushed = results[name]
        for j in range(count):
            source = imported.sources[offset + j]
            assert source is not None and source.image_id == listing.relative[pushed.image[j]]
            assert source.push_box == tuple(pushed.box[j]) and source.map_location == tuple(pushed.cell[j])
            assert receptive_field(model).box(*source.map_location, (64, 64)) == tuple(pushed.rf_box[j])  # type: ignore[union-attr]
    if variant == "full":
        assert all(s is not None and s.distance == pytest.approx(-1, abs=1e-5) for s in imported.sources)
    with pytest.raises(CheckpointError, match="imgsupport"):
        import_push_folder(model, tmp_path / "run" / "imgsupport", data)


def test_protopool_pictures_are_matched_to_images(tmp_path: Path) -> None:
    model = _family_model("protopool")
    data = make_image_folder(tmp_path / "push_set", seed=5, size=80)
    unit, _x, labels, _files = folder_tensors(data, model)
    eligible = RULES["protopool"].eligible(model).numpy()
    folder = tmp_path / "img_proto" / "run"
    pushed, vectors = W.protopnet_push(unit, labels, _protopool_forward(model), W.log_activation,
                                       np.zeros(model.num_prototypes, dtype=np.int64), folder, 0, W.tiny_cnn_field(64),
                                       batch_size=4, eligible=eligible, save_boxes=False, minmax=True)
    assert not list(folder.glob("bb*.npy"))  # ProtoPool saves no box file
    with torch.no_grad():
        model.prototype_vectors.copy_(torch.from_numpy(vectors)[:, :, None, None])
    imported = import_push_folder(model, folder, data)
    listing = imagefolder_images(data)
    for j, source in enumerate(imported.sources):
        if pushed.image[j] < 0:
            assert source is None
            continue
        assert source is not None and source.image_id == listing.relative[pushed.image[j]]
        assert source.push_box == tuple(pushed.box[j]) and source.map_location == tuple(pushed.cell[j])
        assert source.distance == pytest.approx(0, abs=1e-5)
    np.save(folder / "prototype-self-act0.npy", np.zeros((2, 2), np.float32))
    with pytest.raises(CheckpointError, match="activation map"):
        import_push_folder(model, folder, data)


def _protopool_forward(model: torch.nn.Module):  # type: ignore[no-untyped-def]
    def forward(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            return model.latent(x).numpy(), model.distance_maps(x).numpy()
    return forward


def test_prototree_pictures_are_matched_to_images(tmp_path: Path) -> None:
    model = _family_model("prototree")
    with torch.no_grad():
        model.leaf_params.copy_(torch.eye(3) * 5)
    data = make_image_folder(tmp_path / "push_set", seed=6, size=48)  # originals smaller than the input
    _unit, x, labels, files = folder_tensors(data, model)
    folder = tmp_path / "log" / "upsampling_results" / "pruned_and_projected"
    found = W.prototree_project(model, files, labels.tolist(), x, folder, batch_size=4)
    with torch.no_grad():
        latent = model.latent(x)
        for j, (i, r, c) in found.items():
            model.prototype_vectors[j, :, 0, 0] = latent[i, :, r, c]
    imported = import_push_folder(model, tmp_path / "log", data)
    listing = imagefolder_images(data)
    for j, (i, r, c) in found.items():
        source = imported.sources[j]
        assert source is not None and source.image_id == listing.relative[i] and source.map_location == (r, c)
        assert source.distance == pytest.approx(0, abs=1e-3)
    assert imported.checks["nearest-patch pictures whose size matches ProtoTree's box of the cell"] == len(found)
    (folder / "77_original_image.png").write_bytes((folder / "0_original_image.png").read_bytes())
    with pytest.raises(CheckpointError, match="decision node 77"):
        import_push_folder(model, tmp_path / "log", data)


def test_pipnet_table(tmp_path: Path) -> None:
    model = _family_model("pipnet")
    data = make_image_folder(tmp_path / "train_crop", seed=7)
    _unit, x, _labels, files = folder_tensors(data, model)
    names = [f"/home/someone/CUB/dataset/train_crop/{f.parent.name}/{f.name}" for f in files]
    table = tmp_path / "log" / "train_12_pipnet_prototypes_cub_topk.csv"
    table.parent.mkdir()
    top = W.pipnet_topk_table(model, names, x, table)
    imported = import_push_folder(model, tmp_path / "log", data)
    listing = imagefolder_images(data)
    assert imported.epoch == 12
    for j, source in enumerate(imported.sources):
        if j not in top:
            assert source is None
            continue
        assert source is not None and source.image_id == listing.relative[top[j]]
        assert source.rf_box is not None and source.map_location is not None


@pytest.mark.parametrize("text, message", [
    ("prototype,img\n", "expected the header"),
    ("prototype,img name,h_min_224,h_max_224,w_min_224,w_max_224\nx,a/0.png,0,32,0,32\n", "invalid literal"),
    ("prototype,img name,h_min_224,h_max_224,w_min_224,w_max_224\n99,a/0.png,0,32,0,32\n", "prototype 99"),
    ("prototype,img name,h_min_224,h_max_224,w_min_224,w_max_224\n0,a/0.png,0,32,0,300\n", "not inside"),
    ("prototype,img name,h_min_224,h_max_224,w_min_224,w_max_224\n0,a/0.png,0,32\n", "6 fields"),
])
def test_malformed_pipnet_tables(tmp_path: Path, text: str, message: str) -> None:
    model = _family_model("pipnet")
    data = make_image_folder(tmp_path / "data", per_class=1)
    (tmp_path / "train_3_pipnet_prototypes_cub_topk.csv").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        import_push_folder(model, tmp_path, data)


def test_link_from_the_run_folder_to_another_img_folder_is_refused(tmp_path: Path) -> None:
    model, run, data, _pushed = _pushed_protopnet(tmp_path)
    os.replace(run / "img", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", run / "img")
    with pytest.raises(CheckpointError, match="leads outside the push folder"):
        import_push_folder(model, run, data)
