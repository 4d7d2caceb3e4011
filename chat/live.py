"""A conversation's live frames: built from what the page renders, sent after commit.

Both `chat.services` (sends, retries) and `chat.replies.tasktypes` (replies) publish
through here, so neither needs the other.
"""

from live import frames as live_frames
from live import publish as live


def conversation_group(conversation_id) -> str:
    """The group of a conversation's `/ws/chat/{id}/` sockets."""
    return f"chat.conversation.{conversation_id}"


def message_frame(message, bounded=True) -> dict:
    """The `message.created` frame, with the same fragment the page renders,
    and, for a message with other versions, their switches (`switches`).

    A frame that would pass the socket's limit (WS_FRAME_MAX_BYTES) is sent
    small instead: `"html": null, "too_large": true`, the message's `content`
    and `thinking` null; the page fetches the fragment over HTTP
    (`chat:message`). `bounded=False` keeps it whole (an HTTP answer).
    """
    from .fragments import message_html, sibling_switches

    html = message_html(message)
    frame = {
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
        "html": html,
    }
    switches = sibling_switches(message)
    if switches:
        frame["switches"] = switches
    if bounded and not live_frames.fits(frame):
        frame["message"].update(content=None, thinking=None)
        frame.update(html=None, too_large=True)
    return frame


def publish_message(message) -> None:
    """Publish a new message to its conversation's sockets after the commit.

    Given the instance this transaction wrote (with its task), the frame is
    rendered from it after the commit, with no query; given an id, the
    committed row is read then.
    """
    from .models import Message

    def build():
        row = message
        if not isinstance(row, Message):
            row = Message.objects.select_related("async_task").filter(pk=message).first()
            if row is None:
                return []
        frame = message_frame(row)
        return [(conversation_group(row.conversation_id), {"type": "live.frame", "frame": frame})]

    live.send_on_commit(build)
