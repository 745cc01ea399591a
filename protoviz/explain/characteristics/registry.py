"""The registry of characteristics (what a modification changes) and regions (where it is applied).

A characteristic is one file with one registration: ``@register_characteristic("hue", ...)`` on a class
that provides
- ``fast(unit, context)``: batched tensor modification of unit images (B, 3, H, W) in [0, 1] after
  resizing, on whatever device they are on (it must run unchanged on CUDA);
- ``reference(image, params)``: the modification of one whole PIL RGB image at its native size, operation
  for operation as the published code (or the nearest published definition);
- optionally ``prepare(unit, context)``: a CPU pre-computation run on the loader thread beside the forward
  pass (OpenCV's texture filter on the CPU); its result reaches ``fast`` as ``context.prepared``;
- ``neutral``: the parameter values at which it changes nothing in intent (its per-characteristic noise
  floor runs it at those values through the same path);
- ``published``: how the published code wrote the modified image to disk and read it back (:class:`Codec`).

Derived names resolve without registration: ``"hue+shape"`` applies hue then shape (a combination, as
CaBRNet's perturbation lists, see ``combination.py``) and ``"floor:texture"`` is texture at its neutral
parameters. Regions (``whole``, ``inside``, ``outside``, ``focus``, ``dual``) are registered the same way
with ``@register_region``; a region gives per-prototype blend weights. Tests are generated from
:func:`list_characteristics` and :func:`list_regions`.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image
from torch import Tensor

from protoviz.errors import ConfigError

if TYPE_CHECKING:
    from protoviz.explain.params import ExplainConfig, ModificationParams
    from protoviz.models.base import PrototypeModel

COMBINE = "+"
FLOOR_PREFIX = "floor:"
PAPER: tuple[str, ...] = ("hue", "shape", "texture", "contrast", "saturation", "brightness")
"""Nauta et al.'s six, in the order of every default result (the paper's order, brightness last)."""


@dataclass(frozen=True)
class FastContext:
    """What a fast modification may read besides the images.

    params: the strengths. scale: (B, 2) input size / native size per image for (y, x) (windows and
    amplitudes defined in native pixels are scaled by it). max_search: cap on a search window in input
    pixels (the texture filter). backend: the texture filter's backend (``opencv`` or ``torch``).
    prepared: (B, 3, H, W) this characteristic's own CPU pre-computation, or None.
    """

    params: ModificationParams
    scale: Tensor
    max_search: int = 7
    backend: str = "torch"
    prepared: Tensor | None = None


@dataclass(frozen=True)
class Codec:
    """How the published code stored a modified image: ``library`` ``pil`` (``Image.save`` to a .jpg
    name: JPEG with Pillow's defaults) or ``opencv`` (``cv2.imwrite``: JPEG with OpenCV's defaults), at
    ``quality`` (Pillow's default 75, OpenCV's default 95), then read back with ``Image.open(...)
    .convert('RGB')``. Explaining_Prototypes' ``create_modified_datasets.py`` writes the colour variants
    with PIL and the texture / shape variants with OpenCV."""

    library: str
    quality: int

    def __post_init__(self) -> None:
        if self.library not in ("pil", "opencv") or not 1 <= self.quality <= 100:
            raise ConfigError(f"Codec: expected library 'pil' or 'opencv' and quality in [1, 100], got {self}")

    def round_trip(self, image: Image.Image) -> Image.Image:
        """Encode ``image`` (RGB) as the published code wrote it and decode it as it read it back."""
        return Image.open(io.BytesIO(self.encode(image))).convert("RGB")

    def encode(self, image: Image.Image) -> bytes:
        """The JPEG bytes the published code wrote for ``image`` (RGB)."""
        if self.library == "pil":
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=self.quality)
            return buffer.getvalue()
        bgr = cv2.cvtColor(np.asarray(image.convert("RGB"), dtype=np.uint8), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ConfigError("OpenCV could not encode the image as JPEG")
        return data.tobytes()

    def describe(self) -> str:
        return f"JPEG quality {self.quality} via {'Pillow' if self.library == 'pil' else 'OpenCV'}"


PIL_JPEG = Codec("pil", 75)
"""Pillow's ``Image.save`` to a .jpg name with default settings (quality 75)."""
OPENCV_JPEG = Codec("opencv", 95)
"""OpenCV's ``cv2.imwrite`` to a .jpg name with default settings (quality 95)."""

