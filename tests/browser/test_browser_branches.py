"""Branches in a real browser: regenerate, edit in place, the ‹ i / n › switch,
and a reload that keeps the chosen branch (Chromium + Playwright against a
real Daphne server whose development workflow runner plays n8n)."""

import re

import pytest

from tests import factories, support
from tests.browser.browser_support import (
    PASSWORD,
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


@pytest.fixture
def writer(make_user, settings):
    server_hashers(settings)
    user = make_user("brancher", password=PASSWORD)
    return {"user": user, "conversation": factories.conversation(user, title="Branches")}


@pytest.fixture
def server(transactional_db):
    with support.Server(env=server_env(0.2)) as running:
        yield running


def open_page(browser, server, conversation):
    context = new_context(browser)
    page = context.new_page()
    log_in(page, server.base_url, "brancher")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)
    return context, page


def replies(page):
    return page.locator("#messages li.message--assistant")


def wait_idle(page):
    """The reply arrived and the composer is free again."""
    wait_js(page, "!document.querySelector('#messages .task-status')")
    wait_js(page, "!document.querySelector('#composer-input').disabled")


def send(page, text):
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    page.locator("#messages li.message--user", has_text=text).wait_for()
    wait_idle(page)


def test_regenerate_switch_and_reload_keep_the_chosen_branch(writer, server, browser):
    context, page = open_page(browser, server, writer["conversation"])
    send(page, "first question")
    first_reply_id = replies(page).last.get_attribute("data-message-id")

    replies(page).last.locator("button.message__regenerate").click()
    wait_js(
        page,
        "document.querySelectorAll('#messages li.message--assistant').length === 1 &&"
        " document.querySelector('#messages li.message--assistant').dataset.messageId"
        f" !== '{first_reply_id}'",
    )
    wait_idle(page)
    switch = replies(page).last.locator(".versions")
    assert switch.locator(".versions__count").inner_text() == "2 / 2"
    screenshot(page, "branches-regenerated")

    # ‹ goes back to the first reply, in place, and the address names it.
    page.evaluate("window.__notReloaded = true")
    switch.locator("a.versions__previous").click()
    page.locator(f"#message-{first_reply_id}").wait_for()
    assert replies(page).last.locator(".versions__count").inner_text() == "1 / 2"
    assert page.evaluate("window.__notReloaded") is True
    assert re.search(rf"\?leaf={first_reply_id}$", page.url)

    page.reload()
    wait_live(page)
    assert replies(page).count() == 1
    assert replies(page).last.get_attribute("data-message-id") == first_reply_id
    assert replies(page).last.locator(".versions__count").inner_text() == "1 / 2"

    # A send from the old branch continues it.
    send(page, "follow-up on the first reply")
    items = page.locator("#messages > li")
    assert items.count() == 4
    assert items.nth(1).get_attribute("data-message-id") == first_reply_id
    assert csp_violations(page) == []
    context.close()


def test_a_version_made_in_another_tab_updates_this_tabs_switch_live(writer, server, browser):
    # The switch this tab shows is the server's (the frame's "switches"),
    # swapped in without a reload, and it leads to the new version.
    context, page = open_page(browser, server, writer["conversation"])
    send(page, "first question")
    first_reply_id = replies(page).last.get_attribute("data-message-id")
    other = context.new_page()
    other.goto(page.url)
    wait_live(other)
    assert other.locator(".versions").count() == 0
    other.evaluate("window.__notReloaded = true")

    page.locator("button.message__regenerate").click()
    wait_js(page, "document.querySelector('#messages .versions__count')?.textContent === '2 / 2'")
    wait_js(other, "document.querySelector('#messages .versions__count')?.textContent === '1 / 2'")
    shown = replies(other).last
    assert shown.get_attribute("data-message-id") == first_reply_id
    assert shown.locator(".versions").get_attribute("aria-label") == "Version 1 of 2"
    assert shown.locator("span.versions__previous").count() == 1
    new_reply_id = page.locator("#messages li.message--assistant").last.get_attribute(
        "data-message-id"
    )
    assert shown.locator("a.versions__next").get_attribute("data-leaf") == new_reply_id
    assert other.evaluate("window.__notReloaded") is True
    violations = serious_violations(other, axe_source())
    assert violations == [], describe(violations)

    shown.locator("a.versions__next").click()
    other.locator(f"#message-{new_reply_id}").wait_for()
    assert replies(other).last.locator(".versions__count").inner_text() == "2 / 2"
    assert csp_violations(other) == [] and csp_violations(page) == []
    context.close()


def test_edit_in_place_saves_with_enter_and_cancels_with_escape(writer, server, browser):
    context, page = open_page(browser, server, writer["conversation"])
    send(page, "how far is the moon")
    question = page.locator("#messages li.message--user").first

    # Esc cancels: nothing sent, the text is back.
    question.locator("a.message__edit").click()
    editor = question.locator("textarea.message-editor__input")
    assert editor.input_value() == "how far is the moon"
    editor.press("Escape")
    assert question.locator(".message-editor").count() == 0
    assert question.locator(".message__body").is_visible()

    question.locator("a.message__edit").click()
    editor = question.locator("textarea.message-editor__input")
    editor.fill("how far is the sun")
    editor.press("Enter")
    page.locator("#messages li.message--user", has_text="how far is the sun").wait_for()
    wait_idle(page)
    users = page.locator("#messages li.message--user")
    assert users.count() == 1
    assert users.first.locator(".versions__count").inner_text() == "2 / 2"
    assert "You wrote:" in replies(page).last.inner_text()
    assert "how far is the sun" in replies(page).last.inner_text()
    screenshot(page, "branches-edited")

    users.first.locator("a.versions__previous").click()
    page.locator("#messages li.message--user", has_text="how far is the moon").wait_for()
    assert page.locator("#messages li.message--user").count() == 1
    assert "how far is the moon" in replies(page).last.inner_text()
    context.close()


def test_branches_work_without_javascript(writer, server, browser):
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    log_in(page, server.base_url, "brancher")
    conversation = writer["conversation"]
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    page.fill("#composer-input", "no script here")
    page.click("#composer-send")
    # Without the script the page shows what is stored: reload until the reply is in.
    for _ in range(100):
        if page.locator("#messages li.message--assistant").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    page.locator("#messages li.message--assistant button.message__regenerate").click()
    page.wait_for_url(re.compile(r".*/chat/\d+/#message-\d+$"))
    for _ in range(100):
        if page.locator(".versions__count").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator(".versions__count").inner_text() == "2 / 2"
    page.click("a.versions__previous")
    assert "?leaf=" in page.url
    assert page.locator(".versions__count").inner_text() == "1 / 2"

    page.click("a.message__edit")
    page.fill("#edit-input", "still no script")
    page.click("form.edit-form button[type=submit]")
    page.locator("#messages li.message--user", has_text="still no script").wait_for()
    context.close()
