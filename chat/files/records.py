"""Files as the chat task's input lists them, and their links at dispatch.

`input_data` (stored) lists each file as `{"id", "name", "content_type",
"size"}`; the dispatch adds `url`, a link signed for that task until its
deadline (chat/files/links.py), to the message's files and to every history
entry's, so a workflow downloads them with no session.
"""

from . import links


def record(attachment) -> dict:
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size,
    }


def attachments_by_message(message_ids) -> dict[int, list[dict]]:
    """The files of these messages, each message's in the order sent (one query)."""
    from ..models import Attachment

    found: dict[int, list[dict]] = {}
    if not message_ids:
        return found
    rows = Attachment.objects.filter(message_id__in=message_ids).order_by("id")
    for attachment in rows:
        found.setdefault(attachment.message_id, []).append(record(attachment))
    return found


def _linked(files, task_id, expires_at):
    if not isinstance(files, list):
        return files
    linked = []
    for entry in files:
        if isinstance(entry, dict) and isinstance(entry.get("id"), int):
            entry = {**entry, "url": links.url(entry["id"], task_id, expires_at)}
        linked.append(entry)
    return linked


def with_links(input_data, task_id, expires_at):
    """A copy of a chat task's input whose files carry their signed `url`."""
    if not isinstance(input_data, dict):
        return input_data
    data = dict(input_data)
    if "attachments" in data:
        data["attachments"] = _linked(data["attachments"], task_id, expires_at)
    history = data.get("history")
    if isinstance(history, list):
        data["history"] = [
            {**entry, "attachments": _linked(entry["attachments"], task_id, expires_at)}
            if isinstance(entry, dict) and "attachments" in entry
            else entry
            for entry in history
        ]
    return data
