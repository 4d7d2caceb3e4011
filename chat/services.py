"""State changes of chat, called by views, the admin, the worker and tests alike."""

from functools import lru_cache

from django.db.models import Exists, OuterRef, Subquery, TextField, Value
from django.db.models.functions import Coalesce

from tasks.compiled import compile_queryset, stand_in

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


def chat_input(message, conversation=None, choice=None, owner_instructions=None) -> dict:
    """The `input_data` of a chat task, as docs/PROTOCOL.md describes it:
    with who answers (`assistant`, null when no assistant exists) and the
    instructions in force (the conversation's, else its owner's default:
    `owner_instructions` when the caller read it already).

    Files are listed without their links (`attachments`, and per history
    entry): the links are signed for the task when it is dispatched
    (`chat/replies/tasktypes.py`, `dispatch_input`), never stored."""
    from django.conf import settings

    from . import assistants
    from .branches import history as branch_history
    from .files.records import attachments_by_message, record

    conversation = conversation or message.conversation
    choice = choice or assistants.for_conversation(conversation)
    history = branch_history(message, settings.CHAT_HISTORY_LIMIT)
    with_files = [entry["id"] for entry in history if entry["has_files"]]
    files = attachments_by_message(with_files)  # no query when none has files
    for entry in history:
        message_id = entry.pop("id")
        if entry.pop("has_files") and files.get(message_id):
            entry["attachments"] = files[message_id]
    return {
        "conversation_id": message.conversation_id,
        "session_id": str(message.conversation_id),
        "message_id": message.pk,
        "message": message.content,
        "history": history,
        "attachments": [record(attachment) for attachment in message.files],
        "assistant": choice.as_input(),
        "instructions": assistants.instructions_for(conversation, owner_instructions),
    }


# Stand-ins for a call's values in the locks' queries, compiled once
# (tasks/compiled.py): the conversation, its owner, the message a send follows.
_CONVERSATION, _OWNER, _PARENT = stand_in(1), stand_in(2), stand_in(3)


@lru_cache(maxsize=8)
def _lock_query(alias):
    """The conversation's lock, its owner checked: its row and its own
    assistant (who answers), locking only the conversation."""
    from . import assistants
    from .models import Conversation

    queryset = (
        Conversation.objects.using(alias)
        .filter(user_id=_OWNER, pk=_CONVERSATION)
        .annotate(own_assistant=assistants.own_assistant_column())
        .select_for_update(of=("self",))
        .order_by()
    )
    return compile_queryset(queryset, {_OWNER, _CONVERSATION})


def _lock_conversation(user, conversation):
    """Lock `conversation` for a change made for `user`, who must own it
    (Conversation.DoesNotExist else); the read brings its assistant along.

    Serialises sends to one conversation (a no-op on SQLite, whose IMMEDIATE
    transactions serialise every writer anyway)."""
    from . import assistants
    from .models import Conversation

    if not user.is_authenticated:
        raise Conversation.DoesNotExist("no conversation for an anonymous user")
    query = _lock_query(Conversation.objects.db)
    rows = query.instances(Conversation, {_OWNER: user.pk, _CONVERSATION: conversation.pk})
    if not rows:
        raise Conversation.DoesNotExist(f"no conversation {conversation.pk} of user {user.pk}")
    (locked,) = rows
    own = assistants.assistant_from_column(locked.own_assistant)
    del locked.own_assistant
    Conversation.assistant.field.set_cached_value(locked, own)
    return locked


NOT_IN_CONVERSATION = "That message is not part of this conversation."


@lru_cache(maxsize=8)
def _send_facts_query(alias, with_parent):
    """What a send reads right after its lock (see `_lock_for_send`), for a
    send that names the message it follows (`with_parent`) or not."""
    from accounts.models import instructions_of
    from tasks.models import TaskStatus

    from . import assistants
    from .branches import send_parent
    from .models import Conversation, Message

    parent, answered = send_parent(_CONVERSATION, _PARENT if with_parent else None)
    # The conversation's id as a value, not the outer row's: the database
    # then reads the conversation's messages by their index instead of
    # walking every message that has a task (slower as the table grows).
    unfinished = Message.objects.filter(
        conversation_id=_CONVERSATION, async_task__status__in=TaskStatus.unfinished()
    )
    owner_default = instructions_of(OuterRef("user_id"))
    queryset = (
        Conversation.objects.using(alias)
        .filter(pk=_CONVERSATION)
        .annotate(
            busy=Exists(unfinished),
            send_parent=parent,
            parent_answered=answered,
            owner_instructions=Coalesce(
                Subquery(owner_default[:1]), Value(""), output_field=TextField()
            ),
            default_assistant=assistants.default_assistant_column(),
        )
        .values("busy", "send_parent", "parent_answered", "owner_instructions", "default_assistant")
        .order_by()
    )
    stand_ins = {_CONVERSATION, _PARENT} if with_parent else {_CONVERSATION}
    return compile_queryset(queryset, stand_ins)


def _lock_for_send(user, conversation, parent_id):
    """The conversation locked for a send, with its assistant, then (a
    statement after the lock, so it sees what the sends before it committed)
    whether a reply is unfinished (`busy`), which message the send follows
    (`send_parent`), whether that one has children (`parent_answered`), the
    owner's default instructions (`owner_instructions`, "" when none) and the
    default assistant, which make who answers (`choice`). Both statements are
    compiled once (tasks/compiled.py)."""
    from . import assistants
    from .models import Conversation

    locked = _lock_conversation(user, conversation)
    query = _send_facts_query(Conversation.objects.db, parent_id is not None)
    (facts,) = query.rows({_CONVERSATION: locked.pk, _PARENT: parent_id})
    locked.busy = bool(facts["busy"])
    locked.send_parent = facts["send_parent"]
    locked.parent_answered = bool(facts["parent_answered"])
    locked.owner_instructions = facts["owner_instructions"]
    default = assistants.assistant_from_column(facts["default_assistant"])
    locked.choice = assistants.for_conversation(locked, default=default)
    return locked


