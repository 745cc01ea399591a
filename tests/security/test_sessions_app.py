"""Two sessions of one server process (two AppTests share the process, as two browser tabs share a
server): what one adds or computes, the other must not see."""

from __future__ import annotations

import io

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.app.conftest import VIEWS, app_test
from tests.models.legacy import writers as w


def _upload_model(at: AppTest, name: str, seed: int) -> None:
    net = w.ppnet(seed=seed)
    buffer = io.BytesIO()
    with w.importable(w.research_classes(net)):
        torch.save(net, buffer, _use_new_zipfile_serialization=False)
    at.file_uploader(key="models.add.upload").set_value(("ckpt.pth", buffer.getvalue(), "application/octet-stream"))
    at.text_input(key="models.add.name").set_value(name)
    at.button(key="models.add.submit").click().run()
    assert not at.exception, at.exception
    assert any(f"Added {name!r}" in s.value for s in at.success), [e.value for e in at.error]


@pytest.mark.xfail(strict=True, reason="the workspace (PROTOVIZ_HOME) keeps added models for every session of a "
                                       "server; a served dashboard needs them scoped to their visitor")
def test_a_model_one_session_adds_is_not_listed_in_another(app_env: None) -> None:
    alice, bob = app_test(VIEWS / "models.py"), app_test(VIEWS / "models.py")
    alice.run()
    bob.run()
    _upload_model(alice, "alice model", 1)
    bob.run()
    assert "alice model" in [h.value for h in alice.subheader]
    assert "alice model" not in [h.value for h in bob.subheader]
