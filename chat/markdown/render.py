"""Markdown for chat content, rendered on the server and sanitized.

Models write CommonMark with GitHub's extensions, so replies go through
markdown-it-py (CommonMark) with GFM tables, strikethrough, task lists
(read-only checkboxes), footnotes, bare-URL links (linkify-it-py) and dollar
math, which latex2mathml turns into MathML that browsers display natively.

Whatever a model writes is untrusted:
- raw HTML is shown as text, except a few attribute-free inline tags that
  models use for formatting (`<br>`, `<kbd>`, `<sub>`…); so `Vec<T>` or a
  `<script>` in prose reads as written and never runs;
- the result then goes through chat/markdown/sanitize.py (nh3, ammonia) with a short
  allow-list: no script, `<style>`, `<iframe>`, no event handlers or `style`
  attributes, only http(s)/mailto links, and just the MathML this module emits;
- work is bounded (chat/markdown/budgets.py): markdown-it's nesting guard
  for inline constructs, deep lists and quotes, inline runs and table rows
  past a budget shown as text instead of dropped; formulas and code past a
  size are shown unconverted / unhighlighted; and a message whose render goes
  past a CPU-time limit anyway is shown as its plain text, escaped.

Code blocks are highlighted by Pygments (CSS classes, no inline styles) and get
a Copy button, added after sanitizing so nh3 never has to allow `<button>`.
"""

import functools
import hashlib
import html
import logging
import re
import threading
from html.parser import HTMLParser
from xml.etree.ElementTree import tostring

from django.utils.safestring import SafeString, mark_safe
from latex2mathml.converter import convert_to_element
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.footnote.index import render_footnote_anchor as _FOOTNOTE_ANCHOR
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from . import budgets
from .linkify import linkify
from .sanitize import sanitize

COPY_BUTTON = '<button type="button" class="copy-code" aria-label="Copy code" hidden>Copy</button>'
_CODE_BLOCK = re.compile(r'(<div class="highlight"(?: data-lang="([^"]*)")?>)<pre>')
# Added after sanitizing, like the Copy button: a read-only checkbox's name,
# and keyboard access (a tab stop with a name) to the boxes that scroll sideways.
_CHECKBOX = re.compile(r'<input class="task-list-item-checkbox"([^>]*)>')
_TABLE_SCROLL = '<div class="table-scroll">'
_TABLE_SCROLL_REGION = '<div class="table-scroll" tabindex="0" role="region" aria-label="Table">'

_LANGUAGE = re.compile(r"^[\w+#.-]{1,32}$")
# Inline HTML kept as HTML: formatting tags without attributes.
_SAFE_INLINE_HTML = re.compile(r"^</?(b|br|code|del|em|i|kbd|s|strong|sub|sup)\s*/?>$", re.I)

logger = logging.getLogger(__name__)


# --- markdown-it rules -------------------------------------------------------------


def _table_align(state):
    """`style="text-align:…"` (dropped by the sanitizer) becomes `align`."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = token.attrGet("style")
            if style and style.startswith("text-align:"):
                token.attrs.pop("style", None)
                token.attrSet("align", style.split(":", 1)[1])


def _render_math(latex, options):
    display = "block" if options.get("display_mode") else "inline"
    if not budgets.formula_fits(latex):
        return f"<code>{escapeHtml(latex)}</code>"
    budgets.check_deadline()
    return _mathml(latex, display)


@functools.lru_cache(maxsize=1024)
def _mathml(latex, display):
    try:
        element = convert_to_element(latex, display=display)
    except Exception:  # noqa: BLE001 - whatever the converter fails on shows as code
        return f"<code>{escapeHtml(latex)}</code>"
    # latex2mathml stores entities (`&#x0003C;`) as text; turn them into
    # characters so that serialising escapes everything exactly once.
    for node in element.iter():
        if node.text:
            node.text = html.unescape(node.text)
    return tostring(element, encoding="unicode")


def _code_html(code, language):
    lexer = None
    if language and budgets.highlight_fits(code):
        budgets.check_deadline()
        try:
            lexer = get_lexer_by_name(language)
            budgets.spend_highlight(code)
        except ClassNotFound:
            lexer = None
    body = escapeHtml(code) if lexer is None else pygments_highlight(code, lexer, _FORMATTER)
    lang_attr = f' data-lang="{escapeHtml(language)}"' if language else ""
    return f'<div class="highlight"{lang_attr}><pre><code>{body}</code></pre></div>\n'


def _fence(self, tokens, idx, options, env):
    info = tokens[idx].info.strip().split(maxsplit=1)
    language = info[0] if info and _LANGUAGE.match(info[0]) else ""
    return _code_html(tokens[idx].content, language)


def _code_block(self, tokens, idx, options, env):
    return _code_html(tokens[idx].content, "")


def _html_inline(self, tokens, idx, options, env):
    content = tokens[idx].content
    return content if _SAFE_INLINE_HTML.match(content) else escapeHtml(content)


def _html_block(self, tokens, idx, options, env):
    lines = escapeHtml(tokens[idx].content.strip("\n")).split("\n")
    return "<p>" + "<br>\n".join(lines) + "</p>\n"


def _image(self, tokens, idx, options, env):
    """Images are not shown (nothing loads from a model's URLs); their link is."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or token.attrGet("src")
    return f'<a href="{escapeHtml(token.attrGet("src") or "")}">{escapeHtml(alt or "")}</a>'


def _footnote_anchor(self, tokens, idx, options, env):
    """One way back per footnote (from its first reference), not one per reference."""
    if tokens[idx].meta.get("subId", 0) > 0:
        return ""
    return _FOOTNOTE_ANCHOR(self, tokens, idx, options, env)


def _table_open(self, tokens, idx, options, env):
    return '<div class="table-scroll"><table>\n'


def _table_close(self, tokens, idx, options, env):
    return "</table></div>\n"


_FORMATTER = HtmlFormatter(nowrap=True)


def _build() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {
            "html": True,
            "linkify": True,
            "breaks": True,
            "tasklists": True,
            "tasklists_editable": False,
            "maxNesting": budgets.MAX_NESTING,
        },
    )
    md.enable(["table", "strikethrough", "linkify"])
    # The library's rule is quadratic in the links of a paragraph (see the module).
    md.core.ruler.at("linkify", linkify)
    md.use(footnote_plugin, inline=False)
    md.use(
        dollarmath_plugin,
        allow_labels=False,
        allow_space=False,  # "$ 5 and $ 6" is money, not math
        allow_digits=False,  # so is "$5 and $10"
        allow_blank_lines=False,
        renderer=_render_math,
    )
    budgets.install(md)
    md.core.ruler.push("table_align", _table_align)
    for name, rule in {
        "fence": _fence,
        "code_block": _code_block,
        "html_inline": _html_inline,
        "html_block": _html_block,
        "image": _image,
        "table_open": _table_open,
        "table_close": _table_close,
        "footnote_anchor": _footnote_anchor,
    }.items():
        md.add_render_rule(name, rule)
    return md


