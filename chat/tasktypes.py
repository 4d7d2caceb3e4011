"""The `chat` task type: how a finished n8n run becomes an assistant message."""

from django.conf import settings
from django.utils import timezone

from tasks import registry

from .live import conversation_group, publish_message

CHAT = "chat"


def _workflow():
    return settings.N8N_CHAT_WORKFLOW


def _groups(task):
    conversation_id = (task.input_data or {}).get("conversation_id")
    return [conversation_group(conversation_id)] if conversation_id else []


def reply_from_output(output):
    """`{"content", "thinking"}` or a plain string → (content, thinking)."""
    if isinstance(output, str):
        return output, ""
    content = output.get("content")
    thinking = output.get("thinking") or ""
    return content, thinking if isinstance(thinking, str) else str(thinking)


def superseded(task) -> bool:
    """A reply belongs to the newest task of its message: has a later one
    (a Retry) taken this task's place?"""
    from .models import Message

    message_id = (task.input_data or {}).get("message_id")
    linked = Message.objects.filter(pk=message_id).values_list("async_task_id", flat=True)
    return any(task_id not in (None, task.pk) for task_id in linked)


def output_refused(output) -> str:
    """Plain words when a usable reply may not be kept: longer than CHAT_REPLY_MAX_LENGTH."""
    content, _thinking = reply_from_output(output)
    limit = settings.CHAT_REPLY_MAX_LENGTH
    if len(content) > limit:
        return f"The reply was {len(content):,} characters long; the limit is {limit:,}."
    return ""


def _add_reply(task, content, thinking="", metadata=None):
    """Exactly one assistant message per chat task, and none for a task that a
    later one superseded or whose conversation is gone."""
    from .models import Conversation, Message, Role

    if Message.objects.filter(async_task=task, role=Role.ASSISTANT).exists():
        return
    if superseded(task):
        return
    conversation_id = (task.input_data or {}).get("conversation_id")
    # Moving `updated_at` doubles as the existence check: no row means the
    # conversation was deleted while n8n worked.
    if not Conversation.objects.filter(pk=conversation_id).update(updated_at=timezone.now()):
        return
    question_id = (task.input_data or {}).get("message_id")
    parent_id = (
        Message.objects.filter(pk=question_id, conversation_id=conversation_id)
        .values_list("pk", flat=True)
        .first()
    )
    message = Message(
        conversation_id=conversation_id,
        role=Role.ASSISTANT,
        content=content,
        thinking=thinking,
        async_task=task,
        metadata=metadata or {},
        parent_id=parent_id,
    )
    # The reply answers its user message, on that message's branch, whatever
    # was written since (a reply to a message whose row is gone starts its own).
    message.starts_branch = True
    message.save(touch_conversation=False)
    if parent_id is not None:
        # A page left on the question (the usual case) now shows the reply.
        Conversation.objects.filter(pk=conversation_id, current_leaf_id=parent_id).update(
            current_leaf_id=message.pk
        )
    publish_message(message)


def on_completed(task):
    content, thinking = reply_from_output(task.output_data)
    _add_reply(task, content, thinking)


def on_failed(task):
    """A reply stopped by its user keeps what was streamed so far."""
    from tasks.models import TaskStatus

    if task.status == TaskStatus.CANCELLED and (task.partial_text or "").strip():
        _add_reply(task, task.partial_text, metadata={"stopped": True})


def _partial_max_chars():
    return settings.CHAT_REPLY_MAX_LENGTH


def _delta_fields(task):
    return {"conversation_id": (task.input_data or {}).get("conversation_id")}


def valid_output(output) -> bool:
    if isinstance(output, str):
        return bool(output.strip())
    if isinstance(output, dict):
        content = output.get("content")
        return isinstance(content, str) and bool(content.strip())
    return False


def status_html(task):
    from .taskstatus import status_html as render

    return render(task)


def register():
    registry.register(
        registry.TaskType(
            name=CHAT,
            workflow=_workflow,
            on_completed=on_completed,
            on_failed=on_failed,
            partial_max_chars=_partial_max_chars,
            delta_fields=_delta_fields,
            groups=_groups,
            valid_output=valid_output,
            status_html=status_html,
            output_refused=output_refused,
            superseded=superseded,
        )
    )
