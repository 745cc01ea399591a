"""The Explain card says when the box the original push wrote differs from where the prototype fires."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from protoviz.models.checkpoint import save_model
from tests.app.conftest import app_test, with_sources

MESSAGE = "The box the original push wrote is elsewhere"


@pytest.mark.parametrize("push_box, shown", [((40, 60, 0, 20), True), ((8, 25, 16, 40), False)])
def test_card_caption_when_push_box_differs(app_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            push_box: tuple[int, int, int, int], shown: bool) -> None:
    model = with_sources(0)
    model.prototype_sources = [dataclasses.replace(s, push_box=push_box, origin="push-folder")  # type: ignore[type-var]
                               for s in model.prototype_sources]
    save_model(model, tmp_path / "imported" / "imported.safetensors")
    monkeypatch.setenv("PROTOVIZ_MODEL_DIR", str(tmp_path / "imported"))
    at = app_test()
    at.run()
    at.multiselect(key="explain.models").select("imported")
    at.multiselect(key="explain.images.samples").select("sample_a.png")
    at.run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption if MESSAGE in c.value]
    assert bool(captions) == shown
