""""This looks like that": which prototypes an image activates, where, and how much each contributes.

For the predicted class c of an image, prototype j contributes
``contribution_j = max_similarity_j * class_weights[c, j]``; for the linear-head families the sum of
all P contributions is the class logit. :func:`explain_image` runs one batched forward pass for all
images, ranks prototypes by contribution, upsamples the top-k similarity maps to the input size
(bicubic, as ProtoPNet) and finds their 95th-percentile boxes, all as batched tensor ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protoviz.data.transforms import denormalize, preprocess, to_uint8_image
from protoviz.errors import ConfigError, ModelError
from protoviz.heatmaps.boxes import map_argmax, percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeModel, PrototypeSource

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PrototypeEvidence:
    """One prototype's part in an image's decision.

    heatmap: (H, W) float32 similarity map upsampled to the model input; box: (y0, y1, x0, x1)
    end-exclusive 95th-percentile box in input pixels; map_location: (row, col) of the maximum on
    the (h, w) similarity map.
    """

    rank: int
    index: int
    prototype_class: int
    prototype_class_name: str
    similarity: float
    weight: float
    contribution: float
    heatmap: np.ndarray
    box: Box
    map_location: tuple[int, int]
    source: PrototypeSource | None

    def as_record(self) -> dict[str, Any]:
        """JSON-able summary (no arrays)."""
        return {
            "rank": self.rank, "prototype": self.index, "prototype_class": self.prototype_class,
            "prototype_class_name": self.prototype_class_name, "similarity": self.similarity,
            "weight": self.weight, "contribution": self.contribution, "box_y0_y1_x0_x1": list(self.box),
            "map_location": list(self.map_location),
            "source_image": self.source.image_id if self.source is not None else None,
            "source_box": list(self.source.box) if self.source is not None else None,
            "source_push_box": list(self.source.push_box) if self.source and self.source.push_box else None,
        }


@dataclass(frozen=True)
class ImageExplanation:
    """The explanation of one image by one model.

    image: (H, W, 3) uint8, the image as the model saw it (resized). logits / probabilities: (C,).
    similarities / weights / contributions: (P,) max similarity of every prototype, its last-layer
    weight for the predicted class and its contribution; prototype_classes: (P,) the class each
    prototype belongs to (argmax of its identity row). top_classes: up to 5 (class index, name, probability), best first.
    """

    name: str
    image: np.ndarray
    class_names: tuple[str, ...]
    logits: np.ndarray
    probabilities: np.ndarray
    predicted: int
    top_classes: list[tuple[int, str, float]]
    similarities: np.ndarray
    weights: np.ndarray
    contributions: np.ndarray
    prototype_classes: np.ndarray
    prototypes: list[PrototypeEvidence]
    map_size: tuple[int, int]
    percentile: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def predicted_name(self) -> str:
        return self.class_names[self.predicted]

    @property
    def class_logit(self) -> float:
        return float(self.logits[self.predicted])

    @property
    def total_contribution(self) -> float:
        """Sum of all P contributions (equals :attr:`class_logit` for linear-head families)."""
        return float(self.contributions.astype(np.float64).sum())

    @property
    def sums_to_logit(self) -> bool:
        """True when all contributions add up to the class score, i.e. the head is linear without bias
        (ProtoPNet, TesNet, ST-ProtoPNet, ProtoPool); False for e.g. ProtoTree or PIP-Net's thresholded head."""
        logit = self.class_logit
        return bool(abs(self.total_contribution - logit) <= 1e-4 * (1.0 + abs(logit)))

    @property
    def shown_contribution(self) -> float:
        """Sum of the contributions of the top-k prototypes listed."""
        return float(sum(p.contribution for p in self.prototypes))

    def contribution_rows(self) -> list[dict[str, Any]]:
        """One row per prototype (all P), for a CSV: similarity x weight = contribution, and its rank."""
        ranks = {p.index: p.rank for p in self.prototypes}
        return [{"image": self.name, "predicted_class": self.predicted_name, "prototype": j,
                 "prototype_class": self.class_names[int(self.prototype_classes[j])],
                 "similarity": float(self.similarities[j]), "weight": float(self.weights[j]),
                 "contribution": float(self.contributions[j]), "top_k_rank": ranks.get(j)}
                for j in range(len(self.contributions))]

    def as_record(self) -> dict[str, Any]:
        """JSON-able summary: prediction, top classes, top prototypes and how it was computed."""
        return {
            "image": self.name, "predicted_class": self.predicted, "predicted_name": self.predicted_name,
            "class_logit": self.class_logit, "sum_of_all_contributions": self.total_contribution,
            "sum_of_shown_contributions": self.shown_contribution, "sums_to_logit": self.sums_to_logit,
            "top_classes": [{"class": c, "name": n, "probability": p} for c, n, p in self.top_classes],
            "prototypes": [p.as_record() for p in self.prototypes], "settings": self.settings,
        }


