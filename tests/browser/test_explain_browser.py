"""End-to-end: real uploads in headless Chromium against `streamlit run` of the dashboard."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.conftest import sample_image

pytestmark = pytest.mark.browser

CARD = "[class*='st-key-prototype-card-']"


def test_upload_png_shows_prototype_cards(page: object, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    image = tmp_path / "bird.png"
    sample_image(11, (96, 80)).save(image)
    expect(page.get_by_text("Explain: this looks like that")).to_be_visible()  # type: ignore[attr-defined]
    page.locator("input[type='file']").first.set_input_files(str(image))  # type: ignore[attr-defined]
    cards = page.locator(CARD)  # type: ignore[attr-defined]
    expect(cards.first).to_be_visible()
    expect(cards.first.get_by_text("looks like")).to_be_visible()
    expect(page.get_by_text("Evidence for", exact=True)).to_be_visible()  # type: ignore[attr-defined]
    expect(page.get_by_text("Evidence against", exact=True)).to_be_visible()  # type: ignore[attr-defined]
    expect(page.get_by_text("Sum of all 6 prototypes' contributions")).to_be_visible()  # type: ignore[attr-defined]
    assert 2 <= cards.count() <= 2 * 5  # evidence for (own class) and against (the others), top 5 each
    expect(page.get_by_text("Traceback")).to_have_count(0)  # type: ignore[attr-defined]


def test_upload_non_image_shows_a_clear_error(page: object, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    notes = tmp_path / "notes.txt"
    notes.write_text("these are not pixels\n" * 50)
    expect(page.get_by_text("Explain: this looks like that")).to_be_visible()  # type: ignore[attr-defined]
    page.locator("input[type='file']").first.set_input_files(str(notes))  # type: ignore[attr-defined]
    alert = page.locator("[data-testid='stAlert']").filter(has_text="notes.txt: not an image")  # type: ignore[attr-defined]
    expect(alert).to_be_visible()
    expect(page.locator(CARD)).to_have_count(0)  # type: ignore[attr-defined]
    expect(page.get_by_text("Traceback")).to_have_count(0)  # type: ignore[attr-defined]
