"""Bare links: chat/markdown/linkify.py decides as markdown-it's own rule does,
in time that grows with the paragraph, not with its square (measured by
`make bench-bounds`)."""

from pathlib import Path

import pytest
from markdown_it.rules_core.linkify import linkify as library_linkify

from chat.markdown import budgets as markdown_budgets
from chat.markdown import render_markdown
from chat.markdown.linkify import linkify as linear_linkify
from chat.markdown.render import _build
from tests.adversarial_markdown import cases

SAMPLE = (Path(__file__).parent / "markdown" / "model_reply.md").read_text()

LINK_TEXTS = {
    "bare domains per line": "x.io\n" * 50,
    "bare domains in prose": "See example.com, docs.n8n.io and settings.py.\nAlso www.x.io!",
    "emails": "Write to a@x.io or mailto:b@y.io, not c@d.\nOr <e@f.io>.",
    "schemes": "http://a.io https://b.io/p?q=1#f ftp://c.io //d.io",
    "markdown links keep their text": "[x.io](http://y.io) z.io [see w.io](http://v.io) u.io",
    "nested link text": "[**x.io** and `y.io` *z.io*](http://w.io) after.io",
    "html links keep their text": 'a.io <a href="http://b.io">c.io</a> d.io <A HREF=x>e.io</A> f',
    "unclosed html link": "a.io <a href=x> b.io c.io",
    "escaped scheme": "http\\://example.com/ and \\www.x.io and x\\.io",
    "invalid links": "javascript:alert(1) vbscript:x data:text/html,x",
    "unicode domain": "пример.рф and münchen.de and xn--80ak6aa92e.com",
    "autolinks": "<http://x.io> and <y@z.io> beside w.io",
    "links in emphasis": "*x.io* **y.io** ~~z.io~~ `code.io` $a.io$",
    "table": "| a | b |\n|---|---|\n| x.io | [y](http://y.io) z.io |\n",
    "footnote": "Text[^1] x.io\n\n[^1]: see y.io and http://z.io\n",
    "list and quote": "- x.io\n  - y.io\n> z.io\n> > w.io\n",
    "trailing punctuation": "(x.io) x.io. 'y.io' \"z.io\" x.io/path). x.io:8080/a",
    "mixed with html tags": "<b>x.io</b> <kbd>y.io</kbd><br>z.io",
}


def _library_parser():
    md = _build()
    md.core.ruler.at("linkify", library_linkify)
    return md


@pytest.fixture(scope="module")
def parsers():
    return _build(), _library_parser()


def _inputs():
    texts = dict(LINK_TEXTS)
    texts["model reply"] = SAMPLE
    texts.update({f"adversarial {name}": text for name, text in cases(2_000).items()})
    return texts


@pytest.mark.parametrize(("name", "text"), list(_inputs().items()), ids=list(_inputs()))
def test_the_linear_rule_renders_what_the_librarys_rule_renders(parsers, name, text):
    ours, library = parsers
    markdown_budgets.start()
    expected = library.render(text, {"docId": "t"})
    markdown_budgets.start()
    assert ours.render(text, {"docId": "t"}) == expected


def test_the_parser_links_with_the_linear_rule():
    """Finding N1: the library's rule rebuilds a paragraph's children list for
    each text token (bare domains one per line: 11–25 CPU seconds for 100,000
    characters). The parser runs ours in its place; `make bench-bounds` measures
    that doubling the input about doubles the time."""
    rules = {rule.name: rule.fn for rule in _build().core.ruler.__rules__}
    assert rules["linkify"] is linear_linkify
    assert rules["linkify"] is not library_linkify


def test_bare_domains_one_per_line_are_all_linked_past_the_budgets(monkeypatch):
    """With the inline budget and the CPU limit lifted, the linkifier sees them all."""
    monkeypatch.setattr(markdown_budgets, "INLINE_BUDGET", 10**9)
    monkeypatch.setattr(markdown_budgets, "RENDER_CPU_SECONDS", 60)
    html = str(render_markdown("x.io\n" * 20_000))
    assert html.count('href="http://x.io"') == 20_000
