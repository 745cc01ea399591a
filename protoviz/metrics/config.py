"""Parameters of the part-based metrics, with the help text shown by the CLI and the dashboard."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from protoviz.errors import ConfigError

PARAMETER_HELP: dict[str, str] = {
    "half_size": "Half the side of the square region around a prototype's peak, in pixels of a 224x224 input "
                 "(36 in Huang et al., a 73x73 box). It is scaled with the model's input size, "
                 "round(half_size * H / 224), and a part counts when its keypoint lies in the box.",
    "mu": "Consistency threshold: a prototype is consistent when one part lies in its region in at least this "
          "share of the class's images where that part is visible (0.8 in the reference).",
    "noise_std": "Standard deviation of the Gaussian noise added to the normalised image for stability (0.2).",
    "noise_clip": "The noise is clipped to [-clip, clip] before it is added (0.25); 0 disables clipping.",
    "seed": "Seed of the noise: the same seed gives the same noise for the same image whatever the batch size.",
    "noise_draws": "Number of independent noise draws; the stability is their mean, with the spread (std).",
    "merge_left_right": "Count 'left X' and 'right X' as one part 'X' (the reference keeps them apart; "
                        "PIP-Net's purity merges them).",
    "crop_to_box": "Crop each image to its bounding box before resizing, as the reference does; otherwise use "
                   "the whole image with part coordinates scaled to the resized image.",
}


@dataclass(frozen=True)
class PartMetricConfig:
    """Parameters of consistency and stability; the defaults are Huang et al.'s reference.

    half_size: region half side at ``reference_size`` px (scaled to the input, see
    :func:`protoviz.metrics.parts.scaled_half_size`). mu: consistency threshold on the best part's
    frequency. noise_std / noise_clip: Gaussian noise N(0, std^2) clipped to [-clip, clip] (None: no
    clipping) added after normalisation. seed: noise seed. noise_draws: independent draws averaged.
    merge_left_right: merge 'left X' / 'right X' parts.
    """

    half_size: float = 36.0
    mu: float = 0.8
    noise_std: float = 0.2
    noise_clip: float | None = 0.25
    seed: int = 0
    noise_draws: int = 1
    merge_left_right: bool = False
    reference_size: int = 224

    def __post_init__(self) -> None:
        checks = [
            (math.isfinite(self.half_size) and self.half_size >= 0, "half_size >= 0", self.half_size),
            (0.0 <= self.mu <= 1.0, "mu in [0, 1]", self.mu),
            (math.isfinite(self.noise_std) and self.noise_std >= 0, "noise_std >= 0", self.noise_std),
            (self.noise_clip is None or self.noise_clip > 0, "noise_clip > 0 or None", self.noise_clip),
            (self.seed >= 0, "seed >= 0", self.seed),
            (self.noise_draws >= 1, "noise_draws >= 1", self.noise_draws),
            (self.reference_size >= 1, "reference_size >= 1", self.reference_size),
        ]
        for ok, expected, got in checks:
            if not ok:
                raise ConfigError(f"PartMetricConfig: expected {expected}, got {got!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
