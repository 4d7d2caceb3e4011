"""Markdown being written: the reply so far, formatted as its final version will be.

A stored reply is rendered whole, once (render.py). While a reply is being
written the page shows the text so far rendered by the same renderer, so
headings, lists, emphasis, code, tables and math read formatted as they grow
and the final version replaces them without a jump. Two things make that
cheap and keep raw marks off the page:

- **A kept prefix.** A reply is cut at its last *safe break*: a blank line
  outside code fences and display math, followed by a line that begins a new
  block at the left margin and cannot continue the block before it (not
  indented, not a list item). Nothing after such a break can change how the
  text before it renders, so that part is rendered once and kept
  (`PartialCache`); each render redoes only the tail, and finding breaks
  reads only the text added since the last one. Where meaning reaches back
  (a link reference or footnote definition, or an HTML block that may span
  blank lines) the reply is rendered whole each time, within the budgets.
- **A closed tail.** The last paragraph's unfinished `**`, `__`, `~~`, `*`
  or backtick code span is closed (dropped when nothing follows it yet), a
  link whose address is still being written is closed, and a table whose
  delimiter row is not complete is left out until it is, so no `**` nor table
  pipes show while the text grows.

Every render is bounded like a stored one (chat/markdown/budgets.py) and by a
shorter CPU deadline (`PARTIAL_CPU_SECONDS`); past it the tail shows as its
escaped text. How often a reply is rendered is chat/markdown/streaming.py's concern.
"""

import re
import time
from dataclasses import dataclass

from django.utils.safestring import SafeString, mark_safe

from . import budgets
from .render import plain_paragraphs, render_markdown

# A partial render may spend this much of its thread's CPU time.
PARTIAL_CPU_SECONDS = 0.25

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
# Definitions that earlier text may refer to, and HTML blocks that blank lines do not end.
_REACHES_BACK = re.compile(
    r"^ {0,3}(?:\[[^\]\n]+\]:|<!--|<\?|<!\[CDATA\[|<(?:pre|script|style|textarea)\b)",
    re.M | re.I,
)
_DELIMITER_ROW = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_OPEN_LINK = re.compile(r"\[[^\]\n]*\]\([^)\s]*$")
_MARKS = re.compile(r"`+|\*\*|__|~~|\*")


@dataclass
class PartialCache:
    """What one reply being written keeps between renders: the kept prefix
    (`end` code points of text, rendered as `html`), the fence state where
    scanning resumes, and whether the reply must be rendered whole."""

    end: int = 0
    html: str = ""
    scanned: int = 0
    fence: str = ""
    math: bool = False
    whole: bool = False


def _scan(text, cache) -> int:
    """Read the lines of `text` from `cache.scanned` on; return the last safe
    break found (or the kept end). Only whole lines are read."""
    last_break = cache.end
    position = cache.scanned
    previous_blank = position == 0 or text[position - 2 : position] == "\n\n"
    while True:
        newline = text.find("\n", position)
        if newline < 0:
            break
        line = text[position:newline]
        stripped = line.strip()
        if cache.fence:
            if stripped.startswith(cache.fence) and not stripped.strip(cache.fence[0]):
                cache.fence = ""
        elif cache.math:
            if stripped.endswith("$$"):
                cache.math = False
        elif not stripped:
            previous_blank = True
            position = newline + 1
            continue
        else:
            if (
                previous_blank
                and position > 0
                and line[:1] not in (" ", "\t")
                and not _LIST_ITEM.match(line)
            ):
                last_break = position
            fence = _FENCE.match(line)
            if fence:
                cache.fence = fence.group(1)
            elif stripped.startswith("$$") and not (len(stripped) > 2 and stripped.endswith("$$")):
                cache.math = True
        previous_blank = False
        position = newline + 1
    return last_break


