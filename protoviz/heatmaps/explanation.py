""""This looks like that": which prototypes an image activates, where, and how much each contributes.

For the explained class c of an image (the predicted one unless another is asked for), prototype j
contributes ``contribution_j = similarity_j * class_weights[c, j]`` as the family's head reads it
(:mod:`protoviz.heatmaps.decision`: PIP-Net counts only present prototypes); for the linear-head
families the sum of all P contributions is the class logit. :func:`explain_image` runs one batched
forward pass for all images, takes the top-k positive ("evidence for") and top-k negative ("evidence
against") contributions, upsamples their similarity maps to the input size (bicubic, as ProtoPNet) and
finds their 95th-percentile boxes, all as batched tensor ops. :class:`Decision` is the whole class score
as a waterfall: the shown cards, the other prototypes (or leaves, for ProtoTree) and any bias.
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
from protoviz.heatmaps.decision import DecisionTerms, decision_terms, softmax_or_probabilities
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeModel, PrototypeSource

Box = tuple[int, int, int, int]
UPSCALE_WARNING = 4.0  # warn when an image is enlarged at least this much to reach the model's input


@dataclass(frozen=True)
class PrototypeEvidence:
    """One prototype's part in an image's decision.

    heatmap: (H, W) float32 similarity map upsampled to the model input; box: (y0, y1, x0, x1)
    end-exclusive 95th-percentile box in input pixels; map_location: (row, col) of the maximum on
    the (h, w) similarity map. ``side``: 'for' (positive contribution) or 'against' (negative).
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
    side: str = "for"

    @property
    def heat_range(self) -> tuple[float, float]:
        """(min, max) of the heatmap: what its colour scale runs from and to."""
        return float(np.min(self.heatmap)), float(np.max(self.heatmap))

    def as_record(self) -> dict[str, Any]:
        """JSON-able summary (no arrays)."""
        return {
            "side": self.side, "rank": self.rank, "prototype": self.index, "prototype_class": self.prototype_class,
            "prototype_class_name": self.prototype_class_name, "similarity": self.similarity,
            "weight": self.weight, "contribution": self.contribution, "box_y0_y1_x0_x1": list(self.box),
            "map_location": list(self.map_location),
            "source_image": self.source.image_id if self.source is not None else None,
            "source_box": list(self.source.box) if self.source is not None else None,
            "source_push_box": list(self.source.push_box) if self.source and self.source.push_box else None,
        }


@dataclass(frozen=True)
class DecisionStep:
    """One bar of the waterfall: ``kind`` 'for', 'against', 'other' or 'offset'."""

    label: str
    value: float
    kind: str


@dataclass(frozen=True)
class Decision:
    """A class score as a waterfall: the shown cards' terms, then the rest, adding up to ``score``.

    ``unit`` is what the terms are ('prototype', or 'leaf' for ProtoTree); ``other_positive`` /
    ``other_negative`` split the terms not shown by sign; ``reading`` says how the family decides.
    """

    class_name: str
    score: float
    score_name: str
    unit: str
    steps: tuple[DecisionStep, ...]
    other_count: int
    other_positive: float
    other_negative: float
    reading: str

    @property
    def total(self) -> float:
        """Sum of the steps (equals :attr:`score` up to rounding)."""
        return float(sum(step.value for step in self.steps))

    def shown(self, kind: str) -> float:
        return float(sum(step.value for step in self.steps if step.kind == kind))

    def sentence(self) -> str:
        """Plain words: what the shown cards add, what the rest adds, and why they differ from the score."""
        units = "prototypes" if self.unit == "prototype" else "leaves"
        count_for = sum(step.kind == "for" for step in self.steps)
        count_against = sum(step.kind == "against" for step in self.steps)
        parts = [f"the {count_for} {units} shown as evidence for add {self.shown('for'):+.3f}"]
        if count_against:
            parts.append(f"the {count_against} against add {self.shown('against'):+.3f}")
        parts.append(f"the other {self.other_count} {units} add {self.shown('other'):+.3f} "
                     f"({self.other_positive:+.3f} from those raising it, {self.other_negative:+.3f} from those "
                     "lowering it)")
        offset = self.shown("offset")
        if offset:
            parts.append(f"the rest of the head (a bias) adds {offset:+.3f}")
        text = ("; ".join(parts) + f": together the {self.score_name} of '{self.class_name}', {self.score:.3f}.")
        text = text[0].upper() + text[1:]
        if self.shown("for") > self.score and self.other_negative < 0:
            text += (f" The cards for add up to more than the score because the {self.other_count} other {units} "
                     f"pull it down by {-self.other_negative:.3f} in many small steps" +
                     (" (the last layer connects every prototype to every class, usually with a negative weight "
                      "to the classes it does not belong to)." if self.unit == "prototype" else "."))
        return text

    def as_record(self) -> dict[str, Any]:
        return {"class": self.class_name, "score": self.score, "score_name": self.score_name, "unit": self.unit,
                "steps": [vars(step) for step in self.steps], "other_count": self.other_count,
                "other_positive": self.other_positive, "other_negative": self.other_negative,
                "reading": self.reading}


