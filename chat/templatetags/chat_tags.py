import re

from django import template
from django.utils.safestring import mark_safe

from chat.fragments import message_html
from chat.markdown import render_markdown
from chat.taskstatus import status_html

register = template.Library()


@register.simple_tag(takes_context=True)
def message_fragment(context, message):
    """The message's fragment (chat/_message.html), shared with live frames."""
    return mark_safe(message_html(message, request=context.get("request")))  # noqa: S308


@register.filter(name="markdown")
def markdown_filter(text):
    """Markdown → sanitized HTML (see chat/markdown.py)."""
    return render_markdown(text)


@register.simple_tag(takes_context=True)
def task_status(context, task, message=None):
    """A task's status line (chat/_task_status.html), shared with task.status frames."""
    return mark_safe(status_html(task, message, request=context.get("request")))  # noqa: S308


_MARKUP = re.compile(r"```\w*|[*_`#>|~]+|^\s*[-+]\s+|!?\[([^\]]*)\]\([^)]*\)", re.M)


@register.filter
def preview(text):
    """A message as one plain line for the sidebar: Markdown marks and newlines go."""
    if not text:
        return ""
    plain = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    return " ".join(plain.split())
