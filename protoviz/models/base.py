"""The common interface every part-prototype model exposes, whatever its family.

Pages, metrics and explainers only talk to :class:`PrototypeModel`, so they work on every family
(native or imported from a research checkpoint).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from protoviz.errors import ModelError
from protoviz.models.labels import family_label, similarity_unit

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """How images must be prepared for a model: resized to ``image_size`` (H, W), then normalised."""

    image_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
        )


class FamilyConfig:
    """Mixin for frozen family configs with ``class_names`` and ``input`` fields: their JSON round trip."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        return {**data, "class_names": list(data["class_names"]), "input": self.input.to_dict()}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return cls(**{**data, "class_names": tuple(data["class_names"]), "input": InputSpec.from_dict(data["input"])})


@dataclass(frozen=True)
class PrototypeOutput:
    """What one batched forward pass gives.

    logits: (B, C) class scores (probabilities for families whose ``output_kind`` is ``probs``).
    similarity_maps: (B, P, h, w), higher = more similar.
    max_similarities: (B, P), the pooled similarity each prototype contributes to the head.
    """

    logits: Tensor
    similarity_maps: Tensor
    max_similarities: Tensor


@dataclass
class PrototypeSource:
    """Where a prototype came from after push (projection onto a training patch).

    image_id: dataset id, or the image's path relative to the dataset root (``/``-separated).
    box: (y0, y1, x0, x1), the high-activation box of the prototype's own similarity map on its source
        image (ProtoPNet's 95th percentile), end-exclusive, in model-input pixels.
    image_thumbnail: (h, w, 3) uint8, the source image as the model saw it, downsized.
    patch_thumbnail: (h, w, 3) uint8, the box region of the source image.
    map_location: (row, col) of the latent patch the prototype was projected onto.
    class_index: the source image's class.
    rf_box: (y0, y1, x0, x1) receptive field of the latent patch in model-input pixels, where known.
    push_box: (y0, y1, x0, x1) the high-activation box *as written by the original push*, where it was
        imported from a push folder. ProtoPNet's push draws it from the prototype *before* replacing it,
        so it can differ from ``box`` (see :attr:`boxes_differ`).
    distance: the latent distance between the prototype and its source patch as the family's push
        measures it (``distance_kind``); ~0 right after an L2 push.
    origin: how the source was found: ``push`` (protoviz's own training), ``push-folder`` (read from
        what the original push wrote) or ``projection`` (nearest patch on a training set).
    """

    image_id: str
    box: tuple[int, int, int, int]
    image_thumbnail: np.ndarray | None = None
    patch_thumbnail: np.ndarray | None = None
    map_location: tuple[int, int] | None = None
    class_index: int | None = None
    rf_box: tuple[int, int, int, int] | None = None
    push_box: tuple[int, int, int, int] | None = None
    distance: float | None = None
    distance_kind: str | None = None
    origin: str | None = None

    @property
    def boxes_differ(self) -> bool:
        """True when the original push wrote a box more than one pixel away from the model's own box."""
        if self.push_box is None:
            return False
        return max(abs(a - b) for a, b in zip(self.box, self.push_box, strict=True)) > 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record (thumbnails are stored separately); optional fields only when known."""
        record: dict[str, Any] = {
            "image_id": self.image_id,
            "box": list(self.box),
            "map_location": list(self.map_location) if self.map_location else None,
            "class_index": self.class_index,
        }
        optional = {"rf_box": self.rf_box, "push_box": self.push_box, "distance": self.distance,
                    "distance_kind": self.distance_kind, "origin": self.origin}
        for key, value in optional.items():
            if value is not None:
                record[key] = list(value) if isinstance(value, tuple) else value
        return record


@dataclass(frozen=True)
class ModelSummary:
    """What `protoviz info` and the Models page show about a model."""

    family: str
    backbone: str
    input_size: tuple[int, int]
    num_prototypes: int
    num_classes: int
    map_size: tuple[int, int]
    similarity: str
    output_kind: str
    prototype_groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    num_parameters: int = 0
    settings: dict[str, str] = field(default_factory=dict)  # family-specific choices, e.g. ProtoPool's slots
    family_label: str = ""  # the method's name, e.g. 'ST-ProtoPNet' for a native ProtoPNet with two sets
    similarity_unit: str = ""  # what a similarity value means (protoviz.models.labels)

    def as_rows(self) -> list[tuple[str, str]]:
        """Human-readable (name, value) rows."""
        groups = ", ".join(f"{k} [{a}:{b})" for k, (a, b) in self.prototype_groups.items())
        label = self.family_label or self.family
        return [
            ("family", label if label.lower() == self.family else f"{label} (protoviz family '{self.family}')"),
            ("backbone", self.backbone),
            ("input size", f"{self.input_size[0]}x{self.input_size[1]}"),
            ("prototypes (P)", str(self.num_prototypes)),
            ("classes (C)", str(self.num_classes)),
            ("similarity map", f"{self.map_size[0]}x{self.map_size[1]}"),
            ("similarity", f"{self.similarity}: {self.similarity_unit}" if self.similarity_unit else self.similarity),
            ("output", self.output_kind),
            *self.settings.items(),
            ("prototype sets", groups or "-"),
            ("parameters", f"{self.num_parameters:,}"),
        ]


class PrototypeModel(nn.Module, ABC):
    """A part-prototype network behind one interface.

    Subclasses set ``family`` and implement :meth:`similarity_maps`, :meth:`latent`,
    :attr:`class_weights` and :attr:`prototype_class_identity`, and name their frozen config
    dataclass in ``config_class`` (stored on the model as ``self.config``).
    The default :meth:`forward` max-pools the similarity maps and applies the linear head
    ``logits = max_similarities @ class_weights.T``; families with another head override
    :meth:`logits_from_similarities`.
    """

    family: ClassVar[str] = ""
    config_class: ClassVar[Any]  # the family's frozen config dataclass, with to_dict / from_dict
    config: Any  # an instance of config_class
    output_kind: ClassVar[str] = "logits"  # 'logits' | 'probs' | 'log_probs'

    def __init__(self, input_spec: InputSpec, class_names: tuple[str, ...], backbone: str, similarity: str):
        super().__init__()
        self.input_spec = input_spec
        self.class_names = tuple(class_names)
        self.backbone_name = backbone
        self.similarity_kind = similarity
        self.prototype_sources: list[PrototypeSource | None] = []
        self.metadata: dict[str, Any] = {}

    # ----- what every family implements -------------------------------------------------
    @abstractmethod
    def latent(self, x: Tensor) -> Tensor:
        """Normalised images (B, 3, H, W) -> latent features compared with prototypes (B, D, h, w)."""

    @abstractmethod
    def similarity_maps(self, x: Tensor) -> Tensor:
        """Normalised images (B, 3, H, W) -> similarity maps (B, P, h, w), higher = more similar."""

    @property
    @abstractmethod
    def class_weights(self) -> Tensor:
        """(C, P) weight of each prototype's pooled similarity in each class score."""

    @property
    @abstractmethod
    def prototype_class_identity(self) -> Tensor:
        """(P, C) 1 where a prototype belongs to (or serves) a class, else 0."""

    def config_dict(self) -> dict[str, Any]:
        """JSON-able configuration from which :meth:`from_config` rebuilds this model."""
        return dict(self.config.to_dict())

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PrototypeModel:
        """Build an untrained model from :meth:`config_dict`'s output."""
        return cls(cls.config_class.from_dict(config))  # type: ignore[call-arg]  # subclasses take their config

    @classmethod
    @abstractmethod
    def example_config(cls) -> dict[str, Any]:
        """A tiny configuration used by the contract tests generated from the registry."""

    # ----- shared behaviour --------------------------------------------------------------
    @property
    def num_prototypes(self) -> int:
        return int(self.prototype_class_identity.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def prototype_embeddings(self) -> Tensor:
        """(P, D) prototype vectors in latent space (flattened over any spatial extent)."""
        raise ModelError(f"the {self.family} family does not expose prototype vectors")

    def prototype_groups(self) -> dict[str, tuple[int, int]]:
        """Named contiguous ranges [start, end) of prototype indices, e.g. support / trivial."""
        return {"prototypes": (0, self.num_prototypes)}

    def logits_from_similarities(self, maps: Tensor, pooled: Tensor) -> Tensor:
        """Class scores (B, C) from similarity maps (B, P, h, w) and their max-pool (B, P)."""
        return pooled @ self.class_weights.t()

    @property
    def logits_from_pooled(self) -> bool:
        """False when the class scores are not a function of the similarity maps (ProtoPool's soft slots
        mix distances before the activation): :meth:`logits_from_similarities` is then undefined and the
        logits come only from :meth:`forward`."""
        return True

    def settings(self) -> dict[str, str]:
        """Family-specific settings a user should see (name -> value), e.g. ProtoPool's slot mode."""
        return {}

    def forward(self, x: Tensor) -> PrototypeOutput:  # type: ignore[override]
        """Normalised images (B, 3, H, W) -> :class:`PrototypeOutput`."""
        self._check_input(x)
        maps = self.similarity_maps(x)
        pooled = maps.flatten(2).amax(dim=2)
        return PrototypeOutput(self.logits_from_similarities(maps, pooled), maps, pooled)

    def map_size(self) -> tuple[int, int]:
        """(h, w) of the similarity maps for the model's own input size."""
        h, w = self.input_spec.image_size
        with torch.no_grad():
            probe = torch.zeros(1, 3, h, w, device=self.device)
            was_training = self.training
            self.eval()
            shape = self.similarity_maps(probe).shape[-2:]
            self.train(was_training)
        return int(shape[0]), int(shape[1])

    def summary(self) -> ModelSummary:
        return ModelSummary(
            family=self.family,
            backbone=self.backbone_name,
            input_size=self.input_spec.image_size,
            num_prototypes=self.num_prototypes,
            num_classes=self.num_classes,
            map_size=self.map_size(),
            similarity=self.similarity_kind,
            output_kind=self.output_kind,
            prototype_groups=self.prototype_groups(),
            num_parameters=sum(p.numel() for p in self.parameters()),
            settings=self.settings(),
            family_label=family_label(self.family, getattr(self, "config", None)),
            similarity_unit=similarity_unit(self.similarity_kind),
        )

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ModelError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
