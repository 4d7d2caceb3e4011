"""What is stored beside a message's text: its rendered HTML and its preview.

Rendering happens when a message is stored (`Message.save`), so pages and
live frames only read it; `manage.py rerender_messages` renders stored rows
again after the renderer changed.
"""

PREVIEW_LENGTH = 160
FIELDS = ("content_html", "thinking_html", "preview_text")


def rendered_fields(role, content, thinking) -> dict:
    from .markdown import plain_text, render_markdown
    from .markdown_budgets import deadline

    if role == "assistant":
        # One CPU deadline for the message: its content and thinking together.
        until = deadline()
        content_html = str(render_markdown(content, until))
        thinking_html = str(render_markdown(thinking, until))
        preview = plain_text(content_html, limit=PREVIEW_LENGTH)
    else:
        # User messages are shown as the text they wrote, never as Markdown.
        content_html = thinking_html = ""
        preview = " ".join((content or "")[: PREVIEW_LENGTH * 4].split())
    return {
        "content_html": content_html,
        "thinking_html": thinking_html,
        "preview_text": preview[:PREVIEW_LENGTH],
    }
