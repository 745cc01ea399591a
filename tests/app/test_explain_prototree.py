"""AppTest: a ProtoTree (imported from its research folder, converted to native) on the Explain page
shows its decision path next to the prototype cards; research families run on the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.app.conftest import app_test
from tests.models.legacy import writers as w


@pytest.fixture
def research_models(app_env: None, model_dir: Path, tmp_path: Path) -> Path:
    save_model(load_model(w.save_prototree_folder(w.prototree(depth=2), tmp_path / "run")), model_dir / "tree.safetensors")
    save_model(load_model(w.save(w.pipnet_checkpoint(w.pipnet()), tmp_path / "pip.pth", "zip")),
               model_dir / "pip.safetensors")
    return model_dir


def test_prototree_shows_its_decision_path(research_models: Path) -> None:
    at = app_test()
    at.run()
    at.multiselect(key="explain.models").set_value(["tree", "pip"])
    at.multiselect(key="explain.images.samples").set_value(["sample_a.png"])
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    paths = [m for m in at.markdown if m.value.startswith("**Decision path**")]
    assert len(paths) == 1  # the ProtoTree, not PIP-Net
    assert any("leaf node" in c.value and "predicts" in c.value for c in at.caption)


def test_each_family_gives_its_own_reading_of_the_decision(research_models: Path) -> None:
    at = app_test()
    at.run()
    at.multiselect(key="explain.models").set_value(["tree", "pip"])
    at.multiselect(key="explain.images.samples").set_value(["sample_a.png"])
    at.run()
    assert not at.exception, at.exception
    readings = [c.value for c in at.caption if c.value.startswith("How ")]
    assert any(r.startswith("How ProtoTree decides") and "leaf" in r for r in readings)
    assert any(r.startswith("How PIP-Net decides") and "present" in r for r in readings)
    lines = [i.value for i in at.info]
    assert any(line.startswith("The probability of") for line in lines)  # ProtoTree: leaves add up to it
    assert any(line.startswith("Sum of all") and "not a plain linear layer" not in line for line in lines)  # PIP-Net
