"""Run by torchrun in tests/sharding/test_sharding.py: one rank of a sharded evaluation, compare pass
and global explanation; rank 0 pickles the merged results to the file named on the command line.

    torchrun --standalone --nproc_per_node 2 tests/sharding/worker.py OUT DATA CHECKPOINT
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from protoviz.compare.summary import CompareConfig, compare_shard
from protoviz.compare.topk import TopKConfig
from protoviz.data.datasets import open_dataset
from protoviz.distributed import join, leave
from protoviz.explain.global_ import explain_shard
from protoviz.explain.params import ExplainConfig
from protoviz.models import load_model
from tests.sharding.settings import evaluation_config, explain_settings


def main(out: Path, data: Path, checkpoint: Path) -> None:
    group = join("cpu")
    assert group is not None and group.world_size == 2
    from protoviz.metrics.runner import evaluate_shard

    model = load_model(checkpoint)
    dataset = open_dataset(data, crop_to_box=False)
    evaluation = evaluate_shard(model, dataset, evaluation_config(), group=group)
    comparison = compare_shard({"a": model}, dataset, CompareConfig(topk=TopKConfig(k=3), batch_size=3), group=group)
    batch, limit = explain_settings()
    explanation = explain_shard(model, dataset, ExplainConfig(), batch, limit, group=group)
    if group.is_main:
        out.write_bytes(pickle.dumps({"evaluation": evaluation, "comparison": comparison,
                                      "explanation": explanation, "rank": group.rank}))
    else:
        assert evaluation is None and comparison is None and explanation is None
    leave(group)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
