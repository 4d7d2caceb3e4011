"""What the reviews found on the conversation page, each fixed and checked in
Chromium: accessibility of a reply holding every Markdown feature (axe-core in
both themes at 1280 and 375 px, keyboard-scrollable code), focus after the
first message, a failed stream keeping its text, Esc and the Manage menu,
a rate-limited first send keeping its text, and the smaller items."""

import re

import pytest
import requests

from chat.models import Message
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
