"""End-to-end fixtures: `streamlit run` on a free port with tiny models, and Debian's chromium via Playwright.

Browser tests skip (with the reason) only when /usr/bin/chromium is absent; CI installs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from protoviz.models.checkpoint import save_model
from tests.app.conftest import sample_image, with_sources

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not become healthy in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    save_model(with_sources(0), root / "models" / "tiny_log.safetensors")
    (root / "samples").mkdir()
    sample_image(0).save(root / "samples" / "sample_a.png")
    return {"models": root / "models", "samples": root / "samples", "root": root}


@pytest.fixture(scope="module")
def streamlit_url(server_folders: dict[str, Path]) -> Iterator[str]:
    """Start the app as `make run` does, headless on a free port; stop it afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browser tests need it")
    port = free_port()
    env = {**os.environ, "PROTOVIZ_MODEL_DIR": str(server_folders["models"]),
           "PROTOVIZ_SAMPLE_DIR": str(server_folders["samples"]), "PROTOVIZ_DEVICE": "cpu",
           "PROTOVIZ_HOME": str(server_folders["root"] / "home"),
           "PROTOVIZ_UPLOAD_DIR": str(server_folders["root"] / "uploads")}
    env.pop("PROTOVIZ_ALLOWED_ROOTS", None)  # typed server paths are off, as by default, unless a module
    if "data" in server_folders:  # gives a dataset folder for the pages' folder boxes
        env["PROTOVIZ_ALLOWED_ROOTS"] = str(server_folders["data"])
    log = server_folders["root"] / "streamlit.log"
    command = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browser tests need it")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # two busy CPU cores: the first run imports torch
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: object, streamlit_url: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    tab = context.new_page()
    tab.set_default_timeout(120_000)
    tab.goto(streamlit_url)
    yield tab
    context.close()
