"""Regenerate docs/screenshot.png: the Explain page with the demo models on a bundled sample.

Starts `streamlit run app/streamlit_app.py` headless on a free port, drives Debian's chromium with
Playwright, selects every demo model and one sample, and screenshots the page::

    .venv/bin/python docs/make_screenshot.py [--sample NAME] [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="blue_wing_146.png", help="a file name in assets/samples")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--size", default="1400x2250", help="viewport WIDTHxHEIGHT")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    model_dir = Path(os.environ.get("PROTOVIZ_MODEL_DIR", ROOT / "assets" / "models"))
    sample_dir = Path(os.environ.get("PROTOVIZ_SAMPLE_DIR", ROOT / "assets" / "samples"))
    models = sorted(p.stem for p in model_dir.glob("*.safetensors"))
    samples = sorted(p.name for p in sample_dir.iterdir() if p.is_file())
    sample = args.sample if args.sample in samples else samples[0]
    port = free_port()
    log = Path("/tmp") / f"protoviz_screenshot_{port}.log"
    command = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1"]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log)
        expect.set_options(timeout=180_000)
        width, height = (int(v) for v in args.size.split("x"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            page.goto(url)
            expect(page.get_by_text("Explain: this looks like that")).to_be_visible()
            for name in models[1:]:
                page.get_by_role("combobox", name="Models").click()
                page.get_by_role("option", name=name).click()
                page.keyboard.press("Escape")
            slider = page.get_by_role("slider")
            slider.focus()
            for _ in range(max(0, 5 - args.top_k)):
                page.keyboard.press("ArrowLeft")
            page.get_by_role("combobox", name="Images: bundled samples").click()
            page.get_by_role("option", name=sample).click()
            page.keyboard.press("Escape")
            expect(page.locator("[class*='st-key-prototype-card-']").first).to_be_visible()
            expect(page.locator(".js-plotly-plot").first).to_be_visible()  # the waterfall of the decision
            expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
            time.sleep(8)  # let images, tables and charts finish drawing
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"wrote {args.out} ({', '.join(models)} on {sample})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
