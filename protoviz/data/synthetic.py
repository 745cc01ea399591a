"""Offline generator of part-annotated "bird-like" images whose classes differ by known factors.

Every class is a rule: for each part, a colour, a shape and a texture. The classes form a star around
`001.base`: each other class changes exactly one factor (colour hue, shape or texture) of one part, so
the true cause of every decision between two neighbouring classes is known. Colour changes keep HSV
saturation and value and change only the hue. The dataset is written in the CUB-200-2011 layout plus a
per-pixel part mask per image and `class_rules.json`; the same seed gives the same bytes.

Run `python -m protoviz.data.synthetic OUT_DIR [--seed N] [--size N] [--train N] [--test N]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from protoviz.data import synthetic_draw as draw
from protoviz.errors import ConfigError, DatasetError, ProtovizError
from protoviz.progress import Progress

PART_NAMES: tuple[str, ...] = ("head", "beak", "eye", "body", "wing", "tail", "legs", "crest")
"""Part names; part id k (1-based, as in parts.txt and the masks) names PART_NAMES[k - 1]."""
DRAW_ORDER: tuple[str, ...] = ("legs", "tail", "body", "wing", "head", "crest", "beak", "eye")
"""Later parts cover earlier ones, in the image and in the part mask alike."""
FACTORS: tuple[str, ...] = ("colour", "shape", "texture")
COLOURS: dict[str, tuple[float, float, float]] = {  # name -> (hue degrees, saturation, value)
    "green": (140.0, 0.65, 0.70), "purple": (280.0, 0.65, 0.70),  # head pair: same S and V
    "red": (0.0, 0.70, 0.70), "blue": (220.0, 0.70, 0.70),  # wing pair: same S and V
    "orange": (32.0, 0.85, 0.90), "black": (0.0, 0.0, 0.08), "tan": (38.0, 0.40, 0.72),
    "brown": (22.0, 0.55, 0.45), "grey": (15.0, 0.30, 0.35), "slate": (210.0, 0.30, 0.30),
}
TEXTURES: tuple[str, ...] = ("plain", "speckle", "stripes")
_STRIPE_ANGLE_DEG = 70.0  # canonical direction the stripes run along
_MARGIN_PX = 2


@dataclass(frozen=True)
class PartSpec:
    """What one part looks like: a colour name of COLOURS, a shape of synthetic_draw.SHAPES, a texture."""

    colour: str
    shape: str
    texture: str

    def factor(self, factor: str) -> str:
        """The value of one of FACTORS."""
        return str(getattr(self, factor))


@dataclass(frozen=True)
class ClassRule:
    """One class: its 1-based id, short key, one-line description and a PartSpec per PART_NAMES entry."""

    class_id: int
    key: str
    description: str
    parts: tuple[PartSpec, ...]

    @property
    def name(self) -> str:
        """The class's name as in classes.txt and its image folder, e.g. `002.blue_wing`."""
        return f"{self.class_id:03d}.{self.key}"

    def part(self, name: str) -> PartSpec:
        """The spec of the part called `name`."""
        return self.parts[PART_NAMES.index(name)]

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: id, name, description and the full rule with each colour's HSV."""
        rule = {p: {**dataclasses.asdict(s), "hsv": list(COLOURS[s.colour])} for p, s in zip(PART_NAMES, self.parts)}
        return {"id": self.class_id, "name": self.name, "description": self.description, "rule": rule}


@dataclass(frozen=True)
class ClassPair:
    """Two classes (names as in classes.txt) whose rules differ in exactly one factor of one part."""

    class_a: str
    class_b: str
    part: str
    factor: str
    value_a: str
    value_b: str


_BASE: dict[str, PartSpec] = {
    "head": PartSpec("green", "round", "plain"), "beak": PartSpec("orange", "short", "plain"),
    "eye": PartSpec("black", "round", "plain"), "body": PartSpec("tan", "oval", "plain"),
    "wing": PartSpec("red", "round", "plain"), "tail": PartSpec("brown", "fan", "plain"),
    "legs": PartSpec("grey", "thin", "plain"), "crest": PartSpec("slate", "tuft", "plain"),
}
_VARIANTS: tuple[tuple[str, str, str, str], ...] = (  # key, part, factor, new value
    ("blue_wing", "wing", "colour", "blue"), ("forked_tail", "tail", "shape", "forked"),
    ("speckled_body", "body", "texture", "speckle"), ("hooked_beak", "beak", "shape", "hooked"),
    ("purple_head", "head", "colour", "purple"), ("striped_wing", "wing", "texture", "stripes"),
    ("pointed_wing", "wing", "shape", "pointed"),
)


