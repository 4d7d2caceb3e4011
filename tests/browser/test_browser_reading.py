"""Reading and writing in a real browser (Chromium via Playwright, a live
Daphne with the worker and the development runner): copy, times, the
composer, new conversations, long replies, earlier messages, the connection
notice, screen readers and axe-core. At 1280 px and 375 px where layout
matters.
"""

from datetime import UTC, datetime, timedelta

import pytest

from chat.models import Message
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

REPLY_SOURCE = "# A heading\n\n- one `item`\n  - nested under it\n\nSee **this**."


@pytest.fixture
def reader(make_user, settings):
    """A user with one conversation: a question and a Markdown reply."""
    server_hashers(settings)
    user = make_user("reader")
    conversation = factories.conversation(user, title="Reading")
    question = factories.message(conversation, "What is <b>this</b>?")
    Message.objects.filter(pk=question.pk).update(
        created_at=datetime(2026, 1, 15, 15, 30, tzinfo=UTC)
    )
    reply = factories.message(conversation, REPLY_SOURCE, role="assistant")
    return {"user": user, "conversation": conversation, "question": question, "reply": reply}


@pytest.fixture
def server(transactional_db):
    with support.Server(env=server_env(0.3)) as running:
        yield running


def open_conversation(browser, server, conversation, username="reader", **options):
    context = new_context(browser, **options)
    page = context.new_page()
    log_in(page, server.base_url, username)
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)
    return context, page


# --- Copy ------------------------------------------------------------------------------


def test_copy_puts_the_messages_markdown_on_the_clipboard_from_the_keyboard(
    reader, server, browser
):
    context, page = open_conversation(browser, server, reader["conversation"])
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
    reply = f"#message-{reader['reply'].pk}"
    button = page.locator(f"{reply} button.message__copy")
    assert button.is_visible()
    button.focus()
    assert page.evaluate("document.activeElement.classList.contains('message__copy')")
    page.keyboard.press("Enter")
    wait_js(
        page, f"document.querySelector('{reply} button.message__copy').textContent === 'Copied'"
    )
    assert page.evaluate("navigator.clipboard.readText()") == REPLY_SOURCE
    wait_js(page, f"document.querySelector('{reply} button.message__copy').textContent === 'Copy'")
    # A user message copies its own text, markup characters and all.
    page.click(f"#message-{reader['question'].pk} button.message__copy")
    wait_js(page, "navigator.clipboard.readText().then(t => t.includes('<b>this</b>'))")
    assert csp_violations(page) == []
    context.close()


# --- Times -----------------------------------------------------------------------------


def test_times_are_shown_in_the_readers_zone_and_locale(reader, server, browser):
    context, page = open_conversation(
        browser, server, reader["conversation"], timezone_id="America/New_York", locale="en-US"
    )
    time = page.locator(f"#message-{reader['question'].pk} time")
    # 15:30 UTC is 10:30 in New York in January.
    wait_js(
        page, f"document.querySelector('#message-{reader['question'].pk} time').dataset.localized"
    )
    assert "10:30" in time.inner_text()
    assert "15:30" not in time.inner_text()
    assert time.get_attribute("datetime") == "2026-01-15T15:30:00+00:00"
    assert "EST" in time.get_attribute("title")
    context.close()

    context, page = open_conversation(
        browser, server, reader["conversation"], timezone_id="Asia/Tokyo", locale="de-DE"
    )
    text = page.locator(f"#message-{reader['question'].pk} time").inner_text()
    assert text == "16. Jan., 0:30"  # the next day in Tokyo, in German
    context.close()


def test_relative_times_in_the_sidebar_refresh_each_minute(reader, server, browser):
    context = new_context(browser, locale="en-US")
    page = context.new_page()
    page.clock.install()
    log_in(page, server.base_url, "reader")
    link_time = page.locator(".conversation-link__time").first
    wait_js(page, "document.querySelector('.conversation-link__time').dataset.localized")
    assert link_time.inner_text() == "now"
    page.clock.fast_forward("03:05")
    wait_js(
        page, "document.querySelector('.conversation-link__time').textContent === '3 minutes ago'"
    )
    page.clock.fast_forward("01:00:00")
    wait_js(page, "document.querySelector('.conversation-link__time').textContent === '1 hour ago'")
    context.close()


