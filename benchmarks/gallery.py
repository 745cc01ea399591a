"""Cost of the Prototypes page's gallery at CUB scale, and of a kept top-k pass of that size.

A random ProtoPNet with a tiny backbone, ``--classes`` x ``--per-class`` prototypes (default 200 x 10 =
2,000, CUB's), in a temporary model folder and workspace. Two readings:
- the page, driven by ``streamlit.testing`` AppTest as the page tests drive it: first render, a rerun, a
  page turn, a class filter, 96 tiles a page; median wall and process CPU time of ``--repeats`` rounds
  (AppTest runs the script in this process, so CPU time covers it; it is the fair reading on a shared machine);
- a kept top-k pass (k = 5, 48 px crops) of ``--images`` random images: its size in the workspace and the
  cold decode a revisit pays once per process (later reruns use the page's per-process cache).
Usage::

    python benchmarks/gallery.py [--classes 200] [--per-class 10] [--repeats 3] [--images 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

    from protoviz.models.base import PrototypeModel

OWNER = "benchmark-visitor-0000000"  # a workspace token (24+ URL-safe characters)


def clock(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _steps(app: AppTest) -> dict[str, Callable[[], object]]:
    """The interactions timed, in order, on one session of the page."""
    page, classes = "prototypes.page", "prototypes.class_filter"
    return {
        "first render (48 tiles)": app.run,
        "rerun, same page": app.run,
        "page turn (to the last)": lambda: app.number_input(key=page).set_value(
            app.number_input(key=page).max or 1).run(),
        "class filter (one class)": lambda: app.selectbox(key=classes).set_value(
            app.selectbox(key=classes).options[1]).run(),
        "all classes, 96 a page": lambda: (app.selectbox(key="prototypes.page_size").set_value(96),
                                           app.selectbox(key=classes).set_value("all classes").run()),
    }


def page_costs(repeats: int) -> dict[str, tuple[float, float]]:
    from streamlit.testing.v1 import AppTest

    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(repeats):
        app = AppTest.from_file(str(ROOT / "app" / "views" / "prototypes.py"), default_timeout=300)
        app.query_params["ws"] = OWNER
        app.session_state["prototypes.model"] = "cub_scale"
        for name, step in _steps(app).items():
            rows.setdefault(name, []).append(clock(step))
            if app.exception:
                raise RuntimeError(f"{name}: {app.exception[0].value}")
    return {name: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
            for name, values in rows.items()}


def stored_costs(model: PrototypeModel, images: int, home: Path) -> str:
    import torch

    from protoviz.compare.scan import tensor_batches
    from protoviz.compare.summary import CompareConfig, scan_model
    from protoviz.payload import decode
    from protoviz.workspace import RunKey, Workspace

    height, width = model.input_spec.image_size
    batch = torch.randn(images, 3, height, width, generator=torch.Generator().manual_seed(0))
    classes = model.num_classes
    cpu = time.process_time()
    run = scan_model("cub_scale", model, tensor_batches(batch, 32, labels=torch.arange(images) % classes),
                     CompareConfig(), total=images, label_map=torch.arange(classes))
    scan_cpu = time.process_time() - cpu
    assert run is not None
    ws = Workspace(owner=OWNER)
    kept = ws.save_run(RunKey.make("compare", "a" * 64, "f" * 64, {"bench": images}), run, model_name="cub_scale",
                       dataset_name=f"{images} random images")
    stored = sum(f.stat().st_size for f in home.rglob("*") if f.is_file())
    decodes = [clock(lambda: decode(ws.get_run(kept.id).payload)) for _ in range(3)]
    thumbs = run.topk.thumbnails
    return (f"kept top-k pass (k=5, 48 px crops) of {images} images: scan CPU {scan_cpu:.2f} s; workspace "
            f"{stored / 1e6:.1f} MB; crops in memory {0 if thumbs is None else thumbs.nbytes / 1e6:.1f} MB; cold decode "
            f"wall {statistics.median(d[0] for d in decodes):.2f} s, CPU {statistics.median(d[1] for d in decodes):.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=200)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=64, help="images of the kept top-k pass")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="protoviz-gallery-bench-"))
    for var, sub in (("PROTOVIZ_HOME", "home"), ("PROTOVIZ_MODEL_DIR", "models"), ("PROTOVIZ_SAMPLE_DIR", "samples")):
        os.environ[var] = str(tmp / sub)
        (tmp / sub).mkdir()
    os.environ["PROTOVIZ_DEVICE"] = "cpu"

    import torch

    from protoviz.models.base import InputSpec
    from protoviz.models.checkpoint import save_model
    from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig

    torch.manual_seed(0)
    model = ProtoPNet(ProtoPNetConfig(class_names=tuple(f"{i + 1:03d}.class_{i}" for i in range(args.classes)),
                                      backbone="tiny_cnn_small", prototypes_per_class=args.per_class,
                                      prototype_dim=8, input=InputSpec(image_size=(64, 64)))).eval()
    save_model(model, tmp / "models" / "cub_scale.safetensors")
    print(f"Prototypes page: {model.num_prototypes} prototypes, {model.num_classes} classes; AppTest, median of "
          f"{args.repeats} | torch {torch.__version__}")
    for name, (wall, cpu) in page_costs(args.repeats).items():
        print(f"  {name:<26} wall {wall:.3f} s   CPU {cpu:.3f} s")
    print(stored_costs(model, args.images, tmp / "home"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