def _update(model, pk, values, task_field=None):
    """An UPDATE of one row as `door.create`'s `along` takes it: `values`
    (field name, value) adapted as each field adapts it, and `task_field` set
    to the new task's id."""
    from django.db import connection

    meta, quote = model._meta, connection.ops.quote_name
    sets, params = [], []
    for name, value in values:
        field = meta.get_field(name)
        sets.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    if task_field is not None:
        sets.append(f"{quote(meta.get_field(task_field).column)} = {{task_id}}")
    sql = f"UPDATE {quote(meta.db_table)} SET {', '.join(sets)} WHERE {quote(meta.pk.column)} = %s"
    return sql, [*params, pk]


def _ask(user, conversation, message, titled=False, owner_instructions=None, choice=None):
    """Give `message` a new pending chat task and make its branch the one shown
    (with `titled`, the conversation's new title is saved in the same UPDATE).

    The task goes to the conversation's assistant as it is now (a regenerate
    or a retry after a switch asks the new one)."""
    from django.utils import timezone

    from tasks.services import create_task

    from . import assistants
    from .models import Conversation, Message

    choice = choice or assistants.for_conversation(conversation)
    # The message's task and the conversation's leaf go with the task's INSERT
    # (one statement on PostgreSQL; tasks/door.py `create`).
    now = timezone.now()
    leaf = [("current_leaf_id", message.pk), ("updated_at", now)]
    if titled:
        leaf.append(("title", conversation.title))
    along = [
        _update(Message, message.pk, [], task_field="async_task"),
        _update(Conversation, conversation.pk, leaf),
    ]
    task = create_task(
        user=user,
        task_type=TASK_TYPE_CHAT,
        input_data=chat_input(message, conversation, choice, owner_instructions),
        workflow_id=choice.workflow_id,
        along=along,
    )
    message.async_task = task
    conversation.current_leaf_id = message.pk
    conversation.updated_at = now
    publish_message(message, answered=True)
    return task


def _new_user_message(conversation, content, parent_id, siblings=True):
    from .models import Message, Role

    message = Message(conversation=conversation, role=Role.USER, content=content)
    message.parent_id = parent_id
    message.starts_branch = parent_id is None
    message.save(touch_conversation=False)
    message.files = []  # a send with files sets them next
    if not siblings:
        message.versions = None  # known: its frame needs no count of versions
    return message


def send_message(user, conversation, text, parent_id=None, files=()):
    """Store a user message and its pending chat task in one transaction.

    The message follows `parent_id` (the leaf of the branch the page shows)
    or, without it, the conversation's default leaf. Refused (SendRefused,
    nothing stored) when the text is empty or too long, the parent is not a
    message of the conversation, or while the conversation waits for a reply.
    The task is dispatched after the commit by the tasks app; the message is
    published to the page's sockets. `conversation` needs only its `pk`: the
    locked read checks that `user` owns it (Conversation.DoesNotExist else),
    and its `title` and `current_leaf_id` are set from what was written.

    `files` (uploaded files) are checked whole first (count, size, type read
    from the content: SendRefused 413/415/400) and stored with the message,
    which may then have no text; a send that is refused or fails after they
    were written removes them again (chat/files/store.py).
    """
    from django.db import transaction

    from .files import store
    from .files.kinds import FileRefused

    try:
        uploads = store.inspect_all(list(files))
    except FileRefused as refused:
        raise SendRefused(refused.message, code="file", status=refused.status) from None
    content = clean_content(text) if not uploads or (text or "").strip() else ""
    store.save(uploads)
    try:
        with transaction.atomic():
            locked = _lock_for_send(user, conversation, parent_id)
            if locked.busy:
                raise SendRefused(BUSY_MESSAGE, code="busy", status=409)
            if parent_id is not None and locked.send_parent is None:
                raise SendRefused(NOT_IN_CONVERSATION, code="bad_parent", status=400)
            # An empty conversation (no parent) has no other root to be a sibling of.
            siblings = locked.send_parent is not None and locked.parent_answered
            message = _new_user_message(locked, content, locked.send_parent, siblings)
            message.files = store.create_rows(message, user.pk, uploads) if uploads else []
            titled = not locked.title
            if titled:
                locked.title = derive_title(content or ", ".join(u.name for u in uploads))
            _ask(
                user,
                locked,
                message,
                titled=titled,
                owner_instructions=locked.owner_instructions,
                choice=locked.choice,
            )
    except BaseException:
        # Refused, the conversation deleted meanwhile, the database gone:
        # nothing of the message is kept, its files neither.
        store.discard(uploads)
        raise
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
    """Delete a conversation and its messages (their tasks stay, for the
    record), and its files from storage once that commits. The row is locked
    first, so a send still storing files commits before and its files are
    found and removed too (chat/files/store.py)."""
    from django.db import transaction

    from .models import Conversation

    with transaction.atomic():
        owned = Conversation.objects.for_user(user).filter(pk=conversation.pk)
        if owned.select_for_update().exists():
            owned.delete()