_local = threading.local()


def _parser() -> MarkdownIt:
    # Building the parser compiles its rules: once per thread.
    md = getattr(_local, "md", None)
    if md is None:
        md = _local.md = _build()
    return md


def render_markdown(text: str | None, until: float | None = None) -> SafeString:
    """Markdown → sanitized HTML, safe to put into a page.

    Callers store the result (`Message.content_html`): pages and frames never
    render on their own. A render that goes past its CPU deadline (`until`, a
    `markdown_budgets.deadline()` shared by a message's texts; by default
    RENDER_CPU_SECONDS from now) shows the text as it is instead.
    """
    if not text:
        return mark_safe("")
    # Footnote anchors get a prefix of their text's digest, so two replies on
    # one page never share an id.
    budgets.start(until)
    env = {"docId": hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]}
    try:
        rendered = _parser().render(text, env)
    except budgets.RenderTooSlow:
        logger.warning(
            "Markdown of %s characters went past its CPU limit: shown as plain text",
            len(text),
            extra={"event": "markdown.too_slow", "length": len(text)},
        )
        return plain_paragraphs(text)
    clean = sanitize(rendered)
    return mark_safe(_accessible(clean))  # noqa: S308


def _code_block_head(match) -> str:
    language = match.group(2)
    name = f"Code ({language})" if language else "Code"
    return f'{match.group(1)}{COPY_BUTTON}<pre tabindex="0" role="region" aria-label="{name}">'


def _checkbox(match) -> str:
    attributes = match.group(1)
    name = "Done" if "checked" in attributes else "Not done"
    return f'<input class="task-list-item-checkbox" aria-label="{name}"{attributes}>'


def _accessible(clean: str) -> str:
    """What sanitized HTML gets afterwards, from fixed strings: each code
    block's Copy button and a tab stop on its code (it may scroll sideways),
    a name for each task-list checkbox, a tab stop on each table's scroller."""
    clean = _CODE_BLOCK.sub(_code_block_head, clean)
    clean = _CHECKBOX.sub(_checkbox, clean)
    return clean.replace(_TABLE_SCROLL, _TABLE_SCROLL_REGION)


def plain_paragraphs(text: str) -> SafeString:
    """The text as it is, escaped: a paragraph per run of lines between blank
    ones, `<br>` between the lines of one."""
    paragraphs, lines = [], []
    for line in text.split("\n"):
        if line.strip():
            lines.append(escapeHtml(line))
        elif lines:
            paragraphs.append(lines)
            lines = []
    if lines:
        paragraphs.append(lines)
    html_text = "".join("<p>" + "<br>\n".join(lines) + "</p>\n" for lines in paragraphs)
    return mark_safe(html_text)  # noqa: S308


# --- plain text ---------------------------------------------------------------------


class _TextCollector(HTMLParser):
    SKIP = {"button"}
    # Tags that separate words; inline ones (a highlighted token's span) do not.
    BREAKS = {
        "blockquote", "br", "dd", "div", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
        "li", "math", "p", "pre", "section", "td", "th", "tr",
    }  # fmt: skip

    def __init__(self, limit):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.size = 0
        self.limit = limit
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        if tag in self.BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        if tag in self.BREAKS:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self.skipping and self.size < self.limit:
            self.parts.append(data)
            self.size += len(data)


def plain_text(html_text: str, limit: int = 200) -> str:
    """The words of rendered HTML on one line (at least `limit` characters of
    them when there are that many), e.g. for a preview."""
    collector = _TextCollector(limit)
    collector.feed(html_text)
    collector.close()
    return " ".join("".join(collector.parts).split())
