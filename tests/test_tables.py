"""One CSV writer: plain tables that pandas reads as they are, provenance in a sidecar."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from protoviz.errors import ConfigError
from protoviz.tables import csv_text, sidecar_path, write_csv


def test_csv_text_is_a_plain_table() -> None:
    rows = [{"a": 1, "b": 0.5}, {"a": np.int64(2), "c": None, "b": math.nan, "d": [1, 2]}]
    text = csv_text(rows)
    assert text.splitlines()[0] == "a,b,c,d"
    table = pd.read_csv(io.StringIO(text))
    assert list(table.columns) == ["a", "b", "c", "d"] and table["a"].tolist() == [1, 2]
    assert math.isnan(table["b"][1]) and json.loads(table["d"][1]) == [1, 2]


def test_write_csv_puts_provenance_in_a_sidecar(tmp_path: Path) -> None:
    paths = write_csv(tmp_path / "out" / "scores.csv", [{"x": 1}], {"model": {"sha256": "abc"}})
    assert paths == [tmp_path / "out" / "scores.csv", tmp_path / "out" / "scores.provenance.json"]
    assert pd.read_csv(paths[0])["x"].tolist() == [1]
    assert json.loads(paths[1].read_text()) == {"table": "scores.csv", "model": {"sha256": "abc"}}
    assert sidecar_path("a/b.csv") == Path("a/b.provenance.json")
    with pytest.raises(ConfigError, match=".csv"):
        write_csv(tmp_path / "scores.txt", [{"x": 1}])
