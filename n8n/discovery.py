"""Finding the assistants in an n8n: every active workflow tagged `chat` that
starts with a Webhook node (read through the public API). Plain data only:
the app that keeps assistants (chat/) registers a sink that stores them
(`set_sink`), so this adapter still touches no table and knows no app.

For each such workflow: its name, n8n id, the webhook path dispatches go to,
whether the Webhook node streams (response mode `streaming`) and a
description: the workflow's own (n8n 2.x has one), else the Webhook node's
notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .workflows import WEBHOOK_NODE

CHAT_TAG = "chat"
DESCRIPTION_CHARS = 1000


@dataclass(frozen=True)
class ChatWorkflow:
    n8n_id: str
    name: str
    webhook_path: str
    description: str
    streams: bool


def tag_names(workflow: dict) -> set[str]:
    return {
        str(tag.get("name", "")).strip().lower()
        for tag in workflow.get("tags") or []
        if isinstance(tag, dict)
    }


def webhook_node(workflow: dict) -> dict | None:
    """The workflow's (first enabled) Webhook node with a path, or None."""
    for node in workflow.get("nodes") or []:
        if node.get("type") != WEBHOOK_NODE or node.get("disabled"):
            continue
        path = str((node.get("parameters") or {}).get("path") or "").strip("/")
        if path:
            return node
    return None


def chat_workflow(workflow: dict) -> ChatWorkflow | None:
    """The workflow as an assistant, or None when it is not one (inactive,
    not tagged `chat`, or without a Webhook node)."""
    if not workflow.get("active") or CHAT_TAG not in tag_names(workflow):
        return None
    node = webhook_node(workflow)
    if node is None:
        return None
    parameters = node.get("parameters") or {}
    description = str(workflow.get("description") or node.get("notes") or "").strip()
    return ChatWorkflow(
        n8n_id=str(workflow["id"]),
        name=str(workflow.get("name") or f"Workflow {workflow['id']}").strip()[:200],
        webhook_path=str(parameters["path"]).strip("/"),
        description=description[:DESCRIPTION_CHARS],
        streams=parameters.get("responseMode") == "streaming",
    )


def discover(api) -> tuple[list[ChatWorkflow], set[str]]:
    """(the chat workflows, the ids of every workflow n8n listed)."""
    workflows = api.list_workflows()
    found = [w for w in map(chat_workflow, workflows) if w is not None]
    found.sort(key=lambda w: (w.name.lower(), w.n8n_id))
    return found, {str(w.get("id")) for w in workflows}


# --- Where discovered assistants go (chat/ registers it) ---------------------

_sink: Callable | None = None


def set_sink(sink: Callable | None) -> None:
    """`sink(found, seen_ids) -> lines`: stores the assistants, one line each."""
    global _sink
    _sink = sink


def get_sink() -> Callable | None:
    return _sink