def close_tail(tail: str) -> str:
    """The tail as it may render now: its unfinished table left out, its last
    paragraph's open marks closed or dropped."""
    if _in_fence(tail):
        return tail
    blocks = tail.rsplit("\n\n", 1)
    head, last = (blocks[0] + "\n\n", blocks[1]) if len(blocks) == 2 else ("", blocks[0])
    lines = last.split("\n")
    # A table (a line that begins with a pipe or holds two, then its delimiter
    # row) shows once that row is complete (a newline after it): until then
    # its pipes would read as text.
    for index, line in enumerate(lines):
        if not (line.lstrip().startswith("|") or line.count("|") >= 2):
            continue
        following = lines[index + 1] if index + 1 < len(lines) else None
        written = index + 1 < len(lines) - 1  # the delimiter row has its newline
        if (
            following is None
            or (not written and _DELIMITER_ROW.match(following + "-"))
            or (
                _DELIMITER_ROW.match(following)
                and _cells(following) != _cells(line)
                and not written
            )
        ):
            last = "\n".join(lines[:index])
        break
    return head + _close_marks(last)


def _in_fence(tail) -> bool:
    fence = ""
    for line in tail.split("\n"):
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = ""
        else:
            match = _FENCE.match(line)
            if match:
                fence = match.group(1)
    return bool(fence)


def _cells(line) -> int:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") else inner
    return inner.count("|") + 1


def _close_marks(paragraph: str) -> str:
    """Close what the paragraph being written has opened: a code span, then
    emphasis and strikethrough in reverse order; an opener with nothing after
    it yet is dropped instead."""
    stack = []  # (mark, position)
    code = ""
    for match in _MARKS.finditer(paragraph):
        mark = match.group()
        if code:
            if mark == code:
                code = ""
                stack.pop()
            continue
        if mark.startswith("`"):
            code = mark
            stack.append((mark, match.start()))
            continue
        if mark == "*" and _is_bullet(paragraph, match.start()):
            continue
        if mark == "*" and _spaced(paragraph, match.start(), match.end()):
            continue
        for index in range(len(stack) - 1, -1, -1):
            if stack[index][0] == mark:
                del stack[index:]
                break
        else:
            stack.append((mark, match.start()))
    if not stack:
        return _close_link(paragraph)
    text = paragraph
    for mark, position in reversed(stack):
        after = text[position + len(mark) :]
        if not after.strip():
            text = text[:position].rstrip() if not mark.startswith("`") else text[:position]
        else:
            text = text.rstrip() + mark
    return _close_link(text)


def _is_bullet(text, position) -> bool:
    line_start = text.rfind("\n", 0, position) + 1
    return not text[line_start:position].strip() and text[position + 1 : position + 2] in (" ", "")


def _spaced(text, start, end) -> bool:
    before = text[start - 1 : start] if start else " "
    after = text[end : end + 1] or " "
    return before.isspace() and after.isspace()


def _close_link(text) -> str:
    return text + ")" if _OPEN_LINK.search(text) else text


def render_partial(text: str, cache: PartialCache | None = None) -> SafeString:
    """The reply so far (`text`) as sanitized HTML; `cache` keeps its prefix
    between calls for the same growing text (a new one for a new text)."""
    if cache is None:
        cache = PartialCache()
    if not cache.whole and _REACHES_BACK.search(text, cache.end):
        cache.whole = True
    if cache.whole:
        return _bounded(close_tail(text))
    last_break = _scan(text, cache)
    newline = text.rfind("\n", cache.scanned)
    if newline >= 0:
        cache.scanned = newline + 1
    if last_break > cache.end:
        cache.html += _bounded(text[cache.end : last_break])
        cache.end = last_break
    return mark_safe(cache.html + _bounded(close_tail(text[cache.end :])))  # noqa: S308


def _bounded(text: str) -> str:
    if not text.strip():
        return ""
    until = time.thread_time() + min(PARTIAL_CPU_SECONDS, budgets.RENDER_CPU_SECONDS)
    try:
        return render_markdown(text, until=until)
    except Exception:  # noqa: BLE001 - a reply being written shows as text rather than not at all
        return plain_paragraphs(text)
