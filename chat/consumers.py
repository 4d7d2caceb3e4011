"""`/ws/chat/{conversation_id}/`: a conversation's new messages and task changes.

Only the conversation's owner gets a socket: anonymous users, other users and
unknown conversations are refused before `accept` (Daphne answers 403).

Client frames:
- `{"type": "sync", "after_message_id": N, "task_ids": [...]}` answers, in
  this order, a `message.created` for every message of the conversation with
  an id above N (id order) and a `task.status` for every unfinished task of
  the conversation (id order). At most one page of messages (CHAT_PAGE_SIZE):
  a client further behind gets `{"type": "sync.reset"}` alone and reloads.
  At most WS_SYNC_MAX_BYTES of frames: the message that would pass it is not
  sent, and the answer ends with `sync.reset` (the page reloads).
  `task_ids` is optional: ids of tasks the page still shows as unfinished;
  their current state is sent whatever it is, so a task that failed or timed
  out while the page was offline is seen too.
- `{"type": "ping"}` answers `{"type": "pong"}`.
Anything else answers `{"type": "error", "error": "…"}` and keeps the socket.
"""

import json

from django.conf import settings
from django.db.models import Q

from live import frames as live_frames
from live.consumers import FrameError, LiveConsumer, off_thread
from tasks.consumers import add_task_frames, iter_task_frames, parse_task_ids
from tasks.models import AsyncTask

from .branches import annotate as annotate_versions
from .live import conversation_group
from .models import Conversation, Message
from .services import message_frame


def parse_after_message_id(content) -> int:
    after = content.get("after_message_id", 0)
    if after is None:
        return 0
    if isinstance(after, str) and after.isdigit():
        after = int(after)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise FrameError("after_message_id must be a message id (an integer, 0 for all)")
    return after


def conversation_tasks(conversation):
    """The tasks of a conversation: those linked to its messages, and those whose
    input names it (a task whose message is gone, a task still being set up)."""
    linked = Message.objects.filter(conversation=conversation, async_task__isnull=False)
    return AsyncTask.objects.for_user(conversation.user).filter(
        Q(pk__in=linked.values("async_task_id")) | Q(input_data__conversation_id=conversation.pk)
    )


SYNC_RESET = live_frames.SYNC_RESET


def sync_answer(conversation, after_message_id, task_ids=()) -> list[str]:
    """What a client that has seen messages up to `after_message_id` is
    missing, encoded: at most a page of messages, then the tasks' frames,
    within WS_SYNC_MAX_BYTES. Further behind than a page, or past the budget,
    the answer ends with `sync.reset` (the page reloads).

    The messages are listed without their text; each is read and rendered
    only when its turn comes, so the answer holds at most its budget."""
    size = settings.CHAT_PAGE_SIZE
    answer = live_frames.SyncAnswer()
    listed = list(
        Message.objects.filter(conversation=conversation, pk__gt=after_message_id)
        .only("pk", "conversation_id")
        .order_by("pk")[: size + 1]
    )
    if len(listed) > size:
        return answer.reset()
    annotate_versions(listed)
    for row in listed:
        message = Message.objects.select_related("async_task").filter(pk=row.pk).first()
        if message is None:  # deleted meanwhile
            continue
        message.versions = row.versions
        if not answer.add(message_frame(message)):
            return answer.reset()
    add_task_frames(answer, iter_task_frames(conversation_tasks(conversation), task_ids))
    return answer.texts


def sync_frames(conversation, after_message_id, task_ids=()) -> list[dict]:
    """`sync_answer` as frames (for tests and tools)."""
    return [json.loads(text) for text in sync_answer(conversation, after_message_id, task_ids)]


class ChatConsumer(LiveConsumer):
    metrics_endpoint = "chat"

    async def connect(self):
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        if not await self.owns_conversation():
            await self.close()
            return
        # Joins before accepting, so nothing committed after the client's sync
        # is missed: it arrives live (the page drops what it already shows).
        await self.open(conversation_group(self.conversation_id))

    @off_thread
    def owns_conversation(self):
        return Conversation.objects.for_user(self.user).filter(pk=self.conversation_id).exists()

    async def sync(self, content):
        after = parse_after_message_id(content)
        task_ids = parse_task_ids(content)
        texts = await self.sync_answer(after, task_ids)
        if texts is None:
            # Deleted while the socket was open: say so and let the page go.
            await self.send_error("conversation not found")
            await self.close(code=4404)
            return
        await self.send_encoded(texts)

    @off_thread
    def sync_answer(self, after, task_ids):
        conversation = (
            Conversation.objects.for_user(self.user)
            .select_related("user")
            .filter(pk=self.conversation_id)
            .first()
        )
        if conversation is None:
            return None
        return sync_answer(conversation, after, task_ids)