@dataclass(frozen=True)
class ImageExplanation:
    """The explanation of one image by one model.

    image: (H, W, 3) uint8, the image as the model saw it (resized). logits / probabilities: (C,).
    ``explained``: the class whose score is explained (the predicted one unless asked otherwise).
    similarities / weights / contributions: (P,) max similarity of every prototype, its weight for the
    explained class and its contribution; prototype_classes: (P,) the class each prototype belongs to
    (argmax of its identity row). top_classes: up to 5 (class index, name, probability), best first.
    prototypes: evidence for (largest positive contributions first); against: evidence against (most
    negative first). source_size: (h, w) of the image before resizing, when known; warnings: what
    the reader should know about this result (e.g. a tiny image enlarged many times).
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
    explained: int = -1
    against: list[PrototypeEvidence] = field(default_factory=list)
    decision: Decision | None = None
    source_size: tuple[int, int] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def explained_class(self) -> int:
        return self.predicted if self.explained < 0 else self.explained

    @property
    def predicted_name(self) -> str:
        return self.class_names[self.predicted]

    @property
    def explained_name(self) -> str:
        return self.class_names[self.explained_class]

    @property
    def class_logit(self) -> float:
        """Score of the explained class (a probability for ProtoTree)."""
        return float(self.logits[self.explained_class])

    @property
    def total_contribution(self) -> float:
        """Sum of all P contributions (equals :attr:`class_logit` for linear-head families)."""
        return float(self.contributions.astype(np.float64).sum())

    @property
    def sums_to_logit(self) -> bool:
        """True when all contributions add up to the class score, i.e. the family's reading has no offset
        (ProtoPNet, TesNet, ST-ProtoPNet, ProtoPool, PIP-Net without bias); False for ProtoTree or a bias."""
        logit = self.class_logit
        return bool(abs(self.total_contribution - logit) <= 1e-4 * (1.0 + abs(logit)))

    @property
    def shown_contribution(self) -> float:
        """Sum of the contributions of the evidence-for cards."""
        return float(sum(p.contribution for p in self.prototypes))

    @property
    def cards(self) -> list[PrototypeEvidence]:
        """Evidence for, then evidence against."""
        return [*self.prototypes, *self.against]

    def contribution_rows(self) -> list[dict[str, Any]]:
        """One row per prototype (all P), for a CSV: similarity x weight = contribution, and its rank."""
        ranks = {p.index: p.rank for p in self.prototypes}
        against = {p.index: p.rank for p in self.against}
        return [{"image": self.name, "predicted_class": self.predicted_name, "explained_class": self.explained_name,
                 "prototype": j, "prototype_class": self.class_names[int(self.prototype_classes[j])],
                 "similarity": float(self.similarities[j]), "weight": float(self.weights[j]),
                 "contribution": float(self.contributions[j]), "rank_for": ranks.get(j),
                 "rank_against": against.get(j)}
                for j in range(len(self.contributions))]

    def as_record(self) -> dict[str, Any]:
        """JSON-able summary: prediction, top classes, evidence for and against, the waterfall, settings."""
        return {
            "image": self.name, "predicted_class": self.predicted, "predicted_name": self.predicted_name,
            "explained_class": self.explained_class, "explained_name": self.explained_name,
            "class_logit": self.class_logit, "sum_of_all_contributions": self.total_contribution,
            "sum_of_shown_contributions": self.shown_contribution, "sums_to_logit": self.sums_to_logit,
            "top_classes": [{"class": c, "name": n, "probability": p} for c, n, p in self.top_classes],
            "prototypes": [p.as_record() for p in self.prototypes],
            "against": [p.as_record() for p in self.against],
            "decision": self.decision.as_record() if self.decision is not None else None,
            "source_size": list(self.source_size) if self.source_size else None, "warnings": list(self.warnings),
            "settings": self.settings,
        }


def upscale_warning(source_size: tuple[int, int], input_size: tuple[int, int]) -> str | None:
    """A warning when an image of (h, w) ``source_size`` is enlarged >= :data:`UPSCALE_WARNING` times to
    the model's (H, W) ``input_size``; None otherwise."""
    (h, w), (big_h, big_w) = source_size, input_size
    factor = max(big_h / max(1, h), big_w / max(1, w))
    if factor < UPSCALE_WARNING:
        return None
    return (f"The image is {w}x{h} px, far smaller than the model's {big_w}x{big_h} input: it was enlarged "
            f"{factor:.0f}x, so the model sees interpolated pixels and the prediction says little about it.")


