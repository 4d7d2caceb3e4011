"""The live page in a real browser: Debian's Chromium driven by Playwright,
against a real Daphne server on 127.0.0.1 running the worker and the
development workflow runner (which plays n8n over real HTTP callbacks).

Screenshots at 1280 px and 375 px go to artifacts/screenshots/ (git-ignored).
These tests are sync on purpose: Playwright's sync API cannot run inside an
asyncio loop.
"""

import re
import uuid

import pytest
import requests

from chat.models import Message
from tests import factories, support
from tests.browser.browser_support import wait_js

SCREENSHOTS = support.BASE_DIR / "artifacts" / "screenshots"
WAIT_MS = 20000

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def server_env(step_seconds):
    return {
        "TASKS_WORKER_IN_PROCESS": "1",
        "N8N_BASE_URL": "",  # the development workflow runner answers
        "DEV_RUNNER_STEP_SECONDS": str(step_seconds),
        "DEV_RUNNER_WORD_SECONDS": "0",
        "TASK_TIMEOUT_SECONDS": "120",
    }


@pytest.fixture
def server(transactional_db):
    with support.Server(env=server_env(1.5)) as running:
        yield running


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def sign_up_and_start_conversation(page, base_url):
    username = f"user-{uuid.uuid4().hex[:8]}"
    page.goto(f"{base_url}/accounts/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", "a-long-Passphrase-42")
    page.fill("input[name=password2]", "a-long-Passphrase-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/chat/")
    page.click("form.new-conversation button[type=submit]")
    page.wait_for_url(re.compile(r".*/chat/\d+/$"))
    wait_live(page)
    return page.url


def wait_live(page):
    """The script connected its socket and sent its sync."""
    page.wait_for_selector("#conversation[data-live='1']", state="attached")


def assistant_messages(page):
    # Stored replies only (a reply being streamed is a provisional item).
    return page.locator("#messages li.message--assistant[data-message-id]")


def test_a_reply_arrives_live_with_its_steps_in_every_tab(server, context):
    page = context.new_page()
    url = sign_up_and_start_conversation(page, server.base_url)
    other_tab = context.new_page()
    other_tab.goto(url)
    wait_live(other_tab)
    page.evaluate("window.__notReloaded = true")

    page.fill("#composer-input", "Hello from the browser test")
    page.press("#composer-input", "Enter")

    # The user message appears at once, its status moves, and the composer waits.
    user_message = page.locator("#messages li.message--user")
    user_message.first.wait_for()
    assert user_message.count() == 1
    assert "Hello from the browser test" in user_message.first.inner_text()
    processing = page.locator(".task-status[data-status='processing']")
    processing.wait_for()
    wait_js(
        page,
        "document.querySelector('.task-status__label')?.textContent.includes('writing a reply')",
    )
    # What is true, with the time waited; never a raw step id.
    assert "dispatched" not in page.inner_text(".task-status__label")
    # The box stays editable (draft the next message); the button stops the reply.
    assert page.locator("#composer-input").is_enabled()
    assert page.inner_text("#composer-send") == "Stop"
    assert "replying" in page.inner_text("#composer-notice")
    # The other tab follows, including the waiting composer.
    other_tab.locator("#messages li.message--user").first.wait_for()
    wait_js(other_tab, "document.getElementById('composer').dataset.busy === '1'")
    screenshot(page, "chat-reply-in-flight-1280")

    # The reply lands: status line gone, composer back, no reload happened.
    assistant_messages(page).first.wait_for()
    assert "development workflow runner" in assistant_messages(page).first.inner_text()
    page.locator(".task-status").wait_for(state="detached")
    wait_js(page, "!document.getElementById('composer').dataset.busy")
    assert page.locator("#composer-send").is_enabled()
    assert page.evaluate("window.__notReloaded === true")
    assert assistant_messages(page).count() == 1
    assert page.locator("#messages li.message--user").count() == 1
    # The heading and the sidebar follow without a reload: the title taken from
    # the first message, the preview of the reply, the entry on top.
    assert page.inner_text("#conversation-title") == "Hello from the browser test"
    current = page.locator('.conversation-link[aria-current="page"]')
    assert current.locator(".conversation-link__title").inner_text() == (
        "Hello from the browser test"
    )
    assert (
        current.locator(".conversation-link__preview")
        .inner_text()
        .startswith("Assistant: This reply comes from the development workflow runner")
    )

    assistant_messages(other_tab).first.wait_for()
    wait_js(other_tab, "!document.getElementById('composer').dataset.busy")
    assert assistant_messages(other_tab).count() == 1
    assert other_tab.locator("#messages li.message--user").count() == 1
    assert page.locator("#connection-status").is_hidden()

    screenshot(page, "chat-reply-1280")
    page.set_viewport_size({"width": 375, "height": 800})
    screenshot(page, "chat-reply-375")
    print(f"screenshots saved in {SCREENSHOTS}")


