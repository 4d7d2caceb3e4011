"""markdown-it's `linkify` core rule, in one pass per paragraph.

The library's rule (markdown_it/rules_core/linkify.py) replaces each text
token that holds a bare link by rebuilding the paragraph's whole children list
(`arrayReplaceAt`), so a paragraph of n such tokens costs n²: with `breaks` on,
every line is a token of its own, and 100,000 characters of `x.io` lines took
tens of CPU seconds. This rule makes the same decisions in the same order
(markdown links and `<a>…</a>` are skipped, a link right after an escape is
not taken, the same normalizeLink / validateLink / normalizeLinkText), collects
the replacements, and builds each new children list once.
"""

import re

from markdown_it.common.utils import isLinkClose, isLinkOpen
from markdown_it.token import Token

from . import budgets

_HTTP = re.compile(r"^http://")
_MAILTO = re.compile(r"^mailto:")
_TEST_MAILTO = re.compile(r"^mailto:", flags=re.IGNORECASE)


def linkify(state) -> None:
    md = state.md
    if not md.options.linkify:
        return
    if not md.linkify:
        raise ModuleNotFoundError("Linkify enabled but not installed.")
    for inline_token in state.tokens:
        if inline_token.type != "inline" or not md.linkify.pretest(inline_token.content):
            continue
        tokens = inline_token.children
        replaced = _replacements(md, tokens)
        if replaced:
            children = []
            for index, token in enumerate(tokens):
                nodes = replaced.get(index)
                if nodes is None:
                    children.append(token)
                else:
                    children.extend(nodes)
            inline_token.children = children


def _replacements(md, tokens) -> dict:
    """{index of a text token: the tokens that replace it}, scanning from the
    end as the library does (its link and html-link skipping depends on it)."""
    replaced = {}
    html_link_level = 0
    i = len(tokens)
    while i >= 1:
        i -= 1
        current = tokens[i]
        if current.type == "link_close":  # skip the content of markdown links
            i -= 1
            while tokens[i].level != current.level and tokens[i].type != "link_open":
                i -= 1
            continue
        if current.type == "html_inline":  # and of html links
            if isLinkOpen(current.content) and html_link_level > 0:
                html_link_level -= 1
            if isLinkClose(current.content):
                html_link_level += 1
        if html_link_level > 0:
            continue
        if current.type == "text" and md.linkify.test(current.content):
            budgets.tick()
            previous = tokens[i - 1] if i > 0 else None
            replaced[i] = _split(md, current, previous)
    return replaced


def _split(md, current, previous) -> list:
    """The text token `current` as text and link tokens."""
    text = current.content
    links = md.linkify.match(text) or []
    # No link right after an escape: `http\://example.com/` must not become
    # http:<a href="//example.com/">//example.com/</a>.
    if links and links[0].index == 0 and previous is not None and previous.type == "text_special":
        links = links[1:]
    nodes = []
    level = current.level
    last = 0
    for link in links:
        url = md.normalizeLink(link.url)
        if not md.validateLink(url):
            continue
        label = link.text
        # linkify-it gives bare hosts ("example.com") without a scheme: the
        # label is normalised with one and loses it again.
        if not link.schema:
            label = _HTTP.sub("", md.normalizeLinkText("http://" + label))
        elif link.schema == "mailto:" and _TEST_MAILTO.search(label):
            label = _MAILTO.sub("", md.normalizeLinkText("mailto:" + label))
        else:
            label = md.normalizeLinkText(label)
        if link.index > last:
            nodes.append(_text(text[last : link.index], level))
        token = Token("link_open", "a", 1)
        token.attrs = {"href": url}
        token.level = level
        token.markup = "linkify"
        token.info = "auto"
        nodes.append(token)
        nodes.append(_text(label, level + 1))
        token = Token("link_close", "a", -1)
        token.level = level
        token.markup = "linkify"
        token.info = "auto"
        nodes.append(token)
        last = link.last_index
    if last < len(text):
        nodes.append(_text(text[last:], level))
    return nodes


def _text(content, level) -> Token:
    token = Token("text", "", 0)
    token.content = content
    token.level = level
    return token
