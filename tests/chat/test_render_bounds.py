"""Adversarial Markdown of the largest stored size renders without error, with
bounded output, and deep nesting degrades to text instead of vanishing; at the
largest reply's size each shape renders formatted, and a render
past its CPU limit shows the text as it is. What the shapes cost is measured
by `make bench-bounds`, never timed here."""

from pathlib import Path

import pytest
from django.conf import settings

from chat.markdown import budgets as markdown_budgets
from chat.markdown import plain_text, render_markdown
from chat.markdown import render as markdown
from chat.markdown.budgets import HIGHLIGHT_BUDGET, INLINE_BUDGET, TABLE_ROWS_BUDGET
from chat.rendering import rendered_fields
from tests.adversarial_markdown import cases
from tests.html_tree import parse

SIZE = settings.CHAT_MESSAGE_MAX_LENGTH
REPLY_SIZE = settings.CHAT_REPLY_MAX_LENGTH


@pytest.mark.parametrize(("name", "text"), list(cases(SIZE).items()), ids=list(cases(SIZE)))
def test_adversarial_input_renders_to_bounded_html(name, text):
    html = str(render_markdown(text))
    assert html.strip(), name
    # Footnote references are the most markup per character (a link each, 4
    # characters in, about 130 out), then highlighted code (a span per token).
    assert len(html) <= 40 * len(text) + 10_000, name
    assert "<script" not in html


def test_open_brackets_render_as_the_text_they_are():
    assert plain_text(render_markdown("[" * SIZE), limit=SIZE * 2) == "[" * SIZE


