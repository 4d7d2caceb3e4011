"""Which assistant answers a conversation, with which instructions, and the
assistants `n8n_setup` discovers (`chat_assistants`).

A conversation names its assistant, or none (null: the default one). An
assistant that was deactivated since (its workflow lost the `chat` tag or was
turned off in n8n) is never dispatched to: its conversations fall back to the
default, and the page says so. With no active assistant at all, replies go to
N8N_CHAT_WORKFLOW as before assistants existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

# Shown in place of a name when no assistant row exists (N8N_CHAT_WORKFLOW answers).
DEV_RUNNER_NAME = "Development runner"
DEV_RUNNER_DESCRIPTION = (
    "Plays the n8n workflow while N8N_BASE_URL is unset: echoes your message, "
    "the assistant's name and the start of the instructions."
)


@dataclass(frozen=True)
class Choice:
    """Who answers a conversation now. `assistant` is None when no active
    assistant exists; `fell_back` when the conversation's own is inactive."""

    assistant: object | None
    fell_back: bool = False

    @property
    def workflow_id(self) -> str | None:
        return self.assistant.workflow_id if self.assistant is not None else None

    def as_input(self) -> dict | None:
        return self.assistant.as_input() if self.assistant is not None else None


def _ranked():
    """Active assistants, the default first, then by name: the first is the default."""
    from .models import Assistant

    return Assistant.objects.active().order_by("-is_default", "name", "id")


def default_assistant():
    """The active assistant marked default, else the first active one by name."""
    return _ranked().first()


def active_assistants():
    return list(_ranked())


# The fields of the default assistant a send reads along with its other facts.
_DEFAULT_FIELDS = ("id", "name", "description", "workflow_id", "streams", "is_active", "is_default")
_UNREAD = object()


def default_assistant_column():
    """The default assistant, picked as default_assistant() picks it, as one
    JSON column of another query (null when no assistant is active): a send
    reads it together with its other facts instead of in a statement of its
    own. assistant_from_column() makes it an Assistant again."""
    from django.db.models import Subquery
    from django.db.models.functions import JSONObject

    rows = _ranked().values(row=JSONObject(**{f: f for f in _DEFAULT_FIELDS}))
    return Subquery(rows[:1])


def own_assistant_column():
    """A conversation's own assistant (null or all nulls without one) as one
    JSON column of the conversation's query, as default_assistant_column()
    gives the default: the conversation's lock reads who answers along."""
    from django.db.models import F
    from django.db.models.functions import JSONObject

    return JSONObject(**{f: F(f"assistant__{f}") for f in _DEFAULT_FIELDS})


def assistant_from_column(value):
    """The Assistant a default_assistant_column() or own_assistant_column()
    value names, or None."""
    from .models import Assistant

    if not value or value.get("id") is None:
        return None
    fields = {f: value[f] for f in _DEFAULT_FIELDS}
    for flag in ("streams", "is_active", "is_default"):
        fields[flag] = bool(fields[flag])  # SQLite's JSON says 1 and 0
    return Assistant(**fields)


def for_conversation(conversation, active=None, default=_UNREAD) -> Choice:
    """Who answers `conversation` now; `active` (active_assistants(), when the
    caller has it) or `default` (the default assistant or None, when the
    caller read it) saves the queries."""
    if active is not None:
        by_id = {a.pk: a for a in active}
        if conversation.assistant_id in by_id:
            return Choice(by_id[conversation.assistant_id])
        default = active[0] if active else None
        return Choice(default, fell_back=conversation.assistant_id is not None)
    own = conversation.assistant if conversation.assistant_id else None
    if own is not None and own.is_active:
        return Choice(own)
    if default is _UNREAD:
        default = default_assistant()
    return Choice(default, fell_back=own is not None)


