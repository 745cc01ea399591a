"""AppTest of the Explain page: samples, uploads (good and bad files), several models, downloads."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from protoviz.data.images import load_image
from protoviz.heatmaps import explain_image
from protoviz.models import load_model
from tests.app.conftest import VIEWS, app_test, png_bytes, sample_image

UPLOAD = "explain.images.upload"


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(sample_image(3, (80, 40)), "JPEG", exif=exif.tobytes())


GOOD_FILES = {
    "one_pixel.png": lambda: encode(Image.new("RGB", (1, 1), (200, 10, 10))),
    "grey.png": lambda: encode(sample_image(4).convert("L")),
    "rgba.png": lambda: encode(sample_image(5).convert("RGBA")),
    "deep.png": lambda: encode(Image.fromarray(np.arange(4096, dtype=np.uint16).reshape(64, 64) * 16)),
    "print.jpg": lambda: encode(sample_image(6).convert("CMYK"), "JPEG"),
    "phone.jpg": exif_rotated,
}
BAD_FILES = {
    "notes.txt": (lambda: b"not an image at all\n" * 10, "not an image"),
    "cut.png": (lambda: png_bytes(sample_image(7, (120, 120)))[:300], "truncated or corrupt"),
    "huge.png": (lambda: encode(Image.new("1", (20000, 20000))), "too large"),
    "empty.png": (lambda: b"", "empty"),
}


def cards(at: AppTest) -> list[str]:
    """The text of every prototype card shown (evidence for and against)."""
    return [m.value for m in at.markdown if m.value.startswith("**Prototype ")]


def sides(at: AppTest) -> tuple[int, int]:
    """(evidence-for cards, evidence-against cards), counted by their 'Open prototype card' buttons."""
    keys = [b.key for b in at.button if b.key and b.key.startswith("open-")]
    against = sum("-against-" in k for k in keys)
    return len(keys) - against, against


def expected_sides(model_dir: Path, model: str, image: Image.Image, top_k: int) -> tuple[int, int]:
    """What the library gives for the same model file and image."""
    [explanation] = explain_image(load_model(model_dir / f"{model}.safetensors"), [image], top_k=top_k)
    return len(explanation.prototypes), len(explanation.against)


def started(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def test_home_page_lists_models_and_device(app_env: None) -> None:
    at = started(app_test())
    assert set(at.multiselect(key="explain.models").options) == {"tiny_cosine", "tiny_log"}
    assert any(m.value.startswith("**Device:** `cpu") for m in at.sidebar.markdown)
    assert at.info and "Choose at least one model" in at.info[0].value
    assert not cards(at)


def test_sample_gives_evidence_for_and_against_summing_to_the_logit(app_env: None, model_dir: Path,
                                                                    sample_dir: Path) -> None:
    at = started(app_test())
    at.slider(key="explain.top_k").set_value(3)
    at.multiselect(key="explain.images.samples").select("sample_a.png")
    started(at)
    [model] = at.multiselect(key="explain.models").value
    assert sides(at) == expected_sides(model_dir, model, Image.open(sample_dir / "sample_a.png").convert("RGB"), 3)
    assert sides(at)[0] >= 1 and sides(at)[1] >= 1  # the cosine model has both
    assert any(m.value.startswith("**Evidence for**") for m in at.markdown)
    assert any(m.value.startswith("**Evidence against**") for m in at.markdown)
    assert any(m.value.startswith("**Predicted: class_") for m in at.markdown)
    line = next(i.value for i in at.info if i.value.startswith("Sum of all"))
    total, logit = (float(v) for v in re.findall(r"= (-?\d+\.\d+)", line)[:2])
    assert "not a plain linear layer" not in line and "other" in line
    assert total == pytest.approx(logit, abs=2e-4)
    for text in cards(at):
        sim, weight, contribution = (float(v) for v in re.findall(r"\*\*([+-]?\d+\.\d+)\*\*", text))
        assert contribution == pytest.approx(sim * weight, abs=2e-3)
        assert "support prototype" in text or "trivial prototype" in text  # the model's two sets, named
    labels = [b.proto.label for b in at.get("download_button")]
    assert sorted(labels) == ["Contributions (CSV)", "Explanation (JSON)", "PNG file", "PNG file"]
    assert any("ST-ProtoPNet" in c.value and "**Similarity** (cosine)" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 1  # the waterfall


def test_upload_png_gives_prototype_cards(app_env: None) -> None:
    at = started(app_test())
    at.file_uploader(key=UPLOAD).set_value(("bird.png", png_bytes(sample_image(9)), "image/png"))
    started(at)
    assert sum(sides(at)) >= 1 and len(cards(at)) == sum(sides(at))
    assert not at.error and not at.warning
    # a rerun reuses the stored result and shows the same cards
    before = cards(at)
    started(at)
    assert cards(at) == before


@pytest.mark.parametrize("name", sorted(GOOD_FILES))
def test_awkward_but_valid_images_are_explained(app_env: None, model_dir: Path, name: str) -> None:
    at = started(app_test())
    data = GOOD_FILES[name]()
    at.file_uploader(key=UPLOAD).set_value((name, data, "application/octet-stream"))
    started(at)
    assert not at.error, [e.value for e in at.error]
    [model] = at.multiselect(key="explain.models").value
    assert sides(at) == expected_sides(model_dir, model, load_image(data, name=name), 5)
    tiny = name == "one_pixel.png"  # a 1x1 upload is flagged, not silently upscaled
    expected = ("The image is 1x1 px, far smaller than the model's 64x64 input: it was enlarged 64x, so the model "
                "sees interpolated pixels and the prediction says little about it.")
    assert [w.value for w in at.warning if "far smaller" in w.value] == ([expected] if tiny else [])


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_give_a_clear_error_not_a_traceback(app_env: None, name: str) -> None:
    make, message = BAD_FILES[name]
    at = started(app_test())
    at.file_uploader(key=UPLOAD).set_value([(name, make(), "application/octet-stream"),
                                            ("ok.png", png_bytes(sample_image(2)), "image/png")])
    started(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(f"{name}:") and message in errors[0]
    assert sum(sides(at)) >= 1  # the good file next to it is still explained


def test_two_models_and_two_images(app_env: None) -> None:
    at = started(app_test())
    at.multiselect(key="explain.models").set_value(["tiny_log", "tiny_cosine"])
    at.slider(key="explain.top_k").set_value(2)
    at.multiselect(key="explain.images.samples").set_value(["sample_a.png", "sample_b.png"])
    started(at)
    assert [t.label for t in at.tabs] == ["sample_a.png", "sample_b.png"]
    slots = {k.split("-")[1] + "-" + k.split("-")[2] for b in at.button if (k := b.key or "").startswith("open-")}
    assert slots == {"0-0", "0-1", "1-0", "1-1"}  # both models on both images
    assert sum(sides(at)) <= 4 * (2 + 2)  # 4 explanations, at most 2 cards for and 2 against each
    assert sum(m.value in ("#### tiny_log", "#### tiny_cosine") for m in at.markdown) == 4


def test_page_alone_without_models_says_what_to_do(app_env: None, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("PROTOVIZ_MODEL_DIR", str(tmp_path_factory.mktemp("no_models")))
    at = started(app_test(VIEWS / "explain.py"))
    assert at.warning and "No models found" in at.warning[0].value


def test_models_page_shows_each_model(app_env: None) -> None:
    at = started(app_test(VIEWS / "models.py"))
    assert [s.value for s in at.subheader] == ["tiny_cosine", "tiny_log"]
    assert not at.error


def test_open_card_goes_to_the_prototypes_page_with_the_prototype_selected(app_env: None) -> None:
    at = started(app_test())
    at.slider(key="explain.top_k").set_value(2)
    at.multiselect(key="explain.images.samples").select("sample_a.png")
    started(at)
    first = cards(at)[0]
    index = int(re.match(r"\*\*Prototype (\d+)\*\*", first).group(1))  # type: ignore[union-attr]
    [model] = at.multiselect(key="explain.models").value
    at.button(key="open-0-0-1").click()
    started(at)
    assert at.title[0].value == "Prototypes"
    assert at.selectbox(key="prototypes.model").value == model
    assert at.selectbox(key="prototypes.selected").value == index
    assert _default_tab_indices(at._tree) == [1]  # the "Prototype card" tab opens, not the gallery


def _default_tab_indices(node: object) -> list[int]:
    """default_tab_index of every st.tabs container under an AppTest element tree node."""
    found = []
    proto = getattr(node, "proto", None)
    if (proto is not None and hasattr(proto, "WhichOneof") and "type" in proto.DESCRIPTOR.oneofs_by_name
            and proto.WhichOneof("type") == "tab_container"):
        found.append(proto.tab_container.default_tab_index)
    for child in getattr(node, "children", {}).values():
        found += _default_tab_indices(child)
    return found


def test_any_class_can_be_explained_on_request(app_env: None) -> None:
    at = started(app_test())
    at.multiselect(key="explain.models").set_value(["tiny_log"])
    at.multiselect(key="explain.images.samples").select("sample_a.png")
    started(at)
    choice = at.selectbox(key="explain.class.0-0")
    predicted = next(m.value for m in at.markdown if m.value.startswith("**Predicted: "))
    other = next(c for c in choice.options if c.startswith("class_") and c not in predicted)
    choice.select(other)
    started(at)
    line = next(i.value for i in at.info if i.value.startswith("Sum of all"))
    assert f"score of '{other}'" in line
    assert at.selectbox(key="explain.class.0-0").value == int(other.split("_")[1])
    for_cards = [t for t in cards(at) if f"class *{other}*" in t]
    assert for_cards and all("weight **+1.000**" in t for t in for_cards)  # own-class prototypes raise it
