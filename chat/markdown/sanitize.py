"""What HTML may reach a page from a message: nh3 (ammonia) with a short allow-list.

No script, `<style>`, `<iframe>`, no event handlers or `style` attributes,
only http(s)/mailto links, the classes the stylesheet and Pygments use, and
just the MathML that chat/markdown/render.py emits. Footnote anchors are the only ids.
"""

import re

import nh3
from pygments.token import STANDARD_TYPES

MATHML_TAGS = {
    "math", "menclose", "merror", "mfrac", "mi", "mmultiscripts", "mn", "mo", "mover",
    "mpadded", "mphantom", "mprescripts", "mroot", "mrow", "ms", "mspace", "msqrt", "mstyle",
    "msub", "msubsup", "msup", "mtable", "mtd", "mtext", "mtr", "munder", "munderover", "none",
}  # fmt: skip
MATHML_ATTRIBUTES = {
    "accent", "columnalign", "columnlines", "columnspacing", "depth", "display",
    "displaystyle", "fence", "height", "largeop", "linethickness", "lspace", "mathbackground",
    "mathcolor", "mathsize", "mathvariant", "maxsize", "minsize", "movablelimits", "notation",
    "rowlines", "rowspacing", "rspace", "scriptlevel", "separator", "stretchy", "voffset",
    "width", "xmlns",
}  # fmt: skip

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "input", "kbd", "li", "ol", "p", "pre",
    "s", "section", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
} | MATHML_TAGS  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "id"},
    "abbr": {"title"},
    "div": {"data-lang"},
    "input": {"type", "disabled", "checked"},
    "li": {"id"},
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
} | {tag: MATHML_ATTRIBUTES for tag in MATHML_TAGS}
# Pygments' short token classes (`k`, `nf`, `s1`…), the code block wrapper, and
# the hooks the stylesheet uses for math, task lists and footnotes.
ALLOWED_CLASSES = {
    "span": {cls for cls in STANDARD_TYPES.values() if cls} | {"math", "inline"},
    "div": {"highlight", "math", "block", "table-scroll"},
    "ul": {"contains-task-list"},
    "li": {"task-list-item", "footnote-item"},
    "input": {"task-list-item-checkbox"},
    "section": {"footnotes"},
    "sup": {"footnote-ref"},
    "a": {"footnote-backref"},
    "hr": {"footnotes-sep"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# Footnote anchors are the only ids: they may not clobber the page's own.
_FOOTNOTE_ID = re.compile(r"^fn(ref)?-[0-9a-f]{8}-\d+(:\d+)?$")


def _attribute_filter(element, attribute, value):
    if attribute == "id" and not _FOOTNOTE_ID.match(value):
        return None
    return value


# Built once: nh3 compiles its allow-lists when a cleaner is made, which
# cost about 1 ms per call when they were passed to `nh3.clean` each time.
_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style", "iframe", "object", "embed", "template"},
    attributes=ALLOWED_ATTRIBUTES,
    allowed_classes=ALLOWED_CLASSES,
    attribute_filter=_attribute_filter,
    url_schemes=URL_SCHEMES,
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


def sanitize(html_text: str) -> str:
    return _CLEANER.clean(html_text)
