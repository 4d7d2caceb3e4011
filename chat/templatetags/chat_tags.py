from django import template
from django.utils.safestring import mark_safe

from tasks.models import TaskWords

from ..fragments import message_html, stream_shell_html
from ..replies.taskstatus import plain_words, status_html

register = template.Library()


@register.simple_tag(takes_context=True)
def message_fragment(context, message):
    """The message's fragment (chat/_message.html), shared with live frames."""
    return mark_safe(message_html(message, request=context.get("request")))  # noqa: S308


@register.simple_tag
def shared_fragment(message):
    """The message as a share link shows it: the same fragment without controls."""
    return mark_safe(message_html(message, shared=True))  # noqa: S308


@register.simple_tag
def stream_shell():
    """The shell of a reply being written (chat/_message.html, streaming), for
    the conversation page's <template id="stream-template">."""
    return mark_safe(stream_shell_html())  # noqa: S308


@register.simple_tag(takes_context=True)
def task_status(context, task, message=None):
    """A task's status line (chat/_task_status.html), shared with task.status frames."""
    return mark_safe(status_html(task, message, request=context.get("request")))  # noqa: S308


@register.filter
def preview(text):
    """A message's stored preview (plain text of its rendered Markdown) on one line."""
    return " ".join((text or "").split())


class Steps(list):
    """A reply's steps, and how long they took in all (`total`, "" for none)."""

    total = ""


@register.filter
def task_steps(task):
    """A reply's steps for its "Details" disclosure: each recorded change of its
    task (tasks' async_task_events) with its time and how long it lasted, in
    plain words (the workflow's message or its step made readable, never a
    raw id), and the total from the first change to the last."""
    steps = Steps()
    if task is None:
        return steps
    events = sorted(task.events.all(), key=lambda event: (event.version, event.pk))
    for index, event in enumerate(events):
        following = events[index + 1] if index + 1 < len(events) else None
        seconds = (following.created_at - event.created_at).total_seconds() if following else None
        label = TaskWords.step_label(
            event.status, event.current_step, plain_words(event.status_message)
        )
        steps.append(
            {
                "label": label,
                "status": event.status,
                "at": event.created_at,
                "duration": TaskWords.seconds(seconds, precise=True) if seconds is not None else "",
            }
        )
    if len(events) > 1:
        seconds = (events[-1].created_at - events[0].created_at).total_seconds()
        steps.total = f"{TaskWords.TOTAL} {TaskWords.seconds(seconds, precise=True)}"
    return steps
