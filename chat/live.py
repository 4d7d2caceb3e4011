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
    small instead (`bounded_frame`). `bounded=False` keeps it whole (an HTTP
    answer).
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
    return bounded_frame(frame) if bounded else frame


def bounded_frame(frame) -> dict:
    """`frame`, or, when it would pass the socket's limit, a small copy: `"html":
    null, "too_large": true`, the message's `content` and `thinking` null; the
    page fetches the fragment over HTTP (`chat:message`)."""
    if live_frames.fits(frame):
        return frame
    message = {**frame["message"], "content": None, "thinking": None}
    return {**frame, "message": message, "html": None, "too_large": True}


def publish_message(message, answered=False, ready=None) -> None:
    """Publish a new message to its conversation's sockets after the commit.

    Given the instance this transaction wrote (with its task), the frame is
    rendered from it after the commit, with no query, and kept whole on it as
    `created_frame`; given an id, the committed row is read then.
    `answered`: the request's HTTP answer carries the same frame (a send's
    message), so it is rendered at once, not after the frames queued before
    it went out (live/publish.py `send_on_commit`). `ready(row)` (optional)
    runs after the commit, before the frame is rendered (a reply's steps,
    read by a statement compiled once).
    """
    from .models import Message

    def build():
        row = message
        if not isinstance(row, Message):
            row = Message.objects.select_related("async_task").filter(pk=message).first()
            if row is None:
                return []
        if ready is not None:
            ready(row)
        whole = message_frame(row, bounded=False)
        row.created_frame = whole
        frame = bounded_frame(whole)
        return [(conversation_group(row.conversation_id), {"type": "live.frame", "frame": frame})]

    live.send_on_commit(build, after_queued=not answered)
