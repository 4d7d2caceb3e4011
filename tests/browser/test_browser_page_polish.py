"""What the reviews found on the conversation page, each fixed and checked in
Chromium: accessibility of a reply holding every Markdown feature (axe-core in
both themes at 1280 and 375 px, keyboard-scrollable code), focus after the
first message, a failed stream keeping its text, Esc and the Manage menu,
a rate-limited first send keeping its text, and the smaller items."""

import re

import pytest
import requests

from tests import factories, support
from tests.browser.browser_support import (
    PASSWORD,
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

EVERY_FEATURE = """# Heading one

## Heading two

Text with **bold**, *emphasis*, ~~struck~~, `inline code`, a [link](https://example.com)
and a bare https://example.org address, <kbd>Ctrl</kbd> and H<sub>2</sub>O.

- [x] a done item
- [ ] an open item
- a plain item
  1. nested ordered
  2. another

> A quote
> > nested in a quote

| Left | Centre | Right |
|:-----|:------:|------:|
| a    | **b**  | `c`   |
| a very long cell that makes the table wider than a phone's screen | x | y |

```python
# a comment in the code
def add(a, b):
    \"\"\"Docstring.\"\"\"
    return a + b  # trailing comment, and a long line that scrolls sideways on a phone screen
```

Inline math $e^{i\\pi} + 1 = 0$ in a sentence.

$$
\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}
$$

A footnote[^1].

---

[^1]: The note.
"""


@pytest.fixture
def rich(make_user, settings):
    server_hashers(settings)
    user = make_user("reader")
    conversation = factories.conversation(user, title="Everything")
    question = factories.message(conversation, "Show me everything")
    reply = factories.message(conversation, EVERY_FEATURE, role="assistant")
    return {"user": user, "conversation": conversation, "question": question, "reply": reply}


@pytest.fixture
def server(transactional_db):
    with support.Server(env=server_env(0.3)) as running:
        yield running


def open_conversation(browser, server, conversation, **options):
    context = new_context(browser, **options)
    page = context.new_page()
    log_in(page, server.base_url, "reader")
    page.goto(f"{server.base_url}/chat/{conversation.pk}/")
    wait_live(page)
    return context, page


# --- Accessibility of a rich reply -----------------------------------------------------


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_a_reply_with_every_markdown_feature(
    rich, server, browser, scheme
):
    source = axe_source()
    found = {}
    for name, width in WIDTHS.items():
        context, page = open_conversation(
            browser, server, rich["conversation"], width=width, color_scheme=scheme
        )
        reply = page.locator(f"#message-{rich['reply'].pk}")
        assert reply.locator("input[type=checkbox]").count() == 2
        assert reply.locator("math").count() == 2
        found[f"{scheme} {name}"] = serious_violations(page, source)
        screenshot(page, f"rich-reply-{scheme}-{width}")
        context.close()
    assert not any(found.values()), describe(found)


def test_task_list_checkboxes_are_labelled_and_code_blocks_scroll_from_the_keyboard(
    rich, server, browser
):
    context, page = open_conversation(browser, server, rich["conversation"], width=375)
    reply = page.locator(f"#message-{rich['reply'].pk}")
    labels = reply.locator("input[type=checkbox]").evaluate_all(
        "boxes => boxes.map(b => b.getAttribute('aria-label'))"
    )
    assert labels == ["Done", "Not done"]
    pre = reply.locator(".highlight pre")
    assert pre.get_attribute("tabindex") == "0"
    assert pre.get_attribute("role") == "region"
    assert pre.get_attribute("aria-label").startswith("Code")
    assert pre.evaluate("e => e.scrollWidth > e.clientWidth")  # it does scroll on a phone
    pre.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    wait_js(
        page, f"document.querySelector('#message-{rich['reply'].pk} .highlight pre').scrollLeft > 0"
    )
    table = reply.locator(".table-scroll")
    assert table.get_attribute("tabindex") == "0"
    assert table.get_attribute("aria-label") == "Table"
    assert csp_violations(page) == []
    context.close()


def test_inline_math_reads_at_the_size_of_its_text(rich, server, browser):
    context, page = open_conversation(browser, server, rich["conversation"])
    reply = f"#message-{rich['reply'].pk}"
    sizes = page.evaluate(
        f"""() => {{
          const math = document.querySelector('{reply} .math.inline math');
          const text = math.closest('p');
          return [parseFloat(getComputedStyle(math).fontSize),
                  parseFloat(getComputedStyle(text).fontSize)];
        }}"""
    )
    assert sizes[0] >= sizes[1], sizes
    context.close()


# --- Focus, a failed stream, Esc, the Manage menu -------------------------------------------


@pytest.fixture
def waiting_server(transactional_db):
    # The runner pauses before it writes, so the test's own callbacks come first.
    with support.Server(env=server_env(60)) as running:
        yield running


def sign_up(page, base_url, username):
    page.goto(f"{base_url}/accounts/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/chat/")


def first_message(page, base_url, text):
    """A new conversation's first message, sent from /chat/new/ (a plain form post)."""
    page.goto(f"{base_url}/chat/new/")
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    page.wait_for_url(re.compile(r".*/chat/\d+/$"))
    wait_live(page)


def callback(server, task_id, payload):
    from tasks import callbacks

    answer = requests.post(
        f"{server.base_url}/tasks/{task_id}/webhook/",
        json=payload,
        headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_focus_stays_in_the_composer_after_a_new_conversations_first_message(
    browser, waiting_server
):
    context = new_context(browser)
    page = context.new_page()
    sign_up(page, waiting_server.base_url, "focus-user")
    first_message(page, waiting_server.base_url, "The first question")
    assert page.evaluate("document.activeElement.id") == "composer-input"
    page.keyboard.type("typed at once")
    assert page.input_value("#composer-input") == "typed at once"
    context.close()


def test_a_failed_stream_keeps_its_text_marked_as_interrupted(browser, waiting_server):
    context = new_context(browser)
    page = context.new_page()
    sign_up(page, waiting_server.base_url, "failed-stream")
    first_message(page, waiting_server.base_url, "Tell me")
    task_id = int(page.get_attribute(".task-status", "data-task-id"))
    for piece in ("Half of **an answer** ", "that stops here"):
        callback(waiting_server, task_id, {"status": "processing", "delta": piece})
    body = "#messages .message--streaming .message__body"
    wait_js(page, f"document.querySelector('{body}')?.textContent.includes('stops here')")
    callback(waiting_server, task_id, {"status": "failed", "error": {"message": "Model down"}})
    page.locator(".task-status--failed").wait_for()
    page.wait_for_timeout(5000)  # it used to vanish after about 4 s
    kept = page.locator("#messages .message--interrupted")
    assert kept.count() == 1
    assert "Half of an answer that stops here" in kept.inner_text()
    assert kept.locator(".message__interrupted").is_visible()
    assert kept.get_attribute("aria-busy") is None
    assert page.locator(".task-status--failed .task-retry").is_visible()
    context.close()


def test_esc_stops_the_reply_only_from_the_composer_or_the_page(browser, waiting_server):
    context = new_context(browser)
    page = context.new_page()
    sign_up(page, waiting_server.base_url, "esc-user")
    first_message(page, waiting_server.base_url, "A question")
    task_id = int(page.get_attribute(".task-status", "data-task-id"))
    callback(waiting_server, task_id, {"status": "processing", "delta": "Writing"})
    page.locator("#messages .message--streaming").wait_for()
    # From the search box and from the open Manage menu, Esc does not stop it.
    page.focus("#sidebar-search")
    page.keyboard.press("Escape")
    page.click(".menu > summary")
    assert page.locator(".menu").get_attribute("open") is not None
    page.keyboard.press("Escape")
    assert page.locator(".menu").get_attribute("open") is None  # Esc closed the menu
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.wait_for_timeout(500)
    assert page.locator("#messages .message--streaming").count() == 1
    assert page.get_attribute(".task-status", "data-status") == "processing"
    # From the composer it does.
    page.focus("#composer-input")
    page.keyboard.press("Escape")
    page.locator("#messages li.message--assistant[data-message-id]").wait_for()
    assert page.locator("#messages .message__stopped").count() == 1
    context.close()


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_manage_menu_closes_on_a_click_outside_and_leaves_the_composer_free(
    rich, server, browser, width
):
    context, page = open_conversation(browser, server, rich["conversation"], width=width)
    page.click(".menu > summary")
    panel = page.locator(".menu__panel")
    assert panel.is_visible()
    composer = page.locator("#composer").bounding_box()
    box = panel.bounding_box()
    assert box["y"] + box["height"] <= composer["y"], (box, composer)
    page.mouse.click(composer["x"] + 5, composer["y"] + composer["height"] - 5)
    assert page.locator(".menu").get_attribute("open") is None
    context.close()


# --- A rate-limited first send ----------------------------------------------------------------


@pytest.fixture
def limited_server(transactional_db):
    with support.Server(env=server_env(60, CHAT_RATE_LIMIT="1/m")) as running:
        yield running


def test_a_rate_limited_first_send_keeps_its_text(browser, limited_server):
    context = new_context(browser)
    page = context.new_page()
    sign_up(page, limited_server.base_url, "limited")
    first_message(page, limited_server.base_url, "The one that goes")
    page.goto(f"{limited_server.base_url}/chat/new/")
    page.fill("#composer-input", "The one that is refused")
    page.press("#composer-input", "Enter")
    page.wait_for_load_state()
    # Refused (429): the text is still in the box, with why beside it.
    assert page.input_value("#composer-input") == "The one that is refused"
    assert "many" in page.inner_text("#composer-notice").lower()
    # Back to the app and to a new conversation: the draft is there.
    page.goto(f"{limited_server.base_url}/")
    page.click("text=+ New conversation")
    page.wait_for_url(f"{limited_server.base_url}/chat/new/")
    assert page.input_value("#composer-input") == "The one that is refused"
    context.close()


# --- Without JavaScript, search hits ----------------------------------------------------------


def test_without_javascript_no_dead_copy_buttons_and_a_hint_to_reload(rich, server, browser):
    context = new_context(browser, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.base_url}/accounts/login/")
    page.fill("input[name=username]", "reader")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{server.base_url}/chat/{rich['conversation'].pk}/")
    assert page.locator("button.message__copy:visible, button.copy-code:visible").count() == 0
    assert "reload the page" in page.inner_text(".noscript-hint")
    context.close()


def test_the_opened_search_hit_is_marked(rich, server, browser):
    context, page = open_conversation(browser, server, rich["conversation"])
    page.goto(f"{server.base_url}/chat/search/?q=everything")
    page.click(".search-result__link >> nth=-1")
    wait_live(page)
    target = page.evaluate(
        "() => { const t = document.querySelector('.message:target');"
        " return t && getComputedStyle(t).outlineStyle; }"
    )
    assert target == "solid"
    context.close()