def explain_image(model: PrototypeModel, images: Tensor | Sequence[Image.Image], top_k: int = 10,
                  names: Sequence[str] | None = None, percentile: float = 95.0,
                  num_classes_shown: int = 5, target: int | Sequence[int | None] | None = None
                  ) -> list[ImageExplanation]:
    """Explain each image: top classes, its top-k evidence for and against the explained class, the waterfall.

    images: normalised (B, 3, H, W) on any device, or a list of RGB PIL images (preprocessed with the
    model's own input spec). ``target``: the class to explain (one for all, or one per image; None =
    the predicted class). One forward pass for the batch; no Python loop over prototypes.
    """
    batch = _as_batch(model, images)
    count = batch.shape[0]
    labels = list(names) if names is not None else [f"image {i}" for i in range(count)]
    if len(labels) != count:
        raise ConfigError(f"got {len(labels)} names for {count} images")
    top_k = max(1, min(int(top_k), model.num_prototypes))
    with torch.no_grad():
        output = model(batch)
        probs = softmax_or_probabilities(model, output.logits.float())
        predicted = probs.argmax(dim=1)
        explained = _targets(target, predicted, model.num_classes)
        terms = decision_terms(model, output, explained)
        if terms.unit == "prototype":
            weights, contributions = terms.weights.float(), terms.values.float()
        else:  # ProtoTree: a guide, similarity x (1 where the prototype leads to the class)
            weights = model.class_weights.float()[explained]
            contributions = output.max_similarities.float() * weights
        order = torch.cat([contributions.topk(top_k, dim=1).indices, (-contributions).topk(top_k, dim=1).indices], 1)
        picked = output.similarity_maps.float().gather(
            1, order[:, :, None, None].expand(-1, -1, *output.similarity_maps.shape[-2:]))
        heatmaps = upsample_maps(picked, (int(batch.shape[-2]), int(batch.shape[-1])))  # (B, 2k, H, W)
        boxes = percentile_boxes(heatmaps, percentile)  # (B, 2k, 4)
        locations = map_argmax(picked)  # (B, 2k, 2)
        shown = denormalize(batch, model.input_spec)
    settings = {"top_k": top_k, "percentile": percentile, "upsampling": "bicubic (OpenCV INTER_CUBIC)",
                "device": str(batch.device), "input_size": list(batch.shape[-2:]),
                "checkpoint_sha256": model.metadata.get("checkpoint_sha256"), "reading": terms.unit}
    arrays = _to_numpy(scores=output.logits.float(), probs=probs, predicted=predicted, explained=explained,
                       weights=weights, sims=output.max_similarities.float(), contributions=contributions,
                       order=order, heatmaps=heatmaps, boxes=boxes, locations=locations,
                       terms=terms.values.double(), offset=terms.offset.double())
    identity = model.prototype_class_identity.argmax(dim=1).cpu().numpy()
    map_size = (int(output.similarity_maps.shape[-2]), int(output.similarity_maps.shape[-1]))
    sizes = [(im.height, im.width) for im in images] if not isinstance(images, Tensor) else [None] * count
    return [_one(model, i, labels[i], to_uint8_image(shown[i]), arrays, terms, identity, map_size, percentile,
                 num_classes_shown, top_k, settings, sizes[i]) for i in range(count)]


def _targets(target: int | Sequence[int | None] | None, predicted: Tensor, num_classes: int) -> Tensor:
    if target is None:
        return predicted
    wanted = [target] * len(predicted) if isinstance(target, int) else list(target)
    if len(wanted) != len(predicted):
        raise ConfigError(f"got {len(wanted)} target classes for {len(predicted)} images")
    for value in wanted:
        if value is not None and not 0 <= int(value) < num_classes:
            raise ConfigError(f"target class {value} is not one of the model's {num_classes} classes")
    picked = [int(p) if t is None else int(t) for t, p in zip(wanted, predicted.tolist(), strict=True)]
    return torch.tensor(picked, dtype=torch.long, device=predicted.device)


