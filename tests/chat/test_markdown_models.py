"""Markdown as models write it renders as its author meant (asserted on structure)."""

from pathlib import Path

import pytest

from chat.markdown import plain_text, render_markdown
from tests.html_tree import parse

SAMPLE = (Path(__file__).parent / "markdown" / "model_reply.md").read_text()


@pytest.fixture(scope="module")
def tree():
    return parse(render_markdown(SAMPLE))


def _li_starting(tree, words):
    return next(li for li in tree.find_all("li") if li.text().strip().startswith(words))


def test_three_space_nesting_under_a_numbered_item_makes_a_nested_list(tree):
    install = _li_starting(tree, "Install the requirements")
    assert install.parent.tag == "ol"
    inner = install.child_elements("ul")
    assert len(inner) == 1
    items = [li.text().strip().split("\n")[0] for li in inner[0].child_elements("li")]
    assert items == ["Python 3.11 or newer", "PostgreSQL"]
    postgres = inner[0].child_elements("li")[1]
    assert postgres.find("ul").find("li").text().strip() == "version 15 works"


def test_two_space_nesting_makes_three_levels(tree):
    top = _li_starting(tree, "Two-space nesting")
    child = top.find("ul").child_elements("li")[0]
    assert child.text().strip().startswith("child item")
    grandchild = child.find("ul").child_elements("li")[0]
    assert grandchild.text().strip() == "grandchild item"
    assert [a.tag for a in grandchild.ancestors()].count("ul") == 3


def test_bare_urls_become_links(tree):
    hrefs = {a.attrs.get("href") for a in tree.find_all("a")}
    assert "https://docs.n8n.io/hosting/" in hrefs
    assert "http://www.djangoproject.com" in hrefs
    link = next(
        a for a in tree.find_all("a") if a.attrs.get("href") == "http://www.djangoproject.com"
    )
    assert link.attrs["rel"] == "noopener noreferrer nofollow"


def test_underscores_in_code_names_survive(tree):
    codes = [c.text() for c in tree.find_all("code")]
    assert "N8N_BASE_URL" in codes


def test_task_lists_are_read_only_checkboxes(tree):
    boxes = tree.find_all("input")
    assert len(boxes) == 2
    assert all(box.attrs["type"] == "checkbox" and "disabled" in box.attrs for box in boxes)
    assert "checked" in boxes[0].attrs and "checked" not in boxes[1].attrs
    assert boxes[0].parent.tag == "li" and boxes[0].parent.text().strip() == "write the workflow"


def test_tables_have_header_alignment_and_a_scrolling_box(tree):
    table = tree.find("table")
    assert table.parent.tag == "div" and table.parent.attrs["class"] == "table-scroll"
    headers = [(th.text(), th.attrs.get("align")) for th in table.find("thead").find_all("th")]
    assert headers == [("Setting", "left"), ("Default", "right"), ("Meaning", "center")]
    rows = table.find("tbody").child_elements("tr")
    assert len(rows) == 2
    assert rows[0].find("code").text() == "TASK_TIMEOUT_SECONDS"


def test_fenced_code_with_a_language_is_highlighted(tree):
    blocks = [d for d in tree.find_all("div") if d.attrs.get("class") == "highlight"]
    assert len(blocks) == 2
    python, plain = blocks
    assert python.attrs["data-lang"] == "python"
    assert {"def", "answer"} <= {s.text() for s in python.find("pre").find_all("span")}
    assert "return 42" in python.find("pre").text()
    # The Copy button sits before the code, not over it.
    assert [c.tag for c in python.child_elements()] == ["button", "pre"]
    assert "data-lang" not in plain.attrs
    assert plain.find("pre").find("code").text() == "plain text block with <b>tags</b>\n"
    assert plain.find("b") is None


def test_inline_and_display_math_become_mathml(tree):
    maths = tree.find_all("math")
    assert [m.attrs["display"] for m in maths] == ["inline", "block"]
    inline, display = maths
    assert inline.parent.tag == "span" and inline.find("msup") is not None
    assert display.find("mfrac") is not None and display.find("msubsup") is not None


def test_dollar_amounts_stay_text(tree):
    paragraph = next(p for p in tree.find_all("p") if "costs" in p.text())
    assert "costs $5 or $10 to run" in paragraph.text()


def test_formatting_html_is_kept_and_other_html_shows_as_text(tree):
    assert [k.text() for k in tree.find_all("kbd")] == ["Ctrl", "C"]
    assert "a Vec<T> in prose" in tree.text()
    assert tree.find("script") is None
    assert '<script>alert("x")</script>' in tree.text()


def test_strikethrough_and_footnotes(tree):
    assert tree.find("s").text() == "wrong"
    ref = tree.find("sup").find("a")
    note = tree.find("section").find("li")
    assert ref.attrs["href"] == "#" + note.attrs["id"]
    assert "The footnote's text." in note.text()


def test_a_formula_that_cannot_be_converted_shows_as_code():
    tree = parse(render_markdown(r"Broken $\frac{$ here and fine $x^2$."))
    assert tree.find("code").text() == r"\frac{"
    assert len(tree.find_all("math")) == 1


def test_text_in_a_formula_is_escaped():
    html = str(render_markdown(r"$\text{<script>alert(1)</script>}$ and $\text{a&b}$"))
    assert "<script" not in html
    tree = parse(html)
    assert [t.text() for t in tree.find_all("mtext")] == ["<script>alert(1)</script>", "a&b"]


def test_images_become_links_to_their_source():
    tree = parse(render_markdown("![the logo](https://example.com/logo.png)"))
    assert tree.find("img") is None
    link = tree.find("a")
    assert (link.attrs["href"], link.text()) == ("https://example.com/logo.png", "the logo")


def test_footnote_ids_differ_between_replies():
    first = parse(render_markdown("One[^1].\n\n[^1]: a"))
    second = parse(render_markdown("Two[^1].\n\n[^1]: b"))
    first_id = first.find("section").find("li").attrs["id"]
    assert first_id != second.find("section").find("li").attrs["id"]


def test_plain_text_keeps_underscores_and_drops_markup():
    html = render_markdown("Set **`N8N_BASE_URL`** to _the_ URL.\n\n```sh\nexport X=1\n```")
    assert plain_text(html) == "Set N8N_BASE_URL to the URL. export X=1"
