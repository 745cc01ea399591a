"""Ground truth for characteristic explanations on the synthetic dataset (protoviz.data.synthetic).

There, pairs of classes differ in exactly one factor (colour hue, shape or texture) of one part
(``class_rules.json``). A prototype of class c that sits on part p, where c differs from a neighbour
class only in factor f of p, should rank the matching characteristic (colour -> hue, shape -> shape,
texture -> texture) first. Where a prototype sits: the part that covers most of its high-activation
boxes (95th percentile of the upsampled map) in the ``top_k`` images that activate it most, from the
dataset's per-pixel part masks (a prototype is on every part that covers at least ``min_share`` of
the labelled pixels there). This is a measurement: :func:`ground_truth` reports the share of
prototypes that rank the matching characteristic first next to the share expected by chance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from protoviz.data.datasets import ImageDataset, iterate_batches
from protoviz.errors import DatasetError
from protoviz.explain.global_ import GlobalExplanation
from protoviz.explain.params import CHARACTERISTICS, ModificationParams
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeModel
from protoviz.passes import Needs

if TYPE_CHECKING:
    from protoviz.passes import PassStep

FACTOR_TO_CHARACTERISTIC: dict[str, str] = {"colour": "hue", "shape": "shape", "texture": "texture"}
STUDY_PARAMS = ModificationParams(contrast=0.8, brightness=0.9, texture_h=30.0, texture_h_color=30.0,
                                  shape_amplitude=8.0)
"""Strengths under which the six changes are of more comparable size on the synthetic data: the
reference contrast (0.45) changes far more than its texture filter (h = 4 removes noise of a few grey
levels, not the synthetic speckle and stripes) or its 4 px warp, so contrast ranks first for most
prototypes whatever they encode. Measured next to the reference strengths, not instead of them."""


@dataclass(frozen=True)
class PrototypePart:
    """Where a prototype sits: ``shares`` of each part among the labelled (non-background) pixels of the
    prototype's top boxes, the largest one (``part``, None if the boxes hold only background) and the
    background share of those boxes."""

    prototype: int
    part: str | None
    share: float
    background: float
    shares: dict[str, float]

    def parts_on(self, min_share: float) -> list[str]:
        """The parts that cover at least ``min_share`` of the labelled pixels of the boxes."""
        return [name for name, value in self.shares.items() if value >= min_share]


@dataclass(frozen=True)
class GroundTruthCase:
    """One prototype with a known answer: what it should rank first and what it did."""

    prototype: int
    class_name: str
    parts: tuple[str, ...]
    expected: tuple[str, ...]
    top: str
    hit: bool
    rank: int  # 1-based rank of the best-placed expected characteristic among the six


@dataclass(frozen=True)
class GroundTruthReport:
    """Share of prototypes ranking the matching characteristic first, and the chance level."""

    cases: tuple[GroundTruthCase, ...]
    share: float
    chance: float
    mean_rank: float
    chance_mean_rank: float
    by_factor: dict[str, tuple[int, int]]  # characteristic -> (cases ranking it first, cases expecting it)

    def as_record(self) -> dict[str, Any]:
        return {"share": self.share, "chance": self.chance, "mean_rank": self.mean_rank,
                "chance_mean_rank": self.chance_mean_rank, "cases": len(self.cases),
                "hits": sum(c.hit for c in self.cases), "by_characteristic": self.by_factor,
                "prototypes": [vars(c) for c in self.cases]}


def _box_histograms(masks: Tensor, boxes: Tensor, parts: int) -> Tensor:
    """Pixel counts per part id inside each box: masks (B, H, W) ints, boxes (B, P, 4) -> (B, P, parts)."""
    batch, _height, width = masks.shape
    onehot = torch.nn.functional.one_hot(masks.long().clamp(0, parts - 1), parts).permute(0, 3, 1, 2).double()
    integral = torch.nn.functional.pad(onehot.cumsum(2).cumsum(3), (1, 0, 1, 0)).flatten(2)  # (B, K, (H+1)(W+1))
    y0, y1, x0, x1 = boxes.unbind(-1)

    def at(y: Tensor, x: Tensor) -> Tensor:
        index = (y * (width + 1) + x)[:, None, :].expand(batch, parts, -1)
        return integral.gather(2, index)
    counts = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)  # (B, K, P)
    return counts.permute(0, 2, 1)


class PartAccumulator:
    """Per prototype, the part-pixel counts under its 95th-percentile box in the ``top_k`` images it
    activates most: a consumer of :func:`protoviz.passes.run_pass` (shards merge by re-ranking the pools).
    State: best (P, top_k) max similarities, hists (P, top_k, parts) pixel counts per part id (0: none)."""

    def __init__(self, prototypes: int, parts: int, image_size: tuple[int, int], top_k: int = 5,
                 percentile: float = 95.0) -> None:
        self.parts, self.image_size, self.top_k, self.percentile = parts, image_size, top_k, percentile
        self.best = torch.full((prototypes, top_k), -float("inf"), dtype=torch.float64)
        self.hists = torch.zeros(prototypes, top_k, parts, dtype=torch.float64)

    @property
    def needs(self) -> Needs:
        return Needs()

    def update(self, step: PassStep) -> None:
        if step.masks is None:
            raise DatasetError("prototype parts need per-pixel part masks in every batch")
        maps = step.maps.float()
        boxes = percentile_boxes(upsample_maps(maps, self.image_size), self.percentile).cpu()
        histogram = _box_histograms(step.masks.cpu(), boxes, self.parts)  # (B, P, K)
        self._keep(maps.flatten(2).amax(2).double().cpu().t(), histogram.permute(1, 0, 2))

    def _keep(self, scores: Tensor, hists: Tensor) -> None:
        """scores (P, n), hists (P, n, parts): keep the top_k of the pool (ours and these)."""
        pool_s = torch.cat([self.best, scores], dim=1)
        pool_h = torch.cat([self.hists, hists], dim=1)
        self.best, order = pool_s.topk(self.top_k, dim=1)
        self.hists = pool_h.gather(1, order[..., None].expand(-1, -1, self.parts))

    def merge(self, other: PartAccumulator) -> None:
        self._keep(other.best, other.hists)

    def result(self) -> Tensor:
        """(P, parts) pixel counts per part summed over each prototype's top images."""
        return self.hists.sum(1)


