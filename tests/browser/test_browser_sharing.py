"""Share links and ratings in a real browser (Chromium via Playwright, a live
Daphne): the owner makes a link from the Manage menu, a stranger reads the
shared page without logging in (no controls, noindex, no CSP violation, axe
clean at 1280 and 375 px), and 👍 on a reply is kept without a reload."""

import re

import pytest

from tests import factories, support
from tests.browser.browser_support import (
    WIDTHS,
    axe_source,
    csp_violations,
    describe,
    log_in,
    new_context,
    screenshot,
    serious_violations,
    server_env,
    server_hashers,
    wait_js,
    wait_live,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPLY = "## Packing\n\n- a `map`\n- **boots**\n\n| day | walk |\n| --- | --- |\n| 1 | 12 km |\n"


@pytest.fixture
def owner(make_user, settings):
    server_hashers(settings)
    user = make_user("owner")
    conversation = factories.conversation(user, title="Hiking trip")
    question = factories.message(conversation, "What should I pack?")
    reply = factories.message(conversation, REPLY, role="assistant", parent=question)
    return {"conversation": conversation, "reply": reply}


@pytest.fixture
def server(transactional_db):
    with support.Server(env=server_env(0.3)) as running:
        yield running


def make_link(browser, server, conversation):
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "owner")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)
    page.click(".menu summary")
    page.click("text=Share a read-only link")
    page.wait_for_selector(".flash__item")
    text = page.inner_text(".flash__item")
    context.close()
    return re.search(r"https?://\S+/s/[A-Za-z0-9_-]+/", text).group(0)


def test_a_stranger_reads_the_shared_page_without_controls(owner, server, browser):
    link = make_link(browser, server, owner["conversation"])
    source = axe_source()
    for name, width in WIDTHS.items():
        context = new_context(browser, width=width)
        page = context.new_page()
        response = page.goto(link)
        assert response.status == 200
        assert "noindex" in response.headers["x-robots-tag"]
        assert page.inner_text("h1") == "Hiking trip"
        assert page.locator(".message").count() == 2
        assert page.locator("table").count() == 1  # the reply is formatted
        assert page.locator("#composer, textarea, .message__actions, .menu").count() == 0
        buttons = page.locator("main button")
        for index in range(buttons.count()):
            assert "copy" in (buttons.nth(index).get_attribute("class") or "")
        assert page.locator('meta[name="robots"]').get_attribute("content").startswith("noindex")
        assert csp_violations(page) == []
        violations = serious_violations(page, source)
        screenshot(page, f"shared-{name}")
        assert violations == [], describe(violations)
        context.close()


def test_rating_a_reply_is_kept_without_a_reload(owner, server, browser):
    conversation, reply = owner["conversation"], owner["reply"]
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "owner")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)
    page.evaluate("window.__samePage = true")
    page.click(f"#message-{reply.pk} .message__rate--up")
    wait_js(
        page,
        f"document.querySelector('#message-{reply.pk} .message__rate--up')"
        ".getAttribute('aria-pressed') === 'true'",
    )
    assert page.evaluate("window.__samePage === true")  # fetch, not a form post
    # Keyboard users stay where they were: on the same button of the new fragment.
    assert page.evaluate(
        "document.activeElement.classList.contains('message__rate--up')"
        f" && !!document.activeElement.closest('#message-{reply.pk}')"
    )
    page.reload()
    wait_live(page)
    pressed = page.get_attribute(f"#message-{reply.pk} .message__rate--up", "aria-pressed")
    assert pressed == "true"
    assert csp_violations(page) == []
    context.close()
