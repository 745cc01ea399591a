"""Beyond the reference: noise floor, region-only comparison, train/test agreement, redundancy flags."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image
from scipy.stats import rankdata

from protoviz.data.transforms import to_unit_tensor
from protoviz.errors import ConfigError, ModelError
from protoviz.explain.global_ import GlobalExplanation
from protoviz.explain.local import LocalExplanation, explain_images, explain_units
from protoviz.explain.params import CHARACTERISTICS, IDENTITY, ExplainConfig
from protoviz.models.base import PrototypeModel


@dataclass(frozen=True)
class NoiseFloor:
    """|Delta| of a modification that should change nothing: mean and max over images and prototypes,
    and the similarity-weighted mean per prototype (P,)."""

    name: str
    mean_abs: float
    max_abs: float
    per_prototype: np.ndarray


def _floor(name: str, local: LocalExplanation, column: int) -> NoiseFloor:
    delta = local.deltas[:, column].double().abs()  # (B, P)
    w = local.similarities.double().clamp_min(0.0)
    per = (w * delta).sum(0) / w.sum(0).clamp_min(1e-12)
    return NoiseFloor(name, float(delta.mean()), float(delta.max()), per.numpy())


def noise_floor(model: PrototypeModel, images: Sequence[Image.Image],
                config: ExplainConfig | None = None) -> NoiseFloor:
    """The identity modification through the mode's own path (reference: a PIL RGB->HSV->RGB uint8 round
    trip; fast: the float RGB->HSV->RGB round trip), |Delta| over all prototypes."""
    config = replace(config or ExplainConfig(), noise_floor=True, region="whole")
    local = explain_images(model, images, config)
    return _floor(IDENTITY, local, local.characteristics.index(IDENTITY))


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    """Encode as JPEG at ``quality`` and decode again, as the reference code did with every variant."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def jpeg_noise_floor(model: PrototypeModel, images: Sequence[Image.Image], quality: int = 75) -> NoiseFloor:
    """|Delta| that the reference's JPEG re-encoding (quality 75 colour, 95 texture/shape) adds to an
    unmodified image: what protoviz avoids by keeping images in memory."""
    if not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality must be within [1, 100], got {quality}")
    spec = model.input_spec
    unit = to_unit_tensor(list(images), spec).to(model.device)
    encoded = to_unit_tensor([jpeg_round_trip(im, quality) for im in images], spec).to(model.device)
    name = f"jpeg{quality}"
    local = explain_units(model, unit, encoded[:, None], ExplainConfig(mode="reference"), names=(name,))
    return _floor(name, local, 0)


def region_comparison(model: PrototypeModel, image: Image.Image, prototypes: Sequence[int],
                      config: ExplainConfig | None = None) -> dict[str, LocalExplanation]:
    """The same prototypes explained with whole-image, inside-box and outside-box modifications."""
    config = config or ExplainConfig()
    return {region: explain_images(model, [image], replace(config, region=region), prototypes)
            for region in ("whole", "inside", "outside")}


@dataclass(frozen=True)
class Agreement:
    """Per-prototype correlation between two global explanations over the characteristic vector (P,),
    NaN where a vector is constant; and the median over prototypes."""

    pearson: np.ndarray
    spearman: np.ndarray

    @property
    def median_pearson(self) -> float:
        return float(np.nanmedian(self.pearson)) if np.isfinite(self.pearson).any() else float("nan")

    @property
    def median_spearman(self) -> float:
        return float(np.nanmedian(self.spearman)) if np.isfinite(self.spearman).any() else float("nan")


def _characteristic_columns(result: GlobalExplanation) -> np.ndarray:
    index = [result.characteristics.index(n) for n in CHARACTERISTICS if n in result.characteristics]
    return result.importance[:, index]


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(1) / denominator, np.nan)


def agreement(first: GlobalExplanation, second: GlobalExplanation) -> Agreement:
    """Per prototype, Pearson and Spearman correlation of the six importances of two runs (e.g. train
    vs test split): does the prototype rely on the same characteristics on both?"""
    a, b = _characteristic_columns(first), _characteristic_columns(second)
    if a.shape != b.shape:
        raise ConfigError(f"agreement needs two explanations of the same prototypes, got {a.shape} and {b.shape}")
    spearman = _row_pearson(rankdata(a, axis=1), rankdata(b, axis=1))
    return Agreement(pearson=_row_pearson(a, b), spearman=spearman)


