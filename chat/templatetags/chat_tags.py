from django import template
from django.utils.safestring import mark_safe

from chat.fragments import message_html
from chat.taskstatus import status_html

register = template.Library()


@register.simple_tag(takes_context=True)
def message_fragment(context, message):
    """The message's fragment (chat/_message.html), shared with live frames."""
    return mark_safe(message_html(message, request=context.get("request")))  # noqa: S308


@register.simple_tag(takes_context=True)
def task_status(context, task, message=None):
    """A task's status line (chat/_task_status.html), shared with task.status frames."""
    return mark_safe(status_html(task, message, request=context.get("request")))  # noqa: S308


@register.filter
def preview(text):
    """A message's stored preview (plain text of its rendered Markdown) on one line."""
    return " ".join((text or "").split())
