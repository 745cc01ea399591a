"""Comparing models and looking at prototypes across a dataset.

- :mod:`~protoviz.compare.scan`: one batched pass of a model over an image stream, shared by all below.
- :mod:`~protoviz.compare.topk`: top-k most activating patches per prototype (running merge, constant memory).
- :mod:`~protoviz.compare.matching`: activation profiles, cross-model matching (Hungarian), near-duplicates.
- :mod:`~protoviz.compare.latent`: PCA of prototypes and their nearest patches.
- :mod:`~protoviz.compare.card`: what a prototype card shows.
- :mod:`~protoviz.compare.summary`: several models on the same dataset, and the reproducibility record.
- :mod:`~protoviz.compare.report`: a comparison as one self-contained HTML file.
"""

from protoviz.compare.matching import match_prototypes, near_duplicates
from protoviz.compare.summary import CompareConfig, compare_models
from protoviz.compare.topk import TopKConfig, topk_patches

__all__ = ["CompareConfig", "TopKConfig", "compare_models", "match_prototypes", "near_duplicates", "topk_patches"]
