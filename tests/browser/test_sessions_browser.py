"""Two visitors at once (two browser contexts against one `streamlit run`): each upload lands in its
session's private folder under a unique name, neither sees the other's models or results, rejected
uploads leave no file, typed server paths are off by default."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from tests.app.conftest import sample_image
from tests.models.legacy import malicious as mal
from tests.models.legacy import writers as w

pytestmark = pytest.mark.browser
CARD = "[class*='st-key-prototype-card-']"


def _checkpoint(folder: Path, name: str, seed: int) -> Path:
    net = w.ppnet(seed=seed)
    buffer = io.BytesIO()
    with w.importable(w.research_classes(net)):
        torch.save(net, buffer, _use_new_zipfile_serialization=False)
    path = folder / name
    path.write_bytes(buffer.getvalue())
    return path


def _settle(tab: object) -> None:
    """Wait until the script run a widget change started has finished (Streamlit's status widget)."""
    from playwright.sync_api import expect

    tab.wait_for_timeout(700)  # type: ignore[attr-defined]
    expect(tab.get_by_test_id("stStatusWidget")).to_be_hidden()  # type: ignore[attr-defined]


def _add_model(tab: object, file: Path, name: str) -> None:
    from playwright.sync_api import expect

    tab.get_by_label("Name", exact=True).fill(name)  # type: ignore[attr-defined]
    tab.get_by_label("Name", exact=True).press("Enter")  # type: ignore[attr-defined]
    _settle(tab)
    tab.locator("input[type='file']").first.set_input_files(str(file))  # type: ignore[attr-defined]
    uploader = tab.get_by_role("region", name="Upload a checkpoint")  # type: ignore[attr-defined]
    expect(uploader.get_by_text(file.name)).to_be_visible()
    _settle(tab)
    outcome = tab.get_by_text(f"Added '{name}'").or_(tab.locator("[data-testid='stAlert']")).first  # type: ignore[attr-defined]
    for attempt in range(3):  # a click landing while a busy server still reruns the upload can be lost
        tab.get_by_role("button", name="Add model").click()  # type: ignore[attr-defined]
        try:
            expect(outcome).to_be_visible(timeout=40_000)
            return
        except AssertionError:
            if attempt == 2:
                raise
            _settle(tab)


def _navigate(tab: object, page: str) -> None:
    """Go to a page through the sidebar (a new URL would start a new session)."""
    tab.get_by_role("link", name=page, exact=True).click()  # type: ignore[attr-defined]
    _settle(tab)


def _session_folders(uploads: Path) -> list[Path]:
    return sorted(p for p in uploads.glob("session-*") if p.is_dir())


def test_two_sessions_see_only_their_own_uploads_and_results(browser: object, streamlit_url: str,
                                                              server_folders: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]  # type: ignore[attr-defined]
    alice, bob = (context.new_page() for context in contexts)
    for tab in (alice, bob):
        tab.set_default_timeout(120_000)
    try:
        # Alice adds a research checkpoint; Bob uploads a different file under the same file name.
        alice.goto(f"{streamlit_url}/models")
        bob.goto(f"{streamlit_url}/models")
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        _add_model(alice, _checkpoint(tmp_path / "a", "ckpt.pth", 1), "alice model")
        _add_model(bob, _checkpoint(tmp_path / "b", "ckpt.pth", 2), "bob model")
        expect(alice.get_by_text("Added 'alice model'")).to_be_visible()
        expect(bob.get_by_text("Added 'bob model'")).to_be_visible()
        expect(alice.get_by_role("heading", name="alice model")).to_be_visible()
        expect(alice.get_by_role("heading", name="bob model")).to_have_count(0)  # each visitor's own workspace
        expect(bob.get_by_role("heading", name="alice model")).to_have_count(0)
        expect(alice.get_by_text("ckpt.pth").first).to_be_visible()  # the file's name, no server path
        expect(alice.get_by_text("/tmp/")).to_have_count(0)
        uploads = server_folders["root"] / "uploads"
        folders = _session_folders(uploads)
        assert len(folders) == 2, folders  # one private folder per session ...
        assert all(not list(f.iterdir()) for f in folders)  # ... emptied once the workspace kept its copy
        kept = sorted((server_folders["root"] / "home" / "models").glob("*/*/*ckpt.pth"))
        assert len(kept) == 2, kept  # same file name, different files: neither overwrote the other

        # A rejected upload leaves nothing behind; typed paths are off.
        evil = tmp_path / "evil.pth"
        evil.write_bytes(mal.write(mal.payloads(tmp_path / "pwned")["posix.system"](), tmp_path / "x.pth", "zip")
                         .read_bytes())
        _navigate(bob, "Explain")
        _navigate(bob, "Models")  # back with a fresh uploader, in the same session
        _add_model(bob, evil, "evil")
        expect(bob.locator("[data-testid='stAlert']").filter(has_text="posix.system")).to_be_visible()
        assert sum(len(list(f.iterdir())) for f in _session_folders(uploads)) == 0  # the refused file is gone
        assert len(sorted((server_folders["root"] / "home" / "models").glob("*/*/*"))) == 2
        assert not (tmp_path / "pwned").exists()
        expect(bob.get_by_text("Typed server paths are turned off").first).to_be_visible()  # also in set-up tabs

        # Alice explains an uploaded image; Bob's Explain page has neither her image nor her model.
        image = tmp_path / "alice_bird.png"
        sample_image(5, (80, 72)).save(image)
        _navigate(alice, "Explain")
        alice.locator("input[type='file']").first.set_input_files(str(image))
        expect(alice.locator(CARD).first).to_be_visible()
        _navigate(bob, "Explain")
        expect(bob.get_by_text("Explain: this looks like that")).to_be_visible()
        expect(bob.get_by_text("alice_bird.png")).to_have_count(0)
        expect(bob.locator(CARD)).to_have_count(0)
        _navigate(bob, "Models")
        expect(bob.get_by_role("heading", name="bob model")).to_be_visible()
        expect(bob.get_by_role("heading", name="alice model")).to_have_count(0)
        for tab in (alice, bob):
            expect(tab.get_by_text("Traceback")).to_have_count(0)
    finally:
        for context in contexts:
            context.close()
