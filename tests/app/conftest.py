"""AppTest fixtures: a tmp model folder with tiny checkpoints and a tmp sample folder.

``app_env`` points PROTOVIZ_MODEL_DIR / PROTOVIZ_SAMPLE_DIR at them (and forces the CPU), so page
tests never depend on the demo models. Use ``app_test()`` to start the router, or
``AppTest.from_file(str(VIEWS / "page.py"))`` for one page alone.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from protoviz.models.base import PrototypeSource
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app" / "streamlit_app.py"
VIEWS = ROOT / "app" / "views"
TIMEOUT = 120
OWNER = "apptest-visitor-00000000"  # a valid workspace token (24 URL-safe characters): the tests' visitor


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def sample_image(seed: int = 0, size: tuple[int, int] = (72, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def with_sources(seed: int, similarity: str = "log", sets: tuple[str, ...] = ("prototypes",)):
    """A tiny model whose prototypes have source thumbnails, as after push."""
    model = make_tiny_model(similarity=similarity, sets=sets, seed=seed)
    rng = np.random.default_rng(seed)
    model.prototype_sources = [
        PrototypeSource(image_id=f"train/{j}.png", box=(8, 24, 16, 40),
                        image_thumbnail=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                        patch_thumbnail=rng.integers(0, 256, (8, 12, 3), dtype=np.uint8),
                        map_location=(1, 2), class_index=j // 2)
        for j in range(model.num_prototypes)]
    return model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    save_model(with_sources(0), folder / "tiny_log.safetensors")
    save_model(with_sources(1, "cosine", ("support", "trivial")), folder / "tiny_cosine.safetensors")
    return folder


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    folder.mkdir()
    sample_image(0).save(folder / "sample_a.png")
    sample_image(1, (50, 90)).save(folder / "sample_b.png")
    return folder


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, model_dir: Path, sample_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("PROTOVIZ_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("PROTOVIZ_SAMPLE_DIR", str(sample_dir))
    monkeypatch.setenv("PROTOVIZ_DEVICE", "cpu")
    # typed server paths are off by default; the page tests allow the test run's temporary folders
    monkeypatch.setenv("PROTOVIZ_ALLOWED_ROOTS", str(tmp_path_factory.getbasetemp()))


def app_test(script: Path = APP, owner: str = OWNER) -> AppTest:
    """An AppTest of the router (or of one page file) with a generous timeout for 2 busy cores, opened with
    ``?ws=<owner>`` (every session of a test is then the same visitor, as after a refresh)."""
    return with_owner(AppTest.from_file(str(script), default_timeout=TIMEOUT), owner)


def with_owner(at: AppTest, owner: str = OWNER) -> AppTest:
    """Open ``at`` with the workspace token ``owner`` in its address (see app/store.py)."""
    at.query_params["ws"] = owner
    return at
