"""State changes of chat, called by views, the admin, the worker and tests alike."""

from tasks import live

from .tasktypes import conversation_group


def message_frame(message) -> dict:
    """The `message.created` frame, with the same fragment the page renders."""
    from django.template.loader import render_to_string

    return {
        "type": "message.created",
        "message": {
            "id": message.pk,
            "conversation_id": message.conversation_id,
            "role": message.role,
            "content": message.content,
            "thinking": message.thinking,
            "created_at": message.created_at.isoformat(),
            "async_task_id": message.async_task_id,
        },
        "html": render_to_string("chat/_message.html", {"message": message}),
    }


def publish_message(message_id) -> None:
    """Publish a new message to its conversation's sockets after the commit."""
    from .models import Message

    def build():
        message = Message.objects.select_related("async_task").filter(pk=message_id).first()
        if message is None:
            return []
        frame = message_frame(message)
        return [
            (conversation_group(message.conversation_id), {"type": "live.frame", "frame": frame})
        ]

    live.send_on_commit(build)
