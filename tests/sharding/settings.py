"""Settings shared by the sharded worker and the single-process reference run."""

from __future__ import annotations

from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.runner import EvaluationConfig


def evaluation_config() -> EvaluationConfig:
    """Every pass metric, two noise draws, batches of 3 (so the ranks' shares interleave)."""
    return EvaluationConfig(metrics=("accuracy", "consistency", "stability", "region_stability", "purity",
                                     "object_overlap"), parts=PartMetricConfig(noise_draws=2, seed=5, noise_std=0.3),
                            batch_size=3, purity_top_k=3)


def explain_settings() -> tuple[int, int]:
    """(batch size, image limit) of the global explanation."""
    return 3, 10
