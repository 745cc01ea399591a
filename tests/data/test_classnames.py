"""Class names from CUB classes.txt, class folders or a names file; renaming a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoviz.data.classnames import is_placeholder, read_class_names, readable, set_class_names, with_class_names
from protoviz.errors import DatasetError
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model


def test_cub_classes_txt_reads_readable_names(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n\n3 003.Sooty_Albatross\n")
    assert read_class_names(tmp_path / "classes.txt") == ("Black footed Albatross", "Laysan Albatross", "Sooty Albatross")
    assert read_class_names(tmp_path, expected=3)[0] == "Black footed Albatross"  # a CUB folder
    assert read_class_names(tmp_path / "classes.txt", readable_names=False)[1] == "002.Laysan_Albatross"


def test_plain_file_is_taken_verbatim(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("\ufeffgreat tit\nblue_tit\n 3 robins \n")
    assert read_class_names(tmp_path / "names.txt") == ("great tit", "blue_tit", "3 robins")


def test_class_folders_give_sorted_readable_names(tmp_path: Path) -> None:
    for name in ("002.b_c", "001.a", "010.z"):
        (tmp_path / name).mkdir()
    (tmp_path / "file.txt").write_text("not a class")
    assert read_class_names(tmp_path) == ("a", "b c", "z")
    assert readable("plain") == "plain" and readable("12.") == "12."


@pytest.mark.parametrize("text, message", [
    ("a\nb\n", "gives 2 class names, but the model has 3"),
    ("a\nb\na\n", "both 'a'"),
    ("a\nb\x07\nc\n", "printable"),
    ("a\n" + "x" * 201 + "\nc\n", "printable"),
    ("\n\n", "no class names"),
])
def test_bad_names_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "names.txt").write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_class_names(tmp_path / "names.txt", expected=3)


def test_unreadable_sources_are_refused(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="UTF-8"):
        read_class_names(tmp_path / "latin1.txt")
    (tmp_path / "big.txt").write_bytes(b"a\n" * (3 * 1024 * 1024))
    with pytest.raises(DatasetError, match="too large"):
        read_class_names(tmp_path / "big.txt")
    with pytest.raises(DatasetError, match="no such file"):
        read_class_names(tmp_path / "missing.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no classes.txt and no class folders"):
        read_class_names(tmp_path / "empty")


def test_set_class_names_rewrites_a_checkpoint(tmp_path: Path) -> None:
    source = save_model(make_tiny_model(), tmp_path / "in.safetensors")
    (tmp_path / "names.txt").write_text("owl\nwren\nkite\n")
    out = set_class_names(source, tmp_path / "names.txt", tmp_path / "out.safetensors")
    before, after = load_model(source), load_model(out)
    assert after.class_names == ("owl", "wren", "kite")
    assert all((before.state_dict()[k] == v).all() for k, v in after.state_dict().items())
    assert set_class_names(source, ["a", "b", "c"], tmp_path / "out2.safetensors").exists()
    with pytest.raises(DatasetError, match="gives 2"):
        with_class_names(before, ["a", "b"])


def test_placeholders() -> None:
    assert is_placeholder(("class_0", "class_1")) and not is_placeholder(("class_1", "class_0"))
