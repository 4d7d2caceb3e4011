"""The `chat` task type: how a finished n8n run becomes an assistant message."""

from functools import lru_cache

from django.conf import settings
from django.db import connections
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When
from django.db.models.sql import InsertQuery
from django.utils import timezone

from tasks import registry
from tasks.compiled import (
    CompiledUpdate,
    compile_queryset,
    compile_update,
    datetime_stand_in,
    stand_in,
)

from ..live import conversation_group, publish_message
from ..markdown import streaming
from .thinking import Marks, split_thinking, stream_view

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


def bounded_thinking(thinking: str) -> str:
    """A reply's thinking within CHAT_THINKING_MAX_LENGTH: past it, the text is
    cut there with a note saying so (never refused whole: the reply is what
    matters). Cutting an already cut text changes nothing."""
    limit = settings.CHAT_THINKING_MAX_LENGTH
    if len(thinking) <= limit:
        return thinking
    return f"{thinking[:limit]}\n\n[… thinking cut at {limit:,} characters]"


def _taken_over(task, linked_task_id) -> bool:
    """A reply belongs to the newest task of its message: does the message now
    name another task (a Retry's) than this one?"""
    return linked_task_id not in (None, task.pk)


def superseded(task) -> bool:
    """Has a later task taken this task's place (see `_taken_over`)?"""
    from ..models import Message

    message_id = (task.input_data or {}).get("message_id")
    linked = Message.objects.filter(pk=message_id).values_list("async_task_id", flat=True)
    return any(_taken_over(task, task_id) for task_id in linked)


def output_refused(output) -> str:
    """Plain words when a usable reply may not be kept: longer than CHAT_REPLY_MAX_LENGTH."""
    content, _thinking = reply_from_output(output)
    limit = settings.CHAT_REPLY_MAX_LENGTH
    if len(content) > limit:
        return f"The reply was {len(content):,} characters long; the limit is {limit:,}."
    return ""


def _with_assistant(task, metadata=None) -> dict:
    """A reply's metadata: who answered (`assistant` = {"id", "name"}, as the
    task's input named it when it was dispatched) beside anything else."""
    metadata = dict(metadata or {})
    assistant = (task.input_data or {}).get("assistant")
    if isinstance(assistant, dict) and "id" in assistant:
        metadata["assistant"] = {"id": assistant.get("id"), "name": assistant.get("name")}
    return metadata


# Stand-ins for a reply's values in the statements compiled once
# (`_known_query`, `_touch_statement`); no conversation changes in 1900.
_TASK, _QUESTION, _CONVERSATION, _REPLY = stand_in(11), stand_in(12), stand_in(13), stand_in(14)
_NOW = datetime_stand_in(0)


@lru_cache(maxsize=8)
def _known_query(alias, with_question):
    """The read before a reply is stored (see `_add_reply`): this task's
    earlier reply and its question (`with_question`: the task's input names
    one), each with whether a message answers it, compiled once per database
    and shape."""
    from ..models import Message, Role

    mine = Q(async_task_id=_TASK, role=Role.ASSISTANT)
    queryset = (
        Message.objects.using(alias)
        .filter(mine | Q(pk=_QUESTION) if with_question else mine)
        .annotate(answered=Exists(Message.objects.filter(parent_id=OuterRef("pk"))))
        .values("pk", "role", "async_task_id", "conversation_id", "answered")
        .order_by()
    )
    return compile_queryset(queryset, {_TASK, _QUESTION} if with_question else {_TASK})


def known_rows(task, question_id) -> list[dict]:
    """The rows of `_known_query` for `task` and its question (None: none named)."""
    from ..models import Message

    query = _known_query(Message.objects.db, question_id is not None)
    return query.rows({_TASK: task.pk, _QUESTION: question_id})


def _touch_values(on_branch):
    """The conversation's UPDATE of a stored reply: its activity, and, for a
    reply on its question's branch, the page's leaf moved from the question
    to the reply (a page left elsewhere stays there)."""
    from ..models import Conversation

    leaf = F("current_leaf_id")
    if on_branch:
        leaf = Case(
            When(current_leaf_id=_QUESTION, then=Value(_REPLY)),
            default=leaf,
            output_field=Conversation._meta.get_field("current_leaf_id"),
        )
    return {"updated_at": _NOW, "current_leaf_id": leaf}


