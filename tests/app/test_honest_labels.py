"""AppTest: the Models page and the Prototypes gallery name the method (ST-ProtoPNet), its prototype sets and
its similarity unit; gallery captions are short words (no class name to break mid-word)."""

from __future__ import annotations

from tests.app.conftest import VIEWS, app_test


def test_models_page_names_the_method_and_its_sets(app_env: None) -> None:
    at = app_test(VIEWS / "models.py").run()
    assert not at.exception
    tables = [d.value for d in at.dataframe if "property" in d.value.columns]
    rows = {name: dict(zip(t["property"], t["value"])) for name, t in zip(["tiny_cosine", "tiny_log"], tables)}
    assert rows["tiny_cosine"]["family"] == "ST-ProtoPNet (protoviz family 'protopnet')"
    assert rows["tiny_cosine"]["prototype sets"] == "support [0:6), trivial [6:12)"
    assert rows["tiny_log"]["family"] == "ProtoPNet" and "9.21" in rows["tiny_log"]["similarity"]


def test_gallery_names_sets_without_breaking_words(app_env: None) -> None:
    at = app_test(VIEWS / "prototypes.py").run()
    at.selectbox(key="prototypes.model").set_value("tiny_cosine").run()
    assert not at.exception
    assert any(c.value.startswith("ST-ProtoPNet · 12 prototypes") and "support #0-#5, trivial #6-#11" in c.value
               for c in at.caption)
    captions = [i.caption for image in at.get("image") for i in image.proto.imgs if i.caption.startswith("#")]
    assert "#0 · support" in captions and "#6 · trivial" in captions
    assert all(len(word) <= 12 for caption in captions for word in caption.split())  # fits a 112 px tile
    assert at.subheader[0].value == r"Prototype 0 · class class\_0"  # the class name escaped for markdown
    assert any(c.value.startswith("support prototype · ST-ProtoPNet") for c in at.caption)