def test_shift_enter_adds_a_line_and_the_page_survives_a_reload(server, context):
    page = context.new_page()
    url = sign_up_and_start_conversation(page, server.base_url)
    page.fill("#composer-input", "first line")
    page.press("#composer-input", "Shift+Enter")
    page.keyboard.type("second line")
    assert page.input_value("#composer-input") == "first line\nsecond line"
    assert page.locator("#messages li.message--user").count() == 0

    page.press("#composer-input", "Enter")
    page.locator("#messages li.message--user").first.wait_for()
    page.locator(".task-status").first.wait_for()
    # Reload in the middle of the reply: the page catches up, nothing twice.
    page.goto(url)
    wait_live(page)
    assistant_messages(page).first.wait_for()
    wait_js(page, "!document.getElementById('composer').dataset.busy")
    assert assistant_messages(page).count() == 1
    assert page.locator("#messages li.message--user").count() == 1
    body = page.locator("#messages li.message--user .message__body").inner_text()
    assert body == "first line\nsecond line"


def test_a_reply_finished_while_the_server_was_down_appears_after_reconnect(
    transactional_db, context
):
    # A long pause between the runner's callbacks keeps the reply in flight
    # while the page's server stops. n8n's `completed` callback then lands on a
    # second server process (same database) while the first is down.
    page_server = support.Server(env=server_env(30))
    other_server = support.Server(env={"TASKS_WORKER_IN_PROCESS": "0"})
    with page_server, other_server:
        page = context.new_page()
        sign_up_and_start_conversation(page, page_server.base_url)
        page.fill("#composer-input", "Will you survive a restart?")
        page.press("#composer-input", "Enter")
        page.locator(".task-status[data-status='processing']").wait_for()
        task_id = int(page.get_attribute(".task-status", "data-task-id"))

        page_server.stop()
        page.locator("#connection-status").wait_for(state="visible")
        assert page.inner_text("#connection-status") == "Reconnecting…"
        assert page.inner_text("#composer-send") == "Stop"
        screenshot(page, "chat-reconnecting-1280")

        from tasks import callbacks

        answer = requests.post(
            f"{other_server.base_url}/tasks/{task_id}/webhook/",
            json={"status": "completed", "output": {"content": "Yes: this reply waited."}},
            headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert assistant_messages(page).count() == 0

        page_server.start()  # same port
        assistant_messages(page).first.wait_for()
        page.locator("#connection-status").wait_for(state="hidden")
        page.locator(".task-status").wait_for(state="detached")
        wait_js(page, "!document.getElementById('composer').dataset.busy")
        assert "this reply waited" in assistant_messages(page).first.inner_text()
        assert assistant_messages(page).count() == 1
        assert page.locator("#messages li.message--user").count() == 1
        screenshot(page, "chat-after-reconnect-1280")


def test_a_failed_reply_shows_the_error_and_retry_brings_the_reply(transactional_db, context):
    with support.Server(env=server_env(3)) as running:
        page = context.new_page()
        sign_up_and_start_conversation(page, running.base_url)
        page.fill("#composer-input", "Please fail first")
        page.click("#composer-send")
        page.locator(".task-status[data-status='processing']").wait_for()
        task_id = int(page.get_attribute(".task-status", "data-task-id"))

        from tasks import callbacks

        # n8n's error branch reports the failure before the runner finishes.
        answer = requests.post(
            f"{running.base_url}/tasks/{task_id}/webhook/",
            json={"status": "failed", "error": {"message": "model unavailable"}},
            headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        failed = page.locator(f"#task-{task_id}[data-status='failed']")
        failed.wait_for()
        assert page.inner_text(f"#task-{task_id} .task-status__label") == "Failed"
        assert "could not reply" in page.inner_text(f"#task-{task_id} .task-status__error")
        wait_js(page, "!document.getElementById('composer').dataset.busy")
        screenshot(page, "chat-failed-1280")

        page.click(f"#task-{task_id} form.task-retry button")
        page.locator(f"#task-{task_id}").wait_for(state="detached")
        wait_js(page, "document.getElementById('composer').dataset.busy === '1'")
        assistant_messages(page).first.wait_for()
        wait_js(page, "!document.getElementById('composer').dataset.busy")
        assert assistant_messages(page).count() == 1
        assert page.locator("#messages li.message--user").count() == 1
        assert page.locator(".task-status").count() == 0


@pytest.fixture
def long_conversation(make_user, settings):
    """A user with a conversation taller than the window and a reply in flight."""
    # The server checks the password with its own (default) hashers.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user("scroller")
    conversation = factories.conversation(user, title="A long one")
    for number in range(30):
        factories.message(conversation, f"Message number {number}", role="assistant")
    question = factories.message(conversation, "And now?")
    task = factories.task(
        user,
        status="processing",
        current_step="generating",
        input_data={"conversation_id": conversation.pk, "message_id": question.pk},
    )
    Message.objects.filter(pk=question.pk).update(async_task=task)
    return {"conversation": conversation, "task": task}


def log_in(page, base_url, username):
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "a-long-Passphrase-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/chat/")


def distance_from_bottom(page):
    return page.evaluate(
        "(() => { const s = document.scrollingElement;"
        " return s.scrollHeight - s.scrollTop - s.clientHeight; })()"
    )


def complete(server, task_id, content):
    from tasks import callbacks

    answer = requests.post(
        f"{server.base_url}/tasks/{task_id}/webhook/",
        json={"status": "completed", "output": {"content": content}},
        headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("scrolled_up", [False, True])
def test_a_reply_scrolls_into_view_unless_the_user_scrolled_up(
    long_conversation, server, context, scrolled_up
):
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 600})
    log_in(page, server.base_url, "scroller")
    page.goto(f"{server.base_url}/chat/{long_conversation['conversation'].pk}/")
    wait_live(page)
    wait_js(page, "document.scrollingElement.scrollTop > 0")  # opened at the newest
    if scrolled_up:
        page.evaluate("window.scrollTo(0, 0)")
        wait_js(page, "document.scrollingElement.scrollTop === 0")

    complete(server, long_conversation["task"].pk, "The reply at the bottom.")
    assistant_messages(page).filter(has_text="The reply at the bottom.").wait_for()
    if scrolled_up:
        assert page.evaluate("document.scrollingElement.scrollTop") == 0
    else:
        wait_js(
            page,
            "(() => { const s = document.scrollingElement;"
            " return s.scrollHeight - s.scrollTop - s.clientHeight < 5; })()",
        )
        assert distance_from_bottom(page) < 5