def class_rules() -> list[ClassRule]:
    """The classes, in id order: `001.base`, then one class per single-factor change of the base."""
    base = tuple(_BASE[p] for p in PART_NAMES)
    rules = [ClassRule(1, "base", "the base bird: " + ", ".join(
        f"{p} {s.colour} {s.shape} {s.texture}" for p, s in zip(PART_NAMES, base)), base)]
    for i, (key, part, factor, value) in enumerate(_VARIANTS):
        old = _BASE[part]
        spec = dataclasses.replace(old, **{factor: value})
        parts = tuple(spec if p == part else s for p, s in zip(PART_NAMES, base))
        text = f"the base bird with {part} {factor} {value} instead of {old.factor(factor)}"
        rules.append(ClassRule(i + 2, key, text, parts))
    return rules


def class_pairs(rules: Sequence[ClassRule] | None = None) -> list[ClassPair]:
    """Every pair of classes whose rules differ in exactly one (part, factor)."""
    pairs = []
    for a, b in combinations(class_rules() if rules is None else rules, 2):
        diffs = [(p, f) for p, sa, sb in zip(PART_NAMES, a.parts, b.parts) for f in FACTORS
                 if sa.factor(f) != sb.factor(f)]
        if len(diffs) == 1:
            p, f = diffs[0]
            pairs.append(ClassPair(a.name, b.name, p, f, a.part(p).factor(f), b.part(p).factor(f)))
    return pairs


