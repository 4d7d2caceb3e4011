"""What is stored beside a message's text: its rendered HTML and its preview.

Rendering happens when a message is stored (`Message.save`), so pages and
live frames only read it. `rerender()` renders stored rows again, in batches,
after the renderer changed (`manage.py rerender_messages`).
"""

from django.db import transaction

PREVIEW_LENGTH = 160
FIELDS = ("content_html", "thinking_html", "preview_text")


def rendered_fields(role, content, thinking) -> dict:
    from .markdown import plain_text, render_markdown

    if role == "assistant":
        content_html = str(render_markdown(content))
        thinking_html = str(render_markdown(thinking))
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


def rerender(*, only_missing=False, batch_size=200, progress=None) -> int:
    """Render every message again (or only those never rendered), one batch
    of rows in memory and one short transaction at a time; the count done."""
    from django.db.models import Q

    from .models import Message

    queryset = Message.objects.order_by("pk").only("id", "role", "content", "thinking", *FIELDS)
    if only_missing:
        queryset = queryset.filter(
            Q(role="user", preview_text="", content__gt="")
            | Q(role="assistant", content_html="", content__gt="")
            | Q(role="assistant", thinking_html="", thinking__gt="")
        )
    done, last_pk = 0, 0
    while True:
        batch = list(queryset.filter(pk__gt=last_pk)[:batch_size])
        if not batch:
            return done
        for message in batch:
            message.render()
        with transaction.atomic():
            Message.objects.bulk_update(batch, FIELDS)
        done += len(batch)
        last_pk = batch[-1].pk
        if progress:
            progress(done)
