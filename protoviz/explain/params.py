"""Parameters of the characteristic modifications and of an explanation run.

The defaults are the reference values of the spec (specs/characteristics.md): contrast 0.45, saturation
0.7, hue 0.1 (a shift of uint8(0.1 * 255) = 25 in PIL's 0..255 hue scale), brightness 0.8, texture
(OpenCV non-local means) h = hColor = 4 with a 7 px template and a 21 px search window, shape (sine
warp) amplitude 4 px and frequency 0.05 (a 40 px period); blur (CaBRNet) sigma 2 with a 21 px kernel.
The characteristics themselves are registered in :mod:`protoviz.explain.characteristics`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from protoviz.errors import ConfigError

CHARACTERISTICS: tuple[str, ...] = ("hue", "shape", "texture", "contrast", "saturation", "brightness")
"""The six modifications, in the order they appear in every result (the paper's order, brightness last)."""
IDENTITY = "identity"
"""The name of the noise-floor modification (an identity through the same path)."""
MODES: tuple[str, ...] = ("fast", "reference")
REGIONS: tuple[str, ...] = ("whole", "inside", "outside", "focus", "dual")
"""The built-in regions (registered in protoviz.explain.characteristics; ``list_regions()`` has them all)."""
PATHS: tuple[str, ...] = ("clean", "published")
"""Data paths: ``clean`` keeps every image in memory (no re-encoding; the better-founded numbers),
``published`` writes and re-reads images as the published code did (see ``protoviz.explain.published``)."""


@dataclass(frozen=True)
class ModificationParams:
    """Strength of each modification; reference values by default.

    contrast / saturation / brightness: PIL ImageEnhance factors (1 = unchanged).
    hue: torchvision ``adjust_hue`` factor; the shift is ``int(hue * 255) mod 256`` of PIL's 256 hue steps.
    texture_h / texture_h_color: OpenCV non-local-means filter strengths (uint8 scale).
    texture_template / texture_search: odd window sizes in native pixels.
    shape_amplitude: sine-warp amplitude in native pixels; shape_frequency: w in shift(t) = A sin(pi w t).
    blur_sigma: Gaussian blur standard deviation in native pixels; blur_kernel: its odd kernel size.
    """

    contrast: float = 0.45
    saturation: float = 0.7
    hue: float = 0.1
    brightness: float = 0.8
    texture_h: float = 4.0
    texture_h_color: float = 4.0
    texture_template: int = 7
    texture_search: int = 21
    shape_amplitude: float = 4.0
    shape_frequency: float = 0.05
    blur_sigma: float = 2.0
    blur_kernel: int = 21

    def __post_init__(self) -> None:
        for name in ("contrast", "saturation", "brightness"):
            if not 0.0 <= getattr(self, name) <= 4.0:
                raise ConfigError(f"ModificationParams.{name}: expected a factor in [0, 4], got {getattr(self, name)}")
        if not -0.5 <= self.hue <= 0.5:
            raise ConfigError(f"ModificationParams.hue: expected a factor in [-0.5, 0.5], got {self.hue}")
        if self.texture_h <= 0 or self.texture_h_color <= 0:
            raise ConfigError("ModificationParams.texture_h and texture_h_color: expected values > 0, got "
                              f"{self.texture_h} and {self.texture_h_color}")
        for name in ("texture_template", "texture_search"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise ConfigError(f"ModificationParams.{name}: expected an odd integer >= 1, got {value!r}")
        if self.blur_sigma < 0 or not isinstance(self.blur_kernel, int) or self.blur_kernel < 1 \
                or self.blur_kernel % 2 == 0:
            raise ConfigError("ModificationParams.blur_sigma and blur_kernel: expected a sigma >= 0 and an odd "
                              f"kernel size >= 1, got {self.blur_sigma} and {self.blur_kernel!r}")
        if self.shape_amplitude < 0 or self.shape_frequency < 0:
            raise ConfigError("ModificationParams.shape_amplitude and shape_frequency: expected values >= 0, got "
                              f"{self.shape_amplitude} and {self.shape_frequency}")

    @property
    def hue_shift_steps(self) -> int:
        """The hue shift in PIL's 256 hue steps: ``uint8(hue * 255)`` with wrap-around (25 for 0.1)."""
        return int(self.hue * 255) % 256

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ExplainConfig:
    """How an explanation is computed.

    mode: ``fast`` (batched tensor modifications on the model's device after resizing) or ``reference``
        (PIL / OpenCV on each whole image at its native size, before resizing, as the reference code).
    names: the characteristics to compute (registered names, combinations ``a+b``, noise floors
        ``floor:a``); Nauta et al.'s six by default.
    noise_floor: also run an identity modification through the same path (see ``extras.noise_floor``).
    floors: also run every characteristic of ``names`` at its neutral parameters (``floor:NAME``): a
        noise floor per characteristic, through its own path.
    region: a registered region: the ``whole`` image, only ``inside`` / ``outside`` each prototype's
        high-activation box, or weighted by its heatmap (``focus``) or its complement (``dual``).
    heatmap_method: the registered heatmap method that weights ``focus`` and ``dual``.
    path: ``clean`` (images in memory) or ``published`` (each modified image written and re-read as JPEG
        in the published code's format and quality; needs ``mode='reference'``).
    percentile: the percentile of the upsampled similarity map that defines that box (ProtoPNet: 95).
    fast_max_search: cap on the fast texture filter's search window (input pixels), for speed.
    fast_texture: the fast texture filter's backend: ``auto`` (OpenCV on the CPU, tensors on an
        accelerator), ``torch`` or ``opencv``.
    seed: recorded with every result (all modifications are deterministic).
    """

    mode: str = "fast"
    params: ModificationParams = field(default_factory=ModificationParams)
    noise_floor: bool = False
    region: str = "whole"
    names: tuple[str, ...] = CHARACTERISTICS
    floors: bool = False
    heatmap_method: str = "upsample"
    path: str = "clean"
    percentile: float = 95.0
    fast_max_search: int = 7
    fast_texture: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"ExplainConfig.mode: expected one of {MODES}, got {self.mode!r}")
        from protoviz.explain.characteristics import get_region, validate_names

        get_region(self.region)
        object.__setattr__(self, "names", validate_names(tuple(self.names)))
        if self.region in ("focus", "dual"):
            from protoviz.heatmaps.methods import get_method

            get_method(self.heatmap_method)
        if self.path not in PATHS:
            raise ConfigError(f"ExplainConfig.path: expected one of {PATHS}, got {self.path!r}")
        if self.path == "published" and self.mode != "reference":
            raise ConfigError("ExplainConfig: the published path re-encodes the reference modifications; "
                              f"use mode='reference' with path='published' (got mode {self.mode!r})")
        if not 0.0 <= self.percentile <= 100.0:
            raise ConfigError(f"ExplainConfig.percentile: expected a value in [0, 100], got {self.percentile}")
        if self.fast_texture not in ("auto", "torch", "opencv"):
            raise ConfigError("ExplainConfig.fast_texture: expected 'auto', 'torch' or 'opencv', "
                              f"got {self.fast_texture!r}")
        if not isinstance(self.fast_max_search, int) or self.fast_max_search < 1 or self.fast_max_search % 2 == 0:
            raise ConfigError("ExplainConfig.fast_max_search: expected an odd integer >= 1, "
                              f"got {self.fast_max_search!r}")

    @property
    def characteristics(self) -> tuple[str, ...]:
        """The modification names of a result, in order (identity last when the noise floor is on)."""
        floors = tuple(f"floor:{n}" for n in self.names if not n.startswith("floor:") and n != IDENTITY)
        return (self.names + (floors if self.floors else ())
                + ((IDENTITY,) if self.noise_floor and IDENTITY not in self.names else ()))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["params"] = self.params.to_dict()
        data["characteristics"] = list(self.characteristics)
        data["names"] = list(self.names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExplainConfig:
        """The config :meth:`to_dict` wrote (derived entries such as ``characteristics`` are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "params" in values:
            values["params"] = ModificationParams(**values["params"])
        if "names" in values:
            values["names"] = tuple(values["names"])
        return cls(**values)
