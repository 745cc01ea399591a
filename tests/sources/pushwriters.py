"""Test writers of what the research repositories' push / projection code writes to disk.

Each writer runs the original algorithm (re-stated here, not copied) on a tiny protoviz model and writes
the same files, names, dtypes, shapes and columns as the original; they were checked against the
originals' real output in scratch (ProtoPNet ``push.py``, TesNet ``push.py``, ST-ProtoPNet
``push_support.py`` / ``push_trivial.py``, ProtoPool ``main.py``, ProtoTree ``project.py`` +
``upsample.py``, PIP-Net ``eval_cub_csv.get_topk_cub``). They return what the original keeps in memory
(image index, cell, boxes) so tests can compare the importer with it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

FieldInfo = tuple[float, float, float, float]  # ProtoPNet's proto_layer_rf_info: n, j, r, start


@dataclass
class Pushed:
    """What a push kept in memory: per prototype, image index (-1 if none), cell, box, rf box, distance."""

    image: np.ndarray
    cell: np.ndarray
    box: np.ndarray
    rf_box: np.ndarray
    distance: np.ndarray


def high_activation_crop(act: np.ndarray, percentile: float = 95) -> tuple[int, int, int, int]:
    """ProtoPNet's find_high_activation_crop: rows/cols holding a value >= the percentile."""
    mask = act >= np.percentile(act, percentile)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def rf_cell_box(info: FieldInfo, row: int, col: int, size: int) -> tuple[int, int, int, int]:
    """ProtoPNet's compute_rf_protoL_at_spatial_location."""
    _n, jump, field, start = info
    ch, cw = start + row * jump, start + col * jump
    return (max(int(ch - field / 2), 0), min(int(ch + field / 2), size),
            max(int(cw - field / 2), 0), min(int(cw + field / 2), size))


def tiny_cnn_field(image_size: int) -> FieldInfo:
    """compute_proto_layer_rf_info_v2 for protoviz's TinyCNN: four 3x3 stride-2 convs, one 3x3 conv, 1x1 prototypes."""
    n, jump, field, start = float(image_size), 1.0, 1.0, 0.5
    for kernel, stride, padding in [(3, 2, 1)] * 4 + [(3, 1, 1), (1, 1, 0)]:
        n = np.floor((n - kernel + 2 * padding) / stride) + 1
        start, field, jump = start + ((kernel - 1) / 2 - padding) * jump, field + (kernel - 1) * jump, jump * stride
    return n, jump, field, start


def protopnet_push(unit: torch.Tensor, labels: torch.Tensor, push_forward: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]],
                   activation: Callable[[np.ndarray], np.ndarray], class_of: np.ndarray, folder: Path | None,
                   epoch: int, field: FieldInfo, batch_size: int, png_style: str = "prefix",
                   eligible: np.ndarray | None = None, save_boxes: bool = True, minmax: bool = False,
                   overlay: tuple[float, float] = (0.5, 0.3),
                   mean: tuple[float, ...] = (0.485, 0.456, 0.406), std: tuple[float, ...] = (0.229, 0.224, 0.225)
                   ) -> tuple[Pushed, np.ndarray]:
    """ProtoPNet's push_prototypes + update_prototypes_on_batch over ``unit`` (N, 3, H, W) in [0, 1].

    push_forward: normalised images -> (latent to store (B, D, h, w), distances (B, P, h, w)) as numpy.
    activation: distances of one map -> the activation the push saves and draws boxes from.
    eligible: (P, C) bool (ProtoPool's class-to-prototype map); default one-hot of ``class_of``.
    png_style: 'prefix' (prototype-imgJ.png) or 'suffix' (ST-ProtoPNet: Jprototype-img.png); overlay: the
    weights of picture and heatmap in the *_with_self_act pictures (ST-ProtoPNet: 0.75, 0.25).
    save_boxes False + minmax True: ProtoPool (no bb files; normalised pictures rescaled to [0, 1]).
    Returns what the push kept and the new prototype vectors (P, D).
    """
    count = len(class_of)
    if eligible is None:
        eligible = np.zeros((count, int(class_of.max()) + 1), dtype=bool)
        eligible[np.arange(count), class_of] = True
    best = np.full(count, np.inf)
    patches: list[np.ndarray | None] = [None] * count
    rows = np.full((count, 6), -1)
    rf_rows = np.full((count, 6), -1)
    cells = np.full((count, 2), -1)
    epoch_dir = None
    if folder is not None:
        epoch_dir = folder / f"epoch-{epoch}" if save_boxes else folder
        epoch_dir.mkdir(parents=True, exist_ok=True)
    size = unit.shape[-1]
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    for start in range(0, unit.shape[0], batch_size):
        raw = unit[start:start + batch_size]
        y = labels[start:start + batch_size].numpy()
        latent, dist = push_forward((raw - m) / s)
        shown = ((raw - m) / s) if minmax else raw
        for j in range(count):
            members = [i for i in range(len(y)) if eligible[j, y[i]]]
            if not members:
                continue
            dist_j = dist[members][:, j]
            low = np.amin(dist_j)
            if not low < best[j]:
                continue
            k, row, col = np.unravel_index(np.argmin(dist_j, axis=None), dist_j.shape)
            i = members[k]
            best[j], patches[j] = low, latent[i, :, row, col].copy()
            cells[j] = (row, col)
            rf = rf_cell_box(field, int(row), int(col), size)
            rf_rows[j] = (start + i, *rf, y[i])
            picture = shown[i].numpy().transpose(1, 2, 0)
            if minmax:
                picture = (picture - picture.min()) / (picture - picture.min()).max()
            act = activation(dist[i, j])
            upsampled = cv2.resize(act, dsize=(size, size), interpolation=cv2.INTER_CUBIC)
            box = high_activation_crop(upsampled)
            rows[j] = (start + i, *box, y[i])
            if epoch_dir is not None:
                _save_pictures(epoch_dir, j, png_style, act, picture, upsampled, rf, box, overlay)
    if epoch_dir is not None and save_boxes:
        np.save(epoch_dir / f"bb-receptive_field{epoch}.npy", rf_rows)
        np.save(epoch_dir / f"bb{epoch}.npy", rows)
    vectors = np.stack([p if p is not None else np.zeros_like(next(q for q in patches if q is not None))
                        for p in patches])
    pushed = Pushed(rows[:, 0], cells, rows[:, 1:5], rf_rows[:, 1:5], best)
    return pushed, vectors