# --- How a task reads: the same words live and after a reload ---------------------------


def status_words(page, task_id):
    return page.inner_text(f"#task-{task_id}").strip()


@pytest.mark.parametrize(
    "ending",
    [
        {"status": "failed", "error": {"message": "The model is busy right now"}},
        {"status": "failed", "error": "requests.exceptions.ConnectionError: http://10.0.0.9/x"},
        "timeout",
    ],
    ids=["failed-plain", "failed-technical", "timeout"],
)
def test_status_words_are_identical_live_and_after_reload(transactional_db, context, ending):
    env = server_env(30)
    if ending == "timeout":
        env.update({"TASK_TIMEOUT_SECONDS": "2", "TASKS_WORKER_POLL_SECONDS": "0.2"})
    with support.Server(env=env) as running:
        page = context.new_page()
        url = sign_up_and_start_conversation(page, running.base_url)
        page.fill("#composer-input", "How will this end?")
        page.click("#composer-send")
        page.locator(".task-status").first.wait_for()
        task_id = int(page.get_attribute(".task-status", "data-task-id"))
        if ending != "timeout":
            from tasks import callbacks

            answer = requests.post(
                f"{running.base_url}/tasks/{task_id}/webhook/",
                json=ending,
                headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
        status = "timeout" if ending == "timeout" else "failed"
        page.locator(f"#task-{task_id}[data-status='{status}']").wait_for()
        live_words = status_words(page, task_id)
        live_retry = page.get_attribute(f"#task-{task_id} form.task-retry", "action")

        page.goto(url)
        wait_live(page)
        assert status_words(page, task_id) == live_words
        assert page.get_attribute(f"#task-{task_id} form.task-retry", "action") == live_retry
    assert live_retry.endswith("/retry/")
    if status == "timeout":
        assert "did not answer in time" in live_words
        assert "Timed out" in live_words
    else:
        assert "Failed" in live_words and "could not reply" in live_words
        assert "http" not in live_words and "Error" not in live_words
        if ending["error"] == {"message": "The model is busy right now"}:
            assert "The model is busy right now." in live_words


WIDE_REPLY = (
    "| Option | Description | Default | Example |\n|---|---|---|---|\n"
    + "| `TASK_TIMEOUT_SECONDS` | Seconds before an unfinished task times out | 120 |"
    " `TASK_TIMEOUT_SECONDS=300` |\n"
    * 3
    + "\n```python\nprint('a first line of code long enough to reach the right edge')\n```\n"
)


@pytest.fixture
def wide_reply(make_user, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user("reader")
    conversation = factories.conversation(user, title="Wide")
    factories.message(conversation, WIDE_REPLY, role="assistant")
    return conversation


def test_tables_scroll_in_their_box_and_copy_never_covers_code(wide_reply, server, browser):
    conversation = wide_reply
    context = browser.new_context(viewport={"width": 375, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    log_in(page, server.base_url, "reader")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    page.locator("button.copy-code:not([hidden])").wait_for()
    sizes = page.evaluate(
        "(() => { const box = document.querySelector('.markdown .table-scroll');"
        " const name = box.querySelector('tbody td code');"
        " return {box: box.clientWidth, wide: box.scrollWidth,"
        " page: document.documentElement.scrollWidth, window: window.innerWidth,"
        " nameLines: name.getClientRects().length}; })()"
    )
    assert sizes["nameLines"] == 1  # TASK_TIMEOUT_SECONDS is not broken inside
    assert sizes["wide"] > sizes["box"]  # the table scrolls inside its box
    assert sizes["page"] <= sizes["window"]  # the page itself does not
    button = page.locator(".markdown .highlight .copy-code").bounding_box()
    code = page.locator(".markdown .highlight pre").bounding_box()
    assert button["y"] + button["height"] <= code["y"]  # above the code, not over it
    screenshot(page, "markdown-375")
    context.close()
