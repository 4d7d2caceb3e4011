"""What is stored beside a message's text: its rendered HTML and its preview.

Rendering happens when a message is stored (`Message.save`), so pages and
live frames only read it; `manage.py rerender_messages` renders stored rows
again after the renderer changed.

A reply is rendered before the transaction that stores it: a `completed`
callback's reply is stored by the chat task type's hook, which runs with the
task's row locked, and a render may take up to its CPU limit. So the task
type's `prepare` hook renders it first (`prepare`), and `Message.save` takes
that result (`stored_fields`). Why a cache rather than passing the HTML
along: the hook that stores the reply is called by tasks/ (which knows nothing
of HTML) from inside the door, and `Message.save` is the one place every
message is rendered; keyed by a digest of exactly what is rendered, an entry
can only ever be the right one, and a miss (evicted, or a reply stored some
other way) renders in place as before.
"""

import hashlib
import threading
from collections import OrderedDict

PREVIEW_LENGTH = 160
# Stored for a text that renders to nothing (a link reference definition,
# only whitespace): empty HTML means "not rendered yet" (a row written with
# plain SQL), so a text that shows nothing must still be marked rendered, or
# every view and sync would render it again. A comment: nothing is shown.
NOTHING_TO_SHOW = "<!-- nothing to show -->"
FIELDS = ("content_html", "thinking_html", "preview_text")
# Prepared renders waiting for their save (a few milliseconds, normally): at
# most this many, and this many characters of HTML, per process; the oldest go.
PREPARED_MAX = 32
PREPARED_MAX_CHARS = 8_000_000

_prepared: OrderedDict[str, dict] = OrderedDict()
_prepared_chars = 0
_prepared_lock = threading.Lock()


def rendered_fields(role, content, thinking) -> dict:
    from .markdown import plain_text, render_markdown
    from .markdown.budgets import deadline

    if role == "assistant":
        # One CPU deadline for the message: its content and thinking together.
        until = deadline()
        content_html = str(render_markdown(content, until))
        thinking_html = str(render_markdown(thinking, until))
        preview = plain_text(content_html, limit=PREVIEW_LENGTH)
        if content and not content_html:
            content_html = NOTHING_TO_SHOW
        if thinking and not thinking_html:
            thinking_html = NOTHING_TO_SHOW
    else:
        # User messages are shown as the text they wrote, never as Markdown.
        content_html = thinking_html = ""
        preview = " ".join((content or "")[: PREVIEW_LENGTH * 4].split())
    return {
        "content_html": content_html,
        "thinking_html": thinking_html,
        "preview_text": preview[:PREVIEW_LENGTH],
    }


def _digest(role, content, thinking) -> str:
    digest = hashlib.sha256()
    for part in (str(role), content or "", thinking or ""):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _size(fields) -> int:
    return sum(len(value) for value in fields.values())


def prepare(role, content, thinking) -> None:
    """Render a message about to be stored, outside any transaction; its save
    (`stored_fields`) takes the result."""
    global _prepared_chars
    key = _digest(role, content, thinking)
    fields = rendered_fields(role, content, thinking)
    with _prepared_lock:
        old = _prepared.pop(key, None)
        if old is not None:
            _prepared_chars -= _size(old)
        _prepared[key] = fields
        _prepared_chars += _size(fields)
        while _prepared and (len(_prepared) > PREPARED_MAX or _prepared_chars > PREPARED_MAX_CHARS):
            _key, dropped = _prepared.popitem(last=False)
            _prepared_chars -= _size(dropped)


def stored_fields(role, content, thinking) -> dict:
    """`rendered_fields`, taken from what `prepare` rendered when it is there."""
    global _prepared_chars
    key = _digest(role, content, thinking)
    with _prepared_lock:
        fields = _prepared.pop(key, None)
        if fields is not None:
            _prepared_chars -= _size(fields)
    return fields if fields is not None else rendered_fields(role, content, thinking)
