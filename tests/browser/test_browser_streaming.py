"""Streaming replies and Stop in a real browser (Chromium + Playwright) against
a real Daphne server whose development runner streams its reply word by word
(processing callbacks with `delta`) over real HTTP."""

import time

import pytest
import requests

from tests import support
from tests.browser.browser_support import (
    csp_violations,
    new_context,
    screenshot,
    server_env,
    wait_js,
)
from tests.browser.test_browser import sign_up_and_start_conversation, wait_live

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Slow enough that the reply takes several seconds to write.
WORD_SECONDS = 0.12
LONG_MESSAGE = " ".join(f"word{n}" for n in range(40))
STREAMED = "document.querySelector('#messages .message--streaming .message__body')"


@pytest.fixture
def server(transactional_db):
    env = server_env(0.2, DEV_RUNNER_WORD_SECONDS=WORD_SECONDS)
    with support.Server(env=env) as running:
        yield running


@pytest.fixture
def page(browser, server):
    context = new_context(browser)
    page = context.new_page()
    sign_up_and_start_conversation(page, server.base_url)
    yield page
    assert csp_violations(page) == []
    context.close()


def streamed_length(page) -> int:
    return page.evaluate(f"({STREAMED}?.textContent || '').length")


def send(page, text=LONG_MESSAGE):
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    page.locator("#messages li.message--user").first.wait_for()


def wait_streamed(page, at_least):
    """The text the growing reply shows (formatted: no Markdown marks), once
    it has `at_least` characters."""
    wait_js(page, f"({STREAMED}?.textContent || '').length >= {at_least}")
    return page.evaluate(f"{STREAMED}.textContent").strip()


def unmarked(source):
    """A reply's Markdown source as its formatted text reads (the runner's
    reply has only bold marks)."""
    return source.replace("**", "")


def test_the_reply_grows_on_the_page_then_becomes_the_message(page):
    send(page)
    lengths = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lengths.add(streamed_length(page))
        if page.locator("#messages li.message--assistant[data-message-id]").count():
            break
        time.sleep(0.05)
    grown = sorted(length for length in lengths if length)
    assert len(grown) >= 5, f"saw only these lengths: {grown}"
    reply = page.locator("#messages li.message--assistant[data-message-id]")
    assert reply.count() == 1
    assert page.locator("#messages .message--streaming").count() == 0
    # The final message is the server-rendered Markdown (bold from **…**).
    assert reply.locator(".message__body strong").count() >= 1
    assert "word39" in reply.inner_text()
    assert page.inner_text("#composer-send") == "Send"


def test_while_it_streams_the_composer_keeps_a_draft_and_stop_keeps_the_text(page):
    send(page)
    wait_streamed(page, 40)
    assert page.inner_text("#composer-send") == "Stop"
    page.fill("#composer-input", "my next question")  # still editable
    page.press("#composer-input", "Enter")  # Enter does not stop, nor send
    shown = wait_streamed(page, 41)
    screenshot(page, "chat-streaming-1280")
    page.click("#composer-send")
    stopped = page.locator("#messages li.message--assistant[data-message-id]")
    stopped.wait_for()
    assert stopped.locator(".message__stopped").inner_text() == "stopped"
    kept = stopped.locator(".message__source").evaluate("t => t.innerHTML")
    assert unmarked(kept).startswith(shown[:40])
    assert len(kept) < 600  # well short of the whole reply
    assert page.locator("#messages .message--streaming").count() == 0
    assert page.input_value("#composer-input") == "my next question"
    wait_js(page, "!document.getElementById('composer').dataset.busy")
    assert page.inner_text("#composer-send") == "Send"
    screenshot(page, "chat-stopped-1280")


def test_esc_stops_the_reply_and_keeps_the_text(page):
    send(page)
    shown = wait_streamed(page, 30)
    page.keyboard.press("Escape")
    stopped = page.locator("#messages li.message--assistant[data-message-id]")
    stopped.wait_for()
    assert stopped.locator(".message__stopped").count() == 1
    kept = stopped.locator(".message__source").evaluate("t => t.innerHTML")
    assert unmarked(kept).startswith(shown)
    page.wait_for_timeout(WORD_SECONDS * 5 * 1000)  # nothing more arrives
    assert page.locator("#messages li.message--assistant").count() == 1
    # The kept text says "stopped" once: no "Stopped" status line nor Retry,
    # live and after a reload.
    wait_js(page, "!document.querySelector('#messages .task-status')")
    page.reload()
    page.locator("#messages li.message--assistant[data-message-id]").wait_for()
    assert page.locator("#messages .message__stopped").count() == 1
    assert page.locator("#messages .task-status, #messages .task-retry").count() == 0


def test_a_reload_mid_stream_shows_the_text_so_far(page):
    send(page)
    before = wait_streamed(page, 60)
    page.reload()
    wait_live(page)
    after = wait_streamed(page, len(before))
    assert after.startswith(before)
    assert page.locator("#messages li.message--assistant[data-message-id]").count() == 0
    reply = page.locator("#messages li.message--assistant[data-message-id]")
    reply.wait_for(timeout=40000)
    assert reply.count() == 1
    assert page.locator("#messages .message--streaming").count() == 0


@pytest.fixture
def waiting_server(transactional_db):
    # The runner pauses before it writes, so the test's own pieces come first.
    with support.Server(env=server_env(60)) as running:
        yield running


def test_a_leading_think_block_reads_thinking_while_it_streams(browser, waiting_server):
    # The page parses no <think>: each message.delta says what to show.
    from tasks import callbacks

    context = new_context(browser)
    page = context.new_page()
    sign_up_and_start_conversation(page, waiting_server.base_url)
    send(page, "Think first, please.")
    page.locator(".task-status[data-status='processing']").wait_for()
    task_id = int(page.get_attribute(".task-status", "data-task-id"))

    def piece(text):
        answer = requests.post(
            f"{waiting_server.base_url}/tasks/{task_id}/webhook/",
            json={"status": "processing", "delta": text},
            headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    for text in ("  <thi", "nk>weighing it"):
        piece(text)
        wait_js(page, f"{STREAMED}?.textContent.trim() === 'Thinking…'")
        assert "message__body--thinking" in page.get_attribute(
            "#messages .message--streaming .message__body", "class"
        )
    piece("</think>")
    wait_js(page, f"{STREAMED}?.textContent.trim() === ''")
    piece("\n\nHello")
    wait_js(page, f"{STREAMED}?.textContent.trim() === 'Hello'")
    assert "message__body--thinking" not in page.get_attribute(
        "#messages .message--streaming .message__body", "class"
    )
    # A reload asks sync, whose frame says the same.
    page.reload()
    wait_live(page)
    wait_js(page, f"{STREAMED}?.textContent.trim() === 'Hello'")
    # Stopped: the same rule splits the kept text.
    page.keyboard.press("Escape")
    stopped = page.locator("#messages li.message--assistant[data-message-id]")
    stopped.wait_for()
    assert stopped.locator(".message__source").evaluate("t => t.innerHTML") == "Hello"
    thinking = stopped.locator(".message__thinking .markdown").text_content()
    assert thinking.strip() == "weighing it"
    assert csp_violations(page) == []
    context.close()
