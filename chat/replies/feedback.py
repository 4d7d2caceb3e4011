"""Feedback on a reply (👍/👎, an optional comment), and the `feedback` task type.

A rating is stored on the reply itself (`metadata.feedback` = `{"rating",
"comment", "at"}`), so the page shows it with no other table. When
N8N_FEEDBACK_WORKFLOW is set, each rating also becomes a task of type
`feedback`, dispatched like any task to that workflow, whose status the admin
and `/ws/tasks/` show; unset, nothing else happens. The task type plugs into
the task system through `tasks/registry.py`, like `chat` (chat/replies/tasktypes.py).
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks import registry

FEEDBACK = "feedback"
RATINGS = ("up", "down", "none")
COMMENT_MAX_LENGTH = 2000
# What the workflow gets of the reply: its start is enough to know which one.
CONTENT_MAX_CHARS = 4000


class FeedbackRefused(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def _workflow():
    return settings.N8N_FEEDBACK_WORKFLOW


def enabled() -> bool:
    return bool(settings.N8N_FEEDBACK_WORKFLOW)


def clean(rating, comment) -> tuple[str, str | None]:
    """The rating and comment as stored (None: keep the earlier comment), or
    FeedbackRefused in plain words."""
    if rating not in RATINGS:
        raise FeedbackRefused("Choose a rating: up, down or none.")
    if comment is None:
        return rating, None
    comment = comment.replace("\r\n", "\n").strip()
    if len(comment) > COMMENT_MAX_LENGTH:
        raise FeedbackRefused(
            f"A comment may be at most {COMMENT_MAX_LENGTH:,} characters long "
            f"(this one has {len(comment):,})."
        )
    if "\x00" in comment:
        raise FeedbackRefused("The comment holds a character that cannot be stored.")
    return rating, comment


def rate(user, message, rating, comment=None):
    """Store the user's rating of one of their assistant replies (the caller
    has checked it is theirs; `comment` None keeps the earlier one) and, with
    a feedback workflow set, make its task. Returns (message, task or None)."""
    from tasks.services import create_task

    from ..models import Message, Role

    rating, comment = clean(rating, comment)
    with transaction.atomic():
        locked = (
            Message.objects.select_for_update()
            .filter(pk=message.pk, role=Role.ASSISTANT, conversation__user=user)
            .first()
        )
        if locked is None:
            raise Message.DoesNotExist
        metadata = dict(locked.metadata or {})
        if comment is None:
            comment = ((metadata.get("feedback") or {}).get("comment")) or ""
        feedback = {"rating": rating, "comment": comment, "at": timezone.now().isoformat()}
        metadata["feedback"] = feedback
        locked.metadata = metadata
        locked.save(update_fields=["metadata"])
        task = None
        if enabled():
            task = create_task(user=user, task_type=FEEDBACK, input_data=task_input(locked))
    return locked, task


def task_input(message) -> dict:
    """What the feedback workflow receives (docs/PROTOCOL.md)."""
    feedback = (message.metadata or {}).get("feedback") or {}
    assistant = (message.metadata or {}).get("assistant")
    return {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "rating": feedback.get("rating"),
        "comment": feedback.get("comment", ""),
        "assistant": assistant if isinstance(assistant, dict) else None,
        "content": (message.content or "")[:CONTENT_MAX_CHARS],
    }


def register():
    # No hooks: a completed feedback task has nothing to add to the
    # conversation; its output (whatever object the workflow answers) is kept
    # on the task for the record.
    registry.register(registry.TaskType(name=FEEDBACK, workflow=_workflow))
