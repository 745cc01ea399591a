"""The whole decision: evidence for and against, and terms that add up to the class score in every family."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.heatmaps.decision import decision_terms, register_reading
from protoviz.heatmaps.explanation import UPSCALE_WARNING, explain_image, upscale_warning
from protoviz.models import build_model, list_families
from protoviz.models.registry import FAMILIES
from tests.conftest import make_tiny_model


def _example(family: str):
    torch.manual_seed(0)
    return build_model(family, FAMILIES.get(family).example_config()).eval().double()


@pytest.mark.parametrize("family", list_families())
def test_decision_terms_add_up_to_the_class_score(family: str) -> None:
    model = _example(family)
    h, w = model.input_spec.image_size
    x = torch.randn(3, 3, h, w, dtype=torch.float64)
    with torch.no_grad():
        output = model(x)
        for target in range(model.num_classes):
            classes = torch.full((3,), target)
            terms = decision_terms(model, output, classes)
            torch.testing.assert_close(terms.values.sum(1) + terms.offset, output.logits[:, target])
            torch.testing.assert_close(terms.values, terms.factors * terms.weights)
            assert len(terms.labels) == terms.values.shape[1]
            if family != "prototree":  # every linear-style head here has no bias: the terms are exact
                assert terms.unit == "prototype" and terms.offset.abs().max() < 1e-9
    for explanation in explain_image(model, x, top_k=3):
        decision = explanation.decision
        assert decision is not None and decision.total == pytest.approx(explanation.class_logit, abs=1e-4)
        assert decision.score == pytest.approx(explanation.class_logit)
        if family != "prototree":
            assert explanation.sums_to_logit
            shown = {e.index for e in explanation.cards}
            assert decision.other_count == model.num_prototypes - len(shown)


def test_prototree_reads_leaves_and_pipnet_reads_present_prototypes() -> None:
    tree = _example("prototree")
    x = torch.randn(2, 3, *tree.input_spec.image_size, dtype=torch.float64)
    explanation = explain_image(tree, x)[0]
    assert explanation.decision.unit == "leaf" and explanation.decision.score_name == "probability"
    assert all(step.label.startswith(("leaf", "3 other", "2 other", "1 other", "0 other")) for step in explanation.decision.steps)
    assert "tree" in explanation.decision.reading
    pip = _example("pipnet")
    x = torch.randn(2, 3, *pip.input_spec.image_size, dtype=torch.float64)
    with torch.no_grad():
        pooled = pip(x).max_similarities
    pip.config = replace(pip.config, inference_threshold=float(pooled[0].median()))  # some present, some not
    explanation = explain_image(pip, x, top_k=6)[0]
    below = (pooled[0] < pip.config.inference_threshold).numpy()
    assert below.any() and not below.all()  # the case is informative
    assert np.all(explanation.contributions[below] == 0)  # absent prototypes add nothing
    assert explanation.sums_to_logit and "present" in explanation.decision.reading
    assert all(e.index not in np.flatnonzero(below) for e in explanation.cards)


def test_any_class_can_be_explained_on_request() -> None:
    model = make_tiny_model(seed=3, classes=4, per_class=2).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    predicted = [e.predicted for e in explain_image(model, x)]
    other = [(p + 1) % 4 for p in predicted]
    for explanation, wanted in zip(explain_image(model, x, top_k=2, target=other), other, strict=True):
        assert explanation.explained_class == wanted != explanation.predicted
        np.testing.assert_allclose(explanation.weights, model.class_weights.detach()[wanted].numpy())
        assert explanation.class_logit == pytest.approx(float(explanation.logits[wanted]))
        assert explanation.total_contribution == pytest.approx(explanation.class_logit, abs=1e-6)
        assert explanation.decision.class_name == f"class_{wanted}"
        assert all(e.prototype_class == wanted for e in explanation.prototypes)  # only own-class weights are positive
    with pytest.raises(Exception, match="not one of the model's 4 classes"):
        explain_image(model, x, target=9)


def test_the_sentence_explains_why_the_cards_sum_to_more_than_the_score() -> None:
    model = make_tiny_model(seed=5, classes=8, per_class=2).double()
    with torch.no_grad():  # prototypes of other classes pull every score down, as ProtoPNet's -0.5
        model.last_layer.weight.copy_(torch.where(model.last_layer.weight > 0, 1.0, -0.5))
    explanation = explain_image(model, torch.randn(1, 3, 64, 64, dtype=torch.float64), top_k=2)[0]
    decision = explanation.decision
    assert decision.shown("for") > decision.score and decision.other_negative < 0
    text = decision.sentence()
    assert "add up to more than the score" in text and f"{decision.score:.3f}" in text
    kinds = [step.kind for step in decision.steps]
    assert kinds == ["for"] * len(explanation.prototypes) + ["against"] * len(explanation.against) + ["other"]


def test_tiny_uploads_are_flagged_not_silently_upscaled() -> None:
    model = make_tiny_model(seed=1)  # 64x64 input
    assert upscale_warning((64, 64), (64, 64)) is None and upscale_warning((20, 64), (64, 64)) is None
    assert "enlarged 4x" in upscale_warning((16, 16), (64, 64))
    assert UPSCALE_WARNING == 4.0
    tiny, fine = Image.new("RGB", (1, 1), (200, 10, 10)), Image.new("RGB", (60, 70))
    flagged, ok = explain_image(model, [tiny, fine], names=["dot.png", "ok.png"])
    assert flagged.source_size == (1, 1) and "1x1 px" in flagged.warnings[0] and "enlarged 64x" in flagged.warnings[0]
    assert ok.warnings == () and ok.source_size == (70, 60)
    assert flagged.as_record()["warnings"] == list(flagged.warnings)


def test_a_reading_registers_once() -> None:
    with pytest.raises(Exception, match="already registered"):
        register_reading("pipnet")(lambda model, output, classes: None)  # type: ignore[arg-type,return-value]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("family", list_families())
def test_cuda_gives_the_cpu_decision(family: str) -> None:
    model = _example(family).float()
    x = torch.randn(2, 3, *model.input_spec.image_size)
    on_cpu = explain_image(model, x, top_k=2, target=[None, 0])
    on_gpu = explain_image(model.to("cuda"), x.to("cuda"), top_k=2, target=[None, 0])
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        assert cpu.explained_class == gpu.explained_class
        assert [e.index for e in cpu.cards] == [e.index for e in gpu.cards]
        assert [s.label for s in cpu.decision.steps] == [s.label for s in gpu.decision.steps]
        np.testing.assert_allclose([s.value for s in gpu.decision.steps], [s.value for s in cpu.decision.steps],
                                   rtol=1e-4, atol=1e-5)