def prototype_parts(model: PrototypeModel, dataset: ImageDataset, part_names: tuple[str, ...], top_k: int = 5,
                    batch_size: int = 32, percentile: float = 95.0) -> list[PrototypePart]:
    """Where each prototype sits, from the part masks under its boxes in its ``top_k`` images (one pass of
    :func:`protoviz.passes.run_pass`)."""
    from protoviz.passes import run_pass

    if not dataset.has_masks:
        raise DatasetError(f"{dataset.root}: prototype parts need per-pixel part masks "
                           "(the synthetic dataset has them)")
    count = model.num_prototypes
    accumulator = PartAccumulator(count, len(part_names) + 1, model.input_spec.image_size, top_k, percentile)
    run_pass(model, iterate_batches(dataset, model.input_spec, batch_size, with_masks=True), [accumulator])
    totals = accumulator.result().numpy()  # (P, K)
    out = []
    for j in range(count):
        labelled = totals[j, 1:].sum()
        everything = max(totals[j].sum(), 1.0)
        if labelled <= 0:
            out.append(PrototypePart(j, None, 0.0, 1.0, {}))
            continue
        shares = {name: float(totals[j, 1 + i] / labelled) for i, name in enumerate(part_names)}
        k = int(np.argmax(totals[j, 1:]))
        out.append(PrototypePart(j, part_names[k], shares[part_names[k]], float(totals[j, 0] / everything), shares))
    return out


def read_rules(root: str | Path) -> dict[str, Any]:
    """The synthetic dataset's ``class_rules.json``."""
    path = Path(root) / "class_rules.json"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: ground truth needs the synthetic dataset's class rules")
    return json.loads(path.read_text(encoding="utf-8"))


