"""Fixtures of the browser tests (Debian's Chromium driven by Playwright)."""

import os
import time

import pytest

from tests import support
from tests.browser.browser_support import CHROMIUM, SCREENSHOTS

_SESSION_STARTED = time.time()


@pytest.fixture(name="browser")
def browser_fixture(transactional_db):
    support.need(os.path.exists(CHROMIUM), f"needs Debian's Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def pytest_terminal_summary(terminalreporter):
    """Say where the browser tests' screenshots are (artifacts/ is git-ignored)."""
    shots = sorted(p for p in SCREENSHOTS.glob("*.png") if p.stat().st_mtime >= _SESSION_STARTED)
    if shots:
        terminalreporter.write_line(f"browser screenshots ({len(shots)}): {SCREENSHOTS}")
