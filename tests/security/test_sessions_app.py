"""Two visitors of one server process (two AppTests with their own workspace tokens share the process, as
two browsers share a server): a checkpoint one uploads is kept for that visitor only."""

from __future__ import annotations

import io

import torch
from streamlit.testing.v1 import AppTest

from protoviz.owners import new_token
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


def test_a_model_one_visitor_uploads_is_not_listed_for_another(app_env: None) -> None:
    alice = app_test(VIEWS / "models.py", owner=new_token())
    bob = app_test(VIEWS / "models.py", owner=new_token())
    alice.run()
    bob.run()
    _upload_model(alice, "alice model", 1)
    bob.run()
    assert "alice model" in [h.value for h in alice.subheader]
    assert "alice model" not in [h.value for h in bob.subheader]
