"""How a chat task reads to a person: one renderer for the page and the frames.

The status line under a user message (its label, progress text, error words
and Retry form) is `templates/chat/_task_status.html`, rendered only by
`status_html()`. The page includes it in a message's fragment, and the `chat`
task type hands it to `tasks/` (the registry's `status_html` hook), which puts
it in every `task.status` frame; the script inserts that HTML as it is, so the
words are the same live and after a reload.

The words themselves (the labels, the sentence heading what went wrong) are
the task system's, named once in `tasks.models.TaskWords`. Error words are
plain: an error text that looks technical (a URL, a host or an address, an
exception's text, an HTTP body, what may be a credential, anything long) is
left out, so the heading sentence stands alone; the raw `error_details` stay
in the admin.
"""

import re

from django.template.loader import render_to_string
from django.utils import timezone

from tasks.models import TaskStatus, TaskWords

TEMPLATE = "chat/_task_status.html"
DETAIL_MAX_LENGTH = 200

# Signs that a text was written for an operator or by a library, not for a
# reader of the chat: URLs, exception and traceback texts, markup, JSON.
_TECHNICAL = re.compile(
    r"(?i:https?:|://|www\.|traceback|exception|errno|status code|\bn8n\b|webhook)"
    r"|\b\w+(?:Error|Exception)\b|\bError:|[{}<>\[\]\\]|\w\.\w+\("
    # Hosts, addresses and ports (`api.example.com`, `10.0.3.7:8443`), and
    # anything that may be a credential or a fragment of one.
    r"|\w[.:@/]\w|(?i:\bapi[ _-]?key|\btoken\b|\bsecret|\bpassword|\bbearer\b)"
    r"|\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{6,}"
)


def status_label(task) -> str:
    """The status line's words: for an unfinished task what is true now (the
    workflow's own message when it is fit to show, else its step made
    readable, else whether it was sent), with `{elapsed}` where the time
    waited goes; for a finished one its status's label."""
    if task.status in TaskStatus.unfinished():
        return TaskWords.waiting(task.status, task.current_step, plain_words(task.status_message))
    return TaskWords.label(task.status, task.current_step)


def waited_since(task):
    """Since when the status line counts: the dispatch (processing), else the
    task's creation (or its restart by an operator)."""
    if task.status == TaskStatus.PROCESSING and task.processing_started_at:
        return task.processing_started_at
    return getattr(task, "restarted_at", None) or task.created_at


def _waiting_parts(task):
    """(words before the time waited, the time, words after it, since when)."""
    words = status_label(task)
    before, slot, after = words.partition("{elapsed}")
    if not slot:
        before, after = f"{words} · ", ""
    since = waited_since(task)
    seconds = max((timezone.now() - since).total_seconds(), 0) if since else 0
    return before, TaskWords.seconds(int(seconds)), after, since


def _error_words(details) -> str:
    if isinstance(details, str):
        return details
    if isinstance(details, dict):
        for key in ("message", "error", "detail", "reason"):
            value = details.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, dict):
                nested = _error_words(value)
                if nested:
                    return nested
    return ""


def plain_words(text) -> str:
    """`text` with its whitespace collapsed, or "" when it is not for a reader."""
    words = " ".join((text or "").split())
    if len(words) > DETAIL_MAX_LENGTH or _TECHNICAL.search(words):
        return ""
    return words


def error_text(task) -> str:
    """The error of a task that ended without a result, in plain words ("" otherwise)."""
    head = TaskWords.ENDED.get(task.status, "")
    if task.status not in (TaskStatus.FAILED, TaskStatus.TIMEOUT):
        return head  # stopped (its heading says it all), or not ended
    raw = _error_words(task.error_details) or task.status_message
    detail = plain_words(raw)
    if detail and detail[-1] not in ".!?…":
        detail += "."
    return f"{head} {detail}" if detail else head


def _retry_target(task, message):
    """(conversation id, message id) of the Retry form, from the message or the task."""
    if message is not None:
        return message.conversation_id, message.pk
    data = task.input_data if isinstance(task.input_data, dict) else {}
    conversation_id, message_id = data.get("conversation_id"), data.get("message_id")
    if isinstance(conversation_id, int) and isinstance(message_id, int):
        return conversation_id, message_id
    return None, None


def kept_as_reply(task) -> bool:
    """A stopped task whose streamed text became its reply (marked "stopped"
    under it): like a completed one, it needs no status line nor Retry."""
    return task.status == TaskStatus.CANCELLED and bool((task.partial_text or "").strip())


def status_html(task, message=None, request=None) -> str:
    """The status line of `task` (chat/_task_status.html), for the page and
    frames; "" when there is none to show (the frame's script then removes it)."""
    if kept_as_reply(task):
        return ""
    conversation_id, message_id = _retry_target(task, message)
    unfinished = task.status in TaskStatus.unfinished()
    before, elapsed, after, since = _waiting_parts(task) if unfinished else ("", "", "", None)
    # Without a request (no Retry form's token) the line is kept on the task
    # for what it shows: a send's task frame and its message's fragment
    # render it once.
    key = (task.version, task.updated_at, elapsed, conversation_id, message_id)
    kept = getattr(task, "_status_html", None) if request is None else None
    if kept is not None and kept[0] == key:
        return kept[1]
    context = {
        "before": before,
        "elapsed": elapsed,
        "after": after,
        "since": since,
        "task": task,
        "unfinished": unfinished,
        "ended_badly": task.status in TaskStatus.ended_badly(),
        "label": status_label(task),
        "error": error_text(task),
        "conversation_id": conversation_id,
        "message_id": message_id,
    }
    html = render_to_string(TEMPLATE, context, request=request)
    if request is None:
        task._status_html = (key, html)
    return html