def test_unclosed_a_tags_render_as_text():
    text = "<a " * (SIZE // 3)
    html = str(render_markdown(text))
    assert "<a" not in html
    assert plain_text(html, limit=SIZE * 2) == text.strip()


def test_a_list_nested_past_the_limit_keeps_its_deepest_text():
    text = "".join("  " * i + f"- item {i}\n" for i in range(300))
    tree = parse(render_markdown(text))
    depth = max(sum(1 for a in li.ancestors() if a.tag == "ul") for li in tree.find_all("li"))
    assert 2 <= depth <= 8
    assert "item 299" in tree.text()
    assert "item 0" in tree.text()


def test_quotes_nested_past_the_limit_keep_their_deepest_text():
    text = "".join("> " * i + f"quote {i}\n\n" for i in range(1, 200))
    tree = parse(render_markdown(text))
    depth = max(
        sum(1 for a in q.ancestors() if a.tag == "blockquote") + 1
        for q in tree.find_all("blockquote")
    )
    assert 2 <= depth <= 16
    assert "quote 199" in tree.text()


def test_a_flat_list_of_many_items_is_not_cut():
    text = "".join(f"- item {i}\n" for i in range(1000))
    assert len(parse(render_markdown(text)).find_all("li")) == 1000


def test_formulas_past_the_budget_show_as_code():
    tree = parse(render_markdown(" ".join(f"$x_{{{i}}}$" for i in range(300))))
    assert len(tree.find_all("math")) == 100
    assert tree.find_all("code")[-1].text() == "x_{299}"


def test_paragraphs_past_the_inline_budget_show_as_plain_text():
    costly = "[x](https://example.com/a) " * (INLINE_BUDGET // 4)
    text = f"First **bold** paragraph.\n\n{costly}\n\nLast *one*."
    tree = parse(render_markdown(text))
    paragraphs = tree.find_all("p")
    assert paragraphs[0].find("strong").text() == "bold"
    assert paragraphs[1].find("a") is None and "[x](https://example.com/a)" in paragraphs[1].text()
    assert paragraphs[2].find("em").text() == "one"


def test_a_long_genuine_reply_stays_within_the_inline_budget():
    sample = (Path(__file__).parent / "markdown" / "model_reply.md").read_text()
    copies = SIZE // len(sample)
    tree = parse(render_markdown(sample * copies))
    assert "~~" not in tree.text()
    assert len(tree.find_all("s")) == copies
    assert len(tree.find_all("math")) == 2 * copies


def test_code_past_the_highlight_budget_is_shown_plain():
    block = "```python\n" + "x = 1\n" * (HIGHLIGHT_BUDGET // 6 - 10) + "```\n\n"
    tree = parse(render_markdown(block * 2))
    first, second = tree.find_all("pre")
    assert first.find("span") is not None
    assert second.find("span") is None
    assert second.text() == first.text()


def test_table_rows_past_the_budget_show_as_text():
    rows = "".join(f"| r{i} | v |\n" for i in range(TABLE_ROWS_BUDGET + 50))
    tree = parse(render_markdown("| a | b |\n|---|---|\n" + rows + "\nafter"))
    assert len(tree.find("tbody").find_all("tr")) == TABLE_ROWS_BUDGET
    assert f"| r{TABLE_ROWS_BUDGET + 49} | v |" in tree.text()
    assert tree.find_all("p")[-1].text() == "after"


def _no_fallback(text):
    raise AssertionError("went past the CPU limit and fell back to plain text")


@pytest.mark.parametrize(
    ("name", "text"), list(cases(REPLY_SIZE).items()), ids=list(cases(REPLY_SIZE))
)
def test_the_largest_reply_of_each_adversarial_shape_renders_formatted(name, text, monkeypatch):
    """Formatted by the rules and budgets, not cut off by the CPU limit. What
    each shape costs beside a genuine reply is measured by `make bench-bounds`
    (no test times anything)."""
    monkeypatch.setattr(markdown, "plain_paragraphs", _no_fallback)
    html = str(render_markdown(text))
    assert html.strip(), name
    assert len(html) <= 40 * len(text) + 10_000, name


def test_a_genuine_reply_of_the_largest_size_renders_formatted(monkeypatch):
    monkeypatch.setattr(markdown, "plain_paragraphs", _no_fallback)
    sample = (Path(__file__).parent / "markdown" / "model_reply.md").read_text()
    text = sample * (REPLY_SIZE // len(sample))
    fields = rendered_fields("assistant", text, text)
    assert fields["content_html"].count("<table>") == REPLY_SIZE // len(sample)
    assert fields["thinking_html"] == fields["content_html"]


FALLBACK_TEXT = """Some **bold** words and a <script>alert(1)</script> tag,
a [link](https://example.com) and x.io.

- a list item
- another one & more

```python
print("code")
```
"""


def test_a_render_past_its_cpu_limit_shows_the_escaped_text_as_paragraphs(monkeypatch):
    monkeypatch.setattr(markdown_budgets, "RENDER_CPU_SECONDS", 0)
    html = str(render_markdown(FALLBACK_TEXT))
    assert html == (
        "<p>Some **bold** words and a &lt;script&gt;alert(1)&lt;/script&gt; tag,<br>\n"
        "a [link](https://example.com) and x.io.</p>\n"
        "<p>- a list item<br>\n- another one &amp; more</p>\n"
        "<p>```python<br>\nprint(&quot;code&quot;)<br>\n```</p>\n"
    )
    assert plain_text(html, limit=1000).split() == FALLBACK_TEXT.split()
    for tag in ("<script", "<strong", "<a ", "<ul", "<li", "<pre", "<code"):
        assert tag not in html


def test_the_cpu_limit_is_checked_while_parsing_not_only_after(monkeypatch):
    """A render that started in time stops at the clock rules once the limit
    passes (here: the first look at the clock after the deadline moved)."""
    looks = []

    def check():
        looks.append(1)
        if len(looks) == 3:
            raise markdown_budgets.RenderTooSlow

    monkeypatch.setattr(markdown_budgets, "check_deadline", check)
    html = str(render_markdown("*line*\n" * 5_000))
    assert len(looks) == 3
    assert html.count("*line*<br>") == 4_999 and "<em>" not in html


def test_a_messages_content_and_thinking_share_one_cpu_limit(monkeypatch):
    deadlines = []
    real_start = markdown_budgets.start

    def start(until=None):
        deadlines.append(until)
        real_start(until)

    monkeypatch.setattr(markdown_budgets, "start", start)
    rendered_fields("assistant", "*content*", "*thinking*")
    assert len(deadlines) == 2 and deadlines[0] is not None
    assert deadlines[0] == deadlines[1]
