from django import template
from django.utils.safestring import mark_safe

from ..fragments import message_html, stream_shell_html
from ..taskstatus import status_html

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


@register.filter
def task_steps(task):
    """A reply's steps for its "Details" disclosure: each recorded change of its
    task (tasks' async_task_events) with its time and how long it lasted."""
    if task is None:
        return []
    events = sorted(task.events.all(), key=lambda event: (event.version, event.pk))
    steps = []
    for index, event in enumerate(events):
        following = events[index + 1] if index + 1 < len(events) else None
        seconds = (following.created_at - event.created_at).total_seconds() if following else None
        if event.status == "processing" and event.current_step:
            label = event.current_step.replace("_", " ")
        else:
            label = event.get_status_display()
        steps.append(
            {
                "label": label,
                "status": event.status,
                "at": event.created_at,
                "duration": f"{seconds:.1f} s" if seconds is not None else "",
            }
        )
    return steps