FastFunction = Callable[[Tensor, FastContext], Tensor]
ReferenceFunction = Callable[[Image.Image, "ModificationParams"], Image.Image]
PrepareFunction = Callable[[Tensor, FastContext], Tensor | None]


@dataclass(frozen=True)
class Characteristic:
    """A registered (or derived) characteristic; see the module doc."""

    name: str
    label: str
    description: str
    fast_function: FastFunction
    reference_function: ReferenceFunction
    parameters: tuple[str, ...] = ()
    neutral: Mapping[str, Any] = field(default_factory=dict)
    published: Codec = PIL_JPEG
    paper: bool = False
    prepare_function: PrepareFunction | None = None
    source: str = ""

    def fast(self, unit: Tensor, context: FastContext) -> Tensor:
        """Unit images (B, 3, H, W) -> modified (B, 3, H, W) in [0, 1], same device and dtype."""
        return self.fast_function(unit, context).to(dtype=unit.dtype).clamp(0.0, 1.0)

    def reference(self, image: Image.Image, params: ModificationParams) -> Image.Image:
        """One RGB image at native size -> the modified RGB image at native size."""
        return self.reference_function(image, params)

    def published_image(self, image: Image.Image, params: ModificationParams) -> Image.Image:
        """The reference modification written to disk and read back as the published code did."""
        return self.published.round_trip(self.reference(image, params))

    def parameter_values(self, params: ModificationParams) -> dict[str, Any]:
        return {name: getattr(params, name) for name in self.parameters}


_CHARACTERISTICS: dict[str, Characteristic] = {}


def register_characteristic(name: str, label: str, parameters: tuple[str, ...] = (),
                            neutral: Mapping[str, Any] | None = None, published: Codec = PIL_JPEG,
                            paper: bool = False, source: str = "") -> Callable[[type], type]:
    """Class decorator registering a characteristic (see the module doc); a name registered twice, a name
    with ``+`` or ``:`` in it, or a class without ``fast`` and ``reference`` is an error."""

    def decorate(cls: type) -> type:
        if name in _CHARACTERISTICS:
            raise ConfigError(f"a characteristic named {name!r} is already registered")
        if COMBINE in name or ":" in name or not name:
            raise ConfigError(f"characteristic names may not contain {COMBINE!r} or ':', got {name!r}")
        if not callable(getattr(cls, "fast", None)) or not callable(getattr(cls, "reference", None)):
            raise ConfigError(f"characteristic {name!r} needs static methods fast() and reference()")
        fast: FastFunction = cls.fast  # type: ignore[attr-defined]
        reference: ReferenceFunction = cls.reference  # type: ignore[attr-defined]
        _CHARACTERISTICS[name] = Characteristic(
            name=name, label=label, description=(cls.__doc__ or "").strip(), fast_function=fast,
            reference_function=reference, parameters=tuple(parameters),
            neutral=dict(neutral or {}), published=published, paper=paper, prepare_function=getattr(cls, "prepare", None), source=source)
        return cls

    return decorate


def list_characteristics(paper_only: bool = False) -> list[str]:
    """Registered names: Nauta et al.'s six first in the paper's order, then the others by name.
    (``identity`` is listed; derived names ``a+b`` and ``floor:a`` are not.)"""
    names = [n for n in PAPER if n in _CHARACTERISTICS]
    if paper_only:
        return names
    return names + sorted(n for n in _CHARACTERISTICS if n not in PAPER)


def get_characteristic(name: str) -> Characteristic:
    """The characteristic called ``name``: registered, a combination ``a+b[+c...]`` or a noise floor
    ``floor:a``."""
    if name in _CHARACTERISTICS:
        return _CHARACTERISTICS[name]
    if name.startswith(FLOOR_PREFIX):
        return neutral_version(get_characteristic(name[len(FLOOR_PREFIX):]))
    if COMBINE in name:
        from protoviz.explain.characteristics.combination import combine

        return combine(tuple(get_characteristic(part) for part in name.split(COMBINE)))
    raise ConfigError(f"unknown characteristic {name!r}; registered: {', '.join(list_characteristics())}; "
                      f"combine them with '{COMBINE}' (e.g. 'hue+shape') or ask for a noise floor "
                      f"'{FLOOR_PREFIX}NAME'")


