"""Shared by the console's browser tests: one headless Debian Chromium per test module, driven
by Playwright (`tests.console.browser.launch`: an `executable_path`, never a downloaded
browser); screenshots go to `tests/console/artifacts/`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.browser import ARTIFACTS, launch


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