def explain_image(model: PrototypeModel, images: Tensor | Sequence[Image.Image], top_k: int = 10,
                  names: Sequence[str] | None = None, percentile: float = 95.0,
                  num_classes_shown: int = 5) -> list[ImageExplanation]:
    """Explain each image: top classes, and its top-k prototypes by contribution to the predicted class.

    images: normalised (B, 3, H, W) on any device, or a list of RGB PIL images (preprocessed with the
    model's own input spec). One forward pass for the batch; no Python loop over prototypes.
    """
    batch = _as_batch(model, images)
    count = batch.shape[0]
    labels = list(names) if names is not None else [f"image {i}" for i in range(count)]
    if len(labels) != count:
        raise ConfigError(f"got {len(labels)} names for {count} images")
    top_k = max(1, min(int(top_k), model.num_prototypes))
    with torch.no_grad():
        output = model(batch)
        scores = output.logits.float()
        probs = _probabilities(model, scores)
        predicted = probs.argmax(dim=1)
        weights = model.class_weights.float()[predicted]  # (B, P)
        contributions = output.max_similarities.float() * weights
        order = contributions.topk(top_k, dim=1).indices  # (B, k)
        picked = output.similarity_maps.float().gather(
            1, order[:, :, None, None].expand(-1, -1, *output.similarity_maps.shape[-2:]))
        heatmaps = upsample_maps(picked, tuple(batch.shape[-2:]))  # (B, k, H, W)
        boxes = percentile_boxes(heatmaps, percentile)  # (B, k, 4)
        locations = map_argmax(picked)  # (B, k, 2)
        shown = denormalize(batch, model.input_spec)
    settings = {"top_k": top_k, "percentile": percentile, "upsampling": "bicubic (OpenCV INTER_CUBIC)",
                "device": str(batch.device), "input_size": list(batch.shape[-2:]),
                "checkpoint_sha256": model.metadata.get("checkpoint_sha256")}
    arrays = _to_numpy(scores=scores, probs=probs, predicted=predicted, weights=weights,
                       sims=output.max_similarities.float(), contributions=contributions, order=order,
                       heatmaps=heatmaps, boxes=boxes, locations=locations)
    identity = model.prototype_class_identity.argmax(dim=1).cpu().numpy()
    map_size = (int(output.similarity_maps.shape[-2]), int(output.similarity_maps.shape[-1]))
    return [_one(model, i, labels[i], to_uint8_image(shown[i]), arrays, identity, map_size, percentile,
                 num_classes_shown, settings) for i in range(count)]


def _as_batch(model: PrototypeModel, images: Tensor | Sequence[Image.Image]) -> Tensor:
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ModelError(f"expected normalised images (B, 3, H, W), got {tuple(images.shape)}")
        return images.to(model.device)
    if len(images) == 0:
        raise ConfigError("no images to explain")
    return preprocess(list(images), model.input_spec).to(model.device)


def _probabilities(model: PrototypeModel, scores: Tensor) -> Tensor:
    if model.output_kind == "probs":
        return scores
    if model.output_kind == "log_probs":
        return scores.exp()
    return scores.softmax(dim=1)


def _to_numpy(**tensors: Tensor) -> dict[str, np.ndarray]:
    return {key: value.detach().cpu().numpy() for key, value in tensors.items()}


def _one(model: PrototypeModel, i: int, name: str, image: np.ndarray, arrays: dict[str, np.ndarray],
         identity: np.ndarray, map_size: tuple[int, int], percentile: float, num_classes_shown: int,
         settings: dict[str, Any]) -> ImageExplanation:
    probs = arrays["probs"][i]
    best = np.argsort(-probs, kind="stable")[: max(1, min(num_classes_shown, len(probs)))]
    sources = model.prototype_sources
    evidence = []
    for rank, j in enumerate(arrays["order"][i].tolist()):  # top-k records, not a tensor loop
        cls = int(identity[j])
        evidence.append(PrototypeEvidence(
            rank=rank + 1, index=j, prototype_class=cls, prototype_class_name=model.class_names[cls],
            similarity=float(arrays["sims"][i, j]), weight=float(arrays["weights"][i, j]),
            contribution=float(arrays["contributions"][i, j]), heatmap=arrays["heatmaps"][i, rank],
            box=tuple(int(v) for v in arrays["boxes"][i, rank]),  # type: ignore[arg-type]
            map_location=(int(arrays["locations"][i, rank, 0]), int(arrays["locations"][i, rank, 1])),
            source=sources[j] if j < len(sources) else None,
        ))
    return ImageExplanation(
        name=name, image=image, class_names=model.class_names, logits=arrays["scores"][i],
        probabilities=probs, predicted=int(arrays["predicted"][i]),
        top_classes=[(int(c), model.class_names[int(c)], float(probs[c])) for c in best],
        similarities=arrays["sims"][i], weights=arrays["weights"][i], contributions=arrays["contributions"][i],
        prototype_classes=identity, prototypes=evidence,
        map_size=map_size, percentile=percentile, settings=settings,
    )
