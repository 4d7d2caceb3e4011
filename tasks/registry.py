"""The registry of task types: how chat (and anything else) plugs into tasks/.

A task type names its n8n workflow and timeout (read from settings when asked,
so tests and `override_settings` see current values) and says what happens when
one of its tasks completes or fails. Hooks run inside the transaction that
applies the change, with the task row locked, so their writes commit (or roll
back) together with the status change; slow work they need (chat: rendering
the reply) is done by `prepare` before that transaction begins.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Case, When


def _default_timeout():
    return settings.TASK_TIMEOUT_SECONDS


def _default_partial_max():
    return settings.TASK_PARTIAL_TEXT_MAX_CHARS


@dataclass(frozen=True)
class TaskType:
    name: str
    # Webhook path of the n8n workflow, or a callable returning it.
    workflow: str | Callable[[], str]
    timeout_seconds: int | Callable[[], int] = _default_timeout
    # on_completed(task): the task has just become `completed` (output_data set).
    on_completed: Callable | None = None
    # prepare(output): a `completed` callback's usable output, before the door
    # takes the task's row lock to apply it (the task may still move on
    # meanwhile): work `on_completed` needs that should not hold the lock.
    prepare: Callable | None = None
    # on_failed(task): the task has just become `failed` or `timeout`.
    on_failed: Callable | None = None
    # groups(task) -> extra channel-layer groups that receive its live frames.
    groups: Callable | None = None
    # valid_output(output) -> bool: is a `completed` callback's output usable?
    # Without it, any JSON object is.
    valid_output: Callable | None = None
    # status_html(task) -> str: how the task reads to a person, as an HTML
    # fragment; `task.status` frames carry it as "html" so pages insert the
    # server's words instead of composing their own.
    status_html: Callable | None = None
    # output_refused(output) -> str: plain words when a usable output may not
    # be kept (e.g. too long); the task then fails with them. "" keeps it.
    output_refused: Callable | None = None
    # superseded(task) -> bool: has a later task taken over this one's work
    # (a Retry)? Such a task is not dispatched again.
    superseded: Callable | None = None
    # How many characters of streamed partial text a task keeps (the rest is dropped).
    partial_max_chars: int | Callable[[], int] = _default_partial_max
    # delta_fields(task) -> dict: what `message.delta` frames carry besides the
    # task id, offset and text (chat: the conversation id, and what the page
    # shows of the reply so far). Called for the row an append returned (no
    # `partial_text`, but the `delta_annotations` below) and for a `sync`'s
    # full row; it must spend no query: it runs once per streamed piece.
    delta_fields: Callable | None = None
    # delta_annotations() -> {name: expression}: expressions over the task's
    # row (its `partial_text` as just appended to) that the append of a
    # streamed piece returns in the same statement, for `delta_fields`.
    delta_annotations: Callable | None = None
    # on_delta(groups, frame): after the commit of a streamed piece, with the
    # `message.delta` frame sent for it (chat formats the reply so far from it,
    # on a thread of its own: it must return at once).
    on_delta: Callable | None = None
    # partial_html(frame) -> str | None: what the page shows of a reply being
    # written, as HTML, for a frame holding all of its text (a `sync`'s).
    partial_html: Callable | None = None
    # dispatch_input(task) -> dict: the `input` a dispatch carries, made when
    # it is sent (chat: its files' links, signed until the task's deadline);
    # without it, the task's `input_data` as stored.
    dispatch_input: Callable | None = None

    def get_workflow(self):
        return self.workflow() if callable(self.workflow) else self.workflow

    def get_partial_max_chars(self):
        value = self.partial_max_chars
        return value() if callable(value) else value

    def get_timeout(self):
        return self.timeout_seconds() if callable(self.timeout_seconds) else self.timeout_seconds


_registry: dict[str, TaskType] = {}


def register(task_type: TaskType) -> TaskType:
    _registry[task_type.name] = task_type
    return task_type


def unregister(name: str) -> None:
    _registry.pop(name, None)


def get(name: str) -> TaskType | None:
    return _registry.get(name)


def names() -> list[str]:
    return sorted(_registry)


def timeout_for(name: str) -> int:
    """A task type's timeout in seconds (TASK_TIMEOUT_SECONDS for an unknown type)."""
    kind = get(name)
    return kind.get_timeout() if kind else settings.TASK_TIMEOUT_SECONDS


def delta_annotations() -> dict:
    """Every type's `delta_annotations`, each computed for rows of its own type
    only (NULL for the others)."""
    whens: dict[str, list] = {}
    for name in names():
        kind = _registry[name]
        if kind.delta_annotations:
            for alias, expression in kind.delta_annotations().items():
                whens.setdefault(alias, []).append(When(task_type=name, then=expression))
    return {alias: Case(*cases, default=None) for alias, cases in whens.items()}


def partial_max_chars_for(name: str) -> int:
    kind = get(name)
    return kind.get_partial_max_chars() if kind else settings.TASK_PARTIAL_TEXT_MAX_CHARS