def relative_importance(result: GlobalExplanation) -> GlobalExplanation:
    """Each characteristic's importance divided by its mean |importance| over all prototypes: which
    characteristic matters unusually much for this prototype, compared with the model's other prototypes
    (strong global changes such as contrast otherwise rank first for most prototypes)."""
    scale = np.nanmean(np.abs(result.importance), axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(scale > 0, result.importance / scale, np.nan)
    return replace(result, importance=relative)


def ground_truth(result: GlobalExplanation, model: PrototypeModel, parts: list[PrototypePart],
                 rules: dict[str, Any], min_share: float = 0.2) -> GroundTruthReport:
    """Share of prototypes on a distinguishing part that rank the matching characteristic first.

    A prototype of class c is on part p when p covers at least ``min_share`` of the labelled pixels of
    its top boxes; its expected characteristics are those of the factors in which c differs from a
    neighbour class on such a part (several for the base class, whose neighbours differ in several
    factors of the same part; the chance level counts them)."""
    classes = model.prototype_class_identity.argmax(dim=1).tolist()
    cases = []
    for where in parts:
        on = where.parts_on(min_share)
        name = model.class_names[classes[where.prototype]]
        pairs = [pair for pair in rules["pairs"] if name in (pair["class_a"], pair["class_b"]) and pair["part"] in on]
        if not pairs:
            continue
        expected = tuple(sorted({FACTOR_TO_CHARACTERISTIC[pair["factor"]] for pair in pairs}))
        ranking = result.ranking(where.prototype)
        involved = tuple(sorted({pair["part"] for pair in pairs}))
        rank = 1 + min(ranking.index(c) for c in expected)
        cases.append(GroundTruthCase(where.prototype, name, involved, expected, ranking[0],
                                     ranking[0] in expected, rank))
    if not cases:
        raise DatasetError("no prototype sits on a part that distinguishes its class; nothing to score")
    by_factor: dict[str, tuple[int, int]] = {}
    for case in cases:
        for characteristic in case.expected:
            hits, total = by_factor.get(characteristic, (0, 0))
            by_factor[characteristic] = (hits + int(case.top == characteristic), total + 1)
    share = sum(c.hit for c in cases) / len(cases)
    total = len(CHARACTERISTICS)
    chance = float(np.mean([len(c.expected) / total for c in cases]))
    mean_rank = float(np.mean([c.rank for c in cases]))
    # the best of k random positions among n has expected rank (n + 1) / (k + 1)
    chance_rank = float(np.mean([(total + 1) / (len(c.expected) + 1) for c in cases]))
    return GroundTruthReport(tuple(cases), share, chance, mean_rank, chance_rank, by_factor)


def _alternative(part: str, factor: str, value: str) -> str | None:
    """Another value of ``factor`` for ``part`` that the generator can draw: the colour farthest in hue
    (black excluded), another shape of the part, another texture; None when the part has one shape."""
    from protoviz.data.synthetic import COLOURS, TEXTURES
    from protoviz.data.synthetic_draw import SHAPES

    if factor == "colour":
        hue = COLOURS[value][0]
        choices = [c for c in COLOURS if c != value and COLOURS[c][1] > 0.2]
        return max(choices, key=lambda c: min(abs(COLOURS[c][0] - hue), 360 - abs(COLOURS[c][0] - hue)))
    if factor == "shape":
        others = [shape for shape in SHAPES[part] if shape != value]
        return others[0] if others else None
    return next(t for t in TEXTURES if t != value)


@torch.no_grad()
def counterfactual_drops(model: PrototypeModel, cases: tuple[GroundTruthCase, ...], rules: dict[str, Any],
                         renders: int = 12, seed: int = 1000) -> dict[int, dict[str, float]]:
    """The model's own answer, from matched one-factor counterfactuals: for each case's prototype j, each
    part p it sits on and each factor f, ``renders`` birds of j's class drawn with the generator's
    seeds, and the same birds with f of p switched (same pose, background and jitter): the mean drop
    s_j(x) - s_j(x') at j's best location on x. Per characteristic (colour -> hue ...), the largest drop
    over the parts. If the planted factor does not give the largest drop, no faithful explanation of
    this model can rank it first."""
    import dataclasses as dc

    from protoviz.data.synthetic import PART_NAMES, SyntheticConfig, class_rules, render_bird
    from protoviz.data.transforms import preprocess

    settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in rules["config"].items()}
    config = SyntheticConfig(**settings)
    by_name = {rule.name: rule for rule in class_rules()}
    out: dict[int, dict[str, float]] = {}
    for case in cases:
        rule = by_name[case.class_name]
        originals = [render_bird(rule, np.random.default_rng(seed + i), config).image for i in range(renders)]
        maps = model.similarity_maps(preprocess(originals, model.input_spec).to(model.device))[:, case.prototype]
        where = maps.flatten(1).argmax(dim=1, keepdim=True)
        base = maps.flatten(1).gather(1, where)[:, 0]
        drops: dict[str, float] = {}
        for part in case.parts:
            for factor, characteristic in FACTOR_TO_CHARACTERISTIC.items():
                value = rule.part(part).factor(factor)
                other = _alternative(part, factor, value)
                if other is None:
                    continue
                changed = tuple(dc.replace(spec, **{factor: other}) if name == part else spec
                                for name, spec in zip(PART_NAMES, rule.parts))
                variant = dc.replace(rule, parts=changed)
                images = [render_bird(variant, np.random.default_rng(seed + i), config).image for i in range(renders)]
                moved = model.similarity_maps(preprocess(images, model.input_spec).to(model.device))[:, case.prototype]
                drop = float((base - moved.flatten(1).gather(1, where)[:, 0]).mean())
                drops[characteristic] = max(drops.get(characteristic, -np.inf), drop)
        out[case.prototype] = drops
    return out