def instructions_for(conversation, owner_default=None) -> str:
    """The conversation's instructions, else its owner's default (read here
    unless the caller passes it), else ""."""
    from accounts.models import default_instructions

    own = (conversation.instructions or "").strip()
    if own:
        return own
    if owner_default is None:
        owner_default = default_instructions(conversation.user_id)
    return owner_default.strip()


def chosen(assistant_id):
    """An active assistant by its id (a form's value), or None."""
    from .models import Assistant

    try:
        number = int(assistant_id)
    except (TypeError, ValueError):
        return None
    if not 0 < number < 2**63:
        return None
    return Assistant.objects.active().filter(pk=number).first()


# --- Discovery: what n8n_setup found, made rows --------------------------------


def apply_discovered(found, seen_ids) -> list[str]:
    """Create or update one assistant per discovered workflow, and deactivate
    (never delete) the discovered ones whose workflow is no longer active and
    tagged. `found`: n8n.discovery.ChatWorkflow items; `seen_ids`: the n8n ids
    of every workflow n8n listed (a workflow deleted in n8n deactivates too).
    Returns one line per assistant, saying what changed."""
    from .models import Assistant

    lines = []
    with transaction.atomic():
        wanted = {w.n8n_id: w for w in found}
        for workflow in found:
            row = Assistant.objects.filter(n8n_workflow_id=workflow.n8n_id).first()
            if row is None:
                # A row of that name made in the admin (no n8n id) is adopted.
                row = Assistant.objects.filter(name=workflow.name, n8n_workflow_id=None).first()
            values = {
                "name": _free_name(workflow.name, row),
                "description": workflow.description,
                "workflow_id": workflow.webhook_path,
                "n8n_workflow_id": workflow.n8n_id,
                "streams": workflow.streams,
                "is_active": True,
            }
            if row is None:
                row = Assistant.objects.create(**values)
                lines.append(_line(row, "created"))
                continue
            changed = [k for k, v in values.items() if getattr(row, k) != v]
            for key in changed:
                setattr(row, key, values[key])
            if changed:
                row.save()
                lines.append(_line(row, "updated (" + ", ".join(changed) + ")"))
            else:
                lines.append(_line(row, "unchanged"))
        gone = Assistant.objects.exclude(n8n_workflow_id=None).exclude(
            n8n_workflow_id__in=list(wanted)
        )
        for row in gone.order_by("name"):
            if row.is_active:
                row.is_active = False
                row.save(update_fields=["is_active", "updated_at"])
                why = "not tagged chat or not active" if row.n8n_workflow_id in seen_ids else "gone"
                lines.append(_line(row, f"deactivated (workflow {why})"))
            else:
                lines.append(_line(row, "inactive"))
        if not Assistant.objects.filter(is_default=True).exists():
            first = Assistant.objects.active().order_by("name", "id").first()
            if first is not None:
                Assistant.objects.filter(pk=first.pk).update(is_default=True)
                lines.append(_line(first, "made the default"))
    return lines


def _free_name(name, row):
    """`name`, or `name (2)`… when another assistant holds it (names are unique)."""
    from .models import Assistant

    others = Assistant.objects.exclude(pk=row.pk) if row is not None else Assistant.objects
    candidate, number = name[:190], 2
    while others.filter(name=candidate).exists():
        candidate, number = f"{name[:190]} ({number})", number + 1
    return candidate


def _line(row, what) -> str:
    return f'assistant "{row.name}" (/webhook/{row.workflow_id}): {what}'


def ensure_dev_assistant(workflow_id) -> tuple[object, bool]:
    """With no n8n (`make run`): one default assistant, the development
    runner, at N8N_CHAT_WORKFLOW, unless some assistant exists already."""
    from .models import Assistant

    existing = Assistant.objects.order_by("id").first()
    if existing is not None:
        return existing, False
    row = Assistant.objects.create(
        name=DEV_RUNNER_NAME,
        description=DEV_RUNNER_DESCRIPTION,
        workflow_id=workflow_id,
        streams=True,
        is_default=True,
    )
    return row, True