# --- The composer ------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_composer_grows_with_its_text_then_scrolls(reader, server, browser, width):
    context, page = open_conversation(browser, server, reader["conversation"], width=width)
    box = page.locator("#composer-input")
    start = box.bounding_box()["height"]
    box.fill("\n".join(f"line {n}" for n in range(5)))
    grown = box.bounding_box()["height"]
    assert grown > start + 40
    box.fill("\n".join(f"line {n}" for n in range(200)))
    tall = box.bounding_box()["height"]
    assert tall <= 0.4 * 800 + 2  # max-height: 40vh
    overflow = "(b => b.scrollHeight - b.clientHeight)(document.getElementById('composer-input'))"
    assert page.evaluate(overflow) > 100  # the rest scrolls inside the box
    screenshot(page, f"composer-tall-{width}")
    context.close()


@pytest.fixture
def short_limit_server(transactional_db):
    with support.Server(env=server_env(0.3, CHAT_MESSAGE_MAX_LENGTH=100)) as running:
        yield running


def test_a_counter_shows_near_the_limit_and_the_servers_refusal_is_shown(
    reader, short_limit_server, browser
):
    context, page = open_conversation(browser, short_limit_server, reader["conversation"])
    counter = page.locator("#composer-counter")
    page.fill("#composer-input", "x" * 50)
    assert counter.is_hidden()
    page.fill("#composer-input", "x" * 95)
    assert counter.is_visible()
    assert counter.inner_text() == "95 / 100"
    long_text = "é" * 120  # counted as the server counts: characters, not bytes
    page.fill("#composer-input", long_text)
    assert page.input_value("#composer-input") == long_text  # nothing cut
    assert counter.inner_text() == "120 / 100: 20 too many"
    page.press("#composer-input", "Enter")
    wait_js(
        page, "document.getElementById('composer-notice').textContent.includes('the limit is 100')"
    )
    notice = page.inner_text("#composer-notice")
    assert notice == "Your message is 120 characters long; the limit is 100."
    assert page.input_value("#composer-input") == long_text
    assert page.locator("#messages li.message--user").count() == 1  # only the old one
    context.close()


def test_on_a_touch_screen_return_adds_a_line_and_the_button_sends(reader, server, browser):
    context, page = open_conversation(
        browser, server, reader["conversation"], width=375, has_touch=True, is_mobile=True
    )
    assert page.evaluate("matchMedia('(pointer: coarse)').matches")
    page.fill("#composer-input", "first")
    page.press("#composer-input", "Enter")
    page.keyboard.type("second")
    assert page.input_value("#composer-input") == "first\nsecond"
    assert page.locator("#messages li.message--user").count() == 1
    page.tap("#composer-send")
    page.locator("#messages li.message--user").nth(1).wait_for()
    assert page.locator("#messages li.message--user .message__body").nth(1).inner_text() == (
        "first\nsecond"
    )
    context.close()


@pytest.fixture
def other_conversation(reader):
    return factories.conversation(reader["user"], title="Other")


def test_a_draft_survives_a_reload_stays_with_its_conversation_and_goes_when_sent(
    reader, other_conversation, server, browser
):
    other = other_conversation
    context, page = open_conversation(browser, server, reader["conversation"])
    base = f"{server.base_url}/chat"
    page.fill("#composer-input", "half a thought")
    page.keyboard.type(", and more")
    page.reload()
    wait_live(page)
    assert page.input_value("#composer-input") == "half a thought, and more"
    page.goto(f"{base}/{other.pk}/")
    wait_live(page)
    assert page.input_value("#composer-input") == ""
    page.goto(f"{base}/{reader['conversation'].pk}/")
    wait_live(page)
    assert page.input_value("#composer-input") == "half a thought, and more"
    page.press("#composer-input", "Enter")
    page.locator("#messages li.message--user").nth(1).wait_for()
    page.reload()
    wait_live(page)
    assert page.input_value("#composer-input") == ""
    context.close()


