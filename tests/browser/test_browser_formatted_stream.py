"""A reply reads formatted while it streams (Chromium + Playwright, a real
Daphne server): the pieces come as the workflow's `processing` callbacks with
`delta`, the server formats the text so far (chat/markdown/streaming.py) and the page
puts its HTML in as it is. No raw `**` nor table pipes ever show, and the
final message takes the room the growing reply took."""

import pytest
import requests

from tests import support
from tests.browser.browser_support import csp_violations, new_context, server_env, wait_js
from tests.browser.test_browser import sign_up_and_start_conversation
from tests.chat.test_stream_render import RICH

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


STREAMED = "#messages .message--streaming"

# Records, on every change of the page, any moment a reply being written shows raw marks.
RECORDER = """() => {
  window.__rawMarks = [];
  new MutationObserver(() => {
    document.querySelectorAll('#messages .message--streaming .message__body').forEach((body) => {
      const text = body.textContent;
      if (text.includes('**') || text.includes('|') || text.includes('```'))
        window.__rawMarks.push(text.slice(-80));
    });
  }).observe(document.getElementById('messages'),
             {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture
def waiting_server(transactional_db):
    # The runner pauses before it writes, so the test's own pieces come first.
    with support.Server(env=server_env(60)) as running:
        yield running


def pieces(text, size=9):
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_a_rich_reply_reads_formatted_while_it_streams_and_the_swap_keeps_its_height(
    browser, waiting_server
):
    from tasks import callbacks

    context = new_context(browser)
    page = context.new_page()
    sign_up_and_start_conversation(page, waiting_server.base_url)
    page.evaluate(RECORDER)
    page.fill("#composer-input", "Plan it, please.")
    page.press("#composer-input", "Enter")
    page.locator(".task-status[data-status='processing']").wait_for()
    task_id = int(page.get_attribute(".task-status", "data-task-id"))
    headers = {"Authorization": f"Bearer {callbacks.make_token(task_id)}"}
    url = f"{waiting_server.base_url}/tasks/{task_id}/webhook/"

    def call_back(payload):
        answer = requests.post(url, json=payload, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text

    for number, piece in enumerate(pieces(RICH)):
        call_back({"status": "processing", "delta": piece})
        if number == 12:
            # Formatted as it grows: a heading and bold text already.
            wait_js(page, f"!!document.querySelector('{STREAMED} .message__body h1')")
            # The question's status line does not repeat what the reply shows.
            assert not page.locator(".task-status").is_visible()
    body = f"{STREAMED} .message__body"
    wait_js(page, f"document.querySelector('{body}')?.textContent.includes('bold end')")
    streamed = page.locator(STREAMED)
    assert streamed.locator("table td").count() == 4
    assert streamed.locator("pre").count() == 1
    assert streamed.locator("math").count() == 2
    assert streamed.locator("input[type=checkbox]").count() == 2
    assert streamed.locator("strong").count() >= 3
    height_streamed = streamed.evaluate("e => e.getBoundingClientRect().height")

    call_back({"status": "completed", "output": {"content": RICH}})
    final = page.locator("#messages li.message--assistant[data-message-id]")
    final.wait_for()
    assert page.locator(STREAMED).count() == 0
    height_final = final.evaluate("e => e.getBoundingClientRect().height")
    # The same renderer made both: the swap moves nothing noticeably.
    assert abs(height_final - height_streamed) <= 4, (height_streamed, height_final)
    assert page.evaluate("window.__rawMarks") == []
    assert csp_violations(page) == []
    context.close()