def _as_batch(model: PrototypeModel, images: Tensor | Sequence[Image.Image]) -> Tensor:
    if isinstance(images, Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ModelError(f"expected normalised images (B, 3, H, W), got {tuple(images.shape)}")
        return images.to(model.device)
    if len(images) == 0:
        raise ConfigError("no images to explain")
    return preprocess(list(images), model.input_spec).to(model.device)


def _to_numpy(**tensors: Tensor) -> dict[str, np.ndarray]:
    return {key: value.detach().cpu().numpy() for key, value in tensors.items()}


def _evidence(model: PrototypeModel, arrays: dict[str, np.ndarray], identity: np.ndarray, i: int, slots: range,
              side: str) -> list[PrototypeEvidence]:
    """Records of the picked prototypes in ``slots`` of ``order`` whose contribution has ``side``'s sign."""
    sources = model.prototype_sources
    found: list[PrototypeEvidence] = []
    for slot in slots:  # top-k records, not a tensor loop
        j = int(arrays["order"][i, slot])
        value = float(arrays["contributions"][i, j])
        if (value <= 0) if side == "for" else (value >= 0):
            continue
        cls = int(identity[j])
        found.append(PrototypeEvidence(
            rank=len(found) + 1, index=j, prototype_class=cls, prototype_class_name=model.class_names[cls],
            similarity=float(arrays["sims"][i, j]), weight=float(arrays["weights"][i, j]), contribution=value,
            heatmap=arrays["heatmaps"][i, slot], box=tuple(int(v) for v in arrays["boxes"][i, slot]),  # type: ignore[arg-type]
            map_location=(int(arrays["locations"][i, slot, 0]), int(arrays["locations"][i, slot, 1])),
            source=sources[j] if j < len(sources) else None, side=side,
        ))
    return found


def _decision(arrays: dict[str, np.ndarray], terms: DecisionTerms, i: int, class_name: str,
              shown: list[PrototypeEvidence], top_k: int) -> Decision:
    values = arrays["terms"][i]
    score = float(arrays["scores"][i, int(arrays["explained"][i])])
    if terms.unit == "prototype":
        steps = [DecisionStep(f"#{e.index} {e.prototype_class_name}", float(values[e.index]), e.side) for e in shown]
        used = {e.index for e in shown}
    else:
        best = [int(t) for t in np.argsort(-values, kind="stable")[:top_k] if values[t] > 0]
        steps = [DecisionStep(terms.labels[t], float(values[t]), "for") for t in best]
        used = set(best)
    rest = np.array([values[t] for t in range(len(values)) if t not in used], dtype=np.float64)
    units = "prototypes" if terms.unit == "prototype" else "leaves"
    steps.append(DecisionStep(f"{len(rest)} other {units}", float(rest.sum()), "other"))
    offset = float(arrays["offset"][i])
    if abs(offset) > 1e-4 * (1.0 + abs(score)):  # float32 rounding of P terms stays below this
        steps.append(DecisionStep("bias / rest of the head", offset, "offset"))
    return Decision(class_name=class_name, score=score, score_name=terms.score_name, unit=terms.unit,
                    steps=tuple(steps), other_count=len(rest), other_positive=float(rest[rest > 0].sum()),
                    other_negative=float(rest[rest < 0].sum()), reading=terms.reading)


def _one(model: PrototypeModel, i: int, name: str, image: np.ndarray, arrays: dict[str, np.ndarray],
         terms: DecisionTerms, identity: np.ndarray, map_size: tuple[int, int], percentile: float,
         num_classes_shown: int, top_k: int, settings: dict[str, Any], source_size: tuple[int, int] | None
         ) -> ImageExplanation:
    probs = arrays["probs"][i]
    best = np.argsort(-probs, kind="stable")[: max(1, min(num_classes_shown, len(probs)))]
    evidence_for = _evidence(model, arrays, identity, i, range(top_k), "for")
    evidence_against = _evidence(model, arrays, identity, i, range(top_k, 2 * top_k), "against")
    explained = int(arrays["explained"][i])
    warning = upscale_warning(source_size, model.input_spec.image_size) if source_size else None
    return ImageExplanation(
        name=name, image=image, class_names=model.class_names, logits=arrays["scores"][i],
        probabilities=probs, predicted=int(arrays["predicted"][i]),
        top_classes=[(int(c), model.class_names[int(c)], float(probs[c])) for c in best],
        similarities=arrays["sims"][i], weights=arrays["weights"][i], contributions=arrays["contributions"][i],
        prototype_classes=identity, prototypes=evidence_for, map_size=map_size, percentile=percentile,
        settings=settings, explained=explained, against=evidence_against,
        decision=_decision(arrays, terms, i, model.class_names[explained], evidence_for + evidence_against, top_k),
        source_size=source_size, warnings=(warning,) if warning else (),
    )