# --- A new conversation -----------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_new_conversation_stores_nothing_until_the_first_message(reader, server, browser, width):
    context = new_context(browser, width=width)
    page = context.new_page()
    log_in(page, server.base_url, "reader")
    entries = page.locator(".conversation-link").count()
    if width < 700:
        page.goto(f"{server.base_url}/chat/{reader['conversation'].pk}/")
        page.click("label.nav-toggle__button")
    page.click("text=+ New conversation")
    page.wait_for_url(f"{server.base_url}/chat/new/")
    assert page.evaluate("document.activeElement.id") == "composer-input"
    screenshot(page, f"new-conversation-{width}")
    page.goto(f"{server.base_url}/chat/")
    assert page.locator(".conversation-link").count() == entries  # nothing stored

    page.goto(f"{server.base_url}/chat/new/")
    page.press("#composer-input", "Enter")  # empty: the browser asks for a message first
    page.wait_for_timeout(300)
    assert page.url.endswith("/chat/new/")
    assert page.evaluate("document.getElementById('composer-input').validity.valueMissing")
    page.fill("#composer-input", "Start here, please")
    page.press("#composer-input", "Enter")
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1].isdigit())
    wait_live(page)
    assert page.inner_text("#conversation-title") == "Start here, please"
    page.locator("#messages li.message--assistant[data-message-id]").first.wait_for()
    page.goto(f"{server.base_url}/chat/")
    assert page.locator(".conversation-link").count() == entries + 1
    assert csp_violations(page) == []
    context.close()


# --- Long replies, earlier messages, the connection notice ----------------------------------


@pytest.fixture
def long_conversation(make_user, settings):
    """Many messages (taller than the window) and a reply in flight."""
    server_hashers(settings)
    user = make_user("scroller")
    conversation = factories.conversation(user, title="A long one")
    start = datetime.now(UTC) - timedelta(hours=1)
    for number in range(40):
        message = factories.message(conversation, f"Message number {number}", role="assistant")
        Message.objects.filter(pk=message.pk).update(created_at=start + timedelta(seconds=number))
    question = factories.message(conversation, "And now?")
    task = factories.task(
        user,
        status="processing",
        current_step="generating",
        input_data={"conversation_id": conversation.pk, "message_id": question.pk},
    )
    Message.objects.filter(pk=question.pk).update(async_task=task)
    return {"conversation": conversation, "task": task}


@pytest.fixture
def paged_server(transactional_db):
    with support.Server(env=server_env(0.3, CHAT_PAGE_SIZE=15)) as running:
        yield running


