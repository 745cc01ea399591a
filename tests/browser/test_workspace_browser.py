"""End-to-end: two browsers (two Playwright contexts, as two visitors) on one `streamlit run` server. A model
one adds and a run kept for it are absent in the other, and present again in the first after a page switch
and a reload, because its address carries its workspace token (``?ws=``)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import pytest

from protoviz.owners import is_token
from protoviz.payload import Payload
from protoviz.workspace import RunKey, Workspace

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = pytest.mark.browser


@pytest.fixture
def visitors(browser: Browser) -> Iterator[tuple[Page, Page]]:
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000})
                for _ in range(2)]
    tabs = [context.new_page() for context in contexts]
    for tab in tabs:
        tab.set_default_timeout(120_000)
    yield tabs[0], tabs[1]
    for context in contexts:
        context.close()


def token(tab: Page) -> str:
    """The workspace token in a tab's address, once the app has put it there."""
    from playwright.sync_api import expect

    expect(tab).to_have_url(re.compile(r"[?&]ws=[A-Za-z0-9_-]{24}(&|$)"))
    [value] = parse_qs(urlparse(tab.url).query)["ws"]
    assert is_token(value)
    return value


def kept(tab: Page) -> Locator:
    return tab.get_by_text(re.compile(r"Kept in your workspace: \d+ run"))


def test_a_model_and_a_run_of_one_visitor_are_absent_for_another(
        visitors: tuple[Page, Page], streamlit_url: str, server_folders: dict[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect

    alice, bob = visitors
    alice.goto(f"{streamlit_url}/models")
    alice_token = token(alice)
    checkpoint = tmp_path / "alice model.safetensors"  # named after its file: typing a name first can eat the click
    shutil.copy(server_folders["models"] / "tiny_log.safetensors", checkpoint)
    alice.locator("input[type='file']").first.set_input_files(str(checkpoint))
    expect(alice.get_by_role("button", name="Remove alice model.safetensors")).to_be_visible()
    alice.get_by_role("button", name="Add model").click()
    expect(alice.get_by_text("Added 'alice model'")).to_be_visible()
    Workspace(server_folders["root"] / "home", owner=alice_token).save_run(
        RunKey.make("evaluate", "a" * 64, "f" * 64, {}), Payload(data={"accuracy": 0.5}), model_name="alice model")

    bob.goto(f"{streamlit_url}/models")
    assert token(bob) != alice_token
    expect(bob.get_by_role("heading", name="tiny_log")).to_be_visible()
    expect(bob.get_by_text("1 model(s) available")).to_be_visible()  # the demo only
    expect(bob.get_by_role("heading", name="alice model")).to_have_count(0)
    bob.goto(f"{streamlit_url}/results")
    expect(kept(bob)).to_contain_text("0 run(s) and 0 added model(s)")
    expect(bob.get_by_text("alice model")).to_have_count(0)

    alice.get_by_role("link", name="Results").click()  # a page switch empties the address
    expect(kept(alice)).to_contain_text("1 run(s) and 1 added model(s)")
    assert token(alice) == alice_token  # ... and the app puts the token back
    alice.reload()
    expect(kept(alice)).to_contain_text("1 run(s) and 1 added model(s)")
    alice.goto(f"{streamlit_url}/models?ws={alice_token}")  # e.g. a bookmark
    expect(alice.get_by_role("heading", name="alice model")).to_be_visible()
    expect(alice.get_by_text("Traceback")).to_have_count(0)