def _save_pictures(folder: Path, j: int, style: str, act: np.ndarray, picture: np.ndarray, upsampled: np.ndarray,
                   rf: tuple[int, int, int, int], box: tuple[int, int, int, int], weights: tuple[float, float]) -> None:
    def name(kind: str) -> str:
        return f"prototype-img{kind}{j}.png" if style == "prefix" else f"{j}prototype-img{kind}.png"

    np.save(folder / f"prototype-self-act{j}.npy", act)
    plt.imsave(folder / name("-original"), picture, vmin=0.0, vmax=1.0)
    scaled = (upsampled - upsampled.min()) / (upsampled - upsampled.min()).max()
    heat = np.float32(cv2.applyColorMap(np.uint8(255 * scaled), cv2.COLORMAP_JET)) / 255
    overlay = np.clip(weights[0] * picture + weights[1] * heat[..., ::-1], 0, 1)
    plt.imsave(folder / name("-original_with_self_act"), overlay, vmin=0.0, vmax=1.0)
    if (rf[1] - rf[0], rf[3] - rf[2]) != picture.shape[:2]:
        plt.imsave(folder / name("-receptive_field"), picture[rf[0]:rf[1], rf[2]:rf[3]], vmin=0.0, vmax=1.0)
        plt.imsave(folder / name("-receptive_field_with_self_act"), overlay[rf[0]:rf[1], rf[2]:rf[3]],
                   vmin=0.0, vmax=1.0)
    plt.imsave(folder / name(""), picture[box[0]:box[1], box[2]:box[3]], vmin=0.0, vmax=1.0)


