"""`protoviz trust MODEL`: how far to trust each heatmap method on a model (the Trust page, headless).

Runs the parameter-randomisation check, deletion / insertion curves and, on the synthetic set, the
mask relevance of every chosen method; prints the summary table and writes the full report as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protoviz.device import pick_device
from protoviz.heatmaps.methods import HeatmapOptions, list_methods
from protoviz.heatmaps.trust import PerturbationConfig, RandomisationConfig
from protoviz.heatmaps.trust_report import TrustConfig, TrustReport, evaluate_methods, synthetic_images, top_prototypes
from protoviz.models.registry import load_model
from protoviz.progress import console_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trust", help="sanity checks and faithfulness of the heatmap methods")
    parser.add_argument("model", type=Path, help="checkpoint (.safetensors or a research checkpoint)")
    parser.add_argument("--family", default=None, help="family hint for research checkpoints")
    parser.add_argument("--images", type=int, default=8, help="synthetic test images, spread over the classes")
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
    model = load_model(args.model, family=args.family, device=pick_device(args.device))
    config = TrustConfig(
        methods=tuple(args.methods),
        options=HeatmapOptions(smoothgrad_samples=args.smoothgrad_samples, random_seed=args.seed),
        randomisation=RandomisationConfig(stages=args.stages, mode=args.mode, seed=args.seed,
                                          threshold=args.threshold),
        perturbation=PerturbationConfig(steps=args.steps, score=args.score),
    )
    data = synthetic_images(model.input_spec, args.images)

    indices = top_prototypes(model, data.images, args.prototypes)
    report = evaluate_methods(model, data.images, indices, config, part_masks=data.masks,
                              image_names=data.names, model_name=args.model.name,
                              progress=console_progress(unit="‰"))
    print(file=sys.stderr)
    print(summary_table(report))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report.to_json())
        print(f"wrote {args.out}")
    return 0
