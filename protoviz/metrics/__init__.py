"""Dataset-wide scores of a prototype model: accuracy, Huang et al.'s consistency and stability,
region stability, PIP-Net purity, object overlap, deletion/insertion curves."""

from protoviz.metrics.config import PARAMETER_HELP, PartMetricConfig
from protoviz.metrics.consistency import PartScores, class_mapping, part_scores
from protoviz.metrics.runner import METRICS, EvaluationConfig, EvaluationResult, evaluate

__all__ = ["METRICS", "PARAMETER_HELP", "EvaluationConfig", "EvaluationResult", "PartMetricConfig", "PartScores",
           "class_mapping", "evaluate", "part_scores"]
