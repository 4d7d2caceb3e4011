"""A conversation as a download: Markdown to read, JSON to keep or move.

Both stream: messages are read in batches (keyset pages in page order) by an
async iterator, so a long conversation never sits whole in memory (Django
under ASGI would buffer a synchronous iterator whole).
"""

import functools
import json
import re
import zoneinfo

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.utils import timezone

BATCH = 200
FORMATS = {
    "md": ("text/markdown; charset=utf-8", "md"),
    "json": ("application/json", "json"),
}


# The reader's zone comes as an IANA name (`?tz=Europe/Paris`, which the page
# adds to its export links); without one, times keep the server's zone. Either
# way each time carries its offset.
ZONE_MAX_LENGTH = 64


def reader_zone(name):
    """The zone named `name`, None for none; ValueError for a name that is no zone."""
    if not name:
        return None
    if len(name) > ZONE_MAX_LENGTH or name not in _zone_names():
        raise ValueError(name)
    return zoneinfo.ZoneInfo(name)


@functools.cache
def _zone_names():
    return frozenset(zoneinfo.available_timezones())


def _time(value, zone=None):
    return timezone.localtime(value, zone).isoformat(timespec="seconds") if value else None


def _stopped(message) -> bool:
    """A reply the reader stopped (what was written so far was kept)."""
    return bool(isinstance(message.metadata, dict) and message.metadata.get("stopped"))


def _batch(conversation_id, after):
    from .models import Message

    rows = (
        Message.objects.filter(conversation_id=conversation_id)
        .select_related("async_task")
        .prefetch_related("attachments")
    )
    if after is not None:
        created_at, pk = after
        rows = rows.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk))
    return list(rows.order_by("created_at", "id")[:BATCH])


def _by_ids(ids):
    from .models import Message

    found = (
        Message.objects.filter(pk__in=ids)
        .select_related("async_task")
        .prefetch_related("attachments")
        .in_bulk()
    )
    return [found[pk] for pk in ids if pk in found]


async def _branch(conversation_id, leaf_id):
    """The messages of one branch, oldest first, in batches (the ids of a
    branch are small; the rows are read BATCH at a time)."""
    from .branches import branch_ids

    ids = await sync_to_async(branch_ids)(conversation_id, leaf_id)
    for start in range(0, len(ids), BATCH):
        for message in await sync_to_async(_by_ids)(ids[start : start + BATCH]):
            yield message


async def _messages(conversation_id):
    after = None
    while True:
        batch = await sync_to_async(_batch)(conversation_id, after)
        for message in batch:
            yield message
        if len(batch) < BATCH:
            return
        after = (batch[-1].created_at, batch[-1].pk)


def message_record(message, zone=None) -> dict:
    task = message.async_task if message.async_task_id else None
    return {
        "id": message.pk,
        # The message this one follows (null for a first message): the tree.
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "thinking": message.thinking or "",
        "created_at": _time(message.created_at, zone),
        "task_status": task.status if task is not None else None,
        "stopped": _stopped(message),
        # The message's files (downloads at /files/{id}/ for their owner).
        "attachments": [
            {
                "id": attachment.pk,
                "name": attachment.name,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "sha256": attachment.sha256,
            }
            for attachment in message.attachments.all()
        ],
        # Who wrote a reply ({"id", "name"}), as recorded when it was stored.
        "assistant": (message.metadata or {}).get("assistant"),
    }


def conversation_record(conversation, zone=None) -> dict:
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "created_at": _time(conversation.created_at, zone),
        "updated_at": _time(conversation.updated_at, zone),
        "is_archived": conversation.is_archived,
        "instructions": conversation.instructions,
    }


async def as_json(conversation, zone=None):
    record = conversation_record(conversation, zone)
    head = json.dumps({"conversation": record}, ensure_ascii=False)
    yield head[:-1] + ', "messages": ['
    separator = ""
    async for message in _messages(conversation.pk):
        yield separator + json.dumps(message_record(message, zone), ensure_ascii=False)
        separator = ", "
    yield "]}\n"


_BACKTICKS = re.compile(r"`+")
# A file name in an inline code span: no backtick or line break can end it.
_INLINE_UNSAFE = re.compile(r"[`\r\n]")
_LINE_ENDING = re.compile(r"\r\n|\r|\n")


def fenced(text, prefix=""):
    """`text` in a fenced code block longer than any run of backticks in it,
    so nothing it holds (a heading, `---`, a fence of its own) can end the
    block or look like one of the export's turns; `prefix` starts every
    line (`> ` inside a quote)."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text.rstrip("\r\n")
    if prefix:
        # Markdown's own line endings only: each of its lines must be quoted.
        lines = _LINE_ENDING.split(body)
        body = "\n".join(prefix + line if line else prefix.rstrip() for line in lines)
    return f"{prefix}{fence}\n{body}\n{prefix}{fence}\n"


async def as_markdown(conversation, leaf_id=None, zone=None):
    """The branch the page shows (ending at `leaf_id`, or the default one).

    Each turn is a `## You · time` or `## Assistant · time` heading; what a
    message says is fenced below it (`fenced`), thinking in a quote, so a
    message cannot forge a turn of either side. A stopped reply's heading
    ends with "· stopped"."""
    title = " ".join((conversation.title or "").split()) or "New conversation"
    yield f"# {title}\n\n"
    yield f"Exported {_time(timezone.now(), zone)} · conversation {conversation.pk}\n"
    async for message in _branch(conversation.pk, leaf_id):
        author = "Assistant" if message.role == "assistant" else "You"
        stopped = " · stopped" if _stopped(message) else ""
        name = ((message.metadata or {}).get("assistant") or {}).get("name")
        who = f" · {' '.join(str(name).split())}" if name and message.role == "assistant" else ""
        yield f"\n---\n\n## {author} · {_time(message.created_at, zone)}{who}{stopped}\n\n"
        if message.thinking:
            yield f"> **Thinking**\n>\n{fenced(message.thinking, '> ')}\n"
        yield fenced(message.content)
        files = list(message.attachments.all())
        if files:
            yield "\nFiles:\n\n"
            for attachment in files:
                name = _INLINE_UNSAFE.sub("_", attachment.name)
                yield f"- `{name}` ({attachment.content_type}, {attachment.size} bytes)\n"