# ----- the families' push_forward -----------------------------------------------------------------
def protopnet_forward(model: torch.nn.Module) -> Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]:
    """ProtoPNet's push_forward: add-on output and ReLU(x^2 - 2xp + p^2) (one prototype set)."""
    def forward(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            z = model.add_on_layers(model.features(x))
            p = model.prototype_vectors
            x2 = F.conv2d(z ** 2, torch.ones_like(p))
            p2 = (p ** 2).sum(dim=(1, 2, 3)).view(-1, 1, 1)
            d = F.relu(x2 + (-2 * F.conv2d(z, p) + p2))
        return z.numpy(), d.numpy()
    return forward


def tesnet_forward(model: torch.nn.Module) -> Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]:
    """TesNet's push_forward: add-on output and minus its projection on the unit prototypes."""
    def forward(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            z = model.add_on_layers(model.features(x))
            d = -F.conv2d(z, F.normalize(model.prototype_vectors, p=2, dim=1))
        return z.numpy(), d.numpy()
    return forward


def st_forward(model: torch.nn.Module, name: str) -> Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray]]:
    """ST-ProtoPNet's push_forward_{support,trivial}: normalised latent; minus cos (full) or projection (cropped)."""
    def forward(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            z = getattr(model, f"add_on_layers_{name}")(model.features(x))
            p = F.normalize(getattr(model, f"prototype_vectors_{name}"), p=2, dim=1)
            similarity = F.conv2d(F.normalize(z, p=2, dim=1) if model.config.variant == "full" else z, p)
        return F.normalize(z, p=2, dim=1).numpy(), (-similarity).numpy()
    return forward


def log_activation(d: np.ndarray) -> np.ndarray:
    return np.log((d + 1) / (d + 1e-4))


def negative(d: np.ndarray) -> np.ndarray:
    return -d


# ----- ProtoTree ----------------------------------------------------------------------------------
def prototree_project(model: torch.nn.Module, files: list[Path], labels: list[int], normalised: torch.Tensor,
                      folder: Path, batch_size: int, threshold: float = 0.98) -> dict[int, tuple[int, int, int]]:
    """ProtoTree's project_with_class_constraints + upsample: writes N_original_image.png, N_nearest_patch_of_image.png
    (and a heatmap picture) per decision node N; returns {prototype: (image index, row, col)}."""
    tree = model.config.tree
    winners = model.leaf_distributions().argmax(dim=1).tolist()
    allowed: dict[int, set[int]] = {}
    for node in tree:
        if "prototype" in node:
            stack, classes = [node["left"], node["right"]], set()
            while stack:
                child = tree[stack.pop()]
                if "leaf" in child:
                    classes.add(winners[child["leaf"]])
                else:
                    stack += [child["left"], child["right"]]
            allowed[node["prototype"]] = classes
    best: dict[int, tuple[float, int, int]] = {}
    with torch.no_grad():
        for start in range(0, len(files), batch_size):
            d = model.distance_maps(normalised[start:start + batch_size])
            for j, classes in allowed.items():
                for b in range(d.shape[0]):
                    if labels[start + b] not in classes:
                        continue
                    low, where = d[b, j].min(), int(d[b, j].argmin())
                    if j not in best or low < best[j][0]:
                        best[j] = (float(low), start + b, where)
    folder.mkdir(parents=True, exist_ok=True)
    width = model.map_size()[1]
    found = {}
    for node in tree:
        if "prototype" not in node or node["prototype"] not in best:
            continue
        j = node["prototype"]
        _low, index, where = best[j]
        found[j] = (index, where // width, where % width)
        with Image.open(files[index]) as original:
            original.save(folder / f"{node['index']}_original_image.png")
            x = np.float32(np.asarray(original)) / 255
        mask = np.zeros(model.map_size())
        mask[where // width, where % width] = 1
        up = cv2.resize(mask, dsize=(x.shape[1], x.shape[0]), interpolation=cv2.INTER_CUBIC)
        rows, cols = np.flatnonzero((up > 1 - threshold).any(axis=1)), np.flatnonzero((up > 1 - threshold).any(axis=0))
        plt.imsave(folder / f"{node['index']}_nearest_patch_of_image.png",
                   x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], vmin=0.0, vmax=1.0)
        plt.imsave(folder / f"{node['index']}_masked_upsampled_heatmap.png", up, vmin=0.0, vmax=1.0)
    return found


# ----- PIP-Net ------------------------------------------------------------------------------------
def pipnet_topk_table(model: torch.nn.Module, names: list[str], normalised: torch.Tensor, path: Path, k: int = 3,
                      patch: int = 32) -> dict[int, int]:
    """PIP-Net's get_topk_cub: per relevant prototype its k best images by pooled score (ties: first), with the
    patch box of each image's best cell; returns {prototype: top image index}."""
    with torch.no_grad():
        maps = model.similarity_maps(normalised)  # (N, P, h, w)
    pooled = maps.flatten(2).amax(dim=2)
    size, width = normalised.shape[-1], maps.shape[-1]
    skip = round((size - patch) / (width - 1))
    weights = model.classification_weight.detach()
    rows, top = [], {}
    for p in range(maps.shape[1]):
        if float(weights[:, p].max()) <= 1e-5:
            continue
        order = sorted(range(maps.shape[0]), key=lambda i: -float(pooled[i, p]))[:k]
        top[p] = order[0]
        for i in order:
            column_max, column_row = maps[i, p].max(dim=0)
            col = int(column_max.argmax())
            row = int(column_row[col])
            h0, h1 = row * skip, min(size, row * skip + patch)
            w0, w1 = col * skip, min(size, col * skip + patch)
            if row == maps.shape[2] - 1:
                h1 = size
            if col == width - 1:
                w1 = size
            if h1 == size:
                h0 = size - patch
            if w1 == size:
                w0 = size - patch
            rows.append([p, names[i], h0, h1, w0, w1])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=",")
        writer.writerow(["prototype", "img name", "h_min_224", "h_max_224", "w_min_224", "w_max_224"])
        writer.writerows(rows)
    return top
