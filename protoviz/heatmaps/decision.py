"""How each family's head turns the prototypes' pooled similarities into a class score, as additive terms.

A *reading* splits the score of class c for each image into terms that add up to it exactly:

- linear heads (ProtoPNet, TesNet, ST-ProtoPNet, ProtoPool, Deformable): one term per prototype,
  ``similarity_j x weight[c, j]``; whatever the head adds beyond them (a bias) is the ``offset``.
- PIP-Net: one term per prototype, but a prototype counts only when *present*: its pooled score is
  zeroed below the inference threshold (0.1 in the original), then times its non-negative weight;
  the offset is the bias, if the head has one.
- ProtoTree: the class *probability* is a sum over leaves of (probability of reaching the leaf) x
  (the leaf's probability for the class): one term per leaf.

Readings are registered by family name (:func:`register_reading`); families without one use the
linear reading, whose offset then shows how far the head is from a plain linear layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.errors import ConfigError
from protoviz.models.base import PrototypeModel, PrototypeOutput
from protoviz.models.prototree import ProtoTree


@dataclass(frozen=True)
class DecisionTerms:
    """The score of one class per image, split into terms.

    values: (B, T) the terms; factors, weights: (B, T) the two numbers each term multiplies (a
    similarity and a class weight, or a path probability and a leaf's class probability); scores: (B,)
    the class score; offset: (B,) ``scores - values.sum(1)`` (a bias, or what a non-linear head adds).
    unit: 'prototype' (T = P) or 'leaf' (T = L); labels: T names; score_name: 'logit' or 'probability';
    reading: one sentence saying how the family decides.
    """

    values: Tensor
    factors: Tensor
    weights: Tensor
    scores: Tensor
    offset: Tensor
    unit: str
    labels: tuple[str, ...]
    score_name: str
    reading: str


Reading = Callable[[PrototypeModel, PrototypeOutput, Tensor], DecisionTerms]
_READINGS: dict[str, Reading] = {}


def register_reading(family: str) -> Callable[[Reading], Reading]:
    """Decorator: the reading of ``family`` (raises on a second registration)."""
    def add(reading: Reading) -> Reading:
        if family in _READINGS:
            raise ConfigError(f"a decision reading for {family!r} is already registered")
        _READINGS[family] = reading
        return reading
    return add


def decision_terms(model: PrototypeModel, output: PrototypeOutput, classes: Tensor) -> DecisionTerms:
    """The score of class ``classes[b]`` (B,) of each image, split into the family's terms."""
    reading = _READINGS.get(model.family, linear_reading)
    return reading(model, output, classes.to(output.logits.device))


def _terms(factors: Tensor, weights: Tensor, scores: Tensor, unit: str, labels: tuple[str, ...], score_name: str,
           reading: str) -> DecisionTerms:
    values = factors * weights
    offset = scores - values.double().sum(dim=1).to(scores.dtype)
    return DecisionTerms(values, factors, weights, scores, offset, unit, labels, score_name, reading)


def _pick(logits: Tensor, classes: Tensor) -> Tensor:
    return logits.gather(1, classes[:, None])[:, 0]


def linear_reading(model: PrototypeModel, output: PrototypeOutput, classes: Tensor) -> DecisionTerms:
    """score_c = sum_j max-similarity_j x weight[c, j] (+ whatever the head adds: the offset)."""
    weights = model.class_weights.detach().to(output.logits.dtype)[classes]
    labels = tuple(f"prototype {j}" for j in range(weights.shape[1]))
    return _terms(output.max_similarities, weights, _pick(output.logits, classes), "prototype", labels, "logit",
                  "The class score (logit) is the sum over all prototypes of similarity x class weight; "
                  "the prediction is the class with the highest score (softmax turns score differences into "
                  "probabilities, so a winning score can be negative).")


@register_reading("pipnet")
def pipnet_reading(model: PrototypeModel, output: PrototypeOutput, classes: Tensor) -> DecisionTerms:
    """PIP-Net: prototypes below the inference threshold are absent (0); score = sum present x relu(W) + bias."""
    threshold = float(getattr(model.config, "inference_threshold", 0.0))
    pooled = output.max_similarities
    present = torch.where(pooled < threshold, torch.zeros_like(pooled), pooled)
    weights = model.class_weights.detach().to(output.logits.dtype)[classes]
    labels = tuple(f"prototype {j}" for j in range(weights.shape[1]))
    return _terms(present, weights, _pick(output.logits, classes), "prototype", labels, "logit",
                  f"PIP-Net counts a prototype only where it is present: its pooled presence score (0 to 1) must "
                  f"reach {threshold:g}, else it adds nothing; the class score is the sum of present score x "
                  "non-negative class weight (plus the bias, if any); the class with the most evidence wins.")


@register_reading("prototree")
def prototree_reading(model: PrototypeModel, output: PrototypeOutput, classes: Tensor) -> DecisionTerms:
    """ProtoTree: P(c) = sum over leaves of P(reach leaf) x leaf distribution[c]."""
    tree = cast(ProtoTree, model)
    paths = tree.path_probabilities(output.max_similarities)
    leaves = tree.leaf_distributions().detach().to(paths.dtype)
    weights = leaves.t()[classes]  # (B, L)
    numbers = {int(node["leaf"]): int(node["index"]) for node in tree.config.tree if "leaf" in node}
    labels = tuple(f"leaf {numbers.get(row, row)}" for row in range(leaves.shape[0]))
    return _terms(paths, weights, _pick(output.logits, classes), "leaf", labels, "probability",
                  "ProtoTree routes the image through a tree of prototypes: at each branch it goes right with the "
                  "probability given by its prototype's similarity (present) and left otherwise. A class's "
                  "probability is the sum over leaves of (probability of reaching the leaf) x (the leaf's "
                  "probability for the class).")


def softmax_or_probabilities(model: PrototypeModel, scores: Tensor) -> Tensor:
    """Class probabilities (B, C) from the head's output, whatever its ``output_kind``."""
    if model.output_kind == "probs":
        return scores
    if model.output_kind == "log_probs":
        return scores.exp()
    return F.softmax(scores, dim=1)