@lru_cache(maxsize=8)
def _touch_statement(alias, on_branch) -> CompiledUpdate:
    """`_touch_values`' UPDATE of the conversation, compiled by the ORM once
    per database and shape (tasks/compiled.py `compile_update`)."""
    from ..models import Conversation

    stand_ins = {"now": _NOW, "conversation": _CONVERSATION}
    if on_branch:
        stand_ins |= {"question": _QUESTION, "reply": _REPLY}
    return compile_update(
        Conversation.objects.using(alias).filter(pk=_CONVERSATION),
        _touch_values(on_branch),
        stand_ins,
        fields={"now": Conversation._meta.get_field("updated_at")},
    )


def touch_conversation(conversation_id, now, question_id=None, reply_id=None) -> int:
    """Run `_touch_statement` (on the branch when `question_id` is given): the
    number of conversations updated (0: the conversation is gone)."""
    from ..models import Conversation

    statement = _touch_statement(Conversation.objects.db, question_id is not None)
    return statement.execute(
        {"now": now, "conversation": conversation_id, "question": question_id, "reply": reply_id}
    )


@lru_cache(maxsize=4)
def _steps_query(alias):
    """A task's events, as `task.events.all()` reads them (the reply's
    "Details" steps, chat/templatetags/chat_tags.py), compiled once per database."""
    from tasks.models import AsyncTaskEvent

    queryset = AsyncTaskEvent.objects.using(alias).filter(task_id=_TASK)
    return compile_queryset(queryset, {_TASK})


def load_steps(task) -> None:
    """Read `task`'s events with `_steps_query` into the cache its
    `events.all()` then answers from (as `prefetch_related` fills it)."""
    from tasks.models import AsyncTaskEvent

    alias = AsyncTaskEvent.objects.db
    events = _steps_query(alias).instances(AsyncTaskEvent, {_TASK: task.pk})
    for event in events:
        AsyncTaskEvent.task.field.set_cached_value(event, task)
    manager = task.events
    queryset = manager.all()
    queryset._result_cache = events
    queryset._prefetch_done = True
    if not hasattr(task, "_prefetched_objects_cache"):
        task._prefetched_objects_cache = {}
    task._prefetched_objects_cache[manager.field.remote_field.cache_name] = queryset


def _insert_fields():
    from ..models import Message

    return [f for f in Message._meta.local_concrete_fields if not f.primary_key]


@lru_cache(maxsize=4)
def _insert_statement(alias):
    """The INSERT of a reply as `Message.save` has the ORM compile it, every
    column given (none left to its database default), returning only the new
    id: compiled once per database. None where the database cannot return
    the id from the INSERT (then the reply is saved through the ORM)."""
    from ..models import Message, Role

    connection = connections[alias]
    if not connection.features.can_return_columns_from_insert:
        return None
    fields = _insert_fields()
    stand_in_reply = Message(
        conversation_id=_CONVERSATION, role=Role.ASSISTANT, content="", async_task_id=_TASK
    )
    query = InsertQuery(Message)
    query.insert_values(fields, [stand_in_reply])
    compiler = query.get_compiler(alias)
    compiler.returning_fields = [Message._meta.pk]
    ((sql, params),) = compiler.as_sql()
    # One plain placeholder per column: the values of a call take their places.
    assert len(params) == len(fields) and sql.count("%s") == len(fields), sql
    return sql


