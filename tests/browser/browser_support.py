"""Shared pieces of the browser tests: Chromium, a live server, logging in,
axe-core, screenshots. The `browser` fixture itself is in tests/browser/conftest.py.

Playwright's sync API runs an event loop in the test's thread, under which
Django refuses the ORM: tests prepare rows before the browser starts (the
`browser` fixture comes after the database fixture) and read results through
the page or HTTP.
"""

import json
import os
import subprocess
import time
from pathlib import Path

from tests import support

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = support.BASE_DIR / "artifacts" / "screenshots"
WAIT_MS = 20000
PASSWORD = "a-long-Passphrase-42"
WIDTHS = {"desktop": 1280, "phone": 375}


def server_env(step_seconds, **extra):
    env = {
        "TASKS_WORKER_IN_PROCESS": "1",
        "N8N_BASE_URL": "",  # the development workflow runner answers
        "DEV_RUNNER_STEP_SECONDS": str(step_seconds),
        "DEV_RUNNER_WORD_SECONDS": "0",  # streaming tests set their own pace
        "TASK_TIMEOUT_SECONDS": "120",
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


def new_context(browser, width=1280, height=800, **options):
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(CSP_RECORDER)
    return context


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_js(page, expression, timeout_ms=WAIT_MS):
    """Wait until a JavaScript expression is truthy in the page.

    Polled from here with page.evaluate (the DevTools protocol), not with
    Playwright's wait_for_function: that evaluates the predicate with eval()
    inside the page, which the pages' Content-Security-Policy (no
    'unsafe-eval') refuses.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_ms} ms: {expression}")
        time.sleep(0.05)


# Records what the page's Content-Security-Policy refused (added by new_context).
CSP_RECORDER = (
    "window.__cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', (e) =>"
    " window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || e.sample)));"
)


def csp_violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/chat/")


def wait_live(page):
    """The script connected its socket and sent its sync."""
    page.wait_for_selector("#conversation[data-live='1']", state="attached")


def server_hashers(settings):
    # The server checks passwords with its own (default) hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


# --- axe-core -----------------------------------------------------------------------


def axe_source() -> str:
    """axe.min.js from scripts/install-axe.sh's cache (AXE_CORE_JS names it)."""
    path = os.environ.get("AXE_CORE_JS", "")
    if not path:
        default = Path.home() / ".cache" / "chatproject" / "axe-core-4.14.1"
        candidate = default / "node_modules" / "axe-core" / "axe.min.js"
        path = str(candidate) if candidate.exists() else ""
    if not path and support.IN_CI:
        script = support.BASE_DIR / "scripts" / "install-axe.sh"
        path = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, check=True
        ).stdout.strip()
    support.need(bool(path) and os.path.exists(path), "needs axe-core: bash scripts/install-axe.sh")
    return Path(path).read_text()


def serious_violations(page, source) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now.

    Injected through the DevTools protocol (page.evaluate), which the page's
    Content-Security-Policy does not apply to.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(source)
    result = page.evaluate(
        "async () => { const r = await axe.run(document);"
        " return {passes: r.passes.length, violations: r.violations.map(v => ({id: v.id,"
        " impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))}; }"
    )
    assert result["passes"] > 10, "axe checked nothing"  # it did run on a real page
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def describe(violations) -> str:
    return json.dumps(violations, indent=1)
