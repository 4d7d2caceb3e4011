"""The one fragment of a message, for the page and for `message.created` frames.

A message whose fragment can no longer change (an assistant reply, or a user
message with no task or a completed one) is rendered once and then served from
a bounded in-process cache keyed by everything the fragment shows, so a long
conversation's page costs little more than a short one's. A user message with
a task status (pending, processing, failed with its Retry form and CSRF token)
is always rendered afresh.
"""

import json
import threading
from collections import OrderedDict

from django.conf import settings
from django.template.loader import render_to_string

from tasks.models import TaskStatus

TEMPLATE = "chat/_message.html"
VERSIONS_TEMPLATE = "chat/_versions.html"

CACHE_ENTRIES = 4096

_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()


def _cache_key(message, shared=False):
    if message.role == "user" and not shared:
        task = message.async_task if message.async_task_id else None
        if task is not None and task.status != TaskStatus.COMPLETED:
            return None
    return (
        message.pk,
        message.role,
        message.content,
        message.content_html,
        message.thinking_html,
        message.created_at,
        message.parent_id,
        getattr(message, "versions", None),
        json.dumps((message.metadata or {}).get("feedback"), sort_keys=True),
        shared,
        _author(message),
    )


def _author(message):
    """Who wrote a reply, as its metadata recorded (the fragment shows it)."""
    assistant = (message.metadata or {}).get("assistant") if message.role == "assistant" else None
    return assistant.get("name") if isinstance(assistant, dict) else None


def message_html(message, request=None, shared=False) -> str:
    """The fragment; `shared`: as a share link shows it (no controls, no
    task status or steps, no rating)."""
    message.render_if_needed()
    if not hasattr(message, "versions"):
        from .branches import annotate

        annotate([message])
    key = _cache_key(message, shared)
    context = {"message": message, "shared": shared}
    if key is None:
        return render_to_string(TEMPLATE, context, request=request)
    with _lock:
        html = _cache.get(key)
        if html is not None:
            _cache.move_to_end(key)
            return html
    html = render_to_string(TEMPLATE, context)
    with _lock:
        _cache[key] = html
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return html


def stream_shell_html() -> str:
    """The shell of a reply being written: the fragment's own template in its
    `streaming` form (no id, no time, no actions: nothing is stored yet),
    which the conversation page carries in a <template> for its script."""
    from .models import Message, Role

    context = {
        "message": Message(role=Role.ASSISTANT),
        "streaming": True,
        "formatted": settings.CHAT_STREAM_RENDER_SECONDS > 0,
    }
    return render_to_string(TEMPLATE, context)


def sibling_switches(message) -> dict[str, str]:
    """For a new message with siblings: each other sibling's `‹ i / n ›`
    switch as it reads now (chat/_versions.html, keyed by its id as a
    string), so a page that shows one of them swaps in the server's switch.
    Empty without siblings, at no cost (the message's own count says so)."""
    if not getattr(message, "versions", None):
        return {}
    from .branches import annotate
    from .models import Message

    siblings = list(
        Message.objects.filter(conversation_id=message.conversation_id, parent_id=message.parent_id)
        .exclude(pk=message.pk)
        .only("pk", "conversation_id", "parent_id")
        .order_by("pk")
    )
    annotate(siblings)
    return {
        str(sibling.pk): render_to_string(VERSIONS_TEMPLATE, {"message": sibling})
        for sibling in siblings
        if sibling.versions
    }
