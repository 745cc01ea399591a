"""Tests of the synthetic part-annotated bird generator: annotations, determinism, CUB layout, class pairs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from protoviz.data.synthetic import (
    COLOURS,
    FACTORS,
    PART_NAMES,
    ClassRule,
    SyntheticConfig,
    class_pairs,
    class_rules,
    generate_dataset,
    main,
    render_bird,
    render_dataset,
)
from protoviz.errors import ConfigError, DatasetError

K = len(PART_NAMES)
TINY = SyntheticConfig(image_size=64, n_train_per_class=2, n_test_per_class=1, seed=3)


def _tree_hash(root: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def _hsv(image: Image.Image) -> np.ndarray:
    """(H, W, 3) float: hue in degrees, saturation and value in [0, 1]."""
    hsv = np.asarray(image.convert("HSV"), dtype=np.float64)
    return hsv * np.array([360.0 / 256.0, 1 / 255.0, 1 / 255.0])


def _mean_hue(hue_deg: np.ndarray) -> float:
    a = np.deg2rad(hue_deg)
    return float(np.rad2deg(np.arctan2(np.sin(a).mean(), np.cos(a).mean())) % 360.0)


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def test_visible_keypoints_lie_on_their_part_and_hidden_parts_have_no_pixels() -> None:
    config = SyntheticConfig(image_size=96, n_train_per_class=5, n_test_per_class=2, hide_probability=0.3)
    samples = render_dataset(config)
    assert len(samples) == 8 * 7
    n_hidden = 0
    for s in samples:
        assert s.part_mask.shape == (96, 96) and s.part_mask.dtype == np.uint8
        assert s.keypoints.shape == (K, 2) and s.visible.shape == (K,)
        for k in range(K):
            has_pixels = bool((s.part_mask == k + 1).any())
            assert bool(s.visible[k]) == has_pixels
            if s.visible[k]:
                x, y = s.keypoints[k]
                assert s.part_mask[int(np.rint(y)), int(np.rint(x))] == k + 1
                assert s.part_mask[int(np.floor(y + 0.5)), int(np.floor(x + 0.5))] == k + 1
            else:
                n_hidden += 1
                assert tuple(s.keypoints[k]) == (0.0, 0.0)
    assert n_hidden > 0


def test_hide_probability_one_hides_exactly_the_hideable_parts() -> None:
    config = SyntheticConfig(image_size=96, n_train_per_class=1, n_test_per_class=0, hide_probability=1.0)
    hideable = [PART_NAMES.index(p) for p in config.hideable_parts]
    for s in render_dataset(config):
        for k in range(K):
            assert bool(s.visible[k]) == (k not in hideable)
            assert bool((s.part_mask == k + 1).any()) == (k not in hideable)


def test_object_fully_inside_image_and_box_is_tight() -> None:
    for s in render_dataset(SyntheticConfig(image_size=64, n_train_per_class=6, n_test_per_class=0, seed=9)):
        m = s.part_mask > 0
        assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
        ys, xs = np.nonzero(m)
        assert s.box == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        assert s.box[2] > 20 and s.box[3] > 12  # big enough to learn from


def test_colour_jitter_stays_near_the_rule_hue() -> None:
    rules = class_rules()
    for s in render_dataset(SyntheticConfig(n_train_per_class=3, n_test_per_class=0)):
        hsv = _hsv(s.image)
        for part in ("head", "wing"):
            pixels = s.part_mask == PART_NAMES.index(part) + 1
            want = COLOURS[rules[s.label].part(part).colour][0]
            assert _hue_distance(_mean_hue(hsv[..., 0][pixels]), want) < 12.0


def test_same_seed_same_bytes_and_different_seed_different_bytes(tmp_path: Path) -> None:
    a = _tree_hash(generate_dataset(tmp_path / "a", TINY))
    b = _tree_hash(generate_dataset(tmp_path / "b", TINY))
    c = _tree_hash(generate_dataset(tmp_path / "c", SyntheticConfig(image_size=64, n_train_per_class=2,
                                                                   n_test_per_class=1, seed=4)))
    assert a == b
    assert a != c


def test_written_files_parse_in_cub_layout(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "cub", TINY)
    n_classes, per_class = 8, 3
    n = n_classes * per_class
    classes = _rows(root / "classes.txt")
    assert [int(r[0]) for r in classes] == list(range(1, n_classes + 1))
    names = {int(r[0]): r[1] for r in classes}
    images = _rows(root / "images.txt")
    labels = _rows(root / "image_class_labels.txt")
    split = _rows(root / "train_test_split.txt")
    boxes = _rows(root / "bounding_boxes.txt")
    assert [int(r[0]) for r in images] == list(range(1, n + 1))
    for rows in (labels, split, boxes):
        assert [int(r[0]) for r in rows] == list(range(1, n + 1))
    assert sum(int(r[1]) for r in split) == n_classes * 2
    assert [r[1] for r in _rows(root / "parts" / "parts.txt")] == list(PART_NAMES)
    locs = _rows(root / "parts" / "part_locs.txt")
    assert len(locs) == n * K
    for (image_id, rel), (_, label), box in zip(images, labels, boxes):
        assert rel.split("/")[0] == names[int(label)]
        image = Image.open(root / "images" / rel)
        assert image.mode == "RGB" and image.size == (64, 64)
        mask = np.asarray(Image.open(root / "masks" / rel))
        assert mask.dtype == np.uint8 and mask.shape == (64, 64) and mask.max() <= K
        x, y, w, h = map(float, box[1:])
        rows = [r for r in locs if r[0] == image_id]
        assert [int(r[1]) for r in rows] == list(range(1, K + 1))
        for r in rows:
            if r[4] == "0":
                assert r[2:] == ["0.0", "0.0", "0"]
                assert not (mask == int(r[1])).any()
            else:
                kx, ky = float(r[2]), float(r[3])
                assert mask[int(np.rint(ky)), int(np.rint(kx))] == int(r[1])
                assert x <= kx < x + w and y <= ky < y + h
    doc = json.loads((root / "class_rules.json").read_text(encoding="utf-8"))
    assert doc["seed"] == TINY.seed and doc["part_names"] == list(PART_NAMES)
    assert [c["name"] for c in doc["classes"]] == [names[i] for i in range(1, n_classes + 1)]
    assert len(doc["pairs"]) == len(class_pairs()) >= n_classes - 1


def test_rules_are_distinct_and_pairs_connect_every_class() -> None:
    rules = class_rules()
    assert len({r.parts for r in rules}) == len(rules) == 8
    pairs = class_pairs()
    assert {p.factor for p in pairs} == set(FACTORS)
    reached, frontier = {rules[0].name}, [rules[0].name]
    while frontier:
        here = frontier.pop()
        for p in pairs:
            for a, b in ((p.class_a, p.class_b), (p.class_b, p.class_a)):
                if a == here and b not in reached:
                    reached.add(b)
                    frontier.append(b)
    assert reached == {r.name for r in rules}


def _one_pair_diff(rule_a: dict, rule_b: dict) -> list[tuple[str, str]]:
    return [(p, f) for p in PART_NAMES for f in FACTORS if rule_a[p][f] != rule_b[p][f]]


def test_every_json_pair_differs_in_one_factor_and_renders_differently(tmp_path: Path) -> None:
    doc = json.loads((generate_dataset(tmp_path / "d", TINY) / "class_rules.json").read_text(encoding="utf-8"))
    by_name = {c["name"]: c["rule"] for c in doc["classes"]}
    rules: dict[str, ClassRule] = {r.name: r for r in class_rules()}
    config = SyntheticConfig(hide_probability=0.0)
    for pair in doc["pairs"]:
        ra, rb = by_name[pair["class_a"]], by_name[pair["class_b"]]
        part, factor = pair["part"], pair["factor"]
        assert _one_pair_diff(ra, rb) == [(part, factor)]
        assert (ra[part][factor], rb[part][factor]) == (pair["value_a"], pair["value_b"])
        if factor == "colour":  # a pure hue change
            assert ra[part]["hsv"][1:] == rb[part]["hsv"][1:] and ra[part]["hsv"][0] != rb[part]["hsv"][0]
        k = PART_NAMES.index(part) + 1
        for seed in range(3):  # equal generators: same pose, background and jitter
            a = render_bird(rules[pair["class_a"]], np.random.default_rng(seed), config)
            b = render_bird(rules[pair["class_b"]], np.random.default_rng(seed), config)
            pa, pb = a.part_mask == k, b.part_mask == k
            changed = np.any(np.asarray(a.image) != np.asarray(b.image), axis=2)
            assert changed.any() and not (changed & ~(pa | pb)).any()  # only that part's pixels change
            if factor in ("colour", "texture"):
                assert np.array_equal(a.part_mask, b.part_mask)
            ha, hb = _hsv(a.image), _hsv(b.image)
            if factor == "colour":
                assert _hue_distance(_mean_hue(ha[..., 0][pa]), _mean_hue(hb[..., 0][pb])) > 90.0
                assert abs(ha[..., 1][pa].mean() - hb[..., 1][pb].mean()) < 0.05
                assert abs(ha[..., 2][pa].mean() - hb[..., 2][pb].mean()) < 0.05
            elif factor == "texture":
                plain_std, textured_std = sorted([ha[..., 2][pa].std(), hb[..., 2][pb].std()])
                assert plain_std < 0.02 and textured_std > 0.1
                assert abs(ha[..., 2][pa].mean() - hb[..., 2][pb].mean()) < 0.05  # same mean colour
            else:
                iou = (pa & pb).sum() / (pa | pb).sum()
                assert iou < 0.8


@pytest.mark.parametrize("kwargs", [
    {"image_size": 31}, {"image_size": 16}, {"n_train_per_class": -1}, {"n_test_per_class": -2},
    {"hide_probability": 1.5}, {"hideable_parts": ("wing",)}, {"hideable_parts": ("wings",)},
    {"scale_range": (0.9, 0.5)}, {"hue_jitter_deg": 60.0}, {"seed": -1},
])
def test_bad_config_raises_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        SyntheticConfig(**kwargs)


def test_render_dataset_splits_and_bad_split() -> None:
    assert len(render_dataset(TINY, "train")) == 16 and len(render_dataset(TINY, "test")) == 8
    assert [s.label for s in render_dataset(TINY, "test")] == list(range(8))
    with pytest.raises(ConfigError):
        render_dataset(TINY, "val")  # type: ignore[arg-type]


def test_non_empty_root_needs_overwrite(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "r", TINY)
    (root / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(DatasetError):
        generate_dataset(root, TINY)
    before = _tree_hash(root)
    generate_dataset(root, TINY, overwrite=True)
    assert _tree_hash(root) == before and (root / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_command_line_writes_dataset(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert main([str(out), "--seed", "3", "--size", "64", "--train", "2", "--test", "1"]) == 0
    assert _tree_hash(out) == _tree_hash(generate_dataset(tmp_path / "api", TINY))
    assert main([str(tmp_path / "bad"), "--size", "8"]) == 2
