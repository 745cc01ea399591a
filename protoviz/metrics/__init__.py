"""Dataset-wide scores of a prototype model, one registered metric per file: accuracy, Huang et al.'s
consistency and stability, region stability, PIP-Net purity, object overlap, deletion/insertion curves.

The built-in metrics register on the first look at the registry (``list_metrics()`` ...), in the order
tables and files show them.
"""

from protoviz.metrics.config import PARAMETER_HELP, PartMetricConfig
from protoviz.metrics.consistency import PartScores, class_mapping
from protoviz.metrics.registry import Metric, default_metrics, get_metric, list_metrics, register_metric
from protoviz.metrics.runner import EvaluationConfig, EvaluationResult, evaluate, evaluate_shard
from protoviz.metrics.score import Score

__all__ = ["PARAMETER_HELP", "EvaluationConfig", "EvaluationResult", "Metric", "PartMetricConfig", "PartScores",
           "Score", "class_mapping", "default_metrics", "evaluate", "evaluate_shard", "get_metric", "list_metrics",
           "register_metric"]