def rank_agreement(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per characteristic, Spearman correlation over prototypes of two (P, M) importance matrices (M,):
    e.g. fast vs reference mode."""
    if first.shape != second.shape:
        raise ConfigError(f"rank agreement needs matrices of the same shape, got {first.shape} and {second.shape}")
    return _row_pearson(rankdata(first, axis=0).T, rankdata(second, axis=0).T)


@dataclass(frozen=True)
class RedundantPair:
    """Two prototypes with near-identical explanations and near-identical source patches."""

    first: int
    second: int
    explanation_cosine: float
    embedding_cosine: float | None
    patch_correlation: float | None


def _cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def _patch_correlations(model: PrototypeModel, size: int = 16) -> np.ndarray | None:
    """(P, P) Pearson correlation of the source patch thumbnails resized to size x size, NaN where unknown."""
    sources = model.prototype_sources
    if not sources or all(s is None or s.patch_thumbnail is None for s in sources):
        return None
    rows = []
    for j in range(model.num_prototypes):
        source = sources[j] if j < len(sources) else None
        if source is None or source.patch_thumbnail is None:
            rows.append(np.full(size * size * 3, np.nan))
            continue
        patch = Image.fromarray(np.asarray(source.patch_thumbnail, dtype=np.uint8)).resize((size, size))
        rows.append(np.asarray(patch, dtype=np.float64).ravel())
    vectors = np.stack(rows)
    vectors = vectors - vectors.mean(axis=1, keepdims=True)
    return _cosine_matrix(vectors)


def _embedding_cosines(model: PrototypeModel) -> np.ndarray | None:
    try:
        embeddings = model.prototype_embeddings
    except ModelError:
        return None
    vectors = embeddings.detach().double().cpu().reshape(model.num_prototypes, -1).numpy()
    # centred: ProtoPNet's prototypes live in a sigmoid (all-positive) space where raw cosines are all high
    return _cosine_matrix(vectors - vectors.mean(axis=0, keepdims=True))


def redundancy(result: GlobalExplanation, model: PrototypeModel, explanation_threshold: float = 0.99,
               embedding_threshold: float = 0.95, patch_threshold: float = 0.95,
               norm_ratio: float = 1.25) -> list[RedundantPair]:
    """Pairs of prototypes whose explanation vectors are near-identical (cosine >= threshold and norms
    within ``norm_ratio``) AND whose sources are near-identical (cosine of the centred prototype
    embeddings, or correlation of the source patches, >= its threshold). Prototypes with an unmeasured (NaN) explanation are skipped."""
    vectors = np.nan_to_num(_characteristic_columns(result), nan=0.0)
    explanation = _cosine_matrix(vectors)
    norms = np.linalg.norm(vectors, axis=1)
    embedding, patches = _embedding_cosines(model), _patch_correlations(model)
    if embedding is None and patches is None:
        raise ModelError("redundancy needs prototype embeddings or source patches; this model has neither")
    valid = np.isfinite(_characteristic_columns(result)).all(axis=1) & (norms > 0)
    low, high = np.minimum.outer(norms, norms), np.maximum.outer(norms, norms)
    similar = (explanation >= explanation_threshold) & (high <= norm_ratio * low) & np.outer(valid, valid)
    source = np.zeros_like(similar)
    if embedding is not None:
        source |= embedding >= embedding_threshold
    if patches is not None:
        source |= np.nan_to_num(patches, nan=-1.0) >= patch_threshold
    pairs = []
    for i, j in np.argwhere(np.triu(similar & source, k=1)):
        emb = None if embedding is None else float(embedding[i, j])
        patch = None if patches is None or not np.isfinite(patches[i, j]) else float(patches[i, j])
        pairs.append(RedundantPair(int(i), int(j), float(explanation[i, j]), emb, patch))
    return pairs


def noise_floor_summary(floor: NoiseFloor) -> dict[str, float | str]:
    """A JSON-able summary of a noise floor."""
    return {"name": floor.name, "mean_abs_delta": floor.mean_abs, "max_abs_delta": floor.max_abs}


__all__ = [
    "Agreement",
    "NoiseFloor",
    "RedundantPair",
    "agreement",
    "jpeg_noise_floor",
    "jpeg_round_trip",
    "noise_floor",
    "noise_floor_summary",
    "rank_agreement",
    "redundancy",
    "region_comparison",
]
