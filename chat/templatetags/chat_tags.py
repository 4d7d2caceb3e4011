import re

from django import template
from django.utils.safestring import mark_safe

from chat.fragments import message_html
from chat.markdown import render_markdown
from chat.services import task_error_text, task_status_label

register = template.Library()


@register.simple_tag(takes_context=True)
def message_fragment(context, message):
    """The message's fragment (chat/_message.html), shared with live frames."""
    return mark_safe(message_html(message, request=context.get("request")))  # noqa: S308


@register.filter(name="markdown")
def markdown_filter(text):
    """Markdown → sanitized HTML (see chat/markdown.py)."""
    return render_markdown(text)


@register.filter
def task_label(task):
    return task_status_label(task)


@register.filter
def task_error(task):
    return task_error_text(task)


_MARKUP = re.compile(r"```\w*|[*_`#>|~]+|^\s*[-+]\s+|!?\[([^\]]*)\]\([^)]*\)", re.M)


@register.filter
def preview(text):
    """A message as one plain line for the sidebar: Markdown marks and newlines go."""
    if not text:
        return ""
    plain = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    return " ".join(plain.split())