def counterfactual_report(cases: tuple[GroundTruthCase, ...], drops: dict[int, dict[str, float]]) -> dict[str, Any]:
    """How many cases' largest counterfactual drop is a planted factor: the ceiling for faithful methods."""
    rows = []
    for case in cases:
        found = drops[case.prototype]
        top = max(found, key=lambda k: found[k]) if found else None
        rows.append({"prototype": case.prototype, "class_name": case.class_name, "expected": list(case.expected),
                     "drops": found, "top": top, "hit": top in case.expected})
    hits = sum(1 for r in rows if r["hit"])
    return {"hits": hits, "cases": len(rows), "share": hits / max(len(rows), 1), "prototypes": rows}


def study(checkpoint: str | Path, data: str | Path | None = None, split: str = "test", limit: int | None = None,
          batch_size: int = 16, device: str = "auto", modes: tuple[str, ...] = ("fast", "reference"),
          counterfactuals: bool = True) -> dict[str, Any]:
    """The proof-of-method numbers for one model: the ground-truth share (and chance) of Nauta et al.'s
    importance at the published strengths (per mode), at comparable strengths (STUDY_PARAMS), of the
    calibrated importance (:mod:`protoviz.explain.calibration`), the matched-counterfactual ceiling, and
    the fast-vs-reference Spearman over prototypes per characteristic."""
    from protoviz.data.datasets import open_dataset
    from protoviz.device import pick_device
    from protoviz.explain.calibration import calibrate, calibration_images, standardise
    from protoviz.explain.extras import rank_agreement
    from protoviz.explain.global_ import explain_dataset
    from protoviz.explain.params import ExplainConfig
    from protoviz.models import load_model

    model = load_model(checkpoint, device=pick_device(device))
    if data is None:
        from protoviz.data.demo import synthetic_dataset
        data = synthetic_dataset()
    rules = read_rules(data)
    dataset = open_dataset(data, split=split)
    parts = prototype_parts(model, dataset, tuple(rules["part_names"]), batch_size=batch_size)
    record: dict[str, Any] = {"model": Path(checkpoint).stem, "dataset": dataset.describe(), "limit": limit,
                              "parts": [vars(p) for p in parts], "modes": {}}
    results = {}
    for mode in modes:
        results[mode] = explain_dataset(model, dataset, ExplainConfig(mode=mode), batch_size=batch_size, limit=limit)
        record["modes"][f"published strengths ({mode})"] = ground_truth(results[mode], model, parts, rules).as_record()
    study_result = explain_dataset(model, dataset, ExplainConfig(params=STUDY_PARAMS), batch_size=batch_size,
                                   limit=limit)
    record["modes"]["comparable strengths"] = ground_truth(study_result, model, parts, rules).as_record()
    record["study_params"] = STUDY_PARAMS.to_dict()
    calibration = calibrate(model, calibration_images(dataset))
    calibrated = explain_dataset(model, dataset, ExplainConfig(params=calibration.params), batch_size=batch_size,
                                 limit=limit)
    report = ground_truth(standardise(calibrated), model, parts, rules)
    record["modes"]["calibrated"] = report.as_record()
    record["calibration"] = calibration.as_record()
    if counterfactuals:
        record["counterfactual"] = counterfactual_report(report.cases, counterfactual_drops(model, report.cases, rules))
    if {"fast", "reference"} <= set(results):
        rho = rank_agreement(results["fast"].importance, results["reference"].importance)
        record["fast_vs_reference_spearman"] = dict(zip(results["fast"].characteristics, rho.tolist()))
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m protoviz.explain.groundtruth CKPT [--data DIR] [--limit N] [--json OUT]``."""
    import argparse

    parser = argparse.ArgumentParser(description="ground truth and fast-vs-reference agreement on synthetic data")
    parser.add_argument("checkpoint")
    parser.add_argument("--data", default=None)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-counterfactuals", action="store_true", help="skip the matched-counterfactual ceiling")
    args = parser.parse_args(argv)
    record = study(args.checkpoint, args.data, args.split, args.limit, args.batch_size, args.device,
                   counterfactuals=not args.no_counterfactuals)
    for mode, numbers in record["modes"].items():
        print(f"{mode:30s}: {numbers['hits']}/{numbers['cases']} prototypes rank the matching characteristic first "
              f"(share {numbers['share']:.2f}, chance {numbers['chance']:.2f}); mean rank of the matching one "
              f"{numbers['mean_rank']:.2f} (chance {numbers['chance_mean_rank']:.2f}); by characteristic "
              f"(first, expected) {numbers['by_characteristic']}")
    if "counterfactual" in record:
        ceiling = record["counterfactual"]
        print(f"{'matched counterfactual (ceiling)':30s}: {ceiling['hits']}/{ceiling['cases']} prototypes lose the most "
              "similarity when the planted factor of their part changes (the model's own answer)")
    if "fast_vs_reference_spearman" in record:
        rho = record["fast_vs_reference_spearman"]
        print("fast vs reference Spearman over prototypes: " + ", ".join(f"{k} {v:.2f}" for k, v in rho.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
