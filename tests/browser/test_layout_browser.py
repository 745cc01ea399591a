"""Layout in headless Chromium: the Explain cards at 1024, 1280 and 1920 px wide (no overlap, nothing clipped,
"looks like" visible; screenshots kept in tests/browser/artifacts/), and the Prototypes page keeping its tab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.models.checkpoint import save_model
from tests.app.conftest import sample_image, with_sources

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CARD = "[class*='st-key-prototype-card-']"
WIDTHS = (1024, 1280, 1920)
BOXES_JS = """(root) => Array.from(root.querySelectorAll(':scope > *'))
    .map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0)
    .map(r => [r.left, r.top, r.right, r.bottom])"""
IMAGES_JS = """(root) => Array.from(root.querySelectorAll('img')).map(e => e.getBoundingClientRect())
    .map(r => [r.left, r.top, r.right, r.bottom])"""
CLIPPED_JS = """() => Array.from(document.querySelectorAll('button *, [data-testid="stMarkdownContainer"] *'))
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1
                 && getComputedStyle(e).textOverflow === 'ellipsis').map(e => e.innerText)"""


@pytest.fixture(scope="module")
def server_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A log model and an ST (support / trivial) cosine model, and a tiny CUB-layout set for top-k passes."""
    root = tmp_path_factory.mktemp("browser-layout")
    save_model(with_sources(0), root / "models" / "tiny_log.safetensors")
    save_model(with_sources(1, "cosine", ("support", "trivial")), root / "models" / "tiny_st.safetensors")
    (root / "samples").mkdir()
    sample_image(0).save(root / "samples" / "sample_a.png")
    generate_dataset(root / "data", SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=1))
    return {"models": root / "models", "samples": root / "samples", "root": root, "data": root / "data"}


def overlaps(boxes: list[list[float]], tolerance: float = 1.0) -> list[tuple[int, int]]:
    """Pairs of rectangles (left, top, right, bottom) that overlap by more than ``tolerance`` px each way."""
    found = []
    for i, a in enumerate(boxes):
        for j, b in enumerate(boxes[i + 1:], start=i + 1):
            width = min(a[2], b[2]) - max(a[0], b[0])
            height = min(a[3], b[3]) - max(a[1], b[1])
            if width > tolerance and height > tolerance:
                found.append((i, j))
    return found


def inside(box: list[float], outer: list[float], tolerance: float = 1.0) -> bool:
    return (box[0] >= outer[0] - tolerance and box[1] >= outer[1] - tolerance and box[2] <= outer[2] + tolerance
            and box[3] <= outer[3] + tolerance)


@pytest.mark.parametrize("width", WIDTHS)
def test_explain_cards_do_not_overlap(browser: Any, streamlit_url: str, width: int, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    image = tmp_path / "bird.png"
    sample_image(11, (96, 80)).save(image)
    context = browser.new_context(viewport={"width": width, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(streamlit_url)
        expect(page.get_by_text("Explain: this looks like that")).to_be_visible()
        page.get_by_label("Models").press("Escape")  # nothing to change; makes sure the page is interactive
        page.locator("input[type='file']").first.set_input_files(str(image))
        cards = page.locator(CARD)
        expect(cards.first).to_be_visible()
        expect(page.get_by_text("The whole decision")).to_be_visible()
        page.wait_for_timeout(1500)  # images settle
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"explain_{width}.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
        assert cards.count() >= 2
        for i in range(cards.count()):
            card = cards.nth(i)
            expect(card.get_by_text("looks like")).to_be_visible()
            outer = card.bounding_box()
            frame = [outer["x"], outer["y"], outer["x"] + outer["width"], outer["y"] + outer["height"]]
            pictures = card.evaluate(IMAGES_JS)
            assert len(pictures) >= 3 and overlaps(pictures) == [], (width, i, pictures)
            assert all(inside(p, frame) for p in pictures), (width, i, pictures, frame)
            parts = card.evaluate(BOXES_JS)
            assert len(parts) >= 5, parts  # this, looks like, patch, source, numbers
            assert overlaps(parts) == [], (width, i, parts)
            assert all(inside(p, frame) for p in parts), (width, i, parts, frame)
        assert page.evaluate(CLIPPED_JS) == []  # no button or text cut short with an ellipsis
        expect(page.get_by_text("Traceback")).to_have_count(0)
    finally:
        context.close()


def test_compute_top_k_keeps_the_prototype_card_tab(page: Any, streamlit_url: str,
                                                    server_folders: dict[str, Path]) -> None:
    from playwright.sync_api import expect

    page.goto(f"{streamlit_url}/prototypes")
    expect(page.get_by_role("heading", name="Prototypes", exact=True)).to_be_visible()
    page.get_by_text("local folder").click()
    folder = page.get_by_label("Folder (CUB-200-2011 layout, Stanford Cars/Dogs or ImageFolder)")
    folder.fill(str(server_folders["data"]))
    folder.press("Enter")
    page.get_by_role("tab", name="Prototype card").click()
    expect(page.get_by_role("tab", name="Prototype card", selected=True)).to_be_visible()
    page.get_by_role("button", name="Compute top-k patches").click()
    expect(page.get_by_text("patches (best per image) over")).to_be_visible()
    expect(page.get_by_role("tab", name="Prototype card", selected=True)).to_be_visible()
    expect(page.get_by_text("Traceback")).to_have_count(0)