def _varying_parts(rules: Sequence[ClassRule]) -> set[str]:
    return {p for i, p in enumerate(PART_NAMES) if len({r.parts[i] for r in rules}) > 1}


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator parameters. Hidden parts are drawn only from `hideable_parts`, which must be parts
    no class rule varies (hiding a class's distinguishing part would make its label unknowable)."""

    image_size: int = 128
    n_train_per_class: int = 60
    n_test_per_class: int = 25
    seed: int = 0
    hide_probability: float = 0.1
    hideable_parts: tuple[str, ...] = ("legs", "crest")
    scale_range: tuple[float, float] = (0.7, 1.0)
    max_rotation_deg: float = 15.0
    flip_probability: float = 0.5
    hue_jitter_deg: float = 6.0
    sv_jitter: float = 0.04
    texture_contrast: float = 0.18
    n_clutter_blobs: int = 6
    n_clutter_lines: int = 4

    def __post_init__(self) -> None:
        constant = sorted(set(PART_NAMES) - _varying_parts(class_rules()))
        checks = [
            (32 <= self.image_size <= 2048, "image_size in [32, 2048]", self.image_size),
            (self.n_train_per_class >= 0, "n_train_per_class >= 0", self.n_train_per_class),
            (self.n_test_per_class >= 0, "n_test_per_class >= 0", self.n_test_per_class),
            (self.seed >= 0, "seed >= 0", self.seed),
            (0.0 <= self.hide_probability <= 1.0, "hide_probability in [0, 1]", self.hide_probability),
            (0.0 < self.scale_range[0] <= self.scale_range[1] <= 1.0, "0 < scale_range[0] <= scale_range[1] <= 1",
             self.scale_range),
            (0.0 <= self.max_rotation_deg <= 45.0, "max_rotation_deg in [0, 45]", self.max_rotation_deg),
            (0.0 <= self.flip_probability <= 1.0, "flip_probability in [0, 1]", self.flip_probability),
            (0.0 <= self.hue_jitter_deg <= 20.0, "hue_jitter_deg in [0, 20] (class hues are >= 140 apart)",
             self.hue_jitter_deg),
            (0.0 <= self.sv_jitter <= 0.08, "sv_jitter in [0, 0.08]", self.sv_jitter),
            (0.05 <= self.texture_contrast <= 0.2, "texture_contrast in [0.05, 0.2]", self.texture_contrast),
            (self.n_clutter_blobs >= 0 and self.n_clutter_lines >= 0, "clutter counts >= 0",
             (self.n_clutter_blobs, self.n_clutter_lines)),
            (set(self.hideable_parts) <= set(constant), f"hideable_parts among the parts no class varies {constant}",
             self.hideable_parts),
        ]
        for ok, expected, got in checks:
            if not ok:
                raise ConfigError(f"SyntheticConfig: expected {expected}, got {got!r}")


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered bird. `part_mask` (H, W) uint8: 0 background, k = part id (PART_NAMES[k - 1]);
    `keypoints` (K, 2) float (x, y) pixel coordinates on their part, (0, 0) where not visible;
    `visible` (K,) bool; `box` the object's tight box (x, y, w, h) in pixels; `label` 0-based class."""

    image: Image.Image
    part_mask: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    box: tuple[float, float, float, float]
    label: int


@dataclass(frozen=True)
class SyntheticItem:
    """A sample with its place in the dataset: 1-based image id, path relative to images/, split."""

    image_id: int
    relpath: str
    is_train: bool
    sample: SyntheticSample


def _sample_pose(rng: np.random.Generator, config: SyntheticConfig) -> draw.Pose:
    centre, radius = draw.reference_circle()
    full = (config.image_size - 2 * _MARGIN_PX) / (2.0 * radius)  # fits in any rotation at scale 1
    scale = full * rng.uniform(*config.scale_range)
    angle = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    flip = bool(rng.random() < config.flip_probability)
    # translation range from every shape variant, so the pose never depends on the class
    pts = draw.Pose((float(centre[0]), float(centre[1])), scale, angle, flip, (0.0, 0.0)).apply(draw.all_points())
    lo = _MARGIN_PX - pts.min(axis=0)
    hi = config.image_size - 1 - _MARGIN_PX - pts.max(axis=0)
    offset = rng.uniform(lo, np.maximum(lo, hi))
    return draw.Pose((float(centre[0]), float(centre[1])), scale, angle, flip, (float(offset[0]), float(offset[1])))


def _keypoint(part_mask: np.ndarray, part_id: int) -> tuple[float, float] | None:
    """The centroid of the part's pixels rounded to 0.1 px, or the part pixel nearest it where the
    centroid's pixel (rounded either way at .5) is not on the part; None if the part has no pixel."""
    ys, xs = np.nonzero(part_mask == part_id)
    if xs.size == 0:
        return None
    cx, cy = float(xs.mean()), float(ys.mean())
    kx, ky = round(cx, 1), round(cy, 1)
    on_part = all(part_mask[int(r(ky)), int(r(kx))] == part_id for r in (np.rint, lambda v: np.floor(v + 0.5)))
    if on_part:
        return kx, ky
    i = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    return float(xs[i]), float(ys[i])


def render_bird(rule: ClassRule, rng: np.random.Generator, config: SyntheticConfig) -> SyntheticSample:
    """Draw one bird of class `rule` on clutter, with its part mask, keypoints and box.

    The random numbers drawn do not depend on the rule, so two rules rendered from equally seeded
    generators give the same pose, background and jitter, and differ only where their rules differ."""
    size = config.image_size
    pose = _sample_pose(rng, config)
    image = draw.clutter_background(rng, size, config.n_clutter_blobs, config.n_clutter_lines)
    jitter = rng.uniform(-1.0, 1.0, (len(PART_NAMES), 3)) * [config.hue_jitter_deg, config.sv_jitter, config.sv_jitter]
    hidden = (rng.random(len(PART_NAMES)) < config.hide_probability) & np.isin(PART_NAMES, config.hideable_parts)
    cell = max(2, size // 64)
    fields = {"plain": np.zeros((size, size)), "speckle": draw.speckle_field(rng, size, cell),
              "stripes": draw.stripe_field(size, cell, pose.direction_deg(_STRIPE_ANGLE_DEG))}
    part_mask = np.zeros((size, size), dtype=np.uint8)
    for name in DRAW_ORDER:
        k = PART_NAMES.index(name)
        if hidden[k]:
            continue
        spec = rule.parts[k]
        region = draw.raster([pose.apply(p) for p in draw.SHAPES[name][spec.shape]], size)
        hue, sat, val = COLOURS[spec.colour]
        unit = draw.hsv_unit_rgb(hue + jitter[k, 0], float(np.clip(sat + jitter[k, 1], 0.0, 1.0)))
        value = np.clip(val + jitter[k, 2] + config.texture_contrast * fields[spec.texture][region], 0.0, 1.0)
        image[region] = 255.0 * value[:, None] * unit
        part_mask[region] = k + 1
    keypoints = np.zeros((len(PART_NAMES), 2))
    visible = np.zeros(len(PART_NAMES), dtype=bool)
    for k in range(len(PART_NAMES)):
        kp = _keypoint(part_mask, k + 1)
        if kp is not None:
            keypoints[k], visible[k] = kp, True
    ys, xs = np.nonzero(part_mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
    rgb = Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8), "RGB")
    return SyntheticSample(rgb, part_mask, keypoints, visible, box, rule.class_id - 1)


def iter_items(config: SyntheticConfig) -> Iterator[SyntheticItem]:
    """Render the dataset lazily, class by class, train images first; sample i of class c is drawn
    from `default_rng([seed, c, i])`, so any one sample can be rendered on its own."""
    image_id = 0
    for c, rule in enumerate(class_rules()):
        for i in range(config.n_train_per_class + config.n_test_per_class):
            image_id += 1
            sample = render_bird(rule, np.random.default_rng([config.seed, c, i]), config)
            relpath = f"{rule.name}/{rule.key}_{i + 1:04d}.png"
            yield SyntheticItem(image_id, relpath, i < config.n_train_per_class, sample)


def render_dataset(config: SyntheticConfig, split: Literal["all", "train", "test"] = "all") -> list[SyntheticSample]:
    """The samples of one split in memory, for tests and demos without disk I/O."""
    if split not in ("all", "train", "test"):
        raise ConfigError(f"render_dataset: expected split 'all', 'train' or 'test', got {split!r}")
    return [it.sample for it in iter_items(config) if split == "all" or it.is_train == (split == "train")]


_OUTPUTS = ("images", "masks", "parts", "images.txt", "classes.txt", "image_class_labels.txt",
            "train_test_split.txt", "bounding_boxes.txt", "class_rules.json")


def _prepare_root(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise DatasetError(f"generate_dataset: expected a folder at {root}, found a file")
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise DatasetError(f"generate_dataset: {root} is not empty; pass overwrite=True to replace a dataset")
        for name in _OUTPUTS:  # remove only what this generator writes
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    (root / "parts").mkdir(parents=True, exist_ok=True)


def _rules_json(config: SyntheticConfig) -> str:
    rules = class_rules()
    doc = {
        "generator": "protoviz.data.synthetic", "format_version": 1, "seed": config.seed,
        "config": dataclasses.asdict(config), "part_names": list(PART_NAMES), "draw_order": list(DRAW_ORDER),
        "colours": {k: list(v) for k, v in COLOURS.items()}, "classes": [r.to_json() for r in rules],
        "pairs": [dataclasses.asdict(p) for p in class_pairs(rules)],
    }
    return json.dumps(doc, indent=2) + "\n"


def generate_dataset(root: Path, config: SyntheticConfig, progress: bool | Progress = False,
                     overwrite: bool = False) -> Path:
    """Write the dataset in the CUB-200-2011 layout under `root`, plus masks/<relpath> (uint8 part ids)
    and class_rules.json; returns `root`. `progress`: True prints `done/total` to stderr, or a
    :class:`~protoviz.progress.Progress`. A non-empty `root` raises DatasetError unless `overwrite`."""
    root = Path(root)
    _prepare_root(root, overwrite)
    rules = class_rules()
    total = len(rules) * (config.n_train_per_class + config.n_test_per_class)
    lines: dict[str, list[str]] = {n: [] for n in ("images", "labels", "split", "boxes", "locs")}
    for item in iter_items(config):
        s, i = item.sample, item.image_id
        for folder, img in (("images", s.image), ("masks", Image.fromarray(s.part_mask, "L"))):
            path = root / folder / item.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path, format="PNG")
        lines["images"].append(f"{i} {item.relpath}")
        lines["labels"].append(f"{i} {s.label + 1}")
        lines["split"].append(f"{i} {int(item.is_train)}")
        lines["boxes"].append(f"{i} " + " ".join(f"{v:.1f}" for v in s.box))
        lines["locs"].extend(f"{i} {k + 1} {x:.1f} {y:.1f} {int(v)}" for k, ((x, y), v)
                             in enumerate(zip(s.keypoints, s.visible)))
        if progress is True and (i % max(1, total // 20) == 0 or i == total):
            print(f"synthetic: {i}/{total} images", file=sys.stderr)
        elif callable(progress):
            progress(i, total, "synthetic images")
    files = {"images.txt": lines["images"], "image_class_labels.txt": lines["labels"],
             "train_test_split.txt": lines["split"], "bounding_boxes.txt": lines["boxes"],
             "classes.txt": [f"{r.class_id} {r.name}" for r in rules],
             "parts/parts.txt": [f"{k + 1} {p}" for k, p in enumerate(PART_NAMES)],
             "parts/part_locs.txt": lines["locs"]}
    for name, rows in files.items():
        (root / name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    (root / "class_rules.json").write_text(_rules_json(config), encoding="utf-8")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a synthetic dataset to OUT_DIR; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m protoviz.data.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--train", type=int, default=60, help="training images per class")
    parser.add_argument("--test", type=int, default=25, help="test images per class")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT_DIR")
    args = parser.parse_args(argv)
    try:
        config = SyntheticConfig(image_size=args.size, n_train_per_class=args.train,
                                 n_test_per_class=args.test, seed=args.seed)
        generate_dataset(args.out_dir, config, progress=True, overwrite=args.overwrite)
    except ProtovizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
