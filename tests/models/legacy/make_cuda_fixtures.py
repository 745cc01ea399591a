"""Write research-format checkpoints from CUDA tensors (run on a GPU machine).

``python -m tests.models.legacy.make_cuda_fixtures OUT_DIR`` writes the files that
test_legacy_devices.py loads on whatever device the tests run on; the same writers with the same
seeds on the CPU give the expected weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tests.models.legacy import writers as w


def main(out: Path) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("needs CUDA")
    out.mkdir(parents=True, exist_ok=True)
    net = w.ppnet().cuda()
    classes = w.research_classes(net)
    w.save(net, out / "ppnet_cuda_zip.pth", "zip", classes)
    w.save(net, out / "ppnet_cuda_legacy.pth", "legacy", classes)
    tree = w.prototree().cuda()
    tree_classes = w.research_classes(tree)
    w.save(tree, out / "prototree_cuda_model.pth", "zip", tree_classes)
    w.save(tree, out / "prototree_cuda_tree.pkl", "pickle", tree_classes)
    w.save(w.pipnet_checkpoint(w.pipnet().cuda()), out / "pipnet_cuda.pth", "zip")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
