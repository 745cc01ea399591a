"""The "this looks like that" explanation: contributions, ranking, heatmaps, boxes, sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.data.transforms import preprocess
from protoviz.heatmaps.boxes import percentile_box
from protoviz.heatmaps.explanation import explain_image
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.base import PrototypeSource
from tests.conftest import make_tiny_model


def random_images(count: int, size: int = 64, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size + 7 * i, size, 3), dtype=np.uint8)) for i in range(count)]


@pytest.mark.parametrize(("similarity", "sets"), [("log", ("prototypes",)), ("cosine", ("support", "trivial"))])
def test_all_contributions_sum_to_the_class_logit(similarity: str, sets: tuple[str, ...]) -> None:
    model = make_tiny_model(similarity=similarity, sets=sets, seed=2).double()
    torch.manual_seed(0)
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    explanations = explain_image(model, x, top_k=4)
    for explanation in explanations:
        assert explanation.contributions.shape == (model.num_prototypes,)
        assert explanation.total_contribution == pytest.approx(explanation.class_logit, abs=1e-5)
        assert explanation.sums_to_logit


def test_a_head_with_a_bias_does_not_claim_an_exact_split() -> None:
    model = make_tiny_model(seed=7)
    bias = torch.tensor([0.5, -1.0, 2.0])
    model.logits_from_similarities = lambda maps, pooled: pooled @ model.class_weights.t() + bias  # type: ignore[method-assign]
    explanation = explain_image(model, torch.randn(1, 3, 64, 64))[0]
    assert not explanation.sums_to_logit
    expected = explanation.class_logit - float(bias[explanation.predicted])
    assert explanation.total_contribution == pytest.approx(expected, abs=1e-5)


def test_top_k_are_the_largest_contributions_with_their_parts() -> None:
    model = make_tiny_model(seed=1, classes=4, per_class=3)
    images = random_images(2)
    explanations = explain_image(model, images, top_k=5, names=["a.png", "b.png"])
    x = preprocess(images, model.input_spec)
    with torch.no_grad():
        output = model(x)
    for i, explanation in enumerate(explanations):
        assert explanation.name == ["a.png", "b.png"][i]
        predicted = int(output.logits[i].argmax())
        assert explanation.predicted == predicted
        expected = output.max_similarities[i] * model.class_weights[predicted]
        ranked = [p.index for p in explanation.prototypes]
        assert ranked == [j for j in expected.topk(5).indices.tolist() if expected[j] > 0]
        against = [p.index for p in explanation.against]
        assert against == [j for j in (-expected).topk(5).indices.tolist() if expected[j] < 0]
        contributions = [p.contribution for p in explanation.prototypes]
        assert contributions == sorted(contributions, reverse=True) and all(c > 0 for c in contributions)
        assert all(p.contribution < 0 and p.side == "against" for p in explanation.against)
        for evidence in explanation.cards:
            j = evidence.index
            assert evidence.similarity == pytest.approx(float(output.max_similarities[i, j]), rel=1e-6)
            assert evidence.weight == pytest.approx(float(model.class_weights.detach()[predicted, j]))
            assert evidence.contribution == pytest.approx(evidence.similarity * evidence.weight, rel=1e-5)
            assert evidence.prototype_class == j // 3
            heat = upsample_maps(output.similarity_maps[i, j], (64, 64)).numpy()
            np.testing.assert_allclose(evidence.heatmap, heat, atol=1e-5)
            assert evidence.box == percentile_box(evidence.heatmap)
            row, col = evidence.map_location
            assert output.similarity_maps[i, j, row, col] == output.similarity_maps[i, j].max()


def test_top_classes_are_softmax_probabilities() -> None:
    model = make_tiny_model(seed=3, classes=7)
    explanation = explain_image(model, random_images(1), top_k=2)[0]
    expected = torch.softmax(torch.from_numpy(explanation.logits), dim=0).numpy()
    np.testing.assert_allclose(explanation.probabilities, expected, rtol=1e-5)
    assert len(explanation.top_classes) == 5
    assert [c for c, _, _ in explanation.top_classes] == np.argsort(-expected)[:5].tolist()
    assert explanation.top_classes[0][0] == explanation.predicted
    assert explanation.image.shape == (64, 64, 3) and explanation.image.dtype == np.uint8
    assert explanation.map_size == (4, 4)


def test_probs_output_is_used_directly() -> None:
    model = make_tiny_model(seed=4)
    model.output_kind = "probs"  # type: ignore[misc]
    x = torch.randn(1, 3, 64, 64)
    explanation = explain_image(model, x)[0]
    np.testing.assert_allclose(explanation.probabilities, explanation.logits)


def test_sources_are_attached_and_records_are_json_able() -> None:
    import json

    model = make_tiny_model(seed=5)
    patch = np.full((8, 8, 3), 200, np.uint8)
    model.prototype_sources = [PrototypeSource(image_id=f"img{j}", box=(0, 8, 0, 8), patch_thumbnail=patch)
                               for j in range(model.num_prototypes)]
    explanation = explain_image(model, random_images(1), top_k=3)[0]
    assert all(p.source is not None and p.source.image_id == f"img{p.index}" for p in explanation.cards)
    record = json.loads(json.dumps(explanation.as_record()))
    assert record["predicted_name"] == explanation.predicted_name
    assert len(record["prototypes"]) == len(explanation.prototypes) and len(record["against"]) == len(explanation.against)
    assert sum(step["value"] for step in record["decision"]["steps"]) == pytest.approx(record["class_logit"], abs=1e-4)
    assert record["settings"]["percentile"] == 95.0


def test_top_k_is_capped_by_the_number_of_prototypes() -> None:
    model = make_tiny_model(seed=6, classes=2, per_class=1)
    explanation = explain_image(model, torch.randn(1, 3, 64, 64), top_k=50)[0]
    assert len(explanation.prototypes) + len(explanation.against) == 2  # own class for, the other against


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_explanation() -> None:
    model = make_tiny_model(seed=8, classes=4, per_class=3)
    images = random_images(3, seed=2)
    on_cpu = explain_image(model, images, top_k=4)
    on_gpu = explain_image(model.to("cuda"), images, top_k=4)
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        assert gpu.settings["device"].startswith("cuda")
        assert cpu.predicted == gpu.predicted
        np.testing.assert_allclose(gpu.contributions, cpu.contributions, rtol=1e-4, atol=1e-5)
        assert [p.index for p in cpu.prototypes] == [p.index for p in gpu.prototypes]
        for a, b in zip(cpu.prototypes, gpu.prototypes, strict=True):
            np.testing.assert_allclose(b.heatmap, a.heatmap, rtol=1e-4, atol=1e-4)
            assert a.box == b.box and a.map_location == b.map_location
