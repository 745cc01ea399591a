"""`protoviz trust MODEL`: how far to trust each heatmap method on a model (the Trust page, headless).

Runs the parameter-randomisation check, deletion / insertion curves and, where the images have part
masks (the synthetic set, or a ``--data`` folder with masks), the mask relevance and pointing game of
every chosen method; prints the summary table (and its CSV) and writes the full report as JSON, with
its provenance (model sha256, dataset fingerprint and split, the images chosen, settings, seed, device,
versions). Progress shows the rate and the time left.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import Tensor

from protoviz.cli.load_options import add_load_options, load_checkpoint
from protoviz.device import pick_device
from protoviz.heatmaps.methods import HeatmapOptions, list_methods
from protoviz.heatmaps.trust import PerturbationConfig, RandomisationConfig
from protoviz.heatmaps.trust_report import (
    TrustConfig,
    TrustReport,
    dataset_images,
    evaluate_methods,
    synthetic_images,
    synthetic_record,
    top_prototypes,
)
from protoviz.models.base import PrototypeModel
from protoviz.passes import PassRecord
from protoviz.progress import console_progress
from protoviz.tables import write_csv


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trust", help="sanity checks and faithfulness of the heatmap methods")
    parser.add_argument("model", type=Path, help="checkpoint (.safetensors or a research checkpoint)")
    parser.add_argument("--family", default=None, help="family hint for research checkpoints")
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder (CUB layout, Stanford Cars/Dogs or ImageFolder) to take the images from; "
                             "default: the bundled synthetic set (with part masks)")
    parser.add_argument("--split", default="test", choices=("test", "train", "all"), help="split of --data")
    parser.add_argument("--images", type=int, default=8, help="images to check, spread evenly over the dataset")
    parser.add_argument("--prototypes", type=int, default=3, help="most activated prototypes per image")
    parser.add_argument("--methods", nargs="+", default=list_methods(), choices=list_methods())
    parser.add_argument("--stages", type=int, default=RandomisationConfig.stages, help="randomisation stages")
    parser.add_argument("--mode", default=RandomisationConfig.mode, choices=("cascading", "independent"))
    parser.add_argument("--threshold", type=float, default=RandomisationConfig.threshold,
                        help="a method passes the randomisation check if mean Spearman rho is below this")
    parser.add_argument("--steps", type=int, default=PerturbationConfig.steps, help="deletion / insertion steps")
    parser.add_argument("--score", default=PerturbationConfig.score, choices=("max", "location"))
    parser.add_argument("--smoothgrad-samples", type=int, default=HeatmapOptions.smoothgrad_samples)
    parser.add_argument("--seed", type=int, default=RandomisationConfig.seed, help="seed of re-randomised weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--csv", type=Path, default=None,
                        help="write the summary table here (with a .provenance.json sidecar)")
    add_load_options(parser)
    parser.set_defaults(func=run)


def summary_table(report: TrustReport) -> str:
    """The summary rows as aligned text."""
    rows = report.summary_rows()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    model = load_checkpoint(args.model, args, pick_device(args.device))
    config = TrustConfig(
        methods=tuple(args.methods),
        options=HeatmapOptions(smoothgrad_samples=args.smoothgrad_samples, random_seed=args.seed),
        randomisation=RandomisationConfig(stages=args.stages, mode=args.mode, seed=args.seed,
                                          threshold=args.threshold),
        perturbation=PerturbationConfig(steps=args.steps, score=args.score),
    )
    images, masks, names, record = gather_images(model, args.data, args.split, args.images)
    tracker = console_progress(unit="% of the checks")

    def progress(done: int, total: int | None, stage: str = "") -> None:
        del stage  # the stage names change within a method; one stage keeps the rate and time left honest
        tracker(100 * done // max(total or 1, 1), 100, "trust")

    indices = top_prototypes(model, images, args.prototypes)
    report = evaluate_methods(model, images, indices, config, part_masks=masks, image_names=names,
                              model_name=args.model.name, progress=progress, record=record,
                              masks_note=f"{args.data}: this dataset has no segmentation masks" if masks is None else "")
    print(summary_table(report))
    if report.masks_note:
        print(f"no mask relevance or pointing game: {report.masks_note}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report.to_json())
        print(f"wrote {args.out}")
    if args.csv is not None:
        written = write_csv(args.csv, report.summary_rows(), report.provenance)
        print("wrote " + " and ".join(str(path) for path in written))
    return 0


def gather_images(model: PrototypeModel, data: Path | None, split: str, count: int
                  ) -> tuple[Tensor, Tensor | None, list[str], PassRecord]:
    """(images (B, 3, H, W) normalised, part masks (B, H, W) or None, names, what the provenance records):
    ``count`` images spread over the synthetic set (with masks) or over the ``split`` of the dataset at
    ``data`` (masks where it has them)."""
    if data is None:
        synthetic = synthetic_images(model.input_spec, count)
        return synthetic.images, synthetic.masks, list(synthetic.names), synthetic_record(synthetic)
    return dataset_images(model.input_spec, data, split, count)
