"""State changes of chat, called by views, the admin, the worker and tests alike."""

from django.db.models import Exists, OuterRef

from .live import conversation_group, message_frame, publish_message  # noqa: F401 - re-exported

# --- Sending, retrying and managing conversations -------------------------------

TITLE_LENGTH = 60
TASK_TYPE_CHAT = "chat"


class SendRefused(Exception):
    """A message that may not be sent (or retried); nothing was stored.

    `status` is the HTTP status a view answers with: 400 for bad input, 409 for
    a conversation that is still waiting for a reply.
    """

    def __init__(self, message, *, code, status):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def derive_title(text, limit=TITLE_LENGTH) -> str:
    """The start of a message as a title: about `limit` characters, cut at a word."""
    words = " ".join((text or "").split())
    if len(words) <= limit:
        return words
    cut = words[: limit + 1]
    space = cut.rfind(" ")
    # Cut at the last word boundary unless that throws most of the text away.
    head = cut[:space] if space >= limit // 2 else words[:limit]
    return head.rstrip(" .,;:-") + "…"


def clean_content(text) -> str:
    """The text to store, or SendRefused (400) when it is empty or too long."""
    from django.conf import settings

    content = (text or "").strip()
    if not content:
        raise SendRefused("Write a message before sending.", code="empty", status=400)
    limit = settings.CHAT_MESSAGE_MAX_LENGTH
    if len(content) > limit:
        raise SendRefused(
            f"Your message is {len(content):,} characters long; the limit is {limit:,}.",
            code="too_long",
            status=400,
        )
    return content


BUSY_MESSAGE = "Wait for the assistant's reply before sending another message."


def has_unfinished_task(conversation) -> bool:
    """Whether a chat task of this conversation is still pending or processing."""
    from tasks.models import TaskStatus

    from .models import Message

    return Message.objects.filter(
        conversation_id=conversation.pk, async_task__status__in=TaskStatus.unfinished()
    ).exists()


def history_before(message) -> list[dict]:
    """The branch before the message (its ancestors), oldest first, at most
    CHAT_HISTORY_LIMIT: what n8n sees, whatever other branches hold."""
    from django.conf import settings

    from .branches import history

    return history(message, settings.CHAT_HISTORY_LIMIT)


def chat_input(message, conversation=None, choice=None) -> dict:
    """The `input_data` of a chat task, as docs/PROTOCOL.md describes it:
    with who answers (`assistant`, null when no assistant exists) and the
    instructions in force (the conversation's, else its owner's default)."""
    from . import assistants

    conversation = conversation or message.conversation
    choice = choice or assistants.for_conversation(conversation)
    return {
        "conversation_id": message.conversation_id,
        "session_id": str(message.conversation_id),
        "message_id": message.pk,
        "message": message.content,
        "history": history_before(message),
        "assistant": choice.as_input(),
        "instructions": assistants.instructions_for(conversation),
    }


def _lock_conversation(user, conversation):
    from .models import Conversation

    # Serialises sends to one conversation (a no-op on SQLite, whose IMMEDIATE
    # transactions serialise every writer anyway).
    return Conversation.objects.for_user(user).select_for_update().get(pk=conversation.pk)


NOT_IN_CONVERSATION = "That message is not part of this conversation."


def _lock_for_send(user, conversation, parent_id):
    """The conversation locked for a send, then (a statement after the lock,
    so it sees what the sends before it committed) whether a reply is
    unfinished (`busy`), which message the send follows (`send_parent`) and
    whether that one has children (`parent_answered`)."""
    from tasks.models import TaskStatus

    from .branches import send_parent
    from .models import Conversation, Message

    locked = _lock_conversation(user, conversation)
    parent, answered = send_parent(conversation.pk, parent_id)
    unfinished = Message.objects.filter(
        conversation_id=OuterRef("pk"), async_task__status__in=TaskStatus.unfinished()
    )
    locked.busy, locked.send_parent, locked.parent_answered = (
        Conversation.objects.filter(pk=locked.pk)
        .annotate(busy=Exists(unfinished), send_parent=parent, parent_answered=answered)
        .values_list("busy", "send_parent", "parent_answered")
        .get()
    )
    return locked


def _ask(user, conversation, message):
    """Give `message` a new pending chat task and make its branch the one shown.

    The task goes to the conversation's assistant as it is now (a regenerate
    or a retry after a switch asks the new one)."""
    from tasks.services import create_task

    from . import assistants

    choice = assistants.for_conversation(conversation)
    task = create_task(
        user=user,
        task_type=TASK_TYPE_CHAT,
        input_data=chat_input(message, conversation, choice),
        workflow_id=choice.workflow_id,
    )
    message.async_task = task
    message.save(update_fields=["async_task"])
    conversation.current_leaf_id = message.pk
    conversation.save(update_fields=["current_leaf_id", "updated_at"])
    publish_message(message)
    return task


def _new_user_message(conversation, content, parent_id, siblings=True):
    from .models import Message, Role

    message = Message(conversation=conversation, role=Role.USER, content=content)
    message.parent_id = parent_id
    message.starts_branch = parent_id is None
    message.save(touch_conversation=False)
    if not siblings:
        message.versions = None  # known: its frame needs no count of versions
    return message