def neutral_version(base: Characteristic) -> Characteristic:
    """``base`` run at its neutral parameters through the same path: its own noise floor."""
    if base.name.startswith(FLOOR_PREFIX):
        return base

    def with_neutral(params: ModificationParams) -> ModificationParams:
        return dataclasses.replace(params, **dict(base.neutral))

    def fast(unit: Tensor, context: FastContext) -> Tensor:
        return base.fast_function(unit, dataclasses.replace(context, params=with_neutral(context.params)))

    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        return base.reference_function(image, with_neutral(params))

    prepare: PrepareFunction | None = None
    if base.prepare_function is not None:
        original = base.prepare_function

        def prepare(unit: Tensor, context: FastContext) -> Tensor | None:
            return original(unit, dataclasses.replace(context, params=with_neutral(context.params)))

    return dataclasses.replace(
        base, name=FLOOR_PREFIX + base.name, label=f"{base.label} (noise floor)",
        description=f"{base.label} at its neutral parameters {dict(base.neutral)}: what its path alone changes.",
        fast_function=fast, reference_function=reference, prepare_function=prepare, paper=False)


def validate_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Check that every name resolves; returns them unchanged. Duplicates are an error."""
    if not names:
        raise ConfigError("expected at least one characteristic")
    if len(set(names)) != len(names):
        raise ConfigError(f"characteristics listed twice: {names}")
    for name in names:
        get_characteristic(name)
    return names


# ---------------------------------------------------------------------------------------------- regions

@dataclass(frozen=True)
class RegionContext:
    """What a region needs to place a modification for K prototypes on B images.

    unit: (B, 3, H, W) originals in [0, 1] on the model's device. maps: (B, K, h, w) the originals'
    similarity maps of the selected prototypes. prototypes: (K,) their indices.
    """

    model: PrototypeModel
    unit: Tensor
    maps: Tensor
    prototypes: Tensor
    config: ExplainConfig


RegionFunction = Callable[[RegionContext], Tensor]


@dataclass(frozen=True)
class Region:
    """A registered region: ``weights(context)`` -> (B, K, 1, H, W) in [0, 1], the share of the modified
    image in each pixel (1 = modified, 0 = original), per image and prototype; None for ``whole``
    (one modified image shared by every prototype)."""

    name: str
    label: str
    description: str
    weights: RegionFunction | None
    source: str = ""


_REGIONS: dict[str, Region] = {}


def register_region(name: str, label: str, source: str = "") -> Callable[[type], type]:
    """Class decorator registering a region; the class has a static ``weights(context)`` (or None)."""

    def decorate(cls: type) -> type:
        if name in _REGIONS:
            raise ConfigError(f"a region named {name!r} is already registered")
        weights = getattr(cls, "weights", None)
        _REGIONS[name] = Region(name, label, (cls.__doc__ or "").strip(), weights, source)
        return cls

    return decorate


def list_regions() -> list[str]:
    """Registered region names, ``whole`` first."""
    return sorted(_REGIONS, key=lambda n: (n != "whole", n))


def get_region(name: str) -> Region:
    if name not in _REGIONS:
        raise ConfigError(f"unknown region {name!r}; choose one of {', '.join(list_regions())}")
    return _REGIONS[name]


def describe_run(config: ExplainConfig, device: Any) -> dict[str, Any]:
    """What a run's characteristics are, for provenance: per name its parameters, source and (on the
    published path) how each modified image was stored; the data path; the fast texture backend."""
    from protoviz.explain.modifications_fast import texture_backend

    published = config.path == "published"
    record: dict[str, Any] = {"path": config.path, "region": config.region, "characteristics": {}}
    for name in config.characteristics:
        characteristic = get_characteristic(name)
        record["characteristics"][name] = {
            "parameters": characteristic.parameter_values(config.params), "source": characteristic.source,
            **({"stored_as": characteristic.published.describe()} if published else {})}
    if config.region in ("focus", "dual"):
        record["heatmap_method"] = config.heatmap_method
    if config.mode == "fast":
        record["fast_texture_backend"] = texture_backend(config.fast_texture, device)
    return record
