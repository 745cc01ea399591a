"""Combinations: two or more registered characteristics applied one after the other.

CaBRNet's perturbation analysis lets a perturbation be a list of operations applied in order
(``_compute_perturbations``: ``for op in operations: perturbed_img = op(perturbed_img)``); here the
name ``"a+b"`` is a applied first, then b. No registration is needed: :func:`get_characteristic`
builds the combination from its parts.
"""

from __future__ import annotations

import dataclasses

from PIL import Image
from torch import Tensor

from protoviz.errors import ConfigError
from protoviz.explain.characteristics.registry import COMBINE, FLOOR_PREFIX, Characteristic, FastContext
from protoviz.explain.params import ModificationParams


def combine(parts: tuple[Characteristic, ...]) -> Characteristic:
    """The characteristic applying ``parts`` in order. On the published path the result is stored once,
    with the codec of the last part (the code that would have written the file)."""
    if len(parts) < 2:
        raise ConfigError(f"a combination needs two or more characteristics, got {[p.name for p in parts]}")
    names = [p.name for p in parts]
    if len(set(names)) != len(names) or any(n.startswith(FLOOR_PREFIX) or n == "identity" for n in names):
        raise ConfigError(f"a combination takes distinct characteristics other than noise floors, got {names}")

    def fast(unit: Tensor, context: FastContext) -> Tensor:
        out = unit
        for i, part in enumerate(parts):
            # a CPU pre-computation is valid for the original only; later parts see the modified image
            prepared = context.prepared if i == 0 else (
                None if part.prepare_function is None else part.prepare_function(out.cpu(), context))
            out = part.fast(out, dataclasses.replace(context, prepared=prepared))
        return out

    def reference(image: Image.Image, params: ModificationParams) -> Image.Image:
        for part in parts:
            image = part.reference(image, params)
        return image

    first = parts[0]
    return Characteristic(
        name=COMBINE.join(names), label=" + ".join(p.label for p in parts),
        description="applied in order: " + "; then ".join(p.label for p in parts),
        fast_function=fast, reference_function=reference,
        parameters=tuple(dict.fromkeys(n for p in parts for n in p.parameters)),
        neutral={k: v for p in parts for k, v in p.neutral.items()}, published=parts[-1].published,
        prepare_function=first.prepare_function, source="CaBRNet: lists of perturbations applied in order")
