"""End-to-end: two models compared on one uploaded image in headless Chromium (`streamlit run`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoviz.models.checkpoint import save_model
from tests.app.conftest import sample_image, with_sources

pytestmark = pytest.mark.browser

PREDICTION = "[class*='st-key-compare-prediction-']"


@pytest.fixture(scope="module")
def server_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny pushed checkpoints (log and cosine similarity) for the server of tests/browser/conftest.py."""
    root = tmp_path_factory.mktemp("browser-compare")
    save_model(with_sources(0), root / "models" / "tiny_log.safetensors")
    save_model(with_sources(1, "cosine", ("support", "trivial")), root / "models" / "tiny_cosine.safetensors")
    (root / "samples").mkdir()
    sample_image(0).save(root / "samples" / "sample_a.png")
    return {"models": root / "models", "samples": root / "samples", "root": root}


def test_two_models_on_an_uploaded_image(page: object, streamlit_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    image = tmp_path / "bird.png"
    sample_image(21, (90, 70)).save(image)
    page.goto(f"{streamlit_url}/compare")  # type: ignore[attr-defined]
    expect(page.get_by_role("heading", name="Compare models")).to_be_visible()  # type: ignore[attr-defined]
    page.locator("input[type='file']").first.set_input_files(str(image))  # type: ignore[attr-defined]
    predictions = page.locator(PREDICTION)  # type: ignore[attr-defined]
    expect(predictions).to_have_count(2)
    expect(predictions.nth(0).get_by_text("tiny_cosine")).to_be_visible()
    expect(predictions.nth(1).get_by_text("tiny_log")).to_be_visible()
    for i in range(2):  # each model shows evidence for and against (up to 3 cards each), heatmap beside source patch
        expect(predictions.nth(i).get_by_text("looks like").first).to_be_visible()
        expect(predictions.nth(i).get_by_text("Evidence for", exact=True)).to_be_visible()
        pictures = predictions.nth(i).locator("img").count()
        assert pictures % 2 == 0 and 2 <= pictures <= 12, pictures
    expect(page.get_by_text("bird.png").first).to_be_visible()  # type: ignore[attr-defined]
    expect(page.get_by_text("Traceback")).to_have_count(0)  # type: ignore[attr-defined]


def test_a_card_opens_on_the_prototypes_page(page: object, streamlit_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    image = tmp_path / "bird.png"
    sample_image(22, (64, 64)).save(image)
    page.goto(f"{streamlit_url}/compare")  # type: ignore[attr-defined]
    page.locator("input[type='file']").first.set_input_files(str(image))  # type: ignore[attr-defined]
    first = page.locator(PREDICTION).nth(1)  # type: ignore[attr-defined]
    expect(first.get_by_text("tiny_log")).to_be_visible()
    caption = first.get_by_text("#1 this: prototype").first.inner_text()  # evidence for comes before against
    prototype = int(caption.rsplit(" ", 1)[1])
    first.get_by_role("button", name="Open its card").first.click()
    expect(page.get_by_role("heading", name=f"Prototype {prototype} ·")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.get_by_role("tab", name="Prototype card", selected=True)).to_be_visible()  # type: ignore[attr-defined]
    expect(page.get_by_text("Traceback")).to_have_count(0)  # type: ignore[attr-defined]