def insert_reply(message) -> None:
    """Store a new reply as `message.save(touch_conversation=False)` does for
    one that starts its branch (its HTML rendered, or taken as `prepare`
    rendered it; the conversation left to the caller), with `_insert_statement`."""
    from ..models import Message

    alias = Message.objects.db
    sql = _insert_statement(alias)
    if sql is None or not message._state.adding:
        message.save(touch_conversation=False)
        return
    message.render()
    connection = connections[alias]
    params = [
        field.get_db_prep_save(field.pre_save(message, True), connection)
        for field in _insert_fields()
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        message.pk = cursor.fetchone()[0]
    message._state.adding = False
    message._state.db = alias


def _add_reply(task, content, thinking="", metadata=None, output=None):
    """Exactly one assistant message per chat task, and none for a task that a
    later one superseded or whose conversation is gone.

    A reply is stored on every `completed` callback, so it costs three
    statements: one read (an earlier reply of this task, and the question:
    its conversation, its newest task, whether it has an answer already), the
    INSERT, and one UPDATE of the conversation (activity, and the page's
    branch). No row to update means the conversation was deleted while n8n
    worked: the reply goes with it.
    """
    from ..models import Message, Role

    conversation_id = (task.input_data or {}).get("conversation_id")
    question_id = (task.input_data or {}).get("message_id")
    if conversation_id is None:
        return
    known = known_rows(task, question_id)
    question = None
    for row in known:
        if row["role"] == Role.ASSISTANT and row["async_task_id"] == task.pk:
            return  # this task has its reply already
        if row["pk"] == question_id:
            question = row
    if question is not None and _taken_over(task, question["async_task_id"]):
        return
    on_branch = question is not None and question["conversation_id"] == conversation_id
    message = Message(
        conversation_id=conversation_id,
        role=Role.ASSISTANT,
        content=content,
        # Every stored reply comes through here: completed, stopped, reconciled.
        thinking=bounded_thinking(thinking),
        async_task=task,
        metadata=_with_assistant(task, metadata),
        parent_id=question_id if on_branch else None,
    )
    # The reply answers its user message, on that message's branch, whatever
    # was written since (a reply to a message whose row is gone starts its own).
    message.starts_branch = True
    insert_reply(message)
    # A page left on the question (the usual case) now shows the reply.
    if not touch_conversation(
        conversation_id,
        timezone.now(),
        question_id if on_branch else None,
        message.pk if on_branch else None,
    ):
        Message.objects.filter(pk=message.pk)._raw_delete(Message.objects.db)
        return
    if on_branch and not question["answered"]:
        message.versions = None  # the question's first answer: no siblings to count
    message.files = []
    if output is not None and task.created_by_id is not None:
        from ..files import incoming

        message.files = incoming.store_for(message, task.created_by_id, output)
    publish_message(message, ready=_with_steps)


def _with_steps(message) -> None:
    """After the commit, before the reply's frame is rendered: its task's steps."""
    if message.async_task_id is not None:
        load_steps(message.async_task)


def on_completed(task):
    content, thinking = reply_from_output(task.output_data)
    _add_reply(task, content, thinking, output=task.output_data)


def prepare(output):
    """Before the door locks the task: check the files the reply carries
    (unusable ones: 422, nothing changes) and render the reply `on_completed`
    will store (the message's save then finds it; see chat/rendering.py)."""
    from tasks.callbacks import CallbackError

    from ..files import incoming
    from ..files.kinds import FileRefused
    from ..models import Role
    from ..rendering import prepare as prepare_render

    try:
        incoming.check(output)
    except FileRefused as refused:
        raise CallbackError(refused.message, status=422) from None
    content, thinking = reply_from_output(output)
    prepare_render(Role.ASSISTANT, content, bounded_thinking(thinking))


def dispatch_input(task):
    """The input n8n receives: as stored, its files with links signed for
    this task until its deadline (chat/files/records.py)."""
    from ..files.records import with_links

    return with_links(task.input_data, task.pk, task.deadline.timestamp())


def on_failed(task):
    """A reply stopped by its user keeps what was streamed so far."""
    from tasks.models import TaskStatus

    if task.status == TaskStatus.CANCELLED and (task.partial_text or "").strip():
        content, thinking = split_thinking(task.partial_text)
        _add_reply(task, content, thinking, metadata={"stopped": True})


def _partial_max_chars():
    return settings.CHAT_REPLY_MAX_LENGTH


def _delta_fields(task):
    """The conversation, and what the page shows of the reply so far (the
    `<think>` rule, chat/replies/thinking.py), from the marks the append returned."""
    fields = {"conversation_id": (task.input_data or {}).get("conversation_id")}
    marks = Marks.from_row(task)
    if marks is not None:
        fields.update(stream_view(marks))
    return fields


def _partial_html(frame):
    """A `sync`'s frame with all the text so far: what the page shows of it
    (nothing while formatting is off: the page shows the plain text)."""
    if settings.CHAT_STREAM_RENDER_SECONDS <= 0:
        return None
    return streaming.partial_html(
        frame["text"], frame.get("visible_offset") or 0, frame.get("thinking") is True
    )


def valid_output(output) -> bool:
    if isinstance(output, str):
        return bool(output.strip())
    if isinstance(output, dict):
        content = output.get("content")
        if isinstance(content, str) and not content.strip():
            # Files alone make a reply too (an image a workflow drew).
            return isinstance(output.get("attachments"), list) and bool(output["attachments"])
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
            prepare=prepare,
            on_failed=on_failed,
            partial_max_chars=_partial_max_chars,
            delta_fields=_delta_fields,
            delta_annotations=Marks.expressions,
            on_delta=streaming.note,
            partial_html=_partial_html,
            groups=_groups,
            valid_output=valid_output,
            status_html=status_html,
            output_refused=output_refused,
            superseded=superseded,
            dispatch_input=dispatch_input,
        )
    )
