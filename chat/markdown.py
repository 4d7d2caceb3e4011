"""Markdown for chat content, sanitized on the server.

Assistant replies (and their `thinking`) come from a model we do not control,
so whatever Markdown or raw HTML they hold is rendered and then passed through
nh3 (ammonia) with a short allow-list: no script, no `<style>`, no `<iframe>`,
no event-handler attributes, no `style` attributes, only http(s)/mailto links.
Code blocks are highlighted by Pygments at render time (CSS classes, no inline
styles) and get a copy button, added after sanitizing so nh3 never has to
allow `<button>`.
"""

import functools
import re
import threading

import markdown
import nh3
from django.utils.safestring import SafeString, mark_safe
from pygments.token import STANDARD_TYPES

EXTENSIONS = ["fenced_code", "codehilite", "tables", "sane_lists", "nl2br"]
EXTENSION_CONFIGS = {
    "codehilite": {"css_class": "highlight", "guess_lang": False},
    # `align` instead of inline `style` attributes, which the sanitizer drops.
    "tables": {"use_align_attribute": True},
}

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s",
    "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
}
# Pygments' short token classes (`k`, `nf`, `s1`…) and the code block wrapper.
ALLOWED_CLASSES = {
    "span": {cls for cls in STANDARD_TYPES.values() if cls},
    "div": {"highlight"},
}
URL_SCHEMES = {"http", "https", "mailto"}

COPY_BUTTON = '<button type="button" class="copy-code" aria-label="Copy code" hidden>Copy</button>'
_CODE_BLOCK = re.compile(r'<div class="highlight"><pre>')

_local = threading.local()


def _converter() -> markdown.Markdown:
    # Building a Markdown instance is the slow part; one per thread, reset per use.
    converter = getattr(_local, "converter", None)
    if converter is None:
        converter = markdown.Markdown(
            extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS, output_format="html"
        )
        _local.converter = converter
    return converter


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style", "iframe", "object", "embed", "template"},
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


# Rendering is a pure function of the text, and a page shows the same messages
# again and again: keep the newest results (bounded in count and in size).
CACHE_ENTRIES = 4096
CACHE_MAX_TEXT = 32_000


def render_markdown(text: str | None) -> SafeString:
    """Markdown → sanitized HTML, safe to put into a page."""
    if not text:
        return mark_safe("")
    if len(text) <= CACHE_MAX_TEXT:
        return mark_safe(_render_cached(text))  # noqa: S308 - sanitized in _render
    return mark_safe(_render(text))  # noqa: S308 - sanitized in _render


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _render_cached(text: str) -> str:
    return _render(text)


def _render(text: str) -> str:
    converter = _converter()
    try:
        html = converter.reset().convert(text)
    finally:
        converter.reset()
    clean = sanitize(html)
    return _CODE_BLOCK.sub(f'<div class="highlight">{COPY_BUTTON}<pre>', clean)