def complete(server, task_id, content):
    import requests

    from tasks import callbacks

    answer = requests.post(
        f"{server.base_url}/tasks/{task_id}/webhook/",
        json={"status": "completed", "output": {"content": content}},
        headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


LONG_REPLY = "# The start of a long reply\n\n" + "\n\n".join(
    f"Paragraph {n}: " + "words " * 40 for n in range(40)
)


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_a_long_reply_lands_with_its_start_in_view(long_conversation, server, browser, width):
    context, page = open_conversation(
        browser, server, long_conversation["conversation"], "scroller", width=width, height=700
    )
    wait_js(page, "document.scrollingElement.scrollTop > 0")  # opened at the newest
    complete(server, long_conversation["task"].pk, LONG_REPLY)
    heading = page.locator("#messages li.message--assistant h1", has_text="The start of a long")
    heading.wait_for()
    page.wait_for_timeout(200)
    box = heading.bounding_box()
    topbar = page.locator(".topbar").bounding_box()["height"]
    assert topbar <= box["y"] < 700 / 2, box  # the heading is in view, below the top bar
    bottom = page.evaluate(
        "(s => s.scrollHeight - s.scrollTop - s.clientHeight)(document.scrollingElement)"
    )
    assert bottom > 500  # not scrolled to the reply's end
    screenshot(page, f"long-reply-start-{width}")
    assert csp_violations(page) == []
    context.close()


def test_a_reply_too_large_for_a_frame_is_fetched_and_shown(long_conversation, server, browser):
    """A reply whose frame would pass the socket's limit (1.4 MB: quotes that
    HTML and JSON escape, with its thinking) comes as a small frame; the page
    fetches the fragment over HTTP and shows it, and the socket stays open
    (it used to close with 1011 and resync into the same frame, forever)."""
    import requests

    from tasks import callbacks

    context, page = open_conversation(
        browser, server, long_conversation["conversation"], "scroller"
    )
    fetched = []
    page.on(
        "request",
        lambda request: "/messages/" in request.url and fetched.append(request.url),
    )
    task_id = long_conversation["task"].pk
    quotes = '"' * 100_000
    answer = requests.post(
        f"{server.base_url}/tasks/{task_id}/webhook/",
        json={"status": "completed", "output": {"content": quotes, "thinking": quotes}},
        headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    reply = page.locator(f"#messages li.message--assistant[data-task-id='{task_id}']")
    reply.wait_for()
    assert reply.locator(".message__body").inner_text().strip().startswith('""""')
    assert len(fetched) == 1 and fetched[0].endswith(
        f"/chat/{long_conversation['conversation'].pk}/messages/{reply.get_attribute('data-message-id')}/"
    )
    page.wait_for_timeout(500)
    assert page.evaluate("document.getElementById('conversation').dataset.live") == "1"
    assert page.locator("#connection-status").is_hidden()
    assert csp_violations(page) == []
    context.close()


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_earlier_messages_load_in_place_keeping_the_position(
    long_conversation, paged_server, browser, width
):
    context, page = open_conversation(
        browser, paged_server, long_conversation["conversation"], "scroller", width=width
    )
    url = page.url
    page.evaluate("window.__notReloaded = true")
    messages = page.locator("#messages li[data-message-id]")
    assert messages.count() == 15
    first = messages.first
    first_id = first.get_attribute("id")
    page.locator("a[data-load-earlier]").scroll_into_view_if_needed()
    before = page.locator(f"#{first_id}").bounding_box()["y"]
    page.click("a[data-load-earlier]")
    wait_js(page, "document.querySelectorAll('#messages li[data-message-id]').length > 15")
    assert messages.count() == 30
    after = page.locator(f"#{first_id}").bounding_box()["y"]
    assert abs(after - before) < 3, (before, after)  # what was in view stays in view
    assert page.url == url and page.evaluate("window.__notReloaded === true")
    ids = [
        int(i)
        for i in page.eval_on_selector_all("#messages li", "l => l.map(e => e.dataset.messageId)")
    ]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    page.click("a[data-load-earlier]")
    wait_js(page, "document.querySelectorAll('#messages li[data-message-id]').length === 41")
    assert page.locator("a[data-load-earlier]").count() == 0  # the first message is shown
    assert "Message number 0" in messages.first.inner_text()
    context.close()


def test_the_load_earlier_link_works_without_javascript(long_conversation, paged_server, browser):
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    log_in(page, paged_server.base_url, "scroller")
    page.goto(f"{paged_server.base_url}/chat/{long_conversation['conversation'].pk}/")
    page.click("a[data-load-earlier]")
    page.wait_for_url("**?before=*")
    assert page.locator("#messages li[data-message-id]").count() == 15
    context.close()


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_reconnecting_notice_stays_in_view(long_conversation, browser, width):
    page_server = support.Server(env=server_env(0.3))
    with page_server:
        context, page = open_conversation(
            browser, page_server, long_conversation["conversation"], "scroller", width=width
        )
        page_server.stop()
        notice = page.locator("#connection-status")
        notice.wait_for(state="visible")
        for where in ("0", "document.scrollingElement.scrollHeight / 2", "1e9"):
            page.evaluate(f"window.scrollTo(0, {where})")
            box = notice.bounding_box()
            assert 0 <= box["y"] and box["y"] + box["height"] <= 800, (where, box)
            assert 0 <= box["x"] and box["x"] + box["width"] <= width, (where, box)
        screenshot(page, f"reconnecting-fixed-{width}")
        context.close()


# --- Screen readers, focus, axe ----------------------------------------------------------------


def test_a_finished_reply_is_announced_once_politely(long_conversation, server, browser):
    context, page = open_conversation(
        browser, server, long_conversation["conversation"], "scroller"
    )
    region = page.locator("#announcer")
    assert region.get_attribute("aria-live") == "polite"
    page.evaluate(
        "window.__said = []; new MutationObserver(() => {"
        " const t = document.getElementById('announcer').textContent;"
        " if (t) window.__said.push(t); })"
        ".observe(document.getElementById('announcer'), {childList: true, subtree: true,"
        " characterData: true})"
    )
    import requests

    from tasks import callbacks

    task_id = long_conversation["task"].pk
    for step in ("thinking", "writing"):
        requests.post(
            f"{server.base_url}/tasks/{task_id}/webhook/",
            json={"status": "processing", "current_step": step},
            headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
            timeout=10,
        ).raise_for_status()
    # The step id made readable ("writing" → "Writing").
    wait_js(page, "document.querySelector('.task-status__label').textContent.includes('Writing')")
    complete(server, task_id, "Here is **the answer**.")
    wait_js(page, "window.__said.length > 0")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__said") == ["The assistant replied: Here is the answer."]
    context.close()


def visible_focus_stops(page, count):
    stops = []
    for _ in range(count):
        page.keyboard.press("Tab")
        stops.append(
            page.evaluate(
                """() => {
                  const e = document.activeElement;
                  const r = e.getBoundingClientRect();
                  const label = e.labels && e.labels[0] && e.labels[0].getBoundingClientRect();
                  const seen = (b) => b && b.width > 2 && b.height > 2;
                  return {tag: e.tagName, id: e.id, cls: e.className,
                          visible: seen(r) || (seen(label) && e.type === 'checkbox')};
                }"""
            )
        )
    return stops


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_focus_order_has_no_invisible_stops(reader, server, browser, width):
    context, page = open_conversation(browser, server, reader["conversation"], width=width)
    # The page opens ready to type (focus in the composer); from the top of the
    # page, the first stop is the skip link.
    assert page.evaluate("document.activeElement.id") == "composer-input"
    page.evaluate(
        """() => { const body = document.body; body.tabIndex = -1; body.focus();
                   body.removeAttribute('tabindex'); }"""
    )
    stops = visible_focus_stops(page, 14)
    assert all(stop["visible"] for stop in stops), stops
    assert stops[0]["cls"] == "skip-link"
    if width >= 700:
        assert "nav-toggle" not in [stop["id"] for stop in stops]
    context.close()


PAGES = {
    "list": "/chat/",
    "conversation": None,
    "new": "/chat/new/",
    "login": "/accounts/login/",
    "signup": "/accounts/signup/",
}


@pytest.fixture
def failed_reply(reader):
    """A user message whose reply failed: the status line with its Retry form."""
    failing = factories.message(reader["conversation"], "Will this fail?")
    task = factories.task(
        reader["user"],
        status="failed",
        error_details={"message": "The model is busy"},
        input_data={"conversation_id": reader["conversation"].pk, "message_id": failing.pk},
    )
    Message.objects.filter(pk=failing.pk).update(async_task=task)
    return failing


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violations(reader, failed_reply, server, browser, scheme):
    source = axe_source()
    found = {}
    for width in WIDTHS.values():
        anonymous = new_context(browser, width=width, color_scheme=scheme)
        page = anonymous.new_page()
        for name in ("login", "signup"):
            page.goto(f"{server.base_url}{PAGES[name]}")
            found[(name, width)] = serious_violations(page, source)
        anonymous.close()
        context, page = open_conversation(
            browser, server, reader["conversation"], width=width, color_scheme=scheme
        )
        found[("conversation", width)] = serious_violations(page, source)
        screenshot(page, f"conversation-{scheme}-{width}")
        for name in ("list", "new"):
            page.goto(f"{server.base_url}{PAGES[name]}")
            found[(name, width)] = serious_violations(page, source)
        context.close()
    problems = {f"{name} {width}px": v for (name, width), v in found.items() if v}
    assert not problems, describe(problems)