def send_message(user, conversation, text, parent_id=None):
    """Store a user message and its pending chat task in one transaction.

    The message follows `parent_id` (the leaf of the branch the page shows)
    or, without it, the conversation's default leaf. Refused (SendRefused,
    nothing stored) when the text is empty or too long, the parent is not a
    message of the conversation, or while the conversation waits for a reply.
    The task is dispatched after the commit by the tasks app; the message is
    published to the page's sockets.
    """
    from django.db import transaction

    content = clean_content(text)
    with transaction.atomic():
        locked = _lock_for_send(user, conversation, parent_id)
        if locked.busy:
            raise SendRefused(BUSY_MESSAGE, code="busy", status=409)
        if parent_id is not None and locked.send_parent is None:
            raise SendRefused(NOT_IN_CONVERSATION, code="bad_parent", status=400)
        # An empty conversation (no parent) has no other root to be a sibling of.
        siblings = locked.send_parent is not None and locked.parent_answered
        message = _new_user_message(locked, content, locked.send_parent, siblings)
        if not locked.title:
            locked.title = derive_title(content)
        _ask(user, locked, message)
        if locked.title != conversation.title:
            locked.save(update_fields=["title", "updated_at"])
    conversation.title = locked.title
    conversation.current_leaf_id = locked.current_leaf_id
    return message


NOT_REGENERATABLE = "Only a reply to one of your messages can be regenerated."


def regenerate(user, conversation, reply):
    """Ask again for the reply `reply` answers: a new chat task for that user
    message. The new reply becomes a sibling of `reply`, which is kept (its
    task is superseded: the message now names the new one). Returns the user
    message answered again."""
    from django.db import transaction

    from .models import Message, Role

    with transaction.atomic():
        locked = _lock_conversation(user, conversation)
        question = (
            Message.objects.filter(
                conversation=locked,
                role=Role.USER,
                children__pk=reply.pk,
                children__role=Role.ASSISTANT,
            )
            .select_related("async_task")
            .first()
        )
        if question is None:
            raise SendRefused(NOT_REGENERATABLE, code="not_regeneratable", status=409)
        if has_unfinished_task(locked):
            raise SendRefused(BUSY_MESSAGE, code="busy", status=409)
        _ask(user, locked, question)
    return question


def edit(user, conversation, original, text):
    """A new version of the user message `original`: a sibling of it (same
    parent) with its own chat task. The original and everything under it stay."""
    from django.db import transaction

    from .models import Message, Role

    content = clean_content(text)
    with transaction.atomic():
        locked = _lock_conversation(user, conversation)
        original = Message.objects.filter(
            conversation=locked, pk=original.pk, role=Role.USER
        ).first()
        if original is None:
            raise SendRefused(NOT_IN_CONVERSATION, code="bad_parent", status=400)
        if has_unfinished_task(locked):
            raise SendRefused(BUSY_MESSAGE, code="busy", status=409)
        message = _new_user_message(locked, content, original.parent_id)
        _ask(user, locked, message)
    return message


RETRYABLE_MESSAGE = "Only a message whose reply failed, timed out or was stopped can be retried."


def retry(user, message):
    """Ask again for the reply to a user message whose task failed or timed out.

    Creates a new chat task (input with the current history) and links the
    message to it; the old task stays as it was, for the record.
    """
    from django.db import transaction

    from tasks.models import TaskStatus

    from .models import Message, Role

    with transaction.atomic():
        locked = _lock_conversation(user, message.conversation)
        message = (
            Message.objects.select_related("async_task")
            .filter(conversation=locked, pk=message.pk, role=Role.USER)
            .first()
        )
        if message is None or message.async_task is None:
            raise SendRefused(RETRYABLE_MESSAGE, code="not_retryable", status=409)
        if message.async_task.status not in (
            TaskStatus.FAILED,
            TaskStatus.TIMEOUT,
            TaskStatus.CANCELLED,
        ):
            raise SendRefused(RETRYABLE_MESSAGE, code="not_retryable", status=409)
        if has_unfinished_task(locked):
            raise SendRefused(BUSY_MESSAGE, code="busy", status=409)
        # Pages replace the message's fragment (its status moved back to pending).
        _ask(user, locked, message)
    return message


def _check_owner(user, conversation):
    from django.core.exceptions import PermissionDenied

    if not user.is_authenticated or conversation.user_id != user.pk:
        raise PermissionDenied("not your conversation")


def rename_conversation(user, conversation, title):
    _check_owner(user, conversation)
    title = " ".join((title or "").split())
    conversation.title = title
    conversation.save(update_fields=["title", "updated_at"])
    return conversation


def set_archived(user, conversation, archived: bool):
    _check_owner(user, conversation)
    conversation.is_archived = bool(archived)
    conversation.save(update_fields=["is_archived", "updated_at"])
    return conversation


def delete_conversation(user, conversation) -> None:
    """Delete a conversation and its messages (their tasks stay, for the record)."""
    from .models import Conversation

    Conversation.objects.for_user(user).filter(pk=conversation.pk).delete()
